"""Images stored *inside* dataset records (hub ``datasets.Image`` columns: Emu Edit, GEdit-Bench, ImgEdit).

A record value is in-record media when it is ``{"bytes": ..., "path": ...}`` (``datasets.Image(decode=False)``)
or a ``PIL.Image``.  :func:`materialise` writes it once to a content-addressed file
``$OMNIEVAL_CACHE_DIR/media/<ab>/<sha256>.<ext>`` (default ``~/.cache/omnieval``) and puts that absolute path in
the doc, so input media, references and metrics see an ordinary image file.  The doc's content hash uses
``"sha256:<hex>"`` instead -- stable across runs and machines (``str(PIL.Image)`` holds a memory address).

Encoded bytes are kept as they are (a JPEG stays that JPEG: decoding it later gives the pixels the reference's
``PIL.Image.open`` gives); the hash is of those bytes.  A decoded ``PIL.Image`` is hashed by mode, size and raw
pixels and stored losslessly as PNG.
"""
from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path
from typing import Any

from omnieval.errors import MediaError

_MAGIC = ((b"\x89PNG", ".png"), (b"\xff\xd8", ".jpg"), (b"GIF8", ".gif"), (b"BM", ".bmp"))


def cache_dir() -> Path:
    return Path(os.environ.get("OMNIEVAL_CACHE_DIR", Path.home() / ".cache" / "omnieval")) / "media"


def is_inline(value: Any) -> bool:
    if isinstance(value, dict) and set(value) >= {"bytes", "path"} and len(value) <= 3:
        return True
    return type(value).__module__.startswith("PIL.") and hasattr(value, "tobytes") and hasattr(value, "mode")


def _encoded(value: Any, where: str) -> tuple[bytes, str, str]:
    """(bytes to store, file suffix, sha256 hex that identifies the content)."""
    if isinstance(value, dict):
        data = value.get("bytes")
        if data is None and value.get("path") and Path(value["path"]).is_file():
            data = Path(value["path"]).read_bytes()
        if not data:
            raise MediaError(f"{where}: in-record image has neither bytes nor a readable path ({value.get('path')!r})")
        suffix = next((s for magic, s in _MAGIC if data.startswith(magic)), None)
        if suffix is None and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            suffix = ".webp"
        if suffix is None:
            raise MediaError(f"{where}: in-record image bytes are not PNG/JPEG/GIF/BMP/WEBP")
        return data, suffix, hashlib.sha256(data).hexdigest()
    image = value
    digest = hashlib.sha256(f"{image.mode}:{image.size}:".encode() + image.tobytes()).hexdigest()
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue(), ".png", digest


def materialise(value: Any, where: str) -> tuple[str, str]:
    """(absolute path of the cached file, ``"sha256:<hex>"`` for the doc hash)."""
    data, suffix, digest = _encoded(value, where)
    target = cache_dir() / digest[:2] / f"{digest}{suffix}"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{digest}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    return str(target), f"sha256:{digest}"


def materialise_row(row: dict, where: str) -> tuple[dict, dict]:
    """(the row with in-record images replaced by cache paths, the row's hashable form)."""
    fields, hashed = dict(row), dict(row)
    for key, value in row.items():
        if is_inline(value):
            fields[key], hashed[key] = materialise(value, f"{where} field {key!r}")
    return fields, hashed
