"""FiVE-Acc: FiVE-Bench's VLM-judged editing accuracy (``FiVEAcc_Qwen_VL`` in ``evaluation/metrics_calculator.py``
and its use in ``evaluate.py``, Harvard-AI-and-Robotics-Lab/FiVE-Bench 98ea719), through the OpenAI-compatible judge
client (:mod:`omnieval.judge`).

Per item (one edited video, all its frames at their own resolution -- FiVE does not resize them for the judge):

* **frames sent**: with ``n`` edited frames and ``num_frames`` (FiVE's ``five_acc_vlm_num_frames``, 4),
  ``stride = n // (n // num_frames)`` and frames ``int(0.5 * stride), +stride, ...`` to the end -- so 40 frames send
  10 (stride 4), 17 frames send 4 (2, 6, 10, 14), 81 send 20: ``num_frames`` acts as a stride (about
  ``n / num_frames`` frames go to the judge), not as a count.  With ``n < num_frames`` FiVE divides by zero, catches it and the
  item is NaN: here it is left out of the means and counted in ``five_acc_excluded``;
* **calls** (one user message each: the frames as PNG images in order, then the text; FiVE sends them as one Qwen
  ``video`` item): the multiple-choice question, then the source yes/no question (only when the doc has a non-empty
  one), then the target yes/no question, each in FiVE's template (``five_prompts.yaml``, verbatim);
* **reading** (prefixes of the stripped reply, lower-cased): MC correct iff its first character is ``b`` (the target
  answer is always option b); YN correct iff the source reply starts with ``no`` and the target reply with ``yes``
  (only the target reply when there is no source question);
* **values**: ``five_acc_yes_no``, ``five_acc_multi_choice``, ``five_acc_union`` = either, ``five_acc_inter`` = both,
  ``five_acc`` = the mean of those four -- each item 0/1 (``five_acc`` 0-1), averaged per edit type, then over the
  types (``macro_over``).  Fractions, as FiVE's tables print them: its ``x100`` rule for ``five_acc`` columns tests
  ``name.startswith('five_acc')`` against ``"<method>|five_acc..."`` headers and never fires.

Judge: FiVE runs ``Qwen/Qwen2.5-VL-7B-Instruct`` locally (transformers + ``qwen_vl_utils``, ``generate(max_new_tokens
=128)`` with the checkpoint's generation config).  Here the defaults are that model name, ``max_tokens`` 128 and no
``temperature`` (a vLLM server then applies the checkpoint's ``generation_config.json``, as ``generate`` does).

Where omnieval differs: FiVE scores an item NaN when a call raises; here a failed call (after the client's retries)
marks the item :data:`~omnieval.metrics.base.RETRY` (``judge_failed``; asked again by the next run), never a score.
The frames go as separate images through the chat API, so the server's Qwen processor resizes and packs them as
images, not as the ``video`` input (temporal patches of 2 frames, ``fps=10``, ``qwen_vl_utils`` video pixel limits)
FiVE's local processor builds -- the same pixels, a different encoding; answers can differ.  FiVE converts an ``.mp4``
edit to JPEG frames with ffmpeg before asking; here the decoded frames are sent losslessly.  A doc without an MC or
target question stops FiVE's loop for that metric (an assertion); here it is counted in ``five_acc_excluded``.
"""
from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import yaml

from omnieval.errors import ConfigError, MediaError
from omnieval.judge import JudgeCache, JudgeClient, JudgeSettings, image_part, text_part
from omnieval.media import frame_count, sample_frames
from omnieval.metrics.base import RETRY, MetricInput
from omnieval.metrics.macro import MacroMean
from omnieval.registry import register_metric

PROMPTS_FILE = Path(__file__).with_name("five_prompts.yaml")
VALUES = ("five_acc_yes_no", "five_acc_multi_choice", "five_acc_union", "five_acc_inter", "five_acc")


@functools.lru_cache(maxsize=1)
def prompts() -> dict[str, str]:
    return yaml.safe_load(PROMPTS_FILE.read_text(encoding="utf-8"))


def prompt(kind: str, question: str) -> str:
    """FiVE's ``get_template``: ``yes_no`` or ``multi_choice``."""
    return prompts()[kind].replace("{question}", question)


def judged_frames(n: int, num_frames: int) -> list[int] | None:
    """FiVE's frame choice for ``n`` frames (None where FiVE divides by zero: ``n < num_frames``)."""
    if n // num_frames == 0:
        return None
    stride = n // (n // num_frames)
    return list(range(int(0.5 * stride), n, stride))


def read_answers(mc: str, src: str | None, tgt: str) -> tuple[int, int]:
    """``(yes_no, multi_choice)`` correctness from the replies (``src`` None: no source question)."""
    mc_ok = mc.strip()[:1].lower() == "b"
    tgt_ok = tgt.strip()[:3].lower() == "yes"
    yn_ok = tgt_ok if src is None else (src.strip()[:2].lower() == "no" and tgt_ok)
    return int(yn_ok), int(mc_ok)


def item_values(yn: int, mc: int) -> dict[str, float]:
    """evaluate.py's five columns of an item."""
    union, inter = int(yn + mc > 0), int(yn + mc >= 2)
    return dict(zip(VALUES, (float(yn), float(mc), float(union), float(inter), (yn + mc + union + inter) / 4.0)))


@dataclass(frozen=True)
class FiveAccOptions(JudgeSettings):
    """Judge settings (defaults: FiVE's judge model, 128 new tokens, the server's sampling defaults), ``num_frames``
    (FiVE's ``five_acc_vlm_num_frames``), ``macro_over`` (the doc field averaged first: the edit type) and the doc
    fields holding the three questions."""

    model: str = "Qwen/Qwen2.5-VL-7B-Instruct"
    temperature: float | None = None
    max_tokens: int | None = 128
    timeout_s: float = 120.0
    num_frames: int = 4
    macro_over: str | None = "editing_type_id"
    multiple_choice_field: str = "multiple_choice_question"
    source_question_field: str = "source_yes_no_question"
    target_question_field: str = "target_yes_no_question"
    cache: bool = True


@register_metric("five_acc", description="FiVE-Acc (FiVE-Bench): VLM yes/no and multiple-choice accuracy of the edit, union, intersection, mean",
                 capability="edit_video")
class FiveAcc(MacroMean):
    """See the module docstring."""

    Options = FiveAccOptions
    needs: ClassVar[tuple[str, ...]] = ("output", "doc")
    counted = ("judge_failed", "five_acc_excluded")
    higher_is_better: ClassVar[dict[str, bool]] = {"judge_failed": False, "five_acc_excluded": False}

    def __init__(self, *, sleep: Callable[[float], None] = time.sleep, **options: Any):
        super().__init__(**options)
        self.options.check("five_acc")
        if self.options.num_frames < 1:
            raise ConfigError(f"five_acc: num_frames must be >= 1, got {self.options.num_frames}")
        self.client = JudgeClient(self.options, sleep=sleep)
        self.batch_size = max(8, 4 * self.options.workers)

    def attach_run_dir(self, path: Path) -> None:
        if self.options.cache:
            self.client.cache = JudgeCache(Path(path) / "judge_cache")

    def options_dict(self) -> dict[str, Any]:
        return {**super().options_dict(), "prompts_sha256": hashlib.sha256(PROMPTS_FILE.read_bytes()).hexdigest()}

    def questions(self, item: MetricInput) -> tuple[str, str | None, str] | None:
        """``(mc, source or None, target)``, or None when the doc lacks the MC or the target question."""
        o, doc = self.options, item.doc
        mc, src, tgt = (doc.get(f) for f in (o.multiple_choice_field, o.source_question_field, o.target_question_field))
        for name, value in ((o.multiple_choice_field, mc), (o.source_question_field, src), (o.target_question_field, tgt)):
            if value is not None and not isinstance(value, str):
                raise MediaError(f"item {item.item_id}: five_acc: doc[{name!r}] must be text, got {type(value).__name__}")
        if not mc or not tgt:
            return None
        return mc, (src or None), tgt

    def plan(self, item: MetricInput) -> tuple[list[list[dict]], dict[str, Any]]:
        """The item's conversations (MC, [source], target) and its contribution's record, or no conversation and
        the reason the item is excluded."""
        record: dict[str, Any] = {**self.group_of(item), "judge_failed": 0.0, "five_acc_excluded": 0.0}
        questions = self.questions(item)
        if questions is None:
            return [], {**record, "five_acc_excluded": 1.0, "excluded": "no multiple-choice or target question"}
        n = frame_count(item.output)
        chosen = judged_frames(n, self.options.num_frames)
        if chosen is None:
            return [], {**record, "five_acc_excluded": 1.0,
                        "excluded": f"{n} frames < num_frames {self.options.num_frames} (FiVE: division by zero, NaN)"}
        frames = [image_part(f) for f in sample_frames(item.output, chosen)]
        mc, src, tgt = questions
        texts = [prompt("multi_choice", mc)] + ([prompt("yes_no", src)] if src else []) + [prompt("yes_no", tgt)]
        record["frames_sent"] = chosen
        return [[{"role": "user", "content": [*frames, text_part(t)]}] for t in texts], record

    def score(self, inputs: list[MetricInput]) -> list[dict[str, Any]]:
        plans = [self.plan(item) for item in inputs]  # every item is checked before any judge call
        flat = self.client.chat_many([c for conversations, _ in plans for c in conversations])
        out, k = [], 0
        for conversations, record in plans:
            replies, k = flat[k:k + len(conversations)], k + len(conversations)
            if not conversations:
                out.append(record)
                continue
            record["judge_replies"] = [r.content for r in replies]
            failed = [r for r in replies if r.failed]
            if failed:
                out.append({**record, "judge_failed": 1.0, RETRY: failed[0].error})
                continue
            texts = [r.content or "" for r in replies]
            mc, tgt = texts[0], texts[-1]
            src = texts[1] if len(texts) == 3 else None
            out.append({**record, **item_values(*read_answers(mc, src, tgt))})
        return out

