"""Order statistics of step times: closed forms, quadrature, empirical traces, validation.

Oracles: exact rational values (Rényi / David & Nagaraja), high-precision mpmath gamma functions,
the sympy derivation in ``derive_closed_forms``, brute-force enumeration, and seeded Monte Carlo
with a tolerance of 5 standard errors estimated from the sample itself.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import mpmath
import numpy as np
import pytest
import scipy.stats as st
import sympy as sp
from scipy.special import gamma as G

from toolkit.models import Empirical
from toolkit.models.dists import check_step_dist
from toolkit.theory import (
    derive_closed_forms,
    expected_max,
    expected_order_statistic,
    harmonic_difference,
    has_closed_form,
    order_statistic_moments,
    order_statistic_variance,
)

CLOSED = [
    st.expon(),
    st.expon(loc=1.0, scale=0.5),
    st.uniform(loc=2.0, scale=3.0),
    st.pareto(3.0),
    st.pareto(2.5, loc=1.0, scale=2.0),
]
NS = [1, 2, 10, 1000, 10000]


def _ks(n: int) -> np.ndarray:
    return np.unique(np.clip([1, 2, n // 2, n - 1, n], 1, n))


def _harmonic(n: int, order: int = 1) -> Fraction:
    return sum((Fraction(1, j**order) for j in range(1, n + 1)), Fraction(0))


# --------------------------------------------------------------------------- published values
def test_exponential_renyi_known_value():
    # Rényi (1953); David & Nagaraja, Order Statistics, 3rd ed. (2003), Sec. 2.5 (exponential
    # spacings): for Exp(1), E[X_(k:n)] = H_n - H_{n-k} and Var = sum_{j=n-k+1}^n 1/j^2.
    exact = _harmonic(100) - _harmonic(4)
    assert expected_order_statistic(st.expon(), 96, 100) == pytest.approx(float(exact), rel=1e-15)
    var = _harmonic(100, 2) - _harmonic(4, 2)
    assert order_statistic_variance(st.expon(), 96, 100) == pytest.approx(float(var), rel=1e-14)
    # E[max of 2 Exp(1)] = 1 + 1/2; shifted and scaled: loc + scale H_n
    assert expected_max(st.expon(), 2) == pytest.approx(1.5, rel=1e-15)
    assert expected_max(st.expon(loc=1, scale=0.5), 3) == pytest.approx(1 + 0.5 * 11 / 6)


def test_uniform_known_values():
    # David & Nagaraja (2003), Sec. 2.2: U_(k:n) ~ Beta(k, n-k+1), E = k/(n+1),
    # Var = k (n-k+1) / ((n+1)^2 (n+2)).
    for n, k in [(1, 1), (5, 2), (99, 50), (10000, 10000)]:
        assert expected_order_statistic(st.uniform(), k, n) == pytest.approx(k / (n + 1))
        var = k * (n - k + 1) / ((n + 1) ** 2 * (n + 2))
        assert order_statistic_variance(st.uniform(), k, n) == pytest.approx(var, rel=1e-14)
    assert expected_max(st.uniform(loc=2, scale=3), 4) == pytest.approx(2 + 3 * 4 / 5)


def test_harmonic_difference_exact_and_huge_n():
    for n in [1, 2, 9, 10, 11, 57, 300]:
        for k in sorted({1, min(2, n), max(n // 2, 1), n}):
            for order in (1, 2):
                exact = float(_harmonic(n, order) - _harmonic(n - k, order))
                assert harmonic_difference(n, k, order) == pytest.approx(exact, rel=1e-14)
    # no cancellation for small k and huge n (digamma(n+1) - digamma(n-k+1) would lose ~1e-5)
    mpmath.mp.dps = 50
    for n, k in [(10**12, 1), (10**12, 7), (10**15, 10**6), (10**8, 10**8)]:
        h1 = mpmath.harmonic(n) - mpmath.harmonic(n - k)
        h2 = mpmath.psi(1, n - k + 1) - mpmath.psi(1, n + 1)
        assert harmonic_difference(n, k) == pytest.approx(float(h1), rel=1e-14)
        assert harmonic_difference(n, k, 2) == pytest.approx(float(h2), rel=1e-13)


@pytest.mark.parametrize("b", [0.7, 2.5, 10.0, 100.0])
def test_pareto_closed_form_against_mpmath_gamma_ratios(b):
    # E[Y^m] = Gamma(n+1) Gamma(n-k+1-m/b) / (Gamma(n-k+1) Gamma(n+1-m/b)), evaluated with 50 digits
    mpmath.mp.dps = 50
    h = mpmath.mpf(1) / b

    def moment(k, n, m):
        lg = mpmath.loggamma
        return mpmath.exp(lg(n + 1) + lg(n - k + 1 - m * h) - lg(n - k + 1) - lg(n + 1 - m * h))

    for n, k in [(1, 1), (10, 1), (10, 10), (1000, 1), (10000, 5000), (10000, 10000), (10**7, 3)]:
        if n - k + 1 <= 2 * h:
            continue
        e1, e2 = moment(k, n, 1), moment(k, n, 2)
        mean, var = order_statistic_moments(st.pareto(b, loc=1.0, scale=2.0), k, n)
        assert mean == pytest.approx(1 + 2 * float(e1), rel=1e-13)
        assert var == pytest.approx(4 * float(e2 - e1**2), rel=1e-9)  # mpmath's own cancellation


def test_pareto_moments_that_do_not_exist_are_inf():
    # E[Y_(k:n)] exists iff b (n - k + 1) > 1; the variance iff b (n - k + 1) > 2.
    d = st.pareto(0.8)
    assert expected_max(d, 5) == np.inf
    assert expected_order_statistic(d, 3, 5) < np.inf  # n - k + 1 = 3 > 1.25
    mean, var = order_statistic_moments(st.pareto(1.5), [5, 4, 3], 5)  # a = 1, 2, 3 vs h = 2/3
    assert np.isfinite(mean).all()
    assert var[0] == np.inf and var[1] < np.inf and var[2] < np.inf
    # the quadrature reaches the same verdicts from the tail behaviour alone: with h = 1/0.8,
    # a = n - k + 1 = 1, 2, 3 gives mean (inf, finite, finite) and variance (inf, inf, finite)
    qm, qv = order_statistic_moments(d, [5, 4, 3], 5, method="quadrature")
    cm, cv = order_statistic_moments(d, [5, 4, 3], 5)
    assert qm[0] == np.inf == cm[0] and qv[0] == qv[1] == np.inf == cv[0] == cv[1]
    np.testing.assert_allclose(qm[1:], cm[1:], rtol=1e-8)
    assert np.isfinite(cv[2]) and qv[2] == pytest.approx(cv[2], rel=1e-8)


# --------------------------------------------------------------------------- sympy derivation
def test_derivation_matches_fast_formulas():
    rows = derive_closed_forms(n_max=3)
    assert {(r["dist"], r["moment"]) for r in rows} == {
        (d, m) for d in ("expon", "uniform", "pareto") for m in ("mean", "var")
    }
    assert len(rows) == 3 * 2 * 6  # 6 pairs (k, n) with k <= n <= 3
    for row in rows:
        # the integral of the order-statistic density equals the general closed form ...
        assert sp.simplify(row["derived"] - row["formula"]) == 0, row
        # ... and the fast numpy path evaluates it (standardised law, loc/scale shift applied)
        k, n = row["k"], row["n"]
        loc, scale = 0.7, 1.9
        if row["dist"] == "pareto":
            b = 4.5
            value = float(row["derived"].subs(row["symbols"][0], b))
            dist = st.pareto(b, loc=loc, scale=scale)
        else:
            value = float(row["derived"])
            dist = getattr(st, row["dist"])(loc=loc, scale=scale)
        mean, var = order_statistic_moments(dist, k, n)
        if row["moment"] == "mean":
            assert mean == pytest.approx(loc + scale * value, rel=1e-13)
        else:
            assert var == pytest.approx(scale**2 * value, rel=1e-12)


# --------------------------------------------------------------------------- quadrature
@pytest.mark.parametrize("dist", CLOSED, ids=lambda d: f"{d.dist.name}{d.args}{d.kwds}")
def test_quadrature_matches_closed_forms(dist):
    # Required: relative error <= 1e-6 for n up to 10,000; the quadrature targets 1e-10.
    for n in NS:
        ks = _ks(n)
        mc, vc = order_statistic_moments(dist, ks, n, method="closed")
        mq, vq = order_statistic_moments(dist, ks, n, method="quadrature")
        np.testing.assert_allclose(mq, mc, rtol=1e-8)
        np.testing.assert_allclose(vq, vc, rtol=1e-8)


def test_quadrature_for_distributions_without_a_closed_form_path():
    # Weibull minimum: X_(1:n) ~ Weibull(c) with scale n^(-1/c) (min-stability).
    n = np.array([1, 2, 10, 1000, 10000])
    for c in (0.5, 1.5, 3.0):
        mean, var = order_statistic_moments(st.weibull_min(c), 1, n)
        np.testing.assert_allclose(mean, G(1 + 1 / c) * n ** (-1 / c), rtol=1e-10)
        np.testing.assert_allclose(
            var, (G(1 + 2 / c) - G(1 + 1 / c) ** 2) * n ** (-2 / c), rtol=1e-10
        )
    # Power-function law F = x^a: the maximum of n is power-function with a n.
    for a in (0.3, 2.5):
        A = a * n
        mean, var = order_statistic_moments(st.powerlaw(a), n, n)
        np.testing.assert_allclose(mean, A / (A + 1), rtol=1e-10)
        np.testing.assert_allclose(var, A / ((A + 1) ** 2 * (A + 2)), rtol=1e-10)


def test_nk_map_agrees_with_closed_form_and_scalar_calls():
    n = np.arange(1, 201)[:, None]
    b = np.arange(0, 21)[None, :]
    d = st.expon(loc=0.2, scale=1.3)
    quad = expected_order_statistic(d, n, n + b, method="quadrature")
    assert quad.shape == (200, 21)
    np.testing.assert_allclose(quad, expected_order_statistic(d, n, n + b), rtol=1e-9)
    g = st.lognorm(0.6)
    grid = expected_order_statistic(g, n, n + b)
    for i, j in [(0, 0), (7, 3), (199, 20), (50, 0)]:
        assert grid[i, j] == pytest.approx(expected_order_statistic(g, i + 1, i + 1 + j), rel=1e-9)


# --------------------------------------------------------------------------- Monte Carlo
def _mc_check(dist, k, n, reps, seed):
    """|exact - sample| <= 5 standard errors, for the mean and the variance of X_(k:n)."""
    rng = np.random.default_rng(seed)
    x = np.sort(np.asarray(dist.rvs(size=(reps, n), random_state=rng)), axis=1)[:, k - 1]
    mean, var = order_statistic_moments(dist, k, n)
    se_mean = x.std(ddof=1) / np.sqrt(reps)
    s2 = x.var(ddof=1)
    m4 = np.mean((x - x.mean()) ** 4)
    se_var = np.sqrt(max(m4 - s2**2, 0.0) / reps)
    assert abs(x.mean() - mean) <= 5 * se_mean, (dist, k, n, x.mean(), mean, se_mean)
    assert abs(s2 - var) <= 5 * se_var, (dist, k, n, s2, var, se_var)


@pytest.mark.parametrize(
    "dist",
    [*CLOSED[:3], st.pareto(6.0, loc=1.0), st.lognorm(0.5), st.gamma(2.5, scale=0.3)],
    ids=lambda d: f"{d.dist.name}{d.args}{d.kwds}",
)
def test_against_monte_carlo(dist):
    for seed, (n, k) in enumerate([(1, 1), (5, 1), (5, 3), (40, 40), (40, 37)]):
        _mc_check(dist, k, n, reps=20_000, seed=seed)


# --------------------------------------------------------------------------- empirical traces
@pytest.mark.parametrize("values", [[0.5, 1.0, 3.0], [2.0, 2.0, 7.5], [4.0]])
def test_empirical_exact_against_enumeration(values):
    trace = Empirical(values)
    for n in (1, 2, 3):
        tuples = np.sort(np.array(list(itertools.product(values, repeat=n))), axis=1)
        for k in range(1, n + 1):
            mean, var = order_statistic_moments(trace, k, n)
            # every tuple of the m^n is equally likely under resampling with replacement
            assert mean == pytest.approx(tuples[:, k - 1].mean(), rel=1e-14, abs=1e-15)
            assert var == pytest.approx(tuples[:, k - 1].var(), rel=1e-12, abs=1e-14)


def test_empirical_against_monte_carlo_and_limits():
    rng = np.random.default_rng(7)
    trace = Empirical(rng.lognormal(size=50))
    for seed, (n, k) in enumerate([(20, 20), (20, 1), (20, 15), (200, 180)]):
        _mc_check(trace, k, n, reps=20_000, seed=100 + seed)
    # limits: the max of many resamples is the largest value; the min the smallest
    assert expected_max(trace, 10_000) == pytest.approx(trace.values[-1], rel=1e-12)
    assert expected_order_statistic(trace, 1, 10_000) == pytest.approx(trace.values[0], rel=1e-12)
    # one draw: the trace mean and (population) variance
    mean, var = order_statistic_moments(trace, 1, 1)
    assert mean == pytest.approx(trace.mean()) and var == pytest.approx(trace.var())


def test_empty_trace_rejected_by_empirical():
    with pytest.raises(ValueError, match="times"):
        Empirical([])


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("k", "n", "name"),
    [
        (0, 5, "k"),
        (6, 5, "k"),
        (1, 0, "n"),
        (1.5, 5, "k"),
        (2, 2.5, "n"),
        (True, 3, "k"),
        ([1, 7], 5, "k"),
        (np.nan, 5, "k"),
        ("2", 3, "k"),
    ],
)
def test_bad_k_n(k, n, name):
    with pytest.raises(ValueError, match=rf"^{name}\b"):
        expected_order_statistic(st.expon(), k, n)


def test_bad_n_for_expected_max():
    for n in (0, 2.5, -1):
        with pytest.raises(ValueError, match=r"^n\b"):
            expected_max(st.expon(), n)


@pytest.mark.parametrize(
    "dist",
    [st.norm(), st.expon(loc=-1), st.expon, st.expon(scale=-1), st.poisson(3), "expon", None],
    ids=["norm", "negative-loc", "unfrozen", "bad-scale", "discrete", "string", "none"],
)
def test_bad_dist(dist):
    with pytest.raises(ValueError, match=r"^dist\b"):
        expected_order_statistic(dist, 1, 2)
    with pytest.raises(ValueError, match=r"^dist\b"):
        check_step_dist(dist)


def test_check_step_dist_accepts_and_returns():
    for d in [st.expon(), st.lognorm(1.0), st.uniform(0, 1), Empirical([1.0, 2.0])]:
        assert check_step_dist(d) is d


def test_method_argument():
    with pytest.raises(ValueError, match=r"^method"):
        expected_order_statistic(st.expon(), 1, 2, method="exact")
    with pytest.raises(ValueError, match=r"^method"):
        expected_order_statistic(st.lognorm(1.0), 1, 2, method="closed")
    with pytest.raises(ValueError, match=r"^method"):
        expected_order_statistic(Empirical([1.0, 2.0]), 1, 2, method="quadrature")
    assert has_closed_form(st.pareto(3)) and has_closed_form(Empirical([1.0]))
    assert not has_closed_form(st.gamma(2.0))
    with pytest.raises(ValueError, match=r"^n_max"):
        derive_closed_forms(0)


# --------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("dist", [st.expon(), st.gamma(2.0), Empirical([1.0, 2.0, 4.0])])
def test_shapes(dist):
    for k, n in [(1, 3), (np.int64(2), np.int64(3)), (np.array(2), 3), (3.0, 3)]:
        assert type(expected_order_statistic(dist, k, n)) is float
        assert type(order_statistic_variance(dist, k, n)) is float
    assert type(expected_max(dist, 4)) is float
    k = np.array([[1], [2], [3]])
    n = np.array([3, 4, 5, 6])
    out = expected_order_statistic(dist, k, n)
    assert isinstance(out, np.ndarray) and out.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            assert out[i, j] == pytest.approx(
                expected_order_statistic(dist, int(k[i, 0]), int(n[j])), rel=1e-12
            )
    assert expected_order_statistic(dist, [1, 2], 2).shape == (2,)
    assert expected_max(dist, [1, 5, 9]).shape == (3,)
    # order statistics increase in k and the maximum increases in n
    assert np.all(np.diff(out, axis=0) > 0) and np.all(np.diff(expected_max(dist, n)) > 0)
    with pytest.raises(ValueError, match="broadcast"):
        expected_order_statistic(dist, [1, 2], [3, 4, 5])
