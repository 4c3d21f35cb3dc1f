"""One rank of a distributed run (``python -m toolkit.distributed.process JOB [RANK]``; without
RANK it reads ``RANK`` from the environment, as torchrun and ``srun`` set it).

The job file (JSON) holds the RunConfig, the number of updates, the straggler time scale and the
output folder. Every rank builds the same model from the seed, the same per-worker data stream
as replay (:class:`~toolkit.replay.batched.DataStream`: worker w's j-th gradient uses its batch j)
and the same per-worker step-time streams as the clock (``Streams(model, machines,
child_seed(seed, 0))``): worker w's j-th gradient takes its j-th draw times ``time_scale``
seconds, the real gradient computation included (the rest is slept), or the real time where that
is longer; measured step time = compute + communication + the server's work.

Two paths:

* collective (Sync): n ranks, every step each computes its gradient, sleeps its delay, and the
  mean comes from ``all_reduce``; every rank applies the scheme's update.
* server (Backup, KBatchSync, Async, KAsync, KBatchAsync): rank 0 is the server
  (:class:`~toolkit.distributed.aggregate.Aggregator`), ranks 1..M the workers. Messages are
  point-to-point: a worker pushes a header ``[version, batch, compute_ns]`` and its gradient; the
  server replies with ``[version]`` and the parameters, or ``[-1]`` to stop. On both sides a
  receiving thread feeds a queue, so no wait is a gloo ``wait(timeout)`` (which on gloo closes
  the whole group). A worker waits for its delay on that queue: new parameters arriving first
  cancel the gradient in progress (barrier schemes broadcast every update, as the clock cancels
  late workers); otherwise it pushes. Late gradients are received and dropped, never left
  pending (a gloo send completes only when matched).
"""

from __future__ import annotations

import datetime
import json
import os
import queue
import sys
import threading
import time
import traceback
from pathlib import Path

import torch
import torch.distributed as dist

from toolkit.distributed.aggregate import Aggregator
from toolkit.models import as_compute, parse_compute
from toolkit.models.seeds import child_seed
from toolkit.models.stragglers import Streams
from toolkit.replay.batched import DataStream, FlatModel, batches
from toolkit.runs.config import RunConfig
from toolkit.schemes.updates import Staleness
from toolkit.workloads import get_workload

HEADER, GRAD, REPLY, PARAMS = 1, 2, 3, 4  # message tags
STOP, BYE = -1, -2
BEAT = 0.1  # seconds between a worker's heartbeats


class Rank:
    """What every rank builds alike from the job: model, data, step-time streams, update rule."""

    def __init__(self, job: dict, rank: int, world: int) -> None:
        self.job, self.rank, self.world = job, rank, world
        self.config = config = RunConfig.from_dict(job["config"])
        self.scheme = config.scheme
        workload = get_workload(config.workload, **config.workload_args).with_dtype(config.dtype)
        self.workload = workload
        self.machines = self.scheme.rule.machines
        self.lr = workload.lr if config.lr is None else config.lr
        batch = workload.batch_size if config.batch_size is None else config.batch_size
        self.stream = DataStream(workload.n_train, self.machines, batch, config.seed)
        self.fm = FlatModel(workload.make_model(config.seed), workload.loss)
        self.data = {"x": workload.x_train, "y": workload.y_train}
        model = as_compute(parse_compute(config.compute))
        self.delays = Streams(model, self.machines, child_seed(config.seed, 0))
        self.scale = float(job["time_scale"]) if job["inject"] else 0.0
        self.updates = int(job["updates"])
        self.staleness = Staleness(config.staleness, config.max_staleness)

    def gradient(self, worker: int, j: int, params: torch.Tensor) -> torch.Tensor:
        x, y = batches(self.data, self.stream.indices(worker, j))
        g, _ = self.fm.grad(params, x, y)
        return g

    def delay(self, worker: int, j: int) -> float:
        return self.delays.value(worker, j) * self.scale


# ------------------------------------------------------------------ collective
def collective(r: Rank, t0: float) -> dict:
    params = r.fm.flat()
    rules = r.scheme.updates(r.lr, momentum=r.config.momentum, staleness=r.staleness)
    state = rules.optimizer.init(params)
    rows = []
    for u in range(r.updates):
        start = time.monotonic()
        g = r.gradient(r.rank, u, params)
        time.sleep(max(r.delay(r.rank, u) - (time.monotonic() - start), 0.0))
        compute = time.monotonic() - start
        dist.all_reduce(g)
        g.div_(r.world)
        step, state = rules.optimizer.update(g, state)
        params = step.apply(params)
        now = time.monotonic()
        rows.append((u, now - t0, r.rank, u, 0, True, u, compute, now - start - compute))
    return {"rows": rows, "params": params if r.rank == 0 else None}


# ------------------------------------------------------------------ server
def _receiver(q: queue.Queue, size: int, dtype: torch.dtype, workers: int) -> None:
    """Server side: any-source headers, then that source's gradient, into ``q`` until every
    worker has said goodbye. A worker lost in the middle of a message is reported as
    ``("lost", rank)``; the any-source receive goes on for the others."""
    byes = 0
    while byes < workers:
        header = torch.empty(3, dtype=torch.int64)
        try:
            work = dist.irecv(header, src=None, tag=HEADER)
            work.wait()
        except RuntimeError as err:
            q.put(("error", str(err)))
            return
        src = work._source_rank()
        if int(header[0]) == BYE:
            byes += 1
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


def _monitor(q: queue.Queue, workers: int, dead_after: float = 20 * BEAT) -> None:
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


class _Workers:
    """The server's view of its workers: sends that notice a dead one, and the rule of how
    many a scheme needs (its quorum, unless a worker may fill it with several gradients)."""

    def __init__(self, r: Rank, agg: Aggregator) -> None:
        self.r, self.agg = r, agg
        self.count = r.world - 1
        self.dead: set[int] = set()

    def send(self, w: int, version: int) -> None:
        if w in self.dead:
            return
        try:
            dist.send(torch.tensor([version], dtype=torch.int64), dst=w + 1, tag=REPLY)
            if version >= 0:
                dist.send(self.agg.params, dst=w + 1, tag=PARAMS)
        except RuntimeError:
            self.lost(w)

    def lost(self, w: int) -> None:
        """Mark worker w gone; raise when the scheme cannot go on without it."""
        if w in self.dead:
            return
        self.dead.add(w)
        rule, alive = self.r.scheme.rule, self.count - len(self.dead)
        need = 1 if rule.repeat else rule.quorum
        if alive < need and self.agg.version < self.r.updates:
            raise RuntimeError(
                f"server: worker {w} (rank {w + 1}) is gone and {alive} of {self.count} workers "
                f"are left; {self.r.scheme} needs {need}"
            )


def server(r: Rank, t0: float) -> dict:
    agg = Aggregator(
        r.scheme, r.fm.flat(), lr=r.lr, momentum=r.config.momentum, staleness=r.staleness
    )
    rule = r.scheme.rule
    pool = _Workers(r, agg)
    broadcast = rule.barrier  # every update restarts every worker (the clock cancels the late)
    reply_now = rule.repeat  # K-batch: the pusher fetches the newest parameters at once
    q: queue.Queue = queue.Queue()
    size, dtype = agg.params.numel(), agg.params.dtype
    thread = threading.Thread(target=_receiver, args=(q, size, dtype, pool.count), daemon=True)
    thread.start()
    threading.Thread(target=_monitor, args=(q, pool.count), daemon=True).start()
    for w in range(pool.count):
        pool.send(w, 0)
    rows, times, waiting = [], [], []
    timeout = float(r.job["wait_timeout"])
    while agg.version < r.updates:
        try:
            item = q.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"server: no gradient within {timeout:g} s") from None
        if item[0] == "error":
            raise RuntimeError(f"server: receiving failed: {item[1]}")
        if item[0] == "lost":
            pool.lost(item[1] - 1)
            continue
        src, header, g, arrived = item
        w = src - 1
        version, batch, compute_ns = (int(v) for v in header)
        before = agg.version
        a = agg.push(w, version, g)
        rows.append([a.update, arrived - t0, w, version, a.used, batch, compute_ns / 1e9])
        if agg.version > before:
            times.append(time.monotonic() - t0)
            if agg.version == r.updates:
                break
            targets = range(pool.count) if broadcast else [*waiting, w]
            waiting = []
            for v in targets:
                pool.send(v, agg.version)
        elif not a.used:
            pass  # stale under a barrier: the worker has the broadcast of the newer version
        elif reply_now:
            pool.send(w, agg.version)
        else:
            waiting.append(w)
    for w in range(pool.count):
        pool.send(w, STOP)
    if not pool.dead:
        thread.join(timeout=timeout)
    for row in rows:  # the time of a used gradient is its update's
        if row[4]:
            row[1] = times[row[0]]
    return {"rows": rows, "params": agg.params, "dead": sorted(pool.dead)}


def _take(q: queue.Queue, seconds: float, w: int, *, wait: bool = True):
    """Worker w's next message within ``seconds``: ``(version, params)``, or None to stop.
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


def worker(r: Rank, t0: float) -> dict:
    w = r.rank - 1
    q: queue.Queue = queue.Queue()
    size, dtype = r.fm.size, r.fm.dtype

    def receive() -> None:
        try:
            while True:
                header = torch.empty(1, dtype=torch.int64)
                dist.recv(header, src=0, tag=REPLY)
                if int(header[0]) == STOP:
                    q.put(None)
                    return
                params = torch.empty(size, dtype=dtype)
                dist.recv(params, src=0, tag=PARAMS)
                q.put((int(header[0]), params))
        except RuntimeError as err:  # the server is gone
            q.put(("lost", str(err)))

    threading.Thread(target=receive, daemon=True).start()
    threading.Thread(target=_heartbeat, args=(r.rank,), daemon=True).start()
    timeout = float(r.job["wait_timeout"])
    cancelled, j = [], 0
    msg = _take(q, timeout, w)
    while msg is not None:
        version, params = msg
        start = time.monotonic()
        g = r.gradient(w, j, params)
        msg = _take(q, r.delay(w, j) - (time.monotonic() - start), w, wait=False)
        if msg is not False:  # new parameters (or stop) before the delay ended: cancelled
            if msg is not None or r.scheme.rule.barrier:  # a dropped gradient of that update
                now = time.monotonic()
                cancelled.append([version, now - t0, w, version, False, j, now - start])
            j += 1
            continue
        compute_ns = int((time.monotonic() - start) * 1e9)
        dist.send(torch.tensor([version, j, compute_ns], dtype=torch.int64), dst=0, tag=HEADER)
        dist.send(g, dst=0, tag=GRAD)
        j += 1
        msg = _take(q, timeout, w)
    try:
        dist.send(torch.tensor([BYE, 0, 0], dtype=torch.int64), dst=0, tag=HEADER)
    except RuntimeError:
        pass  # the server has finished and gone: nothing was left to say
    return {"cancelled": cancelled}


def main(job_path: str, rank: int) -> None:
    job = json.loads(Path(job_path).read_text())
    world = int(os.environ["WORLD_SIZE"])
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=float(job["pg_timeout"])),
    )
    try:
        r = Rank(job, rank, world)
        dist.barrier()
        (Path(job["out"]) / f"rank{rank}.ready").touch()  # for whoever watches the run
        t0_tensor = torch.tensor([time.monotonic()], dtype=torch.float64)
        dist.broadcast(t0_tensor, src=0)  # one clock origin (one machine: CLOCK_MONOTONIC)
        t0 = float(t0_tensor)
        if job["collective"]:
            out = collective(r, t0)
        elif rank == 0:
            out = server(r, t0)
        else:
            out = worker(r, t0)
        params = out.pop("params", None)
        folder = Path(job["out"])
        if params is not None:
            torch.save(params, folder / "params.pt")
        (folder / f"rank{rank}.json").write_text(json.dumps(out))
    except BaseException:
        # A receiving thread may be blocked on a peer that is gone: the interpreter's teardown
        # would wait on it or abort, so report and leave at once.
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    # Receiving threads may still wait on peers that have finished or died; the process's end
    # closes every connection, so leave without the group's teardown.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":  # JOB [RANK]; without RANK, torchrun's or srun's environment
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else int(os.environ["RANK"]))
