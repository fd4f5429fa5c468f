"""Hand-written inline SVG plots (no plotting library, no fonts or scripts to load): radar, grouped bars, lines.

Every mark carries a ``<title>`` (the exact value on hover).  Coordinates are rounded to 0.1 px so the
output is deterministic.  Values that are ``None`` are left out (a gap, never a zero).
"""
from __future__ import annotations

import math

from omnieval.web.table import esc

PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac")


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _f(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _svg(width: float, height: float, title: str, kind: str, body: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="plot plot-{kind}" width="{_f(width)}" height="{_f(height)}" '
            f'viewBox="0 0 {_f(width)} {_f(height)}" role="img" aria-label="{esc(title)}"><title>{esc(title)}</title>'
            + "".join(body) + "</svg>")


def _text(x: float, y: float, text: str, *, anchor: str = "middle", size: int = 11, fill: str = "#333", extra: str = "") -> str:
    return (f'<text x="{_f(x)}" y="{_f(y)}" text-anchor="{anchor}" font-size="{size}" fill="{fill}"{extra}>'
            f"{esc(text)}</text>")


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values (1, 2, 5 x 10^k steps) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi <= lo:
        lo, hi = lo - (abs(lo) or 1) * 0.05, hi + (abs(hi) or 1) * 0.05
    raw = (hi - lo) / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks, t = [], start
    while t < hi + step * 0.5:
        ticks.append(round(t, 10))
        if t >= hi:
            break
        t += step
    return ticks


def _tick_label(v: float, ticks: list[float]) -> str:
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    digits = max(0, -math.floor(math.log10(step) + 1e-9)) if step < 1 else 0
    if step != round(step, digits):
        digits += 1
    return f"{v:.{digits}f}"


def legend(names: list[str], x: float, y: float) -> list[str]:
    out, cx = [], x
    for i, name in enumerate(names):
        out.append(f'<rect x="{_f(cx)}" y="{_f(y - 9)}" width="10" height="10" fill="{color(i)}"/>')
        out.append(_text(cx + 14, y, name, anchor="start", size=11))
        cx += 24 + 6.5 * len(name)
    return out


def radar(axes: list[str], values: list[float | None], labels: list[str], title: str, *, series_color: str = PALETTE[0],
          radius: float = 92) -> str:
    """One polygon over ``axes``; ``values`` in [0, 1] (radius fraction, drawn clipped to [0, 1.1]); ``labels``
    are the hover texts of the points.  Rings at 0.25, 0.5, 0.75, 1."""
    pad_x, pad_y = 88, 22
    cx, cy = radius + pad_x, radius + pad_y
    w, h = 2 * (radius + pad_x), 2 * (radius + pad_y)
    n = len(axes)
    ang = [-math.pi / 2 + 2 * math.pi * i / n for i in range(n)]
    body = []
    for ring in (0.25, 0.5, 0.75, 1.0):
        pts = " ".join(f"{_f(cx + radius * ring * math.cos(a))},{_f(cy + radius * ring * math.sin(a))}" for a in ang)
        body.append(f'<polygon points="{pts}" fill="none" stroke="#d5dbe3" stroke-width="1"/>')
    for a, name in zip(ang, axes):
        x, y = cx + radius * math.cos(a), cy + radius * math.sin(a)
        body.append(f'<line x1="{_f(cx)}" y1="{_f(cy)}" x2="{_f(x)}" y2="{_f(y)}" stroke="#d5dbe3"/>')
        lx, ly = cx + (radius + 10) * math.cos(a), cy + (radius + 10) * math.sin(a) + 4
        anchor = "middle" if abs(math.cos(a)) < 0.3 else ("start" if math.cos(a) > 0 else "end")
        body.append(_text(lx, ly, name, anchor=anchor, size=10, fill="#555"))
    pts = [(a, min(max(v, 0.0), 1.1), lab) for a, v, lab in zip(ang, values, labels) if v is not None]
    if len(pts) >= 3:
        poly = " ".join(f"{_f(cx + radius * r * math.cos(a))},{_f(cy + radius * r * math.sin(a))}" for a, r, _ in pts)
        body.append(f'<polygon class="series" points="{poly}" fill="{series_color}" fill-opacity="0.25" '
                    f'stroke="{series_color}" stroke-width="1.5"/>')
    for a, r, lab in pts:
        body.append(f'<circle cx="{_f(cx + radius * r * math.cos(a))}" cy="{_f(cy + radius * r * math.sin(a))}" r="2.6" '
                    f'fill="{series_color}"><title>{esc(lab)}</title></circle>')
    return _svg(w, h, title, "radar", body)


def grouped_bars(categories: list[str], series: list[tuple[str, list[float | None], list[str]]], title: str,
                 *, y_label: str = "", y_min: float = 0.0, y_max: float | None = None) -> str:
    """Bars per category, one per series ``(name, values, hover labels)``, with a y axis and a legend."""
    vals = [v for _, vs, _ in series for v in vs if v is not None]
    top = y_max if y_max is not None else (max(vals) if vals else 1.0)
    ticks = nice_ticks(y_min, top)
    lo, hi = ticks[0], ticks[-1]
    bar, gap = 11, 16
    left, right, topm, bottom, plot_h = 48, 12, 34, 26, 190
    group_w = bar * max(len(series), 1) + gap
    width = left + right + group_w * len(categories)
    width = max(width, 90 + sum(24 + 6.5 * len(n) for n, _, _ in series))
    height = topm + plot_h + bottom

    def y(v: float) -> float:
        return topm + plot_h * (1 - (v - lo) / (hi - lo))

    body = legend([n for n, _, _ in series], left, 16)
    for t in ticks:
        body.append(f'<line x1="{left}" x2="{_f(width - right)}" y1="{_f(y(t))}" y2="{_f(y(t))}" stroke="#e6e9ee"/>')
        body.append(_text(left - 5, y(t) + 4, _tick_label(t, ticks), anchor="end", size=10, fill="#666"))
    if y_label:
        body.append(_text(12, topm + plot_h / 2, y_label, size=10, fill="#666",
                          extra=f' transform="rotate(-90 12 {_f(topm + plot_h / 2)})"'))
    for i, cat in enumerate(categories):
        x0 = left + gap / 2 + i * group_w
        for k, (_name, vs, labels) in enumerate(series):
            v = vs[i]
            if v is None:
                continue
            yv = y(min(max(v, lo), hi))
            body.append(f'<rect class="bar" x="{_f(x0 + k * bar)}" y="{_f(yv)}" width="{bar - 1}" height="{_f(y(lo) - yv)}" '
                        f'fill="{color(k)}"><title>{esc(labels[i])}</title></rect>')
        body.append(_text(x0 + bar * len(series) / 2, topm + plot_h + 16, cat, size=10))
    body.append(f'<line x1="{left}" x2="{_f(width - right)}" y1="{_f(y(lo))}" y2="{_f(y(lo))}" stroke="#333"/>')
    return _svg(width, height, title, "bars", body)


def line_chart(series: list[tuple[str, list[tuple[float, float, str]]]], title: str, *, x_label: str = "",
               y_label: str = "", width: float = 330, height: float = 220) -> str:
    """Lines through ``(x, y, hover label)`` points, one per series, sorted by x; a legend when > 1 series."""
    xs = [p[0] for _, pts in series for p in pts]
    ys = [p[1] for _, pts in series for p in pts]
    if not xs:
        return _svg(width, height, title, "lines", [_text(width / 2, height / 2, "no data")])
    xt, yt = nice_ticks(min(xs), max(xs), 4), nice_ticks(min(ys), max(ys), 4)
    left, right, topm, bottom = 54, 14, (46 if len(series) > 1 else 30), 40
    pw, ph = width - left - right, height - topm - bottom

    def px(v: float) -> float:
        return left + pw * (v - xt[0]) / (xt[-1] - xt[0])

    def py(v: float) -> float:
        return topm + ph * (1 - (v - yt[0]) / (yt[-1] - yt[0]))

    body = [_text(left, 14, title, anchor="start", size=12, fill="#222", extra=' font-weight="600"')]
    for t in yt:
        body.append(f'<line x1="{left}" x2="{_f(width - right)}" y1="{_f(py(t))}" y2="{_f(py(t))}" stroke="#e6e9ee"/>')
        body.append(_text(left - 5, py(t) + 4, _tick_label(t, yt), anchor="end", size=10, fill="#666"))
    for t in xt:
        body.append(_text(px(t), topm + ph + 15, _tick_label(t, xt), size=10, fill="#666"))
    body.append(f'<line x1="{left}" x2="{_f(width - right)}" y1="{_f(topm + ph)}" y2="{_f(topm + ph)}" stroke="#333"/>')
    if x_label:
        body.append(_text(left + pw / 2, height - 6, x_label, size=10, fill="#666"))
    if y_label:
        body.append(_text(11, topm + ph / 2, y_label, size=10, fill="#666", extra=f' transform="rotate(-90 11 {_f(topm + ph / 2)})"'))
    for k, (name, pts) in enumerate(series):
        pts = sorted(pts)
        if len(pts) > 1:
            path = " ".join(f"{_f(px(x))},{_f(py(y))}" for x, y, _ in pts)
            body.append(f'<polyline class="series" data-series="{esc(name)}" points="{path}" fill="none" '
                        f'stroke="{color(k)}" stroke-width="1.8"/>')
        for x, y, lab in pts:
            body.append(f'<circle cx="{_f(px(x))}" cy="{_f(py(y))}" r="3" fill="{color(k)}"><title>{esc(lab)}</title></circle>')
    if len(series) > 1:
        body += legend([n for n, _ in series], left, 31)
    return _svg(width, height, title, "lines", body)
