"""Replay: train a real PyTorch model exactly as a cluster following a Schedule would.

The update math is the scheme's own (:meth:`toolkit.schemes.Scheme.updates`: a staleness policy
and an optimizer for shared parameters, a local step and an exchange for replicas); this module
checks the arguments, builds the model, data and manifest, and hands over to
:mod:`toolkit.replay.shared` (``rule.period == 0``) or :mod:`toolkit.replay.replicas`. Rows,
evaluations, checkpoints and the divergence check are :mod:`toolkit.replay.recorder`'s.
"""

from __future__ import annotations

import functools
import math
import numbers
import platform
import subprocess
import time as _time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from toolkit.checks import ConfigError, check_choice, check_int, check_interval, check_positive
from toolkit.cluster.schedule import Schedule
from toolkit.replay.batched import DataStream, FlatModel, resolve_device
from toolkit.replay.recorder import Recorder
from toolkit.replay.replicas import replay_replicas
from toolkit.replay.results import Results
from toolkit.replay.shared import replay_shared
from toolkit.schemes import STALENESS, Scheme, Shared, Staleness
from toolkit.schemes.updates import sgd
from toolkit.workloads import get_workload
from toolkit.workloads.base import Workload

__all__ = ["Continuation", "Memory", "Runtime", "scheme_from_meta", "train"]

MAX_BYTES = 1 << 30  # default bound on the per-wave [k, P] tensors (see train)


def scheme_from_meta(meta: dict) -> Scheme | None:
    """The scheme recorded in a Schedule's meta (``meta["scheme"]``, written by
    ``Scheme.to_dict()``), or None when there is none."""
    spec = meta.get("scheme") if isinstance(meta, dict) else None
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise ConfigError(
            "schedule", f"schedule: cannot read a scheme from meta['scheme']={spec!r}"
        )
    return Scheme.from_dict(spec)


@functools.cache
def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _nbytes(meta: dict) -> float | None:
    """Model size in bytes from a Schedule's meta (``meta["comm"]["nbytes"]``, as the clock
    writes it, or ``meta["nbytes"]``)."""
    comm = meta.get("comm") if isinstance(meta, dict) else None
    if isinstance(comm, dict) and comm.get("nbytes") is not None:
        return float(comm["nbytes"])
    if isinstance(meta, dict) and meta.get("nbytes") is not None:
        return float(meta["nbytes"])
    return None


def _machines(scheme: Scheme | None, meta: dict, workers: np.ndarray) -> int:
    """Workers of the run: the scheme's, else ``meta["machines"]``, else max worker id + 1."""
    if scheme is not None:
        return int(scheme.rule.machines)
    given = meta.get("machines") if isinstance(meta, dict) else None
    if given is None:
        return int(workers.max(initial=-1)) + 1
    if isinstance(given, bool) or not isinstance(given, numbers.Integral) or given < 1:
        raise ConfigError(
            "schedule", f"schedule: meta['machines'] must be an integer >= 1, got {given!r}"
        )
    return int(given)


def _rules(scheme, exchanges: bool, lr: float, momentum: float, nesterov: bool, staleness):
    """The update rule: the scheme's own, or plain shared SGD for a Schedule without one."""
    if scheme is None:
        if exchanges:
            raise ConfigError(
                "scheme", "scheme: a replica Schedule (exchange rows) needs its scheme"
            )
        return Shared(staleness, sgd(lr, momentum, nesterov))
    if exchanges and not scheme.rule.replicas:
        raise ConfigError("schedule", "schedule: exchange rows in a shared-parameter schedule")
    return scheme.updates(lr, momentum=momentum, nesterov=nesterov, staleness=staleness)


@dataclass(frozen=True)
class Memory:
    """Memory bounds of a replay (results do not depend on them beyond float rounding):
    ``max_wave`` caps the updates per wave, ``max_samples`` the samples per vmapped call, and
    ``max_bytes`` (default 1 GiB) the per-wave [k, P] tensors of P parameters: the wave's update
    directions get at most half of it, each vmapped call's gathered versions and gradients the
    other half (at least one row each). Not counted: the version store [L, P], L the most
    versions live at once (about n for Async(n), not max staleness + 1), and the replicas
    [n, P] (state the schedule itself needs), activations (bounded by ``max_samples``) and the
    data."""

    max_wave: int = 512
    max_samples: int = 1 << 16
    max_bytes: int = MAX_BYTES

    def __post_init__(self) -> None:
        for name in ("max_wave", "max_samples", "max_bytes"):
            check_int(name, getattr(self, name))


@dataclass(frozen=True)
class Runtime:
    """Where and how a replay runs: ``device`` (``"auto"``: CUDA when available),
    ``deterministic`` (``torch.use_deterministic_algorithms(True)`` for the run, restored
    afterwards; on CUDA, without it, index/embedding backward kernels accumulate with atomics
    and results vary at rounding level from run to run; CUDA also needs
    ``CUBLAS_WORKSPACE_CONFIG=:4096:8``; on CPU results are bitwise reproducible either way)
    and ``progress`` (a progress bar)."""

    device: str | torch.device = "auto"
    deterministic: bool = False
    progress: bool = False


@dataclass(frozen=True)
class Continuation:
    """How a replay can be stopped and continued (:mod:`toolkit.runs`): at every safe point
    (after each wave of updates, after each centre update) ``safe_point(rows, snapshot)`` may
    call ``snapshot()`` for everything needed to continue (parameters still needed, optimizer,
    replica and exchange states, positions, rows, torch's RNG state) and may raise to stop;
    ``resume=snapshot`` continues from one, to the same numbers as a run that never stopped."""

    safe_point: Callable[[int, Callable[[], dict]], None] | None = None
    resume: dict | None = None


def train(
    schedule: Schedule,
    workload: Workload | str,
    lr: float | None = None,
    *,
    scheme: Scheme | None = None,
    batch_size: int | None = None,
    momentum: float = 0.0,
    nesterov: bool = False,
    staleness: str = "none",
    max_staleness: int | None = None,
    eval_every: int | None = None,
    seed: int = 0,
    stop: Callable[[list[dict]], str | None] | None = None,
    memory: Memory = Memory(),
    runtime: Runtime = Runtime(),
    continuation: Continuation = Continuation(),
) -> Results:
    """Train ``workload``'s model (a Workload, or a registered name built with its defaults) by
    following ``schedule``; one Results row per update (per centre update for replica schemes).

    The science: ``lr`` defaults to ``workload.lr`` (the local rate eta for replica schemes);
    ``batch_size`` (per worker) to ``workload.batch_size``. ``momentum`` is momentum on the
    shared parameters, heavy ball or, with ``nesterov``, Nesterov (PyTorch's conventions;
    shared schemes only; EAMSGD's momentum is the scheme's field). ``staleness`` is ``"none"``,
    ``"drop"`` (needs ``max_staleness``) or ``"lr"`` (lr / max(1, staleness)). The test split is
    evaluated every ``eval_every`` rows (default: about 20 times) and at the last row. ``scheme``
    (the scheme object) overrides ``schedule.meta["scheme"]``; without a scheme the number of
    workers is ``schedule.meta["machines"]`` when present, else the largest worker id + 1.
    ``stop(evaluations)`` is asked after every evaluation with the list of evaluations so far
    (dicts of test metrics, oldest first) and ends training when it returns a reason (a target
    reached, a plateau). Same seed, same numbers.

    Divergence is a result: train losses stay on the device and are read every ``CHECK_EVERY``
    (256) rows and at every evaluation; a run whose train loss becomes NaN/inf stops with status
    ``"diverged"`` at the first such read after it (its table ends there, params are from that
    row), and a run whose last train loss is above ``BLOWUP`` times max(the first row's, 1)
    (:mod:`toolkit.replay.recorder`) ends ``"diverged"`` too.

    ``memory``, ``runtime`` and ``continuation`` group the knobs that do not change the science:
    :class:`Memory`, :class:`Runtime`, :class:`Continuation`.
    """
    if not isinstance(schedule, Schedule):
        raise ConfigError("schedule", f"schedule must be a Schedule, got {type(schedule).__name__}")
    if isinstance(workload, str):
        workload = get_workload(workload)
    if not isinstance(workload, Workload):
        raise ConfigError(
            "workload", f"workload must be a Workload or its name, got {type(workload).__name__}"
        )
    for name, value, kind in (
        ("memory", memory, Memory),
        ("runtime", runtime, Runtime),
        ("continuation", continuation, Continuation),
    ):
        if not isinstance(value, kind):
            raise ConfigError(
                name, f"{name}: expected a toolkit.replay.{kind.__name__}, got {value!r}"
            )
    seed = check_int("seed", seed, 0)
    if stop is not None and not callable(stop):
        raise ConfigError("stop", f"stop: expected a function of the evaluations, got {stop!r}")
    lr = check_positive("lr", workload.lr if lr is None else lr)
    batch_size = check_int("batch_size", workload.batch_size if batch_size is None else batch_size)
    if batch_size > workload.n_train:
        raise ConfigError(
            "batch_size",
            f"batch_size: {batch_size} is larger than the training set "
            f"({workload.n_train} samples)",
        )
    momentum = check_interval("momentum", momentum, 0.0, 1.0, "[)")
    if not isinstance(nesterov, bool):
        raise ConfigError("nesterov", f"nesterov must be true or false, got {nesterov!r}")
    check_choice("staleness", staleness, STALENESS)
    policy = Staleness(staleness, max_staleness)
    if eval_every is not None:
        eval_every = check_int("eval_every", eval_every)

    recorded = scheme_from_meta(schedule.meta)
    if scheme is not None and recorded is not None and scheme != recorded:
        raise ConfigError("scheme", f"scheme: {scheme} does not match the Schedule's {recorded}")
    scheme = scheme if scheme is not None else recorded
    frame = schedule.frame
    exchanges = (frame["kind"] == "exchange").any()
    rules = _rules(scheme, exchanges, lr, momentum, nesterov, policy)
    replicas = not isinstance(rules, Shared)
    workers = frame["worker"].to_numpy()
    machines = _machines(scheme, schedule.meta, workers)
    if len(workers) and (workers.min() < 0 or workers.max() >= machines):
        raise ConfigError("schedule", f"schedule: worker ids must lie in [0, {machines})")
    n_rows = schedule.rows
    if n_rows == 0:
        raise ConfigError("schedule", "schedule: has no used gradients (or no exchanges) to replay")

    dev = resolve_device(runtime.device)
    stream = DataStream(workload.n_train, machines, batch_size, seed)
    fm = FlatModel(workload.make_model(seed).to(dev), workload.loss)
    data = {
        "x": workload.x_train.to(dev),
        "y": workload.y_train.to(dev),
        "x_test": workload.x_test.to(dev),
        "y_test": workload.y_test.to(dev),
    }
    eval_every = eval_every if eval_every is not None else max(1, math.ceil(n_rows / 20))
    manifest = {
        "scheme": scheme.to_dict() if scheme is not None else None,
        "workload": workload.name,
        "optimizer": "sgd",
        "lr": lr,
        "batch_size": batch_size,
        "momentum": momentum,
        "nesterov": nesterov,
        "seed": int(seed),
        "staleness": staleness,
        "max_staleness": None if max_staleness is None else int(max_staleness),
        "machines": int(machines),
        "parameters": int(fm.size),
        "schedule_status": schedule.status,
        "schedule_meta": schedule.meta,
        "rows": "per centre update" if replicas else "per update",
        "eval_every": eval_every,
        **provenance(dev),
    }

    def evaluate(flat: torch.Tensor) -> dict:
        return fm.evaluate(flat, data["x_test"], data["y_test"], workload.accuracy)

    bar = None
    if runtime.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_rows, desc=f"train {workload.name}", unit="upd")
    rec = Recorder(n_rows, eval_every, evaluate, bar, dev, stop=stop)
    resume = continuation.resume
    if resume is not None:
        rec.restore(resume["rec"])
        torch.set_rng_state(resume["torch_rng"])
    safe_point = None
    if continuation.safe_point is not None:
        user = continuation.safe_point

        def safe_point(rows: int, snapshot: Callable[[], dict]) -> None:
            def full() -> dict:
                return {**snapshot(), "rec": rec.state(), "torch_rng": torch.get_rng_state()}

            user(rows, full)

    row_bytes = fm.size * fm.dtype.itemsize  # one [P] row
    limits = {
        "max_samples": memory.max_samples,
        "max_rows": max(1, memory.max_bytes // row_bytes),
        "safe_point": safe_point,
        "resume": resume,
    }
    if not replicas:
        limits["max_wave"] = memory.max_wave
    t0 = _time.perf_counter()
    was = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    nbytes = _nbytes(schedule.meta)
    args = (fm, stream, data, rec)
    try:
        if runtime.deterministic:
            torch.use_deterministic_algorithms(True)
        if replicas:
            params = replay_replicas(schedule, rules, machines, *args, nbytes=nbytes, **limits)
        else:
            params = replay_shared(schedule, rules, *args, nbytes=nbytes, **limits)
    finally:
        if runtime.deterministic:
            torch.use_deterministic_algorithms(was[0], warn_only=was[1])
        if bar is not None:
            bar.close()
    rec.finish()
    manifest.update(wall_seconds=_time.perf_counter() - t0, stopped=rec.reason())
    status = "diverged" if rec.diverged else "ok"
    return Results(rec.frame(), manifest, status, rec.diverged or rec.stopped, _cpu(params))


def _cpu(flat: torch.Tensor | None) -> torch.Tensor | None:
    return None if flat is None else flat.detach().cpu().clone()


def provenance(dev: torch.device) -> dict:
    """Where and with what the run was made (manifest entries)."""
    return {
        "data_stream": "randperm(seed) -> machines equal shards; epoch e of worker w = shard "
        "sorted by splitmix64 keys of (seed, w, e, i); batch j = slice (j mod E) of epoch j // E",
        "device": str(dev),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "python": platform.python_version(),
        "git_commit": _git_commit(),
    }
