"""Per-item failures: an exception of a model or metric on one item is recorded and the run goes on.

* What fails fast instead: configuration mistakes, missing or unsafe weights and a failing output folder (disk
  full: :class:`~omnieval.store.StorageError`) (:data:`FATAL`), which would fail on every item the same way; they
  stop the command with their one-line error as before.  Everything else an item
  raises (bad media, a model or metric exception, CUDA out of memory on one long video) is a failure of that item.
* A failure is a record in ``DIR/failures/<task>[.rank<r>].jsonl`` keyed like the work it replaces (the item key
  for generation, the score key for a metric): stage, item id, metric label, the error (type and message, one line)
  and a traceback digest (the last frames, and a short hash of them that groups identical failures).
* A failed item is never scored as 0: its work is skipped by later runs (a stored output or score wins over a failure
  record), it is left out of every value, and ``results.json`` counts it per task (``failures``).
  ``--retry-failed`` runs the failed work again.  (A metric's own transient-failure marker,
  :data:`~omnieval.metrics.base.RETRY`, is different: such scores are redone on every run.)
* ``--max-failures N|FRACTION`` stops the command when a task's unresolved failures on this process exceed ``N``
  (an integer) or ``FRACTION`` (a number with a decimal point, 0 to 1) of its work units (generations plus
  ``(item, metric)`` scores).  It is checked at each new failure, counting the failures earlier runs left standing,
  so a resumed run finishes the remaining work until the next failure.  Default :data:`DEFAULT_MAX_FAILURES` = 1%: a run of fewer than 100 units stops at
  the first failure (what a smoke or debugging run wants), a day-long cluster run survives a handful of bad items
  and reports them, and a systematic error (every item failing) stops after about 1% of the work instead of
  burning the allocation.
"""
from __future__ import annotations

import hashlib
import math
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from omnieval.errors import (
    CapabilityError,
    ConfigError,
    MissingWeightsError,
    OmniEvalError,
    UnknownNameError,
)
from omnieval.safe_pickle import UnsafePickleError
from omnieval.store import StorageError

#: errors that are the same for every item (configuration, weights, a full disk): they stop the command instead
FATAL: tuple[type[BaseException], ...] = (ConfigError, UnknownNameError, MissingWeightsError, CapabilityError,
                                          UnsafePickleError, StorageError)
DEFAULT_MAX_FAILURES = "0.01"
#: item ids kept in results.json per task (``first``)
FIRST_N = 5
_MAX_ERROR_CHARS = 1000


def is_fatal(exc: BaseException) -> bool:
    """Whether ``exc`` must stop the command rather than fail one item (also anything not an ``Exception``)."""
    return isinstance(exc, FATAL) or not isinstance(exc, Exception)


def failure_record(key: str, *, stage: str, item: str, exc: BaseException, metric: str | None = None) -> dict[str, Any]:
    """The stored record of one failure (``stage``: ``generate`` or ``score``)."""
    frames = traceback.extract_tb(exc.__traceback__)[-6:]
    where = [f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in frames]
    digest = hashlib.sha256("|".join(f"{f.filename}:{f.name}" for f in frames).encode()).hexdigest()[:12]
    message = " ".join(str(exc).split())[:_MAX_ERROR_CHARS]
    return {"key": key, "stage": stage, "item": item, "metric": metric, "error": f"{type(exc).__name__}: {message}",
            "traceback": where, "digest": digest, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def describe(record: dict) -> str:
    """One line: item, stage (and metric), error."""
    what = record.get("stage", "?") + (f" {record['metric']}" if record.get("metric") else "")
    return f"{record.get('item')} ({what}): {record.get('error')}"


@dataclass(frozen=True)
class FailureLimit:
    """``--max-failures``: an absolute count (``int``) or a fraction of a task's work units (``float``)."""

    text: str
    value: float
    fraction: bool

    @classmethod
    def parse(cls, text: str | float) -> FailureLimit:
        raw = str(text).strip()
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        fraction = "." in raw or "e" in raw.lower()
        if not math.isfinite(value) or value < 0 or (fraction and value > 1) or (not fraction and value != int(value)):
            raise ConfigError(f"--max-failures: expected a count (e.g. 10) or a fraction between 0 and 1 "
                              f"(e.g. 0.01), got {raw!r}")
        return cls(raw, value, fraction)

    def allowed(self, units: int) -> int:
        return math.floor(self.value * units + 1e-9) if self.fraction else int(self.value)


@dataclass
class FailureTracker:
    """Unresolved failures of one task on this process; :meth:`add` raises once there are more than allowed."""

    task: str
    limit: FailureLimit
    units: int
    save: Callable[[dict], None]
    open: dict[str, dict] = field(default_factory=dict)

    def add(self, record: dict) -> None:
        self.save(record)
        self.open[record["key"]] = record
        allowed = self.limit.allowed(self.units)
        if len(self.open) > allowed:
            raise TooManyFailures(
                f"task {self.task}: {len(self.open)} failed of {self.units} work units on this process, more than "
                f"--max-failures {self.limit.text} allows ({allowed}); latest: {describe(record)}; fix the cause and "
                f"re-run with --retry-failed (failures are listed in results.json)")
        print(f"omnieval: warning: failed, skipped and recorded ({len(self.open)} of {allowed} allowed in task "
              f"{self.task}): {describe(record)}", file=sys.stderr)

    def resolve(self, key: str) -> None:
        self.open.pop(key, None)

    def note(self, record: dict) -> None:
        """A failure of an earlier run that is still unresolved (counted, not saved again)."""
        self.open[record["key"]] = record


class TooManyFailures(OmniEvalError):
    """More failures than ``--max-failures`` allows."""
