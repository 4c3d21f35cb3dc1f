"""The collective paths of the real backend: every rank is a worker, and the exchange is an
``all_reduce`` over all of them (gloo; the ranks move in lockstep, so no server is needed).

* :func:`shared` (Sync, Delayed): step t's gradient is taken at version max(t - delay, 0), its
  ``all_reduce`` is started with ``async_op=True`` and waited for ``delay`` steps later, just
  before the gradient that needs the update (the overlap of delayed synchronous SGD: the
  exchange of step t hides behind the computation of the next ``delay`` steps). delay = 0 is
  Sync. Every rank applies the scheme's own optimizer to the mean, so all hold the same
  parameters; an update's time is when its ``all_reduce`` completed (a callback on the work's
  future; the latest over the ranks), as in the clock, where update t is available at A_t. At
  a checkpoint a rank waits for its exchanges in flight (their results are part of its state).
* :func:`replicas` (LocalSGD, DiLoCo, synchronous EASGD / EAMSGD): each rank keeps its replica
  and takes the scheme's local steps; every ``period`` steps one ``all_reduce`` gives the mean
  of the replicas, from which each rank applies the exchange's ``reduced`` form (the same map
  as the stacked exchange replay applies, :class:`toolkit.schemes.updates.Exchange`).

Each rank records (``Rank.record``, a line per row in its log as it goes, so a killed rank leaves
what it did) rows ``[kind, update, time, worker, version, used, batch, compute, comm, loss]``
(the Schedule's columns, :class:`Row`), times in seconds since the run's start ``t0``.
"""

from __future__ import annotations

import time
from collections import deque
from typing import NamedTuple

import torch
import torch.distributed as dist

from toolkit.cluster.schedule import RowKind

__all__ = ["ROW", "Row", "replicas", "shared"]

NAN = float("nan")


class Row(NamedTuple):
    """One row a rank logs, a JSON list in this order (``Row(*entry)`` reads one back by name):
    the Schedule's columns (``compute``, ``comm``: ``compute_time``, ``comm_time``; no
    staleness, which the reader derives) and the mini-batch's loss."""

    kind: int  # RowKind
    update: int
    time: float
    worker: int
    version: int
    used: bool
    batch: int
    compute: float
    comm: float
    loss: float


ROW = Row._fields


class _Done:
    """The handle of an exchange that completed before a checkpoint."""

    def wait(self) -> None:
        pass


def shared(r, t0: float) -> torch.Tensor:
    """Sync / Delayed on ``all_reduce`` (module docstring). Each rank checkpoints its state
    (parameters, optimizer state, its exchanges in flight, waited for, with their rows); ranks
    run at most ``delay + 1`` updates apart, so ``delay + 3`` kept checkpoints always hold one
    that every rank has written."""
    d, world = r.scheme.rule.delay, r.world
    rules = r.rules
    params = r.fm.flat()
    state = rules.optimizer.init(params)
    pending: deque = deque()  # (row, work, gradient, done-stamp) in update order
    applied = 0
    r.keep = d + 3
    saved = r.restored()
    if saved is not None:
        params, state, applied = saved["params"], saved["optimizer"], int(saved["applied"])
        for entry, g in saved["pending"]:
            row = Row(*entry)
            pending.append((row, _Done(), g, [t0 + row.time]))

    def apply_next() -> None:
        nonlocal params, state, applied
        row, work, g, stamp = pending.popleft()
        work.wait()
        g.div_(world)
        step, state = rules.optimizer.update(g, state)
        params = step.apply(params)
        done = stamp[0] if stamp else time.monotonic()
        # comm held the exchange's start; now the time from it to the update
        row = row._replace(time=done - t0, comm=max(done - t0 - row.comm, 0.0))
        r.record(row)
        applied += 1
        if r.rank == 0:
            r.snapshot(applied, params)
        if r.due(applied):
            flight = []
            for row_f, work_f, g_f, stamp_f in pending:  # what is in flight, completed
                work_f.wait()
                done_f = stamp_f[0] if stamp_f else time.monotonic()
                # plain values: a checkpoint is loaded with weights_only
                flight.append((list(row_f._replace(kind=int(row_f.kind), time=done_f - t0)), g_f))
            r.checkpoint(
                applied,
                {"params": params, "optimizer": state, "applied": applied, "pending": flight}
                | {"time": row.time},
            )

    first = applied + len(pending)
    for t in range(first, r.updates):
        while applied < t - d:  # gradient t is taken at version t - d
            apply_next()
        start = time.monotonic()
        g, loss, took = r.compute(r.rank, t, params)
        version = max(t - d, 0)
        # comm holds the exchange's start until the update (apply_next)
        row = Row(RowKind.GRAD, t, NAN, r.rank, version, True, t, took, start + took - t0, loss)
        work = dist.all_reduce(g, async_op=True)
        stamp: list[float] = []
        work.get_future().add_done_callback(lambda _f, s=stamp: s.append(time.monotonic()))
        pending.append((row, work, g, stamp))
    while pending:
        apply_next()
    return params


def replicas(r, t0: float) -> torch.Tensor:
    """LocalSGD / DiLoCo / synchronous EASGD on ``all_reduce`` (module docstring). Each rank
    checkpoints its own replica after an exchange round."""
    rules = r.scheme.updates(r.lr)
    tau, world = r.scheme.rule.period, r.world
    x = r.fm.flat()
    point, local = x, rules.local.init(x)
    centre = x.clone()
    exchange = rules.exchange.init(centre)
    first = 0
    saved = r.restored()
    if saved is not None:
        x, point, local = saved["x"], saved["point"], saved["local"]
        centre, exchange, first = saved["centre"], saved["exchange"], int(saved["steps"])
    for t in range(first, r.updates):
        start = time.monotonic()
        g, loss, took = r.compute(r.rank, t, rules.local.point(point, local))
        step, local = rules.local.update(g, local)
        x = point = step.apply(x)
        r.record(Row(RowKind.GRAD, t, start + took - t0, r.rank, t, True, t, took, 0.0, loss))
        if (t + 1) % tau == 0:
            begin = time.monotonic()
            mean = x.clone()
            dist.all_reduce(mean)
            mean.div_(world)
            x, point, centre, exchange = rules.exchange.reduced(x, mean, world, centre, exchange)
            now = time.monotonic()
            comm, k = now - begin, (t + 1) // tau
            r.record(
                Row(RowKind.EXCHANGE, k - 1, now - t0, r.rank, t + 1, True, -1, 0.0, comm, NAN)
            )
            if r.rank == 0:
                r.snapshot(k, centre)
            if r.due(k):
                state = {"x": x, "point": point, "local": local, "centre": centre}
                state |= {"exchange": exchange, "steps": t + 1, "time": now - t0}
                r.checkpoint(k, state)
    return centre
