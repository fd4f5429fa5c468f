"""FVD speed vs the references, measured in the same run (random weights; values are meaningless).

1. I3D feature extraction: ``omnieval.metrics.fvd.extract_features`` (preset ``cdfvd_i3d``) vs cd-fvd's
   ``get_i3d_logits`` on the same uint8 videos and the same weights file.  Target: ratio >= 1.
2. Fréchet distance at 2048-d: ``frechet_distance`` (symmetric eigenvalue form) vs the references'
   ``scipy.linalg.sqrtm(sigma1 @ sigma2)`` formulation.  Target: >= 10x faster, same value to 1e-6.

Usage: ``python bench/bench_fvd.py [--videos 8] [--frames 16] [--size 64] [--repeats 2] [--dim 2048]``
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def _best(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def bench_features(args) -> None:
    import torch
    from cdfvd.fvd import get_i3d_logits
    from cdfvd.third_party.i3d.utils import load_i3d_model
    from cdfvd.utils.metric_utils import FeatureStats as RefStats

    from omnieval.metrics import fvd
    from omnieval.metrics.nets.i3d import InceptionI3d

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "i3d_pretrained_400.pt"
        torch.save(InceptionI3d().state_dict(), ckpt)
        videos = np.random.default_rng(0).integers(0, 256, (args.videos, args.frames, args.size, args.size, 3), dtype=np.uint8)
        ref_model = load_i3d_model(torch.device("cpu"), str(ckpt)).eval()
        ours_model = fvd.load_detector("i3d", ckpt)
        protocol = fvd.get_protocol("cdfvd_i3d", num_frames=args.frames)
        t_ref, ref_stats = _best(lambda: get_i3d_logits(RefStats(capture_all=True), ref_model, videos, device="cpu"), args.repeats)
        t_ours, feats = _best(lambda: fvd.extract_features(videos, ours_model, protocol, batch_size=args.batch_size), args.repeats)
    diff = np.abs(feats - ref_stats.get_all()).max()
    print(f"I3D features, {args.videos} videos x {args.frames} frames ({args.size}px -> 224): "
          f"cd-fvd {args.videos / t_ref:.2f} videos/s, omnieval {args.videos / t_ours:.2f} videos/s, "
          f"ratio {t_ref / t_ours:.2f}x (target >= 1); max |feature diff| {diff:.2e}")


def bench_frechet(args) -> None:
    import scipy.linalg

    from omnieval.metrics.frechet import frechet_distance

    rng = np.random.default_rng(0)
    d = args.dim
    stats = []
    for shift in (0.0, 0.1):
        x = rng.standard_normal((2 * d, d)) @ (rng.standard_normal((d, d)) / np.sqrt(d)) + shift
        stats += [x.mean(0), np.cov(x, rowvar=False)]
    mu1, s1, mu2, s2 = stats

    def reference() -> float:  # stylegan-v / cd-fvd formulation
        root = scipy.linalg.sqrtm(np.dot(s1, s2))
        return float(np.real(np.square(mu1 - mu2).sum() + np.trace(s1 + s2 - root * 2)))

    t_ref, ref = _best(reference, 1)
    t_ours, ours = _best(lambda: frechet_distance(mu1, s1, mu2, s2), args.repeats)
    print(f"Frechet distance at {d}-d: scipy sqrtm {t_ref:.2f} s, omnieval {t_ours:.3f} s, ratio {t_ref / t_ours:.1f}x "
          f"(target >= 10); values {ref:.10g} vs {ours:.10g}, relative difference {abs(ours - ref) / abs(ref):.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--skip-features", action="store_true")
    args = parser.parse_args()
    if not args.skip_features:
        bench_features(args)
    bench_frechet(args)


if __name__ == "__main__":
    main()
