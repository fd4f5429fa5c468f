"""GenEval summary scores (djghosh13/geneval ``evaluation/summary_scores.py``).

* per tag: the share of correct images of that tag;
* ``overall``: the **unweighted** mean of the per-tag accuracies (macro; the six tags have 80-100
  prompts each, so it is not the image accuracy);
* prompt accuracy: a prompt counts as correct when any of its samples is (GenEval groups images by
  their metadata string; here by ``prompt_id``, falling back to ``metadata``);
* image accuracy: the share of correct images.

Records are dicts like the lines of GenEval's ``results.jsonl``: at least ``tag`` and ``correct``, plus
``prompt_id`` or ``metadata`` for prompt accuracy.  Values are fractions in [0, 1].
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from omnieval.errors import ConfigError

#: GenEval's six tags, in the column order of published tables.
GENEVAL_TAGS: tuple[str, ...] = ("single_object", "two_object", "counting", "colors", "position", "color_attr")


def overall_score(tag_scores: Mapping[str, float]) -> float:
    """Unweighted mean of the per-tag accuracies given (GenEval's "Overall")."""
    if not tag_scores:
        raise ConfigError("geneval: no tag scores to average")
    return sum(tag_scores.values()) / len(tag_scores)


def _records(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    out = list(records)
    if not out:
        raise ConfigError("geneval: no records to summarise")
    for i, rec in enumerate(out):
        if "tag" not in rec or "correct" not in rec:
            raise ConfigError(f"geneval record {i}: needs 'tag' and 'correct', got keys {sorted(rec)}")
    return out


def geneval_scores(per_image_records: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """``{tag: accuracy, ..., "overall": macro mean}`` from per-image records (tags in first-seen order)."""
    counts: dict[str, list[int]] = {}
    for rec in _records(per_image_records):
        c = counts.setdefault(str(rec["tag"]), [0, 0])
        c[0] += 1
        c[1] += int(bool(rec["correct"]))
    scores = {tag: k / n for tag, (n, k) in counts.items()}
    return {**scores, "overall": overall_score(scores)}


def prompt_accuracy(per_image_records: Iterable[Mapping[str, Any]]) -> float:
    """Share of prompts with at least one correct image (key ``prompt_id``, else ``metadata``)."""
    best: dict[str, bool] = {}
    for i, rec in enumerate(_records(per_image_records)):
        key = rec.get("prompt_id", rec.get("metadata"))
        if key is None:
            raise ConfigError(f"geneval record {i}: needs 'prompt_id' or 'metadata' for prompt accuracy")
        best[str(key)] = best.get(str(key), False) or bool(rec["correct"])
    return sum(best.values()) / len(best)


def image_accuracy(per_image_records: Iterable[Mapping[str, Any]]) -> float:
    """Share of correct images over all tags."""
    recs = _records(per_image_records)
    return sum(bool(r["correct"]) for r in recs) / len(recs)
