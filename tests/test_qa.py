"""Multiple-choice extraction, mcq_accuracy and exact_match.

Parity references (exact equality, tolerance 0 for letters; 1e-9 for means):
* lmms-eval 0.7.3 ``tasks/_task_utils/mcq_extract.py`` on the table rows marked ``lmms_agrees``;
* torchmetrics 1.9.0 ``squad`` ``exact_match`` (SQuAD normalisation, max over targets, x100).
"""
from __future__ import annotations

import importlib.util
import json
import math
import sys
import types
import warnings
from pathlib import Path

import pytest

from omnieval.errors import ConfigError, OmniEvalError
from omnieval.metrics.base import MetricInput
from omnieval.metrics.qa import (
    ExactMatch,
    MCQAccuracy,
    exact_match,
    extract_choice,
    normalize_answer,
    option_map,
    resolve_target,
)
from omnieval.registry import get_metric

TABLE = [json.loads(line) for line in (Path(__file__).parent / "data" / "qa_responses.jsonl").read_text(encoding="utf-8").splitlines()]
CHOICES = ["a man riding a bicycle", "a woman cooking pasta", "a dog catching a frisbee", "two children playing chess"]


def test_table_is_large_and_varied():
    assert len(TABLE) >= 40
    assert {row["expected"] for row in TABLE} >= {"A", "B", "C", "D", None}
    assert any(isinstance(row["choices"], dict) for row in TABLE)


@pytest.mark.parametrize("row", TABLE, ids=[row["note"] for row in TABLE])
def test_extract_choice_table(row):
    assert extract_choice(row["response"], row["choices"]) == row["expected"]


@pytest.mark.parametrize(
    "response, expected",
    [
        (None, None),
        ("Plan B", "B"),  # letter at the end
        ("A is wrong; so is B. D", "A"),  # start outranks end (lmms-eval priority)
        ("Not (A); the later (C) wins", "C"),  # last occurrence of the best format
        ("A, B or C", None),
        ("A/C", None),
        ("I choose B", "B"),
        ("A. cat\nB. dog", None),  # only an echo of the options
    ],
)
def test_extract_choice_rules(response, expected):
    assert extract_choice(response, CHOICES) == expected


def test_choices_forms():
    assert option_map(["x", "y"]) == {"A": "x", "B": "y"}
    assert option_map({"a": "x", "B": "y"}) == {"A": "x", "B": "y"}
    assert list(option_map(None)) == list("ABCDEFGH")
    assert extract_choice("G", None) == "G"
    assert extract_choice("E", ["p", "q", "r", "s", "t"]) == "E"
    with pytest.raises(ConfigError):
        option_map({"AB": "x"})
    with pytest.raises(ConfigError):
        option_map("ABCD")


def _lmms_extractor():
    spec = importlib.util.find_spec("lmms_eval")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("lmms-eval not installed (pip install --no-deps lmms-eval)")
    path = Path(next(iter(spec.submodule_search_locations))) / "tasks" / "_task_utils" / "mcq_extract.py"
    module_spec = importlib.util.spec_from_file_location("lmms_mcq_extract", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)  # a single dependency-free file; the package itself is heavy
    return module.extract_mcq_answer


@pytest.mark.slow
def test_agrees_with_lmms_eval_where_expected():
    """Equal letters (tolerance 0) to lmms-eval's extract_mcq_answer on the agreeing rows; documented divergences differ."""
    reference = _lmms_extractor()
    agree = [row for row in TABLE if row["lmms_agrees"]]
    differ = [row for row in TABLE if not row["lmms_agrees"]]
    assert len(agree) >= 25
    for row in agree:
        letters = list(option_map(row["choices"]))
        assert extract_choice(row["response"], row["choices"]) == (reference(row["response"], letters) or None), row["note"]
    # the divergences are real: lmms-eval gives another answer on every one of them
    for row in differ:
        letters = list(option_map(row["choices"]))
        assert (reference(row["response"], letters) or None) != row["expected"], row["note"]


# -- mcq_accuracy -------------------------------------------------------------------------------
def _mcq_items(responses, target="C", choices=CHOICES):
    return [MetricInput(item_id=f"q{i}", output=r, reference=target, doc={"choices": choices}) for i, r in enumerate(responses)]


def test_mcq_accuracy_counts_empty_and_unparsed_as_wrong():
    metric = get_metric("mcq_accuracy")()
    assert isinstance(metric, MCQAccuracy)
    responses = ["C", "(C) a dog", "", None, "I cannot tell", "A"]
    contributions = metric.contributions(_mcq_items(responses))
    assert [c["parsed"] for c in contributions] == ["C", "C", "", "", "", "A"]
    assert all(c["target"] == "C" for c in contributions)
    for c in contributions:
        metric.fold(c)
    values = metric.compute()
    assert values["mcq_accuracy"] == pytest.approx(100.0 * 2 / 6)  # denominator: all 6 questions
    assert values["unparsed_rate"] == pytest.approx(3 / 6)
    assert not metric.is_higher_better("unparsed_rate")


def test_mcq_accuracy_merge_equals_single_pass_and_fraction_option():
    responses = ["C", "B", "", "c.", "The answer is C", "A or C", "a dog catching a frisbee"]
    whole = MCQAccuracy(percent=False)
    whole.update(_mcq_items(responses))
    left, right = MCQAccuracy(percent=False), MCQAccuracy(percent=False)
    left.update(_mcq_items(responses[:3]))
    right.update(_mcq_items(responses[3:]))
    left.merge(right)
    assert left.compute() == pytest.approx(whole.compute())
    assert whole.compute()["mcq_accuracy"] == pytest.approx(4 / 7)


def test_mcq_targets_and_text_matching_option():
    letters = option_map(CHOICES)
    assert resolve_target("(C)", letters, "x") == "C"
    assert resolve_target(2, letters, "x") == "C"
    assert resolve_target("A dog catching a frisbee.", letters, "x") == "C"
    with pytest.raises(ConfigError, match="item x"):
        resolve_target("a cat", letters, "x")
    letters_only = MCQAccuracy(match_option_text=False)
    assert letters_only.contributions(_mcq_items(["a dog catching a frisbee"]))[0]["parsed"] == ""
    assert MCQAccuracy().contributions(_mcq_items(["a dog catching a frisbee"]))[0]["parsed"] == "C"


def test_mcq_bad_input_names_item():
    with pytest.raises(OmniEvalError, match="q0"):
        MCQAccuracy().contributions([MetricInput(item_id="q0", output="A", reference="A", doc={})])
    with pytest.raises(OmniEvalError, match="q1"):
        MCQAccuracy().contributions([MetricInput(item_id="q1", output=[1, 2], reference="A", doc={"choices": CHOICES})])
    with pytest.raises(OmniEvalError, match="unknown key"):
        MCQAccuracy(choice_key="x")


# -- exact_match --------------------------------------------------------------------------------
EM_CASES = [
    ("The Eiffel Tower.", "eiffel tower"),
    ("an apple", ["apple", "pear"]),
    ("Two", ["2", "two"]),
    ("U.S.A", "usa"),
    ("blue-green", "blue green"),
    ("", "yes"),
    ("Yes, it is.", "yes"),
    ("  New   York ", "new york"),
    ("café", "cafe"),
    ("A dog", ["the dog", "a cat"]),
]


def test_normalize_answer_conventions():
    assert normalize_answer("  The  U.S. Army, an Ally! ") == "us army ally"
    assert normalize_answer("The Cat", lowercase=False, strip_articles=False) == "The Cat"
    assert exact_match("The cat.", ["a dog", "cat"])
    assert not exact_match("cats", "cat")


def test_exact_match_metric():
    metric = get_metric("exact_match")()
    assert isinstance(metric, ExactMatch)
    items = [MetricInput(item_id=f"e{i}", output=o, reference=t) for i, (o, t) in enumerate(EM_CASES)]
    metric.update(items)
    assert metric.compute()["exact_match"] == pytest.approx(100.0 * 6 / 10)
    with pytest.raises(ConfigError, match="e9"):
        metric.contributions([MetricInput(item_id="e9", output="x", reference="the")])
    with pytest.raises(ConfigError, match="e8"):
        metric.contributions([MetricInput(item_id="e8", output="x", reference=None)])


def _torchmetrics_squad():
    """torchmetrics' ``squad``; loaded from its file when torchmetrics is not imported yet.

    ``import torchmetrics`` costs 6-30 s here; the squad module needs only torch and ``rank_zero_warn``,
    so a stand-in ``torchmetrics.utilities`` (warnings.warn) is put in ``sys.modules`` just for the load.
    """
    if "torchmetrics" in sys.modules:
        return importlib.import_module("torchmetrics.functional.text.squad").squad
    spec = importlib.util.find_spec("torchmetrics")  # a core dependency: its absence is a failure, not a skip
    assert spec is not None and spec.submodule_search_locations, "torchmetrics is not installed"
    path = Path(next(iter(spec.submodule_search_locations))) / "functional" / "text" / "squad.py"
    utilities = types.ModuleType("torchmetrics.utilities")
    utilities.rank_zero_warn = warnings.warn
    package = types.ModuleType("torchmetrics")
    package.utilities = utilities
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, "torchmetrics", package)
        mp.setitem(sys.modules, "torchmetrics.utilities", utilities)
        module_spec = importlib.util.spec_from_file_location("torchmetrics_squad_reference", path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    return module.squad


@pytest.mark.slow
def test_exact_match_equals_torchmetrics_squad():
    """Equals torchmetrics.functional.text.squad ``exact_match`` (percent) within 1e-9 on the same answers."""
    squad = _torchmetrics_squad()
    preds = [{"prediction_text": o, "id": str(i)} for i, (o, _) in enumerate(EM_CASES)]
    target = [{"answers": {"answer_start": [0], "text": [t] if isinstance(t, str) else t}, "id": str(i)} for i, (_, t) in enumerate(EM_CASES)]
    reference = float(squad(preds, target)["exact_match"])
    metric = ExactMatch()
    metric.update([MetricInput(item_id=str(i), output=o, reference=t) for i, (o, t) in enumerate(EM_CASES)])
    assert math.isclose(metric.compute()["exact_match"], reference, abs_tol=1e-9)
