"""``omnieval leaderboard``: boards from results folders and published rows, in Markdown, CSV, LaTeX and one
self-contained HTML page.

Written to ``--out``:

* ``board.html`` -- the page: one sortable table per benchmark in the papers' layout (``layouts.yaml``) with its
  plots (VBench radars, GenEval tag bars), the think-mode ablation table, and with ``--compare`` the checkpoint
  comparison with metric-vs-step plots.  No network at view time (inline CSS, script and SVG).
* ``board.md``, ``board.tex`` (booktabs; best ``\\textbf``, second ``\\underline``), ``board.csv`` (every cell of
  every benchmark table in long form) and ``tables/<id>.csv`` (each table wide);
* ``ablations.{md,tex,csv}`` when a results file has think on/off pairs;
* ``checkpoints.{md,tex,csv}`` and ``tables/ckpt-<task>.csv`` with ``--compare``.

Also kept here: :func:`results_table` (the terminal table ``omnieval run`` prints), :func:`published_rows` and
:func:`board_name` (long-form published numbers named like our results).
"""
from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path
from typing import Any

from omnieval.errors import OmniEvalError
from omnieval.leaderboard import ablations as ablation_mod
from omnieval.leaderboard import checkpoints as ckpt_mod
from omnieval.leaderboard.boards import Board, build_board, generic_layout
from omnieval.leaderboard.comparability import split_rows
from omnieval.leaderboard.entries import (
    META_COLUMNS,
    PUBLISHED_DIR,
    Run,
    load_results,
    load_runs,
    published_board_rows,
    published_model,
    published_number,
    read_published,
    run_names,
    run_rows,
)
from omnieval.leaderboard.layouts import load_layouts
from omnieval.web import page as web
from omnieval.web.table import Table, esc, to_csv, to_html, to_latex, to_markdown

__all__ = ["PUBLISHED_DIR", "board_name", "load_results", "published_rows", "render_boards", "results_table"]


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def results_table(data: dict) -> str:
    """A plain-text table of one results.json: task | metric | value | stderr | 95% CI | n (docs) | p (ablations)."""
    def ci(r: dict) -> str:
        lo, hi = r.get("ci_low"), r.get("ci_high")
        return "-" if lo is None or hi is None else f"[{_fmt(lo)}, {_fmt(hi)}]"

    def n(r: dict) -> str:
        return f"{r.get('n', '')}" + (f" ({r['n_clusters']})" if r.get("n_clusters") is not None else "")

    rows = [("task", "metric", "value", "stderr", "95% CI", "n (docs)", "p")]
    for task, metrics in sorted(data.get("results", {}).items()):
        for name, r in sorted(metrics.items()):
            rows.append((task, name, _fmt(r.get("value")), _fmt(r.get("stderr")), ci(r), n(r), ""))
    for task, metrics in sorted(data.get("ablations", {}).items()):
        for name, r in sorted(metrics.items()):
            rows.append((f"{task} (think on-off)", name, _fmt(r.get("delta")), _fmt(r.get("stderr")), ci(r), n(r),
                         _fmt(r.get("p_value"))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def board_name(metric: str) -> str:
    """The name a result has on boards, matching the published tables' columns:
    ``vbench_subject_consistency/subject_consistency`` -> ``subject_consistency``, ``vbench_total`` -> ``total``."""
    return metric.rsplit("/", 1)[-1].removeprefix("vbench_")


def published_rows(published_dir: Path = PUBLISHED_DIR) -> list[dict]:
    """Rows of ``leaderboards/published/*.csv`` in long form (model, task, metric, value, source), in fractions
    (a row with ``unit: percent`` is divided by 100)."""
    out = []
    for path in sorted(Path(published_dir).glob("*.csv")):
        for rec in read_published(path):
            scale = 0.01 if rec.get("unit") == "percent" else 1.0
            for key in rec:
                if key in META_COLUMNS:
                    continue
                number = published_number(path, rec, key)
                if number is not None:
                    out.append({"model": published_model(rec), "checkpoint": "published", "task": path.stem, "metric": key,
                                "value": number * scale, "stderr": None, "n": None, "source": rec["source"]})
    return out


# -- assembling ---------------------------------------------------------------------------------------
def boards_for(runs: list[Run], include_published: bool, published_dir: Path) -> list[Board]:
    """One board per benchmark layout that has rows (ours, or published with ``include_published``), in the
    layouts' order, then one per task of our runs without a layout."""
    layouts = load_layouts()
    ours = run_rows(runs)
    boards = []
    for layout in layouts.values():
        rows = (published_board_rows(layout, published_dir) if include_published else []) + ours.pop(layout.task, [])
        if rows:
            boards += _comparable_boards(layout, rows)
    for task, rows in ours.items():
        boards += _comparable_boards(generic_layout(task, rows), rows)
    return boards


def _comparable_boards(layout, rows) -> list[Board]:
    """One board, or one per protocol where the rows' values are not comparable (e.g. FVDs of different protocols or
    reference sets; :mod:`omnieval.leaderboard.comparability`)."""
    groups = split_rows(layout.task, rows)
    if len(groups) == 1:
        return [build_board(layout, rows)]
    return [build_board(dataclasses.replace(layout, id=f"{layout.id}-{i + 1}", title=f"{layout.title} [{suffix}]"), members)
            for i, (suffix, members) in enumerate(groups)]


def _long_csv(tables: list[Table]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["table", "row", "kind", "source", "column", "value", "text", "mark"])
    for t in tables:
        for row in t.rows:
            source = row.title.split(": ", 1)[-1]
            for col, cell in zip(t.columns[1:], row.cells[1:]):
                if cell.value is not None:
                    w.writerow([t.id, row.cells[0].text, row.kind, source, col.key, repr(cell.value), cell.text, cell.mark])
    return buf.getvalue()


def _write(path: Path, text: str, written: list[Path]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    written.append(path)


def _board_html(board: Board) -> str:
    figs = web.figures([web.figure(s, c) for s, c in board.figures])
    notes = "".join(f'<p class="muted">{esc(n)}</p>' for n in board.notes)
    return web.scroll(to_html(board.table)) + figs + notes


def render_boards(paths: list[Path | str | tuple[Path | str, list[str]]], out: Path, include_published: bool = False, *,
                  compare: bool = False, baseline: str | None = None, published_dir: Path = PUBLISHED_DIR,
                  title: str = "omnieval leaderboard") -> list[Path]:
    """Render every output of the module docstring into ``out``; ``paths`` are results folders/files, each
    optionally with its ``--label`` strings (``(path, ["step=1000,name=ck1"])``).  Returns the files written."""
    specs = [p if isinstance(p, tuple) else (p, []) for p in paths]
    runs = load_runs(specs)
    if (compare or baseline) and len(runs) < 2:
        raise OmniEvalError("--compare needs at least two --results folders (checkpoints of the same tasks)")
    boards = boards_for(runs, include_published, Path(published_dir))
    layouts = load_layouts()
    ablation = ablation_mod.ablation_table(list(zip(runs, run_names(runs))), layouts)
    comparisons = []
    if compare or baseline:
        cks = ckpt_mod.checkpoints(runs)
        comparisons = ckpt_mod.compare(cks, ckpt_mod.pick_baseline(cks, baseline), layouts)
    if not boards and ablation is None:
        raise OmniEvalError("nothing to render: give --results folders and/or --published")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OmniEvalError(f"--out {out} is not a writable folder: {exc.strerror}") from exc

    written: list[Path] = []
    tables = [b.table for b in boards]
    _write(out / "board.md", "# Leaderboards\n\n" + "\n".join(to_markdown(t) for t in tables), written)
    _write(out / "board.tex", "% \\usepackage{booktabs,graphicx}\n" + "\n".join(to_latex(t) for t in tables), written)
    _write(out / "board.csv", _long_csv(tables), written)
    for t in tables:
        extra = {"kind": [r.kind for r in t.rows], "source": [r.title.split(": ", 1)[-1] for r in t.rows]}
        _write(out / "tables" / f"{t.id}.csv", to_csv(t, extra), written)
    sections = [web.Section("benchmarks", "Benchmarks", "")] if boards else []
    sections += [web.Section(f"board-{b.table.id}", b.table.title, _board_html(b), level=3) for b in boards]
    if ablation is not None:
        _write(out / "ablations.md", to_markdown(ablation), written)
        _write(out / "ablations.tex", to_latex(ablation), written)
        _write(out / "ablations.csv", to_csv(ablation), written)
        sections.append(web.Section("ablations", ablation.title, web.scroll(to_html(ablation))))
    if comparisons:
        ctables = [c.table for c in comparisons]
        _write(out / "checkpoints.md", "\n".join(to_markdown(t) for t in ctables), written)
        _write(out / "checkpoints.tex", "\n".join(to_latex(t) for t in ctables), written)
        _write(out / "checkpoints.csv", _long_csv(ctables), written)
        for t in ctables:
            _write(out / "tables" / f"{t.id}.csv", to_csv(t), written)
        sections.append(web.Section("checkpoints", "Checkpoints", ""))
        for c in comparisons:
            body = web.scroll(to_html(c.table)) + web.figures([web.figure(s, cap) for s, cap in c.figures])
            body += "".join(f'<p class="muted">{esc(n)}</p>' for n in c.notes)
            sections.append(web.Section(c.table.id, c.table.title, body, level=3))
    sub = ", ".join(filter(None, [f"{len(runs)} results file(s)" if runs else "", "published rows" if include_published else ""]))
    _write(out / "board.html", web.page(title, sections, subtitle=sub, footer="Rendered by omnieval leaderboard."), written)
    return written
