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
    worker has said goodbye."""
    byes = 0
    while byes < workers:
        header = torch.empty(3, dtype=torch.int64)
        work = dist.irecv(header, src=None, tag=HEADER)
        work.wait()
        src = work._source_rank()
        if int(header[0]) == BYE:
            byes += 1
            continue
        g = torch.empty(size, dtype=dtype)
        dist.recv(g, src=src, tag=GRAD)
        q.put((src, header, g, time.monotonic()))


def server(r: Rank, t0: float) -> dict:
    agg = Aggregator(
        r.scheme, r.fm.flat(), lr=r.lr, momentum=r.config.momentum, staleness=r.staleness
    )
    rule, workers = r.scheme.rule, r.world - 1
    broadcast = rule.barrier  # every update restarts every worker (the clock cancels the late)
    reply_now = rule.repeat  # K-batch: the pusher fetches the newest parameters at once
    q: queue.Queue = queue.Queue()
    thread = threading.Thread(
        target=_receiver, args=(q, agg.params.numel(), agg.params.dtype, workers), daemon=True
    )
    thread.start()

    def send(w: int, version: int) -> None:
        dist.send(torch.tensor([version], dtype=torch.int64), dst=w + 1, tag=REPLY)
        if version >= 0:
            dist.send(agg.params, dst=w + 1, tag=PARAMS)

    for w in range(workers):
        send(w, 0)
    rows, times, waiting = [], [], []
    timeout = float(r.job["wait_timeout"])
    while agg.version < r.updates:
        try:
            src, header, g, arrived = q.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"server: no gradient within {timeout:g} s") from None
        w = src - 1
        version, batch, compute_ns = (int(v) for v in header)
        before = agg.version
        a = agg.push(w, version, g)
        rows.append([a.update, arrived - t0, w, version, a.used, batch, compute_ns / 1e9])
        if agg.version > before:
            times.append(time.monotonic() - t0)
            if agg.version == r.updates:
                break
            targets = range(workers) if broadcast else [*waiting, w]
            waiting = []
            for v in targets:
                send(v, agg.version)
        elif not a.used:
            pass  # stale under a barrier: the worker has the broadcast of the newer version
        elif reply_now:
            send(w, agg.version)
        else:
            waiting.append(w)
    for w in range(workers):
        send(w, STOP)
    thread.join(timeout=timeout)
    for row in rows:  # the time of a used gradient is its update's
        if row[4]:
            row[1] = times[row[0]]
    return {"rows": rows, "params": agg.params, "update_times": times}


def worker(r: Rank, t0: float) -> dict:
    w = r.rank - 1
    q: queue.Queue = queue.Queue()
    size, dtype = r.fm.size, r.fm.dtype

    def receive() -> None:
        while True:
            header = torch.empty(1, dtype=torch.int64)
            dist.recv(header, src=0, tag=REPLY)
            if int(header[0]) == STOP:
                q.put(None)
                return
            params = torch.empty(size, dtype=dtype)
            dist.recv(params, src=0, tag=PARAMS)
            q.put((int(header[0]), params))

    threading.Thread(target=receive, daemon=True).start()
    timeout = float(r.job["wait_timeout"])
    cancelled, j = [], 0
    msg = q.get(timeout=timeout)
    while msg is not None:
        version, params = msg
        start = time.monotonic()
        g = r.gradient(w, j, params)
        rest = r.delay(w, j) - (time.monotonic() - start)
        try:
            msg = q.get(timeout=max(rest, 0.0)) if rest > 0 else q.get_nowait()
        except queue.Empty:
            msg = False
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
        try:
            msg = q.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(
                f"worker {w}: no reply from the server within {timeout:g} s"
            ) from None
    dist.send(torch.tensor([BYE, 0, 0], dtype=torch.int64), dst=0, tag=HEADER)
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
        t0 = float(job.get("t0") or 0.0) or time.monotonic()
        t0_tensor = torch.tensor([t0], dtype=torch.float64)
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
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":  # JOB [RANK]; without RANK, torchrun's or srun's environment
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else int(os.environ["RANK"]))
