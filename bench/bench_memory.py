"""Peak resident memory of a scoring pass over 16 vs 256 small videos: it must not grow with the run.

    PYTHONPATH=. python bench/bench_memory.py [--counts 16,256] [--frames 16] [--size 128]

Metrics (one task, every metric on every video): FVD (``i3d_torchscript`` detector: the tests' TorchScript stand-in
network, reference = 8 real videos), CLIPScore (built-in tiny CLIP), and three VBench dimensions: temporal
flickering (no network), motion smoothness (random AMT-S at its real size) and subject consistency (random DINO
ViT-B/16 at its real size, frames resized to 64 px to keep the run short).  Weights are random, values meaningless.

For each count, a first process makes the store (``--model predictions --predict_only``: the videos are copied in),
then ``omnieval score`` runs in a fresh process whose peak RSS (``ru_maxrss``) is reported, next to the RSS after
its imports (``baseline``) and what the decoded videos would take if all were held at once.  Memory is bounded by
the block size (the task's largest batch size): decoded media are dropped block by block, contributions (FVD
features included) go to disk as they are made.  Target: the 256-video peak within 20% of the 16-video peak.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

#: run in the scoring process: imports first (baseline), then the CLI, then the peak
SCORE = """
import json, resource, sys
import torch, omnieval.metrics.fvd, omnieval.metrics.clip, omnieval.metrics.vbench.motion, omnieval.metrics.vbench.consistency  # noqa
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
from omnieval.cli import main
rc = main(["score", "--output_path", sys.argv[1]])
print(json.dumps({"rc": rc, "baseline_kb": base, "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def write_weights(folder: Path) -> dict[str, Path]:
    import torch
    from bench_vbench_dims import write_amt, write_dino

    sys.path.insert(0, str(REPO / "tests"))
    from test_fvd import _StandIn

    folder.mkdir(parents=True)
    ts = folder / "i3d_torchscript.pt"
    torch.jit.script(_StandIn()).save(str(ts))
    return {"i3d": ts, "amt": write_amt(folder), "dino": write_dino(folder)}


def write_videos(folder: Path, n: int, frames: int, size: int, seed: int) -> None:
    """``n`` videos of a translating texture plus noise (moving, so every dimension has work)."""
    from vbench_fixtures import moving_video

    from omnieval.media import write_video

    folder.mkdir(parents=True, exist_ok=True)
    manifest = []
    for i in range(n):
        write_video(moving_video(seed + i, frames=frames, size=size), folder / f"v{i}.mp4")
        manifest.append({"doc_id": f"d{i}", "file": f"v{i}.mp4"})
    (folder / "manifest.jsonl").write_text("".join(json.dumps(m) + "\n" for m in manifest))


def write_task(folder: Path, n: int, weights: dict[str, Path], reference: Path) -> None:
    folder.mkdir(parents=True)
    docs = [{"id": f"d{i}", "prompt": f"a moving texture number {i}"} for i in range(n)]
    (folder / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    metrics = [
        (f"{{name: fvd, options: {{preset: styleganv_16f, ckpt_path: {weights['i3d']}, reference_dir: {reference}, "
         f"cache_dir: {folder / 'fvd_cache'}}}}}"),
        "{name: clip_score, options: {backbone: clip-tiny-random}}",
        "{name: vbench_temporal_flickering, options: {static_filter: false}}",
        f"{{name: vbench_motion_smoothness, options: {{amt_path: {weights['amt']}}}}}",
        f"{{name: vbench_subject_consistency, options: {{ckpt_path: {weights['dino']}, size: 64}}}}",
    ]
    (folder / "mem.yaml").write_text("task: mem\ncapability: t2v\ndataset: {path: docs.jsonl}\nmetrics:\n"
                                     + "".join(f"  - {m}\n" for m in metrics))


def measure(root: Path, n: int, args, weights, reference: Path) -> dict:
    videos, tasks, out = root / f"videos{n}", root / f"tasks{n}", root / f"out{n}"
    write_videos(videos, n, args.frames, args.size, seed=1000)
    write_task(tasks, n, weights, reference)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]), OMNIEVAL_PROGRESS_INTERVAL="600")
    subprocess.run([sys.executable, "-m", "omnieval", "run", "--model", "predictions", "--model_args", f"path={videos}",
                    "--tasks", "mem", "--include_path", str(tasks), "--output_path", str(out), "--predict_only"],
                   check=True, env=env, capture_output=True)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", SCORE, str(out)], env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(proc.stdout + proc.stderr)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["seconds"] = time.perf_counter() - t0
    values = json.loads((out / "results.json").read_text())["results"]["mem"]
    result["values"] = {k: round(v["value"], 4) for k, v in values.items() if v["value"] is not None}
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--counts", default="16,256")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=128)
    args = p.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        weights = write_weights(root / "weights")
        reference = root / "reference"
        write_videos(reference, 8, args.frames, args.size, seed=0)
        (reference / "manifest.jsonl").unlink()
        rows = {n: measure(root, n, args, weights, reference) for n in counts}
    per_video_mb = args.frames * args.size * args.size * 3 / 1e6
    print(f"{args.frames} frames of {args.size}x{args.size} per video ({per_video_mb:.1f} MB decoded); metrics: fvd, "
          f"clip_score, vbench temporal_flickering, motion_smoothness, subject_consistency")
    print(f"{'videos':>7} {'peak RSS MB':>12} {'baseline MB':>12} {'above base MB':>14} {'all decoded MB':>15} {'seconds':>8}")
    for n, r in rows.items():
        print(f"{n:>7} {r['peak_kb'] / 1024:>12.0f} {r['baseline_kb'] / 1024:>12.0f} "
              f"{(r['peak_kb'] - r['baseline_kb']) / 1024:>14.0f} {n * per_video_mb:>15.0f} {r['seconds']:>8.1f}")
    small, large = rows[counts[0]]["peak_kb"], rows[counts[-1]]["peak_kb"]
    ratio = large / small
    print(f"peak RSS {counts[-1]} / {counts[0]} videos: {ratio:.3f} (target < 1.20): {'OK' if ratio < 1.2 else 'FAIL'}")
    for n, r in rows.items():
        print(f"values ({n} videos): {r['values']}")
    if np.isnan(ratio) or ratio >= 1.2:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
