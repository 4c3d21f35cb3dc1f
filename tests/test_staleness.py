"""Staleness bounds from the literature (toolkit/theory/staleness.py)."""

from __future__ import annotations

import numpy as np
import pytest

from toolkit.theory.delay import delayed_gd_threshold, staleness_threshold
from toolkit.theory.staleness import (
    delayed_lr_necessary,
    implicit_momentum,
    lian_max_staleness,
    lian_stepsize_bound,
    staleness_aware_lr,
)


def test_delayed_lr_necessary_is_the_quadratic_threshold() -> None:
    assert delayed_lr_necessary(4.0, 0) == pytest.approx(0.5)
    assert delayed_lr_necessary(2.0, 1) == pytest.approx(0.5)
    # order 1 / (L (tau + 1)): pi / (2 tau + 1) asymptotically
    assert delayed_lr_necessary(1.0, 1000) * 2001 == pytest.approx(np.pi, rel=1e-5)


def test_lian_stepsize_bound_solves_its_condition() -> None:
    """Algebra check, not a verification of the published constants (only the abstract of Lian
    et al. could be read): the returned step solves the Theorem 1 condition of the docstring with
    constant step, L M g + 2 L^2 M^2 T^2 g^2 <= 1, with equality at the bound."""
    for L, T, M in [(1.0, 0, 1), (2.0, 3, 4), (0.5, 10, 1)]:
        g = lian_stepsize_bound(L, T, M)
        assert L * M * g + 2 * L**2 * M**2 * T**2 * g**2 == pytest.approx(1.0)
    assert lian_stepsize_bound(1.0, 5) < lian_stepsize_bound(1.0, 4)


def test_lian_max_staleness_grows_like_sqrt_k() -> None:
    """Algebra check of the Corollary 2 condition of the docstring
    (T <= sqrt(K sigma2 / (4 M L f_gap)) - 1) and its O(sqrt K) order; it does not verify the
    published constants."""
    t1 = lian_max_staleness(10**6, 1.0, 1.0, 1.0)
    t4 = lian_max_staleness(4 * 10**6, 1.0, 1.0, 1.0)
    assert t1 == 499  # sqrt(1e6 / 4) - 1
    assert (t4 + 1) == pytest.approx(2 * (t1 + 1), abs=1)
    assert lian_max_staleness(1, 1.0, 1.0, 1.0) == -1


def test_staleness_aware_lr() -> None:
    """Definition check (alpha_0 / max(1, s), the module's reading of Zhang et al. IJCAI 2016),
    not a verification against the paper's text."""
    np.testing.assert_allclose(staleness_aware_lr(0.1, [0, 1, 2, 4]), [0.1, 0.1, 0.05, 0.025])


def test_implicit_momentum_matches_geometric_staleness_mean_field() -> None:
    """Mitliagkas et al. 2016: with geometric staleness P(s) = (1/n)(1 - 1/n)^s, the expected
    update sum_s P(s) x_{t-s} is an exponential filter, so the mean-field recursion is heavy-ball
    momentum mu = 1 - 1/n with step a/n; heavy ball is stable iff a/n < 2 (1 + mu)."""
    for n in [2, 3]:
        mu = implicit_momentum(n)
        s = np.arange(64)
        q = (1 / n) * mu**s
        q /= q.sum()
        assert staleness_threshold(q, grid=40, tol=1e-7) == pytest.approx(
            2 * n * (1 + mu), rel=1e-4
        )
    assert implicit_momentum(1) == 0.0
    assert delayed_gd_threshold(0) == 2 * (1 + implicit_momentum(1))


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="L"):
        delayed_lr_necessary(0.0, 1)
    with pytest.raises(ValueError, match="tau"):
        delayed_lr_necessary(1.0, -1)
    with pytest.raises(ValueError, match="T"):
        lian_stepsize_bound(1.0, -1)
    with pytest.raises(ValueError, match="n"):
        implicit_momentum(0)
    with pytest.raises(ValueError, match="staleness"):
        staleness_aware_lr(0.1, [-1])
