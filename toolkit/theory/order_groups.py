"""Order statistics of independent workers that are not identically distributed: groups of
identical workers, e.g. the persistently slow machines of :class:`toolkit.models.SlowMachines`
(two groups), or one group whose law is a mixture (the per-step law of
:class:`toolkit.models.Markov` in its stationary state: slow with probability pi, independently
across workers, so F(x) = (1 - pi) F_0(x) + pi F_0(x / slowdown)).

Group g holds n_g workers whose step time has CDF F_g. The number of workers finished by time x
is N(x) = sum_g Binomial(n_g, F_g(x)), the binomials independent, so with n = sum_g n_g::

    P(X_(k:n) <= x) = P(N(x) >= k),        E[X_(k:n)] = int_0^inf P(N(x) < k) dx

(David & Nagaraja, *Order Statistics*, 3rd ed., 2003, sec. 5.2, independent non-identically
distributed variates). One group: P(N(x) >= k) = I_F(x)(k, n - k + 1) (regularized incomplete
beta); several: the convolution of their binomial pmfs. The integral is the trapezoidal rule in
log x on ``points`` nodes between a lower end where sum_g n_g F_g(x) < 1e-12 (below it the
integrand is 1 to within 1e-12) and an upper end where sum_g n_g (1 - F_g(x)) < 1e-12 (beyond it
P(X_(n:n) > x) < 1e-12), both powers of 2. With the default 8000 nodes the relative error
against the exact i.i.d. routes of :func:`toolkit.theory.expected_order_statistic` is about
2e-8 for a shifted log-normal, 3e-6 for a shifted exponential and 5e-5 for a Pareto with shape 3
(the kink at the support's start limits the trapezoidal rule to second order; tests/
test_order_groups.py). Quantiles of X_(k:n) are read off the same grid by linear interpolation.

For one group this is the i.i.d. case, where :func:`toolkit.theory.expected_order_statistic` is
faster and exact; these functions are for the groups it cannot take.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import special

from toolkit.checks import ConfigError, check_array, check_int

__all__ = ["order_statistic_cdf_groups", "order_statistics_groups"]

Group = tuple[int, object]  # (workers, a frozen distribution or a vectorised CDF)
_TOL = 1e-12


def _cdfs(groups: Sequence[Group]) -> tuple[list[int], list[Callable]]:
    if not groups:
        raise ConfigError(
            "groups", "groups: expected at least one (workers, distribution or CDF) pair"
        )
    counts, cdfs = [], []
    for i, group in enumerate(groups):
        try:
            count, law = group
        except (TypeError, ValueError):
            raise ConfigError(
                "groups", f"groups[{i}]: expected a (workers, distribution) pair"
            ) from None
        counts.append(check_int(f"groups[{i}] workers", count, 1))
        cdf = getattr(law, "cdf", law)
        if not callable(cdf):
            raise ConfigError(
                "groups", f"groups[{i}]: expected a distribution with .cdf or a CDF callable"
            )
        cdfs.append(cdf)
    return counts, cdfs


def _binom_pmf(count: int, p: np.ndarray) -> np.ndarray:
    """(len(p), count + 1): the Binomial(count, p) pmf, from logs (stable for p at 0 or 1)."""
    j = np.arange(count + 1)
    logc = special.gammaln(count + 1) - special.gammaln(j + 1) - special.gammaln(count - j + 1)
    p = np.clip(p, 0.0, 1.0)[:, None]
    return np.exp(logc + special.xlogy(j, p) + special.xlog1py(count - j, -p))


def _binom_sf(count: int, p: np.ndarray, m: np.ndarray) -> np.ndarray:
    """P(Binomial(count, p) >= m) for any integers m (broadcast with p): 1 for m <= 0, the
    regularized incomplete beta I_p(m, count - m + 1) for 1 <= m <= count, 0 above."""
    inside = np.clip(m, 1, count)
    sf = special.betainc(inside, count - inside + 1.0, p)
    return np.where(m <= 0, 1.0, np.where(m > count, 0.0, sf))


def _at_least(counts: list[int], cdfs: list[Callable], x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """(len(x), len(k)): P(N(x) >= k), N(x) the workers finished by time x. One group:
    the regularized incomplete beta, P(Binomial(n, p) >= k) = I_p(k, n - k + 1); several: the
    convolution of the other groups' binomial pmfs, then either conditioned on the largest group
    (P(N >= k) = sum_j P(N_rest = j) P(N_largest >= k - j), the survival function again an
    incomplete beta: fewer operations when few k are asked and the other groups are small, as
    with a few slow machines) or convolved with it too and summed from the top."""
    ps = [np.clip(np.asarray(f(x), dtype=float).reshape(x.size), 0.0, 1.0) for f in cdfs]
    if len(counts) == 1:
        n = counts[0]
        return special.betainc(k[None, :], n - k[None, :] + 1.0, ps[0][:, None])
    largest = int(np.argmax(counts))
    rest = sum(counts) - counts[largest]
    condition = k.size * (rest + 1) <= counts[largest] + 1
    pmf = np.ones((x.size, 1))
    for g, (count, p) in enumerate(zip(counts, ps, strict=True)):
        if condition and g == largest:
            continue
        b = _binom_pmf(count, p)
        new = np.zeros((x.size, pmf.shape[1] + count))
        small, big = (pmf, b) if pmf.shape[1] <= b.shape[1] else (b, pmf)
        for i in range(small.shape[1]):  # convolution over the shorter of the two pmfs
            new[:, i : i + big.shape[1]] += small[:, i : i + 1] * big
        pmf = new
    if condition:
        m = k[None, :, None] - np.arange(rest + 1)[None, None, :]  # (1, len(k), rest + 1)
        sf = _binom_sf(counts[largest], ps[largest][:, None, None], m)
        return np.clip(np.einsum("xkj,xj->xk", sf, pmf), 0.0, 1.0)
    sf = np.cumsum(pmf[:, ::-1], axis=1)[:, ::-1]  # P(N >= j), j = 0..n
    return np.clip(sf[:, k], 0.0, 1.0)


def order_statistic_cdf_groups(groups: Sequence[Group], k: object, x: object) -> np.ndarray:
    """P(X_(k:n) <= x) = P(N(x) >= k) for independent groups of workers (see the module
    docstring), shape (len(x), len(k))."""
    counts, cdfs = _cdfs(groups)
    kk = check_array("k", k, low=1, integer=True).astype(int).reshape(-1)
    if kk.max() > sum(counts):
        raise ConfigError("k", f"k: expected 1 <= k <= n = {sum(counts)}, got {kk.max()}")
    xx = check_array("x", x).reshape(-1)
    return _at_least(counts, cdfs, xx, kk)


_LADDER = 2.0 ** np.arange(-64, 257)


def _support(counts: list[int], cdfs: list[Callable]) -> tuple[float, float]:
    """(lo, hi) on the ladder of powers of 2: the largest lo with sum_g n_g F_g(lo) < 1e-12 and
    the smallest hi > lo with sum_g n_g (1 - F_g(hi)) < 1e-12."""
    cdf = [np.asarray(f(_LADDER), dtype=float).reshape(_LADDER.size) for f in cdfs]
    below = sum(c * F for c, F in zip(counts, cdf, strict=True))
    above = sum(c * (1.0 - F) for c, F in zip(counts, cdf, strict=True))
    low = np.flatnonzero(below < _TOL)
    if low.size == 0:
        raise ConfigError(
            "groups", "groups: the step times have mass near 0; step times must be > 0"
        )
    i = low[-1]
    high = np.flatnonzero(above[i + 1 :] < _TOL)
    if high.size == 0:
        raise ConfigError(
            "groups", "groups: the step-time tail is too heavy for a finite mean of X_(n:n)"
        )
    return float(_LADDER[i]), float(_LADDER[i + 1 + high[0]])


def order_statistics_groups(
    groups: Sequence[Group], k: object, quantiles: Sequence[float] = (), *, points: int = 8000
) -> tuple[np.ndarray, np.ndarray]:
    """(E[X_(k:n)], quantiles of X_(k:n)) for independent groups of workers (the module
    docstring has the formula): means of shape (len(k),), quantiles of shape
    (len(quantiles), len(k)). ``groups`` is a sequence of (workers, law) with law a frozen
    scipy.stats distribution or a vectorised CDF; n is the total number of workers."""
    counts, cdfs = _cdfs(groups)
    kk = check_array("k", k, low=1, integer=True).astype(int).reshape(-1)
    if kk.max() > sum(counts):
        raise ConfigError("k", f"k: expected 1 <= k <= n = {sum(counts)}, got {kk.max()}")
    qs = check_array("quantiles", np.asarray(quantiles, dtype=float)).reshape(-1)
    if np.any((qs <= 0) | (qs >= 1)):
        raise ConfigError(
            "quantiles", f"quantiles: expected values in (0, 1), got {list(quantiles)}"
        )
    points = check_int("points", points, 16)
    lo, hi = _support(counts, cdfs)
    x = np.geomspace(lo, hi, points)
    cdf = _at_least(counts, cdfs, x, kk)  # P(X_(k:n) <= x)
    means = lo + np.trapezoid(1.0 - cdf, x, axis=0)
    quant = np.array([[np.interp(q, c, x) for c in cdf.T] for q in qs]).reshape(qs.size, kk.size)
    return means, quant
