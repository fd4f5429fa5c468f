"""Statistics over per-item metric contributions: clustered bootstrap intervals and paired sign-flip tests.

Conventions (also written into results by :func:`describe_methods`):

* **Cluster = doc.**  Several samples of one prompt (GenEval's 4 images, VBench's 5 or 25 videos) are not
  independent, so the unit of resampling is the doc: a resample draws docs with replacement and takes
  *all* contributions of a drawn doc, as many times as the doc was drawn.  Item-level resampling
  understates the stderr (about 2x for 4 identical samples per doc).
* **Any metric.**  A resample is evaluated by the metric itself (``fresh`` + ``fold`` / ``merge`` +
  ``compute``), so pooled and macro values (GenEval ``overall``, VBench pooled dimensions, FVD) are
  resampled exactly like plain means.  Four evaluation paths, all giving the metric's own value (the
  first that applies is used):

  - *sum state*: a :class:`~omnieval.metrics.base.MeanMetric` whose ``reset``/``fold``/``merge`` are the
    inherited ones (its state is ``sums``/``counts``; ``compute`` may be overridden, e.g. percent or a
    pooled ratio).  Per-doc sums and counts are folded once; a batch of resamples is one matrix product
    ``multiplicities @ per-doc sums``, then ``compute`` on each row's state.  At 946 docs x 5 items
    (``bench/bench_stats.py``): 1000 resamples ~0.05 s CPU, a paired comparison with 10,000 flips ~0.9 s.
  - *additive*: a metric declaring the vectorised fast path, two methods:
    ``additive_state() -> {key: float}`` (its state as numbers that add when the states of different docs
    merge, e.g. GenEval's per-tag image counts, correct counts, and prompt / correct-prompt counts) and
    ``compute_additive({key: array over resamples}) -> {name: array}`` (``compute`` for a batch, NaN where
    undefined).  Checked against ``compute`` on all the data (on a mismatch: a RuntimeWarning and the merge
    path); a batch is one matrix product.
  - *merge*: any other metric with ``bootstrap = True``: each doc is folded once into its own state, a
    resample is ``fresh()`` plus ``merge`` of the drawn docs' states (sign flips merge prepared blocks of
    :data:`FLIP_BLOCK` docs).  ``merge`` must not modify or alias the state it is given (the cross-process
    contract).  GenEval at 553 docs x 4: 1000 resamples ~0.6 s, paired with 10,000 flips ~7 s CPU.
  - *fold*: metrics with ``bootstrap = False`` (FID/KID/FVD: large array states, one matrix square root
    per ``compute``) fold the drawn docs' contributions into one fresh state per resample (memory of one
    state) and get at most :data:`SLOW_METRIC_ITERS` resamples / sign flips.

* **Doc keys inside a metric's state.**  A metric whose state is keyed by doc (GenEval's
  ``prompt_accuracy`` keeps one flag per ``prompt_id``) would count a doc drawn twice once.  Such a metric
  lists the contribution fields naming the doc in ``cluster_fields`` (e.g. ``("prompt_id",)``); the
  ``j``-th extra copy of a drawn doc is then folded with ``"#copy{j}"`` appended to those fields (merge and
  fold paths; the matrix paths count copies by multiplication).
* **Budget.**  ``metric.bootstrap_iters`` (proposed ClassVar, default None) caps the number of resamples
  and random sign flips for that metric (0 = no resampling); without it, ``bootstrap = False`` metrics
  are capped at :data:`SLOW_METRIC_ITERS`.  See :func:`resample_budget`.
* **Determinism.**  Docs are sorted by ``(type name, repr)`` of their key and the contributions of a doc by
  a hash of their content before anything is drawn, so results depend only on the multiset of
  (doc, contribution) pairs, not on their order; the random generator is ``numpy.random.default_rng(seed)``.

The resampling itself is :func:`scipy.stats.bootstrap` (cluster indices as the data, a vectorised
multi-output statistic) and :func:`scipy.stats.permutation_test` (``permutation_type="samples"``).
"""
from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np

from omnieval.errors import OmniEvalError


def _scipy_stats():
    """``scipy.stats``, imported on first use (0.6 s: a resumed run that reuses its aggregates never needs it)."""
    from scipy import stats

    return stats

DEFAULT_ITERS = 1000
DEFAULT_FLIPS = 10_000
EXACT_UP_TO = 16
SEED = 1234
CONFIDENCE = 0.95
CI_METHODS = ("percentile", "bca")
#: resample / sign-flip cap of ``bootstrap = False`` metrics without their own ``bootstrap_iters``
SLOW_METRIC_ITERS = 100
#: resamples (and jackknife samples, for BCa) per vectorised call of the statistic (bounds memory)
BOOT_BATCH = 1000
#: sign-flip assignments per vectorised call of the statistic (bounds memory; part of the random stream)
FLIP_BATCH = 1000
#: docs merged together per prepared state in the sign-flip test of merge-path metrics (2^FLIP_BLOCK states each)
FLIP_BLOCK = 6

#: errors a metric's ``compute`` may raise on a degenerate resample (e.g. FVD with < 2 videos); such a
#: resample's values are undefined (excluded from stderr/CI, counted as extreme in the sign-flip test)
_UNDEFINED_ERRORS = (ArithmeticError, ValueError, OmniEvalError)


@dataclass(frozen=True)
class Interval:
    """Uncertainty of one computed value.

    ``stderr``: sample standard deviation (ddof=1) of the cluster-bootstrap distribution.
    ``ci_low``/``ci_high``: the ``confidence`` interval (percentile or BCa) of that distribution.
    All three are None when nothing could be resampled (fewer than 2 docs, or the metric's budget is 0).
    ``n_items``: contributions; ``n_clusters``: docs.  ``method``: one line saying how it was computed.
    """

    stderr: float | None
    ci_low: float | None
    ci_high: float | None
    n_items: int
    n_clusters: int
    method: str


@dataclass(frozen=True)
class PairedTest:
    """Think on vs off (or any paired comparison) of one computed value.

    ``off``/``on``: the metric's value on each side; ``delta = on - off``.  ``stderr``/``ci_*``: paired
    cluster bootstrap of ``delta`` (the same docs drawn for both sides).  ``p_value``: two-sided sign-flip
    permutation test over docs.  ``n_pairs``: (doc, sample) pairs; ``n_clusters``: docs.
    """

    off: float
    on: float
    delta: float
    stderr: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    n_pairs: int
    n_clusters: int
    method: str


def compute(metric, contributions: list[dict[str, Any]]) -> dict[str, float]:
    """The metric's values over ``contributions`` (``fresh`` + ``fold`` each + ``compute``)."""
    m = metric.fresh()
    for c in contributions:
        m.fold(c)
    return m.compute()


def resample_budget(metric, requested: int) -> int:
    """How many resamples (or random sign flips) ``metric`` gets when ``requested`` are asked for.

    ``metric.bootstrap_iters`` (int) caps it, 0 meaning no resampling; otherwise ``bootstrap = False``
    metrics are capped at :data:`SLOW_METRIC_ITERS`; others get ``requested``.
    """
    cap = _cap(metric)
    return int(requested) if cap is None else min(int(requested), cap)


def describe_methods() -> dict[str, str]:
    """How stderr, CI and p-values are computed (recorded in results.json)."""
    return {
        "clusters": "docs (prompts): all samples of a doc are resampled or flipped together; docs sorted by key, "
                    "a doc's contributions by content hash, so results do not depend on input order",
        "stderr": "sample standard deviation (ddof=1) of the cluster-bootstrap distribution of the metric value: "
                  "docs drawn with replacement (numpy default_rng(seed), via scipy.stats.bootstrap), the metric "
                  "recomputed from all contributions of the drawn docs (pooled and macro metrics included)",
        "ci": "two-sided interval of the same bootstrap distribution: 'percentile' = its (1-c)/2 and (1+c)/2 "
              "quantiles (linear interpolation), 'bca' = bias-corrected and accelerated (jackknife over docs); "
              "a degenerate distribution falls back to percentile",
        "paired": "think on vs off: delta = on - off; its stderr/CI come from a paired cluster bootstrap (the same "
                  "docs drawn for both sides)",
        "p_value": f"two-sided sign-flip permutation test over docs (scipy.stats.permutation_test, "
                   f"permutation_type='samples'): the off/on labels of all items of a doc are swapped together, "
                   f"statistic = |metric(on') - metric(off')|, p = share of assignments with a statistic >= the "
                   f"observed one (relative tolerance 100 eps); exact over all 2^k assignments when k <= "
                   f"{EXACT_UP_TO} docs (so p >= 2/2^k), else {DEFAULT_FLIPS} random assignments with "
                   f"p = (1 + count) / (1 + flips)",
        "budget": f"metrics with bootstrap = False (FID/KID/FVD) get at most {SLOW_METRIC_ITERS} resamples and "
                  f"random sign flips unless they set bootstrap_iters; bootstrap_iters = 0 disables resampling",
        "undefined": "a resample whose value is undefined (name missing from compute, or compute failing on it) is "
                     "left out of stderr/CI (the count is in the method line) and counts as extreme in the test",
    }


# ---------------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------------
def cluster_bootstrap(metric, contributions: list[dict], clusters: list[Hashable], *, iters: int = DEFAULT_ITERS,
                      confidence: float = CONFIDENCE, ci_method: str = "percentile",
                      seed: int = SEED) -> dict[str, Interval]:
    """Cluster-bootstrap :class:`Interval` of every value ``metric`` computes from ``contributions``.

    ``clusters[i]`` is the doc of ``contributions[i]``.  ``k`` docs (sorted, see the module docstring) are
    resampled with replacement ``resample_budget(metric, iters)`` times by :func:`scipy.stats.bootstrap`
    on the doc indices ``0..k-1`` (the draws are ``default_rng(seed).integers(0, k, (n, k))`` in batches of
    :data:`BOOT_BATCH` resamples); each resample is the metric computed from all contributions of the drawn
    docs, with multiplicity.

    * ``stderr`` = ``np.std(distribution, ddof=1)`` (scipy's ``standard_error``);
    * ``ci_method="percentile"``: ``ci`` = ``np.quantile(distribution, [(1-confidence)/2, (1+confidence)/2])``
      (linear interpolation; the same as scipy's percentile interval);
    * ``ci_method="bca"``: scipy's bias-corrected and accelerated interval (acceleration from the
      leave-one-doc-out jackknife); when it is undefined (degenerate distribution) the percentile interval
      is given and the method line says so.

    Resamples where a value is undefined are left out of that value's stderr and CI (counted in
    ``method``).  Fewer than 2 docs, or a budget of 0: stderr and CI are None.
    """
    _check_args(ci_method, confidence)
    if len(contributions) != len(clusters):
        raise ValueError(f"cluster_bootstrap: {len(contributions)} contributions but {len(clusters)} cluster keys")
    groups = _grouped(list(zip(clusters, contributions)), key=lambda c: _content_key(c))
    names = list(compute(metric, [c for g in groups for c in g]))
    n_items, k = len(contributions), len(groups)
    budget = resample_budget(metric, iters)
    if not names:
        return {}
    if k < 2 or budget < 1:
        why = _no_resampling(k, budget)
        return {name: Interval(None, None, None, n_items, k, why) for name in names}
    sampler = _resampler(metric, [groups], names)

    def statistic(idx: np.ndarray, axis: int = -1) -> np.ndarray:
        flat = idx.reshape(-1, idx.shape[-1])
        return sampler.values(_multiplicities(flat, k), 0).reshape(len(names), *idx.shape[:-1])

    out = _bootstrap_intervals(statistic, k, names, budget, confidence, ci_method, seed)
    what = f"cluster bootstrap over docs, {budget} resamples"
    return {name: Interval(se, lo, hi, n_items, k, f"{what}, {how}") for name, (se, lo, hi, how) in out.items()}


def paired_comparison(metric, off: list[dict], on: list[dict], clusters: list[Hashable], *, iters: int = DEFAULT_ITERS,
                      flips: int = DEFAULT_FLIPS, exact_up_to: int = EXACT_UP_TO, confidence: float = CONFIDENCE,
                      ci_method: str = "percentile", seed: int = SEED) -> dict[str, PairedTest]:
    """``on - off`` of every value both sides compute, with a paired cluster bootstrap and a sign-flip test.

    ``off[i]`` and ``on[i]`` are the same doc and sample index (same seed); ``clusters[i]`` is their doc.

    * ``stderr``/``ci``: as :func:`cluster_bootstrap`, resampling docs once per resample for both sides
      (statistic = ``metric(on resample) - metric(off resample)``).
    * ``p_value``: :func:`scipy.stats.permutation_test` with ``permutation_type="samples"``: an assignment
      swaps the off/on labels of all items of a subset of docs; statistic ``|metric(on') - metric(off')|``;
      ``alternative="greater"``, i.e. ``p`` = share of assignments whose statistic is ``>=`` the observed one
      minus ``100 eps`` relative.  With ``k <= exact_up_to`` docs all ``2^k`` assignments are enumerated
      (``p = count / 2^k``, at least ``2 / 2^k`` since the identity and the full swap both count), else
      ``resample_budget(metric, flips)`` random assignments drawn from ``default_rng(seed)`` in batches of
      :data:`FLIP_BATCH`, ``p = (1 + count) / (1 + flips)``.  A metric with a budget below ``2^k``
      (``bootstrap = False``) gets random flips even for few docs.

    The values ``off``/``on`` are the metric's own (``compute``).  Fewer than 2 docs: stderr, CI and p are None.
    """
    _check_args(ci_method, confidence)
    if not len(off) == len(on) == len(clusters):
        raise ValueError(f"paired_comparison: {len(off)} off, {len(on)} on and {len(clusters)} cluster keys differ")
    groups = _grouped(list(zip(clusters, zip(off, on))), key=lambda p: _content_key(p[0]) + _content_key(p[1]))
    off_units = [[p[0] for p in g] for g in groups]
    on_units = [[p[1] for p in g] for g in groups]
    base = compute(metric, [c for u in off_units for c in u])
    treat = compute(metric, [c for u in on_units for c in u])
    names = [name for name in base if name in treat]
    n_pairs, k = len(off), len(groups)
    iters, cap = resample_budget(metric, iters), _cap(metric)

    if not names:
        return {}

    def result(name: str, se=None, lo=None, hi=None, p=None, method: str = "") -> PairedTest:
        return PairedTest(base[name], treat[name], treat[name] - base[name], se, lo, hi, p, n_pairs, k, method)

    if k < 2 or iters < 1:
        return {name: result(name, method=_no_resampling(k, iters)) for name in names}
    sampler = _resampler(metric, [off_units, on_units], names)

    def delta(idx: np.ndarray, axis: int = -1) -> np.ndarray:
        m = _multiplicities(idx.reshape(-1, idx.shape[-1]), k)
        return (sampler.values(m, 1) - sampler.values(m, 0)).reshape(len(names), *idx.shape[:-1])

    def flipped(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        # x holds, per doc i, the label of the unit now on the "off" side: i (off_i) or k + i (on_i, swapped)
        lead = np.shape(x)[:-1]
        swapped_x, swapped_y = (np.asarray(v).reshape(-1, k) >= k for v in (x, y))
        ones = np.ones(swapped_x.shape, dtype=np.int64)
        d = np.abs(sampler.values(ones, swapped_y) - sampler.values(ones, swapped_x))
        d[np.isnan(d)] = np.inf  # undefined counts as extreme (conservative)
        return d.T.reshape(*lead, len(names))

    intervals = _bootstrap_intervals(delta, k, names, iters, confidence, ci_method, seed)
    n_flips = resample_budget(metric, flips)
    exact = (k <= exact_up_to and (cap is None or 2**k <= cap)) or 2**k <= n_flips  # scipy enumerates then too
    n_flips = 2**k if exact else n_flips
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        test = _scipy_stats().permutation_test((np.arange(k), np.arange(k, 2 * k)), flipped, permutation_type="samples",
                                    vectorized=True, n_resamples=n_flips, batch=FLIP_BATCH, alternative="greater",
                                    rng=np.random.default_rng(seed))
    p_values = np.atleast_1d(test.pvalue)
    if exact:
        how_p = f"p: exact two-sided sign-flip test over {k} docs (all {2**k} assignments)"
    else:
        how_p = (f"p: two-sided sign-flip test over {k} docs, {n_flips} random assignments (seed {seed}), "
                 f"p = (1 + count) / (1 + {n_flips})")
    out = {}
    for i, name in enumerate(names):
        se, lo, hi, how = intervals[name]
        method = f"paired cluster bootstrap over docs of on - off, {iters} resamples, {how}; {how_p}"
        out[name] = result(name, se, lo, hi, float(p_values[i]), method)
    return out


# ---------------------------------------------------------------------------------------------
# Bootstrap intervals from a vectorised statistic over cluster indices
# ---------------------------------------------------------------------------------------------
def _bootstrap_intervals(statistic: Callable, k: int, names: list[str], iters: int, confidence: float,
                         ci_method: str, seed: int) -> dict[str, tuple[float | None, float | None, float | None, str]]:
    """``{name: (stderr, ci_low, ci_high, how)}`` from :func:`scipy.stats.bootstrap` over indices ``0..k-1``."""
    data = (np.arange(k),)
    kw = {"vectorized": True, "confidence_level": confidence, "batch": BOOT_BATCH}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", _scipy_stats().DegenerateDataWarning)
        res = _scipy_stats().bootstrap(data, statistic, n_resamples=iters, method="percentile", rng=np.random.default_rng(seed), **kw)
        bca = None
        if ci_method == "bca":  # same distribution, BCa interval (scipy adds the jackknife)
            bca = _scipy_stats().bootstrap(data, statistic, n_resamples=0, method="BCa", bootstrap_result=res, **kw)
    dist = np.asarray(res.bootstrap_distribution, dtype=np.float64).reshape(len(names), -1)
    label = f"{_pct(confidence)} CI, seed {seed}"
    out = {}
    for i, name in enumerate(names):
        row = dist[i]
        finite = row[np.isfinite(row)]
        dropped = row.size - finite.size
        note = f"; {dropped} of {row.size} resamples undefined, excluded" if dropped else ""
        if finite.size < 2:
            out[name] = (None, None, None, f"no interval: the value is undefined in {dropped} of {row.size} resamples")
            continue
        se = float(np.std(finite, ddof=1))
        lo, hi = (float(q) for q in np.quantile(finite, [(1 - confidence) / 2, (1 + confidence) / 2]))
        how = f"percentile {label}{note}"
        if bca is not None:
            b_lo, b_hi = float(np.atleast_1d(bca.confidence_interval.low)[i]), float(np.atleast_1d(bca.confidence_interval.high)[i])
            if dropped:
                how = f"percentile {label} (BCa needs every resample defined){note}"
            elif math.isfinite(b_lo) and math.isfinite(b_hi):
                lo, hi, how = b_lo, b_hi, f"BCa {label}"
            else:
                how = f"percentile {label} (BCa undefined: degenerate bootstrap distribution)"
        out[name] = (se, lo, hi, how)
    return out


def _multiplicities(idx: np.ndarray, n_units: int) -> np.ndarray:
    """``(B, L)`` unit indices -> ``(B, n_units)`` counts (how often each unit was drawn in each row)."""
    idx = np.asarray(idx, dtype=np.int64)
    rows = idx.shape[0]
    flat = (idx + (np.arange(rows, dtype=np.int64) * n_units)[:, None]).ravel()
    return np.bincount(flat, minlength=rows * n_units).reshape(rows, n_units)


# ---------------------------------------------------------------------------------------------
# Evaluating a metric on resampled docs
# ---------------------------------------------------------------------------------------------
Side = Any  #: an int (every doc on that side) or a B x k bool array (True = side 1)


class _Resampler:
    """The metric's ``names`` on batches of resampled docs.

    ``sides[s][i]``: the contributions of doc ``i`` on side ``s`` (one side for :func:`cluster_bootstrap`;
    off = 0 and on = 1 for :func:`paired_comparison`).  ``values(weights, side)``: ``weights`` is ``B x k``
    (how often each doc is drawn in each of ``B`` resamples), ``side`` an int (every doc on that side) or a
    ``B x k`` bool array (doc ``i`` of resample ``b`` taken from side 1 where True).  Returns a
    ``len(names) x B`` array, NaN where a value is undefined.  Identical sides must give bit-identical
    values (so that ``on == off`` gives ``delta = 0`` and ``p = 1`` exactly): the merge and fold paths
    accumulate docs in doc order whatever their side, the matrix paths see :meth:`_MatrixResampler.totals`.
    """

    def __init__(self, metric, sides: list[list[list[dict]]], names: list[str]):
        self.metric, self.sides, self.names = metric, sides, names

    def values(self, weights: np.ndarray, side: Side) -> np.ndarray:
        out = np.full((len(self.names), weights.shape[0]), np.nan)
        for r in range(weights.shape[0]):
            self._fill(out, r, self._row(weights, side, r))
        return out

    def _row(self, weights: np.ndarray, side: Side, r: int):  # pragma: no cover - abstract
        raise NotImplementedError

    def _fill(self, out: np.ndarray, r: int, state) -> None:
        try:
            values = state.compute()
        except _UNDEFINED_ERRORS:
            return
        for i, name in enumerate(self.names):
            value = values.get(name)
            if value is not None:
                out[i, r] = value

    def _drawn(self, weights: np.ndarray, side: Side, r: int):
        """``(side, doc, copy)`` of every unit drawn in resample ``r``, in doc order."""
        row = weights[r]
        for doc in np.flatnonzero(row):
            s = side if isinstance(side, int) else int(side[r, doc])
            for copy in range(int(row[doc])):
                yield s, int(doc), copy


class _MatrixResampler(_Resampler):
    """Per-doc vectors of additive state, one matrix per side; a batch is a weighted sum over docs."""

    def __init__(self, metric, sides, names, per_doc: Callable[[Any], dict[str, float]]):
        super().__init__(metric, sides, names)
        states = [[per_doc(_folded(metric, unit)) for unit in units] for units in sides]
        self.keys = list(dict.fromkeys(key for units in states for st in units for key in st))
        self.matrices = [np.array([[st.get(key, 0.0) for key in self.keys] for st in units], dtype=np.float64).reshape(
            len(units), len(self.keys)) for units in states]

    def totals(self, weights: np.ndarray, side: Side) -> np.ndarray:
        """``B x len(keys)``: sum over docs of weight x the chosen side's vector.

        With a per-doc side, ``(w * ~side) @ off + (w * side) @ on``: swapping every label swaps the two
        (exactly computed) terms, so identical sides and complementary assignments give bit-equal totals."""
        w = np.asarray(weights, dtype=np.float64)
        if isinstance(side, int):
            return w @ self.matrices[side]
        on = np.asarray(side, dtype=bool)
        return (w * ~on) @ self.matrices[0] + (w * on) @ self.matrices[-1]


class _SumResampler(_MatrixResampler):
    """MeanMetric state: per-doc ``sums`` and ``counts``; ``compute`` runs on each resample's totals."""

    def __init__(self, metric, sides, names):
        super().__init__(metric, sides, names,
                         lambda m: {**{("s", k): v for k, v in m.sums.items()}, **{("n", k): v for k, v in m.counts.items()}})
        self.probe = metric.fresh()

    def values(self, weights, side):
        self._batch = self.totals(weights, side)
        return super().values(weights, side)

    def _row(self, weights, side, r):
        totals = self._batch[r]
        sums, counts = {}, {}
        for j, (kind, key) in enumerate(self.keys):
            (sums if kind == "s" else counts)[key] = totals[j]
        present = [key for key in sums if counts[key] > 0]
        self.probe.sums = {key: float(sums[key]) for key in present}
        self.probe.counts = {key: int(np.rint(counts[key])) for key in present}
        return self.probe


class _FastPathMismatch(Exception):
    pass


class _AdditiveResampler(_MatrixResampler):
    """Metrics declaring the vectorised fast path (``additive_state`` / ``compute_additive``)."""

    def __init__(self, metric, sides, names):
        super().__init__(metric, sides, names, lambda m: m.additive_state())
        full = self.values(np.ones((1, len(sides[0])), dtype=np.int64), 0)[:, 0]
        expected = _folded(metric, [c for unit in sides[0] for c in unit]).compute()
        for name, value in zip(names, full):
            if not np.isclose(value, expected[name], rtol=1e-9, atol=1e-12):
                raise _FastPathMismatch(f"{type(metric).__name__}.compute_additive gives {name} = {value!r} on all the "
                                        f"data, compute() gives {expected[name]!r}; resampling with merge instead")

    def values(self, weights, side):
        totals = self.totals(weights, side)
        with np.errstate(divide="ignore", invalid="ignore"):
            values = self.metric.compute_additive({key: totals[:, j] for j, key in enumerate(self.keys)})
        out = np.full((len(self.names), totals.shape[0]), np.nan)
        for i, name in enumerate(self.names):
            if name in values:
                out[i] = np.asarray(values[name], dtype=np.float64)
        return out


class _MergeResampler(_Resampler):
    """Any metric: each doc (side, copy) folded once into its own state; a resample merges the drawn states.

    Sign flips (every doc once, per-doc sides) merge :data:`FLIP_BLOCK` docs at a time: for each block of
    consecutive docs the ``2^FLIP_BLOCK`` side choices are merged once, in doc order, and an assignment
    merges one prepared state per block (about ``FLIP_BLOCK`` times fewer ``merge`` calls)."""

    def __init__(self, metric, sides, names):
        super().__init__(metric, sides, names)
        self.states: dict[tuple[int, int, int], Any] = {}
        self.blocks: list[list[Any]] | None = None

    def _state(self, side: int, doc: int, copy: int):
        key = (side, doc, copy)
        if key not in self.states:
            self.states[key] = _folded(self.metric, _copy(self.metric, self.sides[side][doc], copy))
        return self.states[key]

    def values(self, weights, side):
        if isinstance(side, int) or len(self.sides) < 2 or np.any(weights != 1):
            return super().values(weights, side)
        k = weights.shape[1]
        if self.blocks is None:
            self.blocks = [self._block(start, min(start + FLIP_BLOCK, k)) for start in range(0, k, FLIP_BLOCK)]
        codes = [np.asarray(side[:, start:start + FLIP_BLOCK], dtype=np.int64) @ (1 << np.arange(min(FLIP_BLOCK, k - start)))
                 for start in range(0, k, FLIP_BLOCK)]
        out = np.full((len(self.names), weights.shape[0]), np.nan)
        for r in range(weights.shape[0]):
            acc = self.metric.fresh()
            for block, code in zip(self.blocks, codes):
                acc.merge(block[code[r]])
            self._fill(out, r, acc)
        return out

    def _block(self, start: int, stop: int) -> list[Any]:
        """State of docs ``start..stop-1`` for each side choice (bit ``j`` of the index: doc ``start+j`` on side 1)."""
        combos = []
        for code in range(1 << (stop - start)):
            acc = self.metric.fresh()
            for j, doc in enumerate(range(start, stop)):
                acc.merge(self._state((code >> j) & 1, doc, 0))
            combos.append(acc)
        return combos

    def _row(self, weights, side, r):
        acc = self.metric.fresh()
        for unit in self._drawn(weights, side, r):
            acc.merge(self._state(*unit))
        return acc


class _FoldResampler(_Resampler):
    """Large-state metrics (``bootstrap = False``): fold the drawn contributions into one state per resample."""

    def _row(self, weights, side, r):
        acc = self.metric.fresh()
        for s, doc, copy in self._drawn(weights, side, r):
            for c in _copy(self.metric, self.sides[s][doc], copy):
                acc.fold(c)
        return acc


def _resampler(metric, sides: list[list[list[dict]]], names: list[str]) -> _Resampler:
    """The evaluation path for ``metric`` (see the module docstring)."""
    if callable(getattr(metric, "additive_state", None)) and callable(getattr(metric, "compute_additive", None)):
        try:
            return _AdditiveResampler(metric, sides, names)
        except _FastPathMismatch as e:  # a wrong fast path, or data it does not cover (a prompt_id in two docs)
            warnings.warn(str(e), RuntimeWarning, stacklevel=3)
    if _is_sum_state(metric):
        return _SumResampler(metric, sides, names)
    if getattr(metric, "bootstrap", True):
        return _MergeResampler(metric, sides, names)
    return _FoldResampler(metric, sides, names)


def _is_sum_state(metric) -> bool:
    """A MeanMetric whose state is exactly its ``sums``/``counts`` (inherited reset/fold/merge)."""
    from omnieval.metrics.base import MeanMetric

    cls = type(metric)
    return isinstance(metric, MeanMetric) and all(
        getattr(cls, name) is getattr(MeanMetric, name) for name in ("reset", "fold", "merge"))


def _folded(metric, contributions: list[dict]):
    m = metric.fresh()
    for c in contributions:
        m.fold(c)
    return m


def _copy(metric, contributions: list[dict], copy: int) -> list[dict]:
    """The ``copy``-th draw of a doc: ``cluster_fields`` renamed so the metric counts it as another doc."""
    fields = getattr(metric, "cluster_fields", ())
    if copy == 0 or not fields:
        return contributions
    return [{**c, **{f: f"{c[f]}#copy{copy}" for f in fields if f in c}} for c in contributions]


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
def _grouped(pairs: list[tuple[Hashable, Any]], key: Callable[[Any], bytes]) -> list[list[Any]]:
    """Values grouped by cluster; clusters sorted by ``(type name, repr)``, values in a cluster by ``key``."""
    groups: dict[Hashable, list] = {}
    for cluster, value in pairs:
        groups.setdefault(cluster, []).append(value)
    order = sorted(groups, key=lambda c: (type(c).__name__, repr(c)))
    return [[v for _, v in sorted(((key(v), v) for v in groups[c]), key=lambda kv: kv[0])] for c in order]


def _content_key(contribution: dict) -> bytes:
    """A hash of a contribution's content (arrays by dtype, shape and bytes, other values by repr)."""
    h = hashlib.blake2b(digest_size=16)
    for name in sorted(contribution, key=str):
        value = contribution[name]
        h.update(repr(name).encode() + b"\0")
        if isinstance(value, np.ndarray):
            h.update(f"{value.dtype.str}{value.shape}".encode())
            h.update(np.ascontiguousarray(value).tobytes())
        else:
            h.update(repr(value).encode())
        h.update(b"\1")
    return h.digest()


def _cap(metric) -> int | None:
    explicit = getattr(metric, "bootstrap_iters", None)
    if explicit is not None:
        return max(int(explicit), 0)
    return None if getattr(metric, "bootstrap", True) else SLOW_METRIC_ITERS


def _no_resampling(k: int, budget: int) -> str:
    if k < 2:
        return f"no resampling: {k} doc{'s' if k != 1 else ''} (needs at least 2)"
    return "no resampling: the metric's bootstrap budget is 0"


def _check_args(ci_method: str, confidence: float) -> None:
    if ci_method not in CI_METHODS:
        raise ValueError(f"ci_method must be one of {', '.join(CI_METHODS)}, got {ci_method!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def _pct(confidence: float) -> str:
    return f"{confidence * 100:g}%"
