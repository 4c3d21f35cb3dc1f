"""The clock: (scheme, compute model, comm model, updates, seed) -> Schedule, with no tensors.

The scheme's :class:`~toolkit.schemes.Rule` picks the path, never the scheme's class:

* **barrier** (Sync, Backup, KBatchSync, Delayed; :mod:`toolkit.cluster.barrier`): the update
  waits for the first ``quorum`` gradients of its step. Sync, Backup and KBatchSync workers all
  start each update from the same version and everything still in flight is cancelled (Delayed's
  workers wait only for the update d + 1 steps back, not for each other).
* **async** (Async, KBatchAsync; :mod:`toolkit.cluster.asynchronous`): every arrival goes to the
  server, which applies the average of each ``quorum`` consecutive arrivals whatever their
  versions; workers never wait. Without interaction the update order is a merge of per-worker
  cumulative sums; a shared link (``comm.server_time() > 0``) or failures use an event heap.
* **K-async** (KAsync): an update waits for the first ``quorum`` distinct workers, which then
  restart; the others keep computing (a loop over updates, numpy over workers).
* **replicas** (EASGD, EAMSGD, LocalSGD, DiLoCo; :mod:`toolkit.cluster.replicas`): synchronous,
  vectorised per period; asynchronous (``EASGD(..., synchronous=False)``), an event heap.

Timing conventions (documented choices where the papers leave freedom):

* Barrier schemes: an update at time A = S + T_q + c where S is the step start, T_q the q-th
  smallest finish time (ties broken by worker id, then batch) and
  c = (exchange_time(min(q, m)) + exchange_time(m)) / 2 (q gradients in, m models out; exactly
  ``exchange_time(n)`` for Sync). All workers restart at A (not Delayed: see below).
* A gradient cancelled at a barrier (Backup's last b, K-batch's partial batches, gradients that
  finished in the same instant as the q-th but are beyond the quorum) is a *dropped* row
  (``used=False``) of that update: its mini-batch is consumed and ``compute_time`` is the time the
  worker spent on it until the update (its full time if it finished). This makes Backup drop
  exactly b of n + b gradients per update (Chen et al. 2016).
* Delayed(n, d): the gradient of step t is computed at version max(0, t - d), so a worker may
  start step t as soon as it has finished its own step t - 1 AND update t - d - 1 is applied (no
  barrier among workers for compute): S_wt = max(C_w,t-1, A_{t-d-1}), C_wt = S_wt + X_wt. Update t
  needs all n gradients of step t and the link, which carries one exchange at a time:
  A_t = max(max_w C_wt, A_{t-1}) + c (:func:`~toolkit.cluster.barrier.delayed_updates`, a loop
  over steps vectorised over workers). For d = 0 this is Sync (and takes Sync's path, bit for
  bit). With constant X and c the time per step is X + c for d = 0 and max(X, c) for d >= 1;
  with varying times Delayed is faster than Sync even without comm, since a worker's slow step
  no longer holds up the others' next steps (e.g. two workers alternating 3, 1 and 1, 3 without
  comm: 2 per step, Sync 3).
* Async/KBatchAsync: a worker's cycle is compute X then push + pull, m = ``comm.message_time()``,
  of which s = ``comm.server_time()`` holds the shared server link: the worker reaches the link at
  f + m - s (f = end of compute), is served FIFO for s, and the update is applied when the
  service ends (f + m without contention): a closed FIFO network with deterministic service s,
  which ``toolkit.theory`` estimates by running this clock (MVA, which assumes exponential
  service, would over-estimate its step time near the knee n* = (Z + s) / s). The worker then
  restarts and its next gradient's version is the number of updates applied by its restart
  time, simultaneous updates included (so KBatchAsync(n, n) on equal workers is Sync(n)); with
  ties among arrivals the lower worker id is applied first.
  A worker back from a failure reads the parameters when it restarts. ``comm_time`` = update
  time - f (queueing included).
* KAsync(n, k) (Dutta et al., AISTATS 2018, Sec. 2.3): update u is applied at A_u = T_k + c,
  T_k the k-th smallest finish time among the n workers (ties by worker id) and
  c = exchange_time(k) (k gradients in, k models out to the workers that pushed); those k are idle
  from their finish to A_u, then restart reading version u + 1; the other n - k keep computing on
  their versions. k = n is Sync(n) (up to the rounding of the summed times); k = 1 has Async's
  rule and takes Async's path.
* Replica schemes: ``updates`` counts *local steps per worker*; every ``period`` local steps the
  worker meets the centre (an ``exchange`` row, version = local step count). Synchronous: a
  barrier, then one exchange of c = ``comm.exchange_time(n)``; asynchronous: through the server
  link as for Async.
* Failures (Sync, Backup, Async, KBatchAsync) stop computation only (not communication). A barrier
  scheme whose quorum can no longer be met, or an async cluster with every worker dead, ends with
  status ``"stalled"``.
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
