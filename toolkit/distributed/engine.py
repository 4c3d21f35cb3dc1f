"""``run_distributed(config)``: a RunConfig on real processes (:mod:`toolkit.distributed.process`),
returned as the measured Schedule (the simulator's columns, real seconds) and the final
parameters.

The measured Schedule is replayable: replay (:func:`toolkit.replay.train`) of it on the same
seed follows the same gradients (worker, batch, version) and so reaches the backend's parameters
up to float summation order, which is how the backend is checked against the simulator's
training path for every scheme.
"""

from __future__ import annotations

import json
import re
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from toolkit.checks import ConfigError, check_int, check_positive
from toolkit.cluster import Schedule
from toolkit.cluster.schedule import RowKind, make_frame, sort_shared
from toolkit.distributed.collective import Row
from toolkit.distributed.launch import check_ranks, launch, path_of, world_size
from toolkit.models import as_compute, parse_compute
from toolkit.runs.config import RunConfig
from toolkit.runs.engine import EngineSpec

__all__ = ["check_run", "collect", "path_of", "run_distributed", "world_size", "write_job"]


def run_distributed(
    config: RunConfig,
    *,
    updates: int | None = None,
    timeout: float = 300.0,
    wait_timeout: float = 30.0,
    eval_every: int | None = None,
    out: str | Path | None = None,
    watch: Callable[[Path], None] | None = None,
    resume: bool = False,
) -> tuple[Schedule, torch.Tensor]:
    """Run ``config`` (``updates`` updates, default ``config.updates``) as one process per rank
    on this machine, with its engine settings (:class:`toolkit.runs.engine.EngineSpec`:
    ``time_scale`` seconds of injected delay per unit of the config's step-time model,
    ``inject``, and ``collective``: Sync by ``all_reduce``, else through the server like
    Backup(n, 0)); ``timeout`` bounds the whole run,
    ``wait_timeout`` each wait for a message. A worker of a server scheme may die (SIGKILL, a
    lost node) while the scheme can go on: Backup(n, b) while n workers are left, Async and
    asynchronous EASGD while one is; ``schedule.meta["died"]`` lists them. A collective run
    stops with the first dead rank, named in the error. ``eval_every``: every that many rows
    rank 0 keeps the parameters as ``out/snap<row>.pt`` (:func:`toolkit.distributed.run`
    evaluates them) and the ranks write checkpoints; ``resume`` goes on from the newest one in
    ``out`` (:func:`resume_point`), else starts afresh. ``watch(folder)`` is called a few times
    a second while the ranks run (a progress bar reads their logs). Returns the measured
    Schedule and the final parameters (the centre for replica schemes). Before any process
    starts, the ranks are checked against what the machine hosts
    (:func:`~toolkit.distributed.launch.check_ranks`) and the step-time model is built once;
    a run that fails raises :class:`~toolkit.distributed.launch.RunFailed`."""
    if not isinstance(config, RunConfig):
        raise ConfigError("config", f"config: expected a RunConfig, got {type(config).__name__}")
    scheme = config.scheme
    check_positive("timeout", timeout)
    check_run(config)
    path = path_of(scheme, config.engine.collective is not False)
    with tempfile.TemporaryDirectory(prefix="toolkit-dist-") as tmp:
        folder = Path(out) if out is not None else Path(tmp)
        again = resume_point(folder, world_size(scheme, path), path) if resume else None
        if resume and again is None and any(folder.glob("rank*")):
            warnings.warn(
                f"out: {str(folder)!r} holds no checkpoint to go on from; starting afresh",
                stacklevel=2,
            )
        if resume and again is None:
            for old in folder.glob("*"):
                old.unlink()
        job_file = write_job(
            config,
            folder,
            updates=updates,
            wait_timeout=wait_timeout,
            eval_every=eval_every,
            resume=again,
        )
        world = world_size(scheme, path)
        with_server = world > scheme.rule.machines
        survivable = tuple(range(1, world)) if with_server else ()  # the server decides
        died = launch(
            job_file,
            world,
            timeout=timeout,
            log_dir=folder,
            survivable=survivable,
            watch=None if watch is None else lambda: watch(folder),
        )
        return collect(folder, died=[r - 1 for r in died])


def check_run(config: RunConfig) -> None:
    """What :func:`run_distributed` checks before any process starts: the ranks against what
    the machine hosts (:func:`~toolkit.distributed.launch.check_ranks`) and the step-time model,
    built as every rank builds it (a law with negative step times fails here, not in a rank)."""
    check_ranks(config.scheme, config.engine.collective is not False)
    as_compute(parse_compute(config.compute))


def write_job(
    config: RunConfig,
    folder: str | Path,
    *,
    updates: int | None = None,
    wait_timeout: float = 30.0,
    eval_every: int | None = None,
    resume: dict | None = None,
) -> Path:
    """Write ``folder/job.json``, the file every rank reads (``python -m
    toolkit.distributed.process JOB``), and return its path: on one machine
    :func:`run_distributed` starts the ranks itself; across machines a launcher does
    (``torchrun`` or ``srun``, README), with ``folder`` on storage every node can write, and
    :func:`collect` reads the result. The engine settings are the config's (``config.engine``;
    a config of another engine runs with the distributed engine's defaults)."""
    updates = check_int("updates", config.updates if updates is None else updates)
    check_positive("wait_timeout", wait_timeout)
    if config.engine.name != "distributed":
        config = config.replace(engine=EngineSpec("distributed"))
    engine = config.engine
    if eval_every is not None:
        check_int("eval_every", eval_every, 1)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    job = {
        "config": config.to_dict(),
        "updates": updates,
        "time_scale": float(engine.time_scale),
        "inject": bool(engine.inject),
        "path": path_of(config.scheme, engine.collective),
        "pg_timeout": float(wait_timeout),
        "wait_timeout": float(wait_timeout),
        "eval_every": eval_every,
        "out": str(folder),
        "resume": resume,
    }
    path = folder / "job.json"
    path.write_text(json.dumps(job, indent=1))
    return path


def collect(folder: str | Path, died: list[int] | None = None) -> tuple[Schedule, torch.Tensor]:
    """The measured Schedule and final parameters of the run whose ranks wrote to ``folder``
    (``died``: the workers lost on the way, for the meta)."""
    folder = Path(folder)
    job = json.loads((folder / "job.json").read_text())
    config = RunConfig.from_dict(job["config"])
    scheme, path = config.scheme, job["path"]
    rows, times = read_logs(folder, world_size(scheme, path))
    if not (folder / "params.pt").exists():
        raise ConfigError(
            "folder", f"folder: {str(folder)!r} holds no params.pt: rank 0 did not finish"
        )
    params = torch.load(folder / "params.pt", weights_only=True)
    meta = {
        "scheme": scheme.to_dict(),
        "machines": scheme.rule.machines,
        "updates": job["updates"],
        "seed": config.seed,
        "engine": "distributed",
        "time_scale": job["time_scale"] if job["inject"] else 0.0,
        "path": path,
        "died": list(died or []),  # workers killed during the run (server schemes)
        "resumed_from": (job["resume"] or {}).get("row"),  # the checkpoint's row, if any
    }
    return Schedule(_frame(rows, times, path), meta=meta), params


def resume_point(folder: Path, world: int, path: str) -> dict | None:
    """Where a stopped run goes on: the newest row k with a complete checkpoint (rank 0's on
    the server paths, every rank's on the collective ones, where each keeps its own state;
    :mod:`toolkit.distributed.collective`). Each rank's log is
    cut back to what happened before that checkpoint, so the resumed run appends to a
    consistent past. Returns the job's ``resume`` entry (``row``, ``time``, and for the server
    path each worker's next mini-batch), or None when there is no checkpoint."""
    found: dict[int, set[int]] = {}
    for f in folder.glob("ckpt*_rank*.pt"):
        m = re.fullmatch(r"ckpt(\d+)_rank(\d+)\.pt", f.name)
        if m:
            found.setdefault(int(m[1]), set()).add(int(m[2]))
    need = set(range(world)) if path in ("shared", "replicas") else {0}
    rows = [k for k, ranks in found.items() if need <= ranks]
    if not rows:
        return None
    k = max(rows)
    saved = {r: torch.load(folder / f"ckpt{k}_rank{r}.pt", weights_only=True) for r in need}
    start_batch: dict[str, int] = {}
    for r in range(world):
        log = folder / f"rank{r}.rows"
        if not log.exists():
            continue
        lines = log.read_text().splitlines()
        if r in saved:  # its own checkpoint says how far its log went
            keep = lines[: int(saved[r]["lines"])]
        else:
            keep = []
            for line in lines:
                try:
                    row = Row(*json.loads(line))  # a worker's log holds rows only
                except (json.JSONDecodeError, TypeError):
                    continue  # a line cut short by a kill
                if path == "replica_server":
                    steps = saved[0]["workers"].get(str(r - 1), {"steps": 0})["steps"]
                    if row.update < int(steps):
                        keep.append(line)
                elif row.update < k:  # a row of an update before the checkpoint
                    keep.append(line)
        log.write_text("".join(f"{line}\n" for line in keep))
        for line in keep:
            entry = json.loads(line)
            row = Row(*entry) if isinstance(entry, list) else None  # else the server's note
            if row is not None and row.kind == RowKind.GRAD:
                w = str(row.worker)
                start_batch[w] = max(start_batch.get(w, 0), int(row.batch) + 1)
    return {"row": k, "time": float(saved[0]["time"]), "start_batch": start_batch}


def read_logs(folder: Path, world: int) -> tuple[list[list], dict[int, float]]:
    """The rows every rank recorded in ``rank<r>.rows`` and the server's update times
    (``{update: time}``); a line cut short by a kill is skipped."""
    rows, times = [], {}
    for r in range(world):
        path = folder / f"rank{r}.rows"
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # the last line of a killed rank
            if isinstance(entry, dict):
                times[int(entry["update"])] = float(entry["time"])
            else:
                rows.append(entry)
    return rows, times


def _frame(rows: list[list], times: dict[int, float], path: str):
    """The rows of every rank (:class:`toolkit.distributed.collective.Row`) as the Schedule's
    columns, in its order. A used gradient's time is its update's: the server's, or on the
    collective paths when the last rank had it (an exchange's likewise)."""
    col = Row(*(np.array(c) for c in zip(*rows, strict=True)))
    kind, u, t, w, v, b = col.kind, col.update, col.time, col.worker, col.version, col.batch
    used = col.used.astype(bool)
    if times:
        at = np.flatnonzero(used)
        t[at] = [times[int(x)] for x in u[at]]
    if path in ("shared", "replicas"):
        key = kind * (u.max() + 1) + u  # (kind, update): shared updates, exchange rounds
        sel = (
            np.flatnonzero(kind == RowKind.EXCHANGE) if path == "replicas" else np.arange(len(key))
        )
        _, group = np.unique(key[sel], return_inverse=True)
        latest = np.full(group.max(initial=-1) + 1, -np.inf)
        np.maximum.at(latest, group, t[sel])
        t[sel] = latest[group]  # one pass, not one scan of every row per update
    frame = make_frame(
        kind=kind,
        update=u,
        time=t,
        worker=w,
        version=v,
        staleness=np.where(used & (kind == RowKind.GRAD) & (path != "replicas"), u - v, 0),
        used=used,
        batch=b,
        compute_time=col.compute,
        comm_time=col.comm,
    )
    if path in ("replicas", "replica_server"):
        order = np.lexsort((u, w, kind, t))
        return frame.iloc[order].reset_index(drop=True)
    return sort_shared(frame)
