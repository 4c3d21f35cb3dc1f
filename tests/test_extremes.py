"""Extreme-value approximations of E[max of n] against the exact values, with known limits."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st
from scipy.special import gamma as G

from toolkit.models import Empirical
from toolkit.theory import (
    expected_max,
    expected_max_asymptotic,
    extreme_value_domain,
    extreme_value_table,
    tail_exponent,
)

NS = [10, 100, 1_000, 10_000, 100_000]


def test_table_columns_and_exact_column():
    table = extreme_value_table(st.expon(), NS)
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == ["n", "exact", "asymptotic", "rel_error", "domain"]
    np.testing.assert_array_equal(table["n"], NS)
    np.testing.assert_allclose(table["exact"], expected_max(st.expon(), NS), rtol=1e-15)
    rel = np.abs(table["asymptotic"] - table["exact"]) / table["exact"]
    np.testing.assert_allclose(table["rel_error"], rel, rtol=1e-12)
    assert (table["domain"] == "gumbel").all()


def test_gumbel_exponential_known_error_term():
    # Exp(scale): b_n = scale ln n, a_n = scale, so the approximation is scale (ln n + gamma)
    # and the error is scale (H_n - ln n - gamma) = scale (1/(2n) - 1/(12 n^2) + ...)
    # (Euler-Maclaurin; Abramowitz & Stegun 6.3.18 with psi(n+1) = H_n - gamma).
    d = st.expon(loc=1.0, scale=2.0)
    table = extreme_value_table(d, NS)
    assert np.all(np.diff(table["rel_error"]) < 0)
    n = table["n"].to_numpy(float)
    np.testing.assert_allclose(
        table["asymptotic"], 1.0 + 2.0 * (np.log(n) + np.euler_gamma), rtol=1e-13
    )
    gap = (table["exact"] - table["asymptotic"]).to_numpy()
    np.testing.assert_allclose(gap, 2.0 * (1 / (2 * n) - 1 / (12 * n**2)), rtol=1e-3)


@pytest.mark.parametrize(
    "dist", [st.halfnorm(), st.lognorm(0.5), st.lognorm(1.0), st.weibull_min(1.5)]
)
def test_gumbel_error_shrinks_with_n(dist):
    table = extreme_value_table(dist, NS)
    assert (table["domain"] == "gumbel").all()
    assert np.all(np.diff(table["rel_error"]) < 0), table
    assert table["rel_error"].iloc[-1] < 0.5 * table["rel_error"].iloc[0]


@pytest.mark.parametrize("b", [1.5, 3.0, 6.0])
def test_frechet_pareto_known_limit(b):
    # Pareto(b): E[max]/(n^(1/b) Gamma(1 - 1/b)) = Gamma(n+1) / (Gamma(n+1-h) n^h), h = 1/b,
    # = 1 + h (1 - h) / (2n) + O(n^-2) (Tricomi & Erdélyi 1951 expansion of a gamma ratio), so
    # n * rel_error -> h (1 - h) / 2: the Fréchet limit of de Haan & Ferreira (2006), Thm 1.1.3.
    d = st.pareto(b)
    table = extreme_value_table(d, NS)
    assert (table["domain"] == "frechet").all()
    h = 1.0 / b
    n = table["n"].to_numpy(float)
    np.testing.assert_allclose(table["asymptotic"], n**h * G(1 - h), rtol=1e-12)
    limit = h * (1 - h) / 2
    assert (n * table["rel_error"]).iloc[-1] == pytest.approx(limit, rel=1e-3)
    assert np.all(np.diff(table["rel_error"]) < 0)


def test_frechet_infinite_mean():
    # alpha <= 1: E[max] is infinite, and so is the approximation
    table = extreme_value_table(st.pareto(0.9), [10, 100])
    assert np.all(table["exact"] == np.inf) and np.all(table["asymptotic"] == np.inf)


def test_weibull_domain_uniform_and_beta():
    # uniform(loc, scale): exact loc + scale n/(n+1); approximation omega - scale/n (beta = 1)
    d = st.uniform(loc=1.0, scale=2.0)
    assert extreme_value_domain(d) == "weibull"
    assert tail_exponent(d) == pytest.approx(1.0, rel=1e-6)
    table = extreme_value_table(d, NS)
    n = table["n"].to_numpy(float)
    # beta is estimated from the survival function (1 up to rounding, ~1e-10)
    np.testing.assert_allclose(table["asymptotic"], 3.0 - 2.0 / n, rtol=1e-8)
    assert np.all(np.diff(table["rel_error"]) < 0)
    # beta(a, b) has 1 - F(1 - y) ~ C y^b near its upper end
    assert tail_exponent(st.beta(2.0, 3.0)) == pytest.approx(3.0, rel=1e-4)
    assert extreme_value_table(st.beta(2.0, 3.0), NS)["rel_error"].iloc[-1] < 1e-5


def test_domains_and_overrides():
    assert extreme_value_domain(st.expon()) == "gumbel"
    assert extreme_value_domain(st.lognorm(1.0)) == "gumbel"
    assert extreme_value_domain(st.pareto(2.0)) == "frechet"
    assert extreme_value_domain(st.lomax(3.0)) == "frechet"
    assert extreme_value_domain(st.genpareto(0.25)) == "frechet"
    assert extreme_value_domain(st.genpareto(-0.25)) == "weibull"  # bounded support
    assert tail_exponent(st.lomax(3.0)) == 3.0
    assert tail_exponent(st.genpareto(0.25)) == 4.0
    assert math.isnan(tail_exponent(st.expon()))
    # an explicit tail index is used as given
    a = expected_max_asymptotic(st.lomax(3.0), 1000)
    assert expected_max_asymptotic(st.lomax(3.0), 1000, tail_index=3.0) == a
    assert expected_max_asymptotic(st.lomax(3.0), 1000, tail_index=4.0) != a
    assert type(a) is float and expected_max_asymptotic(st.expon(), [5, 6]).shape == (2,)


def test_bad_input():
    with pytest.raises(ValueError, match=r"^domain"):
        expected_max_asymptotic(st.expon(), 10, domain="extreme")
    with pytest.raises(ValueError, match=r"^tail_index"):
        expected_max_asymptotic(st.pareto(2.0), 10, tail_index=-1.0)
    with pytest.raises(ValueError, match=r"^tail_index"):
        expected_max_asymptotic(st.pareto(2.0), 10, tail_index=math.inf)
    with pytest.raises(ValueError, match=r"^n\b"):
        expected_max_asymptotic(st.expon(), 0)
    with pytest.raises(ValueError, match=r"^n\b"):
        expected_max_asymptotic(st.expon(), 2.5)
    with pytest.raises(ValueError, match=r"^dist\b"):
        expected_max_asymptotic(st.norm(), 10)
    with pytest.raises(ValueError, match=r"^dist\b"):
        extreme_value_table(Empirical([1.0, 2.0]), [10])
    with pytest.raises(ValueError, match=r"^dist\b"):
        tail_exponent(st.expon(), domain="frechet")
    with pytest.raises(ValueError, match=r"^domain"):
        tail_exponent(st.expon(), domain="weibull")
    with pytest.raises(ValueError, match=r"^ns\b"):
        extreme_value_table(st.expon(), [])
