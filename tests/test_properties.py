"""Property tests (hypothesis): identities between schemes that hold for any cluster and seed,
monotonicity of order statistics, and scipy's own order statistics as an independent oracle.

The identities are those of toolkit/schemes/values.py: Backup(n, 0), Delayed(n, 0) and
KAsync(n, n) give Sync(n)'s Schedule; KAsync(n, 1) and KBatchAsync(n, 1) give Async(n)'s.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs
from scipy import stats

from toolkit.cluster import simulate
from toolkit.schemes import Async, Backup, Delayed, KAsync, KBatchAsync, Sync
from toolkit.theory.order_stats import expected_order_statistic, order_statistic_variance

DISTS = [stats.expon(loc=0.5), stats.lognorm(0.8), stats.uniform(1.0, 2.0), stats.gamma(2.5)]
dists = hs.sampled_from(DISTS)
n_workers = hs.integers(1, 7)
seeds = hs.integers(0, 2**31)


@settings(max_examples=25, deadline=None)
@given(n=n_workers, seed=seeds, dist=dists)
def test_barrier_identities_hold_for_any_cluster(n, seed, dist):
    sync = simulate(Sync(n), dist, updates=30, seed=seed).frame
    for other in (Backup(n, 0), Delayed(n, 0)):
        pd.testing.assert_frame_equal(simulate(other, dist, updates=30, seed=seed).frame, sync)
    kasync = simulate(KAsync(n, n), dist, updates=30, seed=seed).frame
    pd.testing.assert_frame_equal(kasync.drop(columns="time"), sync.drop(columns="time"))
    np.testing.assert_allclose(kasync["time"], sync["time"], rtol=1e-12)


@settings(max_examples=25, deadline=None)
@given(n=n_workers, seed=seeds, dist=dists)
def test_async_identities_hold_for_any_cluster(n, seed, dist):
    ref = simulate(Async(n), dist, updates=40, seed=seed).frame
    for other in (KAsync(n, 1), KBatchAsync(n, 1)):
        pd.testing.assert_frame_equal(simulate(other, dist, updates=40, seed=seed).frame, ref)


@settings(max_examples=40, deadline=None)
@given(dist=dists, n=hs.integers(2, 400), data=hs.data())
def test_order_statistics_are_monotone(dist, n, data):
    """E[X_(k:n)] grows with k and falls with n at fixed k (David & Nagaraja, sec. 3.1:
    X_(k:n) <= X_(k+1:n) and X_(k:n+1) <= X_(k:n) pointwise)."""
    k = data.draw(hs.integers(1, n - 1))
    m = expected_order_statistic(dist, np.array([k, k + 1]), n)
    assert m[0] <= m[1] * (1 + 1e-12)
    assert expected_order_statistic(dist, k, n + 1) <= m[0] * (1 + 1e-12)
    assert order_statistic_variance(dist, k, n) >= 0


ORACLE = [(stats.lognorm, {"s": 0.6}), (stats.gamma, {"a": 2.5}), (stats.weibull_min, {"c": 1.7})]


@pytest.mark.skipif(
    not hasattr(stats, "order_statistic"), reason="scipy.stats.order_statistic needs scipy >= 1.15"
)
@pytest.mark.parametrize(("family", "shape"), ORACLE, ids=[f.name for f, _ in ORACLE])
def test_quadrature_matches_scipys_order_statistic(family, shape):
    """scipy.stats.order_statistic (scipy >= 1.15, its own numerical integration) is an
    independent oracle for the logit-space quadrature."""
    r = np.array([1, 2, 10, 25, 49, 50])
    oracle = stats.order_statistic(stats.make_distribution(family)(**shape), r=r, n=50)
    frozen = family(**shape)
    np.testing.assert_allclose(expected_order_statistic(frozen, r, 50), oracle.mean(), rtol=1e-9)
    np.testing.assert_allclose(
        order_statistic_variance(frozen, r, 50), oracle.variance(), rtol=1e-7
    )
