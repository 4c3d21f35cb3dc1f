"""One rank of a distributed run (``python -m toolkit.distributed.process JOB [RANK]``; without
RANK it reads ``RANK`` from the environment, as torchrun and ``srun`` set it).

The job file (JSON) holds the RunConfig, the number of updates, the straggler time scale and the
output folder. Every rank builds the same model from the seed, the same per-worker data stream
as replay (:class:`~toolkit.replay.batched.DataStream`: worker w's j-th gradient uses its batch j)
and the same per-worker step-time streams as the clock (``Streams(model, machines,
child_seed(seed, 0))``): worker w's j-th gradient takes its j-th draw times ``time_scale``
seconds, the real gradient computation included (the rest is slept), or the real time where that
is longer; measured step time = compute + communication + the server's work.

The job's ``path`` names what rank 0 and the other ranks run (:data:`PATHS`): the collective
paths (:mod:`toolkit.distributed.collective`: Sync and Delayed, the synchronous replica schemes)
or the server paths (:mod:`toolkit.distributed.server`: rank 0 the server, ranks 1..M the
workers). Each rank writes ``rank<r>.rows`` (its rows, as it goes); rank 0 returns the final
parameters (the centre for replica schemes), saved as ``params.pt``.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import time
import traceback
from pathlib import Path

import torch
import torch.distributed as dist

from toolkit.distributed import collective, server
from toolkit.distributed.launch import world_size
from toolkit.files import atomic_write
from toolkit.models import as_compute, parse_compute
from toolkit.models.seeds import child_seed
from toolkit.models.stragglers import Streams
from toolkit.replay.batched import DataStream, FlatModel, batches
from toolkit.runs.config import RunConfig
from toolkit.runs.engine import prepare
from toolkit.schemes.updates import Staleness

PATHS = {  # path: (what rank 0 runs, what the other ranks run)
    "shared": (collective.shared, collective.shared),
    "replicas": (collective.replicas, collective.replicas),
    "server": (server.server, server.worker),
    "replica_server": (server.replica_server, server.replica_worker),
}


class Rank:
    """What every rank builds alike from the job: model, data, step-time streams, update rule."""

    def __init__(self, job: dict, rank: int, world: int) -> None:
        self.job, self.rank, self.world = job, rank, world
        self.config = config = RunConfig.from_dict(job["config"])
        self.scheme = config.scheme
        prep = prepare(config)
        self.workload = workload = prep.workload
        self.machines = self.scheme.rule.machines
        self.lr = prep.lr
        self.stream = DataStream(workload.n_train, self.machines, prep.batch_size, config.seed)
        self.fm = FlatModel(workload.make_model(config.seed), workload.loss)
        self.data = {"x": workload.x_train, "y": workload.y_train}
        model = as_compute(parse_compute(config.compute))
        self.delays = Streams(model, self.machines, child_seed(config.seed, 0))
        self.scale = float(job["time_scale"]) if job["inject"] else 0.0
        self.updates = int(job["updates"])
        self.staleness = Staleness(config.staleness, config.max_staleness)
        self.rules = self.scheme.updates(
            self.lr, momentum=config.momentum, nesterov=config.nesterov, staleness=self.staleness
        )  # the scheme's update math, as replay applies it
        log = Path(job["out"]) / f"rank{rank}.rows"
        before = log.read_text().count("\n") if log.exists() else 0  # kept by a resume
        self._log = log.open("a", buffering=1)
        self.eval_every = int(job.get("eval_every") or 0)
        self.resume = job.get("resume")  # {"row": k, "time": seconds, ...}: go on from row k
        self.lines = before  # entries in this rank's log
        self._kept: list[Path] = []  # this rank's checkpoints, newest last
        self.keep = 2  # how many of them

    def due(self, done: int) -> bool:
        """Whether row ``done`` is an evaluation point (snapshot and checkpoint)."""
        return bool(self.eval_every) and done % self.eval_every == 0

    def checkpoint(self, done: int, state: dict) -> None:
        """This rank's ``state`` after row ``done`` as ``ckpt<done>_rank<r>.pt`` (written
        atomically, :func:`toolkit.files.atomic_write`); the :attr:`keep` newest are kept."""
        path = Path(self.job["out"]) / f"ckpt{done}_rank{self.rank}.pt"
        atomic_write(path, lambda tmp: torch.save({**state, "lines": self.lines}, tmp))
        self._kept.append(path)
        while len(self._kept) > self.keep:
            self._kept.pop(0).unlink(missing_ok=True)

    def restored(self, rank: int | None = None) -> dict | None:
        """The checkpoint to go on from (``rank``'s, default this rank's), or None."""
        if self.resume is None:
            return None
        name = f"ckpt{self.resume['row']}_rank{self.rank if rank is None else rank}.pt"
        return torch.load(Path(self.job["out"]) / name, weights_only=True)

    def snapshot(self, done: int, params: torch.Tensor) -> None:
        """Keep the parameters after row ``done`` (update, or centre update) at the evaluation
        points (every ``eval_every`` rows) as ``snap<done>.pt``, evaluated after the run so that
        evaluation takes no time from the measured run."""
        if self.due(done):
            torch.save(params.clone(), Path(self.job["out"]) / f"snap{done}.pt")

    def record(self, entry: tuple | dict) -> None:
        """Append a row (:class:`toolkit.distributed.collective.Row`) or a note (a dict)
        to this rank's log, one JSON line each, written at once: a rank killed mid-run leaves
        every row it recorded."""
        self._log.write(json.dumps(entry) + "\n")
        self.lines += 1

    def gradient(self, worker: int, j: int, point: torch.Tensor) -> tuple[torch.Tensor, float]:
        """Worker ``worker``'s gradient j (its batch j) at ``point``, and the batch's loss."""
        x, y = batches(self.data, self.stream.indices(worker, j))
        g, loss = self.fm.grad(point, x, y)
        return g, float(loss)

    def compute(self, worker: int, j: int, point: torch.Tensor) -> tuple:
        """:meth:`gradient`, then the rest of its injected delay slept: (gradient, loss,
        seconds from start to end)."""
        start = time.monotonic()
        g, loss = self.gradient(worker, j, point)
        rest = self.delay(worker, j) - (time.monotonic() - start)
        if rest > 0:  # (no sleep(0): it would give the core away for nothing)
            time.sleep(rest)
        return g, loss, time.monotonic() - start

    def delay(self, worker: int, j: int) -> float:
        return self.delays.value(worker, j) * self.scale


def _refuse(message: str) -> None:
    print(message, file=sys.stderr)
    sys.stderr.flush()
    os._exit(2)


def main(job_path: str, rank: int) -> None:
    """Check the job against the environment (before any training), join the group, run this
    rank's part (:data:`PATHS`) and leave."""
    job = json.loads(Path(job_path).read_text())
    config = RunConfig.from_dict(job["config"])
    world = int(os.environ.get("WORLD_SIZE", "0"))
    want = world_size(config.scheme, job["path"])
    if world != want:
        server = " (its workers and a server)" if want > config.scheme.rule.machines else ""
        _refuse(
            f"WORLD_SIZE: {config.scheme} needs {want} ranks{server}, the launcher gave {world}"
        )
    if not 0 <= rank < world:
        _refuse(f"RANK: {rank} is not in 0..{world - 1}")
    torch.set_num_threads(1)
    timeout = float(job["pg_timeout"])
    try:
        dist.init_process_group(
            "gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=timeout)
        )
    except Exception as err:  # the store's connection or its timeout
        where = f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}"
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        _refuse(
            f"MASTER_ADDR: rank {rank} could not join the group at {where} within "
            f"{timeout:g} s ({first})"
        )
    try:
        r = Rank(job, rank, world)
        dist.barrier()
        # The clock origin: the end of the barrier on each rank's own clock (machines' monotonic
        # clocks differ; the barrier's skew across ranks is well under a millisecond locally).
        # A resumed run's times go on from its checkpoint's.
        t0 = time.monotonic() - (float(r.resume["time"]) if r.resume else 0.0)
        ready = Path(job["out"]) / f"rank{rank}.ready"  # for whoever watches the run: its pid
        atomic_write(ready, lambda tmp: tmp.write_text(str(os.getpid())))
        server_rank, worker_rank = PATHS[job["path"]]
        params = (server_rank if rank == 0 else worker_rank)(r, t0)
        if rank == 0:
            torch.save(params, Path(job["out"]) / "params.pt")
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
