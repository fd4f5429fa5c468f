"""Per-doc sample counts, metric `where` subsets, task aggregates (VBench totals), start-up weight checks."""
from __future__ import annotations

import json

import harness_fixtures  # noqa: F401 - registers the fake model and test metrics
import pytest

from omnieval.aggregate.vbench import load_constants, vbench_scores
from omnieval.cli import main

DIMS = list(load_constants()["dimensions"])


def _write(folder, dims_present, values):
    folder.mkdir()
    docs = [{"id": "a", "prompt": "a cat", "dimension": ["subject_consistency"], "n": 3},
            {"id": "b", "prompt": "a dog", "dimension": ["temporal_flickering", "color"]}]
    (folder / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    metrics = "".join(f"  - {{name: test_constant, label: m_{d}, options: {{name: {d}, value: {values[d]}}}}}\n"
                      for d in dims_present)
    (folder / "t.yaml").write_text(
        "task: vb\ncapability: t2v\ndataset: {path: docs.jsonl}\nfields: {num_samples: n}\n"
        "generation: {height: 8, width: 8, num_frames: 2, samples_per_prompt: 2}\naggregates: [vbench]\n"
        "think: [off, on]\nmetrics:\n" + metrics +
        "  - {name: test_brightness, where: {dimension: color}}\n")
    return folder


def test_vbench_totals_where_and_per_doc_samples(tmp_path):
    values = {d: 0.5 + 0.02 * i for i, d in enumerate(DIMS)}
    tasks = _write(tmp_path / "tasks", DIMS, values)
    out = tmp_path / "out"
    assert main(["run", "--model", "fake-test", "--tasks", "vb", "--think", "both", "--output_path", str(out),
                 "--include_path", str(tasks)]) == 0
    data = json.loads((out / "results.json").read_text())
    res = data["results"]["vb"]
    expected = vbench_scores(values)
    for key in ("total", "quality", "semantic"):
        assert res[f"vbench_{key}"]["value"] == pytest.approx(expected[key])
    assert res["m_subject_consistency/subject_consistency"]["n"] == 5  # doc a: 3 samples, doc b: 2 (default)
    assert res["test_brightness/brightness"]["n"] == 2  # only doc b has dimension `color`
    assert data["ablations"]["vb"]["vbench_total"]["delta"] == pytest.approx(0.0)


def test_missing_dimension_leaves_totals_null_never_zero(tmp_path):
    present = [d for d in DIMS if d != "color"]
    tasks = _write(tmp_path / "tasks", present, {d: 0.9 for d in DIMS})
    out = tmp_path / "out"
    main(["run", "--model", "fake-test", "--tasks", "vb", "--output_path", str(out), "--include_path", str(tasks)])
    res = json.loads((out / "results.json").read_text())["results"]["vb"]
    assert res["vbench_semantic"]["value"] is None and res["vbench_total"]["value"] is None
    assert res["vbench_quality"]["value"] == pytest.approx(vbench_scores({d: 0.9 for d in DIMS})["quality"])
    assert res["vbench_total"]["missing"] == ["color"]


def _run_one_t2v_task(tmp_path, name: str, rest: str):
    """Run the fake model on a one-doc t2v task ``name`` (``rest``: more YAML); returns (exit status, output folder)."""
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "p.jsonl").write_text('{"id": "a", "prompt": "a cat"}\n')
    (tasks / "t.yaml").write_text(f"task: {name}\ncapability: t2v\ndataset: {{path: p.jsonl}}\n{rest}")
    out = tmp_path / "out"
    rc = main(["run", "--model", "fake-test", "--tasks", name, "--output_path", str(out), "--include_path", str(tasks)])
    return rc, out


def test_missing_metric_weights_fail_before_generation_listing_every_file(tmp_path, capsys):
    rc, out = _run_one_t2v_task(tmp_path, "needs_weights", "metrics:\n  - vbench_dynamic_degree\n"
                                "  - vbench_motion_smoothness\n  - vbench_temporal_flickering\n")
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("omnieval: error: missing metric weights") and err.count("\n") == 1
    for filename in ("raft-things.pth", "amt-s.pth"):
        assert filename in err
    assert not (out / "samples").exists(), "nothing may be generated when weights are missing"


def test_metric_that_cannot_run_here_fails_at_start_up(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", "--model", "fake-test", "--tasks", "vbench", "--limit", "1", "--output_path", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and any(w in err for w in ("detectron2", "pyiqa", "fairscale", "missing metric weights"))
    assert not (out / "samples").exists()


def test_videomme_style_task_media_template_env_root_and_breakdowns(tmp_path, monkeypatch, capsys):
    """Hub-style docs (options already lettered, media named by id) run through the real Video-MME YAML."""
    import numpy as np

    from omnieval.media import Video, write_video
    from omnieval.tasks import all_tasks

    videos = tmp_path / "videomme" / "data"
    videos.mkdir(parents=True)
    docs = []
    for i, duration in enumerate(["short", "short", "long"]):
        write_video(Video(np.full((2, 8, 8, 3), 40 * i, np.uint8)), videos / f"v{i}.mp4")
        docs.append({"question_id": f"q{i}", "videoID": f"v{i}", "duration": duration, "question": f"is {i} even?",
                     "options": ["A. yes", "B. no", "C. maybe", "D. never"], "answer": "B"})
    data = tmp_path / "videomme.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in docs))
    monkeypatch.setenv("VIDEOMME_DIR", str(tmp_path / "videomme"))
    out = tmp_path / "out"
    assert main(["run", "--model", "fake-test", "--tasks", "videomme", "--dataset", f"videomme={data}", "--output_path", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())["results"]["videomme"]
    # the fake model answers "(B) because" to questions containing "even": all correct
    assert res["mcq_accuracy"]["value"] == pytest.approx(100.0) and res["mcq_accuracy"]["n"] == 3
    assert res["mcq_accuracy[duration=short]"]["n"] == 2 and res["mcq_accuracy[duration=long]"]["n"] == 1
    prompt = json.loads((out / "samples" / "videomme.jsonl").read_text().splitlines()[0])["prompt"]
    assert "\nA. yes\nB. no\nC. maybe\nD. never\n" in prompt
    monkeypatch.delenv("VIDEOMME_DIR")
    capsys.readouterr()
    assert main(["run", "--model", "fake-test", "--tasks", "videomme", "--dataset", f"videomme={data}",
                 "--output_path", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err  # one line: the variable and what to download where
    assert err.count("\n") == 1 and "needs $VIDEOMME_DIR, which is not set" in err and "videos_chunked" in err
    assert "videomme" in all_tasks()


@pytest.mark.parametrize("name, path_option, weight", [
    ("vbench_subject_consistency", "ckpt_path", "vbench_dino_vitb16"),
    ("vbench_dynamic_degree", "raft_path", "vbench_raft_things"),
    ("fvd", "ckpt_path", "i3d_pretrained_400"),
])
def test_explicit_checkpoint_path_replaces_the_manifest_requirement(tmp_path, name, path_option, weight):
    from omnieval.registry import get_metric

    extra = {"reference_stats": str(tmp_path / "ref.npz")} if name == "fvd" else {}
    assert weight in get_metric(name)(**extra).required_weights()
    assert get_metric(name)(**{path_option: str(tmp_path / "w.pt")}, **extra).required_weights() == []


class _RunsCode:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > /dev/null",))


def test_malicious_metric_checkpoint_is_refused_before_generation(tmp_path, capsys, monkeypatch):
    """Issue 14 §7.10: a code-running ``raft-things.pth`` was refused by ``weights_only`` only when scoring, after
    every video was generated, and as a multi-line message."""
    import torch

    weights = tmp_path / "weights"
    weights.mkdir()
    torch.save({"module.conv.weight": torch.zeros(1), "hook": _RunsCode()}, weights / "raft-things.pth")
    monkeypatch.setenv("OMNIEVAL_WEIGHTS_DIR", str(weights))
    rc, out = _run_one_t2v_task(tmp_path, "evil_weights", "generation: {num_frames: 4}\nmetrics: [vbench_dynamic_degree]\n")
    assert rc == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "raft-things.pth" in err and "posix.system" in err and "refusing to load" in err, err
    assert not (out / "samples").exists(), "nothing may be generated when a weight file is refused"


def test_explicit_weight_files_are_checked_too(tmp_path):
    """Files given as metric options (``raft_path=...``) are checked by ``weights.require(files=...)``;
    ``weights.option_files`` lists them from a metric's options."""
    import torch

    from omnieval.metrics import weights
    from omnieval.registry import get_metric
    from omnieval.safe_pickle import UnsafePickleError

    bad = tmp_path / "mine.pth"
    torch.save({"x": _RunsCode()}, bad)
    metric = get_metric("vbench_dynamic_degree")(raft_path=str(bad))
    assert metric.required_weights() == [] and weights.option_files(metric) == [bad]
    with pytest.raises(UnsafePickleError, match=r"mine\.pth: refusing to load it, its pickle names posix\.system"):
        weights.require([], files=weights.option_files(metric))
