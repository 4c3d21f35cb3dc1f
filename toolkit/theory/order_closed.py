"""Closed forms of the order statistics of the exponential, uniform and Pareto laws (any loc and
scale; David & Nagaraja, *Order Statistics*, 3rd ed., 2003, sections 2.5 and 3.1); the formulas
are in docs/theory.md#order-statistics and re-derived with sympy in
:mod:`toolkit.theory.order_derive`."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from toolkit.models.dists import dist_params
from toolkit.models.empirical import Empirical
from toolkit.theory.special import harmonic_range, lgamma_second_difference, stirling_tail

__all__ = ["CLOSED_FORMS", "closed_form_moments", "has_closed_form"]

CLOSED_FORMS = ("expon", "uniform", "pareto")


def has_closed_form(dist: Any) -> bool:
    """Whether :func:`order_statistic_moments` has an exact formula for ``dist`` (``expon``,
    ``uniform`` or ``pareto`` frozen distributions, or an ``Empirical`` trace)."""
    if isinstance(dist, Empirical):
        return True
    gen = getattr(dist, "dist", None)
    return isinstance(gen, stats.rv_continuous) and gen.name in CLOSED_FORMS


def closed_form_moments(dist: Any, k: np.ndarray, n: np.ndarray, want_var: bool):
    """(mean, variance or None) of X_(k:n) by the closed forms of :mod:`toolkit.theory.order_stats`
    (float arrays k, n of the same shape)."""
    p = dist_params(dist)
    loc, scale = p["loc"], p["scale"]
    name = dist.dist.name
    a = n - k + 1.0
    var = None
    if name == "expon":
        mean = loc + scale * harmonic_range(a, n, 1)
        if want_var:
            var = scale**2 * harmonic_range(a, n, 2)
    elif name == "uniform":
        mean = loc + scale * k / (n + 1.0)
        if want_var:
            var = scale**2 * k * a / ((n + 1.0) ** 2 * (n + 2.0))
    else:  # pareto(b, loc, scale)
        h = 1.0 / p["b"]
        ok1 = a > h
        with np.errstate(invalid="ignore", divide="ignore"):
            a1, n1 = np.where(ok1, a, 2 * h + 1), np.where(ok1, n, 2 * h + 1)
            # ln E[Y] = h log1p(k / a) + T(a, -h) - T(n + 1, -h)
            log_m1 = h * np.log1p(k / a1) + stirling_tail(a1, -h) - stirling_tail(n1 + 1, -h)
            m1 = np.exp(log_m1)
            mean = np.where(ok1, loc + scale * m1, np.inf)
            if want_var:
                ok2 = a > 2 * h
                a2, n2 = np.where(ok2, a, 2 * h + 1), np.where(ok2, n, 2 * h + 1)
                # ln(E[Y^2] / E[Y]^2) = D(a, h) - D(n + 1, h) = sum_j log1p(h^2 / (j (j - 2h)))
                log_r = lgamma_second_difference(a2, h) - lgamma_second_difference(n2 + 1, h)
                small = (k <= 32) & ok2
                if np.any(small):  # direct sum: exact also when k << n (no difference of D's)
                    direct = np.zeros(np.count_nonzero(small))
                    ks, js = k[small], a2[small]
                    for i in range(int(ks.max())):
                        j = js + i
                        direct += np.where(i < ks, np.log1p(h * h / (j * (j - 2 * h))), 0.0)
                    log_r[small] = direct
                var = np.where(ok2, (scale * np.where(ok2, m1, 0.0)) ** 2 * np.expm1(log_r), np.inf)
    return mean, var
