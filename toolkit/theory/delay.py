"""Stability thresholds of gradient descent with delayed (stale) gradients on f = h x^2 / 2:
the largest stable a = eta h of x_{t+1} = x_t - a sum_s w_t[s] x_{t-s}.

* fixed delay tau: a*(tau) = 2 sin(pi / (2 (2 tau + 1))) (derived here; Levin & May 1976 for
  the delay difference equation), :func:`delayed_gd_threshold`;
* along a Schedule's realised staleness sequence, exact for replaying it on a noiseless
  quadratic (derived here): :func:`schedule_threshold`;
* i.i.d. staleness, mean field (the recursion of E[x_t]): :func:`staleness_threshold`;
* i.i.d. staleness, mean square (derived here): rho(A_m) < 1 and a^2 <Sigma, G> < 1 with
  G = A_m G A_m^T + e_1 e_1^T, a Stein-equation criterion: :func:`staleness_threshold_ms`.

Derivations, the proof of the mean-square criterion and the measured gap between the models and
the realised sequence: docs/theory.md#delayed-and-stale-gradients.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "delay_companion",
    "delayed_gd_radius",
    "delayed_gd_threshold",
    "delayed_gd_threshold_numeric",
    "schedule_growth",
    "schedule_threshold",
    "staleness_moments",
    "staleness_pmf",
    "staleness_threshold",
    "staleness_threshold_ms",
]
from toolkit.checks import ConfigError, check_array, check_int
from toolkit.limits import check_memory, check_work
from toolkit.theory.search import first_crossing


def _check_probs(probs: object) -> np.ndarray:
    q = check_array("probs", probs, low=0)
    if q.ndim != 1 or q.size == 0:
        raise ConfigError("probs", "probs must be a non-empty 1-D array over staleness 0..S")
    total = q.sum()
    if not np.isclose(total, 1.0, rtol=0, atol=1e-9):
        raise ConfigError("probs", f"probs must sum to 1, got {total}")
    return q


def delay_companion(probs: object, eta_h: object) -> np.ndarray:
    """Companion matrix of x_{t+1} = x_t - eta_h sum_s probs[s] x_{t-s}, state
    (x_t, ..., x_{t-S}); stacked over array ``eta_h`` (shape ``eta_h.shape + (S+1, S+1)``)."""
    q = _check_probs(probs)
    a = np.asarray(eta_h, dtype=float)
    n = q.size
    m = np.zeros((*a.shape, n, n))
    m[..., 0, :] = -a[..., None] * q
    m[..., 0, 0] += 1.0
    if n > 1:
        idx = np.arange(1, n)
        m[..., idx, idx - 1] = 1.0
    return m


def delayed_gd_radius(tau: int, eta_h: object) -> np.ndarray:
    """Spectral radius of the fixed-delay recursion's companion matrix (vectorised in eta_h)."""
    tau = check_int("tau", tau, 0)
    q = np.zeros(tau + 1)
    q[tau] = 1.0
    return np.abs(np.linalg.eigvals(delay_companion(q, eta_h))).max(axis=-1)


def delayed_gd_threshold(tau: int) -> float:
    """Largest eta*h for which x_{t+1} = x_t - eta h x_{t-tau} is stable (supremum of the open
    stable interval): 2 sin(pi / (2 (2 tau + 1))) (exact; derived in
    docs/theory.md#fixed-delay-derived-here)."""
    tau = check_int("tau", tau, 0)
    return float(2.0 * np.sin(np.pi / (2.0 * (2 * tau + 1))))


def delayed_gd_threshold_numeric(tau: int, tol: float = 1e-10, grid: int = 400) -> float:
    """The same threshold found numerically (companion-matrix radius, scan + bisection)."""
    tau = check_int("tau", tau, 0)
    return first_crossing(lambda a: delayed_gd_radius(tau, a), 2.5, level=1.0, grid=grid, tol=tol)


def staleness_threshold(probs: object, tol: float = 1e-10, grid: int = 400) -> float:
    """Largest eta*h for which the mean-field mixed-staleness recursion
    x_{t+1} = x_t - eta h sum_s probs[s] x_{t-s} is stable (``probs`` over staleness 0..S).

    One point mass at tau gives :func:`delayed_gd_threshold`. Numerical (companion matrix).
    """
    q = _check_probs(probs)
    size, grid = q.size, check_int("grid", grid, 2)
    what = f"{grid} companion matrices of size {size} (staleness 0..{size - 1})"
    check_memory("probs", what, 3 * 8.0 * grid * size * size)  # the stack, eigvals' copies
    check_work("probs", f"the eigenvalues of {what}", 30.0 * grid * size**3)  # ~10 S^3 each
    return first_crossing(
        lambda a: np.abs(np.linalg.eigvals(delay_companion(q, a))).max(axis=-1),
        2.5,
        level=1.0,
        grid=grid,
        tol=tol,
    )


def staleness_pmf(staleness: object, max_staleness: int | None = None) -> np.ndarray:
    """Empirical distribution over staleness 0..S from observed staleness values (e.g. the
    ``staleness`` column of a Schedule's used gradients); a probability vector."""
    s = check_array("staleness", staleness, low=0, integer=True).astype(np.int64)
    if s.size == 0:
        raise ConfigError("staleness", "staleness must hold at least one value")
    counts = np.bincount(s.ravel(), minlength=0 if max_staleness is None else max_staleness + 1)
    return counts / counts.sum()


def staleness_moments(
    update: object, staleness: object, max_staleness: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(E[w], E[w w^T]) of the per-update staleness profile w_u (the fractions of update u's
    gradients with staleness s = 0..S), averaged over updates, from the ``update`` and
    ``staleness`` columns of a Schedule's used gradients."""
    u = np.asarray(update)
    st = check_array("staleness", staleness, low=0, integer=True).astype(np.int64)
    if u.shape != st.shape or u.ndim != 1 or u.size == 0:
        raise ConfigError(
            "staleness", "update/staleness must be 1-D arrays of the same non-zero length"
        )
    big = int(st.max()) if max_staleness is None else int(max_staleness)
    if big < st.max():
        raise ConfigError(
            "max_staleness", f"max_staleness: {big} is below the largest staleness {st.max()}"
        )
    _, inv = np.unique(u, return_inverse=True)
    counts = np.zeros((inv.max() + 1, big + 1))
    np.add.at(counts, (inv, st.astype(np.int64)), 1.0)
    w = counts / counts.sum(axis=1, keepdims=True)
    return w.mean(axis=0), w.T @ w / len(w)


def _ms_operator(mean: np.ndarray, second: np.ndarray, a: float) -> np.ndarray:
    """Dense matrix of P -> E[A P A^T] on vec(P) (row-major): E[A (x) A] = A_m (x) A_m +
    a^2 vec(e e^T) vec(Sigma)^T with A_m = C - a e q^T and Sigma = E[w w^T] - q q^T."""
    n = mean.size
    am = delay_companion(mean, a)
    e = np.zeros(n)
    e[0] = 1.0
    sigma = second - np.outer(mean, mean)
    return np.kron(am, am) + a * a * np.outer(np.outer(e, e).ravel(), sigma.ravel())


def _ms_gramian_index(mean: np.ndarray, second: np.ndarray, a: float) -> float:
    """a^2 <Sigma, G> with G = A_m G A_m^T + e e^T, or inf when rho(A_m) >= 1 (module
    docstring: the recursion is mean-square stable iff this is < 1)."""
    import scipy.linalg

    am = delay_companion(mean, a)
    if np.abs(np.linalg.eigvals(am)).max() >= 1.0:
        return math.inf
    n = mean.size
    ee = np.zeros((n, n))
    ee[0, 0] = 1.0
    gram = scipy.linalg.solve_discrete_lyapunov(am, ee)
    sigma = second - np.outer(mean, mean)
    return float(a * a * np.sum(sigma * gram))


_DENSE_MAX = 2500  # largest (S+1)^2 for method="dense": one eigvals call of that size ~ seconds


def staleness_threshold_ms(
    mean: object, second: object, tol: float = 1e-9, grid: int = 32, method: str = "gramian"
) -> float:
    """Largest eta*h for which the random-staleness recursion is mean-square stable, given the
    profile moments E[w] (``mean``, over staleness 0..S) and E[w w^T] (``second``); see
    :func:`staleness_moments` and docs/theory.md#random-staleness-mean-square-derived-here.

    ``method="gramian"`` (default): the exact criterion rho(A_m) < 1 and a^2 <Sigma, G> < 1
    (module docstring), one Stein solve, O(S^3), per trial a. ``method="dense"``: spectral
    radius of the dense (S+1)^2 x (S+1)^2 matrix E[A (x) A] (allowed for (S+1)^2 <= 2500; a
    cross-check, seconds per trial a at that size). First crossing: ``grid``-point scan of
    (0, 2.5] (doubled until something is unstable), then bisection to ``tol``; at most
    ``grid`` x (number of doublings) + log2(2.5 / (grid tol)) trial values of a.
    """
    q = _check_probs(mean)
    q2 = np.asarray(second, dtype=float)
    if q2.shape != (q.size, q.size):
        raise ConfigError("second", f"second must have shape {(q.size, q.size)}, got {q2.shape}")
    if not np.isclose(q2.sum(), 1.0, atol=1e-9) or np.any(q2 < -1e-15):
        raise ConfigError("second", "second must be a second-moment matrix of probability vectors")
    if method == "gramian":

        def one(x: float) -> float:
            return _ms_gramian_index(q, q2, x)

    elif method == "dense":
        if q.size**2 > _DENSE_MAX:
            raise ConfigError(
                "method",
                f"method: 'dense' needs (S+1)^2 <= {_DENSE_MAX}, got {q.size**2}; "
                "use method='gramian'",
            )

        def one(x: float) -> float:
            return float(np.abs(np.linalg.eigvals(_ms_operator(q, q2, x))).max())

    else:
        raise ConfigError("method", f"method must be 'gramian' or 'dense', got {method!r}")

    def radius(a: np.ndarray) -> np.ndarray:
        return np.array([one(float(x)) for x in np.atleast_1d(a)])

    return first_crossing(radius, 2.5, level=1.0, grid=grid, tol=tol)


# ----------------------------------------------------------------------------- realised schedule
def _schedule_arrays(
    update: object, staleness: object, weights: object, horizon: object
) -> tuple[list[np.ndarray], list[np.ndarray], int, int]:
    """Per update u < horizon: (lags s_g, coefficients weight_g / count_u); horizon; max lag."""
    u = check_array("update", update, low=0, integer=True).astype(np.int64)
    st = check_array("staleness", staleness, low=0, integer=True).astype(np.int64)
    if u.ndim != 1 or u.shape != st.shape or u.size == 0:
        raise ConfigError(
            "staleness", "update/staleness must be 1-D arrays of the same non-zero length"
        )
    if np.any(st > u):
        raise ConfigError("staleness", "staleness must be <= update (a gradient's version is >= 0)")
    if weights is None:
        w = np.ones(u.size)
    else:
        w = check_array("weights", weights, low=0)
        if w.shape != u.shape:
            raise ConfigError(
                "weights", f"weights must have the shape of update {u.shape}, got {w.shape}"
            )
    horizon = check_int("horizon", int(u.max()) + 1 if horizon is None else horizon)
    keep = u < horizon
    u, st, w = u[keep], st[keep], w[keep]
    order = np.argsort(u, kind="stable")
    u, st, w = u[order], st[order], w[order]
    starts = np.searchsorted(u, np.arange(horizon + 1))
    count = np.diff(starts)
    coef = w / np.maximum(count, 1)[u]
    lags = [st[starts[k] : starts[k + 1]] for k in range(horizon)]
    coefs = [coef[starts[k] : starts[k + 1]] for k in range(horizon)]
    return lags, coefs, int(horizon), int(st.max()) if st.size else 0


def _schedule_log_growth(
    lags: list[np.ndarray], coefs: list[np.ndarray], horizon: int, smax: int, a: np.ndarray
) -> np.ndarray:
    """log |x_T| - log |x_0| of x_{u+1} = x_u - a sum_g c_g x_{u - s_g} (x_0 = 1), per a.

    Linear in x, so the window of the last smax + 1 values (all a later update can read) is
    rescaled to max 1 whenever its max leaves [1e-100, 1e100], the scale kept in log form
    (checked at least every 16 updates, and often enough that growth cannot overflow)."""
    a = np.asarray(a, dtype=float)
    x = np.empty((horizon + 1, a.size))
    x[0] = 1.0
    log_scale = np.zeros(a.size)
    bound = 1.0 + a.max() * max((float(c.sum()) for c in coefs), default=0.0)
    # steps between checks: the window grows by at most `bound` per step; stay below 1e300
    every = max(1, min(16, int(200.0 * math.log(10.0) / math.log(max(bound, 1.0 + 1e-12)))))
    for t in range(horizon):
        lag = lags[t]
        if lag.size == 1:
            x[t + 1] = x[t] - (a * coefs[t][0]) * x[t - lag[0]]
        elif lag.size == 0:
            x[t + 1] = x[t]
        else:
            x[t + 1] = x[t] - a * (coefs[t] @ x[t - lag])
        if (t + 1) % every == 0 or t + 1 == horizon:
            lo = max(0, t + 1 - smax)
            big = np.abs(x[lo : t + 2]).max(axis=0)
            big = np.where(
                np.isfinite(big) & ((big > 1e100) | ((big < 1e-100) & (big > 0))), big, 1.0
            )
            x[lo : t + 2] /= big
            log_scale += np.log(big)
    with np.errstate(divide="ignore"):
        out = np.log(np.abs(x[horizon])) + log_scale
    return np.where(np.isnan(out), np.inf, out)


def schedule_growth(
    update: object,
    staleness: object,
    eta_h: object,
    weights: object = None,
    horizon: int | None = None,
) -> np.ndarray:
    """log |x_T / x_0| of the noiseless 1-D recursion along a realised staleness sequence,
    ``x_{u+1} = x_u - eta_h * (1/|G_u|) sum_{g in G_u} weights_g x_{u - s_g}`` (G_u: the used
    gradients of update u), for T = ``horizon`` updates (default: all); vectorised in
    ``eta_h``. Positive or zero means "diverged" in :func:`schedule_threshold`'s sense. Exact
    up to rounding unless |x| falls by more than ~1e200 within 16 updates (then -inf)."""
    lags, coefs, horizon, smax = _schedule_arrays(update, staleness, weights, horizon)
    a = np.atleast_1d(check_array("eta_h", eta_h, low=0))
    out = _schedule_log_growth(lags, coefs, horizon, smax, a.ravel())
    return out.reshape(np.shape(eta_h))


def schedule_threshold(
    update: object,
    staleness: object,
    weights: object = None,
    horizon: int | None = None,
    *,
    tol: float = 1e-6,
    hi: float = 2.5,
    grid: int = 64,
) -> float:
    """Largest a = eta*h for which the noiseless recursion along a *realised* staleness sequence
    does not grow (docs/theory.md#along-a-realised-schedule-derived-here)::

        x_{u+1} = x_u - a (1/|G_u|) sum_{g in G_u} weights_g x_{u - s_g},   x_0 = 1,

    "grows" meaning |x_T| >= |x_0| after T = ``horizon`` updates (default: max(update) + 1, all
    of them; updates with no gradient, e.g. beyond max(update), leave x unchanged) -- the
    criterion of ``toolkit.compare.run_diverges`` (final test loss >= initial).

    ``update``/``staleness``: the columns of a Schedule's used gradients (``Schedule.used``),
    staleness = update - version; ``weights``: per-gradient learning-rate factors (e.g. 1 /
    max(1, s) for replay's staleness="lr"; default 1). Pass only the gradients the update applies
    (after replay's staleness="drop"); an update with none leaves x unchanged.

    Exact for replay of the *same* Schedule on a noiseless quadratic f = h x^2 / 2 (and for the
    top-eigenvector component of a diagonal quadratic started on that eigenvector), no momentum.
    Search (:func:`~toolkit.theory.search.first_crossing`): a ``grid``-point scan of (0, hi]
    (hi doubled until something grows) brackets the first grid value that grows, and nested
    scans refine that bracket to ``tol``. Growth need not be monotone in a (the oscillating modes
    of x_T cross |x_0| repeatedly): this is the first crossing the scans see.
    """
    lags, coefs, horizon, smax = _schedule_arrays(update, staleness, weights, horizon)

    def growth(a: np.ndarray) -> np.ndarray:
        return _schedule_log_growth(lags, coefs, horizon, smax, a)

    return first_crossing(growth, hi, level=0.0, grid=grid, tol=tol, refine="scan")
