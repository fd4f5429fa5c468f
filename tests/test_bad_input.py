"""Bad input through the CLI: exit status 2, one line naming the item, no traceback, finished results kept."""
from __future__ import annotations

import json
from pathlib import Path

import harness_fixtures as hf
import numpy as np
import pytest
from test_media import bomb_png

from omnieval.cli import main
from omnieval.media import Video, write_image, write_video
from omnieval.models.base import Model
from omnieval.registry import register_model


@register_model("test-bad-output", description="returns broken media (bad-input tests)")
class BadOutputModel(Model):
    capabilities = ("t2i", "t2v")

    def __init__(self, mode: str = "nan", **kwargs):
        super().__init__(mode=mode, **kwargs)
        self.mode = mode

    def generate_image(self, requests):
        bad = {"nan": np.full((8, 8, 3), np.nan, np.float32), "shape": np.zeros((8, 8), np.uint8), "none": None}
        return [] if self.mode == "few" else [bad[self.mode] for _ in requests]

    def generate_video(self, requests):
        if self.mode == "nan":
            return [Video(np.full((2, 8, 8, 3), np.nan, np.float32)) for _ in requests]
        return [np.zeros((8, 8, 3), np.uint8) for _ in requests]


@pytest.fixture()
def tasks_dir(tmp_path):
    return hf.write_tasks(tmp_path / "tasks")


def run(out, tasks_dir, *extra, tasks="h_t2i", model="fake-test"):
    return main(["run", "--model", model, "--tasks", tasks, "--output_path", str(out), "--include_path", str(tasks_dir), *extra])


def expect_error(capsys, rc: int, *needles: str) -> str:
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("omnieval: error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


T2I = "task: h_t2i\ncapability: t2i\ndataset: {path: prompts.jsonl}\n"
EDIT = "task: h_edit\ncapability: edit_image\ndataset: {path: e.jsonl}\nfields: {media: image}\nmetrics: [test_brightness]\n"


@pytest.mark.parametrize("name, text, needles", [
    ("x.yaml", "- 3\n- foo\n", ["x.yaml[0]", "expected a mapping"]),
    ("x.yaml", "", ["x.yaml", "expected a mapping for TaskConfig, got NoneType"]),
    ("x.yaml", "3\n", ["x.yaml", "got int"]),
    ("h_t2i.yaml", T2I + "metrics: 3\n", ["h_t2i.yaml.metrics.name", "expected str, got 3"]),
    ("h_t2i.yaml", T2I + "metrics: x\n", ["unknown metric 'x'"]),
    ("h_t2i.yaml", T2I + "generation: {height: big}\n", ["h_t2i.yaml.generation.height", "expected int, got 'big'"]),
    ("h_t2i.yaml", T2I + "generation: {samples_per_prompt: 0}\n", ["generation.samples_per_prompt must be >= 1"]),
    ("h_t2i.yaml", T2I + "generation: {batch_size: -1}\n", ["generation.batch_size must be >= 1"]),
    # non-finite and out-of-range generation settings (issue 14 §7.3): one line naming the file and the key
    ("h_t2i.yaml", T2I + "generation: {guidance_scale: .nan}\n", ["h_t2i.yaml.generation.guidance_scale must be a finite number, got nan"]),
    ("h_t2i.yaml", T2I + "generation: {guidance_scale: -.inf}\n", ["h_t2i.yaml.generation.guidance_scale must be a finite number, got -inf"]),
    ("h_t2i.yaml", T2I + "generation: {fps: .nan}\n", ["h_t2i.yaml.generation.fps must be a finite number > 0, got nan"]),
    ("h_t2i.yaml", T2I + "generation: {fps: 0}\n", ["h_t2i.yaml.generation.fps must be a finite number > 0, got 0.0"]),
    ("h_t2i.yaml", T2I + "generation: {fps: .inf}\n", ["h_t2i.yaml.generation.fps must be a finite number > 0, got inf"]),
    ("h_t2i.yaml", T2I + "generation: {height: -8}\n", ["h_t2i.yaml.generation.height must be >= 1, got -8"]),
    ("h_t2i.yaml", T2I + "generation: {width: 0}\n", ["h_t2i.yaml.generation.width must be >= 1, got 0"]),
    ("h_t2i.yaml", T2I + "generation: {num_frames: 0}\n", ["h_t2i.yaml.generation.num_frames must be >= 1, got 0"]),
    ("h_t2i.yaml", T2I + "generation: {num_inference_steps: -2}\n", ["generation.num_inference_steps must be >= 1, got -2"]),
    ("h_t2i.yaml", T2I + "generation: {max_new_tokens: 0}\n", ["generation.max_new_tokens must be >= 1, got 0"]),
    ("h_t2i.yaml", T2I + "generation: {temperature: -0.5}\n", ["generation.temperature must be a finite number >= 0, got -0.5"]),
    ("h_t2i.yaml", T2I + "generation: {top_p: 1.5}\n", ["generation.top_p must be a finite number in (0, 1], got 1.5"]),
    ("h_t2i.yaml", T2I + "generation: {top_p: .nan}\n", ["generation.top_p must be a finite number in (0, 1], got nan"]),
    ("h_t2i.yaml", T2I + "generation: {extra: {shift: .nan}}\n", ["h_t2i.yaml.generation.extra.shift must be finite, got nan"]),
    ("h_t2i.yaml", T2I + "generation: {extra: {sizes: [1, .inf]}}\n", ["h_t2i.yaml.generation.extra.sizes[1] must be finite, got inf"]),
    ("h_t2i.yaml", T2I + "generation: 3\n", ["h_t2i.yaml.generation: expected a mapping"]),
    ("h_t2i.yaml", T2I + "think: maybe\n", ["h_t2i.yaml.think"]),
    ("h_t2i.yaml", T2I + "prompt_template: '{nope}'\n", ["prompt_template uses field 'nope', missing in doc p0"]),
    ("h_t2i.yaml", T2I + "prompt_template: '{prompt'\n", ["h_t2i.yaml.prompt_template: invalid format string"]),
    ("h_t2i.yaml", T2I + "prompt_template: 'x {}'\n", ["h_t2i.yaml.prompt_template: field {} is not a doc field"]),
    ("h_t2i.yaml", T2I + "prompt_template: '{prompt.x}'\n", ["field {prompt.x} is not a doc field"]),
    ("h_t2i.yaml", T2I + "metrics: [{name: test_brightness, options: {scael: 2}}]\n", ["unknown key(s) 'scael' (did you mean 'scale'?); allowed keys: scale"]),
    ("h_t2i.yaml", T2I + "metrics: [{name: test_brightness, options: {scale: big}}]\n",
     ["metric test_brightness: options.scale: expected float, got 'big'"]),
    ("h_t2i.yaml", T2I + "metrics: [{name: test_brightness, options: [1]}]\n", ["metrics.options: expected a mapping"]),
])
def test_bad_task_yaml(tmp_path, tasks_dir, capsys, name, text, needles):
    (tasks_dir / name).write_text(text)
    expect_error(capsys, run(tmp_path / "o", tasks_dir), *needles)


@pytest.mark.parametrize("file, data, needles", [
    ("prompts.jsonl", b'{"id": "a", "prompt": "x"}\n{"id": \n', ["prompts.jsonl:2: invalid JSON"]),
    ("prompts.jsonl", b'{"id": "a", "prompt": "x"}\n{"id": "a", "prompt": "y"}\n', ["duplicate doc id 'a'"]),
    ("prompts.jsonl", b'{"id": "a", "prompt": "\xff\xfe"}\n', ["prompts.jsonl is not UTF-8 text"]),
    ("prompts.jsonl", b"[1, 2]\n", ["record 0 of prompts.jsonl is not a mapping"]),
    ("p.json", b'{"data": 3}', ["p.json: expected a list of records"]),
    ("p.json", b"3", ["p.json: expected a list of records"]),
    ("p.csv", b"id,prompt\na,hello,extra\n", ["p.csv:2: expected 2 comma-separated fields"]),
    ("p.csv", b"id,prompt\na\n", ["p.csv:2: expected 2 comma-separated fields"]),
    ("p.jsonl", b"\xef\xbb\xbf" + b'{"id": "a", "prompt": "x"}\n{"id": "a", "prompt": "y"}\n', ["duplicate doc id 'a'"]),
])
def test_bad_dataset_files(tmp_path, tasks_dir, capsys, file, data, needles):
    (tasks_dir / file).write_bytes(data)
    (tasks_dir / "h_t2i.yaml").write_text(T2I.replace("prompts.jsonl", file) + "metrics: [test_brightness]\n")
    expect_error(capsys, run(tmp_path / "o", tasks_dir), *needles)


def test_csv_with_a_byte_order_mark_keeps_its_doc_ids(tmp_path, tasks_dir):
    """Issue 14 §7.7: Excel's UTF-8 BOM made the header ``\ufeffid``, so doc ids silently became row numbers."""
    (tasks_dir / "p.csv").write_bytes(b"\xef\xbb\xbfid,prompt\nalpha,hello\nbeta,world\n")
    (tasks_dir / "h_t2i.yaml").write_text(T2I.replace("prompts.jsonl", "p.csv") + "metrics: [test_brightness]\n")
    assert run(tmp_path / "o", tasks_dir) == 0
    recs = [json.loads(x) for x in (tmp_path / "o" / "samples" / "h_t2i.jsonl").read_text().splitlines()]
    assert sorted({r["doc_id"] for r in recs}) == ["alpha", "beta"]


QA_CSV = ("task: h_qa\ncapability: understand\ndataset: {path: qa.csv}\n"
          "fields: {prompt: question, media: video, choices: options, reference: answer}\n"
          "prompt_template: \"{question}\\n{choices_text}\"\nmetrics: [test_answer_a]\n")


def test_csv_options_given_as_a_json_list_are_a_list(tmp_path, tasks_dir):
    (tasks_dir / "qa.csv").write_text('id,question,video,options,answer\nq0,is 0 even?,clip.mp4,"[""yes"", ""no""]",A\n')
    (tasks_dir / "h_qa.yaml").write_text(QA_CSV)
    assert run(tmp_path / "o", tasks_dir, tasks="h_qa") == 0
    rec = json.loads((tmp_path / "o" / "samples" / "h_qa.jsonl").read_text())
    assert rec["prompt"] == "is 0 even?\n(A) yes\n(B) no"


@pytest.mark.parametrize("file, data, needles", [
    # before: split into characters, "(A) y (B) e (C) s ...", then a late error naming nothing
    ("qa.csv", "id,question,video,options,answer\nq0,is 0 even?,clip.mp4,yes|no,A\n",
     ["task h_qa:", "qa.csv:2: field 'options' (the choices) must be a JSON list", "got 'yes|no'"]),
    ("qa.csv", 'id,question,video,options,answer\nq0,x,clip.mp4,"[""yes"", 3",A\n',
     ["qa.csv:2: field 'options' (the choices) is not valid JSON"]),
    ("qa.csv", 'id,question,video,options,answer\nq0,x,clip.mp4,"""yes""",A\n',
     ["qa.csv:2: field 'options' (the choices) must be a JSON list"]),
    ("qa.jsonl", json.dumps({"id": "q0", "question": "x", "video": "clip.mp4", "options": "yes|no", "answer": "A"}) + "\n",
     ["task h_qa: doc q0 of", "qa.jsonl: field 'options' (the choices) must be a list of options or a {letter: text} "
      "mapping, got str 'yes|no'"]),
])
def test_choices_that_are_not_a_list_fail_at_load_naming_the_line(tmp_path, tasks_dir, capsys, file, data, needles):
    (tasks_dir / file).write_text(data)
    (tasks_dir / "h_qa.yaml").write_text(QA_CSV.replace("qa.csv", file))
    expect_error(capsys, run(tmp_path / "o", tasks_dir, tasks="h_qa"), *needles)


def test_csv_dataset_with_quoted_newline_runs(tmp_path, tasks_dir):
    (tasks_dir / "p.csv").write_text('id,prompt\na,"two\nlines"\nb,plain\n')
    (tasks_dir / "h_t2i.yaml").write_text(T2I.replace("prompts.jsonl", "p.csv") + "metrics: [test_brightness]\n")
    assert run(tmp_path / "o", tasks_dir) == 0
    recs = [json.loads(x) for x in (tmp_path / "o" / "samples" / "h_t2i.jsonl").read_text().splitlines()]
    assert sorted(r["prompt"] for r in recs) == ["plain", "two\nlines"]


@pytest.mark.parametrize("value, make, needles", [
    ("img.png", lambda d: (d / "img.png").mkdir(), ["task h_edit: doc a: image path is not a file", "img.png"]),
    ("img.txt", lambda d: (d / "img.txt").write_text("x"), ["doc a: unknown media type '.txt'"]),
    (["a.png"], lambda d: None, ["doc a media field 'image' must be a file name"]),
    ("clip.mp4", lambda d: None, ["doc a: edit_image needs an input image", "clip.mp4"]),
    ("bomb.png", lambda d: bomb_png(d / "bomb.png"), ["task h_edit: doc a: image", "bomb.png refused", "decompression bomb"]),
])
def test_bad_input_media(tmp_path, tasks_dir, capsys, value, make, needles):
    make(tasks_dir)
    (tasks_dir / "e.jsonl").write_text(json.dumps({"id": "a", "prompt": "x", "image": value}) + "\n")
    (tasks_dir / "e.yaml").write_text(EDIT)
    expect_error(capsys, run(tmp_path / "o", tasks_dir, tasks="h_edit"), *needles)


def _truncated_video(path: Path) -> None:
    write_video(Video(np.zeros((3, 8, 8, 3), np.uint8), fps=4), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _truncated_faststart_video(path: Path) -> None:
    """Index at the front: the cut file still opens and promises 48 frames (issue 14 §7.4)."""
    from test_media_lazy import _faststart_lossless

    whole = _faststart_lossless(path.with_name("whole.mp4"))
    path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])


@pytest.mark.parametrize("file, make, extra, needles", [
    ("v.mp4", _truncated_video, {}, ["doc(s) p0 think off: cannot decode video", "v.mp4"]),
    ("v.mp4", _truncated_faststart_video, {}, ["v.mp4 is truncated", "the container lists 48 frames, the file holds"]),
    ("v.png", lambda p: write_image(np.zeros((8, 8, 3), np.uint8), p), {}, ["v.png is not a video"]),
    ("v.mp4", lambda p: p.write_text("hello"), {}, ["cannot decode video", "v.mp4"]),
    ("v.mp4", lambda p: p.mkdir(), {}, ["video path is not a file", "v.mp4"]),
    ("v.mp4", lambda p: None, {"sample_index": "x"}, ["manifest.jsonl:1: sample_index must be a whole number >= 0, got 'x'"]),
    ("v.mp4", lambda p: None, {"file": None}, ["manifest.jsonl:1: needs doc_id and file"]),
])
def test_bad_prediction_files(tmp_path, tasks_dir, capsys, file, make, extra, needles):
    pred = tmp_path / "pred"
    pred.mkdir()
    make(pred / file)
    lines = [dict({"task": "h_t2v", "doc_id": f"p{i}", "file": file}, **extra) for i in range(4)]
    (pred / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    expect_error(capsys, run(tmp_path / "o", tasks_dir, "--model_args", f"path={pred}", tasks="h_t2v", model="predictions"),
                 *needles)


def test_prediction_png_that_is_text_and_bad_manifests(tmp_path, tasks_dir, capsys):
    pred = tmp_path / "pred"
    pred.mkdir()
    (pred / "x.png").write_text("hello")
    (pred / "manifest.jsonl").write_text(json.dumps({"doc_id": "p0", "file": "x.png"}) + "\n")
    expect_error(capsys, run(tmp_path / "o", tasks_dir, "--limit", "1", "--model_args", f"path={pred}", model="predictions"),
                 "doc(s) p0 think off: cannot decode image", "x.png")
    (pred / "manifest.jsonl").write_bytes(b"\xff\n")
    expect_error(capsys, run(tmp_path / "o", tasks_dir, "--model_args", f"path={pred}", model="predictions"),
                 "manifest.jsonl is not UTF-8 text")
    expect_error(capsys, run(tmp_path / "o", tasks_dir, model="predictions"), "--model_args path=DIR")


@pytest.mark.parametrize("mode, tasks, needles", [
    ("nan", "h_t2i", ["task h_t2i doc p0 sample 0 think off: contains NaN"]),
    ("nan", "h_t2v", ["model test-bad-output, task h_t2v doc(s) p0 think off: video: contains NaN"]),
    ("shape", "h_t2i", ["doc p0 sample 0 think off: expected an image of shape H x W x 3, got (8, 8)"]),
    ("shape", "h_t2v", ["doc p0 sample 0 think off: generate_video() must return a Video, got ndarray"]),
    ("none", "h_t2i", ["doc p0 sample 0 think off: expected an image"]),
    ("few", "h_t2i", ["returned 0 outputs for 1 requests (task h_t2i)"]),  # the batch of 3 raised, then each alone
])
def test_bad_model_outputs(tmp_path, tasks_dir, capsys, mode, tasks, needles):
    expect_error(capsys, run(tmp_path / "o", tasks_dir, "--model_args", f"mode={mode}", tasks=tasks, model="test-bad-output"),
                 *needles)


@pytest.mark.parametrize("extra, env, needles", [
    (["--model_args", "a="], {}, ["--model_args: expected key=value, got 'a='"]),
    (["--model_args", "=b"], {}, ["--model_args: expected key=value, got '=b'"]),
    (["--model_args", "x"], {}, ["--model_args: expected key=value, got 'x'"]),
    (["--model_args", "a=1,a=2"], {}, ["'a' is given twice"]),
    (["--limit", "-1"], {}, ["--limit must be >= 1, got -1"]),
    (["--limit", "0"], {}, ["--limit must be >= 1"]),
    (["--offset", "-1"], {}, ["--offset must be >= 0"]),
    (["--offset", "100"], {}, ["task h_t2i: no docs to run (the dataset has 4, --offset is 100)"]),
    (["--dataset", "h_t2i"], {}, ["--dataset: expected TASK=PATH"]),
    (["--dataset", "nope=x.jsonl"], {}, ["unknown task (in --dataset) 'nope'"]),
    ([], {"RANK": "x"}, ["RANK='x' is not an integer"]),
    ([], {"RANK": "3", "WORLD_SIZE": "2"}, ["need 0 <= RANK < WORLD_SIZE"]),
])
def test_bad_command_line(tmp_path, tasks_dir, capsys, monkeypatch, extra, env, needles):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    expect_error(capsys, run(tmp_path / "o", tasks_dir, *extra), *needles)


def test_output_path_is_a_file(tmp_path, tasks_dir, capsys):
    (tmp_path / "o").write_text("x")
    expect_error(capsys, run(tmp_path / "o", tasks_dir), "output folder", "is not writable")


@pytest.mark.parametrize("text, needles", [
    (None, ["run_config.json not found"]),
    ("{oops", ["run_config.json: not valid JSON"]),
    ("[1]", ["run_config.json: expected a JSON object, got list"]),
    ('{"output_path": "x", "bogus": 1}', ["run_config.json: not a run configuration", "bogus"]),
])
def test_score_bad_run_config(tmp_path, capsys, text, needles):
    (tmp_path / "o").mkdir()
    if text is not None:
        (tmp_path / "o" / "run_config.json").write_text(text)
    expect_error(capsys, main(["score", "--output_path", str(tmp_path / "o")]), *needles)


@pytest.fixture()
def finished(tmp_path, tasks_dir):
    out = tmp_path / "out"
    assert run(out, tasks_dir, tasks="h_t2i,h_t2v") == 0
    return out


def _results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())["results"]


@pytest.mark.parametrize("kind", ["samples", "scores"])
@pytest.mark.parametrize("damage", [b'{"key": "a", "tas\n', b'{"x": 1}\n', b"\xff\xfe\n", b"[1]\n"])
def test_damaged_middle_record_is_skipped_not_truncated(finished, tasks_dir, capsys, kind, damage):
    """A damaged line in the middle of a record file loses only that record (its item is redone), never the rest."""
    before = _results(finished)
    path = finished / kind / "h_t2i.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    lines[2] = damage
    path.write_bytes(b"".join(lines))
    rc = main(["score", "--output_path", str(finished)])
    err = capsys.readouterr().err
    assert "h_t2i.jsonl:3: skipping a line" in err and "Traceback" not in err
    if kind == "samples":  # the item has no output now: `score` names it, `run` regenerates it
        assert rc == 2 and "1 of 8 work items have no generated output" in err and "doc p1" in err
        assert run(finished, tasks_dir, tasks="h_t2i,h_t2v") == 0
    else:
        assert rc == 0
    assert path.read_bytes().count(b"\n") == 8  # 7 intact + the redone record
    assert path.with_name("h_t2i.jsonl.damaged").read_bytes() == damage  # the damaged line is kept, byte for byte
    assert _results(finished) == before
    assert main(["score", "--output_path", str(finished)]) == 0
    assert "skipping a line" not in capsys.readouterr().err  # warned once, not on every load


def test_damaged_score_arrays_are_rescored(finished):
    before = _results(finished)
    for npz in (finished / "scores" / "arrays").rglob("*.npz"):
        npz.write_bytes(b"junk")
    (finished / "results.json").unlink()
    assert main(["score", "--output_path", str(finished)]) == 0
    assert _results(finished) == before


def test_corrupted_results_json_is_rebuilt_from_the_store(finished):
    before = _results(finished)
    (finished / "results.json").write_text("{not json")
    assert main(["score", "--output_path", str(finished)]) == 0
    assert _results(finished) == before


def test_leaderboard_on_results_that_are_not_json(tmp_path, capsys):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "results.json").write_text("nope")
    expect_error(capsys, main(["leaderboard", "--results", str(tmp_path / "r"), "--out", str(tmp_path / "b")]),
                 "results.json: not valid JSON")


@pytest.mark.parametrize("content", ['[1, 2]', '{"results": [1]}', '{"results": {"t": {"m": 3}}}'])
def test_leaderboard_on_results_of_the_wrong_shape(tmp_path, capsys, content):
    bad = tmp_path / "results.json"
    bad.write_text(content)
    assert main(["leaderboard", "--results", str(bad), "--out", str(tmp_path / "board")]) == 2
    err = capsys.readouterr().err
    assert "not an omnieval results.json" in err and err.count("\n") == 1


def test_leaderboard_out_that_is_a_file(tmp_path, capsys):
    good = tmp_path / "results.json"
    good.write_text('{"results": {"t": {"m": {"value": 1.0}}}}')
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["leaderboard", "--results", str(good), "--out", str(blocker / "x")]) == 2
    assert "is not a writable folder" in capsys.readouterr().err


def test_unknown_model_arg_is_refused_before_anything_runs(tmp_path, capsys):
    """A misspelt ``--model_args`` key would be ignored by the model yet recorded in the identity: refuse it."""
    from omnieval.cli import main

    code = main(["run", "--model", "omnivideo-tiny", "--model_args", "guidance_from=textbook", "--tasks", "smoke_t2i",
                 "--output_path", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert "'guidance_from'" in err[-1] and "did you mean 'guidance_form'" in err[-1]
    assert not (tmp_path / "run" / "results.json").exists()


def test_known_args_of_each_model():
    """Constructor parameters and recorded settings are accepted; models with ``**kwargs`` only accept anything."""
    from omnieval.models.base import Model
    from omnieval.registry import get_model

    assert "guidance_form" in get_model("omnivideo").known_args() and "checkpoint" in get_model("omnivideo").known_args()
    assert "seed" in get_model("omnivideo-tiny").known_args() and "checkpoint" not in get_model("omnivideo-tiny").known_args()
    assert {"pretrained", "pipeline", "device"} <= get_model("diffusers").known_args()
    assert {"path", "naming", "think_path"} <= get_model("predictions").known_args()
    assert Model.known_args() is None
