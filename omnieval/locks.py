"""Locks on an output folder: one process per shard, and one aggregator at a time.

``DIR/locks/rank<r>.lock``
    held (``flock``, exclusive) by the process working on shard ``r`` for as long as it runs; the file holds the
    holder's description (pid, host, rank, world size, command, start time) so a refused process names it.  A
    second process for the same shard is refused, and so is a process whose world size differs from a live
    holder's (its shards would overlap theirs).  A lock of a dead process is released by the kernel: nothing
    stale is left to clean up (the file stays, unlocked, and is reused).
``DIR/locks/results.lock``
    taken briefly (blocking) around reading the store and writing ``results.json``, so ranks that finish at the same
    time aggregate one after the other and the last one sees every record.

``flock`` locks are per open file: they also work between threads of one process and, on Linux, across NFS
(emulated with byte-range locks).  On a file system without locking the folder is used unlocked, with a warning.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Self

from omnieval.errors import OmniEvalError

LOCK_DIR = "locks"
#: how long a contended rank lock is retried before giving up: another process probing it holds it for
#: microseconds (see :func:`_live_holders`)
ACQUIRE_RETRY_S = 1.0
_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


class FolderInUseError(OmniEvalError):
    """Another process holds the output folder (or this shard of it)."""


def _holder_text(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or "pid" not in info:
        return "an unidentified process"
    return (f"pid {info.get('pid')} on host {info.get('host')} (rank {info.get('rank')} of {info.get('world_size')}, "
            f"`omnieval {info.get('command')}` since {info.get('started')})")


def _try_lock(fd: int, kind: int) -> bool:
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


class FolderLock:
    """The rank lock of one process on one output folder (a context manager; re-entering is a no-op)."""

    def __init__(self, root: str | os.PathLike, rank: int = 0, world_size: int = 1, command: str = "run"):
        self.root = Path(root)
        self.rank, self.world_size, self.command = rank, world_size, command
        self.path = self.root / LOCK_DIR / f"rank{rank}.lock"
        self._fd: int | None = None
        self._depth = 0

    def __enter__(self) -> Self:
        if self._depth == 0:
            self._acquire()
        self._depth += 1
        return self

    def __exit__(self, *exc) -> None:
        self._depth -= 1
        if self._depth == 0:
            self.release()

    def _acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)  # minus the umask, like every output file
        try:
            deadline = time.monotonic() + ACQUIRE_RETRY_S
            while not _try_lock(fd, fcntl.LOCK_EX):
                if time.monotonic() > deadline:
                    raise FolderInUseError(f"output folder {self.root} is in use: shard {self.rank} is held by "
                                           f"{_holder_text(self.path)}; wait for it to finish or use another --output_path")
                time.sleep(0.02)
        except OSError as exc:
            os.close(fd)
            if exc.errno in _UNSUPPORTED:
                print(f"omnieval: warning: {self.root} does not support file locks ({exc.strerror}); two processes on "
                      f"this folder would not be refused", file=sys.stderr)
                return
            raise
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        info = {"pid": os.getpid(), "host": socket.gethostname(), "rank": self.rank, "world_size": self.world_size,
                "command": self.command, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        data = (json.dumps(info) + "\n").encode()
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
        try:
            self._check_world_size()
        except BaseException:
            self.release()
            raise

    def _check_world_size(self) -> None:
        """Refuse if a live holder of another shard splits the run differently.  A holder writes its description
        right after locking, so a description that disagrees is read again for a moment before it counts."""
        deadline = time.monotonic() + ACQUIRE_RETRY_S
        while True:
            clash = [(path, info) for path, info in _live_holders(self.path.parent, skip=self.path)
                     if info.get("world_size") != self.world_size]
            if not clash or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if clash:
            path, info = clash[0]
            raise FolderInUseError(
                f"output folder {self.root} is in use by {_holder_text(path)}, a run split into "
                f"{info.get('world_size')} shards; this process is shard {self.rank} of {self.world_size} (the shards "
                f"would overlap); wait for it to finish or use another --output_path")

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _live_holders(folder: Path, skip: Path) -> Iterator[tuple[Path, dict]]:
    """Rank lock files of ``folder`` that a live process holds, with their holder info."""
    for path in sorted(folder.glob("rank*.lock")):
        if path == skip:
            continue
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            if _try_lock(fd, fcntl.LOCK_SH):  # nobody holds it: a finished or dead process's file
                fcntl.flock(fd, fcntl.LOCK_UN)
                continue
            try:
                info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
            except ValueError:
                info = {}
        except OSError:
            continue
        finally:
            os.close(fd)
        if isinstance(info, dict):
            yield path, info


@contextlib.contextmanager
def results_lock(root: str | os.PathLike) -> Iterator[None]:
    """Exclusive (blocking) lock around aggregating the store into ``results.json``."""
    path = Path(root) / LOCK_DIR / "results.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # minus the umask, like every output file
    locked = False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            locked = True
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED:
                raise
        yield
    finally:
        if locked:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
