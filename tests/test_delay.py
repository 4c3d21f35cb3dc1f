"""Delayed-gradient stability thresholds on the quadratic.

Known values: tau = 0 (plain gradient descent) is stable iff eta h < 2; tau = 1 iff eta h < 1
(x_{t+1} = x_t - a x_{t-1}: z^2 - z + a, Jury: |a| < 1). The closed form
2 sin(pi / (2 (2 tau + 1))) (equivalently 2 cos(tau pi / (2 tau + 1)), Levin & May 1976 for
x_{t+1} = x_t - a x_{t-k}; derived in toolkit/theory/delay.py) is checked against
companion-matrix bisection for tau = 0..50.
"""

from __future__ import annotations

import numpy as np
import pytest

from toolkit.theory import delayed_gd_threshold
from toolkit.theory.delay import (
    delay_companion,
    delayed_gd_radius,
    delayed_gd_threshold_numeric,
    schedule_growth,
    schedule_threshold,
    staleness_moments,
    staleness_pmf,
    staleness_threshold,
    staleness_threshold_ms,
)


def test_known_thresholds() -> None:
    assert delayed_gd_threshold(0) == pytest.approx(2.0, abs=1e-15)
    assert delayed_gd_threshold(1) == pytest.approx(1.0, abs=1e-15)


@pytest.mark.parametrize("tau", range(51))
def test_closed_form_matches_companion_bisection(tau: int) -> None:
    assert delayed_gd_threshold_numeric(tau, grid=200) == pytest.approx(
        delayed_gd_threshold(tau), abs=1e-8
    )


@pytest.mark.parametrize("tau", [0, 1, 3, 10])
def test_direct_iteration_contracts_below_and_diverges_above(tau: int) -> None:
    a_star = delayed_gd_threshold(tau)
    for a, grows in [(0.9 * a_star, False), (1.1 * a_star, True)]:
        hist = [1.0] * (tau + 1)  # x_{-tau} .. x_0
        for _ in range(4000):
            hist.append(hist[-1] - a * hist[-1 - tau])
            if abs(hist[-1]) > 1e6:
                break
        assert (abs(hist[-1]) > 1e3) == grows
        assert (abs(hist[-1]) < 1e-3) == (not grows)


def test_companion_characteristic_polynomial() -> None:
    tau, a = 4, 0.2
    m = delay_companion(np.eye(tau + 1)[tau], a)
    coeffs = np.poly(m)  # z^{tau+1} - z^tau + a
    expected = np.zeros(tau + 2)
    expected[0], expected[1], expected[-1] = 1.0, -1.0, a
    np.testing.assert_allclose(coeffs, expected, atol=1e-12)
    assert delayed_gd_radius(tau, np.array([a, 0.0])).shape == (2,)


def test_point_mass_staleness_equals_fixed_delay() -> None:
    for tau in [0, 2, 7]:
        q = np.zeros(tau + 1)
        q[tau] = 1.0
        assert staleness_threshold(q) == pytest.approx(delayed_gd_threshold(tau), abs=1e-8)


def test_two_point_mixture_matches_jury_conditions() -> None:
    # x_{t+1} = x_t - a ((1-w) x_t + w x_{t-1}): z^2 - (1 - a (1-w)) z + a w.
    # Jury: a w < 1 and 1 + (1 - a(1-w)) + a w > 0  <=>  a < 2 / (1 - 2 w) when w < 1/2.
    for w in [0.1, 0.3, 0.5, 0.8]:
        expected = min(1.0 / w, 2.0 / (1.0 - 2.0 * w) if w < 0.5 else np.inf)
        assert staleness_threshold([1 - w, w]) == pytest.approx(expected, abs=1e-8)


def test_staleness_pmf() -> None:
    np.testing.assert_allclose(staleness_pmf([0, 1, 1, 3]), [0.25, 0.5, 0.0, 0.25])
    assert staleness_pmf([0, 0], max_staleness=2).shape == (3,)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="tau"):
        delayed_gd_threshold(-1)
    with pytest.raises(ValueError, match="tau"):
        delayed_gd_threshold(1.5)
    with pytest.raises(ValueError, match="probs"):
        staleness_threshold([0.5, 0.6])
    with pytest.raises(ValueError, match="probs"):
        staleness_threshold([-0.5, 1.5])
    with pytest.raises(ValueError, match="staleness"):
        staleness_pmf([-1, 2])


# ----------------------------------------------------------------------------- random staleness
def test_staleness_moments_small_example() -> None:
    # update 0: staleness {0, 1}; update 1: {1, 1}
    mean, second = staleness_moments(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]))
    np.testing.assert_allclose(mean, [0.25, 0.75])
    w = np.array([[0.5, 0.5], [0.0, 1.0]])
    np.testing.assert_allclose(second, w.T @ w / 2)


def test_mean_square_threshold_reduces_to_fixed_delay() -> None:
    for tau in [0, 1, 4]:
        q = np.eye(tau + 1)[tau]
        assert staleness_threshold_ms(q, np.outer(q, q)) == pytest.approx(
            delayed_gd_threshold(tau), abs=1e-8
        )


def test_mean_square_threshold_matches_explicit_kronecker_sum() -> None:
    """Oracle: for profiles w_k with probabilities pi_k, mean-square stability is
    rho(sum_k pi_k A_k (x) A_k) < 1 with A_k the companion matrix of profile w_k."""
    rng = np.random.default_rng(3)
    profiles = rng.dirichlet(np.ones(4), size=3)
    pi = np.array([0.5, 0.3, 0.2])
    mean = pi @ profiles
    second = (profiles * pi[:, None]).T @ profiles
    a_ms = staleness_threshold_ms(mean, second)

    def kron_radius(a: float) -> float:
        mats = [delay_companion(w, a) for w in profiles]
        m = sum(p * np.kron(x, x) for p, x in zip(pi, mats, strict=True))
        return float(np.abs(np.linalg.eigvals(m)).max())

    assert kron_radius(0.999 * a_ms) < 1.0 < kron_radius(1.001 * a_ms)
    # mean-square stability implies stability of the mean (the mean-field recursion)
    assert a_ms <= staleness_threshold(mean) + 1e-9


def test_mean_square_bad_input() -> None:
    with pytest.raises(ValueError, match="second"):
        staleness_threshold_ms([0.5, 0.5], np.eye(3) / 3)
    with pytest.raises(ValueError, match="update/staleness"):
        staleness_moments(np.array([0, 1]), np.array([0]))


def test_mean_square_gramian_criterion_matches_dense_operator() -> None:
    """The Stein-equation criterion (module docstring) and the dense eigenvalues of
    E[A (x) A] give the same threshold on random profiles (5 staleness values)."""
    rng = np.random.default_rng(7)
    profiles = rng.dirichlet(np.ones(5), size=4)
    pi = rng.dirichlet(np.ones(4))
    mean = pi @ profiles
    second = (profiles * pi[:, None]).T @ profiles
    a_g = staleness_threshold_ms(mean, second, method="gramian")
    a_d = staleness_threshold_ms(mean, second, method="dense")
    assert a_g == pytest.approx(a_d, abs=1e-8)


def test_mean_square_on_geometric_staleness_does_not_need_arpack() -> None:
    """The input on which the former ARPACK path raised ArpackNoConvergence: geometric(1/4)
    staleness truncated at 40, one gradient per update (E[w w^T] = diag(q)). Oracle: the
    spectral radius of the dense 1681 x 1681 matrix E[A (x) A] crosses 1 at the threshold.
    E[A (x) A] acts on vec(X) as X -> E[A X A^T], which maps symmetric matrices to symmetric
    ones and positive semidefinite ones to positive semidefinite ones; so its spectral radius is
    an eigenvalue with a positive semidefinite eigenvector (Krein-Rutman), and it is the
    radius of its restriction to the 861 coordinates of a symmetric matrix (derived here; the
    dense eigenvalues of the 1681 x 1681 matrix agree to 1e-15 on this input, at three times
    the cost)."""
    q = 0.25 * 0.75 ** np.arange(41)
    q /= q.sum()
    a_ms = staleness_threshold_ms(q, np.diag(q))
    n = 41
    upper = np.triu_indices(n)
    k, k_swapped = upper[0] * n + upper[1], upper[1] * n + upper[0]
    widen = np.zeros((n * n, k.size))  # vec(X) from the upper triangle of a symmetric X
    widen[k, np.arange(k.size)] = 1.0
    widen[k_swapped, np.arange(k.size)] = 1.0

    def radius(a: float) -> float:
        mats = [delay_companion(np.eye(n)[s], a) for s in range(n)]
        m = sum(p * np.kron(x, x) for p, x in zip(q, mats, strict=True))
        return float(np.abs(np.linalg.eigvals((m @ widen)[k])).max())

    assert radius(0.995 * a_ms) < 1.0 < radius(1.005 * a_ms)


def _naive_log_growth(update, staleness, weights, a: float) -> float:
    """Direct loop, no rescaling (short sequences only)."""
    horizon = int(max(update)) + 1
    x = [1.0]
    for u in range(horizon):
        idx = [i for i in range(len(update)) if update[i] == u]
        d = sum(weights[i] * x[u - staleness[i]] for i in idx) / max(len(idx), 1)
        x.append(x[u] - a * d)
    return float(np.log(abs(x[horizon])))


def test_schedule_growth_matches_direct_loop() -> None:
    rng = np.random.default_rng(11)
    counts = rng.integers(0, 4, size=60)  # 0..3 gradients per update (0: x unchanged)
    counts[-1] = 1
    update = np.repeat(np.arange(60), counts)
    staleness = np.array([rng.integers(0, min(u, 6) + 1) for u in update])
    weights = 1.0 / np.maximum(staleness, 1)
    for w in (None, weights):
        ww = np.ones(update.size) if w is None else w
        for a in (0.1, 0.7, 1.9):
            got = schedule_growth(update, staleness, a, weights=w)
            assert got == pytest.approx(_naive_log_growth(update, staleness, ww, a), abs=1e-9)


def test_schedule_growth_rescales_instead_of_overflowing() -> None:
    # x_{t+1} = (1 - a) x_t with a = 3: log|x_T| = T log 2, far beyond float range for T = 5000
    update = np.arange(5000)
    got = schedule_growth(update, np.zeros(5000, dtype=int), np.array([3.0, 0.5]))
    np.testing.assert_allclose(got, [5000 * np.log(2.0), 5000 * np.log(0.5)], rtol=1e-9)


def test_schedule_threshold_on_constant_delay_converges_to_closed_form() -> None:
    """A sequence with fixed lag tau (lag min(u, tau) at the start) is the fixed-delay recursion;
    tau = 0: |1 - a|^T >= 1 iff a >= 2 exactly. tau > 0: near a*, |x_T| ~ C |z(a)|^T with
    |z(a)| - 1 ~ k (a - a*), so the finite-T crossing is a* + O(1/T) (bound 10 a* / T)."""
    for tau, horizon in [(0, 300), (1, 1000), (3, 1000), (3, 8000), (6, 8000)]:
        update = np.arange(horizon)
        a = schedule_threshold(update, np.minimum(update, tau), tol=1e-10)
        exact = delayed_gd_threshold(tau)
        assert abs(a - exact) <= (1e-9 if tau == 0 else 10 * exact / horizon), (tau, horizon, a)


def test_schedule_threshold_is_the_first_growth() -> None:
    rng = np.random.default_rng(2)
    update = np.arange(400)
    staleness = np.minimum(update, rng.geometric(0.3, size=400) - 1)
    a = schedule_threshold(update, staleness, tol=1e-7)
    scan = np.linspace(0.01, a - 1e-6, 300)
    assert np.all(schedule_growth(update, staleness, scan) < 0)
    assert schedule_growth(update, staleness, a + 1e-6) >= 0
    # weights 1/2 on every gradient: the same recursion with a / 2
    halved = schedule_threshold(update, staleness, weights=np.full(400, 0.5), tol=1e-7)
    assert halved == pytest.approx(2 * a, abs=3e-7)


def test_schedule_threshold_bad_input() -> None:
    with pytest.raises(ValueError, match="update/staleness"):
        schedule_threshold(np.array([0, 1]), np.array([0]))
    with pytest.raises(ValueError, match="staleness"):
        schedule_threshold(np.array([0, 1]), np.array([0, 2]))
    with pytest.raises(ValueError, match="staleness"):
        schedule_threshold(np.array([0, 1]), np.array([0, -1]))
    with pytest.raises(ValueError, match="weights"):
        schedule_threshold(np.array([0, 1]), np.array([0, 1]), weights=[1.0])
    with pytest.raises(ValueError, match="horizon"):
        schedule_threshold(np.array([0, 1]), np.array([0, 1]), horizon=0)
    with pytest.raises(ValueError, match="tol"):
        schedule_threshold(np.array([0, 1]), np.array([0, 1]), tol=0.0)
    with pytest.raises(ValueError, match="method"):
        staleness_threshold_ms([0.5, 0.5], np.full((2, 2), 0.25), method="arpack")
    with pytest.raises(ValueError, match="method"):
        staleness_threshold_ms(np.ones(51) / 51, np.full((51, 51), 51.0**-2), method="dense")
