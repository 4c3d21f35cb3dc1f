"""Order statistics of independent, non-identical workers (toolkit.theory.order_groups) against
closed forms, the i.i.d. routes and the simulated clock."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

from toolkit.cluster import simulate
from toolkit.models import SlowMachines
from toolkit.schemes import Backup
from toolkit.theory import (
    expected_order_statistic,
    order_statistic_cdf_groups,
    order_statistics_groups,
)


@pytest.mark.parametrize(
    ("dist", "rtol"),
    [
        (stats.lognorm(0.5, loc=1.4, scale=0.2), 1e-7),
        (stats.expon(loc=1.0, scale=0.5), 1e-5),
        (stats.pareto(3.0), 1e-4),
    ],
    ids=["lognorm", "shifted-expon", "pareto"],
)
def test_one_group_is_the_iid_order_statistic(dist, rtol):
    k = np.array([1, 10, 50, 90, 99, 100])
    means, _ = order_statistics_groups([(100, dist)], k)
    np.testing.assert_allclose(means, expected_order_statistic(dist, k, 100), rtol=rtol)
    split, _ = order_statistics_groups([(70, dist), (30, dist.cdf)], k)  # the convolution route
    np.testing.assert_allclose(split, means, rtol=1e-9)


def test_two_exponential_groups_against_inclusion_exclusion():
    """n1 workers at rate a and n2 at rate b: E[min] = 1 / (n1 a + n2 b) and, by
    inclusion-exclusion over the subsets of workers,
    E[max] = sum_{(j1, j2) != (0, 0)} (-1)^(j1 + j2 + 1) C(n1, j1) C(n2, j2) / (j1 a + j2 b)."""
    n1, a, n2, b = 6, 1.0, 3, 0.25
    expected_max = sum(
        (-1) ** (j1 + j2 + 1) * special.comb(n1, j1) * special.comb(n2, j2) / (j1 * a + j2 * b)
        for j1 in range(n1 + 1)
        for j2 in range(n2 + 1)
        if j1 + j2
    )
    groups = [(n1, stats.expon(scale=1 / a)), (n2, stats.expon(scale=1 / b))]
    means, _ = order_statistics_groups(groups, [1, n1 + n2])
    np.testing.assert_allclose(means, [1 / (n1 * a + n2 * b), expected_max], rtol=1e-5)


@pytest.mark.parametrize("slow", [1, 2, 5, 30])
def test_conditioning_on_the_largest_group_agrees_with_the_full_convolution(slow):
    """A few k and small other groups take the route through the largest group's survival
    function; every k at once takes the full convolution. The two agree."""
    base = stats.lognorm(0.5, loc=1.2, scale=0.4)
    groups = [(100 - slow, base), (slow, lambda x: base.cdf(x / 2.0))]
    x = np.geomspace(0.8, 30.0, 200)
    few = np.array([1, 50, 100 - slow, 100 - slow + 1, 100])
    every = order_statistic_cdf_groups(groups, np.arange(1, 101), x)
    np.testing.assert_allclose(
        order_statistic_cdf_groups(groups, few, x), every[:, few - 1], rtol=1e-10, atol=1e-14
    )


def test_quantiles_and_cdf_of_uniform_order_statistics():
    """U_(k:n) ~ Beta(k, n - k + 1) for i.i.d. uniforms."""
    k = np.array([1, 5, 20])
    u = stats.uniform(loc=1.0, scale=1.0)
    _, q = order_statistics_groups([(12, u), (8, u)], k, [0.25, 0.5])
    for row, level in zip(q, [0.25, 0.5], strict=True):
        want = 1.0 + stats.beta(k, 20 - k + 1).ppf(level)
        np.testing.assert_allclose(row, want, atol=1e-4)
    x = np.array([1.1, 1.5, 1.9])
    got = order_statistic_cdf_groups([(20, u)], k, x)
    np.testing.assert_allclose(got, stats.beta(k[None, :], 21 - k[None, :]).cdf(x[:, None] - 1))


def test_slow_machines_against_the_clock():
    """Backup(8, 2) on 10 machines of which 2 are 3x slower: the clock's mean step time is
    E[X_(8:10)] of the two groups within 5 standard errors (steps are fresh rounds, i.i.d.)."""
    base = stats.expon(loc=1.0, scale=0.5)
    model = SlowMachines(base, fraction=0.2, slowdown=3.0)
    groups = [(8, base), (2, lambda x: base.cdf(x / 3.0))]
    sched = simulate(Backup(8, 2), model, updates=4000, seed=3)
    gaps = np.diff(np.concatenate([[0.0], sched.update_times()]))
    se = gaps.std(ddof=1) / np.sqrt(gaps.size)
    theory = order_statistics_groups(groups, [8])[0][0]
    assert abs(gaps.mean() - theory) < 5 * se, (gaps.mean(), theory, se)
    # the slow pair matters: the i.i.d. prediction without it is far below
    assert theory > expected_order_statistic(base, 8, 10) + 10 * se


@pytest.mark.parametrize(
    ("groups", "k", "quantiles", "match"),
    [
        ([], [1], (), "groups"),
        ([(3,)], [1], (), r"groups\[0\]"),
        ([(0, stats.expon())], [1], (), "workers"),
        ([(3, "expon")], [1], (), r"groups\[0\]"),
        ([(3, stats.expon())], [4], (), "k"),
        ([(3, stats.expon())], [1], (1.0,), "quantiles"),
    ],
)
def test_bad_input_names_the_argument(groups, k, quantiles, match):
    with pytest.raises(ValueError, match=match):
        order_statistics_groups(groups, k, quantiles)
