"""Writes to the output folder under a full disk and their file modes (issue 14 §7.10)."""
from __future__ import annotations

import errno
import os
import stat

import harness_fixtures as hf
import numpy as np
import pytest

from omnieval import media
from omnieval import store as store_module
from omnieval.cli import main
from omnieval.errors import OmniEvalError
from omnieval.store import JsonlLog, atomic_write_text

ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class DiskFull:
    """Stands in for the ``os`` module: ``write`` accepts ``room`` more bytes in all, then fails with ENOSPC
    (a full disk accepts part of a write, then refuses)."""

    def __init__(self, room: int):
        self.room = room

    def __getattr__(self, name):
        return getattr(os, name)

    def write(self, fd, data):
        if self.room <= 0:
            raise ENOSPC
        n = min(len(data), self.room)
        self.room -= n
        return os.write(fd, bytes(data[:n]))


def _leftovers(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if ".tmp" in p.name)


def test_disk_full_while_appending_a_record_keeps_the_file_intact(tmp_path, monkeypatch):
    log = JsonlLog(tmp_path / "s.jsonl", own=True)
    log.append({"key": "a", "value": 1})
    before = log.path.read_bytes()
    monkeypatch.setattr(store_module, "os", DiskFull(room=7))
    with pytest.raises(OmniEvalError, match=r"^cannot write .*s\.jsonl: No space left on device$"):
        log.append({"key": "b", "value": 2})
    monkeypatch.undo()
    assert log.path.read_bytes() == before  # the partial line was cut off again
    assert "b" not in log
    log.append({"key": "b", "value": 2})
    assert [r for r in JsonlLog(log.path).records] == ["a", "b"]


def test_disk_full_while_replacing_a_file_leaves_the_old_one_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    target.write_text("old\n")
    monkeypatch.setattr(store_module, "os", DiskFull(room=3))
    with pytest.raises(OmniEvalError, match=r"^cannot write .*results\.json: No space left on device$"):
        atomic_write_text(target, "new content\n")
    monkeypatch.undo()
    assert target.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_disk_full_during_a_run_is_one_line_and_leaves_no_temporary_file(tmp_path, capsys, monkeypatch):
    """Before: a traceback, and ``artifacts/<ab>/.<key>.tmp<pid>.png`` stayed behind."""
    tasks = hf.write_tasks(tmp_path / "tasks")
    original = media.write_image

    def half_then_full(image, path):
        original(image, path)
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
        raise ENOSPC

    monkeypatch.setattr(media, "write_image", half_then_full)
    monkeypatch.setattr(store_module, "write_image", half_then_full, raising=False)
    out = tmp_path / "out"
    rc = main(["run", "--model", "fake-test", "--tasks", "h_t2i", "--output_path", str(out), "--include_path", str(tasks)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("omnieval: error: cannot write ") and "artifacts" in err and err.strip().endswith(
        ".png: No space left on device"), err
    assert _leftovers(out) == []


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_output_files_follow_the_umask(tmp_path, umask, mode):
    """Before: results.json and run_config.json were 0600 (mkstemp) whatever the umask."""
    tasks = hf.write_tasks(tmp_path / "tasks")
    out = tmp_path / "out"
    old = os.umask(umask)
    try:
        assert main(["run", "--model", "fake-test", "--tasks", "h_t2i,h_t2v", "--output_path", str(out),
                     "--include_path", str(tasks)]) == 0
    finally:
        os.umask(old)
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {"results.json", "run_config.json"} <= {p.name for p in files}
    modes = {str(p.relative_to(out)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
    assert set(modes.values()) == {oct(mode)}, modes


def test_artifacts_written_from_memory_round_trip(tmp_path):
    s = store_module.Store(tmp_path / "o")
    rec = s.save_generation("t", {"key": "ab12"}, np.full((4, 5, 3), 7, np.uint8))
    assert rec["artifact"] == "artifacts/ab/ab12.png"
    np.testing.assert_array_equal(s.load_output(rec), np.full((4, 5, 3), 7, np.uint8))
    assert _leftovers(tmp_path) == []
