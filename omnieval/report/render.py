"""The run report: one self-contained HTML page per output folder (``omnieval report``).

Sections: an overview (model, tasks, items, failures, how media are referenced), one section per task (its metric
table from ``results.json`` with ``group_by`` breakdown rows, the think-mode ablation, the metric options, and the
item gallery of :mod:`omnieval.report.cards`), the failures list (every failed item, linked to its card), and the
provenance (model identity and fingerprint, run configuration, task and config hashes, environment, timing and
counters of the invocation that last wrote ``results.json``, and how the statistics are computed).

Everything is inline (style, scripts, tables); media are linked relative to the page or embedded
(:mod:`omnieval.report.urls`), so the page makes no network request at view time.  Browser copies of videos are
written under ``RUN/report_assets/`` (:mod:`omnieval.report.media`).
"""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from omnieval.errors import OmniEvalError
from omnieval.leaderboard.ablations import COLUMNS, ablation_rows
from omnieval.leaderboard.entries import Run
from omnieval.leaderboard.layouts import load_layouts
from omnieval.progress import progress as progress_bar
from omnieval.report import cards
from omnieval.report.collect import TaskView, collect_task
from omnieval.report.media import DESCRIPTION, AssetWriter
from omnieval.report.urls import DEFAULT_MAX_EMBED_MB, Linker
from omnieval.results import Results, read_results
from omnieval.store import atomic_write_text
from omnieval.web import page as web
from omnieval.web.table import Cell, Column, Row, Table, esc, number_cell, to_html

DIGITS = 4
REPORT_NAME = "report.html"
METRIC_COLUMNS = [Column("metric", "Metric", numeric=False), Column("think", "Think", numeric=False), Column("value", "Value"),
                  Column("ci", "95% CI", numeric=False), Column("stderr", "stderr"), Column("n", "n"),
                  Column("n_clusters", "clusters")]


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text)


# -- tables -----------------------------------------------------------------------------------------
def metric_table(view: TaskView) -> Table | None:
    """Rows: every result name (breakdowns ``metric[field=value]`` included) per think mode, in results order."""
    names: list[str] = []
    for table in view.results.values():
        names += [n for n in table if n not in names]
    rows = []
    for name in names:
        for think, table in view.results.items():
            r = table.get(name)
            if r is None:
                continue
            ci = (Cell(text=f"[{r.ci_low:.{DIGITS}f}, {r.ci_high:.{DIGITS}f}]", value=r.ci_low)
                  if r.ci_low is not None and r.ci_high is not None else Cell(text="n/a"))
            title = "" if not r.missing else f"missing inputs: {', '.join(r.missing)}"
            rows.append(Row(cells=[Cell(text=name, title=title), Cell(text=think), number_cell(r.value, DIGITS), ci,
                                   number_cell(r.stderr, DIGITS + 1),
                                   Cell(text=str(r.n), value=float(r.n)) if r.n is not None else Cell(),
                                   Cell(text=str(r.n_clusters), value=float(r.n_clusters)) if r.n_clusters is not None else Cell()],
                            kind="breakdown" if "[" in name else "overall", group=think))
    if not rows:
        return None
    return Table(id=f"m-{slug(view.task)}", title=f"{view.task}: metrics", columns=list(METRIC_COLUMNS), rows=rows,
                 caption="value over all scored items of the think mode; CI and stderr from the cluster bootstrap over docs "
                         "(see Provenance: statistics); metric[field=value] rows are the group_by breakdown.")


def ablation_table(view: TaskView) -> Table | None:
    """The leaderboard's ablation rows for this task (off / on / Δ, CI, exact p), without its model and task columns."""
    if not view.ablations:
        return None
    data = {"ablations": {view.task: {k: dataclasses.asdict(v) for k, v in view.ablations.items()}}}
    rows = ablation_rows(Run(Path("."), data), "", load_layouts())
    keep = [i for i, c in enumerate(COLUMNS) if c.key not in ("model", "task")]
    for row in rows:
        row.cells = [row.cells[i] for i in keep]
        row.group = row.title = ""
    return Table(id=f"a-{slug(view.task)}", title=f"{view.task}: think off vs on", columns=[COLUMNS[i] for i in keep],
                 rows=rows, caption="Δ = on − off over the items present in both modes (same docs and seeds); 95% CI from the "
                                    "paired cluster bootstrap, p from the exact sign-flip test over docs.")


def kv_table(pairs: list[tuple[str, Any]], cls: str = "kv") -> str:
    rows = "".join(f'<tr><th scope="row">{esc(k)}</th><td>{_value_html(v)}</td></tr>' for k, v in pairs)
    return f'<table class="{cls}"><tbody>{rows}</tbody></table>'


def _value_html(v: Any) -> str:
    if isinstance(v, (dict, list)):
        return f"<code>{esc(json.dumps(v, sort_keys=True, default=str))}</code>"
    return esc("–" if v is None else v)


# -- sections ---------------------------------------------------------------------------------------
def task_section(view: TaskView, results: Results | None, run_dir: Path, media: cards.MediaHTML, bar) -> web.Section:
    cfg, cap = view.plan.cfg, view.plan.capability
    sid = slug(view.task)
    facts = (f'<p class="task-facts" data-task="{esc(view.task)}"><b>{esc(cap.name)}</b> · {len(view.plan.docs)} docs · '
             f'{len(view.plan.items)} items · think {"/".join(view.modes)} · {len(view.failures)} failures'
             f'{" · " + esc(cfg.description) if cfg.description else ""}</p>')
    body = [facts]
    table = metric_table(view)
    body.append(web.scroll(to_html(table)) if table else '<p class="muted">no results for this task in results.json '
                                                         '(run <code>omnieval score</code> to aggregate them)</p>')
    abl = ablation_table(view)
    if abl is not None:
        body.append(f"<h3>Think off vs on</h3>{web.scroll(to_html(abl))}")
    options = (results.metric_options.get(view.task) if results else None) or {s.result_label: {"name": s.name, "options": s.options}
                                                                               for s in view.plan.metrics}
    body.append(f'<details class="options"><summary>metric options</summary>{kv_table(list(options.items()))}</details>')
    body += [f'<p class="note">{esc(n)}</p>' for n in view.notes]
    body.append(f"<h3>Items</h3>{cards.gallery(view, f'items-{sid}', run_dir, media, bar)}")
    return web.Section(f"task-{sid}", view.task, "".join(body))


def failures_section(views: list[TaskView]) -> web.Section:
    rows = []
    for view in views:
        for pair, item_view, f in view.failures:
            it = item_view.item
            cells = [esc(view.task), f'<a href="#{pair.anchor}">{esc(it.doc.id)}</a>', str(it.sample_index), it.think,
                     esc(f.metric) or "–", esc(f.kind), esc(f.detail)]
            rows.append(f'<tr data-task="{esc(view.task)}" data-kind="{esc(f.kind)}">'
                        + "".join(f'<td class="text">{c}</td>' for c in cells) + "</tr>")
    if not rows:
        return web.Section("failures", "Failures", '<p class="none">No failures: every item has its output and every score.</p>')
    head = "".join(f'<th scope="col" data-type="text"><button type="button">{h}</button></th>'
                   for h in ("Task", "Doc", "Sample", "Think", "Metric", "Kind", "Detail"))
    table = (f'<table class="sortable board failures-table" id="t-failures"><thead><tr>{head}</tr></thead>'
             f'<tbody>{"".join(rows)}</tbody></table>')
    return web.Section("failures", f"Failures ({len(rows)})",
                       '<p class="muted">Model errors, items without output, missing scores, RETRY-marked and '
                       'metric-reported failures (see omnieval/report/failures.py). Failed items are never scored as 0.</p>'
                       + web.scroll(table))


def provenance_section(runner, results: Results | None, views: list[TaskView]) -> web.Section:
    model = results.model if results and results.model else None
    ident = runner.identity
    parts = ["<h3>Model</h3>", kv_table([("name", model.name if model else ident.name),
                                          ("arguments", model.args if model else ident.args),
                                          ("fingerprint", model.fingerprint if model else ident.fingerprint)])]
    run_cfg = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(runner.run).items()}
    parts += ["<h3>Run configuration</h3>", kv_table([(k, v) for k, v in run_cfg.items() if k not in ("rank", "world_size")])]
    trows = []
    for view in views:
        h = results.task_hashes.get(view.task) if results else None
        cfg = view.plan.cfg
        trows.append([view.task, cfg.config_hash(), h.config if h else "–", h.generation if h else cfg.generation_hash(),
                      h.docs if h else "–", h.scores if h else "–", str(cfg.source_file or "")])
    head = "".join(f"<th>{esc(x)}</th>" for x in ("task", "config hash (now)", "config hash (results.json)", "generation hash",
                                                   "docs hash", "scores hash", "task file"))
    body = "".join("<tr>" + "".join(f'<td class="text"><code>{esc(c)}</code></td>' for c in r) + "</tr>" for r in trows)
    parts += ["<h3>Tasks</h3>", web.scroll(f'<table class="board hashes"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')]
    if results is not None:
        env = dict(results.environment or {})
        packages = env.pop("packages", {}) or {}
        parts += ["<h3>Environment</h3>", kv_table(list(env.items())),
                  f'<details><summary>packages ({len(packages)})</summary>{kv_table(sorted(packages.items()))}</details>',
                  "<h3>Timing and counters</h3>",
                  '<p class="muted">of the invocation that last wrote results.json (a resumed run counts only its own work)</p>',
                  kv_table([(f"{k} (s)" if k.endswith("_s") else k, round(v, 3) if isinstance(v, float) else v)
                            for k, v in {**vars(results.timing), **vars(results.counters)}.items()]),
                  "<h3>Statistics</h3>",
                  "<dl class=\"stats\">" + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in results.statistics.items()) + "</dl>"]
    else:
        parts.append('<p class="muted">no results.json in the run folder: environment, timing and statistics are unknown</p>')
    return web.Section("provenance", "Provenance", "".join(parts))


def overview(runner, results: Results | None, views: list[TaskView], media: cards.MediaHTML, linker: Linker) -> web.Section:
    n_items = sum(len(v.plan.items) for v in views)
    n_fail = sum(len(v.failures) for v in views)
    rows = "".join(f'<tr><th scope="row"><a href="#task-{slug(v.task)}">{esc(v.task)}</a></th><td>{esc(v.plan.capability.name)}</td>'
                   f'<td>{len(v.plan.docs)}</td><td>{len(v.plan.items)}</td><td>{"/".join(v.modes)}</td>'
                   f'<td>{len(v.failures)}</td></tr>' for v in views)
    table = (f'<table class="board overview"><thead><tr><th>task</th><th>capability</th><th>docs</th><th>items</th><th>think</th>'
             f'<th>failures</th></tr></thead><tbody>{rows}</tbody></table>')
    notes = [f"{n_items} items in {len(views)} tasks; {n_fail} failures.", linker.summary()]
    if media.videos:
        notes.append(f"Videos are shown from browser-playable copies in {runner.store.root.name}/report_assets/ ({DESCRIPTION}); "
                     "the run stores them losslessly as RGB H.264 (libx264rgb), which browsers do not play, and each card "
                     "links that stored file.")
    if results is None:
        notes.append("No results.json: the metric tables are empty; per-item scores come from the store.")
    return web.Section("overview", "Overview", web.scroll(table) + "".join(f'<p class="note">{esc(n)}</p>' for n in notes))


# -- entry point ------------------------------------------------------------------------------------
def write_report(runner, out: Path | None = None, *, embed: bool = False, max_embed_mb: float = DEFAULT_MAX_EMBED_MB,
                 show_progress: bool = True) -> Path:
    """Write the report of ``runner``'s output folder (a :class:`~omnieval.runner.Runner` made from the saved run
    configuration; the model is never loaded) to ``out`` (default ``RUN/report.html``); returns the path."""
    if max_embed_mb < 0:
        raise OmniEvalError(f"--max-embed-mb must be >= 0, got {max_embed_mb}")
    run_dir = Path(runner.run.output_path).resolve()
    out = Path(out) if out is not None else run_dir / REPORT_NAME
    if out.exists() and out.is_dir():
        out = out / REPORT_NAME
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OmniEvalError(f"--out {out}: cannot create its folder ({exc.strerror})") from exc
    results = read_results(run_dir) if (run_dir / "results.json").is_file() else None
    plans = runner.plan()
    views = [collect_task(plan, runner.store, results, runner.metric) for plan in plans]
    linker = Linker(out.parent, embed=embed, max_embed_mb=max_embed_mb)
    media = cards.MediaHTML(AssetWriter(run_dir), linker)
    bar = progress_bar(sum(len(v.plan.items) for v in views), "report", enabled=show_progress)
    sections = [task_section(v, results, run_dir, media, bar) for v in views]
    bar.close()
    sections += [failures_section(views), provenance_section(runner, results, views)]
    name = results.model.name if results and results.model else runner.identity.name
    sections.insert(0, overview(runner, results, views, media, linker))
    html = web.page(f"omnieval report: {name}", sections, subtitle=str(run_dir), extra=("report.css", "report.js"),
                    footer="Rendered by omnieval report from the run folder (no model loaded).")
    atomic_write_text(out, html)
    return out
