"""Runner, store, results and CLI behaviour on a deterministic fake model (tests/harness_fixtures.py)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import harness_fixtures as hf
import pytest

from omnieval.cli import main

TESTS_DIR = Path(__file__).resolve().parent
REPO = TESTS_DIR.parent


@pytest.fixture()
def tasks_dir(tmp_path):
    return hf.write_tasks(tmp_path / "tasks")


def run(out, tasks_dir, *extra, tasks="harness", model="fake-test"):
    return main(["run", "--model", model, "--tasks", tasks, "--output_path", str(out), "--include_path", str(tasks_dir), *extra])


def values(out) -> dict:
    data = json.loads((Path(out) / "results.json").read_text())
    return {t: {m: r["value"] for m, r in ms.items()} for t, ms in data["results"].items()}


def test_results_schema(tmp_path, tasks_dir):
    assert run(tmp_path / "out", tasks_dir, "--think", "both") == 0
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    for key in ("schema_version", "results", "ablations", "configs", "task_hashes", "model", "environment", "timing", "counters",
                "statistics"):
        assert key in data
    assert data["schema_version"] == 2 and {"stderr", "ci", "p_value"} <= set(data["statistics"])
    r = data["results"]["h_t2i"]["brightness"]
    assert set(r) == {"value", "stderr", "ci_low", "ci_high", "n", "n_clusters", "higher_is_better", "missing"}
    assert r["n"] == 8 and r["n_clusters"] == 4 and r["stderr"] > 0 and r["ci_low"] < r["value"] < r["ci_high"]
    ablation = data["ablations"]["h_t2i"]["brightness"]
    assert ablation["n_clusters"] == 4 and ablation["p_value"] >= 2 / 2 ** 4  # exact sign-flip over 4 docs
    assert data["results"]["h_t2v"]["test_feature_spread/spread"]["higher_is_better"] is False
    assert "h_t2i@think" in data["results"] and "h_qa@think" not in data["results"]  # QA has no think mode
    assert data["ablations"]["h_t2i"]["brightness"]["n"] == 8
    assert data["model"]["name"] == "fake-test" and data["environment"]["packages"]["torch"]
    assert (tmp_path / "out" / "samples" / "h_t2i.jsonl").exists()


def test_rerun_makes_no_calls_and_reports_identical_metrics(tmp_path, tasks_dir, monkeypatch):
    calls = tmp_path / "calls.txt"
    monkeypatch.setenv(hf.CALLS_FILE_ENV, str(calls))
    """The resumed run's speed (<10% of the first) is measured by bench/bench_smoke.py, not asserted here."""
    run(tmp_path / "out", tasks_dir, "--think", "both")
    first_values = values(tmp_path / "out")
    calls.write_text("")
    run(tmp_path / "out", tasks_dir, "--think", "both")
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert data["counters"] == {"generation_calls": 0, "generated_items": 0, "scoring_calls": 0, "scored_items": 0}
    assert calls.read_text() == ""
    assert values(tmp_path / "out") == first_values


def test_changed_settings_redo_exactly_the_affected_items(tmp_path, tasks_dir):
    out = tmp_path / "out"
    run(out, tasks_dir)
    # a metric option changes: re-score that metric only, generate nothing
    y = tasks_dir / "h_t2v.yaml"
    y.write_text(y.read_text().replace("  - name: test_brightness\n", "  - name: test_brightness\n    options: {scale: 2.0}\n"))
    run(out, tasks_dir)
    c = json.loads((out / "results.json").read_text())["counters"]
    assert c["generated_items"] == 0 and c["scored_items"] == 4
    # a generation setting of one task changes: regenerate that task's items only
    y.write_text(y.read_text().replace("num_frames: 3", "num_frames: 5"))
    run(out, tasks_dir)
    c = json.loads((out / "results.json").read_text())["counters"]
    assert c["generated_items"] == 4 and c["scored_items"] == 8


def test_score_command_rescores_without_loading_the_model(tmp_path, tasks_dir):
    out = tmp_path / "out"
    run(out, tasks_dir, "--predict_only")
    assert not (out / "results.json").exists() or not json.loads((out / "results.json").read_text())["results"]
    cfg = json.loads((out / "run_config.json").read_text())
    cfg["model_args"] = {}  # same identity; constructing the model would now fail loudly
    (out / "run_config.json").write_text(json.dumps(cfg))
    hf.FakeModel.from_args = classmethod(lambda cls, **kw: (_ for _ in ()).throw(AssertionError("model loaded")))
    try:
        assert main(["score", "--output_path", str(out)]) == 0
    finally:
        del hf.FakeModel.from_args
    data = json.loads((out / "results.json").read_text())
    assert data["counters"]["generated_items"] == 0 and data["counters"]["scored_items"] > 0
    assert "h_t2v" in data["results"]


def test_results_do_not_depend_on_world_size(tmp_path, tasks_dir, monkeypatch):
    run(tmp_path / "single", tasks_dir, "--think", "both")
    out = tmp_path / "sharded"
    monkeypatch.setenv("WORLD_SIZE", "2")
    for rank in ("1", "0"):  # rank 0 finds rank 1's scores on disk and aggregates
        monkeypatch.setenv("RANK", rank)
        run(out, tasks_dir, "--think", "both")
    assert values(out) == values(tmp_path / "single")
    assert any(p.name.endswith(".rank1.jsonl") for p in (out / "samples").iterdir())


def _read_keys(path: Path) -> list[str]:
    raw = path.read_bytes()
    assert raw.endswith(b"\n"), "torn last line"
    return [json.loads(line)["key"] for line in raw.decode().splitlines()]


def test_sigkill_mid_task_then_resume_matches_uninterrupted_run(tmp_path, tasks_dir):
    run(tmp_path / "clean", tasks_dir, "--think", "both")
    out = tmp_path / "killed"
    code = (f"import sys; sys.path[:0] = [{str(TESTS_DIR)!r}, {str(REPO)!r}]; import harness_fixtures; "
            f"from omnieval.cli import main; sys.exit(main(sys.argv[1:]))")
    args = [sys.executable, "-c", code, "run", "--model", "fake-test", "--model_args", "delay=0.4", "--tasks", "harness",
            "--think", "both", "--output_path", str(out), "--include_path", str(tasks_dir)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    samples = out / "samples" / "h_t2i.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not samples.exists() or samples.read_text().count("\n") < 2):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = samples.read_text().count("\n")
    assert 2 <= done < 16, "the kill must land mid-task"
    with open(samples, "ab") as f:  # simulate a record torn by the kill
        f.write(b'{"key": "torn", "task"')
    run(out, tasks_dir, "--think", "both")
    assert values(out) == values(tmp_path / "clean")
    keys = _read_keys(samples)
    assert len(keys) == len(set(keys)) == 16 and "torn" not in keys  # 4 docs x 2 samples x 2 think modes
    for score_file in (out / "scores").glob("*.jsonl"):
        ks = _read_keys(score_file)
        assert len(ks) == len(set(ks))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--tasks", "h_t2j"], "unknown task 'h_t2j'; did you mean h_t2"),
        (["--model", "fake-tset"], "unknown model 'fake-tset'; did you mean fake-test"),
    ],
)
def test_unknown_names_exit_2_with_suggestion(tmp_path, tasks_dir, capsys, argv, message):
    base = {"--tasks": "harness", "--model": "fake-test"}
    base.update(dict(zip(argv[::2], argv[1::2])))
    rc = main(["run", "--output_path", str(tmp_path / "o"), "--include_path", str(tasks_dir)] + [x for kv in base.items() for x in kv])
    assert rc == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_unknown_metric_and_misspelled_key(tmp_path, tasks_dir, capsys):
    (tasks_dir / "h_t2i.yaml").write_text((tasks_dir / "h_t2i.yaml").read_text().replace("test_brightness", "test_brigthness"))
    assert run(tmp_path / "o", tasks_dir) == 2
    assert "unknown metric 'test_brigthness'; did you mean test_brightness" in capsys.readouterr().err
    (tasks_dir / "h_t2i.yaml").write_text("task: h_t2i\ncapability: t2i\ndataset: {path: prompts.jsonl}\ngenration: {}\n")
    assert run(tmp_path / "o", tasks_dir) == 2
    err = capsys.readouterr().err
    assert "h_t2i.yaml" in err and "'genration' (did you mean 'generation'?)" in err and "allowed keys" in err


def test_malformed_yaml_names_file_and_line(tmp_path, tasks_dir, capsys):
    (tasks_dir / "broken.yaml").write_text("task: broken\ncapability: [t2i\n")
    assert run(tmp_path / "o", tasks_dir) == 2
    err = capsys.readouterr().err
    assert "broken.yaml" in err and "malformed YAML" in err


def test_bad_input_keeps_finished_results(tmp_path, tasks_dir, capsys):
    out = tmp_path / "o"
    assert run(out, tasks_dir, tasks="h_t2i") == 0
    before = (out / "results.json").read_text()
    (tasks_dir / "clip.mp4").write_bytes(b"not a video")
    assert run(out, tasks_dir, tasks="h_t2i,h_qa") == 2
    err = capsys.readouterr().err
    assert "cannot decode video" in err and "clip.mp4" in err
    assert json.loads((out / "results.json").read_text())["results"] == json.loads(before)["results"]
    (tasks_dir / "clip.mp4").unlink()
    assert run(out, tasks_dir, tasks="h_qa") == 2
    assert "video file not found" in capsys.readouterr().err


def test_missing_dataset_and_unwritable_output(tmp_path, tasks_dir, capsys):
    (tasks_dir / "prompts.jsonl").unlink()
    assert run(tmp_path / "o", tasks_dir, tasks="h_t2i") == 2
    assert "dataset file not found" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert run(blocker / "sub", tasks_dir, tasks="h_t2i") == 2
    assert "not writable" in capsys.readouterr().err


def test_capability_mismatch_names_model_and_task(tmp_path, tasks_dir, capsys):
    hf.FakeModel.capabilities = ("t2i",)
    try:
        assert run(tmp_path / "o", tasks_dir, tasks="h_t2v") == 2
    finally:
        hf.FakeModel.capabilities = ("understand", "t2i", "t2v", "long_video", "edit_image", "edit_video")
    err = capsys.readouterr().err
    assert "fake-test" in err and "h_t2v" in err and "'t2v'" in err


def test_limit_offset_seed_and_dataset_override(tmp_path, tasks_dir):
    out = tmp_path / "o"
    run(out, tasks_dir, "--limit", "2", "--offset", "1", "--seed", "3", tasks="h_t2v")
    recs = [json.loads(x) for x in (out / "samples" / "h_t2v.jsonl").read_text().splitlines()]
    assert sorted(r["doc_id"] for r in recs) == ["p1", "p2"] and {r["seed"] for r in recs} == {3}
    other = tmp_path / "other.jsonl"
    other.write_text('{"id": "z", "prompt": "zebra"}\n')
    run(tmp_path / "o2", tasks_dir, "--dataset", f"h_t2v={other}", tasks="h_t2v")
    recs = [json.loads(x) for x in (tmp_path / "o2" / "samples" / "h_t2v.jsonl").read_text().splitlines()]
    assert [r["prompt"] for r in recs] == ["zebra"]


def test_run_eval_shim_and_fast_listing():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    shim = subprocess.run([sys.executable, str(REPO / "run_eval.py"), "ls", "models"], capture_output=True, text=True, env=env)
    cli = subprocess.run([sys.executable, "-m", "omnieval.cli", "ls", "models"], capture_output=True, text=True, env=env)
    assert shim.returncode == 0 and shim.stdout == cli.stdout and "predictions" in shim.stdout
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "omnieval.cli", "ls", "metrics"], capture_output=True, text=True, env=env)
    assert out.returncode == 0
    assert "torch" not in {line.split("|")[-1].strip().split(".")[0] for line in out.stderr.splitlines()[1:]}, "ls must not import torch"


def test_each_item_is_decoded_once_for_all_its_metrics(tmp_path, tasks_dir, monkeypatch):
    """h_t2v has two metrics: the scoring pass reads each artifact once and hands the same object to both."""
    import collections

    import omnieval.store as store_module

    opened: collections.Counter = collections.Counter()
    seen: dict[str, set] = collections.defaultdict(set)
    real_read = store_module.read_media
    monkeypatch.setattr(store_module, "read_media", lambda path: opened.update([str(path)]) or real_read(path))
    for cls in (hf.Brightness, hf.FeatureSpread):
        original = cls.contributions

        def spy(self, inputs, _original=original):
            for x in inputs:
                seen[x.item_id].add(id(x.output))
            return _original(self, inputs)

        monkeypatch.setattr(cls, "contributions", spy)
    run(tmp_path / "out", tasks_dir, tasks="h_t2v")
    assert len(opened) == 4 and set(opened.values()) == {1}
    assert len(seen) == 4 and all(len(ids) == 1 for ids in seen.values())


def test_contributions_marked_retry_are_scored_again_next_run(tmp_path, tasks_dir, monkeypatch):
    """A transient failure (e.g. a judge outage) is kept and counted, then scored again by the next run."""
    from omnieval.metrics.base import RETRY

    state = {"down": True}
    original = hf.AnswerIsA.score

    def flaky(self, inputs):
        if state["down"]:
            return [{"judge_failed": 1.0, RETRY: "connection refused"} for _ in inputs]
        return original(self, inputs)

    monkeypatch.setattr(hf.AnswerIsA, "score", flaky)
    run(tmp_path / "out", tasks_dir, tasks="h_qa")
    first = json.loads((tmp_path / "out" / "results.json").read_text())
    assert "is_a" not in first["results"]["h_qa"] and first["counters"]["scored_items"] == 3
    state["down"] = False
    run(tmp_path / "out", tasks_dir, tasks="h_qa")
    second = json.loads((tmp_path / "out" / "results.json").read_text())
    assert second["counters"]["scored_items"] == 3 and second["results"]["h_qa"]["is_a"]["n"] == 3
    run(tmp_path / "out", tasks_dir, tasks="h_qa")
    assert json.loads((tmp_path / "out" / "results.json").read_text())["counters"]["scored_items"] == 0
