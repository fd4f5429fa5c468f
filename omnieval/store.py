"""Artifact store: content-addressed media, append-only JSONL records, resumable.

Layout under ``--output_path DIR``::

    DIR/artifacts/<ab>/<key>.png|.mp4     generated media, addressed by the work item's key
    DIR/samples/<task>[.rank<r>].jsonl    one generation record per work item
    DIR/scores/<task>[.rank<r>].jsonl     one record per (work item, metric options)
    DIR/scores/arrays/<ab>/<key>.npz      array parts of metric contributions (features)
    DIR/failures/<task>[.rank<r>].jsonl   work that raised (see :mod:`omnieval.failures`)
    DIR/locks/                            who works on the folder (see :mod:`omnieval.locks`)

Each process appends only to its own record files (``.rank<r>`` under a launcher) and reads everyone's.

Crash safety (SIGKILL at any point):

* media are written to a temporary name and ``os.replace``-d into place, *then* the record is appended; a
  file-backed video that was never decoded (``predictions``) is stored as a copy of its file's bytes (checked
  for short reads by one demuxing pass, never decoded and re-encoded, so memory stays small);
* records are appended as one ``write`` of a full line, flushed and ``fsync``-ed;
* on open, a torn last line (no trailing newline) is cut off, so a re-run appends after the last complete
  record; a damaged complete line elsewhere is skipped with a warning (its item is redone), never cut: in the
  process's own record file it is moved, byte for byte, to ``<file>.damaged`` (appended and fsync'ed before
  the log is atomically rewritten without it), so the warning is given once and nothing is lost;
* a record whose media file is missing or whose checksum differs is ignored and the item is redone.
  Records are keyed, so a duplicate key is never written twice.

Write failures (disk full, quota, read-only file system) raise a one-line :class:`StorageError` naming the file;
the temporary file is removed and a partly appended record line is cut off again.  Files are created with mode
``0666`` minus the umask (``0644`` under the usual ``0022``), like any other file the user writes.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from omnieval.errors import OmniEvalError
from omnieval.media import Video, file_sha256, read_media, write_image, write_video


class StorageError(OmniEvalError):
    """Writing to the output folder failed (disk full, permissions ...); names the file."""


def _storage_error(path: Path, exc: BaseException) -> StorageError:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
    return StorageError(f"cannot write {path}: {reason}")


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written (a full disk may accept part of a write)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _write_new_file(path: Path, data: bytes) -> None:
    """Create ``path`` (mode 0666 minus the umask, unlike mkstemp's 0600), write ``data`` and fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_file(final: Path, write: Callable[[Path], Any]) -> Path:
    """``write(tmp)`` a temporary file next to ``final`` (same suffix, so writers that pick the format by name
    work), then ``os.replace`` it into place.  On any failure the temporary file is removed; an ``OSError`` (disk
    full ...) becomes a one-line :class:`StorageError` naming ``final``."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.stem}.{os.getpid()}-{secrets.token_hex(4)}.tmp{final.suffix}")
    try:
        write(tmp)
        os.replace(tmp, final)
    except OSError as exc:
        raise _storage_error(final, exc) from exc
    finally:
        if tmp.exists():
            tmp.unlink()
    return final


class JsonlLog:
    """An append-only, fsync'ed JSONL file of records with a ``key`` field."""

    def __init__(self, path: Path, own: bool = False):
        """``own``: this process appends to the file, so it may also quarantine damaged lines (other ranks'
        files are only read)."""
        self.path = path
        self.own = own
        self.records: dict[str, dict] = {}
        if path.exists():
            self._load()

    def _load(self) -> None:
        with open(self.path, "rb") as f:
            data = f.read()
        good_end = data.rfind(b"\n") + 1  # bytes after the last newline are a torn tail (a killed append)
        intact, damaged = [], []
        for n, line in enumerate(data[:good_end].split(b"\n")[:-1], 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:  # JSONDecodeError, UnicodeDecodeError
                rec = None
            if not isinstance(rec, dict) or not isinstance(rec.get("key"), str):
                # a damaged complete line (hand edit, disk error): skip it (its item is redone), never truncate
                # the records after it
                where = f"; moved to {self.path.name}.damaged" if self.own else ""
                print(f"omnieval: warning: {self.path}:{n}: skipping a line that is not a JSON record with a key{where}",
                      file=sys.stderr)
                damaged.append(line + b"\n")
                continue
            intact.append(line + b"\n")
            self.records[rec["key"]] = rec
        if damaged and self.own:
            self._quarantine(damaged, b"".join(intact))
            return
        if good_end < len(data) and self.own:  # cut a torn tail so appends start on a clean line (never in another
            # process's file: its tail may be an append in progress, which is simply not read yet)
            with open(self.path, "r+b") as f:
                f.truncate(good_end)
                f.flush()
                os.fsync(f.fileno())

    def _quarantine(self, damaged: list[bytes], intact: bytes) -> None:
        """Append the damaged lines to ``<file>.damaged`` (durably), then atomically replace the log by its
        intact lines (a torn tail is dropped with them).  A crash in between leaves both copies, never neither."""
        with open(self.path.with_name(self.path.name + ".damaged"), "ab") as f:
            f.write(b"".join(damaged))
            f.flush()
            os.fsync(f.fileno())
        atomic_file(self.path, lambda tmp: _write_new_file(tmp, intact))

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def get(self, key: str) -> dict | None:
        return self.records.get(key)

    def append(self, record: dict, replace: bool = False) -> None:
        """Append ``record`` (a key already present is kept, unless ``replace``: then the new line wins, on
        load too, since later lines override earlier ones)."""
        if record["key"] in self.records and not replace:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(record, sort_keys=True, default=_json_default) + "\n").encode()
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        except OSError as exc:
            raise _storage_error(self.path, exc) from exc
        try:
            size = os.fstat(fd).st_size
            _write_all(fd, line)
            os.fsync(fd)
        except OSError as exc:
            try:  # cut a partly written line off again, so the next append starts on a clean line
                os.ftruncate(fd, size)
            except OSError:
                pass  # the torn tail is cut when the file is next opened
            raise _storage_error(self.path, exc) from exc
        finally:
            os.close(fd)
        self.records[record["key"]] = record


def _json_default(obj: Any):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` (UTF-8) atomically: fsync'ed temporary file, then ``os.replace``."""
    data = text.encode("utf-8")
    atomic_file(Path(path), lambda tmp: _write_new_file(tmp, data))


class Store:
    """Generation and score records of one output folder."""

    def __init__(self, root: str | os.PathLike, rank: int = 0, world_size: int = 1):
        self.root = Path(root)
        self.rank, self.world_size = rank, world_size
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".write-test-{os.getpid()}"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise OmniEvalError(f"output folder {self.root} is not writable: {exc.strerror}") from exc
        self._logs_cache: dict[tuple[str, str], list[JsonlLog]] = {}
        self._verified: set[str] = set()  # artifacts whose checksum was checked (or written) by this process

    # -- record files ---------------------------------------------------------------------------
    def _suffix(self) -> str:
        return "" if self.world_size == 1 else f".rank{self.rank}"

    def _logs(self, kind: str, task: str) -> list[JsonlLog]:
        """The record files of ``kind`` (samples, scores, failures) of ``task``: this process's own first."""
        if (kind, task) not in self._logs_cache:
            folder = self.root / kind
            own = folder / f"{task}{self._suffix()}.jsonl"
            shards = sorted(folder.glob(f"{task}.rank*.jsonl")) if folder.exists() else []
            others = [p for p in [folder / f"{task}.jsonl", *shards] if p != own and p.exists()]
            self._logs_cache[kind, task] = [JsonlLog(own, own=True), *(JsonlLog(p) for p in others)]
        return self._logs_cache[kind, task]

    def reload(self, task: str | None = None) -> None:
        """Forget what was read (of ``task``, or of every task), so other processes' new records are seen."""
        for kind_task in [k for k in self._logs_cache if task is None or k[1] == task]:
            del self._logs_cache[kind_task]

    def find(self, kind: str, task: str, key: str) -> dict | None:
        for log in self._logs(kind, task):
            rec = log.get(key)
            if rec is not None:
                return rec
        return None

    # -- failures -------------------------------------------------------------------------------
    def failure(self, task: str, key: str) -> dict | None:
        """The failure record of ``key`` (an item key or a score key), or None."""
        return self.find("failures", task, key)

    def save_failure(self, task: str, record: dict) -> None:
        self._logs("failures", task)[0].append(record, replace=True)

    # -- generations ----------------------------------------------------------------------------
    def generation(self, task: str, key: str) -> dict | None:
        """The finished generation record of ``key``, or None (also when its media are missing/corrupt)."""
        rec = self.find("samples", task, key)
        if rec is None:
            return None
        art = rec.get("artifact")
        if art and art not in self._verified:
            path = self.root / art
            if not path.is_file() or file_sha256(path) != rec.get("artifact_sha256"):
                return None
            self._verified.add(art)
        return rec

    def save_generation(self, task: str, record: dict, output: Any) -> dict:
        """Write media (if any) atomically, then append the record."""
        key = record["key"]
        if isinstance(output, str):
            record = dict(record, response=output, artifact=None)
        else:
            source = output.source_file if isinstance(output, Video) else None
            if source is not None:  # the file's own bytes: no decoding, no re-encoding
                output.verify()
                suffix, write = source.suffix.lower(), lambda tmp: shutil.copyfile(source, tmp)
            elif isinstance(output, Video):
                suffix, write = ".mp4", lambda tmp: write_video(output, tmp)
            else:
                suffix, write = ".png", lambda tmp: write_image(output, tmp)
            rel = (Path("artifacts") / key[:2] / key).with_suffix(suffix)
            target = atomic_file(self.root / rel, write)
            record = dict(record, artifact=str(rel), artifact_sha256=file_sha256(target))
            self._verified.add(record["artifact"])
            if isinstance(output, Video):
                record["fps"] = output.fps
        self._logs("samples", task)[0].append(record)
        return record

    def load_output(self, record: dict):
        """The generated media (image/Video) or text response of a record."""
        if record.get("artifact"):
            media = read_media(self.root / record["artifact"])
            if isinstance(media, Video) and record.get("fps"):
                media.fps = float(record["fps"])
            return media
        return record.get("response", "")

    # -- scores ---------------------------------------------------------------------------------
    def score(self, task: str, key: str) -> dict | None:
        rec = self.find("scores", task, key)
        if rec is None:
            return None
        if rec.get("arrays"):
            path = self.root / rec["arrays"]
            if not path.is_file() or not zipfile.is_zipfile(path):  # missing or damaged: score again
                return None
        return rec

    def save_score(self, task: str, key: str, item_key: str, metric: str, contribution: dict, replace: bool = False,
                   batch: str | None = None) -> None:
        """Store one contribution (array parts as ``.npz``); ``batch``: the hash of the items scored together with
        it (:func:`omnieval.scoring.batch_members`)."""
        scalars = {k: v for k, v in contribution.items() if not isinstance(v, np.ndarray)}
        arrays = {k: v for k, v in contribution.items() if isinstance(v, np.ndarray)}
        record = {"key": key, "item": item_key, "metric": metric, "contribution": scalars, "arrays": None}
        if batch is not None:
            record["batch"] = batch
        if arrays:
            rel = Path("scores") / "arrays" / key[:2] / f"{key}.npz"
            atomic_file(self.root / rel, lambda tmp: np.savez(tmp, **arrays))
            record["arrays"] = str(rel)
        self._logs("scores", task)[0].append(record, replace=replace)

    def load_contribution(self, record: dict) -> dict:
        out = dict(record["contribution"])
        if record.get("arrays"):
            path = self.root / record["arrays"]
            try:
                with np.load(path, allow_pickle=False) as npz:
                    out.update({k: npz[k] for k in npz.files})
            except (OSError, ValueError, zipfile.BadZipFile) as exc:
                raise OmniEvalError(f"score arrays {path} of metric {record.get('metric')} are damaged ({exc}); "
                                    f"delete the file and re-run to score that item again") from exc
        return out
