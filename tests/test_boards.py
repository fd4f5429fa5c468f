"""Leaderboards in the papers' layout, the think-mode ablation table and the checkpoint comparison (no browser;
``test_boards_browser.py`` opens the page in Chromium)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import board_fixtures as bf
import pytest

from omnieval.cli import main
from omnieval.errors import ConfigError, OmniEvalError
from omnieval.leaderboard import checkpoints as ck
from omnieval.leaderboard.entries import META_COLUMNS, PUBLISHED_DIR, Run
from omnieval.leaderboard.layouts import load_layouts, parse_layout
from omnieval.leaderboard.render import render_boards

LAYOUTS = load_layouts()


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _published(stem: str) -> list[dict]:
    return _csv(PUBLISHED_DIR / f"{stem}.csv")


# -- layouts ----------------------------------------------------------------------------------------
def test_layout_result_keys_are_what_the_tasks_produce():
    """Every column names a result key its task's YAML can produce: ``<label>/<name>`` for a labelled metric
    of a multi-metric task, a metric label itself, or an aggregate's output; for layouts whose task is not in
    ``tasks/`` yet (editing), a registered metric name."""
    from omnieval.aggregate import task_aggregate
    from omnieval.registry import METRICS
    from omnieval.tasks import all_tasks

    tasks = all_tasks()
    metric_names = set(METRICS.catalog())
    checked = 0
    for layout in LAYOUTS.values():
        cfg = tasks.get(layout.task)
        for col in layout.columns:
            if cfg is None:
                assert col.result.split("/")[0] in metric_names, (layout.id, col.result)
                continue
            labels = {m.label or m.name: m for m in cfg.metrics}
            aggregates = {k for name in cfg.aggregates for k in task_aggregate(name, {})}
            head, _, tail = col.result.partition("/")
            if tail:
                assert head in labels and len(labels) > 1, (layout.id, col.result)
                where = labels[head].where.get("dimension")
                assert where in (None, tail), (layout.id, col.result, where)
            else:
                # a metric's own name is kept when it starts with its label (omnieval.aggregate.summary.result_name)
                assert head in labels or head in aggregates or len(labels) == 1 or any(
                    head.startswith(label) for label in labels), (layout.id, col.result)
            checked += 1
    assert checked >= 7 + 19 + 19 + 4  # geneval, vbench, vbench_long, videomme


def test_every_published_csv_has_a_layout_with_all_its_columns():
    by_stem = {lay.published: lay for lay in LAYOUTS.values() if lay.published}
    files = sorted(PUBLISHED_DIR.glob("*.csv"))
    assert files
    for path in files:
        assert path.stem in by_stem, f"{path.name} has no layout"
        keys = {c.key for c in by_stem[path.stem].columns}
        data_cols = [c for c in _csv(path)[0] if c not in META_COLUMNS]
        assert set(data_cols) <= keys, set(data_cols) - keys


def test_bad_layouts_name_the_problem():
    with pytest.raises(ConfigError, match="unknown key.*colour"):
        parse_layout("x", {"title": "X", "task": "x", "columns": [{"key": "a", "label": "A", "colour": 1}]})
    with pytest.raises(ConfigError, match="unit 'percentage'"):
        parse_layout("x", {"title": "X", "task": "x", "unit": "percentage", "columns": [{"key": "a", "label": "A"}]})
    with pytest.raises(ConfigError, match="not columns of the layout"):
        parse_layout("x", {"title": "X", "task": "x", "columns": [{"key": "a", "label": "A"}],
                           "plots": [{"kind": "radar", "columns": ["b"]}]})


# -- published boards -------------------------------------------------------------------------------
def _ranks(values: list[str | None], higher: bool) -> dict[int, str]:
    """Independent restatement of the marking rule on printed strings: best = bold, second = underlined."""
    nums = sorted({float(v) for v in values if v}, reverse=higher)
    out = {}
    if sum(1 for v in values if v) < 2:
        return out
    for i, v in enumerate(values):
        if v and float(v) == nums[0]:
            out[i] = "best"
        elif v and len(nums) > 1 and float(v) == nums[1]:
            out[i] = "second"
    return out


@pytest.fixture(scope="module")
def published_board(tmp_path_factory):
    out = tmp_path_factory.mktemp("published")
    render_boards([], out, include_published=True)
    return out


@pytest.mark.parametrize("stem,digits", [("geneval", 2), ("vbench", 2)])
def test_published_boards_reproduce_the_csv_and_mark_best_and_second(published_board, stem, digits):
    layout = next(lay for lay in LAYOUTS.values() if lay.published == stem)
    rows = _published(stem)
    long = [r for r in _csv(published_board / "board.csv") if r["table"] == layout.id]
    wide = _csv(published_board / "tables" / f"{layout.id}.csv")
    assert [r["Model"] for r in wide] == [r.get("model") or r.get("method") for r in rows]
    assert all(r["kind"] == "published" for r in wide)
    assert [r["source"] for r in wide] == [r["source"] for r in rows]
    for col in layout.columns:
        printed = [(f"{float(r[col.key]):.{digits}f}" if r[col.key] else None) for r in rows]
        marks = _ranks(printed, col.higher_is_better)
        cells = {r["row"]: r for r in long if r["column"] == col.key}
        for i, rec in enumerate(rows):
            name = rec.get("model") or rec.get("method")
            if not rec[col.key]:
                assert name not in cells
                continue
            cell = cells[name]
            assert float(cell["value"]) == pytest.approx(float(rec[col.key]), abs=1e-9)  # percent in, percent out
            assert cell["text"] == printed[i]
            assert cell["mark"] == marks.get(i, ""), (col.key, name)


def test_published_markdown_and_latex(published_board):
    md = (published_board / "board.md").read_text()
    assert "### GenEval" in md and "### VBench" in md
    assert "| Omni-Video [2] | **0.99** | **0.89** |" in md  # GenEval: published source 2, best single/two obj.
    assert "<u>0.67</u>" in md  # DALL-E 3 overall, second to Omni-Video's 0.75
    assert "[3] https://arxiv.org/abs/2507.06119 (Table 3; partial row: totals and 4 dimensions)" in md
    tex = (published_board / "board.tex").read_text()
    for token in (r"\toprule", r"\midrule", r"\bottomrule", r"\textbf{0.75}", r"\underline{0.67}", r"\textbf{83.31}",
                  r"Omni-Video\textsuperscript{2}", r"Vchitect-2.0 (VEnhancer)\textsuperscript{1}"):
        assert token in tex, token
    assert tex.count(r"\begin{tabular}") == 2 and tex.count(r"\end{table}") == 2


def test_page_is_self_contained(published_board):
    """Nothing on the page loads anything: no src/srcset/poster/data attributes, no <link>, href only on <a>
    (a source a reader may follow), no CSS url() or @import.  (The browser test also watches the network.)"""
    from html.parser import HTMLParser

    loads = []

    class Scan(HTMLParser):
        def handle_starttag(self, tag, attrs):
            for name, value in attrs:
                if name in ("src", "srcset", "poster", "data", "background", "xlink:href") or (name == "href" and tag != "a"):
                    loads.append((tag, name, value))
            if tag in ("link", "iframe", "object", "embed", "base"):
                loads.append((tag, "", ""))

    page = (published_board / "board.html").read_text()
    Scan().feed(page)
    assert loads == []
    assert "<script>" in page and "<style>" in page
    assert "@import" not in page and "url(" not in page


# -- our rows ---------------------------------------------------------------------------------------
@pytest.fixture()
def ours(tmp_path):
    return bf.write_results(tmp_path / "run", ["geneval", "vbench", "videomme", "smoke_t2i"], model="omnivideo")


def test_our_rows_sit_under_the_published_ones_in_display_units(tmp_path, ours):
    out = tmp_path / "board"
    assert main(["leaderboard", "--results", str(ours), "--published", "--out", str(out)]) == 0
    data = json.loads((ours / "results.json").read_text())["results"]
    wide = _csv(out / "tables" / "vbench.csv")
    assert [r["kind"] for r in wide][-3:] == ["published", "ours", "ours"]
    mine, think = wide[-2], wide[-1]
    assert (mine["Model"], think["Model"]) == ("omnivideo", "omnivideo (think)")
    assert float(mine["Total"]) == pytest.approx(100 * data["vbench"]["vbench_total"]["value"])
    assert float(think["Subj. Cons."]) == pytest.approx(100 * data["vbench@think"]["vbench_subject_consistency/subject_consistency"]["value"])
    vm = _csv(out / "tables" / "videomme.csv")  # percent results, printed as they are
    assert [r["Model"] for r in vm] == ["omnivideo", "omnivideo (think)"]
    assert float(vm[0]["Short"]) == pytest.approx(data["videomme"]["short/mcq_accuracy"]["value"])
    generic = _csv(out / "tables" / "smoke_t2i.csv")  # no layout: one column per result key
    assert list(generic[0])[:2] == ["Model", "clip_score"]
    md = (out / "board.md").read_text()
    assert md.index("### GenEval") < md.index("### VBench") < md.index("### Video-MME") < md.index("### smoke_t2i")
    html = (out / "board.html").read_text()
    assert html.count('class="plot plot-radar"') == 8 + 2  # 8 published rows with all 16 dimensions, ours off and on
    assert "no radar for Omni-Video, Wan2.1-T2V-1.3B" in html
    assert html.count('class="plot plot-bars"') == 1


def test_two_runs_of_one_model_are_told_apart(tmp_path):
    a = bf.write_results(tmp_path / "a", ["geneval"], think=False)
    b = bf.write_results(tmp_path / "b", ["geneval"], think=False, seed=1)
    c = bf.write_results(tmp_path / "c", ["geneval"], think=False, seed=2)
    out = tmp_path / "board"
    assert main(["leaderboard", "--results", str(a), str(b), str(c), "--label", "name=mine", "--out", str(out)]) == 0
    assert [r["Model"] for r in _csv(out / "tables" / "geneval.csv")] == ["omnivideo [a]", "omnivideo [b]", "mine"]


# -- ablations --------------------------------------------------------------------------------------
@pytest.mark.parametrize("schema", [1, 2])
def test_ablation_table(tmp_path, schema):
    run = bf.write_results(tmp_path / "run", ["geneval", "vbench"], schema=schema)
    out = tmp_path / "board"
    render_boards([run], out)
    rows = _csv(out / "ablations.csv")
    abl = json.loads((run / "results.json").read_text())["ablations"]
    assert len(rows) == len(abl["geneval"]) + len(abl["vbench"])
    overall = next(r for r in rows if r["Task"] == "GenEval" and r["Metric"] == "Overall")
    e = abl["geneval"]["overall"]
    assert float(overall["Δ (on − off)"]) == pytest.approx(e["delta"])
    assert float(overall["p-value"]) == pytest.approx(e["p_value"])
    assert overall["n"] == "8.0"
    if schema == 1:
        assert (overall["95% CI of Δ"], overall["clusters"], overall["method"]) == ("n/a", "n/a", "n/a")
    else:
        assert overall["95% CI of Δ"] == f"[{e['ci_low']:+.3f}, {e['ci_high']:+.3f}]"
        assert (overall["clusters"], overall["method"]) == ("4.0", "sign-flip exact")
    subj = next(r for r in rows if r["Metric"] == "Subj. Cons. (%)")  # VBench deltas in percentage points
    assert float(subj["Δ (on − off)"]) == pytest.approx(100 * abl["vbench"]["vbench_subject_consistency/subject_consistency"]["delta"])
    total = next(r for r in rows if r["Metric"] == "Total (%)")  # an aggregate: no pairs, so no p-value
    assert total["p-value"] == "n/a" and total["n"] == "n/a"
    md = (out / "ablations.md").read_text()
    assert "| 0.03125 |" in md and "Think mode: off vs on" in md


# -- checkpoints ------------------------------------------------------------------------------------
def _run(args: dict, labels: dict | None = None, folder: str = "x") -> Run:
    return Run(path=Path("/r") / folder / "results.json", data={"model": {"name": "m", "args": args}, "results": {}},
               labels=labels or {})


@pytest.mark.parametrize("args,labels,folder,step", [
    ({"step": 1200}, None, "x", 1200),
    ({"global_step": "1500"}, None, "x", 1500),
    ({"checkpoint": 7}, None, "x", 7),
    ({"root": "/ckpts/run3/checkpoint-2000"}, None, "x", 2000),
    ({"root": "/ckpts/run3/global_step_2500/model.safetensors"}, None, "x", 2500),
    ({"pretrained": "org/model-step3000"}, None, "x", 3000),
    ({"root": "/ckpts/run3/4000"}, None, "x", 4000),
    ({"root": "/ckpts/omni_ckpts", "pretrained": "Wan-AI/Wan2.1-T2V-1.3B"}, None, "x", None),
    ({"root": "/ckpts/omni_ckpts"}, None, "step_5000", 5000),
    ({"step": 1200}, {"step": "99"}, "x", 99),
])
def test_step_detection(args, labels, folder, step):
    assert ck.find_step(_run(args, labels, folder))[0] == step


def test_checkpoint_comparison_deltas_and_baseline(tmp_path):
    runs = [bf.write_results(tmp_path / name, ["geneval"], args={"root": f"/c/checkpoint-{step}"}, seed=1, shift=shift)
            for name, step, shift in (("late", 3000, 0.05), ("early", 1000, -0.05), ("mid", 2000, 0.0))]
    out = tmp_path / "board"
    assert main(["leaderboard", "--results", *map(str, runs), "--baseline", "mid", "--out", str(out)]) == 0
    rows = _csv(out / "tables" / "ckpt-geneval.csv")
    assert [r["Checkpoint"] for r in rows] == ["early", "early (think)", "mid", "mid (think)", "late", "late (think)"]
    assert [r["Step"] for r in rows] == ["1000.0", "1000.0", "2000.0", "2000.0", "3000.0", "3000.0"]
    assert rows[2]["Overall note"] == "baseline"
    assert rows[0]["Overall note"] == "Δ -0.05" and rows[4]["Overall note"] == "Δ +0.05"
    assert float(rows[4]["Overall"]) - float(rows[2]["Overall"]) == pytest.approx(0.05)
    html = (out / "board.html").read_text()
    assert html.count('class="plot plot-lines"') == 7  # one per GenEval column
    assert html.count('<polyline class="series"') == 14  # think off and on
    # the baseline by path, and a wrong name
    assert main(["leaderboard", "--results", *map(str, runs), "--baseline", str(runs[0]), "--out", str(out)]) == 0
    assert _csv(out / "tables" / "ckpt-geneval.csv")[4]["Overall note"] == "baseline"
    with pytest.raises(ConfigError, match="names: early, mid, late"):
        render_boards(runs, out, baseline="nope")


def test_checkpoint_without_step_gets_no_plot_but_a_note(tmp_path):
    a = bf.write_results(tmp_path / "a", ["geneval"], think=False)
    b = bf.write_results(tmp_path / "b", ["geneval"], think=False, seed=2)
    out = tmp_path / "board"
    assert main(["leaderboard", "--results", str(a), "--label", "step=10", "--results", str(b), "--compare", "--out", str(out)]) == 0
    html = (out / "board.html").read_text()
    assert "plot-lines" not in html and "no step for b (give --label step=N)" in html
    assert main(["leaderboard", "--results", str(a), "--label", "step=10", "--results", str(b), "--label", "step=20",
                 "--compare", "--out", str(out)]) == 0
    assert (out / "board.html").read_text().count('class="plot plot-lines"') == 7


def test_cli_errors(tmp_path, capsys):
    a = bf.write_results(tmp_path / "a", ["geneval"], think=False)
    with pytest.raises(SystemExit):
        main(["leaderboard", "--label", "step=1", "--results", str(a), "--out", str(tmp_path / "o")])
    assert "give it after the --results folder" in capsys.readouterr().err
    assert main(["leaderboard", "--results", str(a), "--label", "epoch=3", "--out", str(tmp_path / "o")]) == 2
    assert "unknown key 'epoch'" in capsys.readouterr().err
    assert main(["leaderboard", "--results", str(a), "--label", "step=ten", "--out", str(tmp_path / "o")]) == 2
    assert main(["leaderboard", "--results", str(a), "--compare", "--out", str(tmp_path / "o")]) == 2
    assert "at least two" in capsys.readouterr().err
    with pytest.raises(OmniEvalError, match="nothing to render"):
        render_boards([], tmp_path / "o")
    bad = tmp_path / "pub"
    bad.mkdir()
    (bad / "geneval.csv").write_text("method,overall,source\nX,high,paper\n")
    with pytest.raises(ConfigError, match="X: overall = 'high' is not a number"):
        render_boards([], tmp_path / "o", include_published=True, published_dir=bad)
    (bad / "geneval.csv").write_text("method,overall,source\nX,0.5,\n")
    with pytest.raises(ConfigError, match="no source"):
        render_boards([], tmp_path / "o", include_published=True, published_dir=bad)
