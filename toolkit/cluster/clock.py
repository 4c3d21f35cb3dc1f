"""The clock: (scheme, compute model, comm model, updates, seed) -> Schedule, with no tensors.

The scheme's :class:`~toolkit.schemes.Rule` picks the path, never the scheme's class:

* **barrier** (Sync, Backup, KBatchSync, Delayed; :mod:`toolkit.cluster.barrier`): an update at
  A = S + T_q + c, the q-th finish after the step's start S plus the exchange; a worker of
  Delayed(n, d) starts step t after its own step t - 1 and update t - d - 1, and
  A_t = max(max_w C_wt, A_{t-1}) + c;
* **async** (Async, KBatchAsync; :mod:`toolkit.cluster.asynchronous`): every arrival goes to the
  server, which applies the average of each ``quorum`` consecutive arrivals whatever their
  versions, through a FIFO server link with deterministic service ``comm.server_time()``;
* **K-async** (KAsync; Dutta et al., AISTATS 2018, Sec. 2.3): update u at A_u = T_k + c, the k-th
  finish among n; those k restart at A_u, the others keep computing;
* **replicas** (EASGD, EAMSGD, LocalSGD, DiLoCo; :mod:`toolkit.cluster.replicas`): ``updates``
  counts local steps per worker, an exchange every ``period`` of them.

A gradient cancelled at a barrier is a dropped row (``used=False``), so Backup drops exactly b of
n + b gradients per update (Chen et al. 2016). Failures (Sync, Backup, Async, KBatchAsync) stop
computation only; a cluster that can no longer make progress ends ``"stalled"``. Every timing
convention, with ties, exchange costs and examples: docs/theory.md#the-clocks-timing-conventions.
"""

from __future__ import annotations

from toolkit.checks import ConfigError, check_int
from toolkit.cluster.asynchronous import async_heap, async_merge, kasync
from toolkit.cluster.barrier import barrier, barrier_failures, delayed, kbatch
from toolkit.cluster.replicas import replicas_async, replicas_sync
from toolkit.cluster.schedule import Schedule
from toolkit.cluster.state import Run
from toolkit.limits import check_memory
from toolkit.models.comm import CommModel
from toolkit.models.failures import Failures
from toolkit.models.seeds import child_seed
from toolkit.models.stragglers import Streams, as_compute
from toolkit.schemes import Rule, Scheme

__all__ = ["estimate_bytes", "simulate"]


def simulate(
    scheme: Scheme,
    compute: object,
    comm: CommModel | None = None,
    updates: int = 1000,
    seed: int = 0,
    failures: Failures | None = None,
) -> Schedule:
    """Run the clock for ``updates`` updates (local steps per worker for replica schemes).

    ``compute``: a frozen scipy.stats distribution, Empirical, a list of per-worker distributions,
    a 2-D trace array or a :class:`~toolkit.models.stragglers.ComputeModel`. ``comm``: None
    (communication is free) or a :class:`~toolkit.models.comm.CommModel`. Same seed -> the same
    Schedule bit for bit.
    """
    if not isinstance(scheme, Scheme):
        raise ConfigError("scheme", f"scheme: expected a toolkit.schemes scheme, got {scheme!r}")
    updates = check_int("updates", updates, 1)
    seed = check_int("seed", seed, 0)
    if comm is not None and not isinstance(comm, CommModel):
        raise ConfigError("comm", f"comm: expected None or a CommModel, got {comm!r}")
    if failures is not None and not isinstance(failures, Failures):
        raise ConfigError(
            "failures", f"failures: expected None or a Failures object, got {failures!r}"
        )
    model = as_compute(compute)
    rule = scheme.rule
    model.check(rule.machines)
    path = _path(rule, comm, failures is not None)
    _check_footprint(scheme, path, updates)
    streams = Streams(model, rule.machines, child_seed(seed, 0))
    timeline = None if failures is None else failures.timeline(rule.machines, child_seed(seed, 1))
    run = Run(rule, streams, comm, updates, timeline)
    frame = path(run)
    meta = {
        "scheme": scheme.to_dict(),
        "compute": repr(model),
        "comm": None if comm is None else comm.to_dict(),
        "failures": repr(failures),
        "updates": updates,
        "seed": seed,
    }
    return Schedule(frame, meta=meta, status=run.status, message=run.message)


def _path(rule: Rule, comm: CommModel | None, failing: bool):
    """The clock path for a rule (module docstring); failures only where a path handles them."""
    if rule.replicas:
        if failing:
            raise ConfigError(
                "failures", "failures: not supported for replica schemes (EASGD, LocalSGD, ...)"
            )
        return replicas_sync if rule.barrier else replicas_async
    if rule.barrier:
        if failing and (rule.repeat or rule.delay):
            raise ConfigError(
                "failures", "failures: supported for Sync and Backup among barrier schemes"
            )
        if failing:
            return barrier_failures
        return kbatch if rule.repeat else delayed if rule.delay else barrier
    if rule.kasync:
        if failing:
            raise ConfigError("failures", "failures: not supported for KAsync")
        return kasync
    link = comm is not None and comm.message_time() > 0 and comm.server_time() > 0
    return async_heap if failing or link else async_merge


# Memory of a run, measured on this toolkit (peak RSS per Schedule row, numpy 2 / pandas 2):
# the row's columns plus each path's temporaries (sorts, Python lists of the event loops).
_BYTES_PER_ROW = {
    barrier: 150,
    barrier_failures: 450,
    delayed: 150,
    kbatch: 250,
    async_merge: 200,
    async_heap: 450,
    kasync: 300,
    replicas_sync: 250,
    replicas_async: 250,
}
_BYTES_PER_WORKER = 2_500  # a worker's random generator, seed and stream of step times


def estimate_bytes(scheme: Scheme, updates: int, comm: CommModel | None = None) -> float:
    """Memory :func:`simulate` needs for ``updates`` updates of ``scheme`` (measured per Schedule
    row and per worker), without failures."""
    return _footprint(scheme, _path(scheme.rule, comm, False), updates)[0]


def _footprint(scheme: Scheme, path, updates: int) -> tuple[float, float, float]:
    """(bytes, Schedule rows, bytes of the workers' streams)."""
    rule = scheme.rule
    m, q = rule.machines, rule.quorum
    if rule.replicas:
        rows = updates * m * (1 + 1 / rule.period)
    elif rule.barrier:
        rows = updates * (m + q if rule.repeat else m)
    else:
        rows = updates * q
    workers = m * _BYTES_PER_WORKER
    return rows * _BYTES_PER_ROW[path] + workers, rows, workers


def _check_footprint(scheme: Scheme, path, updates: int) -> None:
    """Refuse, before any allocation, a simulation that would not fit (toolkit.limits)."""
    need, rows, workers = _footprint(scheme, path, updates)
    argument = "n" if workers > need / 2 else "updates"
    m = scheme.rule.machines
    what = f"simulate({scheme}, updates={updates}) ({rows:.3g} Schedule rows, {m} workers)"
    check_memory(argument, what, need)
