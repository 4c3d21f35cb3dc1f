"""The error-runtime trade-off of Dutta, Joshi, Ghosh, Dube, Nagpurkar, "Slow and Stale Gradients
Can Win the Race: Error-Runtime Trade-offs in Distributed SGD", AISTATS 2018 (PMLR v84:803-812).

P learners, i.i.d. step times X. The paper's four variants (Sec. 2.3) are toolkit schemes
(:data:`VARIANTS`; definitions in :mod:`toolkit.schemes.values`), so their runtime per iteration
is :func:`toolkit.theory.step_time_estimate` of that scheme: K-sync ``Backup(K, P - K)``,
K-batch-sync ``KBatchSync(P, K)``, K-async ``KAsync(P, K)``, K-batch-async ``KBatchAsync(P, K)``.
Their exponential closed forms (Sec. 4.1, Lemma 4, Supp. 7.3.1) are the tests' oracles.

Error floors with a fixed learning rate (Sec. 4): Lemma 2 for K-sync and Theorem 3 for K-async,
for F L-smooth and c-strongly convex (2c (F(w) - F*) <= ||grad F(w)||^2) and unbiased mini-batch
gradients of size m with E||g - grad F||^2 <= sigma^2 / m + (M_G / m) ||grad F||^2 (eqs. (5)-(8)).
:func:`tradeoff` tabulates runtime and error floor over K (docs/theory.md#error-runtime-trade-off).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

from toolkit.checks import ConfigError, check_choice, check_int, check_interval, check_positive
from toolkit.models.comm import CommModel
from toolkit.schemes import Backup, KAsync, KBatchAsync, KBatchSync, Scheme
from toolkit.theory.step_time import StepTime, step_time_estimate

__all__ = [
    "VARIANTS",
    "error_bound",
    "kasync_error_floor",
    "ksync_error_floor",
    "runtime",
    "tradeoff",
    "variant_scheme",
]

VARIANTS: dict[str, Callable[[int, int], Scheme]] = {
    "k-sync": lambda p, k: Backup(k, p - k),
    "k-batch-sync": lambda p, k: KBatchSync(p, k),
    "k-async": lambda p, k: KAsync(p, k),
    "k-batch-async": lambda p, k: KBatchAsync(p, k),
}


def variant_scheme(variant: str, p: int, k: int) -> Scheme:
    """The toolkit scheme of Dutta et al.'s ``variant`` with P = ``p`` learners and K = ``k``."""
    check_choice("variant", str(variant).lower(), VARIANTS)
    p = check_int("P", p, 1)
    return VARIANTS[str(variant).lower()](p, check_int("K", k, 1, p))


def runtime(
    variant: str,
    p: int,
    k: int,
    compute: object,
    comm: CommModel | None = None,
    *,
    samples: int = 20_000,
    seed: int = 0,
) -> StepTime:
    """Expected runtime per iteration of one of :data:`VARIANTS` with P learners and K."""
    scheme = variant_scheme(variant, p, k)
    return step_time_estimate(scheme, compute, comm, samples=samples, seed=seed)


def ksync_error_floor(
    eta: float,
    lipschitz: float,
    convexity: float,
    sigma2: float,
    k: int,
    m: int,
    m_g: float | None = None,
) -> float:
    """Error floor of K-sync SGD with a fixed learning rate (Dutta et al. 2018, Lemma 2)::

        E[F(w_J)] - F* <= eta L sigma^2 / (2 c K m) + (1 - eta c)^J (F(w_0) - F* - floor),

    so the floor is ``eta L sigma^2 / (2 c K m)``, under eta <= 1 / (2 L (M_G / (K m) + 1)),
    checked when ``m_g`` (M_G) is given; eta c <= 1 is always checked. K-batch-sync averages K
    fresh mini-batch gradients of one version too, so the same bound applies to it (derived
    here: the proof of Lemma 2 uses only that the K gradients are unbiased and independent)."""
    eta = check_positive("eta", eta)
    lipschitz = check_positive("lipschitz", lipschitz)
    convexity = check_positive("convexity", convexity)
    sigma2 = check_positive("sigma2", sigma2, allow_zero=True)
    k, m = check_int("k", k, 1), check_int("m", m, 1)
    if not eta * convexity <= 1.0:
        raise ConfigError(
            "eta", f"eta * convexity must be <= 1 for the bound to contract, got {eta * convexity}"
        )
    if m_g is not None:
        limit = 1.0 / (2.0 * lipschitz * (check_positive("m_g", m_g, True) / (k * m) + 1.0))
        if eta > limit:
            raise ConfigError(
                "eta", f"eta: Lemma 2 needs eta <= 1 / (2 L (M_G / (K m) + 1)) = {limit:g}"
            )
    return eta * lipschitz * sigma2 / (2.0 * convexity * k * m)


def kasync_error_floor(
    eta: float,
    lipschitz: float,
    convexity: float,
    sigma2: float,
    k: int,
    m: int,
    gamma: float,
    p0: float,
) -> float:
    """Error floor of K-async SGD with a fixed learning rate (Dutta et al. 2018, Theorem 3):
    with gamma <= 1 bounding E||grad F(w_j) - grad F(w_tau(l,j))||^2 <= gamma E||grad F(w_j)||^2
    and p0 a lower bound on the probability that a gradient is fresh (p0 = 1/P for exponential
    step times, Supp. Lemma 8), gamma' = 1 - gamma + p0 / 2 and the floor is
    ``eta L sigma^2 / (2 c gamma' K m)`` (contraction 1 - eta c gamma' per iteration)."""
    gamma = check_interval("gamma", gamma, 0.0, 1.0)
    p0 = check_interval("p0", p0, 0.0, 1.0)
    gp = 1.0 - gamma + p0 / 2.0
    if gp <= 0:
        raise ConfigError("gamma", f"gamma, p0: gamma' = 1 - gamma + p0/2 must be > 0, got {gp}")
    return ksync_error_floor(eta, lipschitz, convexity, sigma2, k, m) / gp


def error_bound(
    iterations: object, floor: float, eta: float, convexity: float, gap0: float, rate: float = 1.0
) -> np.ndarray | float:
    """The bound's trajectory floor + (1 - eta rate c)^J (gap0 - floor) after J iterations
    (gap0 = F(w_0) - F*; rate = 1 for K-sync, gamma' for K-async). Pass J = t / E[T] to plot the
    error bound against wall-clock time t, as in Dutta et al.'s figures."""
    j = np.asarray(iterations, dtype=float)
    if np.any(j < 0):
        raise ConfigError("iterations", "iterations must be >= 0")
    contraction = 1.0 - float(eta) * float(rate) * float(convexity)
    if not 0.0 <= contraction < 1.0:
        raise ConfigError(
            "eta", f"1 - eta * rate * convexity must lie in [0, 1), got {contraction}"
        )
    out = floor + contraction**j * (float(gap0) - floor)
    return float(out) if out.ndim == 0 else out


def tradeoff(
    p: int,
    compute: object,
    *,
    eta: float,
    lipschitz: float,
    convexity: float,
    sigma2: float,
    m: int,
    ks: Iterable[int] | None = None,
    variants: Iterable[str] = tuple(VARIANTS),
    gamma: float | None = None,
    p0: float | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Runtime per iteration and error floor over K = ``ks`` (default 1..P) for each variant.

    Columns ``K, variant, scheme, runtime, runtime_se, error_floor, method``. The error floor is
    :func:`ksync_error_floor` for K-sync and K-batch-sync; for K-async it is
    :func:`kasync_error_floor` when ``gamma`` and ``p0`` are given and NaN otherwise, and the same
    expression is reported for K-batch-async (an assumption: Theorem 3 is stated for K-async,
    and its conditions concern only the staleness of the gradients). Plot
    ``runtime`` against ``error_floor`` per variant for the trade-off curve."""
    p = check_int("P", p, 1)
    ks = list(range(1, p + 1)) if ks is None else [check_int("K", k, 1, p) for k in ks]
    rows = []
    for variant in variants:
        for k in ks:
            scheme = variant_scheme(variant, p, k)
            est = step_time_estimate(scheme, compute, seed=seed)
            if variant in ("k-async", "k-batch-async"):
                floor = (
                    kasync_error_floor(eta, lipschitz, convexity, sigma2, k, m, gamma, p0)
                    if gamma is not None and p0 is not None
                    else float("nan")
                )
            else:
                floor = ksync_error_floor(eta, lipschitz, convexity, sigma2, k, m)
            rows.append((k, variant, str(scheme), est.value, est.se, floor, est.method))
    columns = ["K", "variant", "scheme", "runtime", "runtime_se", "error_floor", "method"]
    return pd.DataFrame(rows, columns=columns)
