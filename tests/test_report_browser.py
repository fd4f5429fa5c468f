"""The run report in a real browser: headless Chromium (Debian's ``chromium``) over the DevTools pipe
(``tests/headless.py``) opens the page ``omnieval report`` wrote for a saved run of the fake harness model (the
smoke group plus two tasks with failures, breakdowns and two samples per prompt, think off and on), and asserts on
the DOM after the page's script ran: cards per task, a playable ``<video>`` per video (its file exists, the browser
says it can play the type and loads it), the think off/on pair side by side, sorting by a value and by the delta
after clicks, the failures-only and text filters, the failures list, and that nothing but local files is
requested.  Screenshots go to the test's tmp folder.  Skipped only where Chromium is absent and ``CI`` is not set."""
from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import report_fixtures as rf
from headless import Browser, launch_browser

from omnieval.cli import main


@pytest.fixture(scope="module")
def browser():
    with launch_browser(width=1400, height=1000) as b:
        yield b


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    return rf.make_run(tmp_path_factory.mktemp("report-browser"))


def _cards(b: Browser, task: str) -> list[dict]:
    return b.js(f"""Array.from(document.querySelectorAll('#items-{task} > article.pair')).filter(c => !c.hidden).map(c => ({{
        doc: c.dataset.doc, sample: +c.dataset.sample, keys: JSON.parse(c.dataset.keys)}}))""")


def _load_all_media(b: Browser) -> None:
    """Posters and lazy images of the whole page (a screenshot of the full page should show them)."""
    b.js("document.querySelectorAll('video[data-poster]').forEach(v => v.poster = v.dataset.poster); "
         "document.querySelectorAll('img[loading=lazy]').forEach(i => i.loading = 'eager'); 1")
    b.js("Promise.all(Array.from(document.images).map(i => i.complete ? 1 : new Promise(r => { i.onload = i.onerror = r; })))")


VIDEO_CHECK = """Promise.all(Array.from(document.querySelectorAll('video')).map(v => new Promise(resolve => {
    const source = v.querySelector('source');
    const report = ok => resolve({ok, role: v.dataset.role, src: source.src, type: source.type,
        can: v.canPlayType(source.type), ready: v.readyState, duration: v.duration, width: v.videoWidth,
        height: v.videoHeight, frames: +v.dataset.frames, fps: +v.dataset.fps, error: v.error && v.error.message});
    if (v.readyState >= 2) return report(true);
    v.addEventListener('loadeddata', () => report(true), {once: true});
    source.addEventListener('error', () => report(false), {once: true});
    v.preload = 'auto'; v.load();
})))"""


def _check_videos(b: Browser, expected: int) -> list[dict]:
    videos = b.js(VIDEO_CHECK)
    assert len(videos) == expected
    for v in videos:
        assert v["ok"] and v["error"] is None, v
        assert v["can"] == "probably" and v["type"].startswith('video/mp4; codecs="avc1.64'), v
        assert v["ready"] >= 2 and v["width"] > 0 and v["height"] > 0, v  # metadata and a decoded frame
        assert v["duration"] == pytest.approx(v["frames"] / v["fps"], abs=1.01 / v["fps"]), v
    return videos


def test_report_page(browser, saved_run, tmp_path):
    import av

    run, _ = saved_run
    page = tmp_path / "page" / "report.html"
    assert main(["report", "--output_path", str(run), "--out", str(page)]) == 0
    browser.events.clear()
    browser.open(page.as_uri())
    browser.screenshot(tmp_path / "report_top.png", full_page=False)

    # cards per task: one per (doc, sample index); think tasks show off and on side by side with the shared seed
    counts = browser.js("Object.fromEntries(Array.from(document.querySelectorAll('div.items')).map(d => "
                        "[d.id, d.querySelectorAll(':scope > article.pair').length]))")
    assert counts == {"items-smoke_edit": 2, "items-smoke_edit_video": 2, "items-smoke_long": 2, "items-smoke_qa": 2,
                      "items-smoke_t2i": 2, "items-smoke_t2v": 2, "items-r_t2i": 8, "items-r_t2v": 4}
    pairs = browser.js("""Array.from(document.querySelectorAll('#items-r_t2i > article.pair')).map(c => {
        const s = Array.from(c.querySelectorAll('section.side')).map(x => [x.dataset.think, x.getBoundingClientRect()]);
        return {doc: c.dataset.doc, head: c.querySelector('h4').textContent, modes: s.map(x => x[0]),
                leftOf: s[0][1].right <= s[1][1].left, sameRow: Math.abs(s[0][1].top - s[1][1].top) < 1,
                prompt: c.querySelector('pre.prompt').textContent,
                rewritten: c.querySelector('section.side[data-think=on] p.rewritten').textContent,
                media: Array.from(c.querySelectorAll('section.side img')).map(i => i.dataset.role)}; })""")
    for p in pairs:
        assert p["modes"] == ["off", "on"] and p["leftOf"] and p["sameRow"], p
        assert p["rewritten"] == "rewritten prompt " + p["prompt"].upper()  # the fake model's think-mode rewrite
        assert p["media"] == ["output", "output"] and "seed" in p["head"]
    assert browser.js("document.querySelectorAll('#items-smoke_qa section.side').length") == 2  # QA: think off only
    samples = {json.loads(line)["doc_id"]: json.loads(line) for line in (run / "samples" / "smoke_qa.jsonl").read_text().splitlines()}
    answers = browser.js("Array.from(document.querySelectorAll('#items-smoke_qa > article.pair')).map(c => "
                         "[c.dataset.doc, c.querySelector('blockquote.answer').textContent, c.querySelector('p.reference').textContent, "
                         "c.querySelector('.inputs video') !== null])")
    assert answers == [[d, samples[d]["response"], f"reference answer {a}", True] for d, a in (("qa0", "B"), ("qa1", "C"))]
    assert browser.js("document.querySelectorAll('#items-smoke_edit .inputs img[data-role=input]').length") == 2

    # metric tables: every result (breakdowns included) per think mode
    results = json.loads((run / "results.json").read_text())
    assert browser.js("document.querySelectorAll('#t-m-r_t2i tbody tr').length") == len(results["results"]["r_t2i"]) + len(
        results["results"]["r_t2i@think"])
    assert browser.js("document.querySelectorAll('#t-m-r_t2i tbody tr.breakdown').length") == 12

    # every video: a browser copy that exists, is yuv420p H.264, and that Chromium says it plays and loads
    videos = _check_videos(browser, 12 + 7 + 4)
    for v in videos:
        path = Path(unquote(urlparse(v["src"]).path))
        assert path.is_file() and path.parent == run / "report_assets" / "videos"
        with av.open(str(path)) as c:
            assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"

    # sort r_t2i by the brightness delta (best first), then reversed; by a value some cards lack: those go last
    def by(key, reverse):
        cards = _cards(browser, "r_t2i")
        have = [c for c in cards if key in c["keys"]]
        order = sorted(have, key=lambda c: c["keys"][key], reverse=reverse)
        return [(c["doc"], c["sample"]) for c in order] + [(c["doc"], c["sample"]) for c in cards if key not in c["keys"]]

    doc_order = [(c["doc"], c["sample"]) for c in _cards(browser, "r_t2i")]
    delta = "delta:test_brightness/brightness"
    browser.click(f'#task-r_t2i button.sort-key[data-key="{delta}"]')
    got = [(c["doc"], c["sample"]) for c in _cards(browser, "r_t2i")]
    assert got == by(delta, True) and got != doc_order
    browser.screenshot(tmp_path / "report_sorted_by_delta.png", selector="#task-r_t2i")
    browser.click(f'#task-r_t2i button.sort-key[data-key="{delta}"]')
    assert [(c["doc"], c["sample"]) for c in _cards(browser, "r_t2i")] == by(delta, False)
    flaky = "off:test_report_flaky/flaky"
    browser.click(f'#task-r_t2i button.sort-key[data-key="{flaky}"]')
    got = [(c["doc"], c["sample"]) for c in _cards(browser, "r_t2i")]
    assert got == by(flaky, True) and {d for d, _ in got[-4:]} == {rf.RETRY_DOC, rf.ERROR_DOC}
    browser.click('#task-r_t2i button.sort-key[data-key=""]')
    assert [(c["doc"], c["sample"]) for c in _cards(browser, "r_t2i")] == doc_order

    # failures only: the cards with a RETRY-marked or failed score, then the card whose video was deleted
    browser.click("#task-r_t2i label.only-failures-label")
    assert sorted(c["doc"] for c in _cards(browser, "r_t2i")) == sorted([rf.RETRY_DOC, rf.ERROR_DOC] * 2)
    assert browser.js("document.querySelector('#task-r_t2i .shown b').textContent") == "4"
    browser.screenshot(tmp_path / "report_failures_only.png", selector="#task-r_t2i")
    browser.click("#task-r_t2i label.only-failures-label")
    assert len(_cards(browser, "r_t2i")) == 8
    browser.click("#task-r_t2v label.only-failures-label")
    assert [c["doc"] for c in _cards(browser, "r_t2v")] == ["p3"]
    assert "output missing" in browser.js("document.querySelector('#items-r_t2v > article.pair:not([hidden]) ul.failures').textContent")

    # text filter (typed), then a link from the failures list to a card the filter hides: the filter is cleared
    browser.click("#task-r_t2i input.filter-text")
    browser.call("Input.insertText", text="blue")
    assert [c["doc"] for c in _cards(browser, "r_t2i")] == [rf.RETRY_DOC, rf.RETRY_DOC]
    failures = browser.js("Array.from(document.querySelectorAll('#t-failures tbody tr')).map(r => [r.dataset.task, r.dataset.kind])")
    assert sorted(failures) == sorted([["r_t2i", "retry"]] * 4 + [["r_t2i", "metric error"]] * 4 + [["r_t2v", "output missing"]])
    browser.click('#t-failures tbody tr[data-kind="metric error"] a')
    browser.js("new Promise(r => setTimeout(r, 100))")
    assert len(_cards(browser, "r_t2i")) == 8
    target = browser.js("location.hash.slice(1)")
    assert browser.js(f"document.getElementById('{target}').dataset.doc") == rf.ERROR_DOC

    # provenance
    text = browser.js("document.getElementById('provenance').textContent")
    assert results["model"]["fingerprint"] in text and results["task_hashes"]["r_t2v"]["generation"] in text

    # the page requested nothing but local files
    urls = browser.requested_urls()
    assert urls and all(u.startswith(("file://", "data:")) for u in urls), [u for u in urls if not u.startswith("file")]
    _load_all_media(browser)
    shot = browser.screenshot(tmp_path / "report_full.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000


def test_embedded_report(browser, saved_run, tmp_path):
    """--embed: media inline as data: URLs up to the cap, later ones linked (the page says how many); the embedded
    videos still play, and a page moved away from the run folder requests no file but itself for embedded media."""
    run, _ = saved_run
    page = tmp_path / "embedded.html"
    assert main(["report", "--output_path", str(run), "--out", str(page), "--embed", "--max-embed-mb", "0.05"]) == 0
    browser.events.clear()
    browser.open(page.as_uri())
    srcs = browser.js("Array.from(document.querySelectorAll('video source, img')).map(e => e.getAttribute('src'))")
    embedded = [s for s in srcs if s.startswith("data:")]
    linked = [s for s in srcs if not s.startswith("data:")]
    assert embedded and linked
    note = browser.js("document.getElementById('overview').textContent")
    assert "are embedded in this page" in note and "--max-embed-mb cap of 0.05 MB" in note
    _check_videos(browser, 12 + 7 + 4)
    assert main(["report", "--output_path", str(run), "--out", str(page), "--embed"]) == 0  # default cap: all inline
    browser.events.clear()
    browser.open(page.as_uri())
    assert browser.js("Array.from(document.querySelectorAll('video source, img, video[data-poster]')).every(e => "
                      "(e.getAttribute('src') || e.dataset.poster).startsWith('data:'))")
    _check_videos(browser, 12 + 7 + 4)
    urls = browser.requested_urls()
    assert [u for u in urls if u.startswith("file://")] == [page.as_uri()], urls
    browser.screenshot(tmp_path / "embedded.png", full_page=False)
