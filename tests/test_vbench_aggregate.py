"""VBench totals (omnieval.aggregate.vbench) against VBench's cal_final_score.py rule and published rows.

Tolerances: published rows print every dimension rounded to 0.01 %, so recomputed Quality / Semantic / Total
may differ from the printed ones by the propagated rounding, at most ~0.01; we allow 0.012 (percentage points).
Checks of the formula itself on exact inputs use 1e-9.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from omnieval.aggregate.vbench import load_constants, normalized_scores, total_from_groups, vbench_scores
from omnieval.errors import OmniEvalError

CSV = Path(__file__).resolve().parents[1] / "leaderboards" / "published" / "vbench.csv"
DIMS = list(load_constants()["dimensions"])

# VBench scripts/constant.py (commit 7975661), restated: Min, Max, weight, group
PUBLISHED_CONSTANTS = {
    "subject_consistency": (0.1462, 1.0, 1, "quality"),
    "background_consistency": (0.2615, 1.0, 1, "quality"),
    "temporal_flickering": (0.6293, 1.0, 1, "quality"),
    "motion_smoothness": (0.706, 0.9975, 1, "quality"),
    "dynamic_degree": (0.0, 1.0, 0.5, "quality"),
    "aesthetic_quality": (0.0, 1.0, 1, "quality"),
    "imaging_quality": (0.0, 1.0, 1, "quality"),
    "object_class": (0.0, 1.0, 1, "semantic"),
    "multiple_objects": (0.0, 1.0, 1, "semantic"),
    "human_action": (0.0, 1.0, 1, "semantic"),
    "color": (0.0, 1.0, 1, "semantic"),
    "spatial_relationship": (0.0, 1.0, 1, "semantic"),
    "scene": (0.0, 0.8222, 1, "semantic"),
    "appearance_style": (0.0009, 0.2855, 1, "semantic"),
    "temporal_style": (0.0, 0.364, 1, "semantic"),
    "overall_consistency": (0.0, 0.364, 1, "semantic"),
}


def _rows():
    with CSV.open() as f:
        return list(csv.DictReader(f))


def _full_rows():
    return [r for r in _rows() if all(r[d] for d in DIMS)]


def test_constants_file_matches_published_table():
    data = load_constants()
    assert data["quality_weight"] == 4 and data["semantic_weight"] == 1
    assert {k: (v["min"], v["max"], v["weight"], v["group"]) for k, v in data["dimensions"].items()} == PUBLISHED_CONSTANTS


@pytest.mark.parametrize("row", _full_rows(), ids=lambda r: r["model"])
def test_published_leaderboard_rows(row):
    scores = vbench_scores({d: float(row[d]) for d in DIMS})
    for key in ("total", "quality", "semantic"):
        assert abs(scores[key] - float(row[key])) < 0.012, (key, scores[key], row[key])


def test_csv_has_sources_and_enough_full_rows():
    rows = _rows()
    assert all(r["source"].startswith("https://") for r in rows)
    assert len(_full_rows()) >= 5


@pytest.mark.parametrize("model", ["Omni-Video", "Wan2.1-T2V-1.3B"])
def test_omnivideo_and_wan_totals_follow_4q_plus_s(model):
    row = next(r for r in _rows() if r["model"] == model)
    assert abs(total_from_groups(float(row["quality"]), float(row["semantic"])) - float(row["total"])) < 0.006


def _reference_rule(raw: dict[str, float]) -> dict[str, float]:
    """cal_final_score.py restated on fractions (independent of the module under test)."""
    norm = {d: (raw.get(d, 0.0) - lo) / (hi - lo) * w for d, (lo, hi, w, _) in PUBLISHED_CONSTANTS.items()}
    q = [d for d, c in PUBLISHED_CONSTANTS.items() if c[3] == "quality"]
    s = [d for d, c in PUBLISHED_CONSTANTS.items() if c[3] == "semantic"]
    quality = sum(norm[d] for d in q) / sum(PUBLISHED_CONSTANTS[d][2] for d in q)
    semantic = sum(norm[d] for d in s) / sum(PUBLISHED_CONSTANTS[d][2] for d in s)
    return {"total": (4 * quality + semantic) / 5, "quality": quality, "semantic": semantic}


def test_fractions_percent_and_strings_agree():
    row = _full_rows()[0]
    fractions = {d: float(row[d]) / 100 for d in DIMS}
    a = vbench_scores(fractions)
    b = vbench_scores({d: float(row[d]) for d in DIMS})
    c = vbench_scores({d.replace("_", " ").title(): f"{row[d]}%" for d in DIMS})
    ref = _reference_rule(fractions)
    for key in ref:
        assert math.isclose(a[key], ref[key], abs_tol=1e-12)
        assert math.isclose(b[key], 100 * ref[key], abs_tol=1e-9)
        assert math.isclose(c[key], 100 * ref[key], abs_tol=1e-9)


def test_no_clipping_like_vbench():
    raw = {d: 0.5 for d in DIMS} | {"scene": 0.95}  # above scene's Max 0.8222
    assert normalized_scores(raw)["scene"] > 1.0


def test_missing_dimensions():
    row = _full_rows()[0]
    partial = {d: float(row[d]) / 100 for d in DIMS if d != "color"}
    with pytest.raises(OmniEvalError, match="color"):
        vbench_scores(partial)
    none = vbench_scores(partial, missing="none")
    assert none["semantic"] is None and none["total"] is None
    assert math.isclose(none["quality"], _reference_rule(partial)["quality"], abs_tol=1e-12)
    zero = vbench_scores(partial, missing="zero")
    assert math.isclose(zero["total"], _reference_rule(partial)["total"], abs_tol=1e-12)


def test_bad_inputs():
    with pytest.raises(OmniEvalError, match="unknown dimension"):
        vbench_scores({"subject consistancy": 0.9}, missing="none")
    with pytest.raises(OmniEvalError, match="mix"):
        vbench_scores({"color": "80%", "scene": 0.5}, missing="none")
    with pytest.raises(OmniEvalError, match="not finite"):
        vbench_scores({"color": float("nan")}, missing="none")
