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


def load_docs(cfg: TaskConfig, override: str | None = None, *, fixture: bool = False) -> list[Doc]:
    """Read the task's docs through its loader (:mod:`omnieval.loaders`).  ``override`` replaces
    ``dataset.path`` (``--dataset TASK=PATH``; a relative override is relative to the working directory);
    ``fixture`` reads the task's bundled fixture (``dataset.fixture``, relative to the task file) instead, with every
    ``${VAR}`` of ``media_root`` meaning the fixture's folder (``--fixtures``).

    Records are filtered by ``dataset.where``; in-record images are cached as files and hashed by their bytes
    (:mod:`omnieval.loaders.inline`); ids, options and media files follow :mod:`omnieval.loaders.records`."""
    from omnieval.loaders import expand, load
    from omnieval.loaders.inline import materialise_row
    from omnieval.loaders.records import doc_id as make_id

    spec = cfg.dataset
    path_text, base_dir, fixture_dir = override or spec.path, Path.cwd() if override else cfg.base_dir(), None
    if fixture:
        if not spec.fixture:
            raise ConfigError(f"task {cfg.task}: has no bundled fixture (dataset.fixture); run it without --fixtures")
        path_text, base_dir = spec.fixture, cfg.base_dir()
        local = base_dir / spec.fixture
        if not local.exists():
            raise ConfigError(f"task {cfg.task}: dataset file not found: {local} (dataset.fixture)")
        fixture_dir = local if local.is_dir() else local.parent
    media_root = None
    if spec.media_root:  # an unset variable is reported before the data is read
        hint = spec.download or "set it to the folder holding the media"
        root = Path(expand(spec.media_root, cfg.task, "media_root", hint, fixture_dir=fixture_dir))
        media_root = root if root.is_absolute() else cfg.base_dir() / root
    list_fields = (cfg.fields.choices,) if isinstance(cfg.fields.choices, str) else ()
    loaded = load(cfg.task, spec, path_text, base_dir, list_fields=list_fields)
    if media_root is not None and not media_root.is_dir():
        raise ConfigError(f"task {cfg.task}: media folder not found: {media_root}" + (f"; {spec.download}" if spec.download else ""))
    media_root = media_root or loaded.media_root
    docs, seen = [], set()
    for index, row in enumerate(loaded.rows):
        if not isinstance(row, dict):
            raise ConfigError(f"task {cfg.task}: record {index} of {path_text} is not a mapping")
        if any(row.get(k) != v for k, v in spec.where.items()):
            continue
        row, content = materialise_row(row, f"task {cfg.task}: record {index}")
        if media_root is not None:
            row["__media_root__"] = str(media_root)
        doc_id = make_id(cfg, row, index, path_text)
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
    value = row.get(key) if isinstance(key, str) else None  # (several fields of one option each: any value)
    if value is not None and not isinstance(value, (list, tuple, dict)):
        raise ConfigError(f"task {cfg.task}: {where}: field {key!r} (the choices) must be a list of options or a "
                          f"{{letter: text}} mapping, got {type(value).__name__} {short(value)}")
