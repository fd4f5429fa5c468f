"""Fréchet distance (symmetric eigenvalue form) and FeatureStats.

Tolerances: against ``Re tr scipy.linalg.sqrtm(sigma1 @ sigma2)`` 1e-6 relative where sqrtm is accurate
(full-rank covariances); for rank-deficient covariances (N < d), against an exact reference computed from
the smaller feature set's N x N Gram matrix, 1e-9 relative (sqrtm itself is only ~1e-7 accurate there, so it
is checked to 1e-6).
"""
from __future__ import annotations

import numpy as np
import pytest

from omnieval.errors import ConfigError, MediaError
from omnieval.metrics.frechet import FeatureStats, frechet_distance


def _features(rng, n, d, shift=0.0):
    return rng.standard_normal((n, d)) * rng.uniform(0.1, 3.0, d) + shift + rng.standard_normal(d) * 0.1


def _gram_reference(x1, x2):
    """Exact FD for np.cov statistics via the N x N Gram matrix of the smaller set (its rank is N - 1)."""
    m1, m2 = x1.mean(0), x2.mean(0)
    s1, s2 = np.cov(x1, rowvar=False), np.cov(x2, rowvar=False)
    small, m_small, s_other = (x1, m1, s2) if len(x1) <= len(x2) else (x2, m2, s1)
    c = (small - m_small) / np.sqrt(len(small) - 1)
    eig = np.linalg.eigvalsh(c @ s_other @ c.T)
    return float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(eig, 0, None)).sum()), (m1, s1, m2, s2)


def test_full_rank_matches_scipy_sqrtm():
    rng = np.random.default_rng(0)
    x1 = _features(rng, 1000, 400) @ rng.standard_normal((400, 400)) * 0.1
    x2 = _features(rng, 1000, 400, shift=0.2) @ rng.standard_normal((400, 400)) * 0.1
    stats = (x1.mean(0), np.cov(x1, rowvar=False), x2.mean(0), np.cov(x2, rowvar=False))
    ours = frechet_distance(*stats)
    ref = frechet_distance(*stats, method="sqrtm")
    assert ours > 1.0
    assert ours == pytest.approx(ref, rel=1e-6)


@pytest.mark.parametrize("n1,n2,d", [(60, 60, 400), (800, 60, 400), (300, 300, 2048)])
def test_rank_deficient_matches_gram_reference(n1, n2, d):
    rng = np.random.default_rng(n1 + n2)
    x1, x2 = _features(rng, n1, d), _features(rng, n2, d, shift=0.3)
    ref, (m1, s1, m2, s2) = _gram_reference(x1, x2)
    assert frechet_distance(m1, s1, m2, s2) == pytest.approx(ref, rel=1e-9)
    assert frechet_distance(m2, s2, m1, s1) == pytest.approx(ref, rel=1e-9)  # singular first or second argument
    if d == 400:  # sqrtm is slow at 2048-d; at 400-d it is accurate to ~1e-7 here
        assert frechet_distance(m1, s1, m2, s2, method="sqrtm") == pytest.approx(ref, rel=1e-6)


def test_identical_and_degenerate_distributions():
    rng = np.random.default_rng(1)
    x = _features(rng, 50, 32)
    mu, sigma = x.mean(0), np.cov(x, rowvar=False)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-9 * np.trace(sigma)
    zero = np.zeros((32, 32))  # all videos identical (zeros vs ones sanity check): mean term only
    assert frechet_distance(np.zeros(32), zero, np.ones(32), zero) == pytest.approx(32.0)


def test_bad_statistics_are_errors():
    with pytest.raises(MediaError, match="covariance has shape"):
        frechet_distance(np.zeros(3), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(MediaError, match="NaN"):
        frechet_distance(np.zeros(2), np.array([[np.nan, 0], [0, 1]]), np.zeros(2), np.eye(2))
    with pytest.raises(ConfigError, match="sqrt method"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2), method="svd")


@pytest.mark.parametrize("ddof", [0, 1])
def test_feature_stats_mean_cov_and_merge(ddof):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((37, 16)).astype(np.float32) * 5 + 3
    whole = FeatureStats()
    whole.update(x)
    np.testing.assert_allclose(whole.mean(), x.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(whole.cov(ddof), np.cov(x.astype(np.float64), rowvar=False, ddof=ddof), rtol=1e-9, atol=1e-10)
    parts = [FeatureStats(), FeatureStats(), FeatureStats()]
    for i, chunk in enumerate(np.array_split(x, 3)):
        for row in chunk:  # one vector at a time
            parts[i].update(row)
    merged = FeatureStats()
    for part in parts:
        merged.merge(part)
    assert merged.n == 37
    np.testing.assert_allclose(merged.cov(ddof), whole.cov(ddof), rtol=1e-12, atol=1e-12)


def test_feature_stats_errors():
    stats = FeatureStats()
    with pytest.raises(MediaError, match="no features"):
        stats.mean()
    stats.update(np.ones((1, 4)))
    with pytest.raises(MediaError, match="ddof=1"):
        stats.cov(1)
    with pytest.raises(MediaError, match="dimension"):
        stats.update(np.ones((2, 5)))
    with pytest.raises(MediaError, match="NaN"):
        stats.update(np.full((2, 4), np.nan))


def test_feature_stats_save_load(tmp_path):
    rng = np.random.default_rng(3)
    stats = FeatureStats()
    stats.update(rng.standard_normal((20, 8)))
    path = stats.save(tmp_path / "ref.npz", protocol_hash="abc", ddof=1)
    loaded = FeatureStats.load(path, protocol_hash="abc")
    assert loaded.n == 20
    np.testing.assert_array_equal(loaded.sum_outer, stats.sum_outer)
    with pytest.raises(ConfigError, match="protocol abc, not the requested protocol xyz"):
        FeatureStats.load(path, protocol_hash="xyz")
    # a file with only mu / sigma / n (e.g. written by other tools) is rebuilt from them
    np.savez(tmp_path / "plain.npz", mu=stats.mean(), sigma=stats.cov(1), n=20, ddof=1)
    plain = FeatureStats.load(tmp_path / "plain.npz")
    np.testing.assert_allclose(plain.cov(0), stats.cov(0), rtol=1e-10, atol=1e-12)
    with pytest.raises(MediaError, match="not found"):
        FeatureStats.load(tmp_path / "missing.npz")


def test_fvd_module_reexports_frechet_distance():
    from omnieval.metrics import fvd

    assert fvd.frechet_distance is frechet_distance
