"""Clustered statistics (:mod:`omnieval.aggregate.stats`).

References: ``scipy.stats.bootstrap`` on per-doc means (balanced mean metric: the mean over the items of the
drawn docs is the mean of their per-doc means) and ``scipy.stats.permutation_test`` on per-doc mean
differences; for macro metrics, ``scipy.stats.bootstrap`` with a naive, non-vectorised statistic that
concatenates the drawn docs' contributions and folds them (same random draws).  Tolerance 1e-9 relative.
"""
from __future__ import annotations

import random
import warnings

import numpy as np
import pytest
from scipy import stats as sps

from omnieval.aggregate import stats as S
from omnieval.aggregate.geneval import GENEVAL_TAGS
from omnieval.metrics.base import MeanMetric, Metric, MetricInput
from omnieval.metrics.geneval import GenEval
from omnieval.metrics.qa import MCQAccuracy

TOL = {"rel": 1e-9, "abs": 1e-12}


# ---------------------------------------------------------------------------------------------
# Tiny metrics
# ---------------------------------------------------------------------------------------------
class Mean(MeanMetric):
    """Plain mean of ``x`` (sum-state path)."""

    def score(self, inputs):
        return [{"x": float(i.output)} for i in inputs]


class HandMean(Metric):
    """The same mean with hand-written state (merge path)."""

    def contributions(self, inputs):
        return [{"x": float(i.output)} for i in inputs]

    def reset(self):
        self.total, self.n = 0.0, 0

    def fold(self, c):
        self.total += c["x"]
        self.n += 1

    def merge(self, other):
        self.total += other.total
        self.n += other.n

    def compute(self):
        return {"x": self.total / self.n} if self.n else {}


class SlowMean(HandMean):
    """The same mean declared expensive (fold path, capped budget)."""

    bootstrap = False


class TagMacro(Metric):
    """GenEval-like macro: accuracy per tag, ``overall`` = unweighted mean of the tags present."""

    def contributions(self, inputs):  # pragma: no cover - tests fold contributions directly
        raise NotImplementedError

    def reset(self):
        self.counts: dict[str, list[int]] = {}

    def fold(self, c):
        n_k = self.counts.setdefault(c["tag"], [0, 0])
        n_k[0] += 1
        n_k[1] += int(c["correct"])

    def merge(self, other):
        for tag, (n, k) in other.counts.items():
            n_k = self.counts.setdefault(tag, [0, 0])
            n_k[0] += n
            n_k[1] += k

    def compute(self):
        acc = {tag: k / n for tag, (n, k) in sorted(self.counts.items())}
        return {**acc, "overall": sum(acc.values()) / len(acc)} if acc else {}


class MergeGenEval(GenEval):
    """GenEval without its vectorised fast path: resampled by merging per-doc states."""

    additive_state = compute_additive = None


def balanced(k=30, r=4, seed=0, noise=0.5):
    """``k`` docs x ``r`` samples: doc effect + item noise; clusters named ``d000..`` (sorted = doc order)."""
    rng = np.random.default_rng(seed)
    effect = rng.normal(size=k)
    x = effect[:, None] + noise * rng.normal(size=(k, r))
    contribs = [{"x": float(x[d, j])} for d in range(k) for j in range(r)]
    clusters = [f"d{d:03d}" for d in range(k) for _ in range(r)]
    return x, contribs, clusters


def geneval_records(k=24, r=4, seed=0, tags=GENEVAL_TAGS):
    rng = np.random.default_rng(seed)
    contribs, clusters = [], []
    for d in range(k):
        p = rng.uniform(0.1, 0.9)
        for _ in range(r):
            contribs.append({"tag": tags[d % len(tags)], "correct": bool(rng.random() < p), "prompt_id": f"p{d:03d}",
                             "reason": "", "details": "{}"})
            clusters.append(f"p{d:03d}")
    return contribs, clusters


def shuffled(*lists, seed=7):
    order = list(range(len(lists[0])))
    random.Random(seed).shuffle(order)
    return [[lst[i] for i in order] for lst in lists]


# ---------------------------------------------------------------------------------------------
# cluster_bootstrap
# ---------------------------------------------------------------------------------------------
def test_identical_samples_double_the_stderr_of_item_resampling():
    """4 identical samples per doc: resampling docs gives ~2x (sqrt 4) the item-level stderr."""
    rng = np.random.default_rng(1)
    values = rng.normal(size=200)
    contribs = [{"x": float(v)} for v in values for _ in range(4)]
    clusters = [d for d in range(200) for _ in range(4)]
    clustered = S.cluster_bootstrap(Mean(), contribs, clusters, iters=2000)["x"]
    naive = S.cluster_bootstrap(Mean(), contribs, list(range(len(contribs))), iters=2000)["x"]
    assert (clustered.n_items, clustered.n_clusters, naive.n_clusters) == (800, 200, 800)
    assert 1.8 < clustered.stderr / naive.stderr < 2.2  # Monte-Carlo error of each stderr ~1.6%
    assert clustered.stderr == pytest.approx(values.std() / np.sqrt(200), rel=0.08)
    assert naive.stderr == pytest.approx(values.std() / np.sqrt(800), rel=0.08)


@pytest.mark.parametrize("ci_method", ["percentile", "bca"])
def test_mean_metric_equals_scipy_bootstrap_of_doc_means(ci_method):
    x, contribs, clusters = balanced()
    contribs, clusters = shuffled(contribs, clusters)  # order of the input must not matter
    got = S.cluster_bootstrap(Mean(), contribs, clusters, iters=500, ci_method=ci_method, seed=99)["x"]
    ref = sps.bootstrap((x.mean(1),), np.mean, n_resamples=500, method="BCa" if ci_method == "bca" else "percentile",
                        rng=np.random.default_rng(99))
    assert got.stderr == pytest.approx(ref.standard_error, **TOL)
    assert (got.ci_low, got.ci_high) == (pytest.approx(ref.confidence_interval.low, **TOL),
                                         pytest.approx(ref.confidence_interval.high, **TOL))
    assert got.method == f"cluster bootstrap over docs, 500 resamples, {'BCa' if ci_method == 'bca' else 'percentile'} 95% CI, seed 99"


def test_real_mcq_accuracy_in_percent():
    """MCQAccuracy (a MeanMetric with a percent ``compute``) is 100 x the bootstrap of per-doc accuracies."""
    rng = np.random.default_rng(3)
    metric = MCQAccuracy()
    correct = rng.random((20, 3)) < rng.uniform(0.2, 0.9, size=(20, 1))
    inputs = [MetricInput(item_id=f"q{d}/{j}", output="A" if correct[d, j] else "B", reference="A",
                          doc={"choices": ["yes", "no"]}) for d in range(20) for j in range(3)]
    contribs = metric.contributions(inputs)
    got = S.cluster_bootstrap(metric, contribs, [f"q{d:02d}" for d in range(20) for _ in range(3)], iters=400)
    ref = sps.bootstrap((100 * correct.mean(1),), np.mean, n_resamples=400, method="percentile", rng=np.random.default_rng(S.SEED))
    assert got["mcq_accuracy"].stderr == pytest.approx(ref.standard_error, **TOL)
    assert got["mcq_accuracy"].ci_high == pytest.approx(ref.confidence_interval.high, **TOL)
    assert got["unparsed_rate"].stderr == 0 and got["unparsed_rate"].ci_low == got["unparsed_rate"].ci_high == 0


def test_merge_and_fold_paths_equal_the_sum_path():
    _, contribs, clusters = balanced(k=15, r=3)
    fast = S.cluster_bootstrap(Mean(), contribs, clusters, iters=S.SLOW_METRIC_ITERS)
    assert S.cluster_bootstrap(HandMean(), contribs, clusters, iters=S.SLOW_METRIC_ITERS)["x"].stderr == pytest.approx(fast["x"].stderr, **TOL)
    slow = S.cluster_bootstrap(SlowMean(), contribs, clusters)  # capped at SLOW_METRIC_ITERS
    assert slow["x"].stderr == pytest.approx(fast["x"].stderr, **TOL)
    assert f"{S.SLOW_METRIC_ITERS} resamples" in slow["x"].method
    _, _, off, on, clusters = paired_data(k=13)  # merge path: sign flips merged in blocks of 6, 6 and 1 docs
    for exact_up_to in (16, 4):
        a = S.paired_comparison(Mean(), off, on, clusters, iters=50, flips=400, exact_up_to=exact_up_to)["x"]
        b = S.paired_comparison(HandMean(), off, on, clusters, iters=50, flips=400, exact_up_to=exact_up_to)["x"]
        assert b.p_value == pytest.approx(a.p_value, **TOL) and b.stderr == pytest.approx(a.stderr, **TOL)


def test_budget_zero_and_single_doc():
    _, contribs, clusters = balanced(k=5, r=2)
    metric = HandMean()
    metric.bootstrap_iters = 0
    off = S.cluster_bootstrap(metric, contribs, clusters)["x"]
    assert (off.stderr, off.ci_low, off.ci_high) == (None, None, None) and "budget is 0" in off.method
    one = S.cluster_bootstrap(Mean(), contribs[:2], ["d"] * 2)["x"]
    assert (one.stderr, one.ci_low, one.n_items, one.n_clusters) == (None, None, 2, 1) and "1 doc" in one.method
    pair = S.paired_comparison(Mean(), contribs[:2], contribs[:2], ["d"] * 2)["x"]
    assert (pair.delta, pair.p_value, pair.stderr, pair.n_clusters) == (0.0, None, None, 1)
    assert S.resample_budget(SlowMean(), 1000) == S.SLOW_METRIC_ITERS and S.resample_budget(Mean(), 1000) == 1000
    nothing = [{"x_skipped": "static"}] * 4  # no value at all: nothing to report
    assert S.cluster_bootstrap(Mean(), nothing, list("aabb")) == {} == S.paired_comparison(Mean(), nothing, nothing, list("aabb"))


def test_macro_metric_equals_naive_reference():
    """A tag macro (merge path) and real GenEval equal a naive fold of the drawn docs' contributions."""
    contribs, clusters = geneval_records(k=18, r=4, tags=GENEVAL_TAGS[:3])
    keys = sorted(set(clusters))
    by_doc = {key: [c for c, k in zip(contribs, clusters) if k == key] for key in keys}

    def naive(metric, names, relabel):
        def statistic(idx):
            drawn, seen = [], {}
            for i in idx:
                copy = seen[i] = seen.get(i, -1) + 1
                drawn += [dict(c, prompt_id=f"{c['prompt_id']}#copy{copy}") if relabel and copy else c for c in by_doc[keys[i]]]
            values = S.compute(metric, drawn)
            return np.array([values.get(n, np.nan) for n in names])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dist = sps.bootstrap((np.arange(len(keys)),), statistic, n_resamples=200, vectorized=False,
                                 method="percentile", rng=np.random.default_rng(5)).bootstrap_distribution
        finite = [row[np.isfinite(row)] for row in dist]  # resamples missing a tag are left out
        return [(np.std(f, ddof=1), *np.quantile(f, [0.025, 0.975])) for f in finite]

    macro = TagMacro()
    got = S.cluster_bootstrap(macro, *shuffled(contribs, clusters), iters=200, seed=5)
    names = list(got)
    assert names == sorted(GENEVAL_TAGS[:3]) + ["overall"]
    ref = naive(macro, names, relabel=False)
    assert any("undefined" in got[name].method for name in names)  # a tag missing from some resamples
    for i, name in enumerate(names):
        assert (got[name].stderr, got[name].ci_low, got[name].ci_high) == pytest.approx(ref[i], **TOL)
    geneval = GenEval()  # cluster_fields = ("prompt_id",): a doc drawn twice counts as two prompts
    got = S.cluster_bootstrap(geneval, contribs, clusters, iters=200, seed=5)
    names = list(got)
    assert names[-3:] == ["overall", "prompt_accuracy", "image_accuracy"]
    ref = naive(geneval, names, relabel=True)
    for i, name in enumerate(names):
        assert (got[name].stderr, got[name].ci_low, got[name].ci_high) == pytest.approx(ref[i], **TOL)


def test_geneval_prompt_accuracy_needs_cluster_fields():
    """Without relabelling, a doc drawn twice is one prompt: prompt_accuracy's stderr shrinks (~0.76x)."""
    contribs, clusters = geneval_records(k=300, r=4)
    unlabelled = MergeGenEval()
    unlabelled.cluster_fields = ()
    plain = S.cluster_bootstrap(unlabelled, contribs, clusters, iters=300)["prompt_accuracy"].stderr
    geneval = GenEval()
    relabelled = S.cluster_bootstrap(geneval, contribs, clusters, iters=300)["prompt_accuracy"].stderr
    doc_any = np.array([any(c["correct"] for c, k in zip(contribs, clusters) if k == key) for key in sorted(set(clusters))])
    ref = sps.bootstrap((doc_any.astype(float),), np.mean, n_resamples=300, method="percentile", rng=np.random.default_rng(S.SEED))
    assert relabelled == pytest.approx(ref.standard_error, **TOL)
    assert plain < 0.9 * relabelled


def test_vectorised_fast_path_equals_merge_path():
    contribs, clusters = geneval_records(k=20, r=4)
    on = [dict(c, correct=not c["correct"] if i % 3 == 0 else c["correct"]) for i, c in enumerate(contribs)]
    merge = MergeGenEval()
    a = S.cluster_bootstrap(merge, contribs, clusters, iters=300, ci_method="bca")
    b = S.cluster_bootstrap(GenEval(), contribs, clusters, iters=300, ci_method="bca")
    assert list(a) == list(b)
    for name in a:
        assert (b[name].stderr, b[name].ci_low, b[name].ci_high) == (
            pytest.approx(a[name].stderr, **TOL), pytest.approx(a[name].ci_low, **TOL), pytest.approx(a[name].ci_high, **TOL))
    pa = S.paired_comparison(merge, contribs, on, clusters, iters=200, flips=300, exact_up_to=4)
    pb = S.paired_comparison(GenEval(), contribs, on, clusters, iters=200, flips=300, exact_up_to=4)
    for name in pa:
        assert pb[name].p_value == pa[name].p_value and pb[name].stderr == pytest.approx(pa[name].stderr, **TOL)


def test_wrong_vectorised_fast_path_falls_back_to_merge():
    class Wrong(GenEval):
        cluster_fields = ("prompt_id",)

        def compute_additive(self, s):
            return {k: v + 1 for k, v in super().compute_additive(s).items()}

    contribs, clusters = geneval_records(k=6)
    with pytest.warns(RuntimeWarning, match="compute_additive gives .* resampling with merge instead"):
        got = S.cluster_bootstrap(Wrong(), contribs, clusters, iters=50)
    merge = MergeGenEval()
    assert got == S.cluster_bootstrap(merge, contribs, clusters, iters=50)
    # data the fast path does not cover: one prompt_id in two docs (additive counts it twice)
    contribs[4:8] = [dict(c, prompt_id=contribs[0]["prompt_id"]) for c in contribs[4:8]]
    with pytest.warns(RuntimeWarning, match="prompt_accuracy"):
        S.cluster_bootstrap(GenEval(), contribs, clusters, iters=50)


def test_undefined_resamples_are_excluded_and_counted():
    """A VBench-like dimension where one of 3 docs has no scored video: resamples of only that doc are undefined."""
    contribs = [{"x": 1.0}, {"x": 3.0}, {"x": 2.0}, {"x": 4.0}, {"x_skipped": "static"}, {"x_skipped": "static"}]
    clusters = ["a", "a", "b", "b", "c", "c"]
    got = S.cluster_bootstrap(Mean(), contribs, clusters, iters=400)["x"]
    assert "resamples undefined, excluded" in got.method and got.stderr > 0 and 1.5 <= got.ci_low <= got.ci_high <= 3.5


def test_degenerate_distribution_bca_falls_back():
    contribs = [{"x": 1.0}] * 6
    got = S.cluster_bootstrap(Mean(), contribs, ["a", "a", "b", "b", "c", "c"], iters=50, ci_method="bca")["x"]
    assert (got.stderr, got.ci_low, got.ci_high) == (0.0, 1.0, 1.0) and "BCa undefined" in got.method


def test_bad_arguments():
    with pytest.raises(ValueError, match="ci_method"):
        S.cluster_bootstrap(Mean(), [{"x": 1.0}], ["a"], ci_method="normal")
    with pytest.raises(ValueError, match="2 contributions but 1 cluster"):
        S.cluster_bootstrap(Mean(), [{"x": 1.0}] * 2, ["a"])
    with pytest.raises(ValueError, match="differ"):
        S.paired_comparison(Mean(), [{"x": 1.0}], [], ["a"])


# ---------------------------------------------------------------------------------------------
# paired_comparison
# ---------------------------------------------------------------------------------------------
def paired_data(k, r=3, effect=0.3, seed=2):
    x, off, clusters = balanced(k=k, r=r, seed=seed)
    rng = np.random.default_rng(seed + 1)
    y = x + effect + 0.4 * rng.normal(size=(k, 1)) + 0.2 * rng.normal(size=x.shape)
    on = [{"x": float(v)} for v in y.ravel()]
    return x, y, off, on, clusters


def test_exact_p_equals_scipy_permutation_test():
    x, y, off, on, clusters = paired_data(k=10, effect=0.8)
    got = S.paired_comparison(Mean(), *shuffled(off, on, clusters), iters=300)["x"]
    ref = sps.permutation_test((x.mean(1), y.mean(1)), lambda a, b, axis: b.mean(axis) - a.mean(axis),
                               permutation_type="samples", n_resamples=np.inf, alternative="two-sided")
    assert got.p_value == pytest.approx(ref.pvalue, **TOL) and 0 < got.p_value < 0.1
    assert got.delta == pytest.approx(y.mean() - x.mean(), **TOL) and (got.off, got.on) == (pytest.approx(x.mean()), pytest.approx(y.mean()))
    assert "exact two-sided sign-flip test over 10 docs (all 1024 assignments)" in got.method
    boot = sps.bootstrap((y.mean(1) - x.mean(1),), np.mean, n_resamples=300, method="percentile", rng=np.random.default_rng(S.SEED))
    assert got.stderr == pytest.approx(boot.standard_error, **TOL) and got.ci_low == pytest.approx(boot.confidence_interval.low, **TOL)
    assert (got.n_pairs, got.n_clusters) == (30, 10)


def test_random_flips_equal_scipy_permutation_test():
    x, y, off, on, clusters = paired_data(k=40, effect=0.1)
    got = S.paired_comparison(Mean(), off, on, clusters, iters=100, flips=2000, seed=11)["x"]
    ref = sps.permutation_test((x.mean(1), y.mean(1)), lambda a, b, axis: np.abs(b.mean(axis) - a.mean(axis)),
                               permutation_type="samples", n_resamples=2000, batch=S.FLIP_BATCH, alternative="greater",
                               rng=np.random.default_rng(11))
    assert got.p_value == pytest.approx(ref.pvalue, **TOL)
    count = got.p_value * 2001 - 1  # p = (1 + count) / (1 + flips)
    assert count == pytest.approx(round(count), abs=1e-6) and "2000 random assignments" in got.method


def test_two_docs_cannot_go_below_one_half():
    _, _, off, on, clusters = paired_data(k=2, r=4, effect=50.0)
    got = S.paired_comparison(Mean(), off, on, clusters)["x"]
    assert got.delta > 40 and got.p_value == 0.5


def test_identical_sides_give_p_one():
    _, contribs, clusters = balanced(k=25, r=2)
    for metric, exact_up_to in [(Mean(), 16), (Mean(), 4), (HandMean(), 4), (SlowMean(), 4)]:  # sum, merge, fold paths
        got = S.paired_comparison(metric, contribs, [dict(c) for c in contribs], clusters, iters=200, flips=500,
                                  exact_up_to=exact_up_to)["x"]
        assert (got.delta, got.p_value, got.stderr, got.ci_low, got.ci_high) == (0.0, 1.0, 0.0, 0.0, 0.0)


def test_paired_macro_and_slow_metrics():
    contribs, clusters = geneval_records(k=12, r=2, tags=GENEVAL_TAGS[:2])
    on = [dict(c, correct=True) for c in contribs]
    got = S.paired_comparison(TagMacro(), contribs, on, clusters, iters=100)
    assert set(got) == {*GENEVAL_TAGS[:2], "overall"} and got["overall"].delta > 0
    assert 2 / 2**12 <= got["overall"].p_value < 0.05 and "all 4096 assignments" in got["overall"].method
    _, _, off, on, clusters = paired_data(k=8)
    slow = S.paired_comparison(SlowMean(), off, on, clusters)["x"]  # 2^8 > SLOW_METRIC_ITERS: random flips
    fast = S.paired_comparison(Mean(), off, on, clusters, iters=S.SLOW_METRIC_ITERS, flips=S.SLOW_METRIC_ITERS, exact_up_to=0)["x"]
    assert slow.p_value == fast.p_value and slow.stderr == pytest.approx(fast.stderr, **TOL)
    assert f"{S.SLOW_METRIC_ITERS} random assignments" in slow.method


def test_deterministic_and_order_independent():
    _, _, off, on, clusters = paired_data(k=20)
    a = S.paired_comparison(Mean(), off, on, clusters, flips=500, exact_up_to=4)
    b = S.paired_comparison(Mean(), *shuffled(off, on, clusters, seed=3), flips=500, exact_up_to=4)
    assert a == b
    contribs, keys = geneval_records(k=10)
    assert S.cluster_bootstrap(TagMacro(), contribs, keys, iters=100) == S.cluster_bootstrap(TagMacro(), *shuffled(contribs, keys), iters=100)
    assert S.cluster_bootstrap(Mean(), off, clusters, seed=1) != S.cluster_bootstrap(Mean(), off, clusters, seed=2)


def test_describe_methods_names_every_quantity():
    text = S.describe_methods()
    assert {"clusters", "stderr", "ci", "p_value", "paired", "budget"} <= set(text)
    assert "ddof=1" in text["stderr"] and "2^k" in text["p_value"]
