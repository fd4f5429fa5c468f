"""Readers of benchmarks' official release layouts (``dataset.format`` in a task YAML).

Most tasks read a plain ``.jsonl``/``.json``/``.csv`` file or a hub dataset (:mod:`omnieval.tasks`).  A benchmark
whose official release is something else -- MSR-VTT's ``test_videodatainfo.json`` (videos and 20 captions each),
T2I-ReasonBench's prompt file joined with its question/criterion file, WISE's three category files -- names a
*format*; the reader turns the release into one record per doc.  Every choice a reader makes (which caption of
a video, which dimensions) is an entry of ``dataset.options``, so it is validated, hashed into the task's
generation hash and written into results.

A reader is ``read(source: Source) -> list[dict]``.  Where the files are missing it raises one
:class:`~omnieval.errors.ConfigError` line naming what to download and where to put it (``Source.missing``).
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omnieval.errors import ConfigError, UnknownNameError

#: format name -> "module:function", imported only when a task uses it
FORMATS = {
    "msrvtt": "omnieval.formats.msrvtt:read",
    "t2i_reasonbench": "omnieval.formats.t2i_reasonbench:read",
    "wise": "omnieval.formats.wise:read",
}


@dataclass(frozen=True)
class Source:
    """What a reader gets: the dataset path as written (``text``; environment variables not yet expanded), the
    folder relative paths are resolved against, the task name (for messages) and ``dataset.options``."""

    text: str
    base_dir: Path
    task: str
    options: dict = field(default_factory=dict)
    revision: str | None = None
    split: str = "test"
    name: str | None = None

    def local(self, hint: str, *, must_exist: bool = True) -> Path | None:
        """The dataset path as a local path (``$VAR`` expanded, relative to the task file).  Missing: a one-line
        error naming the task, the path and ``hint`` (what to download and where), or None with
        ``must_exist=False``."""
        expanded = os.path.expanduser(os.path.expandvars(self.text))
        unset = "$" in expanded
        path = Path(expanded)
        if not path.is_absolute():
            path = self.base_dir / path
        if not unset and path.exists():
            return path
        if not must_exist:
            return None
        where = f"{self.text} (environment variable not set)" if unset else str(path)
        raise ConfigError(f"task {self.task}: dataset not found: {where}; {hint} "
                          f"(or pass --dataset {self.task}=PATH)")

    def option(self, key: str, default: Any, allowed: tuple | None = None) -> Any:
        value = self.options.get(key, default)
        if allowed is not None and value not in allowed:
            raise ConfigError(f"task {self.task}: dataset.options.{key}={value!r} is not one of "
                              f"{', '.join(map(repr, allowed))}")
        return value

    def check_options(self, allowed: tuple[str, ...]) -> None:
        unknown = sorted(set(self.options) - set(allowed))
        if unknown:
            raise ConfigError(f"task {self.task}: unknown dataset.options {', '.join(unknown)}; "
                              f"allowed: {', '.join(allowed) or '(none)'}")


def read(fmt: str, source: Source) -> list[dict]:
    if fmt not in FORMATS:
        raise UnknownNameError("dataset format", fmt, sorted(FORMATS))
    module, func = FORMATS[fmt].split(":")
    return getattr(importlib.import_module(module), func)(source)


def load_json(path: Path, task: str) -> Any:
    """A JSON file, or a one-line error naming it."""
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"task {task}: file not found: {path}") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"task {task}: {path}: not valid JSON ({exc})") from None
