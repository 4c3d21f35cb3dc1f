"""Estimates with their standard error, and the Monte Carlo that runs the clock.

Where a quantity has no closed form (the shared server link of asynchronous schemes, Dutta et
al.'s K-async), the theory runs the clock (:func:`toolkit.cluster.simulate`) rather than a second
simulator, so prediction and simulation share one model of the cluster.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from toolkit.checks import check_int
from toolkit.cluster import simulate
from toolkit.cluster.clock import estimate_bytes
from toolkit.limits import check_memory, check_work
from toolkit.models.comm import CommModel
from toolkit.schemes import Scheme

__all__ = ["BATCHES", "StepTime", "clock_estimate", "mean_se", "progress_bar"]

BATCHES = 50  # batch means of one long run (Law & Kelton, Simulation Modeling and Analysis, 9.5)


@dataclass(frozen=True)
class StepTime:
    """An expected step time: ``value``, its Monte Carlo standard error ``se`` (0 when the method
    is a closed form or a deterministic quadrature) and the ``method`` used."""

    value: float
    se: float
    method: str


def progress_bar(total: float, work: float, desc: str, argument: str):
    """A progress bar (tqdm, on stderr) over ``total`` steps, shown only when ``work``, a rough
    count of elementary operations, exceeds 1e8 (a few seconds or more); ``total=None`` counts
    without an end. Work above the limit is refused first, naming ``argument``
    (:func:`toolkit.limits.check_work`)."""
    from tqdm.auto import tqdm

    check_work(argument, desc, work)
    return tqdm(total=total, desc=desc, disable=work < 1e8, leave=False)


def mean_se(x: np.ndarray) -> tuple[float, float]:
    """Sample mean of i.i.d. draws ``x`` and its standard error."""
    x = np.asarray(x, dtype=float)
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else 0.0


def clock_estimate(
    scheme: Scheme,
    compute: object,
    comm: CommModel | None,
    *,
    samples: int,
    seed: int,
    per_event: float = 1.0,
) -> StepTime:
    """``per_event`` times the long-run mean time between the clock's events (updates; centre
    exchanges for replica schemes), from one seeded run of the clock.

    The run has a burn-in of max(E / 10, 5 n) events, then E = max(samples, 200 n) events (rounded
    up to a multiple of ``BATCHES``) split into ``BATCHES`` batches of >= 4 n events, several
    cycles of every worker; the estimate is the mean time between events after the burn-in and
    its standard error the batch-means one (Law & Kelton, *Simulation Modeling and Analysis*,
    sec. 9.5)."""
    rule = scheme.rule
    n = rule.machines
    events = max(check_int("samples", samples, 2), 200 * n)
    events = -(-events // BATCHES) * BATCHES
    burn = max(events // 10, 5 * n)
    total = burn + events
    # replicas: local steps per worker, a quarter more, so that no worker has stopped yet
    steps = rule.period * math.ceil(1.25 * total / n + 1) if rule.replicas else total
    what = f"the Monte Carlo of {scheme} (the clock for max(samples, 200 n) = {events} events)"
    check_memory("samples" if events == samples else "n", what, estimate_bytes(scheme, steps, comm))
    sched = simulate(scheme, compute, comm, updates=steps, seed=seed)
    if rule.replicas:
        f = sched.frame
        times = np.sort(f.loc[f["kind"] == "exchange", "time"].to_numpy())
    else:
        times = sched.update_times()
    times = times[:total]
    per = events // BATCHES
    edges = times[burn - 1 :: per]  # burn-1, burn-1+per, ..., total-1
    mean = float((times[-1] - times[burn - 1]) / events)
    se = float(np.std(np.diff(edges) / per, ddof=1) / math.sqrt(BATCHES))
    return StepTime(per_event * mean, per_event * se, "monte-carlo")
