"""Queueing of the parameter server's link: n asynchronous workers and one FIFO server.

Each worker "thinks" for Z (its compute plus the latencies that do not hold the link), then holds
the link for s; beyond about n* = (Z + s) / s workers the link is the bottleneck. The clock's
link has a deterministic service time (:func:`toolkit.cluster.asynchronous.fifo_link`), and
``toolkit.theory.step_time`` estimates it by running the clock; here are the exponential-service
model of the same network (:func:`mva`) and the bounds that hold for any service law
(docs/theory.md#the-parameter-servers-link).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from toolkit.checks import ConfigError, check_array, check_int, check_positive
from toolkit.limits import check_memory

__all__ = ["mva", "ps_bounds", "saturation_point"]


def mva(n: int, think: float, service: float) -> pd.DataFrame:
    """Exact Mean Value Analysis of a closed network of ``n`` workers and one server
    (Reiser & Lavenberg, J. ACM 27(2), 1980): each worker "thinks" for ``think`` = Z time units
    (its compute plus the latencies that do not hold the server), then holds the single FIFO server
    for ``service`` = s. For k = 1..n::

        R(k) = s (1 + Q(k-1)),   X(k) = k / (Z + R(k)),   Q(k) = X(k) R(k),   Q(0) = 0.

    This is the *exponential-service* model, exact for exponential service with any think-time
    law (the think station is insensitive in a BCMP product-form network: Baskett, Chandy, Muntz,
    Palacios, J. ACM 22(2), 1975). The clock's link has a *deterministic* service s, which queues
    less: MVA over-estimates its step time near the knee n* = (Z + s) / s (by 6 % to 24 % at
    n = n*, measured in docs/theory.md#the-parameter-servers-link), so
    :func:`~toolkit.theory.step_time.step_time_estimate` runs the clock instead.

    Returns a DataFrame over k = 1..n with columns ``n``, ``throughput`` X, ``residence`` R
    (waiting + service at the server), ``queue`` Q, ``utilization`` X s, and the asymptotic bounds
    of operational analysis (Lazowska et al., *Quantitative System Performance*, 1984, ch. 5):
    ``upper`` = min(k / (Z + s), 1 / s) and ``lower`` = k / (Z + k s)."""
    n = check_int("n", n, 1)
    think, service = _check_queue(think, service)
    # the table: 7 columns of n values, and the arrays they are built from (measured: 112 B/n)
    check_memory("n", f"the MVA table of n={n} rows", 128 * n)
    k = np.arange(1, n + 1)
    x = np.empty(n)
    r = np.empty(n)
    q = np.empty(n)
    q_prev = 0.0
    for i in range(n):
        r[i] = service * (1.0 + q_prev)
        x[i] = (i + 1) / (think + r[i])
        q_prev = q[i] = x[i] * r[i]
    lower, upper = ps_bounds(k, think, service)
    return pd.DataFrame(
        {
            "n": k,
            "throughput": x,
            "residence": r,
            "queue": q,
            "utilization": x * service,
            "upper": upper,
            "lower": lower,
        }
    )


def _check_queue(think: float, service: float) -> tuple[float, float]:
    think = check_positive("think", think, allow_zero=True)
    service = check_positive("service", service, allow_zero=True)
    if think + service <= 0:
        raise ConfigError("service", "think, service: think + service must be > 0")
    return think, service


def ps_bounds(n: object, think: float, service: float) -> tuple[np.ndarray, np.ndarray]:
    """Operational-analysis bounds on the throughput X(n) of the closed network of :func:`mva`:
    ``n / (Z + n s) <= X(n) <= min(n / (Z + s), 1 / s)`` (Lazowska et al. 1984, ch. 5). They hold
    for any service and think distributions; the upper bound's 1/s is the server bottleneck."""
    n = check_array("n", n, low=1)
    think, service = _check_queue(think, service)
    upper = n / (think + service)
    if service > 0:
        upper = np.minimum(upper, 1.0 / service)
    lower = n / (think + n * service)
    return lower, upper


def saturation_point(think: float, service: float) -> float:
    """N* = (Z + s) / s, where the two asymptotes n / (Z + s) and 1 / s of the throughput cross:
    beyond it the parameter server is the bottleneck (Lazowska et al. 1984, ch. 5)."""
    service = check_positive("service", service)
    return (check_positive("think", think, allow_zero=True) + service) / service
