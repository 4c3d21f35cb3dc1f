"""The clock's replica paths: EASGD, EAMSGD, LocalSGD and DiLoCo. ``updates`` counts local steps
per worker; every ``period`` local steps a worker meets the centre (an ``exchange`` row whose
version is its local step count). Timing conventions: docs/theory.md#the-clocks-timing-conventions.
"""

from __future__ import annotations

import heapq

import numpy as np
import pandas as pd

from toolkit.cluster.asynchronous import fifo_link
from toolkit.cluster.schedule import RowKind, make_frame
from toolkit.cluster.state import Run

__all__ = ["replicas_async", "replicas_sync"]


def _replica_frame(run: Run, ends, X, ex_update, ex_time, ex_worker, ex_version, ex_comm):
    """Grad rows (one per local step) and exchange rows, in time order."""
    M, U = run.machines, run.updates
    j = np.tile(np.arange(U), M)
    n_ex = len(ex_update)
    frame = make_frame(
        kind=np.concatenate([np.full(M * U, RowKind.GRAD), np.full(n_ex, RowKind.EXCHANGE)]),
        update=np.concatenate([j, ex_update]),
        time=np.concatenate([ends.ravel(), ex_time]),
        worker=np.concatenate([np.repeat(np.arange(M), U), ex_worker]),
        version=np.concatenate([j, ex_version]),
        staleness=0,
        used=True,
        batch=np.concatenate([j, np.full(n_ex, -1)]),
        compute_time=np.concatenate([X.ravel(), np.zeros(n_ex)]),
        comm_time=np.concatenate([np.zeros(M * U), ex_comm]),
    )
    kind_code = frame["kind"].cat.codes.to_numpy()  # RowKind
    order = np.lexsort(
        (
            frame["update"].to_numpy(),
            frame["worker"].to_numpy(),
            kind_code,
            frame["time"].to_numpy(),
        )
    )
    return frame.iloc[order].reset_index(drop=True)


def replicas_sync(run: Run) -> pd.DataFrame:
    """Every ``period`` local steps a barrier, then an exchange of c = exchange_time(n)."""
    M, U, tau, c = run.machines, run.updates, run.rule.period, run.exchange
    X = run.streams.matrix(U)[:, :U].copy()
    P = U // tau
    period = np.arange(U) // tau  # period of each local step
    # start of period r: S_r = sum_{r' < r} (max_w sum of period r' + c)
    n_per = P + (1 if U % tau else 0)
    sums = np.zeros((M, n_per))
    np.add.at(sums.T, period, X.T)
    S = np.concatenate([[0.0], np.cumsum(sums.max(axis=0) + c)])
    within = (
        np.cumsum(X, axis=1)
        - np.concatenate([np.zeros((M, 1)), np.cumsum(sums, axis=1)], axis=1)[:, period]
    )
    ends = S[period][None, :] + within
    ex_update = np.repeat(np.arange(P), M)
    # S[r+1] and the period's last local step are the same sum in another order: take the max
    # so that rounding never puts an exchange before the step it follows.
    ex_time = np.maximum(S[1 : P + 1], ends[:, tau - 1 :: tau][:, :P].max(axis=0))
    return _replica_frame(
        run,
        ends,
        X,
        ex_update,
        ex_time[ex_update],
        np.tile(np.arange(M), P),
        (ex_update + 1) * tau,
        np.full(M * P, c),
    )


def replicas_async(run: Run) -> pd.DataFrame:
    """Each worker meets the centre every ``period`` local steps on its own clock, through the
    FIFO server link (service s = server_time, own push + pull m = message_time)."""
    M, U, tau, m, s = run.machines, run.updates, run.rule.period, run.message_time, run.server_time
    X = run.streams.matrix(U)[:, :U].copy()
    ends = np.empty((M, U))
    heap = []

    def run_period(w: int, t0: float, r: int) -> None:
        lo, hi = r * tau, min((r + 1) * tau, U)
        e = t0 + np.cumsum(X[w, lo:hi])
        ends[w, lo:hi] = e
        if hi - lo == tau:  # a full period ends in an exchange
            heapq.heappush(heap, (float(e[-1]), w, r))

    for w in range(M):
        run_period(w, 0.0, 0)
    exu, ext, exw, exv, exc = [], [], [], [], []
    serve = fifo_link(s)
    while heap:
        t, w, r = heapq.heappop(heap)
        done = serve(t + m - s)
        exu.append(len(exu))
        ext.append(done)
        exw.append(w)
        exv.append((r + 1) * tau)
        exc.append(done - t)
        if (r + 1) * tau < U:
            run_period(w, done, r + 1)
    return _replica_frame(
        run,
        ends,
        X,
        np.asarray(exu, dtype=np.int64),
        np.asarray(ext),
        np.asarray(exw, dtype=np.int64),
        np.asarray(exv, dtype=np.int64),
        np.asarray(exc),
    )
