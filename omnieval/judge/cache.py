"""On-disk cache of judge replies, so re-scoring never pays for the same judge call twice.

Key: the sha256 of the canonical JSON of the **full request payload** (``model``, ``messages`` including any
base64 images, ``temperature``, ``max_tokens`` and extra fields), so the judge model and every prompt byte are
part of it; the endpoint URL and the API key are not (the same named model behind another URL is the same
judge).  Only replies that were received *and* accepted by the protocol's parser are stored: a failure or an
unparseable / out-of-range reply is asked again next time.

Layout: ``<run output folder>/judge_cache/replies-<host>-<pid>.jsonl``, one JSON line per reply
(``{"key", "model", "content", "reply_model", "time"}``).  Each process appends to its own file (no locking
needed across ranks or hosts sharing a file system); all files of the folder are read on first use, so
replies written by earlier runs and other ranks are found.  A torn last line (a crash mid-write) is skipped.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["JudgeCache", "request_key"]


def request_key(payload: dict[str, Any]) -> str:
    """sha256 of the payload's canonical JSON (sorted keys, no spaces, UTF-8)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class JudgeCache:
    """Thread-safe reply cache in ``folder`` (created on first write)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, Any]] | None = None
        self._own = self.folder / f"replies-{_safe(socket.gethostname())}-{os.getpid()}.jsonl"

    def _load(self) -> dict[str, dict[str, Any]]:
        if self._entries is None:
            entries: dict[str, dict[str, Any]] = {}
            for path in sorted(self.folder.glob("replies-*.jsonl")) if self.folder.is_dir() else []:
                for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a torn line from a crash
                    if isinstance(rec, dict) and isinstance(rec.get("key"), str) and isinstance(rec.get("content"), str):
                        entries[rec["key"]] = rec
            self._entries = entries
        return self._entries

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored record of ``key`` (``content``, ``reply_model``, ...), or None."""
        with self._lock:
            return self._load().get(key)

    def put(self, key: str, model: str, content: str, reply_model: str) -> None:
        rec = {"key": key, "model": model, "content": content, "reply_model": reply_model, "time": round(time.time(), 3)}
        line = json.dumps(rec, ensure_ascii=False) + "\n"
        with self._lock:
            self._load()[key] = rec
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(self._own, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()

    def __len__(self) -> int:
        with self._lock:
            return len(self._load())


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:64] or "host"
