"""The ``predictions`` model (manifest and official Omni-Video names), leaderboards and ``omnieval weights``."""
from __future__ import annotations

import json

import harness_fixtures as hf
import numpy as np
import pytest

from omnieval.cli import main
from omnieval.media import Video, write_image, write_video


@pytest.fixture()
def tasks_dir(tmp_path):
    return hf.write_tasks(tmp_path / "tasks")


def _img(value: int) -> np.ndarray:
    return np.full((8, 8, 3), value, np.uint8)


def test_manifest_predictions_are_scored(tmp_path, tasks_dir):
    pred = tmp_path / "pred"
    (pred / "img").mkdir(parents=True)
    lines = []
    for i in range(4):
        for s in range(2):
            write_image(_img(10 * i + s), pred / "img" / f"{i}-{s}.png")
            lines.append({"task": "h_t2i", "doc_id": f"p{i}", "sample_index": s, "file": f"img/{i}-{s}.png"})
    lines += [{"doc_id": f"q{i}", "response": "A" if i else "B"} for i in range(3)]
    (pred / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / "out"
    assert main(["run", "--model", "predictions", "--model_args", f"path={pred}", "--tasks", "h_t2i,h_qa",
                 "--output_path", str(out), "--include_path", str(tasks_dir)]) == 0
    res = json.loads((out / "results.json").read_text())["results"]
    expected = np.mean([10 * i + s for i in range(4) for s in range(2)]) / 255
    assert res["h_t2i"]["brightness"]["value"] == pytest.approx(expected)
    assert res["h_qa"]["is_a"]["value"] == pytest.approx(2 / 3)


def test_missing_prediction_names_the_item(tmp_path, tasks_dir, capsys):
    pred = tmp_path / "pred"
    pred.mkdir()
    (pred / "manifest.jsonl").write_text(json.dumps({"doc_id": "q0", "response": "A"}) + "\n")
    assert main(["run", "--model", "predictions", "--model_args", f"path={pred}", "--tasks", "h_qa",
                 "--output_path", str(tmp_path / "o"), "--include_path", str(tasks_dir)]) == 2
    assert "no output for task h_qa doc q1 sample 0 think off" in capsys.readouterr().err


def test_official_omnivideo_file_names(tmp_path, tasks_dir):
    pred = tmp_path / "official"
    pred.mkdir()
    for i in range(4):
        prompt = f"a red ball number {i}".replace(" ", "_")
        video = Video(np.full((3, 8, 8, 3), 20 * i, np.uint8), fps=4)
        write_video(video, pred / f"t2v_8*8_unipc_seed1_cfg3.0_steps40_frames3_{prompt}_20250101_000000.mp4")
        # an older run of the same request must lose against the newest timestamp
        write_video(Video(np.zeros((3, 8, 8, 3), np.uint8), fps=4),
                    pred / f"t2v_8*8_unipc_seed1_cfg3.0_steps40_frames3_{prompt}_20240101_000000.mp4")
    out = tmp_path / "out"
    assert main(["run", "--model", "predictions", "--model_args", f"path={pred},naming=official", "--tasks", "h_t2v",
                 "--output_path", str(out), "--include_path", str(tasks_dir)]) == 0
    res = json.loads((out / "results.json").read_text())["results"]["h_t2v"]
    assert res["test_brightness/brightness"]["value"] == pytest.approx(np.mean([20 * i for i in range(4)]) / 255, abs=2e-3)


def test_leaderboard_renders_all_formats(tmp_path, tasks_dir):
    out = tmp_path / "out"
    main(["run", "--model", "fake-test", "--tasks", "h_t2i", "--think", "both", "--output_path", str(out),
          "--include_path", str(tasks_dir)])
    board = tmp_path / "board"
    assert main(["leaderboard", "--results", str(out), "--out", str(board)]) == 0
    for ext in ("md", "csv", "tex", "html"):
        assert (board / f"board.{ext}").stat().st_size > 0
    for ext in ("md", "csv", "tex"):  # the ablation table is also a section of the one board.html
        assert (board / f"ablations.{ext}").stat().st_size > 0
    md = (board / "board.md").read_text()
    assert "### h_t2i" in md and "| fake-test |" in md and "| fake-test (think) |" in md
    assert 'id="t-ablations"' in (board / "board.html").read_text()
    assert main(["leaderboard", "--results", str(tmp_path / "missing"), "--out", str(board)]) == 2


def test_weights_command_lists_missing_files(tmp_path, capsys, monkeypatch):
    from omnieval.metrics import weights

    assert main(["weights"]) == 0
    listing = capsys.readouterr().out
    assert "missing" in listing
    ids = sorted(weights.manifest())
    if not ids:
        pytest.fail("the weight manifest is empty")
    spec = weights.spec(ids[0])
    target = tmp_path / "w.bin"
    target.write_bytes(b"weights")
    monkeypatch.setenv(spec.env_var, str(target))
    assert weights.resolve(spec.id) == target
    monkeypatch.delenv(spec.env_var)
    with pytest.raises(weights.MissingWeightsError, match=spec.filename):
        weights.resolve(spec.id)


def test_published_rows_are_in_fractions_and_named_like_our_results():
    from omnieval.leaderboard.render import board_name, published_rows

    rows = {(r["task"], r["model"], r["metric"]): r["value"] for r in published_rows()}
    assert rows[("vbench", "Omni-Video", "total")] == pytest.approx(0.83)
    assert rows[("geneval", "Omni-Video", "overall")] == pytest.approx(0.75)
    assert board_name("vbench_subject_consistency/subject_consistency") == "subject_consistency"
    assert board_name("vbench_total") == "total" and board_name("overall") == "overall"


def test_export_in_vbench_naming_and_score_a_vbench_style_folder(tmp_path, tasks_dir, capsys):
    out = tmp_path / "out"
    run = ["--tasks", "h_t2i", "--think", "both", "--include_path", str(tasks_dir)]
    assert main(["run", "--model", "fake-test", "--output_path", str(out), *run]) == 0
    dest = tmp_path / "vbench_folder"
    assert main(["export", "--output_path", str(out), "--task", "h_t2i", "--dest", str(dest)]) == 0
    assert (dest / "a red ball number 3-1.png").is_file() and (dest / "think" / "a red ball number 0-0.png").is_file()
    assert len(list(dest.glob("*.png"))) == 8
    again = tmp_path / "again"
    assert main(["run", "--model", "predictions", "--model_args", f"path={dest},naming=vbench,think_path={dest / 'think'}",
                 "--output_path", str(again), *run]) == 0
    original = json.loads((out / "results.json").read_text())["results"]
    rescored = json.loads((again / "results.json").read_text())["results"]
    # same values up to summation order (items are folded in key order, and keys include the model identity)
    assert {k: v["brightness"]["value"] for k, v in rescored.items()} == pytest.approx(
        {k: v["brightness"]["value"] for k, v in original.items()}, rel=1e-12)
    (dest / "a red ball number 3-1.png").unlink()
    assert main(["run", "--model", "predictions", "--model_args", f"path={dest},naming=vbench,think_path={dest / 'think'}",
                 "--output_path", str(tmp_path / "x"), *run]) == 2
    err = capsys.readouterr().err
    assert "no 'a red ball number 3'-1.mp4 in the VBench-style path folder for task h_t2i doc p3 sample 1" in err


def test_predicted_videos_are_stored_as_their_file_bytes_never_decoded(tmp_path, tasks_dir, monkeypatch):
    """Issue 14 §7.6: ``predictions`` never looks at the frames, so storing its outputs must not decode them (a
    41 KB clip of 600 720p frames took 3.3 GB): the artifact is the file's own bytes, and scoring decodes it."""
    from omnieval import videofile
    from omnieval.media import file_sha256, read_video

    pred = tmp_path / "pred"
    pred.mkdir()
    lines = []
    for i in range(4):  # lossy yuv420p files, as other models write them
        write_video(Video(np.full((3, 8, 8, 3), 30 * i, np.uint8), fps=4), pred / f"{i}.mp4", codec="libx264")
        lines.append({"task": "h_t2v", "doc_id": f"p{i}", "file": f"{i}.mp4"})
    (pred / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))

    def no_decoding(*args, **kwargs):
        raise AssertionError("a predictions output was decoded")

    out = tmp_path / "out"
    args = ["--model", "predictions", "--model_args", f"path={pred}", "--tasks", "h_t2v", "--output_path", str(out),
            "--include_path", str(tasks_dir)]
    with monkeypatch.context() as m:
        m.setattr(videofile, "decode_all", no_decoding)
        m.setattr(videofile, "decode_frames", no_decoding)
        assert main(["run", *args, "--predict_only"]) == 0
    records = [json.loads(x) for x in (out / "samples" / "h_t2v.jsonl").read_text().splitlines()]
    for rec in records:
        source = pred / f"{rec['doc_id'][1:]}.mp4"
        assert rec["artifact_sha256"] == file_sha256(source) == file_sha256(out / rec["artifact"])
    assert main(["run", *args]) == 0  # scoring decodes the stored files
    res = json.loads((out / "results.json").read_text())["results"]["h_t2v"]
    expected = np.mean([read_video(pred / f"{i}.mp4").frames.mean() / 255 for i in range(4)])
    assert res["test_brightness/brightness"]["value"] == pytest.approx(expected, rel=1e-12)


# -- manifest hardening (issue 14 §7.8) ---------------------------------------------------------------
def _manifest_run(tmp_path, tasks_dir, lines, *extra_args):
    pred = tmp_path / "pred"
    pred.mkdir(exist_ok=True)
    for i in range(4):
        if not (pred / f"{i}.png").exists():
            write_image(_img(10 * i), pred / f"{i}.png")
    (pred / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return main(["run", "--model", "predictions", "--model_args", f"path={pred}", "--tasks", "h_t2i", "--output_path",
                 str(tmp_path / "out"), "--include_path", str(tasks_dir), *extra_args])


def _one_line_error(capsys, rc, *needles):
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith("omnieval: error: predictions: "), err
    for needle in needles:
        assert needle in err, (needle, err)


GOOD = [{"task": "h_t2i", "doc_id": f"p{i}", "sample_index": s, "file": f"{i}.png"} for i in range(4) for s in range(2)]


@pytest.mark.parametrize("bad, needles", [
    # before: the last of two lines for the same output silently won
    ({"task": "h_t2i", "doc_id": "p1", "sample_index": 0, "file": "3.png"},
     ["manifest.jsonl:9: duplicate output for task h_t2i doc p1 sample 0 think off (also at line 3)"]),
    ({"task": "h_t2i", "doc_id": "p1", "sample_index": 0, "think": False, "file": "3.png"},
     ["manifest.jsonl:9: duplicate output for task h_t2i doc p1 sample 0 think off (also at line 3)"]),
    # before: 0.9 became sample 0
    ({"doc_id": "p0", "sample_index": 0.9, "file": "0.png"}, ["manifest.jsonl:9: sample_index must be a whole number >= 0, got 0.9"]),
    ({"doc_id": "p0", "sample_index": True, "file": "0.png"}, ["manifest.jsonl:9: sample_index must be a whole number >= 0, got True"]),
    ({"doc_id": "p0", "sample_index": -1, "file": "0.png"}, ["manifest.jsonl:9: sample_index must be a whole number >= 0, got -1"]),
    ({"doc_id": "p0", "think": "maybe", "file": "0.png"}, ["manifest.jsonl:9: think must be on/off (or true/false), got 'maybe'"]),
    # before: files outside path= were read
    ({"doc_id": "p0", "file": "../secret.png"}, ["manifest.jsonl:9: file '../secret.png' must be a relative path inside"]),
    ({"doc_id": "p0", "file": "/etc/hostname"}, ["manifest.jsonl:9: file '/etc/hostname' must be a relative path inside"]),
])
def test_bad_manifest_lines_are_refused(tmp_path, tasks_dir, capsys, bad, needles):
    (tmp_path / "secret.png").write_bytes(b"")
    _one_line_error(capsys, _manifest_run(tmp_path, tasks_dir, [*GOOD, bad]), *needles)


def test_whole_number_sample_indices_are_accepted(tmp_path, tasks_dir):
    lines = [dict(x, sample_index=[float(x["sample_index"]), str(x["sample_index"])][i % 2]) for i, x in enumerate(GOOD)]
    assert _manifest_run(tmp_path, tasks_dir, lines) == 0


def test_symlinks_leading_out_of_the_predictions_folder_are_refused(tmp_path, tasks_dir, capsys):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    write_image(_img(99), outside / "x.png")
    pred = tmp_path / "pred"
    pred.mkdir()
    (pred / "inside.png").symlink_to(outside / "x.png")
    (pred / "sub").symlink_to(outside, target_is_directory=True)
    lines = [*GOOD[1:], {"task": "h_t2i", "doc_id": "p0", "sample_index": 0, "file": "inside.png"}]
    _one_line_error(capsys, _manifest_run(tmp_path, tasks_dir, lines), "manifest.jsonl:8: file 'inside.png' resolves to",
                    "outside the predictions folder")
    lines[-1]["file"] = "sub/x.png"
    _one_line_error(capsys, _manifest_run(tmp_path, tasks_dir, lines), "file 'sub/x.png' resolves to")
    write_image(_img(5), pred / "real.png")
    (pred / "alias.png").symlink_to(pred / "real.png")  # a link that stays inside is fine
    lines[-1]["file"] = "alias.png"
    assert _manifest_run(tmp_path, tasks_dir, lines) == 0


def test_vbench_named_symlink_out_of_the_folder_is_refused(tmp_path, tasks_dir, capsys):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    folder = tmp_path / "vb"
    folder.mkdir()
    for i in range(4):
        for s in range(2):
            write_image(_img(i), outside / f"{i}-{s}.png")
            (folder / f"a red ball number {i}-{s}.png").symlink_to(outside / f"{i}-{s}.png")
    rc = main(["run", "--model", "predictions", "--model_args", f"path={folder},naming=vbench", "--tasks", "h_t2i",
               "--output_path", str(tmp_path / "out"), "--include_path", str(tasks_dir)])
    _one_line_error(capsys, rc, "file 'a red ball number 0-0.png' resolves to", "outside the predictions folder")
