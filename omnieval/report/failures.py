"""What the report counts as a failed item, read from the store's records (never from logs).

Generation (one per work item, :data:`GENERATION_RULES` in order, the first that applies):

* ``model error``: the item's generation raised: its failure record (``DIR/failures/``, :mod:`omnieval.failures`),
  passed in place of the missing generation record, carries the ``error`` text;
* ``no output``: the item has no generation record (the model failed on it, or the run has not reached it);
* ``output missing``: the record's media file is missing (the store will redo the item).  The report does not
  re-hash media (a VBench run holds thousands of large videos); ``omnieval run``/``score`` verify checksums, and a
  damaged file shows as a media error on its card.

Scoring (per metric that applies to the item, :data:`SCORE_RULES` in order, the first that applies):

* ``metric error`` (recorded): the metric raised on the item: no score record, a failure record with the error;
* ``not scored``: no score record for the item and the metric's current options (and no failure record);
* ``retry``: the contribution is marked :data:`~omnieval.metrics.base.RETRY` (a transient failure, e.g. a judge
  outage; folded as a failure and scored again by the next run), with its reason;
* ``metric error``: a field ``failed`` or ``<name>_failed`` is true (e.g. ``judge_failed``), or a field ``error`` or
  ``<name>_error`` holds text; the detail is the error text.

A benchmark's own notion of failure (GenEval's ``correct: false``, a wrong multiple-choice answer) is a score, not
a failure of the run, and is not listed here.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from omnieval.metrics.base import RETRY


@dataclass(frozen=True)
class Failure:
    kind: str
    detail: str
    metric: str = ""  # result label of the metric; "" for generation failures


def _model_error(record: dict | None, present: bool) -> Failure | None:
    if record is not None and record.get("error"):
        return Failure("model error", str(record["error"]))
    return None


def _no_output(record: dict | None, present: bool) -> Failure | None:
    if record is None:
        return Failure("no output", "no generation record: the model failed on this item or the run has not reached it")
    return None


def _output_missing(record: dict | None, present: bool) -> Failure | None:
    if record is not None and not present:
        return Failure("output missing", f"{record.get('artifact')}: file missing")
    return None


GENERATION_RULES: tuple[Callable[[dict | None, bool], Failure | None], ...] = (_model_error, _no_output, _output_missing)


def generation_failure(record: dict | None, present: bool) -> Failure | None:
    """``record``: the item's generation record as stored (or None); ``present``: its media file is present."""
    for rule in GENERATION_RULES:
        found = rule(record, present)
        if found:
            return found
    return None


def _retry(c: dict[str, Any]) -> str | None:
    return str(c[RETRY]) if RETRY in c else None


def _flagged(c: dict[str, Any]) -> str | None:
    for key, value in c.items():
        if (key == "failed" or key.endswith("_failed")) and isinstance(value, (bool, int, float)) and value:
            prefix = key[: -len("failed")]
            return str(c.get(f"{prefix}error") or c.get("error") or f"{key} = {value}")
    for key, value in c.items():
        if (key == "error" or key.endswith("_error")) and isinstance(value, str) and value.strip():
            return value
    return None


SCORE_RULES: tuple[tuple[str, Callable[[dict[str, Any]], str | None]], ...] = (("retry", _retry), ("metric error", _flagged))


def score_failures(label: str, contribution: dict[str, Any] | None, failed: dict[str, Any] | None = None) -> list[Failure]:
    """``contribution``: the stored one (or None); ``failed``: the score's failure record, if the metric raised."""
    if contribution is None and failed is not None and failed.get("error"):
        return [Failure("metric error", str(failed["error"]), label)]
    if contribution is None:
        return [Failure("not scored", "no score record for the metric's current options", label)]
    for kind, rule in SCORE_RULES:
        detail = rule(contribution)
        if detail is not None:
            return [Failure(kind, detail, label)]
    return []
