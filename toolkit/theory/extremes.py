"""Extreme-value asymptotics for E[max of n step times], reported next to the exact value.

The maximum of n i.i.d. draws, suitably normalised, converges to one of three laws (Fisher &
Tippett 1928, Gnedenko 1943; de Haan & Ferreira, *Extreme Value Theory*, 2006, ch. 1), which gives
first-order approximations of E[X_(n:n)]:

* **Gumbel** (light tails: expon, gamma, lognorm, halfnorm, weibull_min, ...):
  E[max] ~ b_n + euler_gamma a_n with b_n = F^{-1}(1 - 1/n) and a_n = 1 / (n f(b_n)) (the inverse
  hazard at b_n). Exact up to O(1/n) for the exponential: H_n = ln n + euler_gamma + 1/(2n) + ...
* **Fréchet** (regularly varying tails, 1 - F(x) ~ x^-alpha, e.g. Pareto with alpha = b):
  E[max] ~ F^{-1}(1 - 1/n) Gamma(1 - 1/alpha) for alpha > 1 (inf for alpha <= 1).
* **Weibull** (finite upper end omega, 1 - F(omega - y) ~ c y^beta, e.g. uniform with beta = 1):
  E[max] ~ omega - (omega - F^{-1}(1 - 1/n)) Gamma(1 + 1/beta).

:func:`extreme_value_table` puts the approximation beside the exact value from
``toolkit.theory.order_stats`` so that its error is reported, not hidden
(docs/theory.md#extreme-value-asymptotics).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import special

from toolkit.checks import ConfigError, check_array, check_positive
from toolkit.models.dists import check_step_dist, dist_params
from toolkit.models.empirical import Empirical
from toolkit.theory.order_stats import expected_max as _expected_max

__all__ = [
    "expected_max_asymptotic",
    "extreme_value_domain",
    "extreme_value_table",
    "tail_exponent",
]

Domain = Literal["gumbel", "frechet", "weibull"]
DOMAINS = ("gumbel", "frechet", "weibull")

# Tail index alpha of scipy families with regularly varying right tails, 1 - F(x) ~ C x^-alpha
# (from each family's survival function in the scipy.stats documentation).
_FRECHET_ALPHA = {
    "pareto": lambda p: p["b"],  # sf = x^-b
    "lomax": lambda p: p["c"],  # sf = (1 + x)^-c
    "genpareto": lambda p: 1.0 / p["c"] if p["c"] > 0 else None,  # sf = (1 + c x)^(-1/c)
    "invweibull": lambda p: p["c"],  # cdf = exp(-x^-c)
    "invgamma": lambda p: p["a"],  # sf ~ x^-a / Gamma(a + 1)
    "fisk": lambda p: p["c"],  # log-logistic, sf = 1 / (1 + x^c)
    "burr": lambda p: p["c"],  # Burr III, cdf = (1 + x^-c)^-d, sf ~ d x^-c
    "burr12": lambda p: p["c"] * p["d"],  # Burr XII, sf = (1 + x^c)^-d
    "halfcauchy": lambda p: 1.0,
    "levy": lambda p: 0.5,
}


def _check_dist(dist: Any) -> None:
    check_step_dist(dist)
    if isinstance(dist, Empirical):
        raise ConfigError(
            "dist",
            "dist: extreme-value asymptotics need a continuous distribution; for an Empirical "
            "trace use toolkit.theory.expected_max, which is exact",
        )


def extreme_value_domain(dist: Any) -> Domain:
    """Domain of attraction of the maximum: ``"weibull"`` if the support is bounded above,
    ``"frechet"`` for the scipy families with a regularly varying tail listed in this module
    (pareto, lomax, genpareto with c > 0, invweibull, invgamma, fisk, burr, burr12, halfcauchy,
    levy), ``"gumbel"`` otherwise (pass ``domain=`` to the other functions to override)."""
    _check_dist(dist)
    if math.isfinite(float(dist.support()[1])):
        return "weibull"
    rule = _FRECHET_ALPHA.get(dist.dist.name)
    if rule is not None and rule(dist_params(dist)) is not None:
        return "frechet"
    return "gumbel"


def tail_exponent(dist: Any, domain: Domain | None = None) -> float:
    """Fréchet: alpha with 1 - F(x) ~ C x^-alpha (from the family's parameters). Weibull: beta with
    1 - F(omega - y) ~ C y^beta, estimated as log(sf(omega - y1) / sf(omega - y2)) / log(y1 / y2)
    with y1 = 1e-5 s, y2 = 1e-6 s, s = omega - median (exact for pure power-law ends such as the
    uniform's, beta = 1; relative bias ~1e-5 otherwise). Gumbel: nan (no index)."""
    domain = _domain(dist, domain)
    if domain == "frechet":
        rule = _FRECHET_ALPHA.get(dist.dist.name)
        alpha = None if rule is None else rule(dist_params(dist))
        if alpha is None:
            raise ConfigError(
                "dist",
                f"dist: tail index unknown for scipy.stats.{dist.dist.name}; "
                "pass tail_index= (alpha)",
            )
        return float(alpha)
    if domain == "weibull":
        omega = float(dist.support()[1])
        if not math.isfinite(omega):
            raise ConfigError("domain", "domain: 'weibull' needs a support bounded above")
        span = omega - float(dist.median())
        y1, y2 = 1e-5 * span, 1e-6 * span
        return float(
            math.log(float(dist.sf(omega - y1)) / float(dist.sf(omega - y2))) / math.log(10)
        )
    return math.nan


def _domain(dist: Any, domain: str | None) -> Domain:
    _check_dist(dist)
    if domain is None:
        return extreme_value_domain(dist)
    if domain not in DOMAINS:
        raise ConfigError("domain", f"domain must be one of {DOMAINS} or None, got {domain!r}")
    return domain  # type: ignore[return-value]


def expected_max_asymptotic(
    dist: Any,
    n: np.ndarray | int,
    domain: Domain | None = None,
    tail_index: float | None = None,
) -> float | np.ndarray:
    """First-order extreme-value approximation of E[max of n draws] (module docstring formulas).

    ``domain`` defaults to :func:`extreme_value_domain`; ``tail_index`` (alpha for Fréchet, beta
    for Weibull) defaults to :func:`tail_exponent`. Broadcasts over n; float for scalar n.
    """
    domain = _domain(dist, domain)
    nn = check_array("n", n, low=1, integer=True)
    scalar = nn.ndim == 0
    if tail_index is not None:
        index = check_positive("tail_index", tail_index)
    elif domain != "gumbel":
        index = tail_exponent(dist, domain)
    p = 1.0 / nn
    b_n = np.asarray(dist.isf(p), dtype=float)  # F^{-1}(1 - 1/n), accurate for small 1/n
    if domain == "gumbel":
        a_n = 1.0 / (nn * np.asarray(dist.pdf(b_n), dtype=float))
        out = b_n + np.euler_gamma * a_n
    elif domain == "frechet":
        out = b_n * special.gamma(1.0 - 1.0 / index) if index > 1 else np.full(nn.shape, np.inf)
    else:
        omega = float(dist.support()[1])
        out = omega - (omega - b_n) * special.gamma(1.0 + 1.0 / index)
    out = np.asarray(out, dtype=float)
    return float(out.reshape(())) if scalar else out


def extreme_value_table(
    dist: Any,
    ns: Any = (10, 100, 1_000, 10_000),
    domain: Domain | None = None,
    tail_index: float | None = None,
) -> pd.DataFrame:
    """DataFrame with columns ``n, exact, asymptotic, rel_error, domain``: the exact E[max of n]
    (:func:`toolkit.theory.expected_max`, closed form or quadrature), the extreme-value
    approximation (:func:`expected_max_asymptotic`) and |asymptotic - exact| / |exact|."""
    ns = np.asarray(ns)
    if ns.ndim != 1 or ns.size == 0:
        raise ConfigError("ns", f"ns must be a non-empty 1-d list of sample sizes, got {ns!r}")
    domain = _domain(dist, domain)
    exact = np.asarray(_expected_max(dist, ns), dtype=float)
    approx = np.asarray(expected_max_asymptotic(dist, ns, domain, tail_index), dtype=float)
    with np.errstate(invalid="ignore"):
        rel = np.abs(approx - exact) / np.abs(exact)
    return pd.DataFrame(
        {
            "n": ns.astype(np.int64),
            "exact": exact,
            "asymptotic": approx,
            "rel_error": rel,
            "domain": domain,
        }
    )
