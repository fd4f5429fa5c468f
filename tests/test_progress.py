"""omnieval.progress: tqdm on a terminal, periodic log lines (done/total, rate, ETA) otherwise; fake clock."""
from __future__ import annotations

import io

import pytest

from omnieval.errors import ConfigError
from omnieval.progress import (
    LogProgress,
    NullProgress,
    format_duration,
    log_interval,
    progress,
)


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_log_lines_every_interval_with_rate_and_eta():
    clock, out = Clock(), io.StringIO()
    bar = LogProgress(100, "generate vbench", interval=60, stream=out, clock=clock)
    for _ in range(10):  # 10 items in 50 s: below the interval, nothing yet
        clock.t += 5
        bar.update()
    assert out.getvalue() == ""
    clock.t += 10  # 60 s, 11 items
    bar.update()
    clock.t += 30  # 90 s, 12 items: within the next interval, silent
    bar.update()
    clock.t += 30  # 120 s, 14 items
    bar.update(2)
    lines = out.getvalue().splitlines()
    assert lines == [
        "omnieval: generate vbench: 11/100 items (11.0%), 0.183 items/s, elapsed 0:01:00, ETA 0:08:05",
        "omnieval: generate vbench: 14/100 items (14.0%), 0.117 items/s, elapsed 0:02:00, ETA 0:12:17",
    ]
    bar.n = 100
    clock.t += 3600
    bar.close()
    bar.close()  # idempotent
    assert out.getvalue().splitlines()[-1] == "omnieval: generate vbench: done 100/100 items (100.0%) in 1:02:00 (0.0269 items/s)"
    assert len(out.getvalue().splitlines()) == 3


def test_resumed_items_do_not_count_in_the_rate_and_early_close_says_stopped():
    clock, out = Clock(), io.StringIO()
    with LogProgress(10, "score t2v:clip", interval=0, stream=out, clock=clock, initial=6) as bar:
        clock.t += 4
        bar.update(2)  # interval 0: every update logs
    first, last = out.getvalue().splitlines()
    assert first == "omnieval: score t2v:clip: 8/10 items (80.0%), 0.5 items/s, elapsed 0:00:04, ETA 0:00:04"
    assert last == "omnieval: score t2v:clip: stopped at 8/10 items (80.0%) in 0:00:04 (0.5 items/s)"


def test_bytes_and_unknown_total():
    clock, out = Clock(), io.StringIO()
    bar = LogProgress(None, "i3d", unit="B", interval=1, stream=out, clock=clock)
    clock.t += 2
    bar.update(3_500_000)
    bar.close()
    assert out.getvalue().splitlines() == ["omnieval: i3d: 3.5 MB, 1.8 MB/s, elapsed 0:00:02, ETA ?",
                                           "omnieval: i3d: done 3.5 MB in 0:00:02 (1.8 MB/s)"]
    out = io.StringIO()
    LogProgress(5, "x", interval=1, stream=out, clock=clock).close()  # nothing done: no rate, no division by 0
    assert out.getvalue() == "omnieval: x: stopped at 0/5 items (0.0%) in 0:00:00 (? items/s)\n"


def test_interval_from_environment(monkeypatch):
    monkeypatch.delenv("OMNIEVAL_PROGRESS_INTERVAL", raising=False)
    assert log_interval() == 60.0
    monkeypatch.setenv("OMNIEVAL_PROGRESS_INTERVAL", "2.5")
    assert log_interval() == 2.5 and LogProgress(1, "x", stream=io.StringIO()).interval == 2.5
    for bad in ("soon", "-1", "nan"):
        monkeypatch.setenv("OMNIEVAL_PROGRESS_INTERVAL", bad)
        with pytest.raises(ConfigError, match="OMNIEVAL_PROGRESS_INTERVAL"):
            log_interval()


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_picks_tqdm_on_a_terminal_and_logs_otherwise():
    from tqdm.auto import tqdm

    bar = progress(3, "t", stream=TTY())
    assert isinstance(bar, tqdm)
    bar.update(3)
    bar.close()
    assert isinstance(progress(3, "t", stream=io.StringIO()), LogProgress)
    assert isinstance(progress(3, "t", enabled=False), NullProgress)


def test_format_duration():
    assert format_duration(0) == "0:00:00" and format_duration(59.6) == "0:01:00"
    assert format_duration(90061) == "25:01:01"
