"""Order-statistic benchmark: the (n, b) map E[X_(n:n+b)], n <= 1000, b <= 100 (101,000 pairs;
target < 1 s, also for a distribution without a closed form), 10,000 order statistics, and the
largest relative error of the quadrature against the closed forms.

Reproduce with:  .venv/bin/python benchmarks/bench_order_stats.py
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import scipy.stats as st

from toolkit.models import Empirical
from toolkit.theory import expected_order_statistic, order_statistic_moments

COMMAND = ".venv/bin/python benchmarks/bench_order_stats.py"


def _best_of(fn, repeats: int = 3) -> tuple[float, object]:
    best, out = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def _max_rel_error(dist, pairs) -> tuple[float, float]:
    """Largest relative error of quadrature vs closed form, for the mean and the variance."""
    worst_m = worst_v = 0.0
    for k, n in pairs:
        mc, vc = order_statistic_moments(dist, k, n, method="closed")
        mq, vq = order_statistic_moments(dist, k, n, method="quadrature")
        worst_m = max(worst_m, float(np.max(np.abs(mq / mc - 1))))
        worst_v = max(worst_v, float(np.max(np.abs(vq / vc - 1))))
    return worst_m, worst_v


def main() -> None:
    print(f"command: {COMMAND}\n")
    n = np.arange(1, 1001)[:, None]
    b = np.arange(0, 101)[None, :]
    rows = []
    for label, dist, method in [
        ("expon(loc=1, scale=0.5), closed form", st.expon(loc=1, scale=0.5), "auto"),
        ("expon(loc=1, scale=0.5), quadrature", st.expon(loc=1, scale=0.5), "quadrature"),
        ("pareto(3), closed form", st.pareto(3.0), "auto"),
        ("lognorm(0.5), quadrature", st.lognorm(0.5), "auto"),
        ("gamma(2.5), quadrature", st.gamma(2.5), "auto"),
    ]:
        seconds, _ = _best_of(lambda d=dist, m=method: expected_order_statistic(d, n, n + b, m))
        rows.append((f"(n, b) map, {n.size * b.size:,} pairs: {label}", seconds))

    k = np.arange(1, 10_001)
    for label, dist in [
        ("lognorm(0.5), mean + var", st.lognorm(0.5)),
        ("Empirical trace of 10,000 lognormal times, mean + var", None),
    ]:
        if dist is None:
            dist = Empirical(np.random.default_rng(0).lognormal(size=10_000))
        seconds, _ = _best_of(lambda d=dist: order_statistic_moments(d, k, 10_000), repeats=1)
        rows.append((f"10,000 order statistics X_(k:10000): {label}", seconds))

    width = max(len(r[0]) for r in rows)
    print(f"{'case':<{width}}  {'seconds':>8}")
    for name, seconds in rows:
        print(f"{name:<{width}}  {seconds:8.3f}")

    print("\nmax relative error, quadrature vs closed form (n in {1, 2, 10, 1000, 10000},")
    print("k in {1, 2, n/2, n-1, n}):")
    print(f"{'distribution':<40} {'mean':>10} {'variance':>10}")
    pairs = []
    for nn in (1, 2, 10, 1000, 10000):
        pairs.append((np.unique(np.clip([1, 2, nn // 2, nn - 1, nn], 1, nn)), nn))
    for dist in [
        st.expon(),
        st.expon(loc=1, scale=0.5),
        st.uniform(loc=2, scale=3),
        st.pareto(3.0),
        st.pareto(2.5, loc=1, scale=2),
    ]:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            m, v = _max_rel_error(dist, pairs)
        name = f"{dist.dist.name}{dist.args}{dist.kwds or ''}"
        print(f"{name:<40} {m:10.1e} {v:10.1e}")
    emap = expected_order_statistic(st.expon(loc=1, scale=0.5), n, n + b, "quadrature")
    exact = expected_order_statistic(st.expon(loc=1, scale=0.5), n, n + b)
    print(f"{'expon (n, b) map, all 101,000 pairs':<40} {np.max(np.abs(emap / exact - 1)):10.1e}")


if __name__ == "__main__":
    main()
