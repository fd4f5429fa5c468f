"""Board layouts: which columns a benchmark's table has, read from ``layouts.yaml`` (data, not code).

Conventions:

* ``unit`` is the unit omnieval's results carry for a column (``fraction`` 0..1 or ``percent`` 0..100);
  ``display`` is how the paper prints it.  ``Column.scale`` = display / unit multiplies a result value into
  the printed number (VBench: fraction -> percent, scale 100).  Published rows are converted from their
  CSV's ``unit`` column (``percent`` or, when absent, ``fraction``) to the column's ``unit`` first.
* ``result`` is the key of the value in ``results.json`` (``results[task][result]``); a layout-wide template
  ``result: "vbench_{key}/{key}"`` names every column that does not give its own.
* ``higher_is_better`` decides which value is bold (best) and underlined (second).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from omnieval.errors import ConfigError

LAYOUTS_FILE = Path(__file__).with_name("layouts.yaml")
UNITS = {"fraction": 1.0, "percent": 100.0}
PLOT_KINDS = ("radar", "bars")
_LAYOUT_KEYS = {"title", "task", "published", "unit", "display", "digits", "result", "columns", "plots"}
_COLUMN_KEYS = {"key", "label", "title", "result", "higher_is_better", "unit", "display", "digits"}
_PLOT_KEYS = {"kind", "title", "columns", "normalize"}


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    title: str
    result: str
    higher_is_better: bool = True
    unit: str = "fraction"
    display: str = "fraction"
    digits: int = 2

    @property
    def scale(self) -> float:
        """Multiplier from a result value to the printed number."""
        return UNITS[self.display] / UNITS[self.unit]

    def from_unit(self, value: float, unit: str) -> float:
        """``value`` given in ``unit`` (a published CSV's) converted to this column's result unit."""
        return value * UNITS[self.unit] / UNITS[unit]


@dataclass(frozen=True)
class Plot:
    kind: str
    title: str
    columns: tuple[str, ...]
    normalize: str | None = None


@dataclass(frozen=True)
class Layout:
    id: str
    title: str
    task: str
    published: str | None
    columns: tuple[Column, ...]
    plots: tuple[Plot, ...] = field(default_factory=tuple)

    def column(self, key: str) -> Column:
        return next(c for c in self.columns if c.key == key)

    def by_result(self) -> dict[str, Column]:
        return {c.result: c for c in self.columns}


def _check_keys(where: str, got: dict, allowed: set[str]) -> None:
    unknown = sorted(set(got) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def _unit(where: str, value: Any) -> str:
    if value not in UNITS:
        raise ConfigError(f"{where}: unit {value!r} must be one of {', '.join(UNITS)}")
    return value


def parse_layout(name: str, spec: dict, source: str = "layouts") -> Layout:
    where = f"{source}: {name}"
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: a layout is a mapping, got {type(spec).__name__}")
    _check_keys(where, spec, _LAYOUT_KEYS)
    for key in ("title", "task", "columns"):
        if key not in spec:
            raise ConfigError(f"{where}: missing key {key!r}")
    template = spec.get("result", "{key}")
    columns = []
    for i, col in enumerate(spec["columns"]):
        cwhere = f"{where} column {i}"
        if not isinstance(col, dict) or "key" not in col or "label" not in col:
            raise ConfigError(f"{cwhere}: needs at least key and label")
        _check_keys(cwhere, col, _COLUMN_KEYS)
        columns.append(Column(
            key=str(col["key"]), label=str(col["label"]), title=str(col.get("title", col["label"])),
            result=str(col.get("result", template.format(key=col["key"]))),
            higher_is_better=bool(col.get("higher_is_better", True)),
            unit=_unit(cwhere, col.get("unit", spec.get("unit", "fraction"))),
            display=_unit(cwhere, col.get("display", spec.get("display", "fraction"))),
            digits=int(col.get("digits", spec.get("digits", 2))),
        ))
    keys = [c.key for c in columns]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"{where}: duplicate column keys")
    plots = []
    for i, p in enumerate(spec.get("plots") or []):
        pwhere = f"{where} plot {i}"
        _check_keys(pwhere, p, _PLOT_KEYS)
        if p.get("kind") not in PLOT_KINDS:
            raise ConfigError(f"{pwhere}: kind must be one of {', '.join(PLOT_KINDS)}")
        missing = [k for k in p.get("columns", []) if k not in keys]
        if missing or not p.get("columns"):
            raise ConfigError(f"{pwhere}: columns {missing or '(none)'} are not columns of the layout")
        plots.append(Plot(kind=p["kind"], title=str(p.get("title", spec["title"])), columns=tuple(p["columns"]),
                          normalize=p.get("normalize")))
    return Layout(id=name, title=str(spec["title"]), task=str(spec["task"]), published=spec.get("published"),
                  columns=tuple(columns), plots=tuple(plots))


@lru_cache(maxsize=4)
def load_layouts(path: str | None = None) -> dict[str, Layout]:
    """All layouts of ``layouts.yaml`` (or ``path``), in file order, keyed by layout id."""
    file = Path(path) if path else LAYOUTS_FILE
    data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    layouts = {name: parse_layout(name, spec, str(file)) for name, spec in data.items()}
    tasks = [lay.task for lay in layouts.values()]
    dup = sorted({t for t in tasks if tasks.count(t) > 1})
    if dup:
        raise ConfigError(f"{file}: more than one layout for task(s) {', '.join(dup)}")
    return layouts


def layout_for_task(task: str, layouts: dict[str, Layout] | None = None) -> Layout | None:
    return next((lay for lay in (layouts or load_layouts()).values() if lay.task == task), None)
