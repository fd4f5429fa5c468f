"""VBench totals: Quality, Semantic and Total scores from the 16 dimension scores.

Exactly VBench's ``scripts/cal_final_score.py`` with the constants of ``scripts/constant.py``, kept in the
versioned data file ``vbench_constants.json`` next to this module:

* ``norm_d = (raw_d - Min_d) / (Max_d - Min_d) * weight_d`` -- **no clipping** (VBench does not clip);
* ``Quality = sum(norm_d, quality dims) / sum(weight_d, quality dims)`` (weights sum to 6.5; dynamic_degree 0.5);
* ``Semantic = sum(norm_d, semantic dims) / sum(weight_d, semantic dims)`` (9 dims, weight 1 each);
* ``Total = (4 * Quality + 1 * Semantic) / 5``.

Units.  VBench's script takes raw fractions (``0.9839``); leaderboards and papers print percentages
(``98.39%``).  ``percent=True`` says the inputs are percentages, ``False`` fractions; ``None`` (default) decides
by this rule: strings ending in ``%`` are percentages; otherwise the inputs are percentages iff any value is
greater than 1.0 (every VBench raw value is a fraction <= 1, every published percentage of a VBench
dimension except dynamic degree and the styles is far above 1).  Mixing units in one call is an error.  The
three outputs are in the same unit as the inputs.

Missing dimensions.  ``missing="error"`` (default) raises, naming them.  ``missing="none"`` returns ``None``
for every score that would need them (quality or semantic, and total) and scores the complete group.
``missing="zero"`` reproduces VBench's script, which silently scores a missing dimension as raw 0.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from omnieval.errors import ConfigError, OmniEvalError

CONSTANTS_FILE = Path(__file__).with_name("vbench_constants.json")
Missing = Literal["error", "none", "zero"]


@lru_cache(maxsize=4)
def load_constants(path: str | None = None) -> dict[str, Any]:
    """The versioned Min/Max/weight/group table (default: the bundled ``vbench_constants.json``)."""
    data = json.loads(Path(path or CONSTANTS_FILE).read_text(encoding="utf-8"))
    for name, spec in data["dimensions"].items():
        if spec["group"] not in ("quality", "semantic") or not spec["max"] > spec["min"]:
            raise ConfigError(f"{path or CONSTANTS_FILE}: bad entry for {name}: {spec}")
    return data


def canonical_dimension(name: str) -> str:
    """``"Subject Consistency"`` / ``"subject consistency"`` / ``"subject_consistency"`` -> ``subject_consistency``."""
    return "_".join(name.strip().lower().replace("-", " ").split())


def _parse(dimension_scores: Mapping[str, Any], percent: bool | None) -> tuple[dict[str, float], bool]:
    values: dict[str, float] = {}
    has_pct_string = has_plain = False
    for name, raw in dimension_scores.items():
        if raw is None:
            continue
        if isinstance(raw, str):
            text = raw.strip()
            if text.endswith("%"):
                has_pct_string = True
                text = text[:-1]
            else:
                has_plain = True
            try:
                value = float(text)
            except ValueError as exc:
                raise OmniEvalError(f"vbench_scores: score of {name!r} is not a number: {raw!r}") from exc
        else:
            has_plain = True
            value = float(raw)
        if not math.isfinite(value):
            raise OmniEvalError(f"vbench_scores: score of {name!r} is not finite: {raw!r}")
        values[canonical_dimension(name)] = value
    if has_pct_string and percent is False:
        raise OmniEvalError("vbench_scores: percent=False but scores are given as 'NN.NN%' strings")
    if percent is None:
        if has_pct_string and has_plain:
            raise OmniEvalError("vbench_scores: scores mix 'NN%' strings and fractions; pass percent= explicitly")
        percent = has_pct_string or any(v > 1.0 for v in values.values())
    return values, bool(percent)


def normalized_scores(dimension_scores: Mapping[str, Any], *, percent: bool | None = None, constants: str | None = None) -> dict[str, float]:
    """Weighted min-max normalised score of each given dimension, as fractions (VBench's ``get_nomalized_score``)."""
    table = load_constants(constants)["dimensions"]
    values, is_percent = _parse(dimension_scores, percent)
    unknown = sorted(set(values) - set(table))
    if unknown:
        raise OmniEvalError(f"vbench_scores: unknown dimension(s) {', '.join(unknown)}; known: {', '.join(table)}")
    scale = 100.0 if is_percent else 1.0
    return {
        name: (values[name] / scale - spec["min"]) / (spec["max"] - spec["min"]) * spec["weight"]
        for name, spec in table.items()
        if name in values
    }


def vbench_scores(
    dimension_scores: Mapping[str, Any],
    *,
    percent: bool | None = None,
    missing: Missing = "error",
    constants: str | None = None,
) -> dict[str, float | None]:
    """``{total, quality, semantic}`` from dimension scores (names with ``_`` or spaces, any case).

    See the module docstring for units (``percent``) and missing dimensions (``missing``).
    """
    if missing not in ("error", "none", "zero"):
        raise ConfigError(f"vbench_scores: missing must be 'error', 'none' or 'zero', got {missing!r}")
    data = load_constants(constants)
    table = data["dimensions"]
    _, is_percent = _parse(dimension_scores, percent)
    norm = normalized_scores(dimension_scores, percent=is_percent, constants=constants)
    absent = [name for name in table if name not in norm]
    if absent and missing == "error":
        raise OmniEvalError(f"vbench_scores: missing dimension(s) {', '.join(absent)} (pass missing='none' or 'zero')")
    if missing == "zero":
        for name in absent:
            spec = table[name]
            norm[name] = (0.0 - spec["min"]) / (spec["max"] - spec["min"]) * spec["weight"]
        absent = []

    def group(which: str) -> float | None:
        names = [n for n, s in table.items() if s["group"] == which]
        if any(n in absent for n in names):
            return None
        return sum(norm[n] for n in names) / sum(table[n]["weight"] for n in names)

    quality, semantic = group("quality"), group("semantic")
    qw, sw = data["quality_weight"], data["semantic_weight"]
    total = None if quality is None or semantic is None else (qw * quality + sw * semantic) / (qw + sw)
    scale = 100.0 if is_percent else 1.0
    return {k: (None if v is None else v * scale) for k, v in (("total", total), ("quality", quality), ("semantic", semantic))}


def total_from_groups(quality: float, semantic: float, constants: str | None = None) -> float:
    """``Total = (4 Q + S) / 5`` (the published weights), in the unit of the inputs."""
    data = load_constants(constants)
    qw, sw = data["quality_weight"], data["semantic_weight"]
    return (qw * quality + sw * semantic) / (qw + sw)


def task_aggregate(values: Mapping[str, Any]) -> dict[str, dict]:
    """Task-level aggregate of a VBench task: ``vbench_total``/``vbench_quality``/``vbench_semantic``.

    ``values`` are the task's result values; a dimension is recognised by the last ``/``-separated part of
    its name (``vbench_subject_consistency/subject_consistency`` -> ``subject_consistency``).  A missing
    dimension makes its group and the total ``None`` (never scored as 0); the missing names are listed.
    """
    table = load_constants()["dimensions"]
    dims = {}
    for name, value in values.items():
        dim = name.rsplit("/", 1)[-1]
        if dim in table and value is not None:
            dims[dim] = value
    scores = vbench_scores(dims, missing="none", percent=False) if dims else {"total": None, "quality": None, "semantic": None}
    missing = [name for name in table if name not in dims]
    return {f"vbench_{k}": {"value": v, "higher_is_better": True, "missing": missing} for k, v in scores.items()}
