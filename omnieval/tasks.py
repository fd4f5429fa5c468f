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
import re
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


def load_docs(cfg: TaskConfig, override: str | None = None, *, fixture: bool = False) -> list[Doc]:
    """Read the task's docs.  ``override`` replaces ``dataset.path`` (``--dataset TASK=PATH``); ``fixture`` reads the
    task's bundled fixture (``dataset.fixture``) instead, with every ``${VAR}`` of ``media_root`` meaning its folder."""
    spec = cfg.dataset
    env_dir = None
    if fixture:
        if not spec.fixture:
            raise ConfigError(f"task {cfg.task}: has no bundled fixture (dataset.fixture); run it without --fixtures")
        path_text = spec.fixture
        local = cfg.base_dir() / spec.fixture
        env_dir = local if local.is_dir() else local.parent
    else:
        path_text = override or spec.path
        local = Path(path_text) if Path(path_text).is_absolute() else cfg.base_dir() / path_text
        if override and not Path(override).is_absolute():
            local = Path(override)
    root_text = _expand(spec.media_root, cfg, env_dir) if spec.media_root else None
    if local.exists():
        rows = _config_rows(cfg, lambda config: _read_local(_config_file(cfg, local, config), cfg.task, list_fields=_list_fields(cfg)))
        media_root = Path(root_text) if root_text else (local if local.is_dir() else local.parent)
        if root_text and not Path(root_text).is_absolute():
            media_root = cfg.base_dir() / root_text
    elif looks_local(path_text) or fixture:
        raise ConfigError(f"task {cfg.task}: dataset file not found: {local}")
    else:
        rows = _config_rows(cfg, lambda config: _read_hub(spec, path_text, cfg.task, name=config))
        media_root = Path(root_text) if root_text else None
    if root_text and media_root is not None and not media_root.is_dir():
        raise ConfigError(f"task {cfg.task}: media folder not found: {media_root}" + (f"; {spec.download}" if spec.download else ""))
    docs, seen = [], set()
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ConfigError(f"task {cfg.task}: record {index} of {path_text} is not a mapping")
        row = dict(row)
        if media_root is not None:
            row["__media_root__"] = str(media_root)
        doc_id = _doc_id(cfg, row, index, path_text)
        if doc_id in seen:
            raise ConfigError(f"task {cfg.task}: duplicate doc id {doc_id!r} in {path_text}")
        seen.add(doc_id)
        _check_choices(cfg, row, f"doc {doc_id} of {path_text}")
        content = {k: v for k, v in row.items() if k != "__media_root__"}
        docs.append(Doc(doc_id, row, stable_hash(content)))
    return docs


def _list_fields(cfg: TaskConfig) -> tuple[str, ...]:
    return (cfg.fields.choices,) if isinstance(cfg.fields.choices, str) else ()


def _config_rows(cfg: TaskConfig, read) -> list[dict]:
    """Rows of every config in ``dataset.configs`` (each tagged with its config and constant fields), or of the
    dataset itself (``read(None)``)."""
    spec = cfg.dataset
    if not spec.configs:
        return read(None)
    rows: list[dict] = []
    for config in spec.configs:
        extra = {spec.config_field: config, **spec.config_fields.get(config, {})}
        rows += [dict(row, **extra) if isinstance(row, dict) else row for row in read(config)]
    return rows


def _config_file(cfg: TaskConfig, local: Path, config: str | None) -> Path:
    """The local file of ``config``: ``dataset.data_files`` under a local folder (``{config}`` replaced)."""
    if config is None or not local.is_dir():
        if config is not None and local.is_file():
            raise ConfigError(f"task {cfg.task}: {local} is one file but the task has {len(cfg.dataset.configs)} configs; "
                              f"give the folder holding {cfg.dataset.data_files or '<config files>'}")
        return local
    if not cfg.dataset.data_files:
        raise ConfigError(f"task {cfg.task}: dataset.data_files must say which file of {local} holds each config")
    target = local / cfg.dataset.data_files.format(config=config)
    if not target.is_file():
        raise ConfigError(f"task {cfg.task}: dataset file not found: {target} (config {config})")
    return target


def _doc_id(cfg: TaskConfig, row: dict, index: int, where: str) -> str:
    """The doc id: the ``fields.id`` field, or a template of fields (``"{video}_{qid}"``), else the row index."""
    key = cfg.fields.id
    if key and "{" in key:
        try:
            return key.format_map(row)
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"task {cfg.task}: record {index} of {where}: fields.id {key!r} needs field {exc}") from exc
    return str(row[key]) if key and key in row else str(index)


_OPTION_LINE = re.compile(r"^\s*\(?([A-Z])[.)]\s*(.*?)\s*$")


def doc_choices(cfg: TaskConfig, fields: dict) -> list | dict | None:
    """The options of a doc as :class:`~omnieval.config.FieldMap` says where they are: a list of texts, a
    ``{letter: text}`` mapping, or ``None`` (no options)."""
    f = cfg.fields
    if f.choices_in_prompt:
        text = fields.get(f.prompt) or ""
        found = [m.groups() for m in map(_OPTION_LINE.match, str(text).splitlines()[1:]) if m]
        return dict(found) or None
    if f.choices is None:
        return None
    value = [fields.get(name) for name in f.choices] if isinstance(f.choices, tuple) else fields.get(f.choices)
    if isinstance(value, (list, tuple)):
        value = [v for v in value if v not in f.choices_skip]
        if f.choices_strip:
            value = [v.strip() if isinstance(v, str) else v for v in value]
    return value


def _check_choices(cfg: TaskConfig, row: dict, where: str) -> None:
    """The choices field holds a list of options or a ``{letter: text}`` mapping (a string would be split into
    characters when the prompt is rendered and fail, if at all, only when scoring)."""
    key = cfg.fields.choices
    value = row.get(key) if isinstance(key, str) else None
    if value is not None and not isinstance(value, (list, tuple, dict)):
        raise ConfigError(f"task {cfg.task}: {where}: field {key!r} (the choices) must be a list of options or a "
                          f"{{letter: text}} mapping, got {type(value).__name__} {_short(value)}")


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_ENV_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def _expand(text: str, cfg: TaskConfig, env_dir: Path | None = None) -> str:
    """Expand ``$VAR``/``${VAR}`` (media folders live in different places on every cluster); with ``env_dir`` (a
    fixture run) every variable means that folder.  An unset variable is a one-line error with the download hint."""
    if env_dir is not None:
        return _ENV_VAR.sub(lambda m: str(env_dir), text)
    expanded = os.path.expanduser(os.path.expandvars(text))
    if "$" in expanded:
        names = [a or b for a, b in _ENV_VAR.findall(expanded)]
        hint = cfg.dataset.download or "set it to the folder holding the media"
        raise ConfigError(f"task {cfg.task}: environment variable {', '.join(names)} is not set (dataset.media_root "
                          f"{text!r}); {hint}")
    return expanded


def looks_local(text: str) -> bool:
    return text.startswith((".", "/", "~")) or Path(text).suffix in {".jsonl", ".json", ".csv", ".yaml", ".parquet"}


def _read_local(path: Path, task: str, list_fields: tuple[str, ...] = ()) -> list[dict]:
    """Rows of a local ``.jsonl``/``.json``/``.csv`` file (a UTF-8 byte order mark is skipped), or one row per
    file of a folder.  CSV cells of ``list_fields`` (the choices) hold JSON: ``["yes", "no"]`` or
    ``{"A": "yes", "B": "no"}``; an empty cell means none."""
    if path.suffix == ".parquet":
        return _read_parquet(path, task)
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
            for key in list_fields:
                if key in row:
                    row[key] = _json_cell(row[key], f"task {task}: {path}:{reader.line_num}: field {key!r} (the choices)")
            rows.append(row)
        return rows
    raise ConfigError(f"task {task}: unsupported dataset file type {path.suffix!r} ({path})")


def _read_parquet(path: Path, task: str) -> list[dict]:
    """Rows of a parquet file (a hub dataset's own format), read with pyarrow."""
    try:
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    except ImportError as exc:  # pragma: no cover - pyarrow comes with datasets
        raise ConfigError(f"task {task}: reading {path} needs pyarrow (pip install pyarrow)") from exc
    except Exception as exc:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, ...
        raise ConfigError(f"task {task}: cannot read parquet file {path}: {str(exc).splitlines()[0]}") from exc


def _json_cell(text: str, where: str) -> list | dict | None:
    """A CSV cell holding a JSON list or mapping (``""`` -> None)."""
    if not text.strip():
        return None
    if not text.lstrip().startswith(("[", "{")):
        raise ConfigError(f"{where} must be a JSON list such as [\"yes\", \"no\"] (or a {{letter: text}} mapping), "
                          f"got {_short(text)}")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where} is not valid JSON ({exc.msg}): {_short(text)}") from exc
    return value


def _read_hub(spec, path: str, task: str, name: str | None = None) -> list[dict]:
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover
        raise ConfigError(f"task {task}: the `datasets` package is needed for hub dataset {path}") from exc
    config = name or spec.name
    try:
        ds = datasets.load_dataset(path, config, revision=spec.revision, split=spec.split)
    except Exception as exc:  # noqa: BLE001 - datasets raises many types; all mean "not available"
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"task {task}: cannot load dataset {path!r} (config {config}, revision {spec.revision}, split "
                          f"{spec.split}): {first}; {hub_fix(spec, path, task)}") from exc
    return [dict(r) for r in ds]


def hub_fix(spec, path: str, task: str) -> str:
    """How to get a hub dataset onto a machine without network (one line)."""
    config = "<each of dataset.configs>" if spec.configs else spec.name
    args = ", ".join([repr(path)] + ([repr(config)] if config else []) + [f"split={spec.split!r}"]
                     + ([f"revision={spec.revision!r}"] if spec.revision else []))
    return (f"with network and the same HF_HOME run `python -c \"import datasets; datasets.load_dataset({args})\"` "
            f"(then HF_HUB_OFFLINE=1 finds it), or pass --dataset {task}=<a local .jsonl/.parquet copy>")


def resolve_media_path(doc: Doc, value: str, template: str = "{}", alternatives: tuple[str, ...] = ()) -> Path:
    """The media file of ``value``: ``template`` formatted with it (``{}``) and the doc's fields (``{field}``), under
    the media folder; the first of ``template, *alternatives`` that names an existing file (else the first)."""
    import string

    fields = {k: v for k, v in doc.fields.items() if isinstance(k, str)}
    paths = []
    for t in (template, *alternatives):
        try:
            p = Path(string.Formatter().vformat(t, (value,), fields))
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"doc {doc.id}: media template {t!r} needs field {exc}") from exc
        if not p.is_absolute() and "__media_root__" in doc.fields:
            p = Path(doc.fields["__media_root__"]) / p
        if not alternatives:
            return p
        if p.exists():
            return p
        paths.append(p)
    return paths[0]
