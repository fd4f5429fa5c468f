"""``file``: a local ``.jsonl`` / ``.json`` / ``.csv`` file, or a folder of media (one doc per file)."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from omnieval.errors import ConfigError


def looks_local(text: str) -> bool:
    return text.startswith((".", "/", "~", "$")) or Path(text).suffix in {".jsonl", ".json", ".csv", ".yaml"}


def read(ctx):
    from omnieval.loaders import Loaded

    local = ctx.local
    if not local.exists():
        raise ConfigError(f"task {ctx.task}: dataset file not found: {local}")
    return Loaded(read_local(local, ctx.task, ctx.list_fields), local if local.is_dir() else local.parent)


def read_local(path: Path, task: str, list_fields: tuple[str, ...] = ()) -> list[dict]:
    """Rows of a local ``.jsonl``/``.json``/``.csv`` file (a UTF-8 byte order mark is skipped), or one row per
    file of a folder.  CSV cells of ``list_fields`` (the choices) hold JSON: ``["yes", "no"]`` or
    ``{"A": "yes", "B": "no"}``; an empty cell means none."""
    if path.is_dir():
        # a folder of media: one doc per file, id = file stem, prompt = stem (VBench-style names)
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        return [{"id": p.stem, "prompt": p.stem, "media": p.name} for p in files]
    try:
        text = path.read_text(encoding="utf-8-sig")  # Excel and Notepad start UTF-8 files with a BOM
    except UnicodeDecodeError as exc:
        raise ConfigError(f"task {task}: {path} is not UTF-8 text") from exc
    if path.suffix == ".jsonl":
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"task {task}: {path}:{n}: invalid JSON ({exc.msg})") from exc
        return rows
    if path.suffix == ".json":
        data = read_json(path, task)
        rows = data.get("data", [data]) if isinstance(data, dict) else data
        if not isinstance(rows, list):
            raise ConfigError(f"task {task}: {path}: expected a list of records (or {{\"data\": [...]}}), "
                              f"got {type(rows).__name__}")
        return rows
    if path.suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        rows = []
        for row in reader:
            if None in row or None in row.values():  # more / fewer cells than the header has
                raise ConfigError(f"task {task}: {path}:{reader.line_num}: expected {len(reader.fieldnames or [])} "
                                  f"comma-separated fields as in the header")
            for key in list_fields:
                if key in row:
                    row[key] = _json_cell(row[key], f"task {task}: {path}:{reader.line_num}: field {key!r} (the choices)")
            rows.append(row)
        return rows
    raise ConfigError(f"task {task}: unsupported dataset file type {path.suffix!r} ({path})")


def _json_cell(text: str, where: str) -> list | dict | None:
    """A CSV cell holding a JSON list or mapping (``""`` -> None)."""
    if not text.strip():
        return None
    if not text.lstrip().startswith(("[", "{")):
        raise ConfigError(f"{where} must be a JSON list such as [\"yes\", \"no\"] (or a {{letter: text}} mapping), "
                          f"got {short(text)}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where} is not valid JSON ({exc.msg}): {short(text)}") from exc


def short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_json(path: Path, task: str):
    """Parsed JSON of a file, or a one-line error naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"task {task}: {path} is not UTF-8 text") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"task {task}: {path}: invalid JSON ({exc.msg})") from exc


def _loader():
    from omnieval.loaders import Loader

    return Loader(read, needs="give a .jsonl/.json/.csv file or a folder of media as dataset.path")


LOADER = _loader()
