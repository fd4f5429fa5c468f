"""Resumable HTTP(S) downloads with sha256 verification, and safe archive unpacking.

Conventions:

* a download is written to ``<dest>.part`` and renamed to ``<dest>`` only when complete and verified, so a
  present ``<dest>`` is always whole;
* an existing ``.part`` is continued with an HTTP ``Range: bytes=N-`` request. A ``206`` whose
  ``Content-Range`` starts at N is appended; a ``200`` means the server ignored the range: the part is
  truncated and the file restarts from byte 0 (said in one log line). A connection that closes before
  ``Content-Length`` bytes arrived is retried (again with a range) up to ``attempts`` times;
* with an expected sha256 a mismatch deletes the part and raises :class:`DownloadError` in one line; without
  one the computed digest is returned so the caller can report it;
* archives (zip, tar, tar.gz/bz2/xz) are unpacked member by member after checking every member: absolute
  paths, ``..`` components, links (symbolic or hard) that leave the destination, and device/fifo members are
  refused with a one-line error naming the member, before anything is written.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import stat
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from omnieval.errors import OmniEvalError
from omnieval.progress import progress

USER_AGENT = "omnieval-weights/1"
CHUNK = 1 << 20


class DownloadError(OmniEvalError):
    """A download or unpacking failed (one line: what, from where, why)."""


def sha256_of(path: Path, chunk: int = CHUNK) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _content_range_start(value: str | None) -> int | None:
    """``bytes 100-199/200`` -> 100."""
    if not value or not value.startswith("bytes "):
        return None
    span = value[len("bytes "):].split("/", 1)[0]
    try:
        return int(span.split("-", 1)[0])
    except ValueError:
        return None


def _total_from_range(value: str | None) -> int | None:
    """``bytes */200`` or ``bytes 0-9/200`` -> 200 (None when unknown)."""
    if not value or "/" not in value:
        return None
    tail = value.rsplit("/", 1)[1]
    return int(tail) if tail.isdigit() else None


def _fetch_once(url: str, part: Path, *, label: str, log: Callable[[str], None], timeout: float,
                show_progress: bool) -> bool:
    """One HTTP request continuing ``part``.  True when the part is complete (as far as the server tells)."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: complete if the server's size matches ours
            total = _total_from_range(exc.headers.get("Content-Range"))
            if total == have:
                return True
            log(f"{label}: server refused to resume at byte {have}; restarting from 0")
            part.unlink()
            return False
        raise DownloadError(f"{label}: HTTP {exc.code} {exc.reason} from {url}") from None
    with response:
        status = response.status
        length = response.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        if have and status == 206:
            start = _content_range_start(response.headers.get("Content-Range"))
            if start != have:
                log(f"{label}: server resumed at byte {start}, not {have}; restarting from 0")
                part.unlink()
                return False
            mode, total = "ab", (have + length if length is not None else None)
        elif status == 200:
            if have:
                log(f"{label}: server ignored the Range request; restarting from 0 ({have} bytes discarded)")
            mode, have, total = "wb", 0, length
        else:
            raise DownloadError(f"{label}: unexpected HTTP {status} from {url}")
        bar = progress(total, label, unit="B", initial=have, enabled=show_progress)
        received = 0
        try:
            with open(part, mode) as f:
                while True:
                    try:
                        block = response.read(CHUNK)
                    except (http.client.IncompleteRead, ConnectionError, TimeoutError, OSError) as exc:
                        log(f"{label}: connection lost after {have + received} bytes ({type(exc).__name__}); will resume")
                        return False
                    if not block:
                        break
                    f.write(block)
                    received += len(block)
                    bar.update(len(block))
        finally:
            bar.close()
    if length is not None and received < length:
        log(f"{label}: connection closed after {have + received} of {total} bytes; will resume")
        return False
    return True


def download(url: str, dest: Path, *, sha256: str | None = None, label: str | None = None,
             log: Callable[[str], None] = print, attempts: int = 5, backoff: float = 2.0,
             timeout: float = 60.0, show_progress: bool = True) -> str:
    """Fetch ``url`` to ``dest`` (resumable through ``dest.part``, see the module docstring); return its sha256."""
    label = label or dest.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if part.exists() and part.stat().st_size:
        log(f"{label}: resuming {part} at byte {part.stat().st_size}")
    reason = "connection lost"
    for attempt in range(1, attempts + 1):
        try:
            complete = _fetch_once(url, part, label=label, log=log, timeout=timeout, show_progress=show_progress)
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as exc:
            reason = str(getattr(exc, "reason", exc))
            log(f"{label}: request failed ({reason}); attempt {attempt}/{attempts}")
            complete = False
        if complete:
            break
        if attempt < attempts:
            time.sleep(backoff * attempt)
    else:
        resume = f"; re-run to resume from {part}" if part.exists() and part.stat().st_size else ""
        raise DownloadError(f"{label}: download from {url} did not complete after {attempts} attempts "
                            f"(last: {reason}){resume}")
    actual = sha256_of(part)
    if sha256 and actual != sha256.lower():
        part.unlink()
        raise DownloadError(f"{label}: sha256 mismatch for {url}: got {actual}, expected {sha256}; "
                            f"the downloaded file was deleted")
    os.replace(part, dest)
    return actual


# ---------------------------------------------------------------------------------------------
# Archives
# ---------------------------------------------------------------------------------------------
def _safe_relpath(name: str, archive: Path) -> PurePosixPath:
    """A member name as a relative path that stays inside the destination, or a one-line error."""
    norm = name.replace("\\", "/")
    path = PurePosixPath(norm)
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        raise DownloadError(f"{archive.name}: refusing absolute member path {name!r}")
    if ".." in path.parts:
        raise DownloadError(f"{archive.name}: refusing member {name!r} (a '..' component leaves the destination)")
    return path


def _check_link(member: str, target: str, archive: Path) -> None:
    """A link inside the archive must point inside the destination (relative to the link's folder)."""
    if target.startswith("/") or (len(target) > 1 and target[1] == ":"):
        raise DownloadError(f"{archive.name}: refusing link {member!r} -> absolute path {target!r}")
    depth = 0
    for part in (PurePosixPath(member).parent / target).parts:
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            raise DownloadError(f"{archive.name}: refusing link {member!r} -> {target!r} (points outside the archive)")


def _zip_members(zf: zipfile.ZipFile, archive: Path) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    out = []
    for info in zf.infolist():
        rel = _safe_relpath(info.filename, archive)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise DownloadError(f"{archive.name}: refusing symbolic link member {info.filename!r}")
        out.append((info, rel))
    return out


def _tar_members(tf: tarfile.TarFile, archive: Path) -> list[tuple[tarfile.TarInfo, PurePosixPath]]:
    out = []
    for info in tf.getmembers():
        rel = _safe_relpath(info.name, archive)
        if info.issym():
            _check_link(info.name, info.linkname, archive)
        elif info.islnk():
            _check_link("", _safe_relpath(info.linkname, archive).as_posix(), archive)
        elif not (info.isfile() or info.isdir()):
            raise DownloadError(f"{archive.name}: refusing special member {info.name!r} (device, fifo or unknown type)")
        out.append((info, rel))
    return out


def archive_format(path: Path, declared: str | None = None) -> str:
    """``zip`` or ``tar`` (any compression), from ``declared`` or the file's content."""
    if declared in ("zip", "tar"):
        return declared
    if declared and declared.startswith("tar"):
        return "tar"
    if zipfile.is_zipfile(path):
        return "zip"
    if tarfile.is_tarfile(path):
        return "tar"
    raise DownloadError(f"{path.name}: not a zip or tar archive")


def extract(archive: Path, dest: Path, fmt: str | None = None) -> None:
    """Unpack ``archive`` into ``dest`` (created), refusing unsafe members (see the module docstring).  All
    members are checked before the first one is written."""
    fmt = archive_format(archive, fmt)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    try:
        if fmt == "zip":
            with zipfile.ZipFile(archive) as zf:
                for info, rel in _zip_members(zf, archive):
                    target = root / rel
                    if info.is_dir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out, CHUNK)
        else:
            with tarfile.open(archive, "r:*") as tf:
                members = _tar_members(tf, archive)
                kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tf.extractall(root, members=[m for m, _ in members], **kwargs)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
        raise DownloadError(f"{archive.name}: damaged archive ({exc})") from None
