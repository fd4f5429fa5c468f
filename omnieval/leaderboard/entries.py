"""What boards are made of: runs (results folders with their labels) and rows (ours or published).

A *run* is one ``results.json`` (schema 1 or 2) plus what the user said about it with ``--label``
(``name=...``, ``step=...``).  A *row* is one line of a benchmark table: a run's results for one task in
one think mode (``<task>`` off, ``<task>@think`` on), or one published row of ``leaderboards/published``.
Values are kept in omnieval's result units; tables scale them for display.

Schema 2 entries may carry ``ci_low``/``ci_high`` (or ``ci: [low, high]``), ``n_clusters`` and ``method``;
schema 1 entries lack them and every consumer shows "n/a" for them.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omnieval.errors import ConfigError, OmniEvalError

PUBLISHED_DIR = Path(__file__).resolve().parents[2] / "leaderboards" / "published"
LABEL_KEYS = ("name", "step")
MODEL_COLUMNS = ("model", "method", "Method")
META_COLUMNS = (*MODEL_COLUMNS, "source", "note", "unit")
THINK_SUFFIX = "@think"


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None


@dataclass(frozen=True)
class Value:
    """One reported number with whatever uncertainty the results file gives (schema 1 or 2)."""

    value: float | None
    stderr: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int | None = None
    n_clusters: int | None = None
    higher_is_better: bool | None = None
    method: str | None = None

    @classmethod
    def from_entry(cls, entry: dict) -> Value:
        ci = entry.get("ci")
        low, high = entry.get("ci_low"), entry.get("ci_high")
        if isinstance(ci, (list, tuple)) and len(ci) == 2:
            low, high = ci
        hib = entry.get("higher_is_better")
        return cls(value=_num(entry.get("value")), stderr=_num(entry.get("stderr")), ci_low=_num(low),
                   ci_high=_num(high), n=entry.get("n") if isinstance(entry.get("n"), int) else None,
                   n_clusters=entry.get("n_clusters") if isinstance(entry.get("n_clusters"), int) else None,
                   higher_is_better=hib if isinstance(hib, bool) else None,
                   method=str(entry["method"]) if entry.get("method") else None)


@dataclass
class Run:
    """A results folder (or file) and the labels given for it."""

    path: Path
    data: dict
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def model(self) -> dict:
        return self.data.get("model") or {}

    @property
    def model_name(self) -> str:
        return str(self.model.get("name") or "?")

    @property
    def folder_name(self) -> str:
        return (self.path.parent if self.path.name == "results.json" else self.path).name or str(self.path)

    def results(self) -> dict[str, dict[str, Value]]:
        return {task: {k: Value.from_entry(v) for k, v in metrics.items()} for task, metrics in self.data["results"].items()}

    def ablations(self) -> dict[str, dict[str, dict]]:
        return self.data.get("ablations") or {}


@dataclass
class Row:
    """One line of a board: a run's values for one task and think mode, or a published row."""

    label: str
    kind: str  # "ours" | "published"
    source: str
    values: dict[str, Value]
    think: str | None = None
    run: Run | None = None


def split_task_key(key: str) -> tuple[str, str]:
    """``geneval@think`` -> (``geneval``, ``on``); ``geneval`` -> (``geneval``, ``off``)."""
    return (key[: -len(THINK_SUFFIX)], "on") if key.endswith(THINK_SUFFIX) else (key, "off")


def load_results(path: Path) -> dict:
    """A results.json (or the one in a run folder), checked to have the shape boards read."""
    file = path / "results.json" if path.is_dir() else path
    try:
        data = json.loads(file.read_text())
    except FileNotFoundError as exc:
        raise OmniEvalError(f"results file not found: {file}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise OmniEvalError(f"{file}: not valid JSON ({exc})") from exc
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, dict) or not all(
            isinstance(m, dict) and all(isinstance(r, dict) for r in m.values()) for m in results.values()):
        raise OmniEvalError(f"{file}: not an omnieval results.json (needs results: {{task: {{metric: {{value, ...}}}}}})")
    ablations = data.get("ablations") or {}
    if not isinstance(ablations, dict) or not all(
            isinstance(m, dict) and all(isinstance(r, dict) for r in m.values()) for m in ablations.values()):
        raise OmniEvalError(f"{file}: ablations must be {{task: {{metric: {{off, on, delta, ...}}}}}}")
    return data


def parse_label(text: str, where: str) -> dict[str, str]:
    """``"step=1000,name=ck-1k"`` -> ``{"step": "1000", "name": "ck-1k"}`` (keys: name, step)."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or not value.strip():
            raise ConfigError(f"--label {text!r} for {where}: expected KEY=VALUE[,KEY=VALUE], keys {', '.join(LABEL_KEYS)}")
        if key not in LABEL_KEYS:
            raise ConfigError(f"--label {text!r} for {where}: unknown key {key!r}; known: {', '.join(LABEL_KEYS)}")
        if key == "step" and not value.strip().lstrip("-").isdigit():
            raise ConfigError(f"--label {text!r} for {where}: step must be an integer, got {value!r}")
        if key in out:
            raise ConfigError(f"--label for {where}: {key} given twice")
        out[key] = value.strip()
    return out


def load_runs(specs: list[tuple[str | Path, list[str]]]) -> list[Run]:
    """Runs from ``(path, [label strings])`` pairs, in the order given."""
    runs = []
    for path, labels in specs:
        merged: dict[str, str] = {}
        for text in labels:
            for key, value in parse_label(text, str(path)).items():
                if key in merged:
                    raise ConfigError(f"--label for {path}: {key} given twice")
                merged[key] = value
        path = Path(path)
        file = path / "results.json" if path.is_dir() else path
        runs.append(Run(path=file, data=load_results(path), labels=merged))
    return runs


def run_names(runs: list[Run]) -> list[str]:
    """Row names of runs: ``--label name=`` or the model name; a model name shared by several runs gets the
    results folder's name appended."""
    names = [r.labels.get("name") or r.model_name for r in runs]
    return [f"{n} [{r.folder_name}]" if names.count(n) > 1 and "name" not in r.labels else n for r, n in zip(runs, names)]


def run_rows(runs: list[Run]) -> dict[str, list[Row]]:
    """``{task: [Row, ...]}``: one row per run and think mode (think on: "<name> (think)")."""
    out: dict[str, list[Row]] = {}
    for run, name in zip(runs, run_names(runs)):
        for key, values in run.results().items():
            task, think = split_task_key(key)
            label = name + (" (think)" if think == "on" else "")
            out.setdefault(task, []).append(Row(label=label, kind="ours", source=str(run.path), values=values,
                                                think=think, run=run))
    return out


def read_published(path: Path) -> list[dict[str, str]]:
    """Records of one published CSV; each needs a model (``model``/``method``) and a ``source``."""
    with open(path, newline="", encoding="utf-8") as f:
        records = list(csv.DictReader(f))
    for i, rec in enumerate(records, start=2):
        if not any(rec.get(c) for c in MODEL_COLUMNS):
            raise ConfigError(f"{path} line {i}: no model/method name")
        if not rec.get("source"):
            raise ConfigError(f"{path} line {i}: no source (every published row names where it comes from)")
        if rec.get("unit") not in (None, "", "percent", "fraction"):
            raise ConfigError(f"{path} line {i}: unit {rec['unit']!r} must be percent or fraction")
    return records


def published_model(rec: dict[str, str]) -> str:
    return next(rec[c] for c in MODEL_COLUMNS if rec.get(c))


def published_number(path: Path, rec: dict[str, str], column: str) -> float | None:
    text = (rec.get(column) or "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError as exc:
        raise ConfigError(f"{path}: {published_model(rec)}: {column} = {text!r} is not a number") from exc


def published_board_rows(layout, published_dir: Path = PUBLISHED_DIR) -> list[Row]:
    """The published rows of a layout (``<published_dir>/<layout.published>.csv``), in its result units."""
    if not layout.published:
        return []
    path = Path(published_dir) / f"{layout.published}.csv"
    if not path.is_file():
        return []
    rows = []
    for rec in read_published(path):
        unit = rec.get("unit") or "fraction"
        values = {}
        for col in layout.columns:
            number = published_number(path, rec, col.key)
            if number is not None:
                values[col.result] = Value(col.from_unit(number, unit), higher_is_better=col.higher_is_better)
        rows.append(Row(label=published_model(rec), kind="published", source=rec["source"], values=values))
    return rows
