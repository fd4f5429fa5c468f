"""One self-contained HTML page: inline CSS and script, inline SVG figures, nothing loaded at view time.

``page(title, sections)`` wraps sections (each a heading and an HTML body) with a table of contents, the
stylesheet ``assets/style.css`` and the table-sorting script ``assets/sortable.js`` (vanilla JS: a click on a
header of any ``table.sortable`` sorts it), plus any ``extra`` assets (``.css`` inlined as a style, ``.js`` as a
script, e.g. the run report's ``report.css`` / ``report.js``).  Shared by ``omnieval leaderboard`` and the run report.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from omnieval.web.table import esc

ASSETS = Path(__file__).with_name("assets")


@cache
def asset(name: str) -> str:
    return (ASSETS / name).read_text(encoding="utf-8")


@dataclass
class Section:
    id: str
    title: str
    body: str  # HTML
    level: int = 2


def figure(svg: str, caption: str = "") -> str:
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f"<figure>{svg}{cap}</figure>"


def figures(items: list[str]) -> str:
    return f'<div class="figures">{"".join(items)}</div>' if items else ""


def scroll(html: str) -> str:
    """Wrap a wide element so it scrolls sideways instead of widening the page."""
    return f'<div class="scroll">{html}</div>'


def page(title: str, sections: list[Section], subtitle: str = "", footer: str = "", extra: tuple[str, ...] = ()) -> str:
    toc = "".join(f'<a class="toc{s.level}" href="#{esc(s.id)}">{esc(s.title)}</a>' for s in sections)
    body = []
    for s in sections:
        h = f"h{s.level}"
        body.append(f'<section id="{esc(s.id)}"><{h}>{esc(s.title)}</{h}>{s.body}</section>')
    sub = f'<p class="subtitle">{esc(subtitle)}</p>' if subtitle else ""
    foot = f"<footer>{esc(footer)}</footer>" if footer else ""
    styles = "".join(f"<style>{asset(n)}</style>" for n in extra if n.endswith(".css"))
    scripts = "".join(f"<script>{asset(n)}</script>" for n in extra if n.endswith(".js"))
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{asset('style.css')}</style>{styles}</head>"
        f'<body><header><h1>{esc(title)}</h1>{sub}<nav class="toc">{toc}</nav></header>'
        f'<main>{"".join(body)}</main>{foot}'
        f"<script>{asset('sortable.js')}</script>{scripts}</body></html>\n"
    )
