"""Checkpoint comparison: several results folders of the same tasks side by side, deltas against a baseline,
and each metric plotted against the training step.

Step of a results folder, first found wins (the table says which on hover):

1. ``--label step=N`` given for that folder;
2. a model argument named ``step``, ``global_step``, ``checkpoint_step``, ``iteration`` or ``iter`` -- or
   ``checkpoint``/``ckpt`` -- holding an integer;
3. a step written in a model argument's value (a checkpoint path, a hub id): the last path component
   matching ``(global_step|step|checkpoint|ckpt|iter|iteration)[-_=]?N`` (``checkpoint-2000``,
   ``global_step_1500``, ``step3000``), else the last component that is all digits (``ckpts/4000``);
4. the same rule on the results folder's own name (``runs/step_1000``).

Numbers that are not marked as steps (``wan2.1-1.3b``) are never taken.  Rows are ordered by step (folders
without a step last, in the order given); the baseline defaults to the first row.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePath

from omnieval.errors import ConfigError
from omnieval.leaderboard.boards import UNIT_SUFFIX, generic_layout, value_cell
from omnieval.leaderboard.comparability import require_same
from omnieval.leaderboard.entries import Row as Entry
from omnieval.leaderboard.entries import Run, split_task_key
from omnieval.leaderboard.layouts import Layout, layout_for_task
from omnieval.web import svg
from omnieval.web.table import Cell, Row, Table, mark_best
from omnieval.web.table import Column as TColumn

STEP_ARGS = ("step", "global_step", "checkpoint_step", "iteration", "iter", "checkpoint", "ckpt")
STEP_IN_TEXT = re.compile(r"(?:global[_-]?step|step|checkpoint|ckpt|iteration|iter)[-_=]?(\d+)", re.IGNORECASE)
ALL_DIGITS = re.compile(r"^\d+$")


def _int(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and ALL_DIGITS.match(value.strip()):
        return int(value.strip())
    return None


def step_in_path(text: str) -> int | None:
    """The step written in a path or id (rule 3 of the module docstring), or None."""
    parts = [p for p in re.split(r"[/\\]", text) if p]
    for part in reversed(parts):
        found = STEP_IN_TEXT.findall(part)
        if found:
            return int(found[-1])
    for part in reversed(parts):
        stem = PurePath(part).stem if "." in part and not ALL_DIGITS.match(part) else part
        if ALL_DIGITS.match(stem):
            return int(stem)
    return None


def find_step(run: Run) -> tuple[int | None, str]:
    """``(step, where it came from)`` for a run, by the rules of the module docstring."""
    if "step" in run.labels:
        return int(run.labels["step"]), "--label step"
    args = run.model.get("args") or {}
    for key in STEP_ARGS:
        step = _int(args.get(key))
        if step is not None:
            return step, f"model argument {key}"
    for key, value in args.items():
        if isinstance(value, str):
            step = step_in_path(value)
            if step is not None:
                return step, f"model argument {key}={value}"
    folder = run.path.parent if run.path.name == "results.json" else run.path
    step = step_in_path(folder.name)
    if step is not None:
        return step, f"results folder {folder}"
    return None, ""


@dataclass
class Checkpoint:
    run: Run
    name: str
    step: int | None
    step_source: str


def checkpoints(runs: list[Run]) -> list[Checkpoint]:
    """Runs as checkpoints, named by ``--label name=`` or their folder, ordered by step."""
    names = [r.labels.get("name") or r.folder_name for r in runs]
    out = []
    for run, name in zip(runs, names):
        if names.count(name) > 1 and "name" not in run.labels:
            folder = run.path.parent if run.path.name == "results.json" else run.path
            name = str(folder)
        out.append(Checkpoint(run, name, *find_step(run)))
    order = sorted(range(len(out)), key=lambda i: (out[i].step is None, out[i].step or 0, i))
    return [out[i] for i in order]


def pick_baseline(cks: list[Checkpoint], spec: str | None) -> Checkpoint:
    """The baseline named by ``--baseline`` (a checkpoint's name, or its results folder/file path); default: the
    first checkpoint (lowest step)."""
    if not spec:
        return cks[0]
    for ck in cks:
        if ck.name == spec:
            return ck
    target = Path(spec).resolve()
    for ck in cks:
        if target in (ck.run.path.resolve(), ck.run.path.parent.resolve()):
            return ck
    raise ConfigError(f"--baseline {spec!r} is neither a checkpoint name nor a results path; names: "
                      f"{', '.join(c.name for c in cks)}")


@dataclass
class Comparison:
    table: Table
    figures: list[tuple[str, str]]
    notes: list[str]


def _task_entries(ck: Checkpoint) -> dict[str, dict[str, dict]]:
    """{task: {think: values}} of one checkpoint."""
    out: dict[str, dict] = {}
    for key, values in ck.run.results().items():
        task, think = split_task_key(key)
        out.setdefault(task, {})[think] = values
    return out


def compare(cks: list[Checkpoint], baseline: Checkpoint, layouts: dict[str, Layout]) -> list[Comparison]:
    """One table (rows: checkpoint x think mode) and one line plot per metric for each task."""
    per_ck = [_task_entries(ck) for ck in cks]
    tasks = list(dict.fromkeys(t for entries in per_ck for t in entries))
    base = _task_entries(baseline)
    out = []
    for task in tasks:
        modes = list(dict.fromkeys(m for entries in per_ck for m in sorted(entries.get(task, {}))))
        for think in modes:  # e.g. FVDs of different protocols: no deltas across them
            require_same(task, [(ck.name, ck.run, task if think == "off" else f"{task}@think")
                                for ck, entries in zip(cks, per_ck) if think in entries.get(task, {})])
        layout = layout_for_task(task, layouts)
        if layout is None:
            layout = generic_layout(task, [Entry("", "ours", "", v) for e in per_ck for v in e.get(task, {}).values()])
        cols = [c for c in layout.columns if any(c.result in v for e in per_ck for v in e.get(task, {}).values())]
        columns = [TColumn("checkpoint", "Checkpoint", numeric=False), TColumn("step", "Step")] + [
            TColumn(c.key, c.label, c.title, higher_is_better=c.higher_is_better) for c in cols]
        rows = []
        for ck, entries in zip(cks, per_ck):
            for think in modes:
                values = entries.get(task, {}).get(think)
                if values is None:
                    continue
                label = ck.name + (" (think)" if think == "on" else "")
                cells = [Cell(text=label, title=str(ck.run.path)),
                         Cell(text="–", title="no step: give --label step=N") if ck.step is None else
                         Cell(text=str(ck.step), value=float(ck.step), title=f"step from {ck.step_source}")]
                ref = base.get(task, {}).get(think, {})
                for c in cols:
                    cell = value_cell(values.get(c.result), c)
                    b = ref.get(c.result)
                    if ck is baseline:
                        cell.note = "baseline" if cell.value is not None else ""
                    elif cell.value is not None and b is not None and b.value is not None:
                        delta = cell.value - b.value * c.scale
                        cell.note = f"Δ {delta:+.{c.digits}f}"
                        if round(delta, c.digits) != 0:
                            cell.cls = "better" if (delta > 0) == c.higher_is_better else "worse"
                    cells.append(cell)
                rows.append(Row(cells=cells, kind="baseline" if ck is baseline else "ours", group=think))
        table = Table(id=f"ckpt-{task}", title=f"{layout.title}: checkpoints", columns=columns, rows=rows,
                      caption=f"Δ against {baseline.name} (same think mode). Bold: best, underlined: second.")
        mark_best(table)
        figures, notes = _plots(cks, per_ck, task, modes, layout.title, cols)
        out.append(Comparison(table, figures, notes))
    return out


def _plots(cks, per_ck, task, modes, title, cols) -> tuple[list[tuple[str, str]], list[str]]:
    missing = [ck.name for ck in cks if ck.step is None]
    if missing:
        return [], [f"{title}: no plot against the step: no step for {', '.join(missing)} (give --label step=N)"]
    figures = []
    for c in cols:
        series = []
        for think in modes:
            pts = []
            for ck, entries in zip(cks, per_ck):
                v = entries.get(task, {}).get(think, {}).get(c.result)
                if v is not None and v.value is not None:
                    shown = v.value * c.scale
                    pts.append((float(ck.step), shown, f"{ck.name} (step {ck.step}): {shown:.{c.digits}f}{UNIT_SUFFIX[c.display]}"))
            if pts:
                series.append(("think " + think, pts))
        if series:
            unit = UNIT_SUFFIX[c.display]
            figures.append((svg.line_chart(series, f"{title}: {c.label}", x_label="step", y_label=c.label + (f" ({unit})" if unit else "")),
                            f"{title}: {c.title}"))
    return figures, []
