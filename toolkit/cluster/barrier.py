"""The clock's barrier paths: Sync, Backup, KBatchSync and Delayed (timing conventions:
docs/theory.md#the-clocks-timing-conventions).

Sync and Backup are vectorised (one sort over the (machines, updates) matrix of draws); KBatchSync
and Delayed loop over updates with numpy over workers; with failures, Sync and Backup loop over
updates and workers.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from toolkit.cluster.schedule import RowKind, make_frame, sort_shared
from toolkit.cluster.state import Run

__all__ = ["barrier", "barrier_failures", "delayed", "delayed_updates", "kbatch"]


def barrier(run: Run) -> pd.DataFrame:
    """Sync / Backup: d_u = q-th smallest of column u of the draws, A = cumsum(d + c)."""
    M, U, q, c = run.machines, run.updates, run.rule.quorum, run.exchange
    X = run.streams.matrix(U)[:, :U]
    if q < M:  # one stable argsort gives both the q-th value and the used set
        order = np.argsort(X, axis=0, kind="stable")
        d = np.take_along_axis(X, order[q - 1 : q], axis=0)[0]
        rank = np.empty((M, U), dtype=np.int64)
        np.put_along_axis(rank, order, np.arange(M)[:, None], axis=0)
        used = rank < q
    else:
        d = X.max(axis=0)
        used = np.ones((M, U), dtype=bool)
    A = np.cumsum(d + c)
    XT, usedT = X.T, used.T  # (U, M): rows ordered by update, then worker
    upd = np.repeat(np.arange(U), M)
    return make_frame(
        kind=RowKind.GRAD,
        update=upd,
        time=np.repeat(A, M),
        worker=np.tile(np.arange(M), U),
        version=upd,
        staleness=0,
        used=usedT.ravel(),
        batch=upd,
        compute_time=np.minimum(XT, d[:, None]).ravel(),
        comm_time=np.where(usedT, c, 0.0).ravel(),
    )


def barrier_failures(run: Run) -> pd.DataFrame:
    """Sync / Backup with failures: per update, each worker's finish through its down intervals;
    a worker still computing at the barrier is cancelled, one that is down adds no row."""
    M, U, q, c = run.machines, run.updates, run.rule.quorum, run.exchange
    tl, streams = run.timeline, run.streams
    ptr = np.zeros(M, dtype=np.int64)
    rows: list[tuple] = []
    S = 0.0
    for u in range(U):
        ends = np.array([tl.finish(w, S, streams.value(w, int(ptr[w])))[1] for w in range(M)])
        order = np.lexsort((np.arange(M), ends))
        T = ends[order[q - 1]]
        if math.isinf(T):
            dead = [w for w in range(M) if math.isinf(ends[w])]
            when = ", ".join(f"worker {w} failed at t={tl.dead_since(w):.6g}" for w in dead)
            run.stall(
                f"stalled at update {u} (t={S:.6g}): {len(dead)} of {M} workers failed and never "
                f"came back ({when}); the update needs {q} gradients"
            )
            break
        A = T + c
        used = np.zeros(M, dtype=bool)
        used[order[:q]] = True
        for w in range(M):
            x = streams.value(w, int(ptr[w]))
            if ends[w] <= T:  # finished: used, or dropped beyond the quorum
                spent = x
            else:  # cancelled at T if in flight then, nothing if down at T
                st = tl.attempt_at(w, S, T)
                if st is None:
                    continue
                spent = T - st
            rows.append((u, A, w, u, bool(used[w]), int(ptr[w]), spent, c * used[w]))
            ptr[w] += 1
        S = A
    cols = list(zip(*rows, strict=True)) if rows else [[]] * 8
    upd, time, worker, version, used, batch, ct, cm = (np.asarray(v) for v in cols)
    return sort_shared(
        make_frame(
            kind=RowKind.GRAD,
            update=upd.astype(np.int64),
            time=time,
            worker=worker,
            version=version.astype(np.int64),
            staleness=0,
            used=used,
            batch=batch,
            compute_time=ct,
            comm_time=cm,
        )
    )


def _kbatch_round(draws, ptr: np.ndarray, k: int, r: int, keys: dict) -> tuple[np.ndarray, ...]:
    """One K-batch-sync update from a common start: each worker runs ``r`` (grown until enough)
    batches back to back; the first k finishes (ties by worker id, then batch) are used.
    Returns (T, used, done, inflight, starts, D, r): the update's time from the start, then
    arrays of shape (M, r) over each worker's batches, and the r used. ``keys`` caches, per r,
    the row and batch indices and the tie-break keys."""
    M = len(ptr)
    while True:
        if r not in keys:
            keys[r] = (
                np.arange(M)[:, None],
                np.arange(r),
                np.tile(np.arange(r), M),
                np.repeat(np.arange(M), r),
            )
        rows_w, cols, jj, ww = keys[r]
        D = draws.matrix(int(ptr.max()) + r)[rows_w, ptr[:, None] + cols]
        ends = np.cumsum(D, axis=1)
        flat = ends.ravel()
        order = np.lexsort((jj, ww, flat))
        T = flat[order[k - 1]]
        if np.all(ends[:, -1] >= T):
            break
        r *= 2
    used = np.zeros(M * r, dtype=bool)
    used[order[:k]] = True
    starts = np.concatenate([np.zeros((M, 1)), ends[:, :-1]], axis=1)  # exact, not ends - D
    done = ends <= T
    return T, used.reshape(M, r), done, (~done) & (starts < T), starts, D, r


def kbatch(run: Run) -> pd.DataFrame:
    """K-batch-sync: per update each worker runs batches back to back from the update's start;
    the first k finishes (ties by worker id) are used, other finished ones and the batches in
    flight are dropped (dropped rows, as for Backup)."""
    M, U, k, c = run.machines, run.updates, run.rule.quorum, run.exchange
    ptr = np.zeros(M, dtype=np.int64)
    r = max(2, 2 * math.ceil(k / M))
    S = 0.0
    parts = []
    keys: dict = {}
    for u in range(U):
        T, used, done, inflight, starts, D, r = _kbatch_round(run.streams, ptr, k, r, keys)
        row = done | inflight
        w_idx, j_idx = np.nonzero(row)
        used_rows = used[w_idx, j_idx]
        A = S + T + c
        parts.append(
            (
                np.full(len(w_idx), u),
                np.full(len(w_idx), A),
                w_idx,
                used_rows,
                ptr[w_idx] + j_idx,
                np.where(done, D, T - starts)[w_idx, j_idx],
                np.where(used_rows, c, 0.0),
            )
        )
        ptr += row.sum(axis=1)
        S = A
    upd, time, worker, used, batch, spent, cm = (
        np.concatenate(p) for p in zip(*parts, strict=True)
    )
    return make_frame(
        kind=RowKind.GRAD,
        update=upd,
        time=time,
        worker=worker,
        version=upd,
        staleness=0,
        used=used,
        batch=batch,
        compute_time=spent,
        comm_time=cm,
    )


def delayed_updates(
    X: np.ndarray, delay: int, c: float, state: tuple | None = None
) -> tuple[np.ndarray, tuple]:
    """Update times of Delayed(n, delay) for step times ``X[..., w, t]`` (leading axes: independent
    clusters) and an exchange of ``c`` per update::

        S_wt = max(C_w,t-1, A_{t-delay-1}),  C_wt = S_wt + X_wt,  A_t = max(max_w C_wt, A_{t-1}) + c

    with C_w,-1 = A_{j<0} = 0 (worker w starts step t once its step t - 1 is done and update
    t - delay - 1 is applied; the link carries one exchange at a time). For delay = 0 this is
    A_t = A_{t-1} + max_w X_wt + c (Sync). Returns (A[..., t], state); pass ``state`` back to
    continue with the next steps' draws (the theory's Monte Carlo runs it in blocks)."""
    X = np.asarray(X, dtype=float)
    *batch, M, U = X.shape
    if state is None:
        state = (np.zeros((*batch, M)), np.zeros((delay + 1, *batch)), np.zeros(batch), 0)
    C, hist, prev, t0 = (s.copy() if isinstance(s, np.ndarray) else s for s in state)
    XT = np.moveaxis(X, -1, 0)
    A = np.empty((U, *batch))
    if not batch:  # one cluster (the clock): the per-step scalars as Python floats
        prev = float(prev)
        for i in range(U):
            if i > delay:  # A_{t-delay-1} from this call, else from the state's ring buffer
                np.maximum(C, A[i - delay - 1], out=C)
            elif t0 + i > delay:
                np.maximum(C, hist[(t0 + i - delay - 1) % (delay + 1)], out=C)
            C += XT[i]
            top = C.max()
            prev = (top if top > prev else prev) + c
            A[i] = prev
        for i in range(max(0, U - delay - 1), U):
            hist[(t0 + i) % (delay + 1)] = A[i]
        return A, (C, hist, np.asarray(prev), t0 + U)
    for i in range(U):
        t = t0 + i
        if t > delay:
            np.maximum(C, hist[(t - delay - 1) % (delay + 1)][..., None], out=C)
        C += XT[i]
        prev = np.maximum(C.max(axis=-1), prev) + c
        hist[t % (delay + 1)] = prev
        A[i] = prev
    return np.moveaxis(A, 0, -1), (C, hist, prev, t0 + U)


def delayed(run: Run) -> pd.DataFrame:
    """Delayed(n, d), d >= 1: the per-worker recursion of :func:`delayed_updates` (d = 0 is Sync
    and takes :func:`barrier`)."""
    M, U, d, c = run.machines, run.updates, run.rule.delay, run.exchange
    X = run.streams.matrix(U)[:, :U]
    A, _ = delayed_updates(X, d, c)
    upd = np.repeat(np.arange(U), M)
    version = np.maximum(upd - d, 0)
    return make_frame(
        kind=RowKind.GRAD,
        update=upd,
        time=np.repeat(A, M),
        worker=np.tile(np.arange(M), U),
        version=version,
        staleness=upd - version,
        used=True,
        batch=upd,
        compute_time=X.T.ravel(),
        comm_time=c,
    )
