"""The server paths of the real backend: rank 0 is the server, ranks 1..M the workers (worker w
is rank w + 1), and every message is point-to-point over gloo.

* :func:`server` / :func:`worker` (Backup, KBatchSync, Async, KAsync, KBatchAsync, and Sync
  through the server): the server's arithmetic is :class:`~toolkit.distributed.aggregate.
  Aggregator`. A worker pushes a header ``[version, batch, compute seconds, loss]`` and its
  gradient; the server replies ``[version]`` and the parameters, or ``[-1]`` to stop. A worker
  waits for its delay on its queue: new parameters arriving first cancel the gradient in
  progress (barrier schemes broadcast every update, as the clock cancels late workers);
  otherwise it pushes. Late gradients are received and dropped, never left pending (a gloo send
  completes only when matched).
* :func:`replica_server` / :func:`replica_worker` (asynchronous EASGD / EAMSGD, Zhang et al.
  2015, Algorithms 1-2): a worker takes ``period`` local steps, pushes its replica, and the
  server applies the scheme's exchange to it and the centre at once and replies with the
  worker's moved replica and its next gradient point.

On both sides a receiving thread feeds a queue, so no wait is a gloo ``wait(timeout)`` (which on
gloo closes the whole group). Workers beat a counter in the rendezvous store every
:data:`BEAT` seconds; the server's monitor reports a worker whose counter stopped as lost, and
the scheme goes on while enough workers are left (:class:`Workers`).
"""

from __future__ import annotations

import datetime
import os
import queue
import threading
import time
from collections.abc import Callable

import torch
import torch.distributed as dist

from toolkit.cluster.schedule import RowKind
from toolkit.distributed.aggregate import Aggregator
from toolkit.distributed.collective import Row
from toolkit.schemes.updates import Step

__all__ = ["replica_server", "replica_worker", "server", "worker"]

HEADER, GRAD, REPLY, PARAMS = 1, 2, 3, 4  # message tags
STOP, BYE = -1, -2
BEAT = 0.1  # seconds between a worker's heartbeats
# Silence after which the server counts a worker as gone: generous, because a live worker on a
# loaded machine misses beats (with 2 s, a test run at load average 13 on 2 cores counted a live
# worker as gone), while a dead one costs a scheme that can go on without it nothing meanwhile.
DEAD_AFTER = 100 * BEAT
NAN = float("nan")


def _receiver(q: queue.Queue, size: int, dtype: torch.dtype, workers: int) -> None:
    """Server side: any-source headers, then that source's tensor, into ``q`` until every worker
    has said goodbye (``("bye", rank)``). A worker lost in the middle of a message is reported
    as ``("lost", rank)``; the any-source receive goes on for the others."""
    byes = 0
    while byes < workers:
        header = torch.empty(4, dtype=torch.float64)
        try:
            src = dist.recv(header, src=None, tag=HEADER)  # any source; returns the sender
        except RuntimeError as err:
            q.put(("error", str(err)))
            return
        if int(header[0]) == BYE:
            byes += 1
            q.put(("bye", src))
            continue
        g = torch.empty(size, dtype=dtype)
        try:
            dist.recv(g, src=src, tag=GRAD)
        except RuntimeError:
            q.put(("lost", src))
            byes += 1  # it will not say goodbye
            continue
        q.put((src, header, g, time.monotonic()))


def _store() -> dist.TCPStore:
    """A client of the rendezvous store (``MASTER_ADDR``:``MASTER_PORT``) for heartbeats."""
    return dist.TCPStore(
        os.environ["MASTER_ADDR"],
        int(os.environ["MASTER_PORT"]),
        is_master=False,
        timeout=datetime.timedelta(seconds=30),
    )


def _heartbeat(rank: int, every: float = BEAT) -> None:
    """A worker's heartbeat: a counter in the store, incremented every ``every`` seconds."""
    store, key = _store(), f"toolkit/beat/{rank}"
    while True:
        store.add(key, 1)
        time.sleep(every)


def _monitor(q: queue.Queue, workers: int, dead_after: float = DEAD_AFTER) -> None:
    """The server's failure detector: a worker whose counter has not moved for ``dead_after``
    seconds is reported as ``("lost", rank)`` (a SIGKILLed process stops beating at once)."""
    store = _store()
    keys = [f"toolkit/beat/{w + 1}" for w in range(workers)]
    seen = [store.add(k, 0) for k in keys]
    moved = [time.monotonic()] * workers
    gone: set[int] = set()
    while len(gone) < workers:
        time.sleep(BEAT)
        now = time.monotonic()
        for w, k in enumerate(keys):
            if w in gone:
                continue
            value = store.add(k, 0)
            if value != seen[w]:
                seen[w], moved[w] = value, now
            elif now - moved[w] > dead_after:
                gone.add(w)
                q.put(("lost", w + 1))


class Workers:
    """The server's view of its workers: replies that notice a dead one, and the rule of how
    many a scheme needs (its quorum, unless a worker may fill it with several gradients or,
    asynchronous replicas, meets the centre alone)."""

    def __init__(self, r, done: Callable[[], bool]) -> None:
        self.r, self.done = r, done
        self.count = r.world - 1
        self.dead: set[int] = set()
        rule = r.scheme.rule
        self.need = 1 if rule.repeat or (not rule.barrier and rule.period) else rule.quorum

    def send(self, w: int, version: int, payload: torch.Tensor | None = None) -> None:
        if w in self.dead:
            return
        try:
            dist.send(torch.tensor([version], dtype=torch.int64), dst=w + 1, tag=REPLY)
            if version >= 0:
                dist.send(payload, dst=w + 1, tag=PARAMS)
        except RuntimeError:
            self.lost(w)

    def lost(self, w: int) -> None:
        """Mark worker w gone; raise when the scheme cannot go on without it."""
        if w in self.dead:
            return
        self.dead.add(w)
        alive = self.count - len(self.dead)
        if alive < self.need and not self.done():
            raise RuntimeError(
                f"server: worker {w} (rank {w + 1}) is gone and {alive} of {self.count} workers "
                f"are left; {self.r.scheme} needs {self.need}"
            )


def _next(q: queue.Queue, timeout: float, pool: Workers):
    """The server's next item from its queue: a push ``(src, header, tensor, arrived)``,
    ``("bye", rank)`` or ``("lost", rank)``, a lost worker handled first (which may end the
    run). A loss is returned, not waited past, so that the caller's loop sees it: the last
    worker's loss can come after every other worker has said goodbye."""
    try:
        item = q.get(timeout=timeout)
    except queue.Empty:
        raise TimeoutError(f"server: no message from a worker within {timeout:g} s") from None
    if item[0] == "error":
        raise RuntimeError(f"server: receiving failed: {item[1]}")
    if item[0] == "lost":
        pool.lost(item[1] - 1)
    return item


def _start_server(r, size: int, dtype: torch.dtype, pool: Workers) -> queue.Queue:
    q: queue.Queue = queue.Queue()
    args = (q, size, dtype, pool.count)
    threading.Thread(target=_receiver, args=args, daemon=True).start()
    threading.Thread(target=_monitor, args=(q, pool.count), daemon=True).start()
    return q


# ------------------------------------------------------------------ shared parameters
def server(r, t0: float) -> torch.Tensor:
    agg = Aggregator(
        r.scheme,
        r.fm.flat(),
        lr=r.lr,
        momentum=r.config.momentum,
        nesterov=r.config.nesterov,
        staleness=r.staleness,
    )
    rule = r.scheme.rule
    pool = Workers(r, lambda: agg.version >= r.updates)
    broadcast = rule.barrier  # every update restarts every worker (the clock cancels the late)
    reply_now = rule.repeat  # K-batch: the pusher fetches the newest parameters at once
    saved = r.restored()
    if saved is not None:
        agg.restore(saved)
    q = _start_server(r, agg.params.numel(), agg.params.dtype, pool)
    for w in range(pool.count):
        pool.send(w, agg.version, agg.params)
    waiting = []
    timeout = float(r.job["wait_timeout"])
    while agg.version < r.updates:
        item = _next(q, timeout, pool)
        if item[0] in ("bye", "lost"):
            continue
        src, header, g, arrived = item
        w = src - 1
        version, batch = int(header[0]), int(header[1])
        before = agg.version
        a = agg.push(w, version, g)
        compute, loss = float(header[2]), float(header[3])
        r.record(
            Row(RowKind.GRAD, a.update, arrived - t0, w, version, a.used, batch, compute, NAN, loss)
        )
        if agg.version > before:
            now = time.monotonic() - t0
            r.record({"update": before, "time": now})  # its used rows' time
            r.snapshot(agg.version, agg.params)
            if r.due(agg.version):
                r.checkpoint(agg.version, agg.state() | {"time": now})
            if agg.version == r.updates:
                break
            targets = range(pool.count) if broadcast else [*waiting, w]
            waiting = []
            for v in targets:
                pool.send(v, agg.version, agg.params)
        elif not a.used:
            pass  # stale under a barrier: the worker has the broadcast of the newer version
        elif reply_now:
            pool.send(w, agg.version, agg.params)
        else:
            waiting.append(w)
    for w in range(pool.count):
        pool.send(w, STOP)
    return agg.params


def _take(q: queue.Queue, seconds: float, w: int, *, wait: bool = True):
    """Worker w's next message within ``seconds``: ``(version, tensor)``, or None to stop.
    When none comes: False if ``wait`` is False (the delay ran out), else a TimeoutError.
    A lost server is a RuntimeError."""
    try:
        msg = q.get(timeout=seconds) if seconds > 0 else q.get_nowait()
    except queue.Empty:
        if not wait:
            return False
        raise TimeoutError(f"worker {w}: no reply from the server within {seconds:g} s") from None
    if msg is not None and msg[0] == "lost":
        raise RuntimeError(f"worker {w}: lost the server (rank 0): {msg[1]}")
    return msg


def _start_worker(r, size: int) -> queue.Queue:
    """The worker's receiving thread (replies of ``size`` values into the queue) and heartbeat."""
    q: queue.Queue = queue.Queue()
    dtype = r.fm.dtype

    def receive() -> None:
        try:
            while True:
                header = torch.empty(1, dtype=torch.int64)
                dist.recv(header, src=0, tag=REPLY)
                if int(header[0]) == STOP:
                    q.put(None)
                    return
                payload = torch.empty(size, dtype=dtype)
                dist.recv(payload, src=0, tag=PARAMS)
                q.put((int(header[0]), payload))
        except RuntimeError as err:  # the server is gone
            q.put(("lost", str(err)))

    threading.Thread(target=receive, daemon=True).start()
    threading.Thread(target=_heartbeat, args=(r.rank,), daemon=True).start()
    return q


def _push(header: list[float], tensor: torch.Tensor) -> None:
    dist.send(torch.tensor(header, dtype=torch.float64), dst=0, tag=HEADER)
    dist.send(tensor, dst=0, tag=GRAD)


def _bye() -> None:
    try:
        dist.send(torch.tensor([BYE, 0, 0, 0], dtype=torch.float64), dst=0, tag=HEADER)
    except RuntimeError:
        pass  # the server has finished and gone: nothing was left to say


def worker(r, t0: float) -> None:
    w = r.rank - 1
    q = _start_worker(r, r.fm.size)
    timeout = float(r.job["wait_timeout"])
    j = int(r.resume["start_batch"].get(str(w), 0)) if r.resume else 0
    msg = _take(q, timeout, w)
    while msg is not None:
        version, params = msg
        start = time.monotonic()
        g, loss = r.gradient(w, j, params)
        msg = _take(q, r.delay(w, j) - (time.monotonic() - start), w, wait=False)
        if msg is not False:  # new parameters (or stop) before the delay ended: cancelled
            if msg is not None or r.scheme.rule.barrier:  # a dropped gradient of that update
                now = time.monotonic()
                took = now - start
                r.record(
                    Row(RowKind.GRAD, version, now - t0, w, version, False, j, took, NAN, loss)
                )
            j += 1
            continue
        try:
            _push([version, j, time.monotonic() - start, loss], g)
        except RuntimeError:  # the server has finished and gone (had it failed, the launcher
            return  # names it: rank 0 is never survivable)
        j += 1
        msg = _take(q, timeout, w)
    _bye()


# ------------------------------------------------------------------ asynchronous replicas
def _values(moved, xs: torch.Tensor) -> torch.Tensor:
    return moved.apply(xs) if isinstance(moved, Step) else moved


def replica_server(r, t0: float) -> torch.Tensor:
    """Asynchronous EASGD's centre: each push is one centre update (module docstring). A push
    carries the worker's replica and its local rule's state (EAMSGD's velocity), so the
    server's checkpoint holds every worker's state at its last exchange: a consistent cut."""
    rules = r.scheme.updates(r.lr)
    centre = r.fm.flat()
    state = rules.exchange.init(centre)
    size = centre.numel()
    carries = rules.local.momentum > 0  # a velocity travels with the replica
    pool = Workers(r, lambda: False)
    k, workers = 0, {}
    saved = r.restored()
    if saved is not None:
        centre, state, workers = saved["centre"], saved["exchange"], saved["workers"]
        k = int(saved["k"])
    q = _start_server(r, size * (2 if carries else 1), centre.dtype, pool)
    timeout = float(r.job["wait_timeout"])
    byes: set[int] = set()
    while len(byes | pool.dead) < pool.count:
        item = _next(q, timeout, pool)
        if item[0] == "bye":
            byes.add(item[1] - 1)
        if item[0] in ("bye", "lost"):
            continue
        src, header, message, arrived = item
        w = src - 1
        xs = message[:size].unsqueeze(0)
        moved, points, centre, state = rules.exchange.apply(xs, centre, state)
        new = _values(moved, xs)[0]
        pool.send(w, k, torch.cat([new, points[0]]))
        now = time.monotonic()
        r.snapshot(k + 1, centre)
        steps = int(header[0])
        r.record(Row(RowKind.EXCHANGE, k, now - t0, w, steps, True, -1, 0.0, now - arrived, NAN))
        local = message[size:].clone() if carries else None
        workers[str(w)] = {"x": new, "point": points[0].clone(), "local": local, "steps": steps}
        k += 1
        if r.due(k):
            state_k = {"centre": centre, "exchange": state, "k": k, "workers": workers}
            r.checkpoint(k, state_k | {"time": now - t0})
    return centre


def replica_worker(r, t0: float) -> None:
    """A replica's local steps; every ``period`` steps a push to the centre and its reply."""
    w, tau = r.rank - 1, r.scheme.rule.period
    rules = r.scheme.updates(r.lr)
    q = _start_worker(r, 2 * r.fm.size)
    timeout = float(r.job["wait_timeout"])
    x = r.fm.flat()
    point, local = x, rules.local.init(x)
    first = 0
    saved = r.restored(rank=0)
    if saved is not None and str(w) in saved["workers"]:
        mine = saved["workers"][str(w)]
        x, point, first = mine["x"], mine["point"], int(mine["steps"])
        local = mine["local"] if mine["local"] is not None else local
    for t in range(first, r.updates):
        start = time.monotonic()
        g, loss, took = r.compute(w, t, rules.local.point(point, local))
        step, local = rules.local.update(g, local)
        x = point = step.apply(x)
        r.record(Row(RowKind.GRAD, t, start + took - t0, w, t, True, t, took, 0.0, loss))
        if (t + 1) % tau == 0:
            _push([t + 1, -1, 0.0, NAN], x if local is None else torch.cat([x, local]))
            msg = _take(q, timeout, w)
            if msg is None:
                break
            x, point = msg[1].view(2, -1).unbind(0)
    _bye()
