"""VBench's sampling protocol: file names, the prompt suite, and scoring a VBench-style folder.

Conventions (VBench 0.1.5 ``vbench/__init__.py`` ``build_full_info_json``, ``prompts/README.md``,
``static_filter.py``):

* a sample of prompt ``p`` is named ``f"{p}{special_str}-{index}{ext}"`` (``ext`` ``.mp4``); the prompt is read
  back by stripping one trailing ``-<digits>`` (``get_prompt_from_filename``), so prompts may contain ``-``,
  ``'``, ``,``, ``.``, parentheses, digits -- anything but ``/`` (and NUL), which a file name cannot hold;
* **5 samples per prompt**, **25 for prompts of temporal_flickering** (the static filter discards many);
  ``vbench_standard`` then looks for indices 0..4 only (a missing one is a warning, not an error);
* the static filter visits a prompt's files in *lexicographic* order (``sorted(glob)``: ``-0, -1, -10, -11, ...``)
  and keeps the first 5 static ones, which become that prompt's temporal_flickering samples;
* VBench never truncates prompts.  Its longest prompt is 210 bytes, so every name fits the usual 255-byte
  limit; :func:`video_filename` refuses a longer name unless ``truncate=True``, which cuts the prompt at a UTF-8
  character boundary (and :func:`match_prompt` maps a truncated name back by unique prefix).
"""
from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from omnieval.errors import ConfigError, MediaError, OmniEvalError

SAMPLES_PER_PROMPT = 5
FLICKER_SAMPLES_PER_PROMPT = 25
MAX_NAME_BYTES = 255
_INDEX_SUFFIX = re.compile(r"-(\d+)$")


@dataclass(frozen=True)
class PromptEntry:
    """One line of ``VBench_full_info.json``."""

    prompt: str
    dimensions: tuple[str, ...]
    auxiliary_info: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def num_samples(self) -> int:
        return FLICKER_SAMPLES_PER_PROMPT if "temporal_flickering" in self.dimensions else SAMPLES_PER_PROMPT

    def doc(self) -> dict[str, Any]:
        """The ``MetricInput.doc`` of this prompt (``auxiliary_info`` keyed by dimension, as VBench)."""
        return {"prompt": self.prompt, "dimension": list(self.dimensions), "auxiliary_info": dict(self.auxiliary_info)}


# ---------------------------------------------------------------------------------------------
# File names
# ---------------------------------------------------------------------------------------------
def video_filename(prompt: str, index: int, ext: str = ".mp4", special_str: str = "", truncate: bool = False) -> str:
    """VBench's sample name ``{prompt}{special_str}-{index}{ext}``."""
    if "/" in prompt or "\x00" in prompt:
        raise ConfigError(f"prompt {prompt!r} contains '/' or NUL, which cannot be part of a file name")
    if index < 0:
        raise ConfigError(f"sample index must be >= 0, got {index}")
    tail = f"{special_str}-{index}{ext}"
    name = prompt + tail
    excess = len(name.encode("utf-8")) - MAX_NAME_BYTES
    if excess > 0:
        if not truncate:
            raise ConfigError(f"file name for prompt {prompt[:40]!r}... is {excess} bytes over {MAX_NAME_BYTES}; pass truncate=True")
        cut = prompt.encode("utf-8")[: len(prompt.encode("utf-8")) - excess].decode("utf-8", errors="ignore")
        name = cut + tail
    return name


def parse_filename(name: str | Path, special_str: str = "") -> tuple[str, int | None]:
    """``(prompt, index)`` of a sample file name; ``index`` is None when the stem has no ``-<n>`` suffix."""
    stem = Path(name).stem if Path(name).suffix else Path(name).name
    match = _INDEX_SUFFIX.search(stem)
    if not match:
        prompt, index = stem, None
    else:
        prompt, index = stem[: match.start()], int(match.group(1))
    if special_str and prompt.endswith(special_str):
        prompt = prompt[: -len(special_str)]
    return prompt, index


def match_prompt(name_prompt: str, prompts: Iterable[str]) -> str | None:
    """The suite prompt a (possibly truncated) file-name prompt stands for: exact, else the unique prefix match."""
    prompts = list(prompts)
    if name_prompt in prompts:
        return name_prompt
    hits = [p for p in prompts if p.startswith(name_prompt)]
    return hits[0] if len(hits) == 1 else None


# ---------------------------------------------------------------------------------------------
# The prompt suite
# ---------------------------------------------------------------------------------------------
def full_info_path() -> Path:
    """``VBench_full_info.json`` inside the installed vbench package (found without importing vbench)."""
    import importlib.util

    spec = importlib.util.find_spec("vbench")
    if spec is None or not spec.submodule_search_locations:
        raise OmniEvalError("the vbench package is not installed (pip install --no-deps vbench==0.1.5); it holds VBench_full_info.json")
    path = Path(list(spec.submodule_search_locations)[0]) / "VBench_full_info.json"
    if not path.is_file():
        raise OmniEvalError(f"VBench_full_info.json not found at {path}")
    return path


@lru_cache(maxsize=4)
def _load_suite(path: str) -> tuple[PromptEntry, ...]:
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    return tuple(
        PromptEntry(entry["prompt_en"], tuple(entry["dimension"]), dict(entry.get("auxiliary_info") or {})) for entry in raw
    )


def load_prompt_suite(dimensions: Iterable[str] | None = None, path: str | Path | None = None) -> list[PromptEntry]:
    """The VBench prompt suite (946 entries), optionally only the prompts of ``dimensions``, in file order."""
    entries = _load_suite(str(path or full_info_path()))
    if dimensions is None:
        return list(entries)
    wanted = set(dimensions)
    return [e for e in entries if wanted & set(e.dimensions)]


def sampling_plan(dimensions: Iterable[str] | None = None, path: str | Path | None = None) -> list[tuple[PromptEntry, int, str]]:
    """Every ``(entry, index, filename)`` to generate: 5 per prompt, 25 for temporal_flickering prompts.

    A prompt listed twice in the suite (VBench has two) is generated once, with the larger sample count.
    """
    plan: dict[str, tuple[PromptEntry, int]] = {}
    for entry in load_prompt_suite(dimensions, path):
        previous = plan.get(entry.prompt)
        if previous is None or entry.num_samples > previous[1]:
            plan[entry.prompt] = (entry, entry.num_samples)
    return [(entry, i, video_filename(entry.prompt, i)) for entry, n in plan.values() for i in range(n)]


# ---------------------------------------------------------------------------------------------
# Scoring a VBench-style folder
# ---------------------------------------------------------------------------------------------
@dataclass
class FolderResult:
    """``scores``: dimension -> value (a dimension with no video is absent, never 0); ``per_video``: dimension
    -> [(file name, contribution)]; ``missing``: dimension -> expected file names not found."""

    scores: dict[str, float]
    per_video: dict[str, list[tuple[str, dict[str, Any]]]]
    missing: dict[str, list[str]]


def score_folder(
    folder: str | Path,
    dimensions: Iterable[str],
    metrics: dict[str, Any] | None = None,
    special_str: str = "",
    suite_path: str | Path | None = None,
) -> FolderResult:
    """Score a folder of ``{prompt}-{index}.mp4`` files like ``VBench.evaluate(mode='vbench_standard')``.

    ``metrics``: dimension -> metric instance (default: the registered ``vbench_<dimension>`` with default
    options).  temporal_flickering follows the static-filter protocol: a prompt's files are visited in
    VBench's order and the first 5 static videos are scored.
    """
    from omnieval.metrics.base import MetricInput
    from omnieval.registry import get_metric

    folder = Path(folder)
    if not folder.is_dir():
        raise MediaError(f"VBench video folder not found: {folder}")
    names = {p.name for p in folder.iterdir() if p.is_file()}
    ext = Path(sorted(names)[0]).suffix if names else ".mp4"
    metrics = dict(metrics or {})
    result = FolderResult({}, {}, {})
    for dimension in dimensions:
        metric = metrics.get(dimension) or get_metric(f"vbench_{dimension}")()
        metric.reset()
        entries = load_prompt_suite([dimension], suite_path)
        per_video: list[tuple[str, dict[str, Any]]] = []
        missing: list[str] = []
        static_protocol = dimension == "temporal_flickering" and getattr(metric.options, "static_filter", False)
        for entry in entries:
            if static_protocol:
                # VBench's static filter visits files in plain string order: -0, -1, -10, ..., -19, -2, -20, ...
                candidates = sorted(video_filename(entry.prompt, i, ext, special_str) for i in range(FLICKER_SAMPLES_PER_PROMPT))
                wanted = SAMPLES_PER_PROMPT
            else:
                candidates = [video_filename(entry.prompt, i, ext, special_str) for i in range(SAMPLES_PER_PROMPT)]
                wanted = len(candidates)
            kept = 0
            for name in candidates:
                if kept >= wanted:
                    break
                if name not in names:
                    if (parse_filename(name, special_str)[1] or 0) < SAMPLES_PER_PROMPT:
                        missing.append(name)
                    continue
                item = MetricInput(item_id=name, output=str(folder / name), prompt=entry.prompt, doc=entry.doc())
                contribution = metric.contributions([item])[0]
                metric.fold(contribution)
                per_video.append((name, contribution))
                if dimension in contribution:
                    kept += 1
        if missing:
            warnings.warn(f"VBench {dimension}: {len(missing)} expected video(s) not found in {folder}, e.g. {missing[0]!r}")
        result.scores.update(metric.compute())
        result.per_video[dimension] = per_video
        result.missing[dimension] = missing
    return result

