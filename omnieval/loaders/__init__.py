"""Dataset loaders: one table from a ``dataset.loader`` name to the function that reads that layout.

A loader turns the task's (environment-expanded) ``dataset.path`` into records (plain dicts) and the folder that
relative media paths in them are resolved against.  Official layouts each have their own module; every loader
declares ``needs``: the one line a user gets when the data is missing (what to download, where to put it).

Records may hold images *inside* them (hub ``datasets.Image`` columns): :mod:`omnieval.loaders.inline` turns
those into content-addressed cache files, and the doc hash uses the image bytes' sha256 (never ``str(PIL)``).
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from omnieval.errors import ConfigError, UnknownNameError


@dataclass(frozen=True)
class LoadContext:
    """What a loader gets: the task name (for messages), the dataset spec, the expanded path and its options."""

    task: str
    spec: object  # omnieval.config.DatasetSpec
    path: str
    base_dir: Path
    #: record fields that hold a list (the choices): CSV cells of these hold JSON
    list_fields: tuple[str, ...] = ()

    @property
    def local(self) -> Path:
        """``path`` as a local path (relative paths are relative to the task file's folder)."""
        p = Path(self.path)
        return p if p.is_absolute() else self.base_dir / p

    @property
    def options(self) -> dict:
        return dict(getattr(self.spec, "options", {}) or {})

    def missing(self, loader: "Loader", detail: str) -> ConfigError:
        """The one-line error for missing data: what was not found, then what to download and where."""
        return ConfigError(f"task {self.task}: {detail}; {loader.needs}")


@dataclass(frozen=True)
class Loaded:
    rows: list[dict]
    media_root: Path | None


@dataclass(frozen=True)
class Loader:
    """``read(ctx) -> Loaded``; ``needs``: what to download and where (shown when data is missing);
    ``options``: the option names it accepts (checked, so a typo is an error)."""

    read: Callable[[LoadContext], Loaded]
    needs: str
    options: tuple[str, ...] = ()


def _table() -> dict[str, Loader]:
    from omnieval.loaders import files, five, hub, loveu_tgve, magicbrush, msrvtt, t2i_reasonbench, v2vbench, video_qa, wise

    return {
        "file": files.LOADER,
        "hub": hub.LOADER,
        "magicbrush": magicbrush.LOADER,
        "loveu_tgve": loveu_tgve.LOADER,
        "v2vbench": v2vbench.LOADER,
        "five": five.LOADER,
        "msrvtt": msrvtt.LOADER,
        "wise": wise.LOADER,
        "t2i_reasonbench": t2i_reasonbench.LOADER,
        **video_qa.LOADERS,  # activitynet_qa, msvd_qa, msrvtt_qa, tgif_qa
        "videochatgpt": video_qa.VIDEOCHATGPT,
    }


_LOADERS: dict[str, Loader] | None = None


def loaders() -> dict[str, Loader]:
    """The loader table (built on first use: the modules import lazily)."""
    global _LOADERS
    if _LOADERS is None:
        _LOADERS = _table()
    return _LOADERS


def get_loader(name: str) -> Loader:
    table = loaders()
    if name not in table:
        raise UnknownNameError("dataset loader", name, sorted(table))
    return table[name]


_VAR = re.compile(r"\$(\w+)|\$\{(\w+)\}")


def expand(text: str, task: str, key: str, hint: str = "", *, fixture_dir: Path | None = None) -> str:
    """Expand ``$VAR`` / ``${VAR}`` / ``~``; an unset variable is a one-line error naming it (and ``hint``).  With
    ``fixture_dir`` (a ``--fixtures`` run) every variable means that folder: a bundled fixture holds its media in
    the layout the variables point into."""
    if fixture_dir is not None:
        return _VAR.sub(lambda m: str(fixture_dir), text)
    unset = [a or b for a, b in _VAR.findall(text) if (a or b) not in os.environ]
    if unset:
        tail = f"; {hint}" if hint else ""
        raise ConfigError(f"task {task}: dataset.{key} {text!r} needs ${unset[0]}, which is not set{tail}")
    return os.path.expanduser(os.path.expandvars(text))


def load(task: str, spec, path_text: str, base_dir: Path, list_fields: tuple[str, ...] = ()) -> Loaded:
    """Read the records of a dataset spec (``path_text``: ``spec.path`` or a ``--dataset`` override)."""
    declared = get_loader(spec.loader) if spec.loader else None
    path = expand(path_text, task, "path", declared.needs if declared else "")
    name = spec.loader or _auto(path, base_dir)
    loader = declared or get_loader(name)
    unknown = sorted(set(spec.options or {}) - set(loader.options))
    if unknown:
        raise ConfigError(f"task {task}: dataset.options {unknown} not understood by loader {name!r} "
                          f"(it takes: {', '.join(loader.options) or 'none'})")
    return loader.read(LoadContext(task, spec, path, base_dir, list_fields))


def _auto(path_text: str, base_dir: Path) -> str:
    """No ``loader``: a local file/folder if the path exists or looks local, else a hub dataset id."""
    p = Path(path_text)
    local = p if p.is_absolute() else base_dir / p
    if local.exists() or files.looks_local(path_text):
        return "file"
    return "hub"


from omnieval.loaders import files  # noqa: E402  (used by _auto; a leaf module)
