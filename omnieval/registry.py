"""Registries of models and metrics, with lazy imports.

Models and metrics register themselves with a decorator in their own module::

    @register_metric("clip_t", description="CLIP image/video-text similarity (100*cos)")
    class CLIPTextScore(Metric): ...

Importing every module to learn the names would import torch, transformers and friends, which takes
seconds.  Instead, :func:`catalog` reads the *source* of the modules below the registry's package and
collects the decorator calls whose arguments are literals (``ast``, no import).  Looking a name up with
:func:`get_model` / :func:`get_metric` imports only the module that defines it.  So ``omnieval ls``
and ``omnieval --help`` stay fast, and adding a metric never means editing a central table.

Tasks are YAML files, not code; their registry lives in :mod:`omnieval.tasks`.
"""
from __future__ import annotations

import ast
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omnieval.errors import UnknownNameError

_PACKAGE_ROOT = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Entry:
    """What the catalog knows about a registered object without importing it."""

    kind: str
    name: str
    module: str
    description: str = ""
    capability: str = ""


class Registry:
    """Name -> object, filled by decorators, discovered lazily from source."""

    def __init__(self, kind: str, package: str, decorator: str):
        self.kind = kind
        self.package = package
        self.decorator = decorator
        self._objects: dict[str, Any] = {}
        self._catalog: dict[str, Entry] | None = None

    # -- registration -------------------------------------------------------------------------
    def register(self, name: str, *, description: str = "", capability: str = "") -> Callable:
        def wrap(obj):
            if name in self._objects and self._objects[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._objects[name] = obj
            obj.registry_name = name
            return obj

        return wrap

    # -- discovery ----------------------------------------------------------------------------
    def catalog(self) -> dict[str, Entry]:
        """All registered names, found by parsing the package's source files (no imports)."""
        if self._catalog is None:
            found: dict[str, Entry] = {}
            pkg_dir = _PACKAGE_ROOT / self.package.split(".", 1)[1].replace(".", "/")
            for path in sorted(pkg_dir.rglob("*.py")):
                module = ".".join(("omnieval",) + path.relative_to(_PACKAGE_ROOT).with_suffix("").parts)
                module = module.removesuffix(".__init__")
                for entry in _scan_source(path, module, self.kind, self.decorator):
                    found.setdefault(entry.name, entry)
            self._catalog = found
        return self._catalog

    def names(self) -> list[str]:
        return sorted(set(self.catalog()) | set(self._objects))

    def get(self, name: str) -> Any:
        if name not in self._objects:
            entry = self.catalog().get(name)
            if entry is None:
                raise UnknownNameError(self.kind, name, self.names())
            importlib.import_module(entry.module)
            if name not in self._objects:  # pragma: no cover - catalog and decorator disagree
                raise UnknownNameError(self.kind, name, self.names())
        return self._objects[name]


def _literal(node: ast.AST) -> Any:
    try:
        return ast.literal_eval(node)
    except ValueError:
        return None


def _scan_source(path: Path, module: str, kind: str, decorator: str) -> list[Entry]:
    text = path.read_text(encoding="utf-8")
    if decorator not in text:
        return []
    entries = []
    for node in ast.walk(ast.parse(text, filename=str(path))):
        if not isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            continue
        for dec in node.decorator_list:
            if not (isinstance(dec, ast.Call) and getattr(dec.func, "id", None) == decorator and dec.args):
                continue
            name = _literal(dec.args[0])
            if not isinstance(name, str):
                continue
            kw = {k.arg: _literal(k.value) for k in dec.keywords}
            entries.append(
                Entry(kind, name, module, description=kw.get("description") or "", capability=_fmt(kw.get("capability")))
            )
    return entries


def _fmt(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value or "")


MODELS = Registry("model", "omnieval.models", "register_model")
METRICS = Registry("metric", "omnieval.metrics", "register_metric")


def register_model(name: str, *, description: str = "") -> Callable:
    """Register a model class under ``name`` (``--model NAME``).  Its capabilities are the class's
    ``capabilities`` (one declaration; ``omnieval ls models`` imports the light model modules to read it)."""
    return MODELS.register(name, description=description)


def register_metric(name: str, *, description: str = "", capability: str | tuple[str, ...] = "") -> Callable:
    """Register a metric class under ``name`` (used in task YAML ``metrics:``)."""
    return METRICS.register(name, description=description, capability=_fmt(capability))


def get_model(name: str):
    return MODELS.get(name)


def get_metric(name: str):
    return METRICS.get(name)
