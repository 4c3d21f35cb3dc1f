"""``run(config, out)``: simulate a RunConfig's Schedule, then train its workload following it,
in a run directory that can be stopped at any moment and continued to the same numbers.

Stopping rule: ``updates`` updates (local steps per worker for replica schemes), or the updates
that fit in ``time_budget`` units of simulated time (:meth:`Schedule.until`), or by default the
workload's step budget; ``target`` ends training at the first evaluation that reaches it (the
workload's main metric: test accuracy for classifiers, else test loss).

Checkpoints are written at the safe point after every ``eval_every`` rows and when the process
gets SIGINT (Ctrl-C), which then stops with :class:`Interrupted` (exit code 130 on the command
line); ``resume=True`` continues from the last checkpoint. A SIGKILL loses only the rows since
the last checkpoint.
"""

from __future__ import annotations

import math
import signal
import threading
from pathlib import Path

from toolkit.cluster import Schedule, simulate
from toolkit.models.comm import parse_comm
from toolkit.models.stragglers import parse_compute
from toolkit.replay import Results, train
from toolkit.runs.config import RunConfig
from toolkit.runs.directory import RunDirectory
from toolkit.workloads import Workload, get_workload

__all__ = ["Interrupted", "run", "schedule_for"]


class Interrupted(KeyboardInterrupt):
    """A run stopped by SIGINT after writing its checkpoint; the message says how to resume."""


def schedule_for(config: RunConfig, workload: Workload | None) -> Schedule:
    """The Schedule of ``config``: ``updates`` updates, or the prefix within ``time_budget``
    (simulated with doubling horizons: the clock's per-worker streams make every horizon's
    prefix the same), or the workload's step budget (the only use of ``workload``, which may be
    None when the config gives ``updates`` or ``time_budget``)."""
    compute = parse_compute(config.compute)
    comm = parse_comm(config.comm)
    if config.time_budget is None:
        if config.updates is None and workload is None:
            raise ValueError("workload: needed for its step budget (config has no updates)")
        updates = config.updates if config.updates is not None else workload.steps
        return simulate(config.scheme, compute, comm, updates=updates, seed=config.seed)
    updates = 256
    while True:
        schedule = simulate(config.scheme, compute, comm, updates=updates, seed=config.seed)
        last = float(schedule.frame["time"].max())
        if last > config.time_budget or schedule.status != "ok":
            return schedule.until(config.time_budget)
        updates = math.ceil(updates * max(2.0, 1.2 * config.time_budget / last))


def _stop_at(config: RunConfig, workload: Workload):
    if config.target is None:
        return None
    metric, target = workload.metric, float(config.target)
    if metric == "test_accuracy":
        return lambda res: res.get(metric, -math.inf) >= target
    return lambda res: res[metric] <= target


class _Checkpoints:
    """The safe-point callback: a checkpoint every ``every`` rows and at SIGINT."""

    def __init__(self, directory: RunDirectory, every: int, first: int) -> None:
        self.directory, self.every, self.last = directory, every, first
        self.interrupted = False

    def __call__(self, rows: int, snapshot) -> None:
        if self.interrupted or rows - self.last >= self.every:
            self.directory.save_checkpoint(snapshot(), rows)
            self.last = rows
        if self.interrupted:
            raise Interrupted(
                f"stopped at row {rows}; the checkpoint is in {str(self.directory.path)!r}; "
                "continue with the same command and --resume"
            )

    def sigint(self, signum, frame) -> None:
        if self.interrupted:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.interrupted = True


def run(
    config: RunConfig,
    out: str | Path | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    schedule: Schedule | None = None,
) -> Results:
    """Simulate and train ``config``; with ``out``, in a run directory (module docstring).
    ``schedule``: the config's Schedule when the caller has it already (a sweep's cache of
    :func:`schedule_for`); it must be the one ``schedule_for(config, ...)`` gives."""
    if not isinstance(config, RunConfig):
        raise ValueError(f"config: expected a RunConfig, got {type(config).__name__}")
    workload = get_workload(config.workload, **config.workload_args).with_dtype(config.dtype)
    directory = RunDirectory(out, config, resume=resume, overwrite=overwrite) if out else None
    if directory is not None and directory.complete:
        return Results.load(directory.path)
    saved = directory.load_schedule() if directory is not None else None
    schedule = saved if saved is not None else schedule
    if schedule is None:
        schedule = schedule_for(config, workload)
    if directory is not None and not directory.run.get("schedule"):
        directory.save_schedule(schedule)
    state = directory.load_checkpoint() if directory is not None else None
    eval_every = config.eval_every
    kwargs = dict(
        lr=config.lr,
        batch_size=config.batch_size,
        momentum=config.momentum,
        eval_every=eval_every,
        seed=config.seed,
        device=config.device,
        staleness=config.staleness,
        max_staleness=config.max_staleness,
        progress=progress,
        stop_at=_stop_at(config, workload),
        resume=state,
    )
    if directory is None:
        return _with_metric(train(schedule, workload, **kwargs), workload)
    first = 0 if state is None else int(state["rec"]["rows"].shape[0])
    every = eval_every or max(1, math.ceil(schedule.rows / 20))  # replay's evaluation cadence
    checkpoints = _Checkpoints(directory, every, first)
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, checkpoints.sigint) if main else None
    try:
        res = train(schedule, workload, safe_point=checkpoints, **kwargs)
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)
    res = _with_metric(res, workload)
    res.manifest["run_id"] = directory.id
    directory.finish(res)
    return res


def _with_metric(res: Results, workload) -> Results:
    """The workload's main metric and its target in the manifest, so tables of many runs can
    score them (time to target) without building the workload again."""
    res.manifest.update(metric=workload.metric, target=workload.target)
    return res
