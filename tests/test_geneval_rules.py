"""GenEval rule engine on given detections.

Expected values are worked out by hand from djghosh13/geneval ``evaluation/evaluate_images.py`` (commit
af4902f): its thresholds, selection order, reason strings and position formula.  Tolerance: exact
(booleans and strings), 1e-12 for relation components.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from omnieval.errors import ConfigError, MediaError
from omnieval.metrics.base import MetricInput
from omnieval.metrics.geneval import GenEval, box_iou, evaluate_detections, evaluate_rules, relative_position, select_detections
from omnieval.metrics.geneval_color import COLORS
from omnieval.metrics.geneval_detector import OBJECT_NAMES, Detection

ROOT = Path(__file__).resolve().parents[1]
IMAGE = np.zeros((64, 64, 3), np.uint8)
DEFAULTS = dict(threshold=0.3, counting_threshold=0.9, max_objects=16, max_overlap=1.0, position_threshold=0.1)


def det(x1, y1, x2, y2, score=0.9, mask=None):
    return Detection(np.array([x1, y1, x2, y2], float), score, mask)


def run(raw, metadata, colors=None, **opts):
    classifier = None if colors is None else _FixedColors(colors)
    rec = evaluate_detections(IMAGE, raw, metadata, color_classifier=classifier, **{**DEFAULTS, **opts})
    return rec["correct"], rec["reason"]


class _FixedColors:
    """Colour classifier stand-in: per class, a fixed list of colours (records the objects it saw)."""

    def __init__(self, colors: dict[str, list[str]]):
        self.colors, self.seen = colors, []

    def classify(self, image, objects, classname):
        self.seen.append((classname, [o.score for o in objects]))
        return self.colors[classname][: len(objects)]


SINGLE = {"tag": "single_object", "include": [{"class": "bench", "count": 1}], "prompt": "a photo of a bench"}
COUNT2 = {"tag": "counting", "include": [{"class": "clock", "count": 2}], "exclude": [{"class": "clock", "count": 3}],
          "prompt": "a photo of two clocks"}


# -- thresholds and selection ------------------------------------------------------------------
def test_score_exactly_at_threshold_is_dropped():
    assert run({"bench": [det(0, 0, 9, 9, 0.3)]}, SINGLE) == (False, "expected bench>=1, found 0")
    assert run({"bench": [det(0, 0, 9, 9, 0.3000001)]}, SINGLE) == (True, "")


def test_counting_uses_counting_threshold():
    clocks = [det(0, 0, 9, 9, 0.95), det(20, 0, 29, 9, 0.85)]
    assert run({"clock": clocks}, COUNT2) == (False, "expected clock>=2, found 1")
    two_object_tag = dict(COUNT2, tag="two_object")  # same clauses, ordinary threshold 0.3
    assert run({"clock": clocks}, two_object_tag) == (True, "")
    assert run({"clock": [det(0, 0, 9, 9, 0.9), det(20, 0, 29, 9, 0.91)]}, COUNT2) == (False, "expected clock>=2, found 1")


def test_exact_count_exceeded_via_exclude():
    clocks = [det(10 * i, 0, 10 * i + 8, 8, 0.95) for i in range(3)]
    assert run({"clock": clocks}, COUNT2) == (False, "expected clock<3, found 3")
    assert run({"clock": clocks[:2]}, COUNT2) == (True, "")


def test_max_objects_caps_each_class_before_exclude():
    many = [det(i, 0, i + 5, 5, 0.5 + i / 100) for i in range(20)]
    meta = {"tag": "single_object", "include": [{"class": "cup", "count": 1}], "exclude": [{"class": "cup", "count": 17}]}
    assert run({"cup": many}, meta) == (True, "")
    meta16 = dict(meta, exclude=[{"class": "cup", "count": 16}])
    assert run({"cup": many}, meta16) == (False, "expected cup<16, found 16")
    assert run({"cup": many}, meta, max_objects=20) == (False, "expected cup<17, found 20")
    kept = select_detections({"cup": many}, threshold=0.3, max_objects=16, max_overlap=1.0)["cup"]
    assert [d.score for d in kept] == sorted((d.score for d in many), reverse=True)[:16]


def test_nms_only_when_max_overlap_below_one():
    boxes = [det(0, 0, 9, 9, 0.9), det(1, 0, 10, 9, 0.8), det(30, 30, 39, 39, 0.7)]
    assert box_iou(boxes[0].box, boxes[1].box) == pytest.approx(90 / 110)
    assert len(select_detections({"cat": boxes}, threshold=0.3, max_objects=16, max_overlap=1.0)["cat"]) == 3
    kept = select_detections({"cat": boxes}, threshold=0.3, max_objects=16, max_overlap=0.8)["cat"]
    assert [d.score for d in kept] == [0.9, 0.7]
    assert select_detections({"cat": [det(0, 0, 1, 1, 0.1)]}, threshold=0.3, max_objects=16, max_overlap=1.0) == {}


def test_include_clauses_are_anded():
    meta = {"tag": "two_object", "include": [{"class": "cat", "count": 1}, {"class": "dog", "count": 1}]}
    assert run({"cat": [det(0, 0, 5, 5)]}, meta) == (False, "expected dog>=1, found 0")
    assert run({}, meta) == (False, "expected cat>=1, found 0\nexpected dog>=1, found 0")
    assert run({"cat": [det(0, 0, 5, 5)], "dog": [det(9, 9, 15, 15)]}, meta) == (True, "")


# -- colours -----------------------------------------------------------------------------------
def test_colour_match_and_mismatch_reason():
    meta = {"tag": "colors", "include": [{"class": "car", "count": 1, "color": "red"}]}
    cars = {"car": [det(0, 0, 9, 9, 0.8)]}
    assert run(cars, meta, colors={"car": ["red"]}) == (True, "")
    assert run(cars, meta, colors={"car": ["blue"]}) == (False, "expected red car>=1, found 0 red; and 1 blue")


def test_colour_checked_on_top_count_detections_only():
    meta = {"tag": "counting", "include": [{"class": "apple", "count": 2, "color": "green"}]}
    apples = [det(0, 0, 5, 5, 0.91), det(10, 0, 15, 5, 0.99), det(20, 0, 25, 5, 0.95)]
    clf = _FixedColors({"apple": ["green", "red", "green"]})
    rec = evaluate_detections(IMAGE, {"apple": apples}, meta, color_classifier=clf, **DEFAULTS)
    assert clf.seen == [("apple", [0.99, 0.95])]
    assert (rec["correct"], rec["reason"]) == (False, "expected green apple>=2, found 1 green; and 1 red, 1 green")


def test_colour_reason_lists_colours_in_published_order():
    classify = lambda name, objs: ["white", "black", "white"]  # noqa: E731
    ok, reason = evaluate_rules({"cup": [det(0, 0, 1, 1)] * 3}, {"include": [{"class": "cup", "count": 3, "color": "red"}]},
                                classify_colors=classify)
    assert not ok and reason == "expected red cup>=3, found 0 red; and 1 black, 2 white"
    assert COLORS.index("black") < COLORS.index("white")


def test_colour_without_classifier_is_a_config_error():
    with pytest.raises(ConfigError, match="colour classifier"):
        evaluate_rules({"car": [det(0, 0, 1, 1)]}, {"include": [{"class": "car", "count": 1, "color": "red"}]})


# -- positions ---------------------------------------------------------------------------------
@pytest.mark.parametrize("box_a,expected", [
    ((0, 20, 10, 30), ("left of",)),
    ((40, 20, 50, 30), ("right of",)),
    ((20, 0, 30, 10), ("above",)),
    ((20, 40, 30, 50), ("below",)),
    ((0, 0, 10, 10), ("left of", "above")),
    ((40, 40, 50, 50), ("right of", "below")),
])
def test_each_relation(box_a, expected):
    assert relative_position(box_a, (20, 20, 30, 30), 0.1) == expected


def test_position_threshold_margin():
    # centres 5 apart on x, sizes 10 + 10: margin 0.1 * 20 = 2 -> shrunk offset 3 -> unit 3/5 = 0.6 > 0.5
    assert relative_position((5, 0, 15, 10), (0, 0, 10, 10), 0.1) == ("right of",)
    # margin 0.2 * 20 = 4 -> 1/5 = 0.2: no relation; margin >= offset -> nothing at all
    assert relative_position((5, 0, 15, 10), (0, 0, 10, 10), 0.2) == ()
    assert relative_position((1, 0, 11, 10), (0, 0, 10, 10), 0.1) == ()
    # exactly 0.5 is not enough (strict): offset (10, 0), sizes 10 + 40 -> margin 5, 5/10 = 0.5
    assert relative_position((25, 0, 35, 10), (0, 0, 40, 10), 0.1) == ()
    # the vertical offset dilutes the unit vector: offset (8, 6), sizes 2 + 2 -> shrunk (7.6, 5.6) / 10
    assert relative_position((9, 7, 11, 9), (1, 1, 3, 3), 0.1) == ("right of", "below")


POSITION = {"tag": "position", "include": [{"class": "teddy bear", "count": 1},
                                           {"class": "dog", "count": 1, "position": ["right of", 0]}],
            "prompt": "a photo of a dog right of a teddy bear"}


def test_position_rule_and_reasons():
    bear = {"teddy bear": [det(0, 0, 10, 10)]}
    assert run({**bear, "dog": [det(30, 0, 40, 10)]}, POSITION) == (True, "")
    assert run({**bear, "dog": [det(0, 30, 10, 40)]}, POSITION) == (False, "expected dog right of target, found below target")
    assert run({**bear, "dog": [det(1, 0, 11, 10)]}, POSITION) == (False, "expected dog right of target, found  target")
    assert run({**bear, "dog": [det(30, 30, 40, 40)]}, dict(POSITION, include=[POSITION["include"][0],
               {"class": "dog", "count": 1, "position": ["above", 0]}])) == (
        False, "expected dog above target, found right of and below target")
    assert run({"dog": [det(30, 0, 40, 10)]}, POSITION) == (
        False, "expected teddy bear>=1, found 0\nno target for dog to be right of")


def test_position_every_object_against_every_target():
    meta = {"tag": "position", "include": [{"class": "cat", "count": 2}, {"class": "dog", "count": 1, "position": ["right of", 0]}]}
    cats = [det(0, 0, 10, 10, 0.9), det(50, 0, 60, 10, 0.8)]
    assert run({"cat": cats, "dog": [det(30, 0, 40, 10)]}, meta) == (False, "expected dog right of target, found left of target")
    assert run({"cat": cats, "dog": [det(80, 0, 90, 10)]}, meta) == (True, "")
    # a third, lower-scored cat is not part of the target group (only the top ``count`` are)
    assert run({"cat": cats + [det(95, 0, 99, 10, 0.5)], "dog": [det(80, 0, 90, 10)]}, meta) == (True, "")


def test_position_skipped_after_colour_failure():
    meta = {"tag": "color_attr", "include": [{"class": "cat", "count": 1},
                                             {"class": "dog", "count": 1, "color": "red", "position": ["right of", 0]}]}
    raw = {"cat": [det(0, 0, 10, 10)], "dog": [det(0, 30, 10, 40)]}
    assert run(raw, meta, colors={"dog": ["brown"]}) == (False, "expected red dog>=1, found 0 red; and 1 brown")


def test_position_target_must_be_an_earlier_clause():
    meta = {"include": [{"class": "dog", "count": 1, "position": ["right of", 0]}]}
    with pytest.raises(ConfigError, match="refers to no earlier include"):
        evaluate_rules({"dog": [det(0, 0, 1, 1)]}, meta)


# -- records and errors ------------------------------------------------------------------------
def test_record_fields_like_results_jsonl():
    rec = evaluate_detections(IMAGE, {"bench": [det(1, 2, 3, 4, 0.5), det(0, 0, 1, 1, 0.1)]}, SINGLE, **DEFAULTS)
    assert set(rec) == {"tag", "prompt", "correct", "reason", "metadata", "details"}
    assert json.loads(rec["metadata"]) == SINGLE
    assert json.loads(rec["details"]) == {"bench": [[1.0, 2.0, 3.0, 4.0, 0.5]]}


def test_mask_of_wrong_shape_is_a_media_error():
    with pytest.raises(MediaError, match="mask"):
        evaluate_detections(IMAGE, {"bench": [det(0, 0, 5, 5, 0.9, np.zeros((8, 8), bool))]}, SINGLE, **DEFAULTS)


class _FixedDetector:
    detector_id = "fixed"

    def __init__(self, raw):
        self.raw = raw

    def detect(self, image):
        return self.raw


def test_metric_contributions_and_errors():
    metric = GenEval()
    metric.detector = _FixedDetector({"bench": [det(0, 0, 5, 5, 0.9)]})
    contrib = metric.contributions([MetricInput("a/0", IMAGE, prompt=SINGLE["prompt"], doc=SINGLE)])
    assert contrib[0]["correct"] is True and contrib[0]["tag"] == "single_object" and contrib[0]["reason"] == ""
    with pytest.raises(ConfigError, match="item a/1"):
        metric.contributions([MetricInput("a/1", IMAGE, doc={"prompt": "x"})])
    with pytest.raises(MediaError, match="item a/2"):
        metric.contributions([MetricInput("a/2", np.zeros((4, 4)), doc=SINGLE)])
    with pytest.raises(ConfigError, match="detector"):
        GenEval(detector="yolo")
    assert GenEval(detector="mmdet").required_weights() == [
        "geneval_mmdet_mask2former_swin_s_config", "geneval_mmdet_mask2former_swin_s", "open_clip-vit-l-14-openai"]
    assert GenEval().required_weights() == list(GenEval.weights)


# -- the prompt metadata file ------------------------------------------------------------------
def test_metadata_file_matches_published_counts():
    lines = (ROOT / "tasks/geneval/evaluation_metadata.jsonl").read_text().splitlines()
    docs = [json.loads(line) for line in lines]
    assert len(docs) == 553
    tags = [d["tag"] for d in docs]
    assert {t: tags.count(t) for t in set(tags)} == {"single_object": 80, "two_object": 99, "counting": 80,
                                                     "colors": 94, "position": 100, "color_attr": 100}
    for d in docs:
        for req in d["include"] + d.get("exclude", []):
            assert req["class"] in OBJECT_NAMES
            assert req.get("color", "red") in COLORS
