"""Order statistics of i.i.d. worker step times: E[X_(k:n)] and Var[X_(k:n)].

X_(k:n) is the k-th smallest of n i.i.d. draws of a step-time model ``dist``: any frozen
``scipy.stats`` continuous distribution (``scipy.stats.expon(loc=1, scale=0.5)``) or a measured
trace ``toolkit.models.Empirical``. Three routes, chosen by :func:`order_statistic_moments`:

* **closed forms** for ``expon``, ``uniform`` and ``pareto``, any loc/scale (David & Nagaraja,
  *Order Statistics*, 3rd ed., 2003, sections 2.5 and 3.1), e.g. exponential
  E = loc + scale (H_n - H_{n-k}) (Rényi 1953); re-derived with sympy in
  :mod:`toolkit.theory.order_derive`;
* **empirical traces**: the exact finite sum E = sum_j x_(j) [I_{j/m} - I_{(j-1)/m}] with I the
  regularized incomplete beta of (k, n - k + 1) (David & Nagaraja, eq. 2.4.2);
* **quantile quadrature** for any other law: E[g(X_(k:n))] = int_0^1 g(F^{-1}(u))
  Beta(u; k, n - k + 1) du (David & Nagaraja, eq. 3.1.1), trapezoidal in logit(u) (Trefethen &
  Weideman, SIAM Review 56, 2014); relative error ~1e-13 against the closed forms for n <= 10^5,
  unreliable beyond n ~ 10^11.

All functions broadcast over arrays of k and n and return a float for scalar k and n. The
formulas, the quadrature's settings and its measured accuracy: docs/theory.md#order-statistics.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from toolkit.checks import ConfigError, check_array
from toolkit.models.dists import check_step_dist
from toolkit.models.empirical import Empirical
from toolkit.theory.order_closed import CLOSED_FORMS, closed_form_moments, has_closed_form
from toolkit.theory.order_quadrature import empirical_moments, quadrature_moments
from toolkit.theory.special import harmonic_range

__all__ = [
    "expected_max",
    "expected_order_statistic",
    "harmonic_difference",
    "has_closed_form",
    "order_statistic_moments",
    "order_statistic_variance",
]

Method = Literal["auto", "closed", "quadrature"]


# The largest n at which the quadrature (toolkit.theory.order_quadrature) was checked against the
# Gumbel asymptotics of toolkit.theory.extremes; at n = 1e13 it returns inf for gamma(2).
QUADRATURE_MAX_N = 10**12


def _check_kn(k: object, n: object) -> tuple[np.ndarray, np.ndarray, bool]:
    """Broadcast k and n to float arrays of integers with 1 <= k <= n."""
    nn = check_array("n", n, low=1, integer=True)
    kk = check_array("k", k, low=1, integer=True)
    try:
        kk, nn = np.broadcast_arrays(kk, nn)
    except ValueError as exc:
        raise ConfigError(
            "k", f"k and n do not broadcast: shapes {kk.shape} and {nn.shape}"
        ) from exc
    if np.any(kk > nn):
        raise ConfigError("k", f"k must satisfy 1 <= k <= n, got k={k!r}, n={n!r}")
    return kk, nn, kk.ndim == 0


def _out(values: np.ndarray, scalar: bool) -> float | np.ndarray:
    return float(values.reshape(())) if scalar else values


def harmonic_difference(
    n: np.ndarray | int, k: np.ndarray | int, order: int = 1
) -> float | np.ndarray:
    """sum_{j=n-k+1}^{n} 1 / j^order = H^(order)_n - H^(order)_{n-k}, for order 1 or 2.

    Accurate to a few ulps for any n (no cancellation for small k and huge n): terms with
    j < 10 are summed directly, the rest is psi(n+1) - psi(a) (order 1) or psi_1(a) - psi_1(n+1)
    (order 2), a = max(n - k + 1, 10), from the asymptotic series of Abramowitz & Stegun 6.3.18
    and 6.4.12 written as cancellation-free differences (log1p(k/a), k / (2 a (n+1)), ...).
    """
    if order not in (1, 2):
        raise ConfigError("order", f"order must be 1 or 2, got {order!r}")
    kk, nn, scalar = _check_kn(k, n)
    return _out(harmonic_range(nn - kk + 1.0, nn, order), scalar)


def order_statistic_moments(
    dist: Any, k: np.ndarray | int, n: np.ndarray | int, method: Method = "auto"
) -> tuple[float | np.ndarray, float | np.ndarray]:
    """(E[X_(k:n)], Var[X_(k:n)]) for the k-th smallest of n i.i.d. draws of ``dist``.

    ``method``: ``"auto"`` (closed form when one exists, see :func:`has_closed_form`, else the
    quantile quadrature), ``"closed"`` (ValueError when none exists) or ``"quadrature"`` (the
    quantile integral E[g(X_(k:n))] = int_0^1 g(F^{-1}(u)) Beta(u; k, n-k+1) du, David &
    Nagaraja eq. 3.1.1, also for closed-form families; not for Empirical traces, whose exact
    answer is a finite sum). Broadcasts over k and n; floats for scalar input. Moments that do not
    exist (Pareto with n - k + 1 <= m / b) are ``inf``.
    """
    return _moments(dist, k, n, method, want_var=True)


def _moments(dist, k, n, method, want_var):
    check_step_dist(dist)
    if method not in ("auto", "closed", "quadrature"):
        raise ConfigError(
            "method", f"method must be 'auto', 'closed' or 'quadrature', got {method!r}"
        )
    kk, nn, scalar = _check_kn(k, n)
    shape = kk.shape
    kf, nf = kk.ravel(), nn.ravel()
    if isinstance(dist, Empirical):
        if method == "quadrature":
            raise ConfigError(
                "method",
                "method: an Empirical trace has an exact finite-sum answer; use 'auto' or 'closed'",
            )
        mean, var = empirical_moments(dist.values, kf, nf, want_var)
    elif method == "closed" or (method == "auto" and has_closed_form(dist)):
        if not has_closed_form(dist):
            raise ConfigError(
                "method",
                f"method: no closed form for scipy.stats.{dist.dist.name}; closed forms exist for "
                f"{', '.join(CLOSED_FORMS)} and Empirical traces",
            )
        mean, var = closed_form_moments(dist, kf, nf, want_var)
    else:
        if nf.size and nf.max() > QUADRATURE_MAX_N:
            raise ConfigError(
                "n",
                f"n: {int(nf.max()):d} is beyond what the quadrature of order statistics is "
                f"checked for (n <= {QUADRATURE_MAX_N:.0e}; gamma(2) at n = 1e13 already gives "
                "inf); toolkit.theory.extremes has the asymptotic E[max]",
            )
        mean, var = quadrature_moments(dist, kf, nf, want_var)
    mean = _out(np.asarray(mean, dtype=float).reshape(shape), scalar)
    if not want_var:
        return mean, None
    return mean, _out(np.asarray(var, dtype=float).reshape(shape), scalar)


def expected_order_statistic(
    dist: Any, k: np.ndarray | int, n: np.ndarray | int, method: Method = "auto"
) -> float | np.ndarray:
    """E[X_(k:n)], the mean k-th smallest of n i.i.d. step times (see
    :func:`order_statistic_moments` for the formulas and ``method``). Exponential:
    loc + scale (H_n - H_{n-k}) (Rényi 1953); uniform: loc + scale k / (n + 1)."""
    return _moments(dist, k, n, method, want_var=False)[0]


def order_statistic_variance(
    dist: Any, k: np.ndarray | int, n: np.ndarray | int, method: Method = "auto"
) -> float | np.ndarray:
    """Var[X_(k:n)] (see :func:`order_statistic_moments`). Exponential:
    scale^2 sum_{j=n-k+1}^{n} 1/j^2; uniform: scale^2 k (n-k+1) / ((n+1)^2 (n+2))."""
    return _moments(dist, k, n, method, want_var=True)[1]


def expected_max(dist: Any, n: np.ndarray | int, method: Method = "auto") -> float | np.ndarray:
    """E[X_(n:n)] = E[max of n i.i.d. step times], the synchronous step's compute time.
    Exponential: loc + scale H_n."""
    check_array("n", n, low=1, integer=True)
    return expected_order_statistic(dist, n, n, method)
