"""Tables from results files: a terminal table, and boards in Markdown, CSV, LaTeX and HTML.

A board has one row per (model, task, metric) from our results folders, plus -- with ``--published`` --
the rows of ``leaderboards/published/*.csv`` (numbers from papers, each with a ``source`` column), so our
reproductions sit next to the reported numbers.  Think-mode ablations get their own board.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from omnieval.errors import OmniEvalError

PUBLISHED_DIR = Path(__file__).resolve().parents[2] / "leaderboards" / "published"


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def results_table(data: dict) -> str:
    """A plain-text table of one results.json: task | metric | value | stderr | n."""
    rows = [("task", "metric", "value", "stderr", "n")]
    for task, metrics in sorted(data.get("results", {}).items()):
        for name, r in sorted(metrics.items()):
            rows.append((task, name, _fmt(r.get("value")), _fmt(r.get("stderr")), str(r.get("n", ""))))
    for task, metrics in sorted(data.get("ablations", {}).items()):
        for name, r in sorted(metrics.items()):
            rows.append((f"{task} (think on-off)", name, _fmt(r.get("delta")), _fmt(r.get("stderr")), str(r.get("n", ""))))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


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
    return data


def collect_rows(paths: list[Path], include_published: bool) -> tuple[list[dict], list[dict]]:
    rows, ablations = [], []
    for path in paths:
        data = load_results(path)
        model = (data.get("model") or {}).get("name", "?")
        fingerprint = (data.get("model") or {}).get("fingerprint", "")
        for task, metrics in data.get("results", {}).items():
            for metric, r in metrics.items():
                rows.append({"model": model, "checkpoint": fingerprint, "task": task, "metric": board_name(metric),
                             "value": r.get("value"), "stderr": r.get("stderr"), "n": r.get("n"), "source": str(path)})
        for task, metrics in data.get("ablations", {}).items():
            for metric, r in metrics.items():
                ablations.append({"model": model, "task": task, "metric": metric, "off": r.get("off"), "on": r.get("on"),
                                  "delta": r.get("delta"), "stderr": r.get("stderr"), "p_value": r.get("p_value"), "n": r.get("n")})
    if include_published:
        rows += published_rows()
    return rows, ablations


def board_name(metric: str) -> str:
    """The name a result has on boards, matching the published tables' columns:
    ``vbench_subject_consistency/subject_consistency`` -> ``subject_consistency``, ``vbench_total`` -> ``total``."""
    return metric.rsplit("/", 1)[-1].removeprefix("vbench_")


def published_rows() -> list[dict]:
    """Rows of ``leaderboards/published/*.csv`` in long form (model, benchmark, metric, value, source).

    A row with ``unit: percent`` is converted to fractions, the unit omnieval reports in."""
    out = []
    for path in sorted(PUBLISHED_DIR.glob("*.csv")):
        with open(path, newline="") as f:
            for rec in csv.DictReader(f):
                model = rec.get("model") or rec.get("method") or rec.get("Method") or "?"
                source = rec.get("source", "")
                scale = 0.01 if rec.get("unit") == "percent" else 1.0
                for key, value in rec.items():
                    if key in ("model", "method", "Method", "source", "note", "unit") or value in (None, ""):
                        continue
                    try:
                        number = float(value) * scale
                    except ValueError:
                        continue
                    out.append({"model": model, "checkpoint": "published", "task": path.stem, "metric": key,
                                "value": number, "stderr": None, "n": None, "source": source})
    return out


def render_boards(paths: list[Path], out: Path, include_published: bool = False) -> list[Path]:
    import pandas as pd

    rows, ablations = collect_rows(paths, include_published)
    if not rows and not ablations:
        raise OmniEvalError("nothing to render: give --results folders and/or --published")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OmniEvalError(f"--out {out} is not a writable folder: {exc.strerror}") from exc
    written = []
    for name, table in (("board", rows), ("ablations", ablations)):
        if not table:
            continue
        df = pd.DataFrame(table)
        if name == "board":
            wide = df.pivot_table(index=["task", "metric"], columns="model", values="value", aggfunc="first").reset_index()
        else:
            wide = df
        wide.columns = [str(c) for c in wide.columns]
        df.to_csv(out / f"{name}_long.csv", index=False)
        wide.to_csv(out / f"{name}.csv", index=False)
        (out / f"{name}.md").write_text(_markdown(wide) + "\n")
        (out / f"{name}.tex").write_text(_latex(wide))
        (out / f"{name}.html").write_text(wide.to_html(index=False, float_format=lambda v: f"{v:.4f}", na_rep="-"))
        written += [out / f"{name}.{ext}" for ext in ("md", "csv", "tex", "html")]
    return written


def _markdown(df) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(_fmt(None if _isnan(r[c]) else r[c]) for c in cols) + " |")
    return "\n".join(lines)


def _latex(df) -> str:
    cols = list(df.columns)
    esc = lambda s: str(s).replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")  # noqa: E731
    lines = [r"\begin{tabular}{" + "l" * len(cols) + "}", r"\toprule", " & ".join(esc(c) for c in cols) + r" \\", r"\midrule"]
    for _, r in df.iterrows():
        lines.append(" & ".join(esc(_fmt(None if _isnan(r[c]) else r[c])) for c in cols) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)


def _isnan(v: Any) -> bool:
    return isinstance(v, float) and v != v
