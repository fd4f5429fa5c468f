"""GenEval summary scores: per-tag accuracy, macro ``overall``, prompt-level any-of-N.

Reference: djghosh13/geneval ``evaluation/summary_scores.py`` (overall = unweighted mean of the tag
accuracies; a prompt is correct if any of its images is).  Expected values are exact fractions,
compared with a tolerance of 1e-12; the published Omni-Video row to 1e-9.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from omnieval.aggregate.geneval import GENEVAL_TAGS, geneval_scores, image_accuracy, overall_score, prompt_accuracy
from omnieval.errors import ConfigError
from omnieval.metrics.base import MetricInput
from omnieval.metrics.geneval import GenEval
from omnieval.metrics.geneval_detector import Detection

ROOT = Path(__file__).resolve().parents[1]


def rec(tag, correct, prompt):
    return {"tag": tag, "correct": correct, "prompt_id": prompt}


# 4 counting images (1 correct), 2 position images (both wrong), 6 single_object images (all correct)
RECORDS = ([rec("counting", i == 0, f"c{i // 2}") for i in range(4)] + [rec("position", False, "p0")] * 2
           + [rec("single_object", True, f"s{i}") for i in range(6)])


def test_overall_is_macro_not_micro():
    scores = geneval_scores(RECORDS)
    assert scores == pytest.approx({"counting": 0.25, "position": 0.0, "single_object": 1.0, "overall": 1.25 / 3}, abs=1e-12)
    assert image_accuracy(RECORDS) == pytest.approx(7 / 12, abs=1e-12)


def test_prompt_accuracy_is_any_of_n():
    # prompts: c0 (one of two correct) -> 1, c1 -> 0, p0 -> 0, s0..s5 -> 1: 7 of 9
    assert prompt_accuracy(RECORDS) == pytest.approx(7 / 9, abs=1e-12)
    as_geneval = [{"tag": r["tag"], "correct": r["correct"], "metadata": json.dumps({"p": r["prompt_id"]})} for r in RECORDS]
    assert prompt_accuracy(as_geneval) == pytest.approx(7 / 9, abs=1e-12)
    with pytest.raises(ConfigError, match="prompt_id"):
        prompt_accuracy([{"tag": "colors", "correct": True}])


def test_bad_records():
    with pytest.raises(ConfigError, match="no records"):
        geneval_scores([])
    with pytest.raises(ConfigError, match="record 0"):
        geneval_scores([{"correct": True}])


def test_published_rows_overall_is_mean_of_six():
    rows = list(csv.DictReader((ROOT / "leaderboards/published/geneval.csv").open()))
    assert {r["method"] for r in rows} >= {"Omni-Video", "SDv1.5", "DALL-E 3", "JanusFlow"}
    for row in rows:
        assert row["source"]
        mean = overall_score({t: float(row[t]) for t in GENEVAL_TAGS})
        assert abs(mean - float(row["overall"])) <= 0.005 + 1e-9, row["method"]
    omni = next(r for r in rows if r["method"] == "Omni-Video")
    assert overall_score({t: float(omni[t]) for t in GENEVAL_TAGS}) == pytest.approx(0.75, abs=1e-9)


class _Detector:
    """Finds one bench when the image's first pixel is bright, nothing otherwise."""

    detector_id = "test"

    def detect(self, image):
        return {"bench": [Detection(np.array([0.0, 0.0, 4.0, 4.0]), 0.9, None)]} if image[0, 0, 0] > 0 else {}


def test_metric_state_merges_and_matches_functional_form():
    docs = [{"tag": "single_object", "include": [{"class": "bench", "count": 1}], "prompt": f"p{i}"} for i in range(3)]
    docs.append({"tag": "counting", "include": [{"class": "bench", "count": 2}], "prompt": "two"})
    bright, dark = np.full((8, 8, 3), 255, np.uint8), np.zeros((8, 8, 3), np.uint8)
    items = [MetricInput(f"{d['prompt']}/{s}", bright if (i + s) % 3 == 0 else dark, doc=d)
             for i, d in enumerate(docs) for s in range(2)]
    whole, part_a, part_b = GenEval(), GenEval(), GenEval()
    for m in (whole, part_a, part_b):
        m.detector = _Detector()
    contributions = whole.contributions(items)
    for c in contributions:
        whole.fold(c)
    for c in contributions[:3]:
        part_a.fold(c)
    for c in contributions[3:]:
        part_b.fold(c)
    part_a.merge(part_b)
    expected = geneval_scores(contributions)
    expected.update(prompt_accuracy=prompt_accuracy(contributions), image_accuracy=image_accuracy(contributions))
    assert whole.compute() == pytest.approx(expected, abs=1e-12)
    assert part_a.compute() == pytest.approx(expected, abs=1e-12)
    # bright when (doc + sample) % 3 == 0: p0/0, p2/1 (single_object: 2 of 6) and two/0 (counting needs 2 benches)
    assert expected["single_object"] == pytest.approx(2 / 6) and expected["counting"] == 0.0
    assert expected["overall"] == pytest.approx(1 / 6) and expected["prompt_accuracy"] == pytest.approx(2 / 4)
    assert list(whole.compute())[:2] == ["single_object", "counting"]
    whole.reset()
    assert whole.compute() == {}
