"""VLM-judged image-editing scores: GEdit-Bench's VIEScore and ImgEdit-Bench's three sub-scores, as lmms-eval 0.7.3's
``gedit_bench`` / ``imgedit`` tasks compute them, through the OpenAI-compatible judge client (:mod:`omnieval.judge`).

The prompts are data (``edit_judge_prompts.yaml``; the parity tests check them against lmms-eval's strings).  The
judge settings are the metric options (a :class:`~omnieval.judge.JudgeSettings`); the defaults are lmms-eval's:
``temperature`` 0.1, ``max_tokens`` 512, 120 s per call, model ``gpt-4o`` unless the task names another (both
READMEs recommend ``Qwen/Qwen2.5-VL-72B-Instruct-AWQ`` behind vLLM).

``viescore`` (GEdit-Bench, ``gedit_bench_process_results`` + ``VIEScore(task="tie")``):

* images: the source (``doc[source_field]``, opened with PIL as stored -- not converted to RGB, as lmms-eval) and
  the edited output are each resized to about 512x512 pixels keeping their own aspect ratio
  (``w = int(sqrt(512*512*r))``, ``h = int(w / r)``, ``r`` = width / height; PIL ``resize`` default filter), then
  sent as PNG (``Image.save(format="PNG")``, base64 data URLs);
* SC call: one user message = [source, edited, SC prompt with ``<instruction>`` = ``doc[instruction_field]``];
  PQ call: [edited, PQ prompt];
* reading (``mllm_output_to_dict``): the text between two ``||V^=^V||`` delimiters, else from the first ``{`` to
  the last ``}``, else a bare ``[a, b]`` list or a bare integer 0-10; newlines removed, ``json.loads``, a scalar
  ``score`` wrapped in a list; on a JSON error the reference's ``fix_json`` repair (whose result is *not* wrapped);
* if either reply cannot be read, **both** calls are made again (fresh calls, no cache) and a reply that still has
  no JSON gets lmms-eval's guess: ``random.randint(0, 10)`` after ``random.seed(42)`` (drawn SC first, then PQ,
  only for the replies that need one).  lmms-eval repeats forever while a reply has braces but no repairable JSON;
  here that stops after ``max_rounds`` rounds and the item is a failure (asked again next run);
* ``SC = min(SC["score"])``, ``PQ = min(PQ["score"])``, ``O = sqrt(SC * PQ)`` (0-10).  Where lmms-eval's arithmetic
  raises (a scalar score from the repair path, a missing ``score``), it scores the item **0, 0, 0**, counted in
  the means; so does this metric (``viescore_zeroed`` counts them).
* reported: ``viescore_semantics`` / ``viescore_quality`` / ``viescore_overall`` = lmms-eval's
  ``gedit_bench_<lang>_fullset_{semantics,quality,overall}`` for a task restricted to one language (the
  ``..._intersection_...`` values: the same metric with ``where: {Intersection_exist: true}``); micro means over
  items.  The official GEdit scripts instead resize the edit to the source size, send text first as JPEG, and
  report macro means over the 11 task types (``group_by: [task_type]`` gives the per-type means).

``imgedit_judge`` (ImgEdit-Bench, ``imgedit_process_results``):

* one call: [template of ``doc[edit_type_field]`` (unknown types use ``adjust``) with ``<edit_prompt>`` =
  ``doc[prompt_field]``, source (``.convert("RGB")``), edited] -- text first, both PNG, not resized;
* reading (``parse_gpt_scores``): the last three ``:\\s*(\\d+)`` matches; else the last three lines ending in
  digits; else ``(0, 0, 0)``; ``avg = (s1 + s2 + s3) / 3`` (1-5 scale);
* reported: ``imgedit_score1``, ``imgedit_score2``, ``imgedit_score3``, ``imgedit_avg_score`` (micro means;
  ``group_by: [edit_type]`` gives the per-type ``avg_score`` means lmms-eval logs).

Failures: a call with no reply (after the client's retries) is never a score.  lmms-eval scores such items 0;
here the contribution is marked :data:`~omnieval.metrics.base.RETRY` (``judge_failed`` counts them; the next run
asks again).  Every contribution keeps the raw replies.
"""
from __future__ import annotations

import functools
import json
import math
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import yaml

from omnieval.errors import ConfigError, MediaError
from omnieval.judge import JudgeCache, JudgeClient, JudgeSettings, bytes_part, text_part
from omnieval.metrics.base import RETRY, MeanMetric, MetricInput
from omnieval.registry import register_metric

PROMPTS_FILE = Path(__file__).with_name("edit_judge_prompts.yaml")
DELIMITER = "||V^=^V||"


@functools.lru_cache(maxsize=1)
def prompts() -> dict[str, Any]:
    return yaml.safe_load(PROMPTS_FILE.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------
# Image handling
# ---------------------------------------------------------------------------------------------
def area_dimensions(target_area: int, ratio: float) -> tuple[int, int]:
    """GEdit's ``calculate_dimensions``: ``(int(sqrt(A * r)), int(sqrt(A * r) / r))``."""
    width = math.sqrt(target_area * ratio)
    return int(width), int(width / ratio)


def to_area(image, target_area: int = 512 * 512):
    """A PIL image resized to about ``target_area`` pixels, its aspect kept (PIL ``resize`` default filter)."""
    w, h = area_dimensions(target_area, image.width / image.height)
    return image.resize((w, h))


def png_part(image) -> dict[str, Any]:
    """A PNG image part of a PIL image in its own mode (``Image.save(format="PNG")``, as VIEScore / ImgEdit)."""
    buf = BytesIO()
    image.save(buf, format="PNG")
    return bytes_part(buf.getvalue(), "image/png")


def open_source(item: MetricInput, field: str):
    """The doc's source image as PIL, in the mode it is stored in (the file the loader cached)."""
    from PIL import Image

    value = item.doc.get(field)
    path = Path(str(value)) if value is not None else None
    if path is not None and not path.is_absolute() and "__media_root__" in item.doc:
        path = Path(item.doc["__media_root__"]) / path
    if path is None or not path.is_file():
        raise MediaError(f"item {item.item_id}: no source image file in doc[{field!r}] ({value!r:.80})")
    with Image.open(path) as im:
        im.load()
        return im.copy()


def output_pil(item: MetricInput):
    from PIL import Image

    if not isinstance(item.output, np.ndarray):
        raise MediaError(f"item {item.item_id}: the judge needs an edited image, got {type(item.output).__name__}")
    return Image.fromarray(item.output).convert("RGB")


# ---------------------------------------------------------------------------------------------
# Reading replies (lmms-eval's semantics, re-implemented)
# ---------------------------------------------------------------------------------------------
def fix_json(text: str) -> str:
    """VIEScore's repair: quote bare keys; wrap numeric values in a list, quote other non-literal values."""
    fixed = re.sub(r"(\w+):", r'"\1":', text)

    def value(match):
        key, val, comma = match.groups()
        val = val.strip()
        if re.match(r"^-?\d+(\.\d+)?$", val):
            val = f"[{val}]"
        elif not re.match(r"^(true|false|null)$", val, re.IGNORECASE):
            val = f'"{val}"'
        return f"{key}: {val}{comma}"

    return re.sub(r'(".*?"):(.*?)(,|})', value, fixed)


def _int_0_10(text: str) -> bool:
    try:
        return 0 <= int(text) <= 10
    except ValueError:
        return False


def read_viescore(text: str, guess: Callable[[], int] | None = None) -> dict | bool:
    """VIEScore's ``mllm_output_to_dict``: the reply as a dict with ``score``, or ``False`` (unreadable).
    ``guess``: called for a reply without JSON on a retry round (``give_up_parsing``)."""
    if text.count(DELIMITER) == 2:
        start, end = text.find(DELIMITER) + len(DELIMITER), text.rfind(DELIMITER)
    else:
        start, end = text.find("{"), text.rfind("}") + 1
        if start == -1 or end == 0:
            start, end = text.find("["), text.rfind("]") + 1
            if guess is not None:
                value = guess()
                text = json.dumps({"score": [value], "reasoning": f"guess_if_cannot_parse | {text}"})
            elif re.match(r"^\[\d+, ?\d+\]$", text[start:end]):
                text = json.dumps({"score": json.loads(text[start:end]), "reasoning": "System: output is simply a list of scores"})
            elif _int_0_10(text):
                text = json.dumps({"score": [int(text)], "reasoning": "System: output is simply a number"})
            else:
                return False
            start, end = 0, len(text)
    if start == -1 or end == -1 or start == end:
        return False
    body = text[start:end].strip().replace("\n", "")
    try:
        data = json.loads(body)
        if not isinstance(data["score"], list):
            data["score"] = [data["score"]]
    except Exception:  # noqa: BLE001 - the reference catches everything here, then tries its repair
        try:
            return json.loads(fix_json(body))
        except Exception:  # noqa: BLE001
            return False
    return data


def viescore_values(sc: dict, pq: dict) -> tuple[float, float, float] | None:
    """``(min SC, min PQ, sqrt(SC * PQ))``, or None where lmms-eval's arithmetic raises (it then scores 0, 0, 0)."""
    try:
        s, p = min(sc["score"]), min(pq["score"])
        return float(s), float(p), float(math.sqrt(s * p))
    except Exception:  # noqa: BLE001 - TypeError / KeyError / ValueError: every one gives lmms-eval's zeros
        return None


def read_imgedit(text: str) -> tuple[float, float, float]:
    """ImgEdit's ``parse_gpt_scores``: the last three ``: <int>`` values, else the last three lines ending in an
    integer, else ``(0, 0, 0)``."""
    matches = re.findall(r":\s*(\d+)", text)
    if len(matches) >= 3:
        return float(matches[-3]), float(matches[-2]), float(matches[-1])
    scores = [float(m.group(1)) for line in text.strip().split("\n") if (m := re.search(r"(\d+)\s*$", line.strip()))]
    if len(scores) >= 3:
        return scores[-3], scores[-2], scores[-1]
    return 0.0, 0.0, 0.0


# ---------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EditJudgeOptions(JudgeSettings):
    """Judge settings (lmms-eval's defaults) plus the doc fields the prompt and images come from."""

    model: str = "gpt-4o"
    temperature: float | None = 0.1
    max_tokens: int | None = 512
    timeout_s: float = 120.0
    source_field: str = "image"
    instruction_field: str = "instruction"
    edit_type_field: str = "edit_type"
    max_rounds: int = 3
    cache: bool = True


class _EditJudge(MeanMetric):
    Options = EditJudgeOptions
    needs: ClassVar[tuple[str, ...]] = ("output", "doc")
    reported: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, sleep: Callable[[float], None] = time.sleep, **options: Any):
        super().__init__(**options)
        name = getattr(type(self), "registry_name", type(self).__name__)
        self.options.check(name)
        if self.options.max_rounds < 1:
            raise ConfigError(f"{name}: max_rounds must be >= 1")
        self.client = JudgeClient(self.options, sleep=sleep)
        self.fresh_client = JudgeClient(self.options, sleep=sleep)  # re-asks: never served from the cache
        self.batch_size = max(8, 4 * self.options.workers)

    def attach_run_dir(self, path: Path) -> None:
        if self.options.cache:
            self.client.cache = JudgeCache(Path(path) / "judge_cache")

    def options_dict(self) -> dict[str, Any]:
        return {**super().options_dict(), "prompts_sha256": _prompts_sha()}

    def text(self, item: MetricInput, field: str, default: str | None = None) -> str:
        value = item.doc.get(field, default)
        if not isinstance(value, str):
            raise ConfigError(f"item {item.item_id}: {getattr(type(self), 'registry_name', '')} needs doc[{field!r}] text")
        return value

    def compute(self) -> dict[str, float]:
        values = super().compute()
        out = {key: values[key] for key in self.reported if key in values}
        out["judge_failed"] = self.sums.get("judge_failed", 0.0)
        return out


@functools.lru_cache(maxsize=1)
def _prompts_sha() -> str:
    import hashlib

    return hashlib.sha256(PROMPTS_FILE.read_bytes()).hexdigest()


@register_metric("viescore", description="GEdit-Bench VIEScore (lmms-eval 0.7.3): SC, PQ, O = sqrt(SC*PQ) from a VLM judge", capability="edit_image")
class VIEScore(_EditJudge):
    """See the module docstring (``viescore``)."""

    reported = ("viescore_semantics", "viescore_quality", "viescore_overall", "viescore_zeroed")
    higher_is_better: ClassVar[dict[str, bool]] = {"viescore_zeroed": False, "judge_failed": False}

    def conversations(self, item: MetricInput) -> tuple[list[dict], list[dict]]:
        p = prompts()["viescore_tie"]
        source, edited = to_area(open_source(item, self.options.source_field)), to_area(output_pil(item))
        sc = p["sc"].replace("<instruction>", self.text(item, self.options.instruction_field, ""))
        sc_msg = [{"role": "user", "content": [png_part(source), png_part(edited), text_part(sc)]}]
        pq_msg = [{"role": "user", "content": [png_part(edited), text_part(p["pq"])]}]
        return sc_msg, pq_msg

    def score(self, inputs: list[MetricInput]) -> list[dict[str, Any]]:
        pairs = [self.conversations(item) for item in inputs]
        flat = self.client.chat_many([c for pair in pairs for c in pair])
        replies = [(flat[2 * i], flat[2 * i + 1]) for i in range(len(inputs))]
        return [self._item(pair, reply) for pair, reply in zip(pairs, replies)]

    def _item(self, pair, replies) -> dict[str, Any]:
        raw: list[list[str | None]] = [[], []]
        for round_ in range(1, self.options.max_rounds + 1):
            if round_ > 1:
                replies = tuple(self.fresh_client.chat(c) for c in pair)
            for k, r in enumerate(replies):
                raw[k].append(r.content)
            failed = [r for r in replies if r.failed]
            if failed:
                return {"judge_failed": 1.0, "judge_raw": raw, RETRY: failed[0].error}
            rng = random.Random(42)  # lmms-eval seeds 42 before each call; both replies are read after both calls
            guess = (lambda rng=rng: rng.randint(0, 10)) if round_ > 1 else None
            sc, pq = (read_viescore(r.content or "", guess) for r in replies)
            if sc is not False and pq is not False:
                values = viescore_values(sc, pq)
                zeroed = values is None
                s, p, o = values or (0.0, 0.0, 0.0)
                return {"viescore_semantics": s, "viescore_quality": p, "viescore_overall": o, "viescore_zeroed": float(zeroed),
                        "judge_failed": 0.0, "judge_rounds": round_, "judge_raw": raw}
        return {"judge_failed": 1.0, "judge_raw": raw,
                RETRY: f"judge replies unreadable after {self.options.max_rounds} rounds (lmms-eval would ask forever)"}


@register_metric("imgedit_judge", description="ImgEdit-Bench (lmms-eval 0.7.3): three 1-5 judge sub-scores and their mean", capability="edit_image")
class ImgEditJudge(_EditJudge):
    """See the module docstring (``imgedit_judge``)."""

    reported = ("imgedit_score1", "imgedit_score2", "imgedit_score3", "imgedit_avg_score")
    higher_is_better: ClassVar[dict[str, bool]] = {"judge_failed": False}

    def conversation(self, item: MetricInput) -> list[dict]:
        templates = prompts()["imgedit"]["templates"]
        edit_type = item.doc.get(self.options.edit_type_field, "adjust")
        template = templates.get(edit_type, templates["adjust"])
        text = template.replace("<edit_prompt>", self.text(item, self.options.instruction_field, ""))
        source = open_source(item, self.options.source_field).convert("RGB")
        return [{"role": "user", "content": [text_part(text), png_part(source), png_part(output_pil(item))]}]

    def score(self, inputs: list[MetricInput]) -> list[dict[str, Any]]:
        replies = self.client.chat_many([self.conversation(item) for item in inputs])
        out = []
        for reply in replies:
            if reply.failed:
                out.append({"judge_failed": 1.0, "judge_raw": reply.content, RETRY: reply.error})
                continue
            s1, s2, s3 = read_imgedit(reply.content or "")
            out.append({"imgedit_score1": s1, "imgedit_score2": s2, "imgedit_score3": s3,
                        "imgedit_avg_score": (s1 + s2 + s3) / 3.0, "judge_failed": 0.0, "judge_raw": reply.content})
        return out
