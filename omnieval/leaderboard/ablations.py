"""The think-mode ablation table: per run, task and metric, off / on / delta with its CI and p-value.

Reads ``ablations`` of results files (task -> metric -> {off, on, delta, stderr, p_value, n, ...}).  Schema 2
adds ``ci_low``/``ci_high`` (or ``ci``), ``n_clusters`` and ``method``; where a file lacks them (schema 1, or
task aggregates such as VBench Total that have no per-item pairs) the table prints "n/a".  Delta = on - off,
in the display units of the benchmark's layout (e.g. VBench in %), or the result's own unit without a
layout.  A delta is green when it goes the better way (``higher_is_better``), red otherwise; p < 0.05 is
printed bold.  A metric whose values are comparable only within one protocol (FVD) names its protocol and
reference set in the metric cell (:mod:`omnieval.leaderboard.comparability`).
"""
from __future__ import annotations

from omnieval.leaderboard.boards import GENERIC_DIGITS, UNIT_SUFFIX
from omnieval.leaderboard.comparability import describe, signature
from omnieval.leaderboard.entries import Run, _num
from omnieval.leaderboard.layouts import Column, Layout, layout_for_task
from omnieval.web.table import Cell, Row, Table, number_cell
from omnieval.web.table import Column as TColumn

NA = "n/a"
SIGNIFICANT = 0.05
COLUMNS = [
    TColumn("model", "Model", numeric=False), TColumn("task", "Task", numeric=False),
    TColumn("metric", "Metric", numeric=False), TColumn("off", "Off"), TColumn("on", "On"), TColumn("delta", "Δ (on − off)"),
    TColumn("ci", "95% CI of Δ", numeric=False), TColumn("p", "p-value"), TColumn("n", "n"),
    TColumn("n_clusters", "clusters"), TColumn("method", "method", numeric=False),
]


def format_p(p: float | None) -> str:
    """A p-value printed exactly enough to read: 4 significant digits, scientific below 1e-4."""
    if p is None:
        return NA
    return f"{p:.3e}" if 0 < p < 1e-4 else f"{p:.4g}"


def _column(layout: Layout | None, key: str, entry: dict) -> Column:
    if layout is not None:
        col = layout.by_result().get(key)
        if col is not None:
            return col
    hib = entry.get("higher_is_better")
    return Column(key=key, label=key, title=key, result=key, higher_is_better=hib if isinstance(hib, bool) else True,
                  digits=GENERIC_DIGITS)


def _order(layout: Layout | None, metrics: dict) -> list[str]:
    if layout is None:
        return list(metrics)
    known = [c.result for c in layout.columns if c.result in metrics]
    return known + [k for k in metrics if k not in known]


def ablation_rows(run: Run, name: str, layouts: dict[str, Layout]) -> list[Row]:
    rows = []
    for task, metrics in run.ablations().items():
        layout = layout_for_task(task, layouts)
        title = layout.title if layout else task
        tags = dict(signature(run, task))  # the protocol of values that are only comparable within it (FVD)
        for key in _order(layout, metrics):
            e = metrics[key]
            col = _column(layout, key, e)
            mark = f" [{describe(tags[key])}]" if key in tags else ""
            s, d = col.scale, col.digits + 1  # deltas one decimal finer than the board
            suffix = UNIT_SUFFIX[col.display]
            delta, stderr, p = _num(e.get("delta")), _num(e.get("stderr")), _num(e.get("p_value"))
            low, high = _num(e.get("ci_low")), _num(e.get("ci_high"))
            if isinstance(e.get("ci"), (list, tuple)) and len(e["ci"]) == 2:
                low, high = map(_num, e["ci"])
            dcell = number_cell(None if delta is None else delta * s, d, signed=True,
                                title=NA if stderr is None else f"stderr {stderr * s:.{d + 2}f}{suffix}")
            if delta is not None and delta != 0:
                dcell.cls = "better" if (delta > 0) == col.higher_is_better else "worse"
            ci = (Cell(text=f"[{low * s:+.{d}f}, {high * s:+.{d}f}]", value=low * s)
                  if low is not None and high is not None else Cell(text=NA))
            pcell = Cell(text=format_p(p), value=p, title="" if p is None else repr(p),
                         cls="sig" if p is not None and p < SIGNIFICANT else "")
            n, nc = e.get("n"), e.get("n_clusters")
            cells = [
                Cell(text=name), Cell(text=title), Cell(text=col.label + (f" ({suffix})" if suffix else "") + mark, title=key),
                number_cell(None if _num(e.get("off")) is None else e["off"] * s, col.digits),
                number_cell(None if _num(e.get("on")) is None else e["on"] * s, col.digits),
                dcell, ci, pcell,
                Cell(text=str(n), value=float(n)) if isinstance(n, int) else Cell(text=NA),
                Cell(text=str(nc), value=float(nc)) if isinstance(nc, int) else Cell(text=NA),
                Cell(text=str(e.get("method") or NA)),
            ]
            rows.append(Row(cells=cells, kind="ours", group=name, title=f"{run.path}: ablations[{task}][{key}]"))
    return rows


def ablation_table(runs: list[tuple[Run, str]], layouts: dict[str, Layout]) -> Table | None:
    rows = [r for run, name in runs for r in ablation_rows(run, name, layouts)]
    if not rows:
        return None
    return Table(id="ablations", title="Think mode: off vs on", columns=list(COLUMNS), rows=rows,
                 caption="Δ = on − off on the same docs and seeds; CI, p-value (two-sided), clusters and method as the "
                         "results file reports them (n/a: not in the file, e.g. schema 1 or a task aggregate).")
