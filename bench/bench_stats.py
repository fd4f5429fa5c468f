"""Time the clustered statistics at benchmark sizes (synthetic contributions; values are meaningless).

* VBench: 946 docs x 5 videos, a mean-type dimension (sum-state path): ``cluster_bootstrap`` (1000
  resamples, percentile and BCa) and ``paired_comparison`` (1000 resamples + 10,000 random sign flips);
  target: well under 2 s each per metric (VBench has ~16 dimensions).
* GenEval: 553 docs x 4 images, the real ``GenEval`` metric (merge path: per-doc states merged).
* Few docs: exact sign-flip enumeration over 16 docs (65,536 assignments), mean-type and GenEval.

Usage: ``python bench/bench_stats.py [--docs 946] [--samples 5] [--repeats 1]``
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from omnieval.aggregate import stats as S
from omnieval.aggregate.geneval import GENEVAL_TAGS
from omnieval.metrics.base import MeanMetric
from omnieval.metrics.geneval import GenEval


class Dimension(MeanMetric):
    """A VBench-like dimension: mean of ``score`` (compute filtered to one name, as VBenchDimensionMetric)."""

    def score(self, inputs):  # pragma: no cover - contributions are synthetic
        raise NotImplementedError

    def compute(self):
        return {k: v for k, v in super().compute().items() if k == "score"}


def _timed(label: str, fn, repeats: int) -> None:
    """Best of ``repeats``: wall and CPU seconds of this process (CPU is the fairer number on a shared machine)."""
    wall, cpu = float("inf"), float("inf")
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = min(wall, time.perf_counter() - w), min(cpu, time.process_time() - c)
    print(f"{label:<66s} wall {wall:7.3f} s   cpu {cpu:7.3f} s")


def mean_data(docs: int, samples: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    effect = rng.normal(size=docs)
    off = [{"score": float(effect[d] + rng.normal()), "note": "x"} for d in range(docs) for _ in range(samples)]
    on = [{"score": c["score"] + 0.05 + 0.3 * rng.normal()} for c in off]
    return off, on, [f"doc{d}" for d in range(docs) for _ in range(samples)]


def geneval_data(docs: int, samples: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    off, clusters = [], []
    for d in range(docs):
        p = rng.uniform(0.1, 0.9)
        for _ in range(samples):
            off.append({"tag": GENEVAL_TAGS[d % 6], "correct": bool(rng.random() < p), "prompt_id": f"p{d}",
                        "reason": "", "details": "{}"})
            clusters.append(f"p{d}")
    on = [dict(c, correct=bool(rng.random() < 0.6)) for c in off]
    return off, on, clusters


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=946)
    ap.add_argument("--samples", type=int, default=5)
    ap.add_argument("--geneval_docs", type=int, default=553)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    r = args.repeats

    off, on, clusters = mean_data(args.docs, args.samples)
    size = f"{args.docs} docs x {args.samples}"
    dim = Dimension()
    _timed(f"mean-type cluster_bootstrap, percentile, {size}", lambda: S.cluster_bootstrap(dim, off, clusters), r)
    _timed(f"mean-type cluster_bootstrap, BCa, {size}", lambda: S.cluster_bootstrap(dim, off, clusters, ci_method="bca"), r)
    _timed(f"mean-type paired_comparison, 10k flips, {size}", lambda: S.paired_comparison(dim, off, on, clusters), r)
    few = 16 * args.samples
    _timed(f"mean-type paired_comparison, exact, 16 docs x {args.samples}",
           lambda: S.paired_comparison(dim, off[:few], on[:few], clusters[:few]), r)

    g_off, g_on, g_clusters = geneval_data(args.geneval_docs, 4)
    geneval = GenEval()
    size = f"{args.geneval_docs} docs x 4"
    _timed(f"GenEval (merge path) cluster_bootstrap, {size}", lambda: S.cluster_bootstrap(geneval, g_off, g_clusters), r)
    _timed(f"GenEval (merge path) paired_comparison, 10k flips, {size}",
           lambda: S.paired_comparison(geneval, g_off, g_on, g_clusters), r)
    _timed("GenEval (merge path) paired_comparison, exact, 16 docs x 4",
           lambda: S.paired_comparison(geneval, g_off[:64], g_on[:64], g_clusters[:64]), r)


if __name__ == "__main__":
    main()
