"""Task registry (YAML files under ``tasks/``) and doc loading.

Task files are found in the repository's ``tasks/`` folder, in folders listed in ``$OMNIEVAL_TASKS_PATH``
(``os.pathsep``-separated) and in ``--include_path`` folders.  A name on the command line is a task or a
group (every task listing it under ``group``).
"""
from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omnieval.config import TaskConfig, load_task_file, stable_hash
from omnieval.errors import ConfigError, UnknownNameError

REPO_TASKS_DIR = Path(__file__).resolve().parent.parent / "tasks"


def task_dirs(include: tuple[str, ...] = ()) -> list[Path]:
    dirs = [REPO_TASKS_DIR]
    dirs += [Path(p) for p in os.environ.get("OMNIEVAL_TASKS_PATH", "").split(os.pathsep) if p]
    dirs += [Path(p) for p in include]
    return [d for d in dirs if d.is_dir()]


def _index(include: tuple[str, ...]) -> dict[str, TaskConfig]:
    tasks: dict[str, TaskConfig] = {}
    for folder in task_dirs(include):
        for path in sorted(folder.rglob("*.yaml")):
            if path.name.startswith("_"):  # shared parts for `include:`, not tasks
                continue
            for cfg in load_task_file(path):
                if cfg.task in tasks and tasks[cfg.task].source_file != cfg.source_file:
                    raise ConfigError(f"{path}: task {cfg.task!r} is already defined in {tasks[cfg.task].source_file}")
                tasks[cfg.task] = cfg
    return tasks


def all_tasks(include: tuple[str, ...] = ()) -> dict[str, TaskConfig]:
    return _index(tuple(include))


def groups(include: tuple[str, ...] = (), tasks: dict[str, TaskConfig] | None = None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for cfg in (tasks if tasks is not None else all_tasks(include)).values():
        for g in cfg.group:
            out.setdefault(g, []).append(cfg.task)
    return out


def resolve_tasks(names: list[str] | tuple[str, ...], include: tuple[str, ...] = ()) -> list[TaskConfig]:
    """Task and group names -> task configs (groups expanded, order kept, duplicates dropped)."""
    tasks = all_tasks(include)
    grp = groups(tasks=tasks)
    out: dict[str, TaskConfig] = {}
    for name in names:
        if name in tasks:
            out[name] = tasks[name]
        elif name in grp:
            for t in grp[name]:
                out[t] = tasks[t]
        else:
            raise UnknownNameError("task", name, sorted(set(tasks) | set(grp)))
    return list(out.values())


# ---------------------------------------------------------------------------------------------
# Docs
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Doc:
    """One dataset record with a stable id and its content hash (part of every work item's address)."""

    id: str
    fields: dict[str, Any]
    content_hash: str

    def get(self, key: str | None, default: Any = None) -> Any:
        return default if key is None else self.fields.get(key, default)


def load_docs(cfg: TaskConfig, override: str | None = None) -> list[Doc]:
    """Read the task's docs.  ``override`` replaces ``dataset.path`` (``--dataset TASK=PATH``)."""
    spec = cfg.dataset
    path_text = override or spec.path
    local = Path(path_text) if Path(path_text).is_absolute() else cfg.base_dir() / path_text
    if override and not Path(override).is_absolute():
        local = Path(override)
    root_text = _expand(spec.media_root, cfg.task) if spec.media_root else None
    if spec.format:  # an official release layout (omnieval.formats); the reader resolves the path itself
        from omnieval import formats

        rows = formats.read(spec.format, formats.Source(path_text, Path.cwd() if override else cfg.base_dir(), cfg.task,
                                                        dict(spec.options), spec.revision, spec.split, spec.name))
        media_root = Path(root_text) if root_text else None
        if root_text and not Path(root_text).is_absolute():
            media_root = cfg.base_dir() / root_text
    elif local.exists():
        rows = _read_local(local, cfg.task)
        media_root = Path(root_text) if root_text else (local if local.is_dir() else local.parent)
        if root_text and not Path(root_text).is_absolute():
            media_root = cfg.base_dir() / root_text
    elif _looks_local(path_text):
        raise ConfigError(f"task {cfg.task}: dataset file not found: {local}")
    else:
        rows = _read_hub(spec, path_text, cfg.task)
        media_root = Path(root_text) if root_text else None
    docs, seen = [], set()
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ConfigError(f"task {cfg.task}: record {index} of {path_text} is not a mapping")
        row = dict(row)
        if media_root is not None:
            row["__media_root__"] = str(media_root)
        doc_id = str(row[cfg.fields.id]) if cfg.fields.id and cfg.fields.id in row else str(index)
        if doc_id in seen:
            raise ConfigError(f"task {cfg.task}: duplicate doc id {doc_id!r} in {path_text}")
        seen.add(doc_id)
        content = {k: v for k, v in row.items() if k != "__media_root__"}
        docs.append(Doc(doc_id, row, stable_hash(content)))
    return docs


def _expand(text: str, task: str) -> str:
    """Expand ``$VAR``/``${VAR}`` (media folders live in different places on every cluster)."""
    expanded = os.path.expanduser(os.path.expandvars(text))
    if "$" in expanded:
        raise ConfigError(f"task {task}: dataset.media_root {text!r} needs an environment variable that is not set")
    return expanded


def _looks_local(text: str) -> bool:
    return text.startswith((".", "/", "~")) or Path(text).suffix in {".jsonl", ".json", ".csv", ".yaml"}


def _read_local(path: Path, task: str) -> list[dict]:
    if path.is_dir():
        # a folder of media: one doc per file, id = file stem, prompt = stem (VBench-style names)
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        return [{"id": p.stem, "prompt": p.stem, "media": p.name} for p in files]
    try:
        text = path.read_text(encoding="utf-8")
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
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"task {task}: {path}: invalid JSON ({exc.msg})") from exc
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
            rows.append(row)
        return rows
    raise ConfigError(f"task {task}: unsupported dataset file type {path.suffix!r} ({path})")


def _read_hub(spec, path: str, task: str) -> list[dict]:
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover
        raise ConfigError(f"task {task}: the `datasets` package is needed for hub dataset {path}") from exc
    try:
        ds = datasets.load_dataset(path, spec.name, revision=spec.revision, split=spec.split)
    except Exception as exc:  # noqa: BLE001 - datasets raises many types; all mean "not available"
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"task {task}: cannot load dataset {path!r} (revision {spec.revision}, split {spec.split}): {first}") from exc
    return [dict(r) for r in ds]


def resolve_media_path(doc: Doc, value: str, template: str = "{}") -> Path:
    p = Path(template.format(value))
    if not p.is_absolute() and "__media_root__" in doc.fields:
        p = Path(doc.fields["__media_root__"]) / p
    return p
