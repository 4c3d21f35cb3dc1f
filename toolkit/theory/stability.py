"""Stability of EASGD, EAMSGD and round-robin ADMM on the 1-D quadratic f(x) = h x^2 / 2.

Source: Zhang, Choromanska, LeCun, "Deep learning with Elastic Averaging SGD", NIPS 2015
(arXiv 1412.6651). One convention for every function here, the paper's symbols:

=========  ==================================================================================
symbol     meaning
=========  ==================================================================================
p          number of workers
eta        local learning rate
h          curvature of f(x) = h x^2 / 2 (the maps depend on eta and h only through eta h)
rho        elastic coefficient (ADMM: the penalty of the augmented Lagrangian)
alpha      eta rho, the moving rate of a local variable towards the centre (Sec. 3, Eqs. (5)-(6))
beta       p alpha, the moving rate of the centre (derived, never an argument)
delta      EAMSGD's Nesterov momentum (Sec. 3.2, Algorithm 2), the argument ``momentum``
sigma2     variance of the gradient noise: worker i sees h x_i - xi_i, E xi_i = 0, Var = sigma2
=========  ==================================================================================

Every public function takes keyword-only ``eta``, ``alpha``, ``p``, with ``h = 1``,
``momentum = 0`` and ``sigma2`` where they apply, vectorised (broadcast) over ``eta``, ``alpha``
and ``momentum``. ``alpha`` rather than rho is the argument because EASGD(n, tau, alpha) fixes it
while the learning rate varies; pass ``alpha=eta * rho`` to fix rho instead. The sympy
derivations use the symbols ``eta_h`` (= eta h), ``alpha``, ``delta``, ``p``.

Functions by map (one-line formulas; the derivations, the paper's example and the checks are in
docs/theory.md#easgd-eamsgd-and-round-robin-admm):

* synchronous EASGD (Sec. 3, Eqs. (5)-(6)): x_i <- x_i - eta h x_i - alpha (x_i - c),
  c <- c + alpha sum_i (x_i - c); stable iff eta h > 0, 0 < p alpha < 2 and
  (2 - eta h)(2 - p alpha) > 2 alpha (supplement, Lemma 7.1 and Eq. (17)): ``easgd_*``;
* EAMSGD (Sec. 3.2, Algorithm 2): v_i <- delta v_i - eta h (x_i + delta v_i),
  x_i <- x_i + v_i - alpha (x_i - c): ``momentum`` > 0;
* round-robin EASGD (Sec. 4, Eqs. (12)-(13)), one worker l = t mod p meets the centre per step;
  the paper's condition 0 < eta h < 2, 0 < alpha < (4 - 2 eta h) / (4 - eta h) (exact for odd
  p, only sufficient for even p): ``easgd_round_robin_*``;
* round-robin ADMM (Sec. 4, Eqs. (9)-(11), linearised with a 1/(2 eta) proximal term, lambda
  scaled by 1/rho), state (lambda_1..lambda_p, x_1..x_p, c): ``admm_round_robin_*``;
* the centre's stationary variance (supplement, Lemma 7.1, Eq. (16), t -> infinity; derived here
  from the discrete Lyapunov equation of the mean mode): :func:`easgd_center_variance`.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from toolkit.checks import ConfigError, check_array, check_int, check_positive
from toolkit.limits import check_memory
from toolkit.theory.search import first_crossing

if TYPE_CHECKING:  # sympy is imported lazily so that `import toolkit.theory` stays fast
    import sympy as sp

__all__ = [
    "admm_round_robin_matrix",
    "admm_round_robin_spectral_radius",
    "admm_round_robin_symbolic",
    "easgd_center_variance",
    "easgd_center_variance_symbolic",
    "easgd_iterate",
    "easgd_max_eta",
    "easgd_round_robin_matrix",
    "easgd_round_robin_simple_condition",
    "easgd_round_robin_spectral_radius",
    "easgd_round_robin_symbolic",
    "easgd_spectral_radius",
    "easgd_stable_region",
    "easgd_symbolic_blocks",
    "easgd_symbolic_eigenvalues",
    "easgd_symbolic_matrix",
    "easgd_sync_eigenvalues",
    "easgd_sync_matrix",
    "symbols",
]


def symbols() -> dict[str, sp.Symbol]:
    """The sympy symbols of the derivations: eta_h, alpha, delta, p (real)."""
    import sympy as sp

    names = ("eta_h", "alpha", "delta", "p")
    return dict(zip(names, sp.symbols(" ".join(names), real=True), strict=True))


# ----------------------------------------------------------------------------- validation
def _eta_h(eta: object, h: float) -> np.ndarray:
    return check_array("eta", eta, low=0) * check_positive("h", h)


def _momentum(value: object) -> np.ndarray:
    arr = check_array("momentum", value, low=0)
    if np.any(arr >= 1):
        raise ConfigError("momentum", f"momentum must lie in [0, 1), got {value!r}")
    return arr


# ----------------------------------------------------------------------------- sympy derivations
def easgd_symbolic_matrix(*, p: int, momentum: bool = False) -> sp.Matrix:
    """Full state matrix of synchronous EASGD (or EAMSGD) for a concrete p, in the symbols
    ``eta_h``, ``alpha`` (and ``delta``). State order: x_1..x_p, [v_1..v_p,] c."""
    import sympy as sp

    S = symbols()
    p = check_int("p", p, 1)
    a, al = S["eta_h"], S["alpha"]
    size = 2 * p + 1 if momentum else p + 1
    c = size - 1
    m = sp.zeros(size, size)
    g = S["delta"] * (1 - a)  # v' = delta (1 - eta_h) v - eta_h x ; x' = x + v' - alpha (x - c)
    for i in range(p):
        m[i, i] = 1 - a - al
        m[i, c] = al
        m[c, i] = al
        if momentum:
            m[p + i, i] = -a
            m[p + i, p + i] = g
            m[i, p + i] = g
    m[c, c] = 1 - p * al
    return m


def easgd_symbolic_blocks(*, momentum: bool = False) -> tuple[sp.Matrix, sp.Matrix]:
    """(mean-mode block, difference-mode block) with p symbolic: mean mode (y = mean x_i
    [, w = mean v_i], c), difference mode (x_i - x_j [, v_i - v_j]). The full matrix's
    characteristic polynomial is ``charpoly(mean) * charpoly(diff)**(p-1)``."""
    import sympy as sp

    S = symbols()
    a, al, p = S["eta_h"], S["alpha"], S["p"]
    if not momentum:
        return sp.Matrix([[1 - a - al, al], [p * al, 1 - p * al]]), sp.Matrix([[1 - a - al]])
    g = S["delta"] * (1 - a)
    mean = sp.Matrix([[1 - a - al, g, al], [-a, g, 0], [p * al, 0, 1 - p * al]])
    return mean, sp.Matrix([[1 - a - al, g], [-a, g]])


def easgd_symbolic_eigenvalues() -> dict[str, list[sp.Expr]]:
    """Closed-form eigenvalues of synchronous EASGD (p symbolic): ``{"mean": [l+, l-],
    "difference": [1 - eta_h - alpha]}``, l+- the roots of the mean block's characteristic
    polynomial."""
    import sympy as sp

    mean, diff = easgd_symbolic_blocks()
    lam = sp.symbols("lambda")
    roots = sp.solve(sp.Eq(mean.charpoly(lam).as_expr(), 0), lam)
    return {"mean": [sp.simplify(r) for r in roots], "difference": [diff[0, 0]]}


def easgd_round_robin_symbolic(*, p: int) -> sp.Matrix:
    """One round F_p ... F_1 of round-robin EASGD in symbols ``eta_h``, ``alpha``; state
    (x_1..x_p, c)."""
    import sympy as sp

    S = symbols()
    p = check_int("p", p, 1)
    total = sp.eye(p + 1)
    for l in range(p):
        f = sp.eye(p + 1)
        f[l, l] = 1 - S["eta_h"] - S["alpha"]
        f[l, p] = f[p, l] = S["alpha"]
        f[p, p] = 1 - S["alpha"]
        total = f * total
    return total


def admm_round_robin_symbolic(*, p: int) -> sp.Matrix:
    """One round of round-robin ADMM in symbols ``eta_h``, ``alpha`` (= eta rho); state
    (lambda_1..lambda_p, x_1..x_p, c). The update is in
    docs/theory.md#easgd-eamsgd-and-round-robin-admm."""
    import sympy as sp

    S = symbols()
    p = check_int("p", p, 1)
    a, al = S["eta_h"], S["alpha"]
    n = 2 * p + 1
    total = sp.eye(n)
    for l in range(p):
        lam_up, x_up, c_up = sp.eye(n), sp.eye(n), sp.eye(n)
        lam_up[l, p + l], lam_up[l, 2 * p] = -1, 1
        x_up[p + l, p + l] = (1 - a) / (1 + al)
        x_up[p + l, l] = x_up[p + l, 2 * p] = al / (1 + al)
        c_up[2 * p, 2 * p] = 0
        for i in range(p):
            c_up[2 * p, i], c_up[2 * p, p + i] = sp.Rational(-1, p), sp.Rational(1, p)
        total = c_up * x_up * lam_up * total
    return total


@lru_cache(maxsize=1)
def easgd_center_variance_symbolic() -> sp.Expr:
    """Stationary variance of the centre of synchronous EASGD, from the discrete Lyapunov
    equation S = A S A^T + Q of the mean mode (derived here): the centre depends only on the mean
    mode (y, c), driven by the mean noise eta mean_i xi_i of variance eta^2 sigma2 / p:
    A = the mean block, Q = diag(eta^2 sigma2 / p, 0). Symbols: eta_h, alpha, p, h, sigma2."""
    import sympy as sp

    S = symbols()
    h, s2 = sp.symbols("h sigma2", positive=True)
    a, _ = easgd_symbolic_blocks()
    s11, s12, s22 = sp.symbols("s11 s12 s22")
    s = sp.Matrix([[s11, s12], [s12, s22]])
    q = sp.Matrix([[(S["eta_h"] / h) ** 2 * s2 / S["p"], 0], [0, 0]])
    eq = s - a * s * a.T - q
    sol = sp.solve([eq[0, 0], eq[0, 1], eq[1, 1]], [s11, s12, s22], dict=True)[0]
    return sp.factor(sp.simplify(sol[s22]))


# ----------------------------------------------------------------------------- synchronous
def easgd_center_variance(
    *, eta: object, alpha: object, p: int, h: float = 1.0, sigma2: float = 1.0
) -> np.ndarray:
    """Asymptotic variance of the centre of synchronous EASGD, with a = eta h and
    beta = p alpha (:func:`easgd_center_variance_symbolic`; the paper's Eq. (16) as
    t -> infinity; derived in docs/theory.md, "Centre variance")::

        Var(c) = beta eta sigma2 / (p h) (2 - a - beta - alpha + a beta)
                 / ((a + beta + alpha - a beta) ((2 - a)(2 - beta) - 2 alpha))

    Finite exactly on the stability region; ``inf`` outside it."""
    p = check_int("p", p, 1)
    h = check_positive("h", h)
    sigma2 = check_positive("sigma2", sigma2, allow_zero=True)
    e = check_array("eta", eta, low=0)
    al = check_array("alpha", alpha, low=0)
    a, b = e * h, p * al
    num = b * e * sigma2 * (2 - a - b - al + a * b)
    den = p * h * (a + b + al - a * b) * ((2 - a) * (2 - b) - 2 * al)
    with np.errstate(divide="ignore", invalid="ignore"):
        var = num / den
    return np.where(easgd_stable_region(eta=eta, alpha=alpha, p=p, h=h), var, np.inf)


def easgd_sync_matrix(
    *, eta: float, alpha: float, p: int, h: float = 1.0, momentum: float = 0.0
) -> np.ndarray:
    """Explicit numeric state matrix of synchronous EASGD/EAMSGD (size p+1, or 2p+1 with
    momentum); the layout of :func:`easgd_symbolic_matrix`."""
    m = easgd_symbolic_matrix(p=p, momentum=bool(momentum))
    S = symbols()
    a = float(_eta_h(eta, h))
    subs = {S["eta_h"]: a, S["alpha"]: float(alpha), S["delta"]: float(momentum)}
    return np.array(m.subs(subs).evalf(), dtype=float)


def easgd_sync_eigenvalues(
    *, eta: object, alpha: object, p: int, h: float = 1.0, momentum: object = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """(mean-mode eigenvalues, difference-mode eigenvalues), vectorised: arrays of shape
    ``broadcast + (2,)`` and ``broadcast + (1,)`` (``(3,)``/``(2,)`` with momentum). Without
    momentum the closed form; with momentum numpy's batched ``eigvals`` of the stacked 3x3 blocks.
    For p = 1 there is no difference mode (empty last axis)."""
    p = check_int("p", p, 1)
    a, al, d = np.broadcast_arrays(
        _eta_h(eta, h), check_array("alpha", alpha, low=0), _momentum(momentum)
    )
    b = p * al
    if not np.any(d):
        tr = 2 - a - b - al
        det = (1 - a) * (1 - b) - al
        disc = np.sqrt((tr * tr / 4 - det).astype(complex))
        mean = np.stack([tr / 2 + disc, tr / 2 - disc], axis=-1)
        diff = (1 - a - al)[..., None].astype(complex)
    else:
        g = d * (1 - a)
        zero = np.zeros_like(a)
        rows = [[1 - a - al, g, al], [-a, g, zero], [b, zero, 1 - b]]
        mean = np.linalg.eigvals(np.stack([np.stack(r, -1) for r in rows], -2))
        tr = 1 - a - al + g
        det = (1 - a - al) * g + a * g
        disc = np.sqrt((tr * tr / 4 - det).astype(complex))
        diff = np.stack([tr / 2 + disc, tr / 2 - disc], axis=-1)
    if p == 1:
        diff = diff[..., :0]
    return mean, diff


def easgd_spectral_radius(
    *, eta: object, alpha: object, p: int, h: float = 1.0, momentum: object = 0.0
) -> np.ndarray:
    """Spectral radius of synchronous EASGD (EAMSGD when ``momentum`` > 0) on f = h x^2 / 2,
    vectorised over eta, alpha and momentum; stable iff < 1. Closed form of the reduced blocks
    (mean and difference modes, docs/theory.md): no loop over points."""
    mean, diff = easgd_sync_eigenvalues(eta=eta, alpha=alpha, p=p, h=h, momentum=momentum)
    r = np.abs(mean).max(axis=-1)
    if diff.shape[-1]:
        r = np.maximum(r, np.abs(diff).max(axis=-1))
    return r[()] if r.ndim == 0 else r


def easgd_max_eta(*, alpha: float, p: int, h: float = 1.0, momentum: float = 0.0) -> float:
    """Largest learning rate for which synchronous EASGD (EAMSGD) with this alpha is stable: the
    stable set in eta is an interval (0, eta*). Without momentum, from the exact region,
    eta* h = 2 - 2 alpha / (2 - p alpha) (0 when p alpha >= 2); with momentum, the first crossing
    of radius 1 (:func:`~toolkit.theory.search.first_crossing`, to 1e-12)."""
    p = check_int("p", p, 1)
    h = check_positive("h", h)
    al = float(check_array("alpha", alpha, low=0))
    d = float(_momentum(momentum))
    b = p * al
    if d == 0.0:
        if b <= 0 or b >= 2:
            return 0.0
        return max(0.0, 2.0 - 2.0 * al / (2.0 - b)) / h
    if easgd_spectral_radius(eta=1e-9, alpha=al, p=p, momentum=d) >= 1:
        return 0.0

    def radius(a: np.ndarray) -> np.ndarray:
        return easgd_spectral_radius(eta=a, alpha=al, p=p, momentum=d)

    return first_crossing(radius, 4.0, level=1.0, grid=800, tol=1e-12) / h


def easgd_stable_region(*, eta: object, alpha: object, p: int, h: float = 1.0) -> np.ndarray:
    """Exact stability region of synchronous EASGD (the paper's supplement, Lemma 7.1, Eq. (17))::

    eta h > 0,  0 < p alpha < 2,  (2 - eta h)(2 - p alpha) > 2 alpha."""
    p = check_int("p", p, 1)
    a = _eta_h(eta, h)
    al = check_array("alpha", alpha, low=0)
    b = p * al
    return (a > 0) & (b > 0) & (b < 2) & ((2 - a) * (2 - b) > 2 * al)


# ----------------------------------------------------------------------------- round robin
def easgd_round_robin_simple_condition(*, eta: object, alpha: object, h: float = 1.0) -> np.ndarray:
    """The paper's stability condition for round-robin EASGD (Sec. 4; exact for odd p, only
    sufficient for even p)::

    0 < eta h < 2  and  0 < alpha < (4 - 2 eta h) / (4 - eta h)."""
    a = _eta_h(eta, h)
    al = check_array("alpha", alpha, low=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = (4 - 2 * a) / (4 - a)
    return (a > 0) & (a < 2) & (al > 0) & (al < bound)


def _check_stacks(shape: tuple[int, ...], n: int, copies: int) -> None:
    """Refuse grids whose ``copies`` stacks of n x n matrices exceed the memory limit."""
    size = math.prod(shape)
    what = f"{copies} stacks of {size} {n}x{n} matrices (the grid of eta and alpha)"
    check_memory("eta", what, 8.0 * copies * size * n * n)


def _stack(shape: tuple[int, ...], n: int) -> np.ndarray:
    return np.broadcast_to(np.eye(n), (*shape, n, n)).copy()


def easgd_round_robin_matrix(*, eta: object, alpha: object, p: int, h: float = 1.0) -> np.ndarray:
    """Stacked matrices of one round-robin EASGD round, shape ``broadcast + (p+1, p+1)``."""
    p = check_int("p", p, 1)
    a, al = np.broadcast_arrays(_eta_h(eta, h), check_array("alpha", alpha, low=0))
    _check_stacks(a.shape, p + 1, 4)  # total, f, their product, eigvals' copy
    total = _stack(a.shape, p + 1)
    for l in range(p):  # loop over workers, not grid points
        f = _stack(a.shape, p + 1)
        f[..., l, l] = 1 - a - al
        f[..., l, p] = al
        f[..., p, l] = al
        f[..., p, p] = 1 - al
        total = f @ total
    return total


def admm_round_robin_matrix(*, eta: object, alpha: object, p: int, h: float = 1.0) -> np.ndarray:
    """Stacked matrices of one round-robin ADMM round (alpha = eta rho), shape
    ``broadcast + (2p+1, 2p+1)``; state (lambda_1..lambda_p, x_1..x_p, c)."""
    p = check_int("p", p, 1)
    a, r = np.broadcast_arrays(_eta_h(eta, h), check_array("alpha", alpha, low=0))
    n = 2 * p + 1
    _check_stacks(a.shape, n, 6)  # total, three updates, the products' temporaries
    total = _stack(a.shape, n)
    for l in range(p):
        lam_up, x_up, c_up = _stack(a.shape, n), _stack(a.shape, n), _stack(a.shape, n)
        lam_up[..., l, p + l] = -1.0
        lam_up[..., l, 2 * p] = 1.0
        x_up[..., p + l, p + l] = (1 - a) / (1 + r)
        x_up[..., p + l, l] = r / (1 + r)
        x_up[..., p + l, 2 * p] = r / (1 + r)
        c_up[..., 2 * p, 2 * p] = 0.0
        c_up[..., 2 * p, :p] = -1.0 / p
        c_up[..., 2 * p, p : 2 * p] = 1.0 / p
        total = c_up @ x_up @ lam_up @ total
    return total


def _radius(mats: np.ndarray, p: int, per_step: bool) -> np.ndarray:
    r = np.abs(np.linalg.eigvals(mats)).max(axis=-1)
    if per_step:
        r = r ** (1.0 / p)
    return r[()] if r.ndim == 0 else r


def easgd_round_robin_spectral_radius(
    *, eta: object, alpha: object, p: int, h: float = 1.0, per_step: bool = False
) -> np.ndarray:
    """Spectral radius of one round (F_p ... F_1) of round-robin EASGD, vectorised (batched
    ``eigvals`` on stacked matrices). ``per_step=True``: its p-th root. Stable iff < 1."""
    return _radius(easgd_round_robin_matrix(eta=eta, alpha=alpha, p=p, h=h), p, per_step)


def admm_round_robin_spectral_radius(
    *, eta: object, alpha: object, p: int, h: float = 1.0, per_step: bool = False
) -> np.ndarray:
    """Spectral radius of one round of round-robin ADMM (module docstring; alpha = eta rho),
    vectorised. Stable iff < 1."""
    return _radius(admm_round_robin_matrix(eta=eta, alpha=alpha, p=p, h=h), p, per_step)


# ----------------------------------------------------------------------------- iteration
def easgd_iterate(
    *,
    eta: float,
    alpha: float,
    p: int,
    steps: int,
    x0: object,
    c0: float = 0.0,
    h: float = 1.0,
    momentum: float = 0.0,
    sigma2: float = 0.0,
    replicas: int = 1,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Iterate synchronous EASGD/EAMSGD directly (numpy, vectorised over ``replicas``), worker i
    seeing the gradient h x_i - xi_i with xi_i ~ N(0, sigma2) drawn afresh each step. Returns
    (centre trajectory of shape (steps + 1, replicas), final worker states (replicas, p))."""
    p = check_int("p", p, 1)
    steps = check_int("steps", steps, 0)
    rng = np.random.default_rng(check_int("seed", seed, 0))
    a = float(_eta_h(eta, h))
    noise_sd = float(eta) * np.sqrt(check_positive("sigma2", sigma2, allow_zero=True))
    x = np.broadcast_to(np.asarray(x0, dtype=float), (replicas, p)).copy()
    v = np.zeros_like(x)
    c = np.full(replicas, float(c0))
    centre = np.empty((steps + 1, replicas))
    centre[0] = c
    for t in range(steps):
        noise = noise_sd * rng.standard_normal((replicas, p)) if noise_sd else 0.0
        v_new = momentum * v - a * (x + momentum * v)
        x_new = x + v_new - alpha * (x - c[:, None]) + noise
        c = c + alpha * (x - c[:, None]).sum(axis=1)
        x, v = x_new, v_new
        centre[t + 1] = c
    return centre, x
