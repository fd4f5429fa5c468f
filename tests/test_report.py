"""``omnieval report`` without a browser: what the page is built from (the store, never the model), per-item values
and deltas against the stored contributions, failures, the browser copies of videos, embedding vs linking.
The rendered page in Chromium: ``tests/test_report_browser.py``."""
from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import report_fixtures as rf

from omnieval.cli import main
from omnieval.media import read_video
from omnieval.metrics.base import RETRY
from omnieval.report.failures import generation_failure, score_failures
from omnieval.report.media import AssetWriter, avc1_codec, transcode
from omnieval.report.urls import Linker


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    return rf.make_run(tmp_path_factory.mktemp("report"))


class Cards(HTMLParser):
    """Collects the cards (article.pair) with their items container, and every <video>/<img>."""

    def __init__(self):
        super().__init__()
        self.container = None
        self.cards: list[tuple[str, dict]] = []
        self.media: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "div" and a.get("class") == "items":
            self.container = a["id"]
        elif tag == "article" and a.get("class") == "pair":
            self.cards.append((self.container, a))
        elif tag in ("video", "img", "source"):
            self.media.append((tag, a))


def _parse(path: Path) -> Cards:
    p = Cards()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def _scores(run: Path, task: str) -> dict[str, dict]:
    """item key -> metric -> contribution, from the store's score files."""
    out: dict[str, dict] = {}
    for line in (run / "scores" / f"{task}.jsonl").read_text().splitlines():
        rec = json.loads(line)
        out.setdefault(rec["item"], {})[rec["metric"]] = rec["contribution"]
    return out


def _samples(run: Path, task: str) -> list[dict]:
    return [json.loads(line) for line in (run / "samples" / f"{task}.jsonl").read_text().splitlines()]


def test_report_is_built_from_the_folder_without_the_model(saved_run, monkeypatch, capsys):
    run, _ = saved_run
    from omnieval.runner import Runner

    def no_model(self):
        raise AssertionError("the report must not load the model")

    monkeypatch.setattr(Runner, "_load_model", no_model)
    monkeypatch.setattr("harness_fixtures.FakeModel.__init__", lambda *a, **k: no_model(None))
    assert main(["report", "--output_path", str(run)]) == 0
    page = run / "report.html"
    assert capsys.readouterr().out.strip().endswith(str(page))
    parsed = _parse(page)

    # one card per (doc, sample index) of every task, in plan order
    per_task: dict[str, list[dict]] = {}
    for container, attrs in parsed.cards:
        per_task.setdefault(container, []).append(attrs)
    expected = {"items-r_t2i": 8, "items-r_t2v": 4, "items-smoke_t2i": 2, "items-smoke_t2v": 2, "items-smoke_qa": 2,
                "items-smoke_edit": 2, "items-smoke_edit_video": 2, "items-smoke_long": 2}
    assert {k: len(v) for k, v in per_task.items()} == expected

    # per-item values are the stored scores; deltas are on - off of the same doc and sample (same seed)
    samples = {(r["doc_id"], r["sample_index"], r["think"]): r for r in _samples(run, "r_t2i")}
    scores = _scores(run, "r_t2i")
    for card in per_task["items-r_t2i"]:
        keys = json.loads(card["data-keys"])
        doc, sample = card["data-doc"], int(card["data-sample"])
        off, on = samples[(doc, sample, "off")], samples[(doc, sample, "on")]
        assert off["seed"] == on["seed"]
        b_off = scores[off["key"]]["test_brightness"]["brightness"]
        b_on = scores[on["key"]]["test_brightness"]["brightness"]
        assert keys["off:test_brightness/brightness"] == b_off and keys["on:test_brightness/brightness"] == b_on
        assert keys["delta:test_brightness/brightness"] == pytest.approx(b_on - b_off, abs=1e-15)
        assert ("off:test_report_flaky/flaky" in keys) == (doc not in (rf.RETRY_DOC, rf.ERROR_DOC))
        assert card["data-failed"] == ("1" if doc in (rf.RETRY_DOC, rf.ERROR_DOC) else "0")
    # a distribution metric has no per-item value; the deleted output is a failure
    t2v = per_task["items-r_t2v"]
    assert not any("feature_spread" in k for c in t2v for k in json.loads(c["data-keys"]))
    assert [c["data-doc"] for c in t2v if c["data-failed"] == "1"] == ["p3"]

    # every video is linked to a browser copy in report_assets (poster too), every image resolves
    sources = [a for tag, a in parsed.media if tag == "source"]
    videos = [a for tag, a in parsed.media if tag == "video"]
    assert len(sources) == len(videos) == 4 * 3 + 7 + 4  # smoke t2v/long/edit_video outputs, r_t2v (one deleted), inputs
    for src, video in zip(sources, videos):
        assert src["src"].startswith("report_assets/videos/") and (run / src["src"]).is_file()
        assert re.fullmatch(r'video/mp4; codecs="avc1\.64[0-9A-F]{4}"', src["type"])
        assert video["preload"] == "none" and "controls" in video and (run / video["data-poster"]).is_file()
    for tag, a in parsed.media:
        if tag == "img":
            assert a["loading"] == "lazy" and (run / a["src"]).is_file()

    # a second report reuses the copies and writes the same page
    first = page.read_bytes()
    before = {p: p.stat().st_mtime_ns for p in (run / "report_assets").rglob("*") if p.is_file()}
    assert main(["report", "--output_path", str(run)]) == 0
    assert page.read_bytes() == first
    assert {p: p.stat().st_mtime_ns for p in (run / "report_assets").rglob("*") if p.is_file()} == before


def test_page_sections_and_failures(saved_run):
    run, gone = saved_run
    out = run.parent / "elsewhere" / "page.html"
    assert main(["report", "--output_path", str(run), "--out", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    # media are linked relative to the page, wherever it is written
    assert 'src="../run/report_assets/videos/' in html and "data:video" not in html
    results = json.loads((run / "results.json").read_text())
    # metric table rows: every result (breakdown rows included) per think mode
    rows = re.findall(r'<tr class="(overall|breakdown)"', html.split('id="t-m-r_t2i"')[1].split("</table>")[0])
    assert len(rows) == len(results["results"]["r_t2i"]) + len(results["results"]["r_t2i@think"])
    assert rows.count("breakdown") == sum("[color=" in k for t in ("r_t2i", "r_t2i@think") for k in results["results"][t])
    # the failures list: RETRY and metric-reported errors on both samples and modes, the deleted output
    kinds = re.findall(r'<tr data-task="([^"]+)" data-kind="([^"]+)"', html)
    assert sorted(kinds) == sorted([("r_t2i", "retry")] * 4 + [("r_t2i", "metric error")] * 4 + [("r_t2v", "output missing")])
    assert "judge endpoint unreachable" in html and "unparseable reply" in html
    assert f"artifacts/{gone[:2]}/{gone}.mp4: file missing" in html
    # provenance: model identity and fingerprint, hashes, environment, statistics
    for text in (results["model"]["fingerprint"], results["task_hashes"]["r_t2i"]["config"],
                 results["task_hashes"]["r_t2i"]["scores"], results["environment"]["python"], "sign-flip"):
        assert text in html
    # think-on sides show the rewritten prompt the model recorded
    assert "A BLUE BALL NUMBER 1" in html


def test_failure_rules():
    assert generation_failure(None, False).kind == "no output"
    assert generation_failure({"artifact": "a/b.mp4"}, False).kind == "output missing"
    assert generation_failure({"error": "CUDA out of memory", "artifact": None}, True).detail == "CUDA out of memory"
    assert generation_failure({"artifact": "a/b.png"}, True) is None
    assert [f.kind for f in score_failures("m", None)] == ["not scored"]
    assert score_failures("m", {RETRY: "timeout", "judge_failed": 1.0})[0].detail == "timeout"
    assert score_failures("j", {"judge_failed": 1.0, "judge_error": "HTTP 500"})[0].detail == "HTTP 500"
    assert score_failures("j", {"judge_failed": 0.0, "judge_error": None, "judge_score": 3.0}) == []
    assert score_failures("g", {"correct": False, "reason": "expected 2 dogs, found 1"}) == []  # a score, not a failure


def test_browser_copy_of_a_lossless_video(tmp_path):
    """yuv420p H.264 High, same frame count and rate, even size (odd padded), close to the stored frames; the poster
    is exactly the stored first frame."""
    import av

    t = np.linspace(0, 1, 7)[:, None, None]
    y, x = np.mgrid[0:49, 0:65]
    frames = np.stack(np.broadcast_arrays(x * 3 + t * 60, y * 2.4 + 30 + 0 * t, 200 - x * 1.8 - y * 1.2 + 0 * t), axis=-1)
    frames = frames.astype(np.uint8)  # smooth colour ramps, moving
    src = tmp_path / "stored.mp4"  # lossless RGB H.264 as the store writes it, but at an odd size
    with av.open(str(src), "w") as c:
        s = c.add_stream("libx264rgb", rate=6)
        s.width, s.height, s.pix_fmt, s.options = 65, 49, "rgb24", {"crf": "0"}
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode())
    assert np.array_equal(read_video(src).frames, frames)
    writer = AssetWriter(tmp_path / "run")
    copy = writer.video(src)
    assert writer.made == 1 and copy.path.parent == tmp_path / "run" / "report_assets" / "videos"
    with av.open(str(copy.path)) as c:
        s = c.streams.video[0]
        assert (s.codec_context.name, s.codec_context.pix_fmt, s.codec_context.profile) == ("h264", "yuv420p", "High")
    assert (copy.width, copy.height, copy.frames, copy.fps) == (66, 50, 7, 6.0)
    assert copy.mime.startswith('video/mp4; codecs="avc1.64')
    played = read_video(copy.path).frames.astype(int)
    assert np.abs(played[:, :49, :65] - frames).mean() < 2.5  # 4:2:0 chroma, limited-range YUV, CRF 18 (measured 1.75)
    assert np.abs(played[:, 49, :65] - played[:, 48, :65]).mean() < 2.5  # the padded row repeats the last one
    from PIL import Image

    assert np.array_equal(np.asarray(Image.open(copy.poster)), frames[0])
    assert writer.video(src).path == copy.path and writer.made == 1  # reused
    assert avc1_codec(b"\x01\x64\x00\x1f\xff") == "avc1.64001F" and avc1_codec(None) == "avc1"


def test_transcode_refuses_a_file_that_is_not_a_video(tmp_path):
    from omnieval.errors import MediaError

    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(MediaError, match="bad.mp4"):
        transcode(bad, tmp_path / "out.mp4", tmp_path / "poster.png")
    assert not list(tmp_path.glob(".out*")) and not (tmp_path / "out.mp4").exists()


def test_linker_embeds_up_to_the_cap(tmp_path):
    files = []
    for i, size in enumerate((400_000, 700_000, 300_000)):
        f = tmp_path / "media" / f"f{i}.png"
        f.parent.mkdir(exist_ok=True)
        f.write_bytes(bytes([i]) * size)
        files.append(f)
    linker = Linker(tmp_path / "page", embed=True, max_embed_mb=1.0)
    urls = [linker.url(f) for f in files]
    assert urls[0].startswith("data:image/png;base64,") and urls[2].startswith("data:image/png;base64,")
    assert urls[1] == "../media/f1.png"  # would pass the 1 MB cap: linked
    assert linker.url(files[0]) == urls[0] and linker.embedded_bytes == 700_000
    assert "2 media files (0.7 MB) are embedded" in linker.summary() and "1 more would exceed" in linker.summary()
    plain = Linker(tmp_path / "page")
    assert plain.url(files[0]) == "../media/f0.png" and "linked relative to this file (1 files)" in plain.summary()


def test_report_errors(tmp_path, capsys):
    assert main(["report", "--output_path", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "run_config.json not found" in err


def test_negative_embed_cap_is_refused(saved_run, capsys):
    run, _ = saved_run
    assert main(["report", "--output_path", str(run), "--embed", "--max-embed-mb", "-1"]) == 2
    assert "--max-embed-mb must be >= 0" in capsys.readouterr().err


def test_unscored_run_and_a_metric_that_cannot_be_built(tmp_path, monkeypatch):
    """A --predict_only run (no scores, no results) with one generation record lost: every item is a card, the lost
    one says 'no output', the others 'not scored'; a metric whose construction fails (e.g. missing weights) after
    scoring shows its stored numeric fields and says why."""
    tasks = rf.write_tasks(tmp_path / "tasks")
    run = tmp_path / "run"
    args = ["run", "--model", "fake-test", "--tasks", "r_t2i", "--think", "both", "--output_path", str(run),
            "--include_path", str(tasks)]
    assert main([*args, "--predict_only"]) == 0
    log = run / "samples" / "r_t2i.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    lost = json.loads(lines[0])
    log.write_text("".join(lines[1:]))
    assert main(["report", "--output_path", str(run)]) == 0
    html = (run / "report.html").read_text(encoding="utf-8")
    assert len(_parse(run / "report.html").cards) == 8
    kinds = re.findall(r'<tr data-task="r_t2i" data-kind="([^"]+)"', html)
    assert kinds.count("no output") == 1 and kinds.count("not scored") == 2 * 15  # two metrics x the 15 other items
    assert "no results for this task" in html
    assert re.search(rf'<tr data-task="r_t2i" data-kind="no output"><td class="text">r_t2i</td><td class="text">'
                     rf'<a href="#i-[0-9a-f]+">{lost["doc_id"]}</a></td><td class="text">{lost["sample_index"]}</td>'
                     rf'<td class="text">{lost["think"]}</td>', html)

    # score it, then make the brightness metric unbuildable for the report
    log.write_text("".join(lines))
    assert main(args) == 0
    from harness_fixtures import Brightness

    from omnieval.errors import OmniEvalError

    def unbuildable(self, **options):
        raise OmniEvalError("weights test_brightness.pt missing: put it in $OMNIEVAL_WEIGHTS_DIR")

    monkeypatch.setattr(Brightness, "__init__", unbuildable)
    assert main(["report", "--output_path", str(run)]) == 0
    page = _parse(run / "report.html")
    keys = [json.loads(a["data-keys"]) for _, a in page.cards]
    assert all("off:test_brightness/brightness" in k for k in keys)  # the stored field stands in for the value
    assert "weights test_brightness.pt missing" in (run / "report.html").read_text(encoding="utf-8")


def test_a_moved_run_folder_is_reported_where_it_is(saved_run, tmp_path):
    import shutil

    run, _ = saved_run
    moved = tmp_path / "moved"
    shutil.copytree(run, moved, ignore=shutil.ignore_patterns("report_assets", "*.html"))
    assert main(["report", "--output_path", str(moved)]) == 0
    page = _parse(moved / "report.html")
    for _tag, a in page.media:
        src = a.get("src") or a.get("data-poster")
        if src:
            assert (moved / src).is_file() and not (moved / src).resolve().is_relative_to(run.resolve()), src
    assert (moved / "report_assets" / "videos").is_dir()
