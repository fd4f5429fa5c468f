"""The item gallery of one task: a card per (doc, sample index) with think off and on side by side, and its controls.

A card (``article.pair``) shows the prompt as sent, the input media (edits, QA) and reference, and per think mode: the
output (image, playable video, or the answer text), the rewritten prompt (think on: the generation record's
``info.rewritten_prompt``), the stored score fields and failures; under the sides a table of every
per-item value per mode with ``Δ = on − off``.  Attributes for the page script (``report.js``):

* ``data-index``: the card's position in plan order (doc order; the stable tie-break of every sort);
* ``data-keys``: JSON ``{"off:<name>": v, "on:<name>": v, "delta:<name>": d}`` of the values the sort buttons use;
* ``data-failed``: ``1`` when any side has a failure; ``data-text``: doc id and prompt for the text filter.

Videos are ``<video controls preload="none">`` (nothing is fetched before play) whose poster is set by the script
when the card comes near the viewport (``data-poster``); images are ``loading="lazy"``.
"""
from __future__ import annotations

import json
from typing import Any

from omnieval.errors import MediaError
from omnieval.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from omnieval.metrics.base import RETRY
from omnieval.report.collect import ItemView, Pair, TaskView
from omnieval.report.media import AssetWriter, ImageCopy, VideoCopy
from omnieval.report.urls import Linker
from omnieval.tasks import resolve_media_path
from omnieval.web.table import esc

TINY = 128  # images and videos narrower than this are drawn pixelated (upscaled without smoothing)
FIELD_TEXT_LIMIT = 400
THINK_LABEL = {"off": "think off", "on": "think on"}


def fmt(value: float | None, digits: int = 4, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


class MediaHTML:
    """HTML for one media file: makes its browser copy (videos) and asks the linker for its URL."""

    def __init__(self, assets: AssetWriter, linker: Linker):
        self.assets, self.linker = assets, linker
        self.videos = 0

    def html(self, path, sha256: str | None = None, *, role: str, copy: bool = True, original: bool = False) -> str:
        try:
            made = self.assets.media(path, sha256, copy=copy)
        except (MediaError, OSError) as exc:
            return f'<p class="media-error">{esc(role)}: cannot show {esc(path)}: {esc(exc)}</p>'
        px = " px" if made.width < TINY else ""
        if isinstance(made, ImageCopy):
            return (f'<img class="media{px}" data-role="{esc(role)}" src="{esc(self.linker.url(made.path))}" loading="lazy" '
                    f'width="{made.width}" height="{made.height}" alt="{esc(role)}">')
        assert isinstance(made, VideoCopy)
        self.videos += 1
        link = ""
        if original:
            link = (f'<a class="original" href="{esc(self.linker.relative(path))}" download>stored file (lossless RGB)</a>')
        return (f'<video class="media{px}" data-role="{esc(role)}" controls preload="none" playsinline '
                f'width="{made.width}" height="{made.height}" data-frames="{made.frames}" data-fps="{made.fps:g}" '
                f'data-poster="{esc(self.linker.url(made.poster))}">'
                f'<source src="{esc(self.linker.url(made.path))}" type="{esc(made.mime)}"></video>{link}')


def _fields_html(view: ItemView) -> str:
    """Per metric, its text fields (parsed answer, target, reasons) and notes; the generation record (seed, seconds,
    the model's info) and every stored score record in one <details>."""
    visible, records = [], []
    if view.record is not None:
        gen = {k: view.record.get(k) for k in ("seed", "seconds", "info", "artifact", "artifact_sha256") if k in view.record}
        records.append(f"<dt>generation</dt><dd><code>{esc(json.dumps(gen, sort_keys=True, default=str, ensure_ascii=False))}</code></dd>")
    for m in view.metrics:
        text = {k: v for k, v in m.fields.items() if isinstance(v, str) and k != RETRY}
        note = f'<span class="muted">{esc(m.note)}</span>' if m.note else ""
        if text or note:
            shown = "".join(f'<span class="field"><b>{esc(k)}</b> {esc(_clip(v))}</span>' for k, v in text.items())
            visible.append(f'<div class="metric-fields" data-metric="{esc(m.label)}"><span class="metric">{esc(m.label)}</span>'
                           f'{shown}{note}</div>')
        raw = json.dumps(m.fields, sort_keys=True, default=str, ensure_ascii=False)
        records.append(f"<dt>{esc(m.label)}</dt><dd><code>{esc(raw)}</code></dd>")
    if not records:
        return "".join(visible)
    return "".join(visible) + (f'<details class="records"><summary>stored records ({len(records)})</summary>'
                               f'<dl>{"".join(records)}</dl></details>')


def _clip(text: str) -> str:
    return text if len(text) <= FIELD_TEXT_LIMIT else text[:FIELD_TEXT_LIMIT] + "…"


def _failures_html(view: ItemView) -> str:
    if not view.failures:
        return ""
    items = "".join(f'<li><b>{esc(f.kind)}</b>{" · " + esc(f.metric) if f.metric else ""}: {esc(f.detail)}</li>'
                    for f in view.failures)
    return f'<ul class="failures">{items}</ul>'


def _reference(task: TaskView, pair: Pair, media: MediaHTML) -> str:
    cfg = task.plan.cfg
    ref = pair.item.doc.get(cfg.fields.reference) if cfg.fields.reference else None
    if ref is None:
        return ""
    if isinstance(ref, str) and ref.lower().endswith(VIDEO_SUFFIXES + IMAGE_SUFFIXES):
        return f'<figure class="input"><figcaption>reference</figcaption>{media.html(resolve_media_path(pair.item.doc, ref), role="reference")}</figure>'
    label = "reference answer" if task.plan.capability.output == "text" else "reference"
    return f'<p class="reference"><b>{label}</b> {esc(ref)}</p>'


def _inputs(task: TaskView, pair: Pair, media: MediaHTML) -> str:
    cfg, cap = task.plan.cfg, task.plan.capability
    out = []
    if cap.takes_media and cfg.fields.media:
        value = pair.item.doc.get(cfg.fields.media)
        if value is None:
            out.append(f'<p class="media-error">input: doc has no field {esc(cfg.fields.media)}</p>')
        else:
            path = resolve_media_path(pair.item.doc, str(value), cfg.dataset.media_template)
            out.append(f'<figure class="input"><figcaption>input {esc(value)}</figcaption>{media.html(path, role="input")}</figure>')
    out.append(_reference(task, pair, media))
    return f'<div class="inputs">{"".join(out)}</div>' if any(out) else ""


def _side(view: ItemView, run_dir, media: MediaHTML) -> str:
    think = view.item.think
    parts = [f'<h5>{THINK_LABEL[think]}</h5>']
    if view.artifact:
        rec = view.record or {}
        parts.append(media.html(run_dir / view.artifact, rec.get("artifact_sha256"), role="output", copy=False, original=True))
    elif view.response is not None:
        parts.append(f'<blockquote class="answer" data-role="answer">{esc(view.response)}</blockquote>')
    if think == "on":  # under the output, so the two sides' outputs line up
        rp = view.rewritten_prompt
        parts.append(f'<p class="rewritten"><b>rewritten prompt</b> {esc(rp)}</p>' if rp is not None
                     else '<p class="rewritten muted">no rewritten prompt recorded</p>')
    parts.append(_fields_html(view))
    parts.append(_failures_html(view))
    return f'<section class="side" data-think="{think}">{"".join(parts)}</section>'


def _scores_table(task: TaskView, pair: Pair) -> str:
    modes = [m for m in task.modes if m in pair.sides]
    both = len(modes) == 2
    head = "".join(f"<th>{THINK_LABEL[m]}</th>" for m in modes) + ("<th>Δ on − off</th>" if both else "")
    deltas = pair.deltas
    rows = []
    for sn in task.names:
        vals = [pair.sides[m].values.get(sn.name) for m in modes]
        if all(v is None for v in vals):
            continue
        cells = "".join(f'<td data-v="{v!r}">{fmt(v)}</td>' if v is not None else "<td>–</td>" for v in vals)
        if both:
            d = deltas.get(sn.name)
            cls = "" if not d else (' class="better"' if (d > 0) == sn.higher_is_better else ' class="worse"')
            cells += f'<td{cls} data-delta="{d!r}">{fmt(d, signed=True)}</td>' if d is not None else "<td>–</td>"
        arrow = "↑" if sn.higher_is_better else "↓"
        rows.append(f'<tr data-name="{esc(sn.name)}"><th scope="row">{esc(sn.name)} {arrow}</th>{cells}</tr>')
    if not rows:
        return '<p class="muted">no per-item values</p>'
    return f'<table class="scores"><thead><tr><th>score</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def sort_keys(pair: Pair) -> dict[str, Any]:
    keys: dict[str, Any] = {}
    for mode, view in pair.sides.items():
        keys.update({f"{mode}:{k}": v for k, v in view.values.items()})
    keys.update({f"delta:{k}": v for k, v in pair.deltas.items()})
    return keys


def card(task: TaskView, pair: Pair, index: int, run_dir, media: MediaHTML) -> str:
    it = pair.item
    sides = "".join(_side(pair.sides[m], run_dir, media) for m in task.modes if m in pair.sides)
    failed = "1" if pair.failures else "0"
    text = f"{it.doc.id} {it.prompt}".lower()
    head = (f'<header><h4><a href="#{pair.anchor}">doc {esc(it.doc.id)}</a> · sample {it.sample_index} · seed {it.seed}</h4>'
            f'<pre class="prompt" data-role="prompt">{esc(it.prompt)}</pre>{_inputs(task, pair, media)}</header>')
    return (f'<article class="pair" id="{pair.anchor}" data-index="{index}" data-doc="{esc(it.doc.id)}" '
            f'data-sample="{it.sample_index}" data-failed="{failed}" data-text="{esc(text)}" '
            f"data-keys=\"{esc(json.dumps(sort_keys(pair), sort_keys=True))}\">"
            f'{head}<div class="sides n{len(pair.sides)}">{sides}</div>{_scores_table(task, pair)}</article>')


def controls(task: TaskView, target: str) -> str:
    """Sort buttons (doc order; per value: each mode and Δ), the failures-only switch, a text filter, the count."""
    both = task.modes == ["off", "on"]
    groups = ['<button type="button" class="sort-key" data-key="" aria-pressed="true">doc order</button>']
    for sn in task.names:
        hib = "1" if sn.higher_is_better else "0"
        buttons = "".join(f'<button type="button" class="sort-key" data-key="{m}:{esc(sn.name)}" data-higher="{hib}">'
                          f'{"off" if m == "off" else "on"}</button>' for m in task.modes)
        if both:
            buttons += f'<button type="button" class="sort-key" data-key="delta:{esc(sn.name)}" data-higher="{hib}">Δ</button>'
        groups.append(f'<span class="sort-group"><span class="sort-name">{esc(sn.name)}</span>{buttons}</span>')
    n_failed = sum(bool(p.failures) for p in task.pairs)
    return (f'<div class="item-controls" data-for="{target}"><span class="label">Sort</span>{"".join(groups)}'
            f'<label class="only-failures-label"><input type="checkbox" class="only-failures"> failures only ({n_failed})</label>'
            f'<input type="search" class="filter-text" placeholder="filter: doc id or prompt" aria-label="filter items">'
            f'<span class="shown">showing <b>{len(task.pairs)}</b> of {len(task.pairs)}</span></div>')


def gallery(task: TaskView, target: str, run_dir, media: MediaHTML, progress=None) -> str:
    cards = []
    for i, pair in enumerate(task.pairs):
        cards.append(card(task, pair, i, run_dir, media))
        if progress is not None:
            progress.update(len(pair.sides))
    return controls(task, target) + f'<div class="items" id="{target}">{"".join(cards)}</div>'
