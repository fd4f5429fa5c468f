"""Benchmark tables in the papers' layout (models as rows) and the plots drawn under them.

A benchmark with a layout (``layouts.yaml``) gets its columns in the paper's order, published rows first
(with a footnote naming their source), then our runs (one row per think mode).  A task without a layout
gets a plain table, one column per result key in the order the results give them, printed with 4 decimals
in the results' own unit.  Best per column is bold, second underlined (at printed precision).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from omnieval.leaderboard.entries import Row, Value
from omnieval.leaderboard.layouts import UNITS, Column, Layout, Plot
from omnieval.web import svg
from omnieval.web.table import Cell, Table, mark_best, number_cell
from omnieval.web.table import Column as TColumn
from omnieval.web.table import Row as TRow

GENERIC_DIGITS = 4
UNIT_SUFFIX = {"percent": "%", "fraction": ""}


@dataclass
class Board:
    """A benchmark table and its figures (inline SVG), with notes about what a figure left out."""

    table: Table
    figures: list[tuple[str, str]] = field(default_factory=list)  # (svg, caption)
    notes: list[str] = field(default_factory=list)


def describe(v: Value, col: Column) -> str:
    """Hover text of a value: the number, its stderr and CI (display units), n and clusters where known."""
    s = col.scale
    suffix = UNIT_SUFFIX[col.display]
    parts = [f"{col.title}: {v.value * s:.{col.digits + 2}f}{suffix}" if v.value is not None else f"{col.title}: –"]
    if v.stderr is not None:
        parts.append(f"± {v.stderr * s:.{col.digits + 2}f} (stderr)")
    if v.ci_low is not None and v.ci_high is not None:
        parts.append(f"95% CI [{v.ci_low * s:.{col.digits + 2}f}, {v.ci_high * s:.{col.digits + 2}f}]")
    if v.n is not None:
        parts.append(f"n = {v.n}")
    if v.n_clusters is not None:
        parts.append(f"clusters = {v.n_clusters}")
    return ", ".join(parts)


def value_cell(v: Value | None, col: Column) -> Cell:
    if v is None or v.value is None:
        return Cell(title=f"{col.title}: not reported")
    return number_cell(v.value * col.scale, col.digits, title=describe(v, col))


def generic_columns(rows: list[Row]) -> tuple[Column, ...]:
    """Columns of a task without a layout: every result key, in first-seen order, in the results' unit."""
    keys: dict[str, bool | None] = {}
    for row in rows:
        for key, v in row.values.items():
            if keys.get(key) is None:
                keys[key] = v.higher_is_better
    return tuple(Column(key=k, label=k, title=k, result=k, higher_is_better=True if hib is None else hib,
                        digits=GENERIC_DIGITS) for k, hib in keys.items())


def generic_layout(task: str, rows: list[Row]) -> Layout:
    return Layout(id=task, title=task, task=task, published=None, columns=generic_columns(rows))


def benchmark_table(layout: Layout, rows: list[Row]) -> Table:
    columns = [TColumn("model", "Model", numeric=False)] + [
        TColumn(c.key, c.label, c.title, higher_is_better=c.higher_is_better)
        for c in layout.columns]
    sources: list[str] = []
    out = []
    for row in rows:
        note = None
        if row.kind == "published":
            if row.source not in sources:
                sources.append(row.source)
            note = sources.index(row.source) + 1
        title = f"published: {row.source}" if row.kind == "published" else f"omnieval run: {row.source}"
        cells = [Cell(text=row.label, title=title)] + [value_cell(row.values.get(c.result), c) for c in layout.columns]
        out.append(TRow(cells=cells, kind=row.kind, group=row.kind, title=title, note=note))
    caption = "Bold: best, underlined: second (at printed precision); hover a value for its stderr, CI and n."
    if all(c.display == "percent" for c in layout.columns):
        caption = "Values in %. " + caption
    if any(r.kind == "published" for r in rows):
        caption = "Rows with a footnote number are published numbers, as reported (source in the footnote). " + caption
    table = Table(id=layout.id, title=layout.title, columns=columns, rows=out, caption=caption, footnotes=sources)
    mark_best(table)
    return table


# -- plots ------------------------------------------------------------------------------------------
def _vbench_normalized(col: Column, fraction: float) -> float:
    from omnieval.aggregate.vbench import load_constants

    spec = load_constants()["dimensions"][col.key]
    return (fraction - spec["min"]) / (spec["max"] - spec["min"])


#: how a radar maps a value (as a fraction) to a radius in [0, 1]
NORMALIZERS = {
    None: lambda col, fraction: fraction,
    "vbench": _vbench_normalized,
}


def _fraction(v: Value | None, col: Column) -> float | None:
    return None if v is None or v.value is None else v.value / UNITS[col.unit]


def radar_figures(layout: Layout, plot: Plot, rows: list[Row]) -> tuple[list[tuple[str, str]], list[str]]:
    cols = [layout.column(k) for k in plot.columns]
    norm = NORMALIZERS[plot.normalize]
    figs, skipped = [], []
    for i, row in enumerate(rows):
        fractions = [_fraction(row.values.get(c.result), c) for c in cols]
        if any(f is None for f in fractions):
            skipped.append(row.label)
            continue
        radii = [norm(c, f) for c, f in zip(cols, fractions)]
        labels = [f"{c.title}: {f * UNITS[c.display]:.{c.digits}f}{UNIT_SUFFIX[c.display]} (radius {r:.3f})"
                  for c, f, r in zip(cols, fractions, radii)]
        svg_text = svg.radar([c.label for c in cols], radii, labels, f"{layout.title}: {row.label}", series_color=svg.color(i))
        figs.append((svg_text, row.label + (" (published)" if row.kind == "published" else "")))
    notes = [f"{plot.title}: no radar for {', '.join(skipped)} (needs all {len(cols)} dimensions)"] if skipped else []
    return figs, notes


def bar_figures(layout: Layout, plot: Plot, rows: list[Row]) -> tuple[list[tuple[str, str]], list[str]]:
    cols = [layout.column(k) for k in plot.columns]
    series = []
    for row in rows:
        vals = [row.values.get(c.result) for c in cols]
        shown = [None if v is None or v.value is None else v.value * c.scale for v, c in zip(vals, cols)]
        if all(x is None for x in shown):
            continue
        labels = [f"{row.label} · {c.title}: " + ("–" if x is None else f"{x:.{c.digits}f}") for x, c in zip(shown, cols)]
        series.append((row.label, shown, labels))
    if not series:
        return [], []
    top = 100.0 if cols[0].display == "percent" else 1.0
    return [(svg.grouped_bars([c.label for c in cols], series, plot.title, y_max=top), plot.title)], []


PLOTTERS = {"radar": radar_figures, "bars": bar_figures}


def build_board(layout: Layout, rows: list[Row]) -> Board:
    board = Board(table=benchmark_table(layout, rows))
    for plot in layout.plots:
        figs, notes = PLOTTERS[plot.kind](layout, plot, rows)
        board.figures += figs
        board.notes += notes
    return board
