"""The clock's asynchronous paths: Async, KBatchAsync and KAsync, and the FIFO server link they
share with asynchronous EASGD (timing conventions: docs/theory.md#the-clocks-timing-conventions).

With independent workers and no shared link the arrival times of worker w are cumulative sums of
its own cycle times and the update order is their merge (:func:`async_merge`, no event loop); a
shared link or failures need an event heap (:func:`async_heap`); K-async workers wait for each
other (:func:`kasync`, a loop over updates, numpy over workers).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from toolkit.cluster.schedule import RowKind, make_frame, sort_shared
from toolkit.cluster.state import Run

__all__ = ["async_heap", "async_merge", "fifo_link", "kasync"]


def fifo_link(service: float) -> Callable[[float], float]:
    """The parameter server's link: a FIFO queue with a fixed service time ``service`` = s. The
    returned ``serve(a)`` is the time the message that reaches the link at a is done,
    D = max(a, D_previous) + s (a closure: it runs once per event of the heap paths)."""
    s = float(service)
    free = 0.0

    def serve(arrival: float) -> float:
        nonlocal free
        free = (arrival if arrival > free else free) + s
        return free

    return serve


def async_merge(run: Run) -> pd.DataFrame:
    """No interaction: arrivals of worker w = cumsum of (X_wj + m); the update order is their
    merge (a stable argsort over the worker-major concatenation: ties by worker id).

    Ragged: worker w gets its own number of draws L_w, grown (by rate extrapolation) only for the
    workers whose last drawn arrival precedes the candidate N-th arrival, so memory is O(N + n)
    whatever the spread of worker speeds."""
    M, k, m = run.machines, run.rule.quorum, run.message_time
    N = run.updates * k
    streams = run.streams
    L = np.full(M, math.ceil(1.1 * N / M) + 16, dtype=np.int64)
    arrs: list[np.ndarray] = [np.empty(0)] * M
    grow = np.arange(M)
    while True:
        for w in grow:
            streams.ensure_worker(int(w), int(L[w]))
            x = streams.rows[w][: L[w]]
            arrs[w] = np.cumsum(x + m) if m else np.cumsum(x)
        last = np.array([a[-1] for a in arrs])
        flat = np.concatenate(arrs)
        T = np.partition(flat, N - 1)[N - 1]
        grow = np.flatnonzero(last < T)
        if grow.size == 0:
            break
        # a worker short of T needs about L T / last draws: ask for 10% more (at least 2x)
        L[grow] = np.maximum(2 * L[grow], np.ceil(1.1 * L[grow] * T / last[grow]) + 16)
    offsets = np.concatenate([[0], np.cumsum(L)])
    cand = np.flatnonzero(flat <= T)  # only arrivals <= T can be among the first N
    order = cand[np.argsort(flat[cand], kind="stable")][:N]
    worker = np.repeat(np.arange(M), L)[order]
    j = order - offsets[worker]
    times = flat[order]
    ends = times[k - 1 :: k]  # update u is applied when its k-th gradient arrives
    # the worker restarted at its previous arrival and read every update applied by then
    restart = np.where(j > 0, flat[order - 1], 0.0)
    version = np.searchsorted(ends, restart, side="right")
    upd = np.arange(N) // k
    if k > 1:
        times = np.repeat(ends, k)
    compute = np.concatenate([streams.rows[w][: L[w]] for w in range(M)])[order]
    frame = make_frame(
        kind=RowKind.GRAD,
        update=upd,
        time=times,
        worker=worker,
        version=version,
        staleness=upd - version,
        used=True,
        batch=j,
        compute_time=compute,
        comm_time=m,
    )
    return sort_shared(frame) if k > 1 else frame


def async_heap(run: Run) -> pd.DataFrame:
    """Event heap: the FIFO server link (:func:`fifo_link`) and/or failures. A worker that finishes
    computing at f reaches the link at f + m - s and its update is applied when the link is done
    with it; it then restarts (after a failure: when it comes back) and reads the parameters."""
    M, k, m, s = run.machines, run.rule.quorum, run.message_time, run.server_time
    lat = m - s  # time outside the link: the worker reaches the link at f + lat
    N = run.updates * k
    streams, tl = run.streams, run.timeline
    ptr = [0] * M
    heap: list[tuple[float, int, float, float]] = []
    draws, drawn = streams.rows, streams.length  # the stream's own storage, read in place

    def start(w: int, t: float) -> None:
        j = ptr[w]
        if j >= drawn[w]:
            streams.ensure_worker(w, j + 1)
        x = float(draws[w][j])
        if tl is None:
            heapq.heappush(heap, (t + x, w, x, t))
        else:
            st, f = tl.finish(w, t, x)  # reads the parameters when it (re)starts, at st
            if not math.isinf(f):
                heapq.heappush(heap, (f, w, x, st))

    for w in range(M):
        start(w, 0.0)
    cols: list[list] = [[] for _ in range(6)]
    R_time, R_w, R_start, R_batch, R_ct, R_f = cols
    serve = fifo_link(s)
    push, pop = heapq.heappush, heapq.heappop
    i = 0
    while i < N:
        if not heap:
            dead = ", ".join(f"worker {w} failed at t={tl.dead_since(w):.6g}" for w in range(M))
            run.stall(f"stalled after {i // k} updates: every worker failed ({dead})")
            break
        f, w, x, st = pop(heap)
        done = serve(f + lat)
        j = ptr[w]
        R_time.append(done)
        R_w.append(w)
        R_start.append(st)
        R_batch.append(j)
        R_ct.append(x)
        R_f.append(f)
        i += 1
        ptr[w] = j = j + 1
        if tl is not None:
            start(w, done)
            continue
        if j >= drawn[w]:  # start(w, done), inlined on the path without failures
            streams.ensure_worker(w, j + 1)
        x = float(draws[w][j])
        push(heap, (done + x, w, x, done))
    times, worker, restart, batch, ct, fin = (np.asarray(c, dtype=float) for c in cols)
    upd = np.arange(len(times), dtype=np.int64) // k
    cm = times - fin
    full = (len(upd) // k) * k
    used = np.arange(len(upd)) < full
    ends = times[k - 1 : full : k].copy()  # update times, non-decreasing
    if k > 1 and full:
        times[:full] = np.repeat(ends, k)
    # a gradient reads every update applied by the time its worker (re)started
    version = np.searchsorted(ends, restart, side="right")
    return sort_shared(
        make_frame(
            kind=RowKind.GRAD,
            update=upd,
            time=times,
            worker=worker.astype(np.int64),
            version=version,
            staleness=np.where(used, upd - version, 0),
            used=used,
            batch=batch.astype(np.int64),
            compute_time=ct,
            comm_time=cm,
        )
    )


def kasync(run: Run) -> pd.DataFrame:
    """K-async (Dutta et al., AISTATS 2018, Sec. 2.3): update u waits for the first k workers to
    finish (ties by worker id), is applied at A_u = (k-th finish) + c with c = exchange_time
    among k, and only those k restart, at A_u, reading version u + 1; the others keep computing on
    the version they started from, so their gradients arrive stale in a later update."""
    M, U, k, c = run.machines, run.updates, run.rule.quorum, run.exchange
    streams = run.streams
    ptr = np.zeros(M, dtype=np.int64)
    version = np.zeros(M, dtype=np.int64)
    x = np.array([streams.value(w, 0) for w in range(M)])
    finish = x.copy()
    R = np.empty((U, 6, k))  # per update: worker, version, batch, time, compute time, update
    for u in range(U):
        kth = np.partition(finish, k - 1)[k - 1]
        cand = np.flatnonzero(finish <= kth)  # ties included; then by worker id
        sel = cand[np.lexsort((cand, finish[cand]))][:k]
        A = finish[sel].max() + c
        row = R[u]  # a view: columns filled in place, the scalars broadcast
        row[0], row[1], row[2], row[3], row[4], row[5] = sel, version[sel], ptr[sel], A, x[sel], u
        ptr[sel] += 1
        version[sel] = u + 1
        x[sel] = streams.values(sel, ptr[sel])
        finish[sel] = A + x[sel]
    sel, ver, batch, time, ct, upd = (R[:, i, :].ravel() for i in range(6))
    upd = upd.astype(np.int64)
    ver = ver.astype(np.int64)
    return sort_shared(
        make_frame(
            kind=RowKind.GRAD,
            update=upd,
            time=time,
            worker=sel.astype(np.int64),
            version=ver,
            staleness=upd - ver,
            used=True,
            batch=batch.astype(np.int64),
            compute_time=ct,
            comm_time=c,
        )
    )
