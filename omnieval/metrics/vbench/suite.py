"""VBench's prompt suite and sampling plan (``VBench_full_info.json``; file names: :mod:`omnieval.naming`).

* **5 samples per prompt**, **25 for prompts of temporal_flickering** (the static filter discards many);
  ``vbench_standard`` then looks for indices 0..4 only (a missing one is a warning, not an error);
* the static filter visits a prompt's files in VBench's file order (:func:`omnieval.naming.vbench_file_order`)
  and keeps the first 5 static ones, which become that prompt's temporal_flickering samples
  (``vbench_temporal_flickering`` applies this rule when it aggregates).
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from omnieval.errors import OmniEvalError
from omnieval.naming import video_filename

SAMPLES_PER_PROMPT = 5
FLICKER_SAMPLES_PER_PROMPT = 25


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
