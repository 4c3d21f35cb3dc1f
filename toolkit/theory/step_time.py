"""Expected wall-clock time per parameter update, and throughput, for every scheme.

One code path per *rule* (:class:`toolkit.schemes.Rule`), never per scheme class. With q the
quorum, m the machines, X the i.i.d. step time (mean mu) and c the synchronous exchange
(:func:`~toolkit.models.comm.exchange_cost`):

* barrier, delay 0 (Sync, Backup): E[X_(q:m)] + c (:mod:`toolkit.theory.order_stats`);
* barrier, delay d >= 1 (Delayed): the long-run period of the clock's recursion, Monte Carlo;
* barrier and repeat (KBatchSync): :func:`~toolkit.theory.renewal.kbatch_sync_time` + c;
* no barrier, quorum 1 or repeat (Async, KBatchAsync): q mu / n, renewal reward (Dutta et al.,
  AISTATS 2018, Lemma 4), plus the push + pull latency; the clock's Monte Carlo for a shared
  server link;
* KAsync: E[X_(q:m)] + c for exponential step times with loc = 0 (Dutta et al., Supp. 7.3.1),
  an upper bound for new-longer-than-used laws (Lemma 5, :func:`kasync_bound`), else the
  clock's Monte Carlo;
* period tau (EASGD, LocalSGD, DiLoCo): (E[max_i S_i] + c) / tau per local step, S_i a sum of
  tau step times, when synchronous; mu + (push + pull time) / tau (renewal) when asynchronous.

Where no closed form exists the method is seeded Monte Carlo and :func:`step_time_estimate`
returns its standard error; same seed, same numbers. The derivations and bounds per rule:
docs/theory.md#step-time-per-rule.
"""

from __future__ import annotations

import numpy as np

from toolkit.checks import ConfigError, check_int
from toolkit.cluster.barrier import delayed_updates
from toolkit.limits import check_memory
from toolkit.models.comm import CommModel, exchange_cost
from toolkit.models.dists import check_step_dist
from toolkit.schemes import Rule, Scheme
from toolkit.theory.estimate import StepTime, clock_estimate, mean_se, progress_bar
from toolkit.theory.order_stats import expected_max, expected_order_statistic
from toolkit.theory.renewal import kbatch_sync_time, sum_dist

__all__ = [
    "StepTime",
    "gradients_per_update",
    "kasync_bound",
    "step_time",
    "step_time_estimate",
    "throughput",
]

_CHUNK = 2_000_000  # random draws per Monte Carlo chunk (memory bound)


def _rule(scheme: Scheme) -> Rule:
    rule = getattr(scheme, "rule", None)
    if not isinstance(rule, Rule):
        raise ConfigError("scheme", f"scheme: expected a toolkit.schemes scheme, got {scheme!r}")
    return rule


def _check_comm(comm: object) -> None:
    if comm is not None and not isinstance(comm, CommModel):
        raise ConfigError(
            "comm", f"comm: expected a toolkit.models.comm model or None, got {comm!r}"
        )


def _memoryless(dist: object) -> bool:
    """Exponential step times starting at 0 (no shift)."""
    name = getattr(getattr(dist, "dist", None), "name", None)
    return name == "expon" and float(dist.support()[0]) == 0.0


def _delayed_mc(
    dist: object, n: int, c: float, delay: int, samples: int, rng: np.random.Generator
) -> tuple[float, float]:
    """Long-run time per update of Delayed(n, delay >= 1): the clock's recursion
    (:func:`~toolkit.cluster.barrier.delayed_updates`) over 64 independent clusters of
    max(200, samples / 64) updates after a burn-in of a quarter as many, drawn in blocks; each
    cluster's mean period is one i.i.d. sample."""
    chains = 64
    steps = max(200, samples // chains)
    burn = steps // 4
    total = burn + steps
    block = max(1, min(total, _CHUNK // (chains * n)))
    check_memory(
        "n", f"the Monte Carlo of Delayed(n={n}, delay={delay})", 6 * 8 * chains * n * block
    )
    what = f"the Monte Carlo of Delayed(n={n}, delay={delay})'s last {delay + 1} update times"
    check_memory("delay", what, 8.0 * chains * (delay + 1))
    state, start, done = None, None, 0
    bar = progress_bar(total, 10 * chains * n * total, f"Delayed(n={n}) Monte Carlo", "n")
    while done < total:
        size = min(block, total - done)
        bar.update(size)
        x = np.asarray(dist.rvs(size=(chains, n, size), random_state=rng), dtype=float)
        A, state = delayed_updates(x, delay, c, state)
        if done < burn <= done + size:
            start = A[:, burn - 1 - done]
        done += size
    bar.close()
    return mean_se((A[:, -1] - start) / steps)


def _replica_sync_compute(
    dist: object, n: int, tau: int, samples: int, rng: np.random.Generator
) -> tuple[float, float, str]:
    """E[max_i S_i], S_i a sum of tau i.i.d. step times: exact via the gamma family (S ~ gamma),
    the plain expected maximum for tau = 1, seeded Monte Carlo otherwise."""
    if tau == 1:
        return float(expected_max(dist, n)), 0.0, "exact"
    sdist = sum_dist(dist, tau)
    if sdist is not None:
        return float(expected_max(sdist, n)), 0.0, "exact"
    draws = []
    chunk = max(1, _CHUNK // (n * tau))
    check_memory("n", f"one Monte Carlo sample of {n} workers' sums of {tau} steps", 16 * n * tau)
    with progress_bar(samples, 5 * samples * n * tau, "replica Monte Carlo", "n") as bar:
        for start in range(0, samples, chunk):
            size = min(chunk, samples - start)
            x = np.asarray(dist.rvs(size=(size, n, tau), random_state=rng), dtype=float)
            draws.append(x.sum(axis=2).max(axis=1))
            bar.update(size)
    mean, se = mean_se(np.concatenate(draws))
    return mean, se, "monte-carlo"


def kasync_bound(n: int, k: int, compute: object, comm: CommModel | None = None) -> float:
    """Dutta et al.'s Lemma 5 (AISTATS 2018, eq. (18)): for new-longer-than-used step times the
    K-async time per iteration is at most E[X_(K:P)] (+ the exchange among k); equality for the
    exponential (Supp. 7.3.1)."""
    n, k = check_int("n", n, 1), check_int("k", k, 1, n)
    check_step_dist(compute, "compute")
    _check_comm(comm)
    return float(expected_order_statistic(compute, k, n)) + exchange_cost(comm, k, k)


def _replicas(scheme, rule, compute, comm, samples, seed, rng) -> StepTime:
    tau, m, mu = rule.period, rule.machines, float(compute.mean())
    if rule.barrier:
        mean, se, method = _replica_sync_compute(compute, m, tau, samples, rng)
        return StepTime((mean + exchange_cost(comm, m, m)) / tau, se / tau, method)
    if comm is None or comm.message_time() == 0.0:
        return StepTime(mu, 0.0, "renewal")
    if comm.server_time() == 0.0:
        return StepTime(mu + comm.message_time() / tau, 0.0, "renewal")
    # n workers, one exchange per tau local steps each: per local step, n / tau exchange gaps
    return clock_estimate(scheme, compute, comm, samples=samples, seed=seed, per_event=m / tau)


def _asynchronous(scheme, rule, compute, comm, samples, seed) -> StepTime:
    q, m, mu = rule.quorum, rule.machines, float(compute.mean())
    if rule.kasync:
        if q == m or _memoryless(compute):
            return StepTime(kasync_bound(m, q, compute, comm), 0.0, "exact")
        return clock_estimate(scheme, compute, comm, samples=samples, seed=seed)
    if comm is None:
        return StepTime(q * mu / m, 0.0, "renewal")
    own = comm.message_time()  # raises ValueError for a ring all-reduce
    if comm.server_time() <= 0:
        return StepTime(q * (mu + own) / m, 0.0, "renewal")
    return clock_estimate(scheme, compute, comm, samples=samples, seed=seed)


def step_time_estimate(
    scheme: Scheme,
    compute: object,
    comm: CommModel | None = None,
    *,
    samples: int = 20_000,
    seed: int = 0,
) -> StepTime:
    """Expected wall-clock time per parameter update of ``scheme`` (per local step for replica
    schemes) when each worker's step time is i.i.d. ``compute`` (a frozen scipy.stats
    distribution or ``toolkit.models.Empirical``), with an optional communication model. The
    module docstring gives the formula and method per rule (derived in docs/theory.md); ``samples``
    and ``seed`` only matter where ``method == "monte-carlo"``."""
    rule = _rule(scheme)
    check_step_dist(compute, "compute")
    _check_comm(comm)
    samples = check_int("samples", samples, 2)
    seed = check_int("seed", seed, 0)
    rng = np.random.default_rng(seed)
    q, m = rule.quorum, rule.machines
    if rule.period > 0:
        return _replicas(scheme, rule, compute, comm, samples, seed, rng)
    if not rule.barrier:
        return _asynchronous(scheme, rule, compute, comm, samples, seed)
    c = exchange_cost(comm, q, m)
    if rule.repeat:
        est = kbatch_sync_time(m, q, compute, samples=samples, seed=seed)
        return StepTime(est.value + c, est.se, est.method)
    if rule.delay == 0:
        return StepTime(float(expected_order_statistic(compute, q, m)) + c, 0.0, "exact")
    value, se = _delayed_mc(compute, m, c, rule.delay, samples, rng)
    return StepTime(value, se, "monte-carlo")


def step_time(
    scheme: Scheme,
    compute: object,
    comm: CommModel | None = None,
    *,
    samples: int = 20_000,
    seed: int = 0,
) -> float:
    """Expected wall-clock time per parameter update (per local step for replica schemes); the
    ``value`` of :func:`step_time_estimate`."""
    return step_time_estimate(scheme, compute, comm, samples=samples, seed=seed).value


def gradients_per_update(scheme: Scheme) -> int:
    """Mini-batch gradients one step of :func:`step_time` uses: the quorum for shared-parameter
    schemes (n for Backup(n, b), k for K-schemes, 1 for Async), all machines for replica schemes
    (every replica takes one local step)."""
    rule = _rule(scheme)
    return rule.machines if rule.period > 0 else rule.quorum


def throughput(
    scheme: Scheme,
    compute: object,
    comm: CommModel | None = None,
    batch_size: int | None = None,
    *,
    samples: int = 20_000,
    seed: int = 0,
) -> float:
    """Used gradients per unit time, ``gradients_per_update(scheme) / step_time(...)``; samples
    per unit time (that times ``batch_size``) when a per-worker ``batch_size`` is given. Dropped
    gradients (Backup's late ones, K-batch-sync's leftovers) do not count."""
    if batch_size is not None:
        batch_size = check_int("batch_size", batch_size, 1)
    t = step_time(scheme, compute, comm, samples=samples, seed=seed)
    rate = gradients_per_update(scheme) / t
    return rate * batch_size if batch_size is not None else rate
