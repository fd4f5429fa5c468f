"""Several configs of one dataset (MVBench's 20 sub-tasks): options of the ``file`` and ``hub`` loaders.

``dataset.options``:

* ``configs: [a, b, ...]``: the configs to read, in order; each is loaded (``hub``: as the ``datasets`` config name;
  ``file``: from a local folder, the file ``data_files`` names) and the records of all of them are concatenated;
* ``config_field`` (default ``config``): the record field that gets each record's config name;
* ``config_fields: {a: {field: value}}``: constant fields added to the records of a config (MVBench: the folder
  of each sub-task's videos, lmms-eval's ``DATA_LIST``);
* ``data_files``: the file of each config under a local folder, ``{config}`` replaced (``json/{config}.json``, the
  layout of MVBench's hub snapshot).

Without ``configs`` the loaders read the one dataset (``dataset.name`` on the hub).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from omnieval.errors import ConfigError

#: the option names (the loaders that read configs accept them)
OPTIONS = ("configs", "config_field", "config_fields", "data_files")


@dataclass(frozen=True)
class Configs:
    names: tuple[str, ...] = ()
    field: str = "config"
    fields: dict | None = None
    data_files: str | None = None

    @classmethod
    def from_options(cls, options: dict, task: str) -> Configs:
        """The options checked: a wrong type or a config of ``config_fields`` not in ``configs`` is a one-line error."""
        names = options.get("configs") or ()
        if isinstance(names, str) or not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
            raise ConfigError(f"task {task}: dataset.options.configs must be a list of config names, got {names!r}")
        field = options.get("config_field", "config")
        if not isinstance(field, str) or not field:
            raise ConfigError(f"task {task}: dataset.options.config_field must be a field name, got {field!r}")
        fields = options.get("config_fields") or {}
        if not isinstance(fields, dict) or not all(isinstance(v, dict) for v in fields.values()):
            raise ConfigError(f"task {task}: dataset.options.config_fields must map each config to {{field: value}}")
        stray = sorted(set(fields) - set(names))
        if stray:
            raise ConfigError(f"task {task}: dataset.options.config_fields names configs not in configs: {stray}")
        data_files = options.get("data_files")
        if data_files is not None and not (isinstance(data_files, str) and "{config}" in data_files):
            raise ConfigError(f"task {task}: dataset.options.data_files must be a path with {{config}}, got {data_files!r}")
        return cls(tuple(names), field, fields, data_files)

    def rows(self, read: Callable[[str | None], list]) -> list:
        """Records of every config (each tagged with its config and constant fields), or ``read(None)``."""
        if not self.names:
            return read(None)
        rows: list = []
        for config in self.names:
            extra = {self.field: config, **(self.fields or {}).get(config, {})}
            rows += [dict(row, **extra) if isinstance(row, dict) else row for row in read(config)]
        return rows

    def local_file(self, local: Path, config: str | None, task: str) -> Path:
        """The local file holding ``config``: ``data_files`` under the folder ``local`` (or ``local`` itself)."""
        if config is None or not local.is_dir():
            if config is not None and local.is_file():
                raise ConfigError(f"task {task}: {local} is one file but the task has {len(self.names)} configs; give "
                                  f"the folder holding {self.data_files or '<config files>'}")
            return local
        if not self.data_files:
            raise ConfigError(f"task {task}: dataset.options.data_files must say which file of {local} holds each config")
        target = local / self.data_files.format(config=config)
        if not target.is_file():
            raise ConfigError(f"task {task}: dataset file not found: {target} (config {config})")
        return target

    def count_local(self, local: Path, count: Callable[[Path], int | None]) -> int | None:
        """Records in a local copy without reading it (``omnieval ls``): ``count`` of each config's file."""
        if not (self.names and self.data_files and local.is_dir()):
            return None
        counts = [count(local / self.data_files.format(config=c)) for c in self.names]
        return None if any(c is None for c in counts) else sum(counts)
