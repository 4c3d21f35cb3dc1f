"""Staleness bounds and rules from the literature, with their assumptions and how far each was
checked.

* Zhang, Gupta, Lian, Liu, "Staleness-aware Async-SGD", IJCAI 2016, Sec. 4.3: alpha = alpha_0 /
  tau (:func:`staleness_aware_lr`).
* Mitliagkas, Zhang, Hadjis, Re, "Asynchrony begets Momentum", arXiv 1605.09774, Theorem 5: with
  M workers and exponential step times the implicit momentum is 1 - 1/M
  (:func:`implicit_momentum`).
* Lian, Huang, Li, Liu, "Asynchronous Parallel Stochastic Gradient for Nonconvex Optimization",
  NIPS 2015: the abstract states the O(1 / sqrt K) ergodic rate and linear speedup while the
  number of workers is bounded by sqrt K. The theorem's exact constants could not be read; the
  two functions built on them (:func:`lian_stepsize_bound`, :func:`lian_max_staleness`) follow
  the usual form of that condition, are checked only for their algebra, and say so.
* :func:`delayed_lr_necessary` is derived here (docs/theory.md#fixed-delay-derived-here).
"""

from __future__ import annotations

import numpy as np

from toolkit.checks import check_array, check_int, check_positive
from toolkit.theory.delay import delayed_gd_threshold

__all__ = [
    "delayed_lr_necessary",
    "implicit_momentum",
    "lian_max_staleness",
    "lian_stepsize_bound",
    "staleness_aware_lr",
]


def delayed_lr_necessary(L: float, tau: int) -> float:
    """Largest constant learning rate for which gradient descent with a fixed delay tau is stable
    on *every* L-smooth function: the quadratic f = L x^2 / 2 is L-smooth, so
    eta < 2 sin(pi / (2 (2 tau + 1))) / L is necessary (and exact for that quadratic;
    :func:`toolkit.theory.delay.delayed_gd_threshold`). ~ pi / ((2 tau + 1) L) for large tau,
    the same order as the eta <= 1 / (L (tau + 1)) style sufficient conditions in the literature.
    """
    return delayed_gd_threshold(tau) / check_positive("L", L)


def lian_stepsize_bound(L: float, T: int, M: int = 1) -> float:
    """Largest constant step gamma satisfying the step-size condition of Lian, Huang, Li, Liu,
    "Asynchronous Parallel Stochastic Gradient for Nonconvex Optimization", NIPS 2015, Theorem 1
    (AsySG-con), in the form::

        L M gamma + 2 L^2 M^2 T gamma * sum_{kappa=1}^{T} gamma <= 1
        => L M gamma + 2 L^2 M^2 T^2 gamma^2 <= 1
        => gamma <= (sqrt(1 + 8 T^2) - 1) / (4 L M T^2)   (T > 0);  1 / (L M)  (T = 0)

    Assumptions: f L-smooth (possibly nonconvex), unbiased stochastic gradients with bounded
    variance, staleness bounded by T, each update the *sum* of M stochastic gradients.
    Only the abstract could be checked (O(1/sqrt K), up to sqrt K workers); the constants above
    are not verified against the theorem.
    """
    L = check_positive("L", L)
    T = check_int("T", T, 0)
    M = check_int("M", M, 1)
    if T == 0:
        return 1.0 / (L * M)
    return (np.sqrt(1.0 + 8.0 * T * T) - 1.0) / (4.0 * L * M * T * T)


def lian_max_staleness(K: int, sigma2: float, L: float, f_gap: float, M: int = 1) -> int:
    """Largest staleness T for which Lian et al. (NIPS 2015), Corollary 2, in the form below, gives
    the O(1 / sqrt(M K)) ergodic rate (hence linear speedup) with
    gamma = sqrt(f_gap / (M L K sigma2)): it needs K >= 4 M L f_gap (T + 1)^2 / sigma2, i.e.::

        T <= sqrt(K sigma2 / (4 M L f_gap)) - 1      (T = O(sqrt K))

    ``f_gap`` = f(x_1) - f*, ``sigma2`` the gradient-noise variance. Returns -1 when even T = 0
    is not covered. The constants are not verified against the corollary (only the paper's
    abstract, which bounds the number of workers by O(sqrt K), could be checked).
    """
    K = check_int("K", K, 1)
    M = check_int("M", M, 1)
    bound = (
        np.sqrt(
            K
            * check_positive("sigma2", sigma2)
            / (4 * M * check_positive("L", L) * check_positive("f_gap", f_gap))
        )
        - 1.0
    )
    return int(np.floor(bound))


def staleness_aware_lr(lr: float, staleness: object) -> np.ndarray:
    """Staleness-aware learning rate of Zhang, Gupta, Lian, Liu, "Staleness-aware Async-SGD for
    Distributed Deep Learning", IJCAI 2016: alpha = alpha_0 / tau for a gradient of staleness
    tau (their tau >= 1); staleness 0 (a fresh gradient) keeps alpha_0 here. Vectorised."""
    lr = check_positive("lr", lr)
    s = check_array("staleness", staleness, low=0)
    return lr / np.maximum(s, 1.0)


def implicit_momentum(n: int) -> float:
    """Implicit momentum of asynchronous SGD with n workers, 1 - 1/n: Mitliagkas, Zhang,
    Hadjis, Re, "Asynchrony begets Momentum, with an Application to Deep Learning",
    arXiv 1605.09774 (2016), Theorem 5: under their queueing model (M workers with exponential
    step times, so the staleness is geometric) E[w_{t+1} - w_t] = (1 - 1/M) E[w_t - w_{t-1}] -
    (alpha / M) E grad f(w_t), an implicit momentum 1 - 1/M."""
    n = check_int("n", n, 1)
    return 1.0 - 1.0 / n
