"""EASGD / EAMSGD / round-robin ADMM stability: symbolic results checked against explicit
matrices, direct iteration of the recursions, and the paper's round-robin example.

Source: Zhang, Choromanska, LeCun, "Deep learning with Elastic Averaging SGD", NIPS 2015
(arXiv 1412.6651): synchronous EASGD Sec. 3, Eqs. (5)-(6); EAMSGD Algorithm 2; round-robin EASGD
and ADMM Sec. 4, Eqs. (9)-(13), with the condition 0 < eta h < 2, 0 < alpha < (4 - 2 eta h) /
(4 - eta h); the example p = 3, h = 1, eta = 0.001, rho = 2.5 is the ADMM setting of Fig. 1's
caption. Symbols as in toolkit/theory/stability.py (alpha = eta rho, beta = p alpha).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import sympy as sp

from toolkit.theory import easgd_spectral_radius
from toolkit.theory.stability import (
    admm_round_robin_matrix,
    admm_round_robin_spectral_radius,
    admm_round_robin_symbolic,
    easgd_center_variance,
    easgd_center_variance_symbolic,
    easgd_iterate,
    easgd_max_eta,
    easgd_round_robin_matrix,
    easgd_round_robin_simple_condition,
    easgd_round_robin_spectral_radius,
    easgd_round_robin_symbolic,
    easgd_stable_region,
    easgd_symbolic_blocks,
    easgd_symbolic_eigenvalues,
    easgd_symbolic_matrix,
    easgd_sync_eigenvalues,
    easgd_sync_matrix,
    symbols,
)

S = symbols()
RNG = np.random.default_rng(20151207)


def _same_multiset(a: np.ndarray, b: np.ndarray, tol: float = 1e-7) -> bool:
    a, b = np.sort_complex(np.asarray(a, complex)), np.asarray(b, complex)
    used = np.zeros(len(b), bool)
    for z in a:
        d = np.where(used, np.inf, np.abs(b - z))
        k = int(np.argmin(d))
        if d[k] > tol:
            return False
        used[k] = True
    return len(a) == len(b)


# ----------------------------------------------------------------------------- symbolic
@pytest.mark.parametrize("momentum", [False, True])
@pytest.mark.parametrize("p", [1, 2, 3])
def test_charpoly_factorises_into_mean_and_difference_blocks(p: int, momentum: bool) -> None:
    lam = sp.symbols("lam")
    full = easgd_symbolic_matrix(p=p, momentum=momentum).charpoly(lam).as_expr()
    mean, diff = easgd_symbolic_blocks(momentum=momentum)
    mean_c = mean.subs(S["p"], p).charpoly(lam).as_expr()
    diff_c = diff.subs(S["p"], p).charpoly(lam).as_expr()
    assert sp.expand(full - mean_c * diff_c ** (p - 1)) == 0


@pytest.mark.parametrize("p", [1, 2, 5])
def test_closed_form_eigenvalues_match_explicit_matrix(p: int) -> None:
    eig = easgd_symbolic_eigenvalues()
    exprs = [*eig["mean"], *(eig["difference"] * (p - 1))]
    f = sp.lambdify((S["eta_h"], S["alpha"], S["p"]), exprs, modules=[{"sqrt": np.emath.sqrt}])
    for eta, beta in RNG.uniform(0, 2.5, size=(15, 2)):
        alpha = beta / p
        predicted = np.array(f(eta, alpha, p), dtype=complex)
        numeric = np.linalg.eigvals(easgd_sync_matrix(eta=eta, alpha=alpha, p=p))
        assert _same_multiset(numeric, predicted)
        # the vectorised numeric closed form agrees as well
        mean, diff = easgd_sync_eigenvalues(eta=eta, alpha=alpha, p=p)
        assert _same_multiset(numeric, np.concatenate([mean, np.repeat(diff, p - 1)]))


@pytest.mark.parametrize("p", [1, 3, 6])
def test_spectral_radius_matches_full_matrix_with_and_without_momentum(p: int) -> None:
    pts = RNG.uniform([0, 0, 0], [2.5, 2.5, 0.95], size=(20, 3))
    pts[:8, 2] = 0.0
    radius = easgd_spectral_radius(eta=pts[:, 0], alpha=pts[:, 1] / p, p=p, momentum=pts[:, 2])
    for (eta, beta, delta), r in zip(pts, radius, strict=True):
        full = easgd_sync_matrix(eta=eta, alpha=beta / p, p=p, momentum=delta)
        assert r == pytest.approx(np.abs(np.linalg.eigvals(full)).max(), rel=1e-9, abs=1e-12)


def test_h_enters_only_through_eta_h() -> None:
    r1 = easgd_spectral_radius(eta=0.6, alpha=0.1, p=4, h=2.0, momentum=0.3)
    r2 = easgd_spectral_radius(eta=1.2, alpha=0.1, p=4, momentum=0.3)
    assert r1 == pytest.approx(r2, rel=1e-14)
    a = admm_round_robin_spectral_radius(eta=0.01, alpha=0.02, p=3, h=3.0)
    assert a == pytest.approx(admm_round_robin_spectral_radius(eta=0.03, alpha=0.02, p=3))


def test_spectral_radius_broadcasts() -> None:
    eta = np.linspace(0.1, 1.5, 7)[:, None]
    alpha = np.linspace(0.1, 1.5, 5)[None, :] / 4
    r = easgd_spectral_radius(eta=eta, alpha=alpha, p=4)
    assert r.shape == (7, 5)
    assert r[2, 3] == pytest.approx(easgd_spectral_radius(eta=eta[2, 0], alpha=alpha[0, 3], p=4))
    assert np.ndim(easgd_spectral_radius(eta=0.5, alpha=0.1, p=4)) == 0


# ----------------------------------------------------------------------------- direct iteration
@pytest.mark.parametrize("momentum", [0.0, 0.6])
def test_iteration_contracts_inside_and_diverges_outside(momentum: float) -> None:
    p, steps = 4, 400
    pts = RNG.uniform(0, 3.0, size=(300, 2)) / [1, p]
    r = easgd_spectral_radius(eta=pts[:, 0], alpha=pts[:, 1], p=p, momentum=momentum)
    inside = pts[r < 0.95][:6]
    outside = pts[r > 1.05][:6]
    assert len(inside) and len(outside)
    x0 = RNG.normal(size=p)
    for eta, alpha in inside:
        c, x = easgd_iterate(
            eta=eta, alpha=alpha, p=p, steps=steps, x0=x0, c0=1.0, momentum=momentum
        )
        assert abs(c[-1]) + np.abs(x).max() < 1e-6
    for eta, alpha in outside:
        c, x = easgd_iterate(
            eta=eta, alpha=alpha, p=p, steps=steps, x0=x0, c0=1.0, momentum=momentum
        )
        assert abs(c[-1]) + np.abs(x).max() > 1e6


def test_iteration_equals_matrix_power() -> None:
    p, eta, alpha, delta = 3, 0.7, 0.3, 0.4
    x0 = np.array([1.0, -2.0, 0.5])
    c, x = easgd_iterate(eta=eta, alpha=alpha, p=p, steps=25, x0=x0, c0=0.3, momentum=delta)
    m = easgd_sync_matrix(eta=eta, alpha=alpha, p=p, momentum=delta)
    state = np.linalg.matrix_power(m, 25) @ np.concatenate([x0, np.zeros(p), [0.3]])
    np.testing.assert_allclose(state[:p], x[0], rtol=1e-10, atol=1e-12)
    assert state[-1] == pytest.approx(c[-1, 0], rel=1e-10, abs=1e-12)


# ----------------------------------------------------------------------------- region
@pytest.mark.parametrize("p", [1, 2, 4, 16])
def test_exact_region_matches_spectral_radius(p: int) -> None:
    a, b = np.meshgrid(np.linspace(0.0, 3.0, 121), np.linspace(0.0, 3.0, 121))
    r = easgd_spectral_radius(eta=a, alpha=b / p, p=p)
    far = np.abs(r - 1) > 1e-9
    assert np.array_equal(easgd_stable_region(eta=a, alpha=b / p, p=p)[far], (r < 1)[far])


@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_max_eta_is_where_the_radius_reaches_one(momentum: float) -> None:
    for p, alpha, h in [(4, 0.1, 1.0), (8, 0.05, 2.0), (2, 0.3, 0.5)]:
        eta = easgd_max_eta(alpha=alpha, p=p, h=h, momentum=momentum)
        below = easgd_spectral_radius(eta=eta * 0.999, alpha=alpha, p=p, h=h, momentum=momentum)
        above = easgd_spectral_radius(eta=eta * 1.001, alpha=alpha, p=p, h=h, momentum=momentum)
        assert below < 1 < above
    assert easgd_max_eta(alpha=0.5, p=4) == 0.0  # beta = 2: no learning rate is stable


# ----------------------------------------------------------------------------- round robin
def _rr_easgd_iterate(eta_h, alpha, x, c, rounds):
    x = x.copy()
    for _ in range(rounds):
        for l in range(len(x)):
            x[l], c = x[l] - eta_h * x[l] - alpha * (x[l] - c), c + alpha * (x[l] - c)
    return x, c


def _rr_admm_iterate(eta_h, eta_rho, lam, x, c, rounds):
    lam, x, p = lam.copy(), x.copy(), len(x)
    for _ in range(rounds):
        for l in range(p):
            lam[l] = lam[l] - (x[l] - c)
            x[l] = (x[l] - eta_h * x[l] + eta_rho * (lam[l] + c)) / (1 + eta_rho)
            c = np.mean(x - lam)
    return lam, x, c


@pytest.mark.parametrize("p", [1, 2, 3])
def test_round_robin_matrices_match_symbolic_and_iteration(p: int) -> None:
    f_e = sp.lambdify((S["eta_h"], S["alpha"]), easgd_round_robin_symbolic(p=p))
    f_a = sp.lambdify((S["eta_h"], S["alpha"]), admm_round_robin_symbolic(p=p))
    for a, b in RNG.uniform(0, 1.5, size=(5, 2)):
        m_e = easgd_round_robin_matrix(eta=a, alpha=b, p=p)
        m_a = admm_round_robin_matrix(eta=a, alpha=b, p=p)
        np.testing.assert_allclose(m_e, np.array(f_e(a, b), float), atol=1e-12)
        np.testing.assert_allclose(m_a, np.array(f_a(a, b), float), atol=1e-12)
        x0, c0, lam0 = RNG.normal(size=p), RNG.normal(), RNG.normal(size=p)
        x, c = _rr_easgd_iterate(a, b, x0, c0, 3)
        state = np.linalg.matrix_power(m_e, 3) @ np.concatenate([x0, [c0]])
        np.testing.assert_allclose(state, np.concatenate([x, [c]]), atol=1e-10)
        lam, x, c = _rr_admm_iterate(a, b, lam0, x0, c0, 3)
        state = np.linalg.matrix_power(m_a, 3) @ np.concatenate([lam0, x0, [c0]])
        np.testing.assert_allclose(state, np.concatenate([lam, x, [c]]), atol=1e-9)


def test_round_robin_radius_vectorised_and_per_step() -> None:
    a, b = np.meshgrid(np.linspace(0.01, 1, 4), np.linspace(0.01, 1, 3))
    r = easgd_round_robin_spectral_radius(eta=a, alpha=b, p=3)
    r1 = easgd_round_robin_spectral_radius(eta=a, alpha=b, p=3, per_step=True)
    np.testing.assert_allclose(r1**3, r, rtol=1e-12)
    m = easgd_round_robin_matrix(eta=a[1, 2], alpha=b[1, 2], p=3)
    assert r[1, 2] == pytest.approx(np.abs(np.linalg.eigvals(m)).max())


def _rr_grid():
    return np.meshgrid(np.linspace(0.01, 2.5, 125), np.linspace(0.005, 1.5, 150), indexing="ij")


@pytest.mark.parametrize("p", [1, 3, 5, 7])
def test_simple_condition_is_exact_for_odd_p(p: int) -> None:
    a, al = _rr_grid()
    r = easgd_round_robin_spectral_radius(eta=a, alpha=al, p=p)
    cond = easgd_round_robin_simple_condition(eta=a, alpha=al)
    far = np.abs(r - 1) > 1e-9
    assert np.array_equal(cond[far], (r < 1)[far])


@pytest.mark.parametrize("p", [2, 4, 6, 8])
def test_simple_condition_is_only_sufficient_for_even_p(p: int) -> None:
    """For even p the condition implies stability, and the stable region is strictly larger."""
    a, al = _rr_grid()
    r = easgd_round_robin_spectral_radius(eta=a, alpha=al, p=p)
    cond = easgd_round_robin_simple_condition(eta=a, alpha=al)
    assert np.all(r[cond] < 1 + 1e-9)
    assert np.any((r < 1 - 1e-6) & ~cond)


def test_paper_example_admm_unstable_where_easgd_stable() -> None:
    """Zhang et al. 2015, Fig. 1 caption (Sec. 4): p = 3, h = 1, eta = 0.001, rho = 2.5: the
    round-robin ADMM map has spectral radius > 1, EASGD's (alpha = eta rho) < 1."""
    p, eta, rho = 3, 0.001, 2.5
    r_admm = admm_round_robin_spectral_radius(eta=eta, alpha=eta * rho, p=p)
    r_easgd = easgd_round_robin_spectral_radius(eta=eta, alpha=eta * rho, p=p)
    # The radii are 1.000974 (ADMM) and 0.999270 (EASGD): gaps of 9.7e-4 and 7.3e-4 from 1.
    # They are eigenvalue moduli of small (< 10 x 10), well-scaled float64 matrices, accurate to
    # ~1e-13, so a 1e-4 margin cannot be crossed by rounding; the direct iterations below
    # (20000 rounds: 1.000974^20000 ~ 3e8) confirm the sides independently.
    assert r_admm > 1.0 + 1e-4
    assert r_easgd < 1.0 - 1e-4
    assert easgd_round_robin_simple_condition(eta=eta, alpha=eta * rho)
    # direct iteration from the paper's initialisation lambda = 0, x = c = 1000
    lam, x, c = _rr_admm_iterate(eta, eta * rho, np.zeros(p), np.full(p, 1000.0), 1000.0, 20000)
    assert np.abs(np.concatenate([lam, x, [c]])).max() > 1e6
    x, c = _rr_easgd_iterate(eta, eta * rho, np.full(p, 1000.0), 1000.0, 20000)
    assert np.abs(np.concatenate([x, [c]])).max() < 1000.0


# ----------------------------------------------------------------------------- variance
def test_center_variance_closed_form_matches_sympy_and_lyapunov() -> None:
    expr = easgd_center_variance_symbolic()
    h, s2 = sp.symbols("h sigma2", positive=True)
    f = sp.lambdify((S["eta_h"], S["alpha"], S["p"], h, s2), expr)
    checked = 0
    for _ in range(10):
        p = int(RNG.integers(1, 9))
        eta, hh, sigma2 = RNG.uniform(0.05, 0.8), RNG.uniform(0.5, 2.0), RNG.uniform(0.01, 4)
        alpha = RNG.uniform(0.05, 1.5) / p
        if not easgd_stable_region(eta=eta, alpha=alpha, p=p, h=hh):
            continue
        v = easgd_center_variance(eta=eta, alpha=alpha, p=p, h=hh, sigma2=sigma2)
        assert v == pytest.approx(f(eta * hh, alpha, p, hh, sigma2), rel=1e-10)
        a = np.array([[1 - eta * hh - alpha, alpha], [p * alpha, 1 - p * alpha]])
        q = np.diag([eta**2 * sigma2 / p, 0.0])
        assert v == pytest.approx(scipy.linalg.solve_discrete_lyapunov(a, q)[1, 1], rel=1e-9)
        checked += 1
    assert checked >= 5
    assert np.isinf(easgd_center_variance(eta=1.9, alpha=0.95, p=2))


def test_center_variance_matches_simulation() -> None:
    """Monte Carlo: 64 independent chains, each averaged over 4000 steps after burn-in; the
    tolerance is 5 standard errors of the mean over chains (fixed seed)."""
    eta, alpha, p, sigma2 = 0.3, 0.15, 4, 1.0
    theory = easgd_center_variance(eta=eta, alpha=alpha, p=p, sigma2=sigma2)
    c, _ = easgd_iterate(
        eta=eta, alpha=alpha, p=p, steps=5000, x0=np.zeros(p), sigma2=sigma2, replicas=64, seed=7
    )
    per_chain = (c[1000:] ** 2).mean(axis=0)
    se = per_chain.std(ddof=1) / np.sqrt(per_chain.size)
    assert abs(per_chain.mean() - theory) < 5 * se
    assert se < 0.1 * theory  # the check has power


# ----------------------------------------------------------------------------- bad input
def test_bad_input_names_the_argument() -> None:
    with pytest.raises(ValueError, match="p must"):
        easgd_spectral_radius(eta=0.1, alpha=0.1, p=0)
    with pytest.raises(ValueError, match="p must"):
        easgd_spectral_radius(eta=0.1, alpha=0.1, p=2.5)
    with pytest.raises(ValueError, match="eta"):
        easgd_spectral_radius(eta=-0.1, alpha=0.1, p=2)
    with pytest.raises(ValueError, match="alpha"):
        easgd_spectral_radius(eta=0.1, alpha=-0.1, p=2)
    with pytest.raises(ValueError, match="momentum"):
        easgd_spectral_radius(eta=0.1, alpha=0.1, p=2, momentum=1.0)
    with pytest.raises(ValueError, match="h must"):
        easgd_center_variance(eta=0.1, alpha=0.1, p=2, h=0.0)
    with pytest.raises(ValueError, match="sigma2"):
        easgd_center_variance(eta=0.1, alpha=0.1, p=2, sigma2=-1.0)
    with pytest.raises(ValueError, match="p must"):
        admm_round_robin_spectral_radius(eta=0.1, alpha=0.1, p=0)
    with pytest.raises(ValueError, match="alpha"):
        admm_round_robin_spectral_radius(eta=0.1, alpha=-1.0, p=2)
    with pytest.raises(ValueError, match="alpha"):
        easgd_round_robin_spectral_radius(eta=0.1, alpha=-1.0, p=2)
    with pytest.raises(TypeError):
        easgd_spectral_radius(0.1, 0.1, 2)  # keyword-only: one convention, no positional mixups


# ----------------------------------------------------------------------------- plots
def test_region_plot_contour_lies_on_radius_one() -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.contour import ContourSet

    from toolkit.plots import plot_easgd_regions, plot_round_robin_comparison

    fig = plot_easgd_regions(ps=(4,), n=120)
    ax = fig.axes[0]
    paths = [p for c in ax.collections if isinstance(c, ContourSet) for p in c.get_paths()]
    verts = np.concatenate([p.vertices for p in paths if len(p.vertices)])
    verts = verts[(verts[:, 0] > 0.05) & (verts[:, 1] > 0.05)]  # away from the grid edge
    assert len(verts) > 20

    def radius(eta, beta):
        return easgd_spectral_radius(eta=eta, alpha=beta / 4, p=4)

    r = radius(verts[:, 0], verts[:, 1])
    # A contour vertex is linearly interpolated on a grid edge (length h = 2.5 / 120) between
    # two nodes with r on either side of 1, so |r(vertex) - 1| <= h max|dr/ds| over the edge.
    # The slope is taken as |grad r| at the vertex (forward differences), times 2 for its
    # variation within one edge (r is only Lipschitz where the dominant eigenvalue switches).
    # This first-order bound is loose: for smooth r the interpolation error is O(h^2).
    h, eps = 2.5 / 120, 1e-6
    grad_a = (radius(verts[:, 0] + eps, verts[:, 1]) - r) / eps
    grad_b = (radius(verts[:, 0], verts[:, 1] + eps) - r) / eps
    slope = np.hypot(grad_a, grad_b)
    assert np.all(np.abs(r - 1) <= 2 * h * slope + 1e-9)
    fig2 = plot_round_robin_comparison(n=40)
    assert len(fig2.axes) >= 2
