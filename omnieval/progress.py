"""Progress of long loops, for terminals and for log files (Slurm, nohup, CI).

:func:`progress` returns a reporter used like tqdm (``update(n)``, ``close()``, or as a context manager):

* on a terminal (the stream is a TTY): a tqdm bar;
* otherwise: one log line every ``interval`` seconds (default 60, env ``OMNIEVAL_PROGRESS_INTERVAL``; ``0`` logs
  every update) with items done / total, percentage, rate and ETA, and a final line when closed, e.g.::

      omnieval: generate vbench: 120/4730 items (2.5%), 0.52 items/s, elapsed 0:03:50, ETA 2:27:44
      omnieval: generate vbench: done, 4730/4730 items in 2:31:34 (0.52 items/s)

  A line is written only from ``update``/``close`` (no thread), so a loop whose single item takes longer than
  the interval logs after that item.  Rate and ETA use the average since the reporter was made (items counted
  in ``initial``, e.g. resumed work, are not part of the rate).
* ``enabled=False``: a reporter that does nothing.

``unit="B"`` formats sizes in KB/MB/GB (powers of 1000) for downloads.
"""
from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from typing import TextIO

from omnieval.errors import ConfigError

INTERVAL_ENV = "OMNIEVAL_PROGRESS_INTERVAL"
DEFAULT_INTERVAL = 60.0


def log_interval() -> float:
    """Seconds between log lines: ``$OMNIEVAL_PROGRESS_INTERVAL`` (a number >= 0) or 60."""
    text = os.environ.get(INTERVAL_ENV, "").strip()
    if not text:
        return DEFAULT_INTERVAL
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"environment variable {INTERVAL_ENV}={text!r}: expected a number of seconds >= 0")
    return value


def format_duration(seconds: float) -> str:
    """``H:MM:SS`` (hours unbounded)."""
    s = round(max(seconds, 0.0))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def format_amount(n: float, unit: str) -> str:
    if unit != "B":
        return f"{n:g}" if n != int(n) else str(int(n))
    for scale, name in ((1e9, "GB"), (1e6, "MB"), (1e3, "KB")):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {name}"
    return f"{int(n)} B"


class NullProgress:
    """Does nothing (progress disabled)."""

    n = 0

    def update(self, n: int = 1) -> None: ...

    def close(self) -> None: ...

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LogProgress:
    """Periodic log lines (see the module docstring).  ``clock`` is injectable for tests."""

    def __init__(self, total: int | None, desc: str, *, unit: str = "item", interval: float | None = None,
                 stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic, initial: int = 0):
        self.total, self.desc, self.unit = total, desc, unit
        self.interval = log_interval() if interval is None else interval
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.n = self.initial = initial
        self.start = self.last = clock()
        self.closed = False

    # -- formatting -------------------------------------------------------------------------------
    def _units(self) -> str:
        return self.unit if self.unit == "B" else f"{self.unit}s"

    def _count(self) -> str:
        done = format_amount(self.n, self.unit)
        if self.total is None:
            return f"{done} {self._units()}" if self.unit != "B" else done
        total = format_amount(self.total, self.unit)
        pct = f" ({100.0 * self.n / self.total:.1f}%)" if self.total else ""
        return (f"{done}/{total} {self._units()}" if self.unit != "B" else f"{done}/{total}") + pct

    def _rate(self, elapsed: float) -> float | None:
        done = self.n - self.initial
        return done / elapsed if elapsed > 0 and done > 0 else None

    def _rate_text(self, rate: float | None) -> str:
        if rate is None:
            return f"? {self._units()}/s"
        if self.unit == "B":
            return f"{format_amount(rate, 'B')}/s"
        return f"{rate:.3g} {self._units()}/s"

    def line(self, now: float) -> str:
        elapsed = now - self.start
        rate = self._rate(elapsed)
        eta = "?"
        if self.total is not None and rate:
            eta = format_duration(max(self.total - self.n, 0) / rate)
        return (f"omnieval: {self.desc}: {self._count()}, {self._rate_text(rate)}, "
                f"elapsed {format_duration(elapsed)}, ETA {eta}")

    def _write(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    # -- tqdm-like API ----------------------------------------------------------------------------
    def update(self, n: int = 1) -> None:
        self.n += n
        now = self.clock()
        if now - self.last >= self.interval:
            self.last = now
            self._write(self.line(now))

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        now = self.clock()
        elapsed = now - self.start
        finished = self.total is None or self.n >= self.total
        state = "done" if finished else "stopped at"
        self._write(f"omnieval: {self.desc}: {state} {self._count()} in {format_duration(elapsed)} "
                    f"({self._rate_text(self._rate(elapsed))})")

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress(total: int | None, desc: str, *, unit: str = "item", enabled: bool = True, stream: TextIO | None = None,
             initial: int = 0, leave: bool = False):
    """A tqdm bar when ``stream`` (default stderr) is a terminal, else a :class:`LogProgress`; a
    :class:`NullProgress` when not ``enabled``."""
    if not enabled:
        return NullProgress()
    stream = stream if stream is not None else sys.stderr
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        from tqdm.auto import tqdm

        scale = {"unit_scale": True, "unit_divisor": 1000} if unit == "B" else {}
        return tqdm(total=total, desc=desc, unit=unit, initial=initial, leave=leave, file=stream, **scale)
    return LogProgress(total, desc, unit=unit, stream=stream, initial=initial)
