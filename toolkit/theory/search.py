"""The first crossing of a level: where a spectral radius first reaches 1, or a growth first
reaches 0, as a learning rate grows. A grid scan finds the first grid point at or above the
level (doubling the range until one is), and :func:`scipy.optimize.brentq` refines the bracket
(``refine="brentq"``, for continuous f); for an f that may oscillate within a bracket (the
log-growth of a recursion along a realised staleness sequence, whose oscillating terms cross the
level repeatedly), nested grid scans keep the first crossing they see (``refine="scan"``)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.optimize import brentq

from toolkit.checks import check_choice, check_int, check_positive

__all__ = ["first_crossing"]

_BIG = 1e300  # values are clipped here, so that an overflow (inf) still brackets for brentq


def first_crossing(
    f: Callable[[np.ndarray], np.ndarray],
    hi: float,
    *,
    level: float = 0.0,
    grid: int = 400,
    tol: float = 1e-10,
    doublings: int = 60,
    refine: str = "brentq",
) -> float:
    """Smallest x > 0 with f(x) >= ``level``, to absolute accuracy ``tol``: ``f`` (vectorised
    over a 1-D array) is scanned on ``grid`` points of (0, hi], hi doubled until some point
    reaches the level; the bracket (previous point, first point) is refined by brentq or by
    nested scans (``refine``, module docstring). A first grid point that already reaches the
    level is rescanned on (0, that point]."""
    hi = check_positive("hi", hi)
    grid = check_int("grid", grid, 2)
    tol = check_positive("tol", tol)
    check_choice("refine", refine, ("brentq", "scan"))

    def g(x: float) -> float:
        return float(np.clip(f(np.array([x]))[0] - level, -_BIG, _BIG))

    lo = 0.0
    for _ in range(doublings):
        x = np.linspace(lo, hi, grid + 1)[1:]
        above = np.asarray(f(x)) >= level
        if not above.any():
            lo, hi = hi, 2.0 * hi
            continue
        k = int(np.argmax(above))
        if k == 0 and lo == 0.0 and x[0] > tol:  # the crossing lies below the first point
            hi = float(x[0])
            continue
        a, b = (float(x[k - 1]) if k else lo), float(x[k])
        if refine == "scan":
            return _scan(f, level, a, b, grid, tol)
        if g(b) == 0.0 or b - a <= tol:
            return b if g(b) == 0.0 else 0.5 * (a + b)
        return float(brentq(g, a, b, xtol=tol))
    raise RuntimeError(f"hi: f stays below {level} up to x = {hi}")


def _scan(f, level: float, lo: float, hi: float, grid: int, tol: float) -> float:
    """Refine a bracket (f(lo) < level <= f(hi)) by nested grid scans to width ``tol``."""
    while hi - lo > tol:
        x = np.linspace(lo, hi, grid + 1)[1:-1]
        above = np.asarray(f(x)) >= level
        if above.any():
            k = int(np.argmax(above))
            lo, hi = (float(x[k - 1]) if k else lo), float(x[k])
        else:
            lo = float(x[-1])
    return 0.5 * (lo + hi)
