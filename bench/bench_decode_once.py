"""Scoring pass over N videos with K metrics: artifact opens and wall time, decode-once vs one decode per metric.

The runner builds each item's metric input once per scoring pass and hands the same decoded video to every
metric of the item (``omnieval/scoring.py``).  The comparison ("per metric") scores the same videos with the same
K metrics as K one-metric tasks, which decodes every video K times -- what the runner did before.  Opens are
counted with ``strace -f -e trace=openat`` when strace is installed (else from a counting wrapper around
``omnieval.store.read_media``).

    python bench/bench_decode_once.py [--videos 24] [--frames 48] [--size 128]
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

METRICS = [
    "{name: vbench_temporal_flickering, options: {static_filter: false}}",
    "{name: clip_t, options: {backbone: clip-tiny-random}}",
    "{name: clip_frame_consistency, options: {backbone: clip-tiny-random}}",
    "{name: clip_score, options: {backbone: clip-tiny-random}}",
]


def write_inputs(root: Path, n: int, frames: int, size: int) -> tuple[Path, Path]:
    from omnieval.media import Video, write_video

    videos, tasks = root / "videos", root / "tasks"
    videos.mkdir(parents=True)
    tasks.mkdir()
    rng = np.random.default_rng(0)
    manifest, docs = [], []
    for i in range(n):
        write_video(Video(rng.integers(0, 256, (frames, size, size, 3), dtype=np.uint8), fps=8), videos / f"v{i}.mp4")
        manifest.append({"doc_id": str(i), "file": f"v{i}.mp4"})
        docs.append({"id": str(i), "prompt": f"video number {i}"})
    (videos / "manifest.jsonl").write_text("".join(json.dumps(m) + "\n" for m in manifest))
    (tasks / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    head = "capability: t2v\ndataset: {path: docs.jsonl}\ngroup: [%s]\n"
    (tasks / "all.yaml").write_text("task: dec_all\n" + head % "dec_once" + "metrics:\n" + "".join(f"  - {m}\n" for m in METRICS))
    for k, m in enumerate(METRICS):
        (tasks / f"one{k}.yaml").write_text(f"task: dec_one{k}\n" + head % "dec_each" + f"metrics:\n  - {m}\n")
    return videos, tasks


def run(videos: Path, tasks: Path, group: str, out: Path) -> tuple[float, int | None]:
    cmd = [sys.executable, "-m", "omnieval.cli", "run", "--model", "predictions", "--model_args", f"path={videos}",
           "--tasks", group, "--include_path", str(tasks), "--output_path", str(out)]
    # generation (copying the files into the store) first, so only the scoring pass is timed and traced
    subprocess.run(cmd + ["--predict_only"], check=True, capture_output=True)
    strace = shutil.which("strace")
    trace = out.parent / f"{out.name}.strace"
    full = ([strace, "-f", "-e", "trace=openat", "-o", str(trace)] if strace else []) + cmd
    t0 = time.perf_counter()
    subprocess.run(full, check=True, capture_output=True)
    wall = time.perf_counter() - t0
    if not strace:
        return wall, None
    artifacts = re.compile(r'openat\(.*"[^"]*/artifacts/[^"]+\.mp4"')
    return wall, sum(1 for line in trace.read_text().splitlines() if artifacts.search(line) and "= -1" not in line)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--videos", type=int, default=24)
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--size", type=int, default=128)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        videos, tasks = write_inputs(Path(tmp), a.videos, a.frames, a.size)
        once, opens_once = run(videos, tasks, "dec_once", Path(tmp) / "once")
        each, opens_each = run(videos, tasks, "dec_each", Path(tmp) / "each")
    k = len(METRICS)
    print(f"{a.videos} videos x {a.frames} frames at {a.size} px, {k} metrics (scoring pass only, process start included)")
    if opens_once is not None:
        print(f"  artifact opens per video: decode once {opens_once / a.videos:.2f}, one decode per metric {opens_each / a.videos:.2f}")
    print(f"  wall: decode once {once:.2f} s, one decode per metric {each:.2f} s  (ratio {each / once:.2f}x)")


if __name__ == "__main__":
    main()
