"""``run(config, out)``: a RunConfig run by its engine (:mod:`toolkit.runs.engine`), in a run
directory that can be stopped at any moment and continued to the same numbers; and the replay
engine: simulate the config's Schedule, then train its workload following it.

Stopping rule: ``updates`` updates (local steps per worker for replica schemes), or the updates
that fit in ``time_budget`` units of simulated time (:meth:`Schedule.until`), or by default the
workload's step budget; ``target`` ends training at the first evaluation that reaches it and
``plateau`` once the main metric stops improving (:mod:`toolkit.runs.stopping`; the workload's
main metric: test accuracy for classifiers, else test loss). The Results manifest's ``stopped``
says which rule ended the run (``budget``, ``target``, ``plateau`` or ``diverged``).

Replay checkpoints at a safe point (every ``eval_every`` rows) once :func:`checkpoint_seconds`
(10 s) of wall-clock have passed since the run started or last checkpointed, and when the process
gets SIGINT (Ctrl-C) or SIGTERM, which then stops with :class:`Interrupted` (exit code 130 on the
command line); ``resume=True`` continues from the last checkpoint. A SIGKILL loses only the rows
since the last checkpoint: about 10 s of work. A checkpoint holds every record so far, so a
short run checkpointed at each of its evaluations would spend much of its time writing them;
``TOOLKIT_CHECKPOINT_SECONDS=0`` checkpoints at every evaluation.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time

from toolkit.checks import ConfigError
from toolkit.cluster import Schedule, simulate
from toolkit.models.comm import parse_comm
from toolkit.models.stragglers import parse_compute
from toolkit.replay import Continuation, Results, Runtime, train
from toolkit.runs.config import RunConfig
from toolkit.runs.directory import RunDirectory
from toolkit.runs.engine import RunOutcome, eval_every, get_engine, manifest, prepare
from toolkit.runs.stopping import stopping_rule

__all__ = ["Interrupted", "ReplayEngine", "checkpoint_seconds", "run", "schedule_for"]

CHECKPOINT_SECONDS = 10.0  # least wall-clock seconds between two periodic checkpoints


class Interrupted(KeyboardInterrupt):
    """A run stopped by SIGINT or SIGTERM after writing its checkpoint; the message says how to
    resume, ``signum`` which signal stopped it (a command line exits with 128 + signum)."""

    def __init__(self, message: str, signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.signum = int(signum)


def run(
    config: RunConfig,
    out: str | os.PathLike | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    schedule: Schedule | None = None,
    **options,
) -> Results:
    """Run ``config`` with its engine (``config.engine``) and return its Results; with ``out``,
    in a run directory (:class:`~toolkit.runs.directory.RunDirectory`: refused when it holds
    something else, unless ``resume`` (the same config: continue, or load a complete run) or
    ``overwrite``). ``schedule``: the config's simulated Schedule when the caller has it already
    (a sweep's cache of :func:`schedule_for`). ``options`` bound the engine's work without
    changing what it computes (the distributed engine's ``timeout`` and ``wait_timeout``)."""
    if not isinstance(config, RunConfig):
        raise ConfigError("config", f"config: expected a RunConfig, got {type(config).__name__}")
    if out is not None and not isinstance(out, (str, os.PathLike)):
        raise ConfigError(
            "out", f"out: expected a directory path, got {type(out).__name__} {out!r}"
        )
    engine = get_engine(config.engine.name)
    engine.check(config, **options)  # before the run directory: a refusal leaves nothing
    directory = None
    if out is not None:
        directory = RunDirectory(out, config, resume=resume, overwrite=overwrite)
        if directory.complete:
            return Results.load(directory.path)
    outcome = engine.run(config, directory, progress=progress, schedule=schedule, **options)
    res = outcome.results
    res.manifest.update(manifest(config, prepare(config)))
    if directory is not None:
        res.manifest["run_id"] = directory.id
        directory.finish(res)
    return res


def schedule_for(config: RunConfig, steps: int | None = None) -> Schedule:
    """The simulated Schedule of ``config``: ``updates`` updates, or the prefix within
    ``time_budget`` (simulated with doubling horizons: the clock's per-worker streams make every
    horizon's prefix the same), or ``steps`` updates (the workload's step budget, needed only
    when the config gives neither)."""
    compute = parse_compute(config.compute)
    comm = parse_comm(config.comm)
    if config.time_budget is None:
        updates = config.updates if config.updates is not None else steps
        if updates is None:
            raise ConfigError(
                "updates", "updates: the config gives no updates or time_budget; pass steps"
            )
        return simulate(config.scheme, compute, comm, updates=updates, seed=config.seed)
    updates = 256
    while True:
        schedule = simulate(config.scheme, compute, comm, updates=updates, seed=config.seed)
        last = float(schedule.frame["time"].max())
        if last > config.time_budget or schedule.status != "ok":
            return schedule.until(config.time_budget)
        updates = math.ceil(updates * max(2.0, 1.2 * config.time_budget / last))


def checkpoint_seconds() -> float:
    """The least wall-clock seconds between two periodic checkpoints of a run:
    ``TOOLKIT_CHECKPOINT_SECONDS`` when set (0: at every evaluation), else
    :data:`CHECKPOINT_SECONDS`."""
    env = os.environ.get("TOOLKIT_CHECKPOINT_SECONDS")
    if not env:
        return CHECKPOINT_SECONDS
    try:
        seconds = float(env)
    except ValueError:
        seconds = math.nan
    if not seconds >= 0.0:  # also NaN
        raise ConfigError(
            "TOOLKIT_CHECKPOINT_SECONDS",
            f"TOOLKIT_CHECKPOINT_SECONDS: expected seconds >= 0, got {env!r}",
        )
    return seconds


class _Checkpoints:
    """The safe-point callback: a checkpoint every ``every`` rows once ``seconds`` of wall-clock
    have passed since the last one (or the start), and at SIGINT / SIGTERM."""

    def __init__(self, directory: RunDirectory, every: int, first: int, seconds: float) -> None:
        self.directory, self.every, self.last = directory, every, first
        self.seconds, self.since = seconds, time.monotonic()
        self.interrupted = 0  # the signal that asked to stop, once one did

    def __call__(self, rows: int, snapshot) -> None:
        due = rows - self.last >= self.every and time.monotonic() - self.since >= self.seconds
        if self.interrupted or due:
            self.directory.save_checkpoint(snapshot(), rows)
            self.last, self.since = rows, time.monotonic()
        if self.interrupted:
            raise Interrupted(
                f"stopped at row {rows}; the checkpoint is in {str(self.directory.path)!r}; "
                "continue with the same command and --resume",
                self.interrupted,
            )

    def signal(self, signum, frame) -> None:
        if self.interrupted:  # a second signal: stop now
            raise KeyboardInterrupt
        self.interrupted = signum


class ReplayEngine:
    """The simulator: the clock makes the config's Schedule (:func:`schedule_for`, or the one
    given), replay (:func:`toolkit.replay.train`) trains along it; in a run directory the
    Schedule is saved first and checkpoints are written at safe points (module docstring)."""

    name = "replay"

    def check(self, config: RunConfig, **options) -> None:
        checkpoint_seconds()  # a bad TOOLKIT_CHECKPOINT_SECONDS is refused before any file
        if options:
            name = sorted(options)[0]
            raise ConfigError(name, f"{name}: not an option of the replay engine")

    def run(
        self,
        config: RunConfig,
        directory: RunDirectory | None,
        *,
        progress: bool = False,
        schedule: Schedule | None = None,
        **options,
    ) -> RunOutcome:
        self.check(config, **options)
        seconds = checkpoint_seconds()
        prep = prepare(config)
        saved = directory.load_schedule() if directory is not None else None
        schedule = saved if saved is not None else schedule
        if schedule is None:
            schedule = schedule_for(config, prep.updates)
        if directory is not None and saved is None:
            directory.save_schedule(schedule)
        state = directory.load_checkpoint() if directory is not None else None
        kwargs = dict(
            scheme=config.scheme,
            batch_size=prep.batch_size,
            momentum=config.momentum,
            nesterov=config.nesterov,
            staleness=config.staleness,
            max_staleness=config.max_staleness,
            eval_every=eval_every(config, schedule.rows),
            seed=config.seed,
            stop=stopping_rule(prep.workload.metric, config.target, config.plateau),
            runtime=Runtime(device=config.device, progress=progress),
        )
        if directory is None:
            return RunOutcome(schedule, train(schedule, prep.workload, prep.lr, **kwargs))
        first = 0 if state is None else int(state["rec"]["rows"].shape[0])
        every = eval_every(config, schedule.rows)
        checkpoints = _Checkpoints(directory, every, first, seconds)
        main = threading.current_thread() is threading.main_thread()
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {s: signal.signal(s, checkpoints.signal) for s in handled} if main else {}
        try:
            res = train(
                schedule,
                prep.workload,
                prep.lr,
                continuation=Continuation(safe_point=checkpoints, resume=state),
                **kwargs,
            )
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        return RunOutcome(schedule, res)
