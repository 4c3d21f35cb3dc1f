"""Order statistics of any step-time law by quadrature of the quantile function, and of an
Empirical trace by its exact finite sum; both integrate the Beta(k, n - k + 1) density in
z = logit(u) (the method and its accuracy: docs/theory.md#order-statistics)."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from scipy import special

from toolkit.limits import check_memory, check_work

__all__ = ["empirical_moments", "quadrature_moments"]

# Quadrature settings (see toolkit.theory.order_stats).
_DROP = 34.0  # window: log-density of logit(Beta) within this many nats of its maximum
_RATIO = 0.55  # initial step <= _RATIO * sd of logit(Beta), rounded down to a power of 2
_HMAX = 0.25  # and never above this (Q o expit may vary on the unit scale)
_STEP_TOL = 1e-7  # step-h vs step-2h agreement, relative: the step-h error is then ~1e-12 or
# less for smooth integrands (exponential convergence: err(h) ~ err(2h)^2 or better), and at most
# ~_STEP_TOL / 3 for a merely twice-differentiable one (O(h^2))
_TAIL_TOL = 1e-11  # tail remainder beyond the right edge, relative to the value
_ZCAP = 700.0  # |logit(u)| <= 700: u and 1 - u stay above 1e-304
_MAX_PASSES = 12
_CHUNK = 1_000_000  # nodes per vectorised pass (bounds memory; larger is no faster)


def empirical_moments(values: np.ndarray, k: np.ndarray, n: np.ndarray, want_var: bool):
    """E and Var of X_(k:n) under resampling from sorted values: masses
    P(X_(k:n) = x_(j)) = I_{j/m}(k, n-k+1) - I_{(j-1)/m}(k, n-k+1), summed over the j where the
    Beta(k, n-k+1) density in logit(u) is within _DROP nats of its peak (the rest is < 1e-14)."""
    m = values.size
    a, c = k, n - k + 1.0
    zl, zr = _window(a, c)
    jl = np.clip(np.floor(m * special.expit(zl)), 1, m)
    jr = np.clip(np.ceil(m * special.expit(zr)), 1, m)
    jl = np.minimum(jl, jr)
    mean = np.empty(a.size)
    var = np.empty(a.size) if want_var else None
    counts = (jr - jl + 2).astype(np.int64)  # j = jl - 1 .. jr
    for sl in _chunks(counts):
        cnt = counts[sl]
        seg, pos = _ragged(cnt)
        j = jl[sl][seg] - 1.0 + pos
        cdf = special.betainc(a[sl][seg], c[sl][seg], j / m)
        first = pos == 0
        mass = np.where(first, 0.0, cdf - np.roll(cdf, 1))
        x = values[np.maximum(j.astype(np.int64) - 1, 0)]
        total = np.bincount(seg, mass, minlength=cnt.size)
        mu = np.bincount(seg, mass * x, minlength=cnt.size) / total
        mean[sl] = mu
        if want_var:
            var[sl] = np.bincount(seg, mass * (x - mu[seg]) ** 2, minlength=cnt.size) / total
    return mean, var


def _softplus(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))


def _window(a: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounds [zl, zr] in z = logit(u) outside which the log-density of logit(Beta(a, c)),
    f(z) = a z - (a + c) softplus(z) + const, is more than _DROP below its maximum at
    z* = log(a / c). Newton on the convex drop function from the Gaussian guess: after one step
    the iterates lie outside the exact bounds and move monotonically towards them."""
    n1 = a + c
    zs = np.log(a / c)
    sd = np.sqrt(1.0 / a + 1.0 / c)
    fs = a * zs - n1 * _softplus(zs)
    bounds = []
    for sign in (-1.0, 1.0):
        z = zs + sign * math.sqrt(2 * _DROP) * sd
        for _ in range(8):
            drop = fs - (a * z - n1 * _softplus(z)) - _DROP
            slope = n1 * special.expit(z) - a
            z = z - drop / slope
        bounds.append(np.clip(z, -_ZCAP, _ZCAP))
    return bounds[0], bounds[1]


def _ragged(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Segment id and position within the segment for a ragged array of the given lengths."""
    seg = np.repeat(np.arange(counts.size), counts)
    starts = np.cumsum(counts) - counts
    pos = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(starts, counts)
    return seg, pos


def _chunks(counts: np.ndarray):
    """Slices of consecutive pairs whose total node count stays near _CHUNK."""
    csum = np.cumsum(counts)
    start = 0
    while start < counts.size:
        base = csum[start - 1] if start else 0
        end = max(int(np.searchsorted(csum, base + _CHUNK, side="right")), start + 1)
        yield slice(start, end)
        start = end


def _quantile_at(dist: Any, z: np.ndarray) -> np.ndarray:
    """F^{-1}(expit(z)), through isf(expit(-z)) for z > 0 so that u -> 1 keeps its precision."""
    q = np.empty(z.shape)
    lower = z <= 0
    with np.errstate(over="ignore"):  # a heavy tail may overflow to inf: the moment is infinite
        if np.any(lower):
            q[lower] = dist.ppf(special.expit(z[lower]))
        if np.any(~lower):
            q[~lower] = dist.isf(special.expit(-z[~lower]))
    return q


def _trapezoid_pass(dist, a, c, fs, h, il, ir, center):
    """One vectorised trapezoid pass for pairs with nodes z = i h, il <= i <= ir (see
    :func:`_trapezoid_sums`). The quantile function is evaluated once per distinct node: all
    steps are powers of 2, so every node lies on the finest grid z = g * min(h)."""
    counts = (ir - il + 1).astype(np.int64)
    seg, pos = _ragged(counts)
    i = np.repeat(il.astype(np.int64), counts) + pos
    hmin = h.min()
    shift = np.round(np.log2(h / hmin)).astype(np.int64)
    gi = i << np.repeat(shift, counts)
    gmin = int(gi.min())
    gi -= gmin
    span = int(gi.max()) + 1
    if span <= 4 * gi.size + 1_000_000:  # mark-and-compact: a sort-free unique
        present = np.zeros(span, dtype=bool)
        present[gi] = True
        uniq = np.flatnonzero(present)
        lookup = np.empty(span, dtype=np.int64)
        lookup[uniq] = np.arange(uniq.size)
        where = lookup[gi]
    else:
        uniq, where = np.unique(gi, return_inverse=True)
    znodes = (uniq + gmin) * hmin
    q = _quantile_at(dist, znodes)
    return _trapezoid_sums(seg, i, counts, where, znodes, q, a, a + c, fs, center)


def _trapezoid_sums(seg, i, counts, where, znodes, qnodes, a, n1, fs, center):
    """Self-normalised trapezoid sums sum p g / sum p of g = q (center None) or g = (q - center)^2,
    p the density of logit(Beta(a, n1 - a)) relative to its peak exp(fs), with step h and with
    step 2h (even i), and the geometric tail beyond the last node (from the logs of the last two
    terms: p underflows where a heavy tail may still matter). ``where`` maps nodes to the tables
    ``znodes`` (z) and ``qnodes`` (F^{-1}(expit(z)))."""
    npair = counts.size
    z = znodes[where]
    if n1.max() <= 1e5:
        logp = np.repeat(a, counts) * z
        logp -= np.repeat(n1, counts) * _softplus(znodes)[where]
        logp -= np.repeat(fs, counts)
    else:  # large n: a d - n1 log((1 + e^z) / (1 + e^z*)), d = z - z*, without cancellation:
        # the ratio is 1 + u* expm1(d) = (1 - u*) + u* e^d with u* = a / n1, 1 - u* = c / n1
        delta = z - np.repeat(np.log(a / (n1 - a)), counts)
        ua = np.repeat(a / n1, counts)
        x = ua * np.expm1(delta)
        with np.errstate(divide="ignore"):
            log_ratio = np.where(
                x > -0.5,
                np.log1p(np.maximum(x, -0.5)),
                np.log(np.repeat((n1 - a) / n1, counts) + ua * np.exp(np.minimum(delta, 0.0))),
            )
        logp = np.repeat(a, counts) * delta - np.repeat(n1, counts) * log_ratio
    p = np.exp(logp)
    q = qnodes[where]
    with np.errstate(invalid="ignore", over="ignore"):
        g = q if center is None else (q - np.repeat(center, counts)) ** 2
        pg = p * g
    if not np.all(np.isfinite(qnodes)):
        pg[np.isnan(pg)] = 0.0  # 0 * inf where p underflowed: left to the tail check
    # one bincount per quantity gives the sums over even and odd nodes of every pair
    bins = 2 * seg + (i & 1)
    s0 = np.bincount(bins, p, minlength=2 * npair).reshape(npair, 2)
    s1 = np.bincount(bins, pg, minlength=2 * npair).reshape(npair, 2)
    value = s1.sum(axis=1) / s0.sum(axis=1)
    value2 = s1[:, 0] / s0[:, 0]
    last = np.cumsum(counts) - 1
    ends = np.concatenate([last - 1, last])
    with np.errstate(divide="ignore"):
        lg = logp[ends] + np.log(g[ends])
    return value, value2, _tail(lg[npair:], lg[:npair]) / s0.sum(axis=1)


def _tail(log_g1: np.ndarray, log_g0: np.ndarray) -> np.ndarray:
    """g1 (rho + rho^2 + ...) with rho = g1 / g0, from log g1 and log g0: the geometric
    extrapolation of a trapezoid sum beyond its last node g1 (inf when the terms do not decay)."""
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        rho = np.exp(log_g1 - log_g0)
        out = np.where(rho < 1, np.exp(log_g1) * rho / (1 - rho), np.inf)
    return np.where(log_g1 == -np.inf, 0.0, out)


def _adaptive(dist, a, c, center):
    """E[X_(k:n)] (center None) or E[(X_(k:n) - center)^2] by trapezoid passes in z = logit(u):
    halve the step where the step-2h value differs by more than _STEP_TOL, push the right edge out
    where the tail remainder exceeds _TAIL_TOL (up to u = 1 - 1e-304, then extrapolate the tail
    geometrically; a tail that does not decay gives inf)."""
    zs = np.log(a / c)
    sd = np.sqrt(1.0 / a + 1.0 / c)
    fs = a * zs - (a + c) * _softplus(zs)
    zl, zr = _window(a, c)
    h = 2.0 ** np.floor(np.log2(np.minimum(_HMAX, _RATIO * sd)))
    value = np.full(a.size, np.nan)
    err = np.zeros(a.size)
    todo = np.arange(a.size)
    if center is not None:  # an infinite mean has an infinite variance
        value[~np.isfinite(center)] = np.inf
        todo = todo[np.isfinite(center)]
    for _ in range(_MAX_PASSES):
        if todo.size == 0:
            break
        il = np.floor(zl[todo] / h[todo])
        ir = np.maximum(np.ceil(zr[todo] / h[todo]), il + 8)
        counts = (ir - il + 1).astype(np.int64)
        v1, v2, tail = (np.empty(todo.size) for _ in range(3))
        for sl in _chunks(counts):
            idx = todo[sl]
            cen = None if center is None else center[idx]
            v1[sl], v2[sl], tail[sl] = _trapezoid_pass(
                dist, a[idx], c[idx], fs[idx], h[idx], il[sl], ir[sl], cen
            )
        with np.errstate(invalid="ignore", divide="ignore"):
            step_err = np.abs(v1 - v2) / np.abs(v1)
            tail_err = tail / np.abs(v1)
        step_err = np.where(np.isfinite(step_err), step_err, 0.0)
        tail_err = np.where(tail > 0, np.nan_to_num(tail_err, nan=np.inf), 0.0)
        need_tail = (tail_err > _TAIL_TOL) & (zr[todo] < _ZCAP)
        need_step = step_err > _STEP_TOL
        value[todo] = v1 + tail  # the latest estimate, with its tail extrapolation
        err[todo] = step_err
        grow = todo[need_tail]
        zr[grow] = np.minimum(zs[grow] + 2.0 * (zr[grow] - zs[grow]) + 1.0, _ZCAP)
        h[todo[need_step]] /= 2.0
        todo = todo[need_step | need_tail]
    if todo.size:
        warnings.warn(
            f"order statistics: quadrature did not converge (step rtol {_STEP_TOL:g}) for "
            f"{todo.size} (k, n) pairs (estimated relative error up to "
            f"{np.nanmax(err[todo]):.1e}); the quantile function of {dist.dist.name} may not "
            "be smooth",
            RuntimeWarning,
            stacklevel=4,
        )
    return value


def quadrature_moments(dist: Any, k: np.ndarray, n: np.ndarray, want_var: bool):
    """(mean, variance or None) of X_(k:n) by the quantile quadrature (docs/theory.md)."""
    what = f"the quadrature of {k.size} order statistics"
    check_memory("k", what, 200.0 * k.size)  # about 15 float arrays over the (k, n) pairs
    check_work("k", what, 2e3 * k.size)  # a few hundred points per pair, a few passes
    a, c = k.astype(float), n - k + 1.0
    mean = _adaptive(dist, a, c, None)
    return mean, (_adaptive(dist, a, c, mean) if want_var else None)
