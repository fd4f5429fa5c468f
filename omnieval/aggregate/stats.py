"""Statistics over per-item metric contributions: bootstrap standard errors and paired differences.

Resampling works for any :class:`~omnieval.metrics.base.Metric`: draw items with replacement, fold their
contributions into a fresh instance, compute.  So the stderr of GenEval's macro ``overall`` is estimated
the same way as that of a plain mean.  Seeds are fixed, so results are reproducible.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

DEFAULT_ITERS = 200


def compute(metric, contributions: list[dict[str, Any]]) -> dict[str, float]:
    m = metric.fresh()
    for c in contributions:
        m.fold(c)
    return m.compute()


def bootstrap_stderr(metric, contributions: list[dict[str, Any]], iters: int = DEFAULT_ITERS, seed: int = 1234) -> dict[str, float]:
    """Standard deviation of each computed value over ``iters`` resamples (empty when < 2 items)."""
    n = len(contributions)
    if n < 2 or not getattr(metric, "bootstrap", True):
        return {}
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    for _ in range(iters):
        idx = rng.integers(0, n, n)
        for name, value in compute(metric, [contributions[i] for i in idx]).items():
            draws.setdefault(name, []).append(value)
    return {k: float(np.std(v, ddof=1)) for k, v in draws.items() if len(v) == iters}


def paired_difference(metric, off: list[dict], on: list[dict], iters: int = DEFAULT_ITERS, seed: int = 1234) -> dict[str, dict[str, float]]:
    """``on - off`` per computed value, with a paired bootstrap stderr and a two-sided p-value.

    ``off[i]`` and ``on[i]`` must belong to the same doc and sample index (same seed), so the resampling
    keeps pairs together and removes between-item variance from the comparison.
    """
    assert len(off) == len(on)
    base, treat = compute(metric, off), compute(metric, on)
    out = {name: {"off": base[name], "on": treat[name], "delta": treat[name] - base[name]} for name in base if name in treat}
    n = len(off)
    if n < 2 or not getattr(metric, "bootstrap", True):
        return out
    rng = np.random.default_rng(seed)
    deltas: dict[str, list[float]] = {name: [] for name in out}
    for _ in range(iters):
        idx = rng.integers(0, n, n)
        b = compute(metric, [off[i] for i in idx])
        t = compute(metric, [on[i] for i in idx])
        for name in deltas:
            if name in b and name in t:
                deltas[name].append(t[name] - b[name])
    for name, ds in deltas.items():
        if len(ds) < 2:
            continue
        se = float(np.std(ds, ddof=1))
        out[name]["stderr"] = se
        delta = out[name]["delta"]
        out[name]["p_value"] = _two_sided_p(delta, se)
    return out


def _two_sided_p(delta: float, se: float) -> float:
    if se == 0:
        return 0.0 if delta != 0 else 1.0
    z = abs(delta) / se
    return float(math.erfc(z / math.sqrt(2)))
