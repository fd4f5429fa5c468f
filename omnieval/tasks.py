"""Task registry (YAML files under ``tasks/``) and doc loading.

Task files are found in the repository's ``tasks/`` folder, in folders listed in ``$OMNIEVAL_TASKS_PATH``
(``os.pathsep``-separated) and in ``--include_path`` folders.  A name on the command line is a task or a
group (every task listing it under ``group``).
"""
from __future__ import annotations

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
            if "fixtures" in path.relative_to(folder).parts[:-1]:  # bundled data in official layouts (V2VBench config.yaml)
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
    """Read the task's docs through its loader (:mod:`omnieval.loaders`).  ``override`` replaces
    ``dataset.path`` (``--dataset TASK=PATH``; a relative override is relative to the working directory).

    In-record images are cached as files and hashed by their bytes (:mod:`omnieval.loaders.inline`)."""
    from omnieval.loaders import expand, load
    from omnieval.loaders.inline import materialise_row

    spec = cfg.dataset
    path_text = override or spec.path
    base_dir = Path.cwd() if override else cfg.base_dir()
    loaded = load(cfg.task, spec, path_text, base_dir, list_fields=(cfg.fields.choices,) if cfg.fields.choices else ())
    media_root = loaded.media_root
    if spec.media_root:
        root = Path(expand(spec.media_root, cfg.task, "media_root"))
        media_root = root if root.is_absolute() else cfg.base_dir() / root
    docs, seen = [], set()
    for index, row in enumerate(loaded.rows):
        if not isinstance(row, dict):
            raise ConfigError(f"task {cfg.task}: record {index} of {path_text} is not a mapping")
        if any(row.get(k) != v for k, v in spec.where.items()):
            continue
        row, content = materialise_row(row, f"task {cfg.task}: record {index}")
        if media_root is not None:
            row["__media_root__"] = str(media_root)
        doc_id = str(row[cfg.fields.id]) if cfg.fields.id and cfg.fields.id in row else str(index)
        if doc_id in seen:
            raise ConfigError(f"task {cfg.task}: duplicate doc id {doc_id!r} in {path_text}")
        seen.add(doc_id)
        _check_choices(cfg, row, f"doc {doc_id} of {path_text}")
        docs.append(Doc(doc_id, row, stable_hash(content)))
    return docs


def _check_choices(cfg: TaskConfig, row: dict, where: str) -> None:
    """The choices field holds a list of options or a ``{letter: text}`` mapping (a string would be split into
    characters when the prompt is rendered and fail, if at all, only when scoring)."""
    from omnieval.loaders.files import short

    key = cfg.fields.choices
    value = row.get(key) if key else None
    if value is not None and not isinstance(value, (list, tuple, dict)):
        raise ConfigError(f"task {cfg.task}: {where}: field {key!r} (the choices) must be a list of options or a "
                          f"{{letter: text}} mapping, got {type(value).__name__} {short(value)}")


def resolve_media_path(doc: Doc, value: str, template: str = "{}") -> Path:
    p = Path(template.format(value))
    if not p.is_absolute() and "__media_root__" in doc.fields:
        p = Path(doc.fields["__media_root__"]) / p
    return p
