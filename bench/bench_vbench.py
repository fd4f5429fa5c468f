"""Speed of the VBench part-A dimensions vs vbench 0.1.5, measured in the same run on the same video files.

    PYTHONPATH=. python bench/bench_vbench.py [--videos 8] [--frames 64] [--size 256] [--nets]

Prints, for temporal flickering, milliseconds per video for vbench and ours, the max difference of the per-video
values and the speed-up ratio (target >= 3x): once end to end from the files (both decode with cv2, which is
most of the time) and once on the same decoded frames.  Videos are H.264 crf 23 (lossy, like generated videos).  With
``--nets`` it also times dynamic degree (RAFT) and motion smoothness (AMT-S) with random-weight checkpoints,
ours vs vbench's own classes (seconds per video and ratio).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _best(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def bench_flicker(paths: list[Path], repeat: int) -> None:
    """Two comparisons: end to end from the files (both decode with cv2, which dominates), and the computation on
    the same decoded frames (what the metric does inside the runner, which hands it decoded videos)."""
    from vbench.temporal_flickering import get_frames, mae_seq
    from vbench.temporal_flickering import temporal_flickering as vb_flicker

    from omnieval.metrics.vbench.flicker import flickering_score, temporal_flickering_per_video

    files = [str(p) for p in paths]
    n = len(files)
    t_ref, (_, ref) = _best(lambda: vb_flicker(files), repeat)
    t_ours, ours = _best(lambda: temporal_flickering_per_video(files), repeat)
    diff = float(np.max(np.abs(np.array(ours) - [d["video_results"] for d in ref])))
    print(f"temporal_flickering, files   vbench {t_ref / n * 1e3:8.2f} ms/video   ours {t_ours / n * 1e3:8.2f} ms/video   "
          f"speed-up {t_ref / t_ours:5.2f}x   max |diff| {diff:.2e}")
    decoded = [get_frames(f) for f in files]
    arrays = [np.stack(frames) for frames in decoded]
    t_ref, ref = _best(lambda: [(255.0 - np.mean(mae_seq(frames)).item()) / 255.0 for frames in decoded], repeat)
    t_ours, ours = _best(lambda: [flickering_score(a) for a in arrays], repeat)
    diff = float(np.max(np.abs(np.array(ours) - ref)))
    print(f"temporal_flickering, frames  vbench {t_ref / n * 1e3:8.2f} ms/video   ours {t_ours / n * 1e3:8.2f} ms/video   "
          f"speed-up {t_ref / t_ours:5.2f}x   max |diff| {diff:.2e}")


def bench_nets(paths: list[Path], tmp: Path) -> None:
    import torch
    from easydict import EasyDict
    from vbench import dynamic_degree as vdd
    from vbench import motion_smoothness as vms
    from vbench_fixtures import random_amt_checkpoint, random_raft_checkpoint

    from omnieval.metrics.base import MetricInput
    from omnieval.metrics.vbench import motion
    from omnieval.registry import get_metric

    torch.set_num_threads(max(1, torch.get_num_threads()))
    files = [str(p) for p in paths]
    items = [MetricInput(item_id=p.name, output=str(p)) for p in paths]
    raft = random_raft_checkpoint(tmp / "raft-things.pth")
    amt = random_amt_checkpoint(tmp / "amt-s.pth")

    reference = vdd.DynamicDegree(EasyDict(model=str(raft), small=False, mixed_precision=False, alternate_corr=False), "cpu")
    t_ref, _ = _best(lambda: vdd.dynamic_degree(reference, files), 1)
    metric = get_metric("vbench_dynamic_degree")(raft_path=str(raft))
    metric.cached("raft", lambda: motion.load_raft(str(raft)))
    t_ours, _ = _best(lambda: metric.contributions(items), 1)
    n = len(files)
    print(f"dynamic_degree       vbench {t_ref / n:8.2f} s/video    ours {t_ours / n:8.2f} s/video    ratio {t_ref / t_ours:5.2f}x")

    reference = vms.MotionSmoothness(motion.amt_config_path(), str(amt), "cpu")
    t_ref, _ = _best(lambda: vms.motion_smoothness(reference, files), 1)
    metric = get_metric("vbench_motion_smoothness")(amt_path=str(amt))
    metric.cached("amt", lambda: motion.load_amt(str(amt)))
    t_ours, _ = _best(lambda: metric.contributions(items), 1)
    print(f"motion_smoothness    vbench {t_ref / n:8.2f} s/video    ours {t_ours / n:8.2f} s/video    ratio {t_ref / t_ours:5.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--nets", action="store_true", help="also time dynamic degree and motion smoothness")
    parser.add_argument("--net-frames", type=int, default=16)
    parser.add_argument("--net-size", type=int, default=128)
    args = parser.parse_args()

    from vbench_fixtures import write_videos

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        names = [f"prompt {i}-0.mp4" for i in range(args.videos)]
        paths = write_videos(tmp / "flicker", names, frames=args.frames, size=args.size, crf=23)
        print(f"{args.videos} videos, {args.frames} frames, {args.size} px (H.264 crf 23)")
        bench_flicker(paths, args.repeat)
        if args.nets:
            net_paths = write_videos(tmp / "nets", names[:2], frames=args.net_frames, size=args.net_size)
            print(f"networks: 2 videos, {args.net_frames} frames, {args.net_size} px, random weights, CPU")
            bench_nets(net_paths, tmp)


if __name__ == "__main__":
    main()
