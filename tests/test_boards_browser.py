"""The leaderboard page in a real browser: headless Chromium (Debian's ``chromium``) driven over the DevTools
pipe (``tests/headless.py``).  Asserts on the DOM after the page's script ran: rows per benchmark, published
markers with their sources, the order after clicks on headers, the plots, and that the page requests nothing
but itself.  Screenshots go to the test's tmp folder.

Skipped only where Chromium is absent and ``CI`` is not set; in CI a missing Chromium fails (``.ci/run``
installs it).
"""
from __future__ import annotations

import csv

import board_fixtures as bf
import pytest
from headless import Browser, launch_browser

from omnieval.leaderboard.entries import PUBLISHED_DIR
from omnieval.leaderboard.render import render_boards


@pytest.fixture(scope="module")
def browser():
    with launch_browser(width=1400, height=900) as b:
        yield b


def _published(stem: str) -> list[dict]:
    with open(PUBLISHED_DIR / f"{stem}.csv", newline="") as f:
        return list(csv.DictReader(f))


def _column(b: Browser, table: str, index: int) -> list[str]:
    return b.js(f"Array.from(document.querySelectorAll('#t-{table} tbody tr')).map(r => r.cells[{index}].textContent)")


def _names(b: Browser, table: str) -> list[str]:
    return b.js(f"Array.from(document.querySelectorAll('#t-{table} tbody tr')).map(r => r.cells[0].childNodes[0].textContent.trim())")


def _png(path) -> bytes:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, path
    return data


def test_board_page(browser, tmp_path):
    run = bf.write_results(tmp_path / "run", ["geneval", "vbench"], model="omnivideo")
    out = tmp_path / "board"
    render_boards([run], out, include_published=True)
    browser.events.clear()
    browser.open((out / "board.html").as_uri())

    geneval, vbench = _published("geneval"), _published("vbench")
    counts = browser.js("Object.fromEntries(Array.from(document.querySelectorAll('table.board')).map("
                        "t => [t.dataset.table, t.tBodies[0].rows.length]))")
    assert counts == {"geneval": len(geneval) + 2, "vbench": len(vbench) + 2, "ablations": 9 + 19}

    # published rows: marked, source on hover and in the footnote the row points to
    pub = browser.js("""Array.from(document.querySelectorAll('#t-vbench tbody tr.published')).map(r => ({
        title: r.title, badge: !!r.querySelector('.badge'),
        note: document.querySelector(r.querySelector('sup a').getAttribute('href')).textContent}))""")
    assert len(pub) == len(vbench)
    for row, rec in zip(pub, vbench):
        assert row["badge"] and row["title"] == f"published: {rec['source']}" and row["note"] == rec["source"]
    assert browser.js("document.querySelectorAll('#t-vbench tbody tr.ours .badge').length") == 0

    # best bold, second underlined (Total: Wan2.1 83.31, then Omni-Video 83.00)
    marked = browser.js("""Array.from(document.querySelectorAll('#t-vbench tbody tr')).map(r => r.cells[1])
        .filter(c => c.querySelector('strong, u')).map(c => [c.querySelector('strong, u').tagName, c.textContent])""")
    assert marked == [["U", "83.00"], ["STRONG", "83.31"]]

    # click "Total": best first, rows without a value last; click again: reversed, still missing last
    before = _names(browser, "vbench")
    browser.screenshot(tmp_path / "board_before_sort.png")
    browser.click('#t-vbench thead th[data-key="total"] button')
    totals = {rec["model"]: float(rec["total"]) for rec in vbench}
    data = {n: float(v) for n, v in zip(_names(browser, "vbench"), _column(browser, "vbench", 1))}
    expected = sorted(data, key=lambda n: -data[n])
    assert _names(browser, "vbench") == expected and sorted(expected) == sorted(before)
    assert all(data[m] == pytest.approx(t) for m, t in totals.items())
    assert browser.js("document.querySelector('#t-vbench thead th[data-key=\"total\"]').getAttribute('aria-sort')") == "descending"
    browser.screenshot(tmp_path / "board_sorted.png", selector="#board-vbench")
    browser.click('#t-vbench thead th[data-key="total"] button')
    assert _names(browser, "vbench") == expected[::-1]

    # a column with missing values: they stay last both ways
    browser.click('#t-vbench thead th[data-key="background_consistency"] button')
    col = _column(browser, "vbench", 5)
    assert col[-2:] == ["–", "–"] and all(c != "–" for c in col[:-2])
    assert [float(c) for c in col[:-2]] == sorted((float(c) for c in col[:-2]), reverse=True)
    browser.click('#t-vbench thead th[data-key="background_consistency"] button')
    col = _column(browser, "vbench", 5)
    assert col[-2:] == ["–", "–"] and [float(c) for c in col[:-2]] == sorted(float(c) for c in col[:-2])

    # text column: alphabetical
    browser.click('#t-geneval thead th[data-key="model"] button')
    names = _names(browser, "geneval")
    assert names == sorted(names, key=str.lower)

    # plots: a radar per row with all 16 dimensions (8 published + ours off/on), GenEval bars
    assert browser.js("document.querySelectorAll('svg.plot-radar').length") == 10
    assert browser.js("document.querySelectorAll('svg.plot-bars rect.bar').length") == 7 * (len(geneval) + 2)

    # the page loaded nothing but itself
    urls = browser.requested_urls()
    assert urls and all(u.startswith(("file://", "data:")) for u in urls), urls
    _png(browser.screenshot(tmp_path / "board_full.png"))
    _png(tmp_path / "board_sorted.png")


def test_checkpoint_page(browser, tmp_path):
    runs = []
    for step, shift in ((3000, 0.04), (1000, -0.04), (2000, 0.0)):
        runs.append(bf.write_results(tmp_path / f"ck{step}", ["geneval"], args={"root": f"/c/global_step_{step}"}, seed=3, shift=shift))
    out = tmp_path / "board"
    render_boards(runs, out, compare=True)
    browser.open((out / "board.html").as_uri())
    assert _names(browser, "ckpt-geneval") == ["ck1000", "ck1000 (think)", "ck2000", "ck2000 (think)", "ck3000", "ck3000 (think)"]
    assert browser.js("document.querySelectorAll('#t-ckpt-geneval tbody tr.baseline').length") == 2
    lines = browser.js("""Array.from(document.querySelectorAll('#ckpt-geneval svg.plot-lines')).map(s =>
        [s.querySelectorAll('polyline.series').length, s.querySelectorAll('circle').length])""")
    assert lines == [[2, 6]] * 7
    browser.click('#t-ckpt-geneval thead th[data-key="overall"] button')
    assert _names(browser, "ckpt-geneval")[:2] == ["ck3000 (think)", "ck3000"]
    _png(browser.screenshot(tmp_path / "checkpoints.png", selector="#ckpt-geneval"))


def test_board_of_a_real_run(browser, tmp_path):
    """A run of the harness (fake model, think both) rendered and opened: a plain table per task, the ablation."""
    import harness_fixtures as hf

    from omnieval.cli import main

    tasks = hf.write_tasks(tmp_path / "tasks")
    run = tmp_path / "run"
    assert main(["run", "--model", "fake-test", "--tasks", "h_t2i,h_qa", "--think", "both", "--output_path", str(run),
                 "--include_path", str(tasks)]) == 0
    assert main(["leaderboard", "--results", str(run), "--out", str(tmp_path / "board")]) == 0
    browser.open((tmp_path / "board" / "board.html").as_uri())
    assert _names(browser, "h_t2i") == ["fake-test", "fake-test (think)"]
    assert _names(browser, "h_qa") == ["fake-test"]
    assert browser.js("document.querySelectorAll('#t-ablations tbody tr').length") == 1
    _png(browser.screenshot(tmp_path / "run_board.png"))
