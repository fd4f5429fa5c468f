"""Real launchers on CPU (gloo): ``torchrun -m omnieval run`` with 2 processes, with 2 nodes, with a worker killed and
restarted, and ``accelerate launch -m omnieval run``, all equal to one process bit for bit (issue 14).

The reference is ``torchrun --nproc_per_node 1``, so it runs with the thread count torchrun gives every worker
(``OMP_NUM_THREADS=1``): float reductions differ with the number of threads, which is not what is tested here.
The fake model and test metrics come in through ``$OMNIEVAL_PLUGINS``; the batch-sensitive metric is CLIPScore on
the built-in tiny CLIP (batched, its per-item values move by ~1e-5 with the batch's other items).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import harness_fixtures as hf
import pytest

pytestmark = pytest.mark.slow

TESTS_DIR = Path(__file__).resolve().parent
REPO = TESTS_DIR.parent
TASKS = "c_t2i,h_t2v"


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "OMP_NUM_THREADS")}
    env.update(PYTHONPATH=os.pathsep.join([str(TESTS_DIR), str(REPO)]), OMNIEVAL_PLUGINS="harness_fixtures",
               HF_HUB_OFFLINE="1", HF_HOME=str(tmp / "hf_home"), OMNIEVAL_PROGRESS_INTERVAL="600")
    return env


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Tasks, and the reference: the same run by one torchrun worker."""
    tmp = tmp_path_factory.mktemp("launchers")
    tasks = hf.write_batch_task(hf.write_tasks(tmp / "tasks"))
    ref = tmp / "reference"
    _torchrun(tmp, tasks, ref, "--nproc_per_node", "1")
    return tmp, tasks, ref


def _omnieval_args(tasks: Path, out: Path, *extra: str) -> list[str]:
    return ["-m", "omnieval", "run", "--model", "fake-test", "--tasks", TASKS, "--include_path", str(tasks),
            "--output_path", str(out), *extra]


def _torchrun(tmp, tasks, out, *launcher_args, extra=(), wait=True):
    cmd = [sys.executable, "-m", "torch.distributed.run", *launcher_args, *(
        ["--standalone"] if "--nnodes" not in launcher_args else []), *_omnieval_args(tasks, out, *extra)]
    proc = subprocess.Popen(cmd, env=_env(tmp), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if not wait:
        return proc
    log, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, log
    return log


def same_as_reference(out: Path, ref: Path) -> None:
    contributions = {k: r["contribution"] for k, r in hf.read_records(out, "scores").items()}
    assert contributions == {k: r["contribution"] for k, r in hf.read_records(ref, "scores").items()}
    assert hf.read_records(out, "samples").keys() == hf.read_records(ref, "samples").keys()
    got, want = json.loads((out / "results.json").read_text()), json.loads((ref / "results.json").read_text())
    assert got["results"] == want["results"] and got["ablations"] == want["ablations"] and got["missing"] == {}


def test_torchrun_two_processes_equal_one(setup):
    tmp, tasks, ref = setup
    out = tmp / "two"
    _torchrun(tmp, tasks, out, "--nproc_per_node", "2")
    same_as_reference(out, ref)
    assert {p.name for p in (out / "samples").iterdir()} >= {"c_t2i.rank0.jsonl", "c_t2i.rank1.jsonl"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_nodes_on_a_shared_folder(setup):
    tmp, tasks, ref = setup
    out, port = tmp / "nodes", str(_free_port())
    nodes = [_torchrun(tmp, tasks, out, "--nnodes", "2", "--node_rank", str(n), "--nproc_per_node", "1",
                       "--master_addr", "127.0.0.1", "--master_port", port, wait=False) for n in (0, 1)]
    for proc in nodes:
        log, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, log
    same_as_reference(out, ref)


def test_killed_worker_is_restarted_by_torchrun_and_resumes(setup):
    """SIGKILL one of two workers mid-generation; ``--max-restarts 1`` restarts the group, which resumes from the
    store: results equal the uninterrupted run, with no duplicate or torn records."""
    tmp, tasks, ref = setup
    out = tmp / "killed"
    proc = _torchrun(tmp, tasks, out, "--nproc_per_node", "2", "--max-restarts", "1",
                     extra=("--model_args", "delay=0.4"), wait=False)
    samples, lock = out / "samples" / "c_t2i.rank1.jsonl", out / "locks" / "rank1.lock"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not samples.exists() or samples.read_bytes().count(b"\n") < 2):
        time.sleep(0.05)
    victim = json.loads(lock.read_text())["pid"]  # the lock file names its holder
    done = samples.read_bytes().count(b"\n")
    os.kill(victim, signal.SIGKILL)
    log, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, log
    assert 2 <= done < 5, "the kill must land mid-shard (rank 1 makes 5 items)"
    assert "failed (exitcode: -9)" in log and log.count("omnieval: rank 1 of 2 (torchrun)") == 2  # restarted once
    same_as_reference(out, ref)


def test_accelerate_launch_equals_one_process(setup):
    pytest.importorskip("accelerate")
    tmp, tasks, ref = setup
    out = tmp / "accelerate"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
           *_omnieval_args(tasks, out)]
    proc = subprocess.run(cmd, env=_env(tmp), capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "omnieval: rank 1 of 2 (torchrun)" in proc.stderr  # accelerate starts workers the torchrun way
    same_as_reference(out, ref)
