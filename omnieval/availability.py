"""What a task needs that is not here: for ``omnieval ls tasks`` (file-system checks only: fast, no network, no torch).

:func:`task_status` gives the number of docs when the data is present (a local file counted, or a hub dataset's
``dataset_info.json`` in the ``datasets`` cache) and one line per missing piece -- the dataset, the media folder
(its environment variable), a judge's API key -- each with the exact fix.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from omnieval.config import TaskConfig
from omnieval.errors import ConfigError

#: organisations whose datasets lmms-eval renamed (0.7.3 says ``lmms-eval/``, older caches hold ``lmms-lab___``)
ORG_ALIASES = {"lmms-eval": ("lmms-lab",), "lmms-lab": ("lmms-eval",)}


@dataclass
class TaskStatus:
    items: int | None = None
    """Docs in the data (``None``: not known without loading it, or missing)."""
    missing: list[str] = field(default_factory=list)
    """One line per missing piece, each ending with the fix."""
    notes: list[str] = field(default_factory=list)
    """Things that are not missing but change what the task reports (e.g. no judge configured)."""


def task_status(cfg: TaskConfig) -> TaskStatus:
    status = TaskStatus()
    _dataset(cfg, status)
    _media(cfg, status)
    _judges(cfg, status)
    return status


# -- dataset ----------------------------------------------------------------------------------------------------------
_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def _dataset(cfg: TaskConfig, status: TaskStatus) -> None:
    """Count the docs or say what is missing.  Only the ``file`` loader's data (and a hub cache) is counted without
    reading it; an official layout read by a named loader (:mod:`omnieval.loaders`) is only checked to exist."""
    from omnieval.loaders import get_loader
    from omnieval.loaders.files import looks_local
    from omnieval.loaders.hub import hub_fix

    spec = cfg.dataset
    loader = get_loader(spec.loader) if spec.loader else None
    fixture = " (or try it on its bundled fixture: --fixtures)" if spec.fixture else ""
    unset = [a or b for a, b in _VAR.findall(spec.path) if not os.environ.get(a or b)]
    if unset:
        status.missing.append(f"dataset: {', '.join(unset)} is not set; {loader.needs if loader else spec.download or 'set it'}"
                              + fixture)
        return
    path = os.path.expanduser(os.path.expandvars(spec.path))
    local = Path(path) if Path(path).is_absolute() else cfg.base_dir() / path
    if local.exists():
        status.items = _count_local(cfg, local) if spec.loader in (None, "file") else None
        return
    if looks_local(path) or spec.loader == "file":
        status.missing.append(f"dataset {local} not found; {loader.needs if loader else 'give the file as dataset.path'}"
                              + fixture)
        return
    if loader is not None and spec.loader != "hub":  # an official layout's loader given a hub id (WISE)
        if not (_hub_snapshot(path) or _cached_rows(path, spec.name, spec.split) is not None):
            status.missing.append(f"dataset {path}: {loader.needs}" + fixture)
        return
    configs = spec.options.get("configs") or (spec.name,)
    counts = [_cached_rows(path, config, spec.split) for config in configs]
    if all(c is not None for c in counts):
        status.items = sum(counts)
    elif not _hub_snapshot(path):
        what = f"hub dataset {path}" + (f" (config {spec.name})" if spec.name else "")
        status.missing.append(f"{what}: {hub_fix(spec, path, cfg.task)}" + fixture)


def _count_local(cfg: TaskConfig, path: Path) -> int | None:
    from omnieval.loaders.configs import Configs

    try:
        configs = Configs.from_options(cfg.dataset.options, cfg.task)
    except ConfigError:  # reported when the task runs
        return None
    if configs.names:
        return configs.count_local(path, _count_file)
    if path.is_dir():
        return sum(1 for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    return _count_file(path)


def _count_file(path: Path) -> int | None:
    """Rows of a local data file, read cheaply (``None`` if it cannot be counted)."""
    try:
        if path.suffix == ".jsonl":
            with open(path, encoding="utf-8-sig") as f:
                return sum(1 for line in f if line.strip())
        if path.suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8-sig"))
            rows = data.get("data", [data]) if isinstance(data, dict) else data
            return len(rows) if isinstance(rows, list) else None
        if path.suffix == ".csv":
            return sum(1 for _ in csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"), newline="")))
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(path).metadata.num_rows
    except (OSError, ValueError, ImportError):
        return None
    return None


def snake_name(name: str) -> str:
    """The ``datasets`` library's cache name of a dataset (its ``camelcase_to_snakecase``: ``Video-MME`` ->
    ``video-mme``, ``NExTQA`` -> ``n_ex_tqa``)."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z\d])([A-Z])", r"\1_\2", name).lower()


def _datasets_cache() -> Path:
    if os.environ.get("HF_DATASETS_CACHE"):
        return Path(os.environ["HF_DATASETS_CACHE"])
    return Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "datasets"


def _hub_cache() -> Path:
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var])
    return Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"


def _orgs(repo: str) -> list[tuple[str, str]]:
    org, _, name = repo.partition("/")
    return [(o, name) for o in (org, *ORG_ALIASES.get(org, ()))]


def _cached_rows(repo: str, config: str | None, split: str) -> int | None:
    """``num_examples`` of ``split`` in a prepared ``datasets`` cache of ``repo``/``config`` (``None``: not there)."""
    root = _datasets_cache()
    for org, name in _orgs(repo):
        base = root / f"{org}___{snake_name(name)}"
        if not base.is_dir():
            continue
        for info in sorted(base.glob(f"{config or 'default'}*/*/*/dataset_info.json")):
            try:
                splits = json.loads(info.read_text(encoding="utf-8")).get("splits") or {}
                return int(splits[split]["num_examples"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
    return None


def _hub_snapshot(repo: str) -> bool:
    """Whether the hub cache holds a snapshot of the dataset repo (loadable offline; its size is known once loaded)."""
    root = _hub_cache()
    return any((root / f"datasets--{org}--{name}" / "snapshots").is_dir() for org, name in _orgs(repo))


# -- media --------------------------------------------------------------------------------------------------------------


def _media(cfg: TaskConfig, status: TaskStatus) -> None:
    root = cfg.dataset.media_root
    if not root:
        return
    unset = [a or b for a, b in _VAR.findall(root) if not os.environ.get(a or b)]
    hint = cfg.dataset.download or "set it to the folder holding the media"
    if unset:
        status.missing.append(f"media folder: {', '.join(unset)} is not set; {hint}")
        return
    folder = Path(os.path.expanduser(os.path.expandvars(root)))
    folder = folder if folder.is_absolute() else cfg.base_dir() / folder
    if not folder.is_dir():
        status.missing.append(f"media folder {folder} not found; {hint}")


# -- judges -------------------------------------------------------------------------------------------------------------
def _judges(cfg: TaskConfig, status: TaskStatus) -> None:
    for spec in cfg.metrics:
        options = spec.options
        if "base_url" in options or "api_key_env" in options:  # a judged metric (omnieval.judge.JudgeSettings)
            settings = options
        elif isinstance(options.get("judge"), dict) and options["judge"]:
            settings = options["judge"]
        else:
            if options.get("reference") == "lmms_tempcompass":
                status.notes.append("no judge configured: answers lmms-eval sends to its LLM judge count wrong in "
                                    "mcq_accuracy_ref (ref_judge_needed counts them); to use one, give the metric "
                                    f"options.judge: {{base_url: ..., model: ...}} in {cfg.source_file}")
            continue
        key_env = settings.get("api_key_env", "OPENAI_API_KEY")
        base = settings.get("base_url", "https://api.openai.com/v1")
        line = (f"judge endpoint {base}: set {key_env} (its API key), or api_key_env: '' in the metric options for a "
                f"local server without authentication")
        if key_env and not os.environ.get(key_env) and line not in status.missing:
            status.missing.append(line)
