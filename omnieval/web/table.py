"""A table as data, and its Markdown, LaTeX (booktabs), CSV and HTML renderings.

Used by the leaderboards and meant for the run report too.  Conventions:

* ``Cell.text`` is what is printed; ``Cell.value`` is the number behind it (sorting, CSV), ``None`` for
  text or a missing value; ``Cell.rank`` is the number best/second are decided on -- the *printed*
  precision, so values that print the same tie (both bold).
* ``Column.higher_is_better`` ``True``/``False`` ranks the column (best **bold**, second underlined), ``None``
  does not.  Missing values never rank and sort last in both directions (the page script).
* ``Row.group`` separates blocks (published vs ours): a ``\\midrule`` in LaTeX, a class in HTML.
* ``Row.note`` (a footnote number) is printed as a superscript after the first cell; ``Table.footnotes``
  lists them in order.  ``Row.title`` is the row's hover text in HTML.
"""
from __future__ import annotations

import csv
import html
import io
import re
from dataclasses import dataclass, field

MISSING = "–"
WIDE_COLUMNS = 10  # LaTeX tables with more columns are scaled to the line width (\resizebox, graphicx)
_URL = re.compile(r"https?://[^\s)]+")


@dataclass
class Column:
    key: str
    label: str
    title: str = ""
    numeric: bool = True
    higher_is_better: bool | None = None


@dataclass
class Cell:
    text: str = MISSING
    value: float | None = None
    rank: float | None = None
    title: str = ""
    note: str = ""  # a second, smaller line (e.g. the delta to a baseline)
    mark: str = ""  # "best" | "second" (set by mark_best)
    cls: str = ""


@dataclass
class Row:
    cells: list[Cell]
    kind: str = ""  # CSS class and data-kind: "published" | "ours" | ...
    group: str = ""
    title: str = ""
    note: int | None = None  # footnote number


@dataclass
class Table:
    id: str
    title: str
    columns: list[Column]
    rows: list[Row] = field(default_factory=list)
    caption: str = ""
    footnotes: list[str] = field(default_factory=list)


def number_cell(value: float | None, digits: int, *, title: str = "", signed: bool = False) -> Cell:
    """A numeric cell printed with ``digits`` decimals (``+`` sign when ``signed``); ``None`` prints a dash."""
    if value is None:
        return Cell(title=title)
    text = f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
    return Cell(text=text, value=value, rank=round(value, digits), title=title)


def mark_best(table: Table) -> None:
    """Mark the best (bold) and second-best (underlined) values of each ranked column, ties included."""
    for j, col in enumerate(table.columns):
        if col.higher_is_better is None:
            continue
        ranks = sorted({r.cells[j].rank for r in table.rows if r.cells[j].rank is not None},
                       reverse=col.higher_is_better)
        if sum(r.cells[j].rank is not None for r in table.rows) < 2:
            continue
        for row in table.rows:
            cell = row.cells[j]
            cell.mark = "best" if cell.rank is not None and cell.rank == ranks[0] else (
                "second" if len(ranks) > 1 and cell.rank == ranks[1] else "")


# -- Markdown ---------------------------------------------------------------------------------------
def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(table: Table) -> str:
    def cell(c: Cell) -> str:
        t = _md_escape(c.text)
        t = f"**{t}**" if c.mark == "best" else f"<u>{t}</u>" if c.mark == "second" else t
        return f"{t} ({_md_escape(c.note)})" if c.note else t

    arrows = {True: " ↑", False: " ↓", None: ""}
    head = [_md_escape(c.label) + arrows[c.higher_is_better] for c in table.columns]
    align = ["---:" if c.numeric else ":---" for c in table.columns]
    lines = [f"### {table.title}", ""]
    if table.caption:
        lines += [table.caption, ""]
    lines += ["| " + " | ".join(head) + " |", "| " + " | ".join(align) + " |"]
    for row in table.rows:
        cells = [cell(c) for c in row.cells]
        if row.note is not None:
            cells[0] += f" [{row.note}]"
        lines.append("| " + " | ".join(cells) + " |")
    if table.footnotes:
        lines.append("")
        lines += [f"[{i}] {_md_escape(text)}  " for i, text in enumerate(table.footnotes, start=1)]
    return "\n".join(lines) + "\n"


# -- LaTeX ------------------------------------------------------------------------------------------
_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "–": "--", "↑": r"$\uparrow$",
        "↓": r"$\downarrow$", "Δ": r"$\Delta$", "±": r"$\pm$", "−": r"$-$"}


def tex_escape(text: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(text))


def to_latex(table: Table) -> str:
    def cell(c: Cell) -> str:
        t = tex_escape(c.text)
        t = rf"\textbf{{{t}}}" if c.mark == "best" else rf"\underline{{{t}}}" if c.mark == "second" else t
        return rf"{t} {{\scriptsize({tex_escape(c.note)})}}" if c.note else t

    arrows = {True: r" $\uparrow$", False: r" $\downarrow$", None: ""}
    spec = "".join("r" if c.numeric else "l" for c in table.columns)
    lines = [r"\begin{table}[t]", r"\centering", r"\small", rf"\caption{{{tex_escape(table.title)}}}",
             rf"\label{{tab:{table.id}}}"]
    wide = len(table.columns) > WIDE_COLUMNS
    if wide:
        lines.append(r"\resizebox{\linewidth}{!}{%")
    lines += [rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(tex_escape(c.label) + arrows[c.higher_is_better] for c in table.columns) + r" \\", r"\midrule"]
    group = table.rows[0].group if table.rows else ""
    for row in table.rows:
        if row.group != group:
            lines.append(r"\midrule")
            group = row.group
        cells = [cell(c) for c in row.cells]
        if row.note is not None:
            cells[0] += rf"\textsuperscript{{{row.note}}}"
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}" + ("}" if wide else "")]
    if table.footnotes or table.caption:
        lines.append(r"\par\smallskip\footnotesize")
        if table.caption:
            lines.append(tex_escape(table.caption) + r"\par")
        lines += [rf"\textsuperscript{{{i}}}{tex_escape(text)}\par" for i, text in enumerate(table.footnotes, start=1)]
    lines += [r"\end{table}", ""]
    return "\n".join(lines)


# -- CSV --------------------------------------------------------------------------------------------
def to_csv(table: Table, extra: dict[str, list[str]] | None = None) -> str:
    """Wide CSV: one column per table column (the full-precision value in numeric columns, else the text), a
    ``<label> note`` column after each column that has notes, then ``extra`` columns (e.g. kind, source)."""
    noted = [any(r.cells[j].note for r in table.rows) for j in range(len(table.columns))]
    head = []
    for col, has_note in zip(table.columns, noted):
        head += [col.label] + ([f"{col.label} note"] if has_note else [])
    head += list(extra or {})
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(head)
    for i, row in enumerate(table.rows):
        out = []
        for c, col, has_note in zip(row.cells, table.columns, noted):
            numeric = col.numeric and c.value is not None
            out.append(repr(c.value) if numeric else ("" if c.text == MISSING else c.text))
            if has_note:
                out.append(c.note)
        out += [values[i] for values in (extra or {}).values()]
        w.writerow(out)
    return buf.getvalue()


# -- HTML -------------------------------------------------------------------------------------------
def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def linkify(text: str) -> str:
    """Escaped text with its http(s) addresses as links (following a link is not a load at view time)."""
    out, last = [], 0
    for m in _URL.finditer(text):
        out += [esc(text[last:m.start()]), f'<a href="{esc(m.group())}" rel="noopener noreferrer">{esc(m.group())}</a>']
        last = m.end()
    return "".join(out) + esc(text[last:])


def to_html(table: Table) -> str:
    """A ``<table class="sortable">`` (the page script sorts it on a header click) with its footnotes."""
    tid = esc(table.id)
    parts = [f'<table class="sortable board" id="t-{tid}" data-table="{tid}">']
    if table.caption:
        parts.append(f"<caption>{esc(table.caption)}</caption>")
    parts.append("<thead><tr>")
    for col in table.columns:
        hib = "" if col.higher_is_better is None else f' data-higher="{"1" if col.higher_is_better else "0"}"'
        arrow = {True: " ↑", False: " ↓", None: ""}[col.higher_is_better]
        title = f' title="{esc(col.title)}"' if col.title else ""
        parts.append(f'<th scope="col" data-key="{esc(col.key)}" data-type="{"num" if col.numeric else "text"}"{hib}{title}>'
                     f'<button type="button">{esc(col.label)}{arrow}</button></th>')
    parts.append("</tr></thead><tbody>")
    for row in table.rows:
        attrs = f' class="{esc(row.kind)}" data-kind="{esc(row.kind)}"' if row.kind else ""
        attrs += f' data-group="{esc(row.group)}"' if row.group else ""
        attrs += f' title="{esc(row.title)}"' if row.title else ""
        parts.append(f"<tr{attrs}>")
        for j, c in enumerate(row.cells):
            tag = "th" if j == 0 else "td"
            body = esc(c.text)
            if c.mark == "best":
                body = f"<strong>{body}</strong>"
            elif c.mark == "second":
                body = f"<u>{body}</u>"
            if j == 0 and row.kind == "published":
                body += ' <span class="badge">published</span>'
            if j == 0 and row.note is not None:
                body += f'<sup><a href="#fn-{tid}-{row.note}" title="{esc(row.title)}">{row.note}</a></sup>'
            if c.note:
                body += f'<span class="note">{esc(c.note)}</span>'
            cls = " ".join(filter(None, [c.cls, c.mark, "" if table.columns[j].numeric else "text"]))
            a = ' scope="row"' if tag == "th" else ""
            a += f' class="{esc(cls)}"' if cls else ""
            a += f' data-v="{c.value!r}"' if c.value is not None else ""
            a += f' title="{esc(c.title)}"' if c.title else ""
            parts.append(f"<{tag}{a}>{body}</{tag}>")
        parts.append("</tr>")
    parts.append("</tbody></table>")
    if table.footnotes:
        parts.append(f'<ol class="footnotes" id="fn-{tid}">')
        parts += [f'<li id="fn-{tid}-{i}">{linkify(text)}</li>' for i, text in enumerate(table.footnotes, start=1)]
        parts.append("</ol>")
    return "".join(parts)
