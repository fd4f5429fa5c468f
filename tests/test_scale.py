"""Running at scale, in one process: launcher conventions, batch-invariant sharding, no waiting on other shards,
per-item failures, folder locks, and the folder a command writes (issue 14).  The launchers themselves (torchrun,
accelerate) are exercised in tests/test_launchers.py."""
from __future__ import annotations

import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path

import harness_fixtures as hf
import numpy as np
import pytest

from omnieval import launch
from omnieval.cli import main
from omnieval.errors import ConfigError, MissingWeightsError
from omnieval.failures import FailureLimit
from omnieval.locks import FolderLock
from omnieval.media import as_frames, read_image
from omnieval.metrics.base import RETRY
from omnieval.registry import register_metric, register_model

TESTS_DIR = Path(__file__).resolve().parent
REPO = TESTS_DIR.parent
FAIL_ENV = "OMNIEVAL_TEST_FAIL_DOCS"  # doc ids the flaky model / metric raise on
LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_STEP_NUM_TASKS", "SLURM_LOCALID",
               "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_MAX",
               "SLURM_ARRAY_TASK_STEP", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "PMI_RANK", "PMI_SIZE",
               "OMNIEVAL_SHARDING", "OMNIEVAL_DEVICE")


def _failing() -> set[str]:
    return set(filter(None, os.environ.get(FAIL_ENV, "").split(",")))


@register_model("test-flaky", description="fake model raising on the docs listed in $OMNIEVAL_TEST_FAIL_DOCS (tests)")
class FlakyModel(hf.FakeModel):
    def generate_image(self, requests):
        bad = [r.doc_id for r in requests if r.doc_id in _failing()]
        if bad:
            raise RuntimeError(f"boom on {bad[0]}")
        return super().generate_image(requests)


    def edit_image(self, requests):
        bad = [r.doc_id for r in requests if r.doc_id in _failing()]
        if bad:
            raise RuntimeError(f"boom on {bad[0]}")
        return super().edit_image(requests)


@register_metric("test_flaky_brightness", description="brightness raising on the docs in $OMNIEVAL_TEST_FAIL_DOCS")
class FlakyBrightness(hf.Brightness):
    batch_size = 4

    def score(self, inputs):
        bad = [x.item_id for x in inputs if x.doc_id in _failing()]
        if bad:
            raise ValueError(f"cannot score {bad[0]}")
        return super().score(inputs)


@register_metric("test_needs_weights", description="raises MissingWeightsError when scoring (tests)")
class NeedsWeights(hf.Brightness):
    def score(self, inputs):
        raise MissingWeightsError("metric test_needs_weights: put net.pt in /nowhere")


@register_metric("test_batch_siblings", description="brightness, its batch's mean and the doc's other samples (tests)")
class BatchSiblings(hf.Brightness):
    """Per item: brightness, plus 1e-3 x the mean brightness of the whole batch (so any change of what shares a
    batch changes the value, as in batched networks), plus the mean brightness of the doc's other samples."""

    batch_size = 3
    needs = ("output", "siblings")

    def score(self, inputs):
        own = [s["brightness"] for s in super().score(inputs)]
        mean = sum(own) / len(own)
        out = []
        for x, b in zip(inputs, own):
            sibs = [float(as_frames(o).mean() / 255.0) for o in x.siblings.values()]
            out.append({"value": b + 1e-3 * mean + (sum(sibs) / len(sibs) if sibs else 0.0)})
        return out


JUDGE_DOWN_ENV = "OMNIEVAL_TEST_JUDGE_DOWN"  # doc ids (or "all") on which the fake judge metric gets no reply


@register_metric("test_fake_judge", description="brightness; a RETRY contribution while $OMNIEVAL_TEST_JUDGE_DOWN names the doc")
class FakeJudge(hf.Brightness):
    def score(self, inputs):
        down = set(os.environ.get(JUDGE_DOWN_ENV, "").split(","))
        return [{RETRY: "judge endpoint 127.0.0.1:9 refused the connection"} if "all" in down or x.doc_id in down else s
                for x, s in zip(inputs, super().score(inputs))]


_ALIVE: list[weakref.ref] = []
_MAX_ALIVE: list[int] = []


@register_metric("test_alive_outputs", description="records how many decoded outputs are alive at once (tests)")
class AliveOutputs(hf.Brightness):
    batch_size = 4

    def score(self, inputs):
        _ALIVE.extend(weakref.ref(x.output) for x in inputs)
        gc.collect()
        _MAX_ALIVE.append(sum(ref() is not None for ref in _ALIVE))
        return super().score(inputs)


@pytest.fixture(autouse=True)
def _no_launcher(monkeypatch):
    for var in LAUNCH_VARS + (FAIL_ENV, JUDGE_DOWN_ENV):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture()
def tasks_dir(tmp_path):
    folder = hf.write_batch_task(hf.write_tasks(tmp_path / "tasks"))
    (folder / "f_t2i.yaml").write_text(
        "task: f_t2i\ncapability: t2i\ndataset: {path: many.jsonl}\ngeneration: {height: 8, width: 8, batch_size: 3}\n"
        "metrics: [test_flaky_brightness, test_brightness]\n")
    return folder


def run(out, tasks_dir, *extra, tasks="harness", model="fake-test"):
    return main(["run", "--model", model, "--tasks", tasks, "--output_path", str(out), "--include_path", str(tasks_dir), *extra])


def results(out) -> dict:
    return json.loads((Path(out) / "results.json").read_text())


def values(out) -> dict:
    return {t: {m: r["value"] for m, r in ms.items()} for t, ms in results(out)["results"].items()}


def records(out, kind: str) -> dict[str, dict]:
    return hf.read_records(out, kind, unique=kind != "failures")


def contributions(out) -> dict[str, dict]:
    return {k: r["contribution"] for k, r in records(out, "scores").items()}


# ---------------------------------------------------------------------------------------------
# 1. launchers: one table of conventions
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("env, expected", [
    ({}, (0, 1, 0, "")),
    ({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}, (3, 4, 1, "torchrun")),
    ({"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1"}, (5, 8, 1, "slurm")),
    ({"SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "2", "SLURM_NTASKS": "8"}, (1, 2, 0, "slurm")),  # srun's step size wins
    ({"RANK": "2", "WORLD_SIZE": "4", "LOCAL_RANK": "0", "SLURM_PROCID": "0", "SLURM_NTASKS": "2"}, (2, 4, 0, "torchrun")),
    ({"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_LOCAL_RANK": "1"}, (1, 2, 1, "openmpi")),
    ({"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "3"}, (2, 3, 0, "slurm-array")),
    ({"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "5", "SLURM_ARRAY_TASK_MAX": "9", "SLURM_ARRAY_TASK_STEP": "2"},
     (1, 3, 0, "slurm-array")),
    # an array of 3 tasks, each running srun with 2 tasks: 6 shards
    ({"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "2"},
     (3, 6, 0, "slurm-array+slurm")),
    ({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "OMNIEVAL_SHARDING": "off"}, (0, 1, 1, None)),
])
def test_launcher_conventions(env, expected):
    p = launch.placement(env)
    assert (p.rank, p.world_size, p.local_rank) == expected[:3]
    if expected[3] is not None:
        assert p.launcher == expected[3]


@pytest.mark.parametrize("env, needle", [
    ({"RANK": "x"}, "RANK='x' is not an integer"),
    ({"RANK": "3", "WORLD_SIZE": "2"}, "need 0 <= RANK < WORLD_SIZE"),
    ({"SLURM_ARRAY_TASK_ID": "4"}, "cannot tell how many"),
    ({"SLURM_ARRAY_TASK_ID": "6", "SLURM_ARRAY_TASK_MIN": "5", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_STEP": "2"},
     "does not fit the array"),
])
def test_bad_launcher_environment_is_one_line(env, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        launch.placement(env)


def test_device_follows_local_rank_and_visible_devices(monkeypatch):
    import torch

    from omnieval.metrics import clip_backbones
    from omnieval.metrics.vbench import common

    assert launch.default_device({}) == ("cuda:0" if torch.cuda.is_available() else "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert launch.default_device({"LOCAL_RANK": "3"}) == "cuda:1"
    assert launch.default_device({"SLURM_PROCID": "0", "SLURM_NTASKS": "4", "SLURM_LOCALID": "2"}) == "cuda:0"
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)  # CUDA_VISIBLE_DEVICES gave this process one GPU
    assert launch.default_device({"LOCAL_RANK": "3"}) == "cuda:0"
    assert launch.default_device({"LOCAL_RANK": "3", "OMNIEVAL_DEVICE": "cpu"}) == "cpu"
    assert launch.resolve_device("cuda", {"LOCAL_RANK": "3"}) == "cuda:0"  # a bare `device=cuda` is this process's GPU
    assert launch.resolve_device("cuda:1", {"LOCAL_RANK": "3"}) == "cuda:1"  # an explicit index is kept
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert clip_backbones.default_device() == common.default_device() == "cuda:1"  # metrics use the same rule
    monkeypatch.setattr(launch, "GPU_DRIVER_FILES", (__file__,))  # as if the machine had a GPU driver
    assert launch.device_type(None) == "cuda" and launch.device_type("cpu") == "cpu"


def test_model_identity_device_type_needs_no_torch_without_a_gpu_driver(monkeypatch):
    monkeypatch.setattr(launch, "GPU_DRIVER_FILES", ())
    assert launch.device_type(None, {}) == "cpu" and launch.device_type("cuda:3", {}) == "cuda"
    assert launch.device_type(None, {"OMNIEVAL_DEVICE": "cuda:1"}) == "cuda"


def test_module_entry_point_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "omnieval", "ls", "groups"], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120, check=False)
    assert out.returncode == 0 and "smoke" in out.stdout


# ---------------------------------------------------------------------------------------------
# 1. identical results for any sharding: batch composition fixed by blocks
# ---------------------------------------------------------------------------------------------
def _sharded(out, tasks_dir, monkeypatch, envs: list[dict], tasks: str):
    for env in envs:
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        assert run(out, tasks_dir, tasks=tasks) == 0
        for k in env:
            monkeypatch.delenv(k)


@pytest.mark.parametrize("envs", [
    [{"WORLD_SIZE": "2", "RANK": "1"}, {"WORLD_SIZE": "2", "RANK": "0"}],
    [{"SLURM_PROCID": str(r), "SLURM_NTASKS": "3"} for r in (2, 0, 1)],
    [{"SLURM_ARRAY_TASK_ID": str(i), "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "2"} for i in (1, 2)],
], ids=["torchrun-env", "srun-env", "slurm-array-env"])
def test_sharded_runs_give_identical_values_and_contributions(tmp_path, tasks_dir, monkeypatch, envs):
    """Batched networks give per-item values that depend on what shares the batch (tiny CLIP: ~1e-5); blocks fix
    batch composition in global item order, so any sharding reproduces one process bit for bit."""
    run(tmp_path / "single", tasks_dir, tasks="c_t2i,h_t2v")
    _sharded(tmp_path / "sharded", tasks_dir, monkeypatch, envs, "c_t2i,h_t2v")
    assert contributions(tmp_path / "sharded") == contributions(tmp_path / "single")
    assert values(tmp_path / "sharded") == values(tmp_path / "single")
    assert not results(tmp_path / "sharded")["missing"]


def test_blocks_keep_groups_together_and_cut_batches_from_their_start(tmp_path, tasks_dir):
    """The unit of sharding: fixed blocks per think mode; a group that must stay in one process (``together``) is
    never split across blocks."""
    from omnieval import shards
    from omnieval.cli import _run_config, build_parser
    from omnieval.planning import plan_run
    from omnieval.registry import get_model

    args = build_parser().parse_args(["run", "--model", "fake-test", "--tasks", "h_t2i", "--think", "both",
                                      "--output_path", str(tmp_path / "o"), "--include_path", str(tasks_dir)])
    cfg = _run_config(args)
    cls = get_model("fake-test")
    (plan,) = plan_run(cfg, cls, cls.identity_from_args())
    plain = shards.blocks(plan, 3)
    assert [len(b) for b in plain] == [3, 3, 2, 3, 3, 2] and all(len({it.think for it in b}) == 1 for b in plain)
    assert [it for b in plain for it in b if it.think == "off"] == [it for it in plan.items if it.think == "off"]
    by_doc = shards.blocks(plan, 3, together=lambda it: it.doc.id)  # 2 samples per doc: whole docs per block
    assert [len(b) for b in by_doc] == [4, 4, 4, 4]
    for b in by_doc:
        assert all(sum(it.doc.id == d for it in b) in (0, 2) for d in {it.doc.id for it in b})
    assert shards.shard(by_doc, 1, 3) == [by_doc[1]] and shards.shard(plain, 0, 4) == [plain[0], plain[4]]
    assert shards.batches(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]


def test_resumed_scoring_gives_identical_contributions(tmp_path, tasks_dir):
    """A kill that lands inside a batch: the batch is run whole again, so the resumed values equal a clean run."""
    run(tmp_path / "clean", tasks_dir, tasks="c_t2i")
    out = tmp_path / "resumed"
    run(out, tasks_dir, tasks="c_t2i")
    path = out / "scores" / "c_t2i.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    kept = [ln for i, ln in enumerate(lines) if i % 3]  # drop every third record: most batches are now partial
    path.write_bytes(b"".join(kept))
    (out / "results.json").unlink()
    assert run(out, tasks_dir, tasks="c_t2i") == 0
    assert results(out)["counters"]["scored_items"] > len(lines) - len(kept)  # whole batches were recomputed ...
    assert contributions(out) == contributions(tmp_path / "clean")  # ... and only the missing records appended
    assert values(out) == values(tmp_path / "clean")


# ---------------------------------------------------------------------------------------------
# 1. what must stay in one process: multi-turn chains (fields.chain) and a doc's questions (fields.prompts)
# ---------------------------------------------------------------------------------------------
CHAINS = {"a": 3, "b": 1, "d": 2, "e": 1, "f": 4, "g": 1}  # chain -> turns


def _group_tasks(tasks_dir: Path) -> None:
    """``chain_edit``: multi-turn edits (turn k edits turn k-1's output) of 6 chains of 1-4 turns; ``two_q``: 5 docs
    asked two questions each.  Both scored by test_batch_siblings (batch 3) with generation batches of 2."""
    from omnieval.media import write_image

    rows = []
    for c, (name, turns) in enumerate(CHAINS.items()):
        write_image(np.full((8, 8, 3), 20 + 30 * c, np.uint8), tasks_dir / f"{name}.png")
        rows += [{"id": f"{name}{k}", "image": f"{name}.png", "instruction": f"turn {k}", "prev": f"{name}{k - 1}" if k > 1 else None}
                 for k in range(1, turns + 1)]
    (tasks_dir / "turns.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tasks_dir / "chain_edit.yaml").write_text(
        "task: chain_edit\ncapability: edit_image\ndataset: {path: turns.jsonl}\n"
        "fields: {id: id, prompt: instruction, media: image, chain: prev}\n"
        "generation: {seed: 3, batch_size: 2}\nthink: [off, on]\nmetrics: [test_batch_siblings]\n")
    docs = [{"id": f"d{i}", "q1": f"a cat number {i}", "q2": f"a dog number {i}"} for i in range(5)]
    (tasks_dir / "two_q.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (tasks_dir / "two_q.yaml").write_text(
        "task: two_q\ncapability: t2i\ndataset: {path: two_q.jsonl}\nfields: {prompts: [q1, q2]}\n"
        "generation: {height: 8, width: 8, batch_size: 2}\nmetrics: [test_batch_siblings]\n")


def test_chains_and_doc_questions_stay_in_one_block(tmp_path, tasks_dir):
    """Blocks take whole chains / whole docs (TaskPlan.together); inside a block, a chain is generated in waves."""
    from omnieval import shards
    from omnieval.cli import _run_config, build_parser
    from omnieval.planning import plan_run
    from omnieval.registry import get_model

    _group_tasks(tasks_dir)
    args = build_parser().parse_args(["run", "--model", "fake-test", "--tasks", "chain_edit,two_q", "--think", "both",
                                      "--output_path", str(tmp_path / "o"), "--include_path", str(tasks_dir)])
    cls = get_model("fake-test")
    chain, two_q = plan_run(_run_config(args), cls, cls.identity_from_args())
    blocks = shards.blocks(chain, 3, together=chain.together())
    assert [[it.doc.id for it in b] for b in blocks[:4]] == [["a1", "a2", "a3"], ["b1", "d1", "d2"],
                                                            ["e1", "f1", "f2", "f3", "f4"], ["g1"]]
    assert [[[it.doc.id for it in w] for w in shards.waves(b)] for b in blocks[:3]] == [
        [["a1"], ["a2"], ["a3"]], [["b1", "d1"], ["d2"]], [["e1", "f1"], ["f2"], ["f3"], ["f4"]]]
    assert [it.think for it in blocks[4]] == ["on"] * 3  # think modes never share a block
    by_doc = shards.blocks(two_q, 3, together=two_q.together())
    assert [[(it.doc.id, it.sample_index) for it in b] for b in by_doc] == [
        [("d0", 0), ("d0", 1), ("d1", 0), ("d1", 1)], [("d2", 0), ("d2", 1), ("d3", 0), ("d3", 1)], [("d4", 0), ("d4", 1)]]
    assert shards.blocks(chain, 3) != blocks  # without `together`, chains would be cut across blocks


@pytest.mark.parametrize("envs", [
    [{"WORLD_SIZE": "3", "RANK": str(r)} for r in (2, 1, 0)],
    [{"WORLD_SIZE": "2", "RANK": str(r)} for r in (1, 0)],
], ids=["3-shards", "2-shards"])
def test_chains_and_doc_questions_sharded_equal_one_process(tmp_path, tasks_dir, monkeypatch, envs):
    """Later shards first: a shard never waits for an output another one makes (no chain crosses shards), a metric
    comparing a doc's questions finds them all, and values and contributions equal one process bit for bit."""
    _group_tasks(tasks_dir)
    assert run(tmp_path / "single", tasks_dir, tasks="chain_edit,two_q") == 0
    _sharded(tmp_path / "sharded", tasks_dir, monkeypatch, envs, "chain_edit,two_q")
    assert not records(tmp_path / "sharded", "failures") and not results(tmp_path / "sharded")["missing"]
    assert contributions(tmp_path / "sharded") == contributions(tmp_path / "single")
    assert values(tmp_path / "sharded") == values(tmp_path / "single")
    arts = {(r["doc_id"], r["think"]): read_image(tmp_path / "single" / r["artifact"])
            for r in records(tmp_path / "single", "samples").values() if r["task"] == "chain_edit"}
    assert [int(arts[(f"f{k}", "off")][0, 0, 0]) for k in range(1, 5)] == [255 - 140, 140, 255 - 140, 140]  # inverted per turn


def test_failed_turn_fails_its_successors_and_retry_redoes_the_chain(tmp_path, tasks_dir, monkeypatch):
    _group_tasks(tasks_dir)
    monkeypatch.setenv(FAIL_ENV, "f2")
    out = tmp_path / "out"
    assert run(out, tasks_dir, "--max-failures", "10", tasks="chain_edit", model="test-flaky") == 0
    fails = {r["item"]: r for r in records(out, "failures").values()}
    assert sorted(fails) == [f"chain_edit/f{k}/0/off" for k in (2, 3, 4)]
    assert fails["chain_edit/f2/0/off"]["error"] == "RuntimeError: boom on f2"
    assert "edits the output of doc f2, which has none" in fails["chain_edit/f3/0/off"]["error"]
    assert results(out)["failures"]["chain_edit"]["generation"] == 3
    assert results(out)["results"]["chain_edit"]["value"]["n"] == 9
    monkeypatch.delenv(FAIL_ENV)
    assert run(out, tasks_dir, "--retry-failed", tasks="chain_edit", model="test-flaky") == 0
    assert run(tmp_path / "clean", tasks_dir, tasks="chain_edit", model="test-flaky") == 0
    assert values(out) == values(tmp_path / "clean") and results(out)["failures"]["chain_edit"]["count"] == 0


# ---------------------------------------------------------------------------------------------
# 3. a transient metric failure (RETRY, e.g. the judge is down) is not a failure record
# ---------------------------------------------------------------------------------------------
def test_judge_outage_is_retried_next_run_and_exits_3_when_it_hit_every_item(tmp_path, tasks_dir, monkeypatch, capsys):
    (tasks_dir / "j_t2i.yaml").write_text("task: j_t2i\ncapability: t2i\ndataset: {path: many.jsonl}\n"
                                          "generation: {height: 8, width: 8, batch_size: 3}\n"
                                          "metrics: [test_fake_judge, test_brightness]\n")
    out = tmp_path / "out"
    monkeypatch.setenv(JUDGE_DOWN_ENV, "all")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert run(out, tasks_dir, tasks="j_t2i") == 0  # an incomplete task: nothing to judge yet
    monkeypatch.setenv("RANK", "1")
    # the shard that completes the task: the default --max-failures (0 of 52 units) is not touched by RETRY
    assert run(out, tasks_dir, tasks="j_t2i") == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("omnieval: error: task j_t2i: metric test_fake_judge failed on all 13 items (first: judge "
                       "endpoint 127.0.0.1:9 refused the connection); they are scored again by the next run")
    data = results(out)
    assert data["failures"]["j_t2i"]["count"] == 0 and not records(out, "failures") and not data["missing"]
    assert data["results"]["j_t2i"]["test_brightness/brightness"]["n"] == 13  # the other metric is unaffected
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.delenv("RANK")
    monkeypatch.setenv(JUDGE_DOWN_ENV, "p3")  # back, except for one item: exit 0, that item still retried later
    assert main(["score", "--output_path", str(out)]) == 0
    assert results(out)["counters"]["generated_items"] == 0
    def latest():  # a re-scored RETRY item's record replaces the earlier one (what the store reads)
        from omnieval.store import Store

        store = Store(out)
        return [store.score("j_t2i", k)["contribution"] for k in hf.read_records(out, "scores", unique=False)]

    assert sum(RETRY in c for c in latest()) == 1
    monkeypatch.delenv(JUDGE_DOWN_ENV)
    assert run(out, tasks_dir, tasks="j_t2i") == 0  # no --retry-failed needed
    assert not [c for c in latest() if RETRY in c]
    assert run(tmp_path / "clean", tasks_dir, tasks="j_t2i") == 0
    assert values(out) == values(tmp_path / "clean")


# ---------------------------------------------------------------------------------------------
# 2. no waiting: the last shard to finish aggregates; incomplete results say what is missing
# ---------------------------------------------------------------------------------------------
def test_first_shard_does_not_wait_and_results_list_what_is_missing(tmp_path, tasks_dir, monkeypatch, capsys):
    run(tmp_path / "single", tasks_dir, tasks="c_t2i,h_t2i")
    out = tmp_path / "sharded"
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    t0 = time.monotonic()
    assert run(out, tasks_dir, tasks="c_t2i,h_t2i") == 0  # rank 1 never started: rank 0 returns at once
    assert time.monotonic() - t0 < 60
    err = capsys.readouterr().err
    assert "shard 0 of 2 done; task c_t2i: 5 of 13 items without output" in err
    assert "the last shard to finish writes the complete" in err
    data = results(out)
    assert "c_t2i" not in data["results"]  # no values for an incomplete task, never partial ones
    assert data["results"]["h_t2i"] == results(tmp_path / "single")["results"]["h_t2i"]  # one block: all on rank 0
    m = data["missing"]["c_t2i"]
    assert m == {"items": 5, "scores": 0, "total_items": 13,
                 "first": [f"c_t2i/p{i}/0/off" for i in range(8, 13)]}
    # a later `omnieval score` in one process cannot make outputs: it says so, and results keep the `missing` list
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.delenv("RANK")
    assert main(["score", "--output_path", str(out)]) == 2
    err = capsys.readouterr().err
    assert "c_t2i: 5 of 13 work items have no generated output" in err and "lists them under `missing`" in err
    assert results(out)["missing"]["c_t2i"]["items"] == 5
    # rank 1 finishes last: it writes the complete results, equal to one process
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert run(out, tasks_dir, tasks="c_t2i,h_t2i") == 0
    assert values(out) == values(tmp_path / "single") and results(out)["missing"] == {}


def test_score_completes_a_run_whose_shard_died_after_generating(tmp_path, tasks_dir, monkeypatch):
    """Outputs of a dead shard are on disk but unscored: `omnieval score` finishes the job."""
    run(tmp_path / "single", tasks_dir, tasks="c_t2i")
    out = tmp_path / "sharded"
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    run(out, tasks_dir, "--predict_only", tasks="c_t2i")  # generated, then died before scoring
    monkeypatch.setenv("RANK", "0")
    run(out, tasks_dir, tasks="c_t2i")
    assert results(out)["missing"]["c_t2i"] == {"items": 0, "scores": 10, "total_items": 13,
                                                "first": [f"c_t2i/p{i}/0/off" for i in range(8, 13)]}
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.delenv("RANK")
    assert main(["score", "--output_path", str(out)]) == 0
    assert values(out) == values(tmp_path / "single")


def test_reader_never_truncates_another_shards_file(tmp_path):
    from omnieval.store import Store

    other = tmp_path / "samples" / "t.rank1.jsonl"
    other.parent.mkdir(parents=True)
    other.write_bytes(b'{"key": "a"}\n{"key": "b", "half-writ')  # rank 1 is in the middle of an append
    store = Store(tmp_path, rank=0, world_size=2)
    assert store.find("samples", "t", "a") is not None and store.find("samples", "t", "b") is None
    assert other.read_bytes().endswith(b"half-writ")


# ---------------------------------------------------------------------------------------------
# 4. bounded memory (the peak RSS of 16 vs 256 videos is measured by bench/bench_memory.py)
# ---------------------------------------------------------------------------------------------
def test_decoded_outputs_do_not_accumulate(tmp_path, tasks_dir):
    prompts = [{"id": f"v{i}", "prompt": f"video {i}"} for i in range(40)]
    (tasks_dir / "forty.jsonl").write_text("".join(json.dumps(p) + "\n" for p in prompts))
    (tasks_dir / "m_t2v.yaml").write_text("task: m_t2v\ncapability: t2v\ndataset: {path: forty.jsonl}\n"
                                          "generation: {height: 8, width: 8, num_frames: 3}\n"
                                          "metrics: [test_alive_outputs, test_feature_spread]\n")
    out = tmp_path / "out"
    run(out, tasks_dir, "--predict_only", tasks="m_t2v")
    _MAX_ALIVE.clear()
    assert main(["score", "--output_path", str(out)]) == 0  # decodes every output from disk
    assert len(_MAX_ALIVE) == 10 and max(_MAX_ALIVE) <= 8  # batches of 4; at most one block (8 items) decoded at once
    assert results(out)["results"]["m_t2v"]["test_alive_outputs/brightness"]["n"] == 40


# ---------------------------------------------------------------------------------------------
# 3. per-item failures
# ---------------------------------------------------------------------------------------------
def test_model_failure_on_one_item_is_recorded_and_the_run_continues(tmp_path, tasks_dir, monkeypatch):
    calls = tmp_path / "calls.txt"
    monkeypatch.setenv(hf.CALLS_FILE_ENV, str(calls))
    monkeypatch.setenv(FAIL_ENV, "p4")
    out = tmp_path / "out"
    assert run(out, tasks_dir, "--max-failures", "3", tasks="f_t2i", model="test-flaky") == 0
    fails = records(out, "failures")
    assert len(fails) == 1
    (rec,) = fails.values()
    assert rec["stage"] == "generate" and rec["item"] == "f_t2i/p4/0/off" and rec["error"] == "RuntimeError: boom on p4"
    assert rec["digest"] and any("generate_image" in frame for frame in rec["traceback"])
    data = results(out)
    assert data["failures"]["f_t2i"]["count"] == 1 and data["failures"]["f_t2i"]["generation"] == 1
    r = data["results"]["f_t2i"]["test_brightness/brightness"]
    assert r["n"] == 12  # the failed item is left out, never scored as 0
    scores = [c["brightness"] for c in contributions(out).values() if "brightness" in c]
    assert r["value"] == pytest.approx(sum(scores) / len(scores) / 1)
    assert len(records(out, "samples")) == 12
    # a plain re-run skips the failed item (no model call) and reports the same
    calls.write_text("")
    assert run(out, tasks_dir, "--max-failures", "3", tasks="f_t2i", model="test-flaky") == 0
    assert calls.read_text() == "" and results(out)["failures"]["f_t2i"]["count"] == 1
    # the cause fixed, --retry-failed re-runs only that item; the results equal a run that never failed
    monkeypatch.delenv(FAIL_ENV)
    assert run(out, tasks_dir, "--retry-failed", tasks="f_t2i", model="test-flaky") == 0
    # only p4's batch ([p3, p4, p5]: batches are fixed, so p4 is made exactly as in a run that never failed)
    assert [ln for ln in calls.read_text().splitlines() if not ln.startswith("score")] == ["3"]
    assert len(records(out, "samples")) == 13
    run(tmp_path / "clean", tasks_dir, tasks="f_t2i", model="test-flaky")
    assert values(out) == values(tmp_path / "clean")
    assert results(out)["failures"]["f_t2i"]["count"] == 0


def test_metric_failure_fails_that_item_for_that_metric_only(tmp_path, tasks_dir, monkeypatch):
    monkeypatch.setenv(FAIL_ENV, "p1,p6")
    out = tmp_path / "out"
    assert run(out, tasks_dir, "--max-failures", "0.1", tasks="f_t2i") == 0
    data = results(out)
    f = data["failures"]["f_t2i"]
    assert f["count"] == 2 and f["scoring"] == {"test_flaky_brightness": 2} and f["generation"] == 0
    assert {x["item"] for x in f["first"]} == {"f_t2i/p1/0/off", "f_t2i/p6/0/off"}
    assert "cannot score f_t2i/p1/0/off" in f["first"][0]["error"] or "cannot score f_t2i/p6/0/off" in f["first"][0]["error"]
    res = data["results"]["f_t2i"]
    assert res["test_flaky_brightness/brightness"]["n"] == 11 and res["test_brightness/brightness"]["n"] == 13
    monkeypatch.delenv(FAIL_ENV)
    assert run(out, tasks_dir, "--retry-failed", tasks="f_t2i") == 0
    assert results(out)["counters"]["generated_items"] == 0
    assert results(out)["results"]["f_t2i"]["test_flaky_brightness/brightness"]["n"] == 13


def test_report_lists_recorded_failures_with_their_errors(tmp_path, tasks_dir, monkeypatch):
    """`omnieval report` shows an item whose generation or metric raised with the recorded error, not as unscored."""
    import re

    monkeypatch.setenv(FAIL_ENV, "p4")
    gen = tmp_path / "gen"
    assert run(gen, tasks_dir, "--max-failures", "3", tasks="f_t2i", model="test-flaky") == 0
    met = tmp_path / "met"
    assert run(met, tasks_dir, "--max-failures", "3", tasks="f_t2i") == 0
    for out, kinds, error in [(gen, [("f_t2i", "model error")], "RuntimeError: boom on p4"),
                              (met, [("f_t2i", "metric error")], "ValueError: cannot score f_t2i/p4/0/off")]:
        assert main(["report", "--output_path", str(out)]) == 0
        html = (out / "report.html").read_text(encoding="utf-8")
        assert re.findall(r'<tr data-task="([^"]+)" data-kind="([^"]+)"', html) == kinds and error in html


def test_max_failures_stops_the_run_with_one_line(tmp_path, tasks_dir, monkeypatch, capsys):
    monkeypatch.setenv(FAIL_ENV, "p1,p2")
    out = tmp_path / "out"
    assert run(out, tasks_dir, tasks="f_t2i", model="test-flaky") == 2  # default 1% of 39 units: none allowed
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("omnieval: error: task f_t2i: 1 failed of 39 work units")
    assert "--max-failures 0.01 allows (0)" in err[0] and "RuntimeError: boom on p1" in err[0] and "--retry-failed" in err[0]
    assert results(out)["failures"]["f_t2i"]["count"] == 1  # results.json says what failed
    assert run(out, tasks_dir, "--max-failures", "1", tasks="f_t2i", model="test-flaky") == 2  # p2 is the second
    assert "2 failed of 39" in capsys.readouterr().err
    assert run(out, tasks_dir, "--max-failures", "2", tasks="f_t2i", model="test-flaky") == 0


@pytest.mark.parametrize("text", ["abc", "-1", "1.5", "nan", "2.5"])
def test_bad_max_failures_value(tmp_path, tasks_dir, capsys, text):
    assert run(tmp_path / "o", tasks_dir, "--max-failures", text) == 2
    assert "--max-failures: expected a count (e.g. 10) or a fraction" in capsys.readouterr().err


def test_failure_limit_parsing():
    assert FailureLimit.parse("0.01").allowed(99) == 0 and FailureLimit.parse("0.01").allowed(100) == 1
    assert FailureLimit.parse("5").allowed(3) == 5 and FailureLimit.parse("1.0").allowed(7) == 7
    assert FailureLimit.parse("0").allowed(10 ** 6) == 0


def test_configuration_errors_still_fail_fast_and_are_not_recorded(tmp_path, tasks_dir, capsys):
    (tasks_dir / "w.yaml").write_text("task: w\ncapability: t2i\ndataset: {path: many.jsonl}\n"
                                      "generation: {height: 8, width: 8}\nmetrics: [test_needs_weights]\n")
    out = tmp_path / "o"
    assert run(out, tasks_dir, "--max-failures", "100", tasks="w") == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == "omnieval: error: metric test_needs_weights: put net.pt in /nowhere"
    assert "Traceback" not in err
    assert not (out / "failures").exists() or not records(out, "failures")


# ---------------------------------------------------------------------------------------------
# 7.1 the folder on the command line is the only folder a command writes; 7.2 no stale values
# ---------------------------------------------------------------------------------------------
def test_score_on_a_copy_writes_only_the_copy(tmp_path, tasks_dir):
    orig = tmp_path / "orig"
    run(orig, tasks_dir, tasks="h_t2i")
    copy = tmp_path / "copy"
    shutil.copytree(orig, copy)
    cfg = json.loads((copy / "run_config.json").read_text())
    cfg["output_path"] = str(tmp_path / "elsewhere")  # a hand-edited (or stale) path
    (copy / "run_config.json").write_text(json.dumps(cfg))
    before = {p: p.stat().st_mtime_ns for p in orig.rglob("*")}
    (copy / "results.json").unlink()
    assert main(["score", "--output_path", str(copy)]) == 0
    assert (copy / "results.json").is_file() and not (tmp_path / "elsewhere").exists()
    assert {p: p.stat().st_mtime_ns for p in orig.rglob("*")} == before
    assert values(copy) == values(orig)


@pytest.mark.parametrize("command", ["run", "score"])
def test_hand_edited_results_value_does_not_survive(tmp_path, tasks_dir, command):
    out = tmp_path / "out"
    run(out, tasks_dir, tasks="h_t2i")
    good = values(out)
    data = results(out)
    data["results"]["h_t2i"]["brightness"]["value"] = 0.999
    (out / "results.json").write_text(json.dumps(data))
    assert (run(out, tasks_dir, tasks="h_t2i") if command == "run" else main(["score", "--output_path", str(out)])) == 0
    assert values(out) == good


# ---------------------------------------------------------------------------------------------
# 7.9 one process per output folder (per shard under a launcher)
# ---------------------------------------------------------------------------------------------
def test_second_process_on_a_folder_is_refused_naming_the_holder(tmp_path, tasks_dir, capsys, monkeypatch):
    out = tmp_path / "out"
    with FolderLock(out, 0, 1, "run"):
        assert run(out, tasks_dir, tasks="h_t2i") == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "is in use" in err and f"pid {os.getpid()} on host" in err
        assert not (out / "samples").exists()  # refused before writing anything
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("RANK", "1")  # another shard of a differently split run overlaps it too
        assert run(out, tasks_dir, tasks="h_t2i") == 2
        assert "a run split into 1 shards; this process is shard 1 of 2" in capsys.readouterr().err
        monkeypatch.delenv("WORLD_SIZE")
        monkeypatch.delenv("RANK")
        assert main(["score", "--output_path", str(out)]) == 2
    with FolderLock(out, 0, 2, "run"):  # shard 0 of a 2-way run: shard 1 may work alongside it
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("RANK", "1")
        assert run(out, tasks_dir, tasks="h_t2i") == 0


def test_lock_of_a_killed_process_does_not_block(tmp_path, tasks_dir, capsys):
    """A real second process: refused while the first runs; after a SIGKILL the folder is free (no stale lock)."""
    out = tmp_path / "out"
    code = (f"import sys; sys.path[:0] = [{str(TESTS_DIR)!r}, {str(REPO)!r}]; import harness_fixtures; "
            "from omnieval.cli import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.Popen([sys.executable, "-c", code, "run", "--model", "fake-test", "--model_args", "delay=0.5",
                             "--tasks", "h_t2i", "--output_path", str(out), "--include_path", str(tasks_dir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        samples = out / "samples" / "h_t2i.jsonl"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not samples.exists():
            time.sleep(0.05)
        assert run(out, tasks_dir, tasks="h_t2i") == 2
        assert f"pid {proc.pid} on host" in capsys.readouterr().err
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert run(out, tasks_dir, tasks="h_t2i") == 0
    keys = records(out, "samples")
    assert len(keys) == 8
