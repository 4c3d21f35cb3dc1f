"""Special sums for the order-statistic closed forms, accurate to a few ulps for any n.

Asymptotic series (Abramowitz & Stegun 6.1.40, 6.3.18, 6.4.12; DLMF 5.11.8) for arguments >= 10;
below that, the exact recurrences Gamma(x + 1) = x Gamma(x) and psi(x + 1) = psi(x) + 1 / x shift
the argument up. Differences are written without cancellation (log1p(k / a), ...), so that
sums over n - k + 1 .. n stay exact for small k and huge n.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

__all__ = ["harmonic_range", "lgamma_second_difference", "stirling_tail"]

_X0 = 10.0  # the series are used from here on
_NTERMS = 24
_BERN = special.bernoulli(_NTERMS)  # B_0..B_24, with B_1 = -1/2


def harmonic_range(a: np.ndarray, n: np.ndarray, order: int) -> np.ndarray:
    """sum_{j=a}^{n} j^-order for float arrays of integers 1 <= a <= n + 1."""
    a = np.asarray(a, dtype=float)
    n = np.asarray(n, dtype=float)
    total = np.zeros(np.broadcast(a, n).shape)
    # direct terms j = a .. min(n, 9)
    for j in range(1, int(_X0)):
        total += np.where((a <= j) & (j <= n), float(j) ** -order, 0.0)
    lo = np.maximum(a, _X0)
    big = n >= lo
    if np.any(big):
        x, y = lo[big], n[big] + 1.0  # sum_{j=x}^{y-1}
        if order == 1:  # psi(y) - psi(x) = log(y/x) + R(y) - R(x), R(t) = -1/(2t) - ...
            s = np.log1p((y - x) / x) + (y - x) / (2.0 * x * y)
            for j in range(1, _NTERMS // 2 + 1):
                s -= _BERN[2 * j] / (2 * j) * (y ** (-2 * j) - x ** (-2 * j))
        else:  # psi_1(x) - psi_1(y), psi_1(t) = 1/t + 1/(2t^2) + sum B_2j / t^(2j+1)
            s = (y - x) / (x * y) + (y - x) * (y + x) / (2.0 * x * x * y * y)
            for j in range(1, _NTERMS // 2 + 1):
                s += _BERN[2 * j] * (x ** (-2 * j - 1) - y ** (-2 * j - 1))
        total[big] += s
    return total


def stirling_tail(x: np.ndarray, s: float) -> np.ndarray:
    """T(x, s) = lnGamma(x + s) - lnGamma(x) - s ln x: the exact recurrence below max(_X0, 8|s|),
    above it the Stirling series with Bernoulli polynomials (A&S 6.1.40 generalised; DLMF 5.11.8)
    sum_k (-1)^k (B_k(s) - B_k) / (k (k-1) x^(k-1))."""
    x = np.asarray(x, dtype=float)
    start = max(_X0, 8.0 * abs(s))
    shift = np.maximum(np.ceil(start - x), 0.0)
    out = np.zeros(x.shape)
    # T(x, s) = T(x + N, s) + s log1p(N / x) - sum_{i<N} log1p(s / (x + i))
    for i in range(int(shift.max(initial=0.0))):
        m = i < shift
        out -= np.where(m, np.log1p(np.where(m, s / (x + i), 0.0)), 0.0)
    out += s * np.log1p(shift / x)
    inv = 1.0 / (x + shift)
    power = np.ones(x.shape)
    for k in range(2, _NTERMS + 1):
        power = power * inv
        poly = sum(math.comb(k, p) * _BERN[k - p] * s**p for p in range(1, k + 1))
        out += ((-1) ** k * poly / (k * (k - 1))) * power
    return out


def lgamma_second_difference(x: np.ndarray, h: float) -> np.ndarray:
    """D(x, h) = lnGamma(x - 2h) - 2 lnGamma(x - h) + lnGamma(x) > 0, without cancellation:
    D(x) = D(x + 1) + log1p(h^2 / (x (x - 2h))) below the asymptotic range, and above it
    sum_k (-1)^k [sum_{p>=2} C(k,p) B_{k-p} (-h)^p (2^p - 2)] / (k (k-1) x^(k-1))."""
    x = np.asarray(x, dtype=float)
    start = max(_X0, 16.0 * h)
    shift = np.maximum(np.ceil(start - x), 0.0)
    out = np.zeros(x.shape)
    for i in range(int(shift.max(initial=0.0))):
        m = i < shift
        xi = x + i
        out += np.where(m, np.log1p(np.where(m, h * h / (xi * (xi - 2 * h)), 0.0)), 0.0)
    inv = 1.0 / (x + shift)
    power = np.ones(x.shape)
    for k in range(2, _NTERMS + 1):
        power = power * inv
        coef = sum(
            math.comb(k, p) * _BERN[k - p] * (-h) ** p * (2.0**p - 2.0) for p in range(2, k + 1)
        )
        out += ((-1) ** k * coef / (k * (k - 1))) * power
    return out
