"""Sympy derivation of the order-statistic closed forms (tests and documentation only).

Each moment is integrated from the order-statistic density
f_(k:n)(x) = n! / ((k-1)! (n-k)!) F(x)^(k-1) (1 - F(x))^(n-k) f(x) (David & Nagaraja, *Order
Statistics*, eq. 2.1.6) and put next to the general formula the fast path uses
(:mod:`toolkit.theory.order_closed`).
"""

from __future__ import annotations

from typing import Any

from toolkit.checks import check_int

__all__ = ["derive_closed_forms"]


def _row(dist: str, k: int, n: int, moment: str, derived, formula, symbols=()) -> dict[str, Any]:
    return {
        "dist": dist,
        "k": k,
        "n": n,
        "moment": moment,
        "derived": derived,
        "formula": formula,
        "symbols": symbols,
    }


def _moments(sp, x, dens, lo, hi, conds: str = "piecewise"):
    """(E[X], E[X^2]) of the density ``dens`` on (lo, hi)."""
    return tuple(sp.integrate(x**m * dens, (x, lo, hi), conds=conds) for m in (1, 2))


N_MAX = 8


def derive_closed_forms(n_max: int = 4) -> list[dict[str, Any]]:
    """Derive E[X_(k:n)] and Var[X_(k:n)] with sympy for every 1 <= k <= n <= n_max, for the
    standard exponential, uniform and Pareto(b) laws (module docstring), and state the general
    formulas of the fast path as sympy expressions.

    Returns rows ``{"dist", "k", "n", "moment", "derived", "formula", "symbols"}``, where
    ``derived`` is the integral and ``formula`` the general closed form at this (k, n), in the
    standardised variable (loc = 0, scale = 1; X = loc + scale Y moves E and Var by
    loc + scale E and scale^2 Var). Pareto expressions are in the shape symbol ``b``.
    ``n_max`` is at most :data:`N_MAX`: the n_max (n_max + 1) / 2 symbolic integrals per law and
    moment take about 25 s in all at n_max = 8 on a 2-core machine and grow faster than n_max^2.
    """
    import sympy as sp

    n_max = check_int("n_max", n_max, 1, N_MAX)
    x = sp.Symbol("x", positive=True)
    b = sp.Symbol("b", positive=True)
    laws = {  # (cdf, pdf, lower, upper)
        "expon": (1 - sp.exp(-x), sp.exp(-x), 0, sp.oo),
        "uniform": (x, sp.Integer(1), 0, 1),
        # Pareto(b): F = 1 - y^-b on y >= 1; the integral converges iff b (n - k + 1) > m, and
        # conds="none" returns its value there (the fast path returns inf outside)
        "pareto": (1 - x ** (-b), b * x ** (-b - 1), 1, sp.oo),
    }
    rows: list[dict[str, Any]] = []
    for n in range(1, n_max + 1):
        for k in range(1, n + 1):
            const = sp.factorial(n) / (sp.factorial(k - 1) * sp.factorial(n - k))
            js = range(n - k + 1, n + 1)
            pareto = [
                sp.Mul(*[sp.Integer(j) / (j - sp.Integer(m) / b) for j in js]) for m in (1, 2)
            ]
            formulas = {
                "expon": (
                    sum(sp.Rational(1, j) for j in js),
                    sum(sp.Rational(1, j**2) for j in js),
                ),
                "uniform": (
                    sp.Rational(k, n + 1),
                    sp.Rational(k * (n - k + 1), (n + 1) ** 2 * (n + 2)),
                ),
                "pareto": (pareto[0], pareto[1] - pareto[0] ** 2),
            }
            for name, (cdf, pdf, lo, hi) in laws.items():
                dens = sp.expand(const * cdf ** (k - 1) * (1 - cdf) ** (n - k) * pdf)
                symbols = (b,) if name == "pareto" else ()
                conds = "none" if name == "pareto" else "piecewise"
                m1, m2 = _moments(sp, x, dens, lo, hi, conds)
                var = m2 - m1**2 if name == "pareto" else sp.simplify(m2 - m1**2)
                rows.append(_row(name, k, n, "mean", m1, formulas[name][0], symbols))
                rows.append(_row(name, k, n, "var", var, formulas[name][1], symbols))
    return rows
