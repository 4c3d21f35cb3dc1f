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
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from toolkit.checks import check_choice, check_int, check_interval, check_positive
from toolkit.cluster.schedule import Schedule
from toolkit.replay.batched import DataStream, FlatModel, resolve_device
from toolkit.replay.recorder import Recorder
from toolkit.replay.replicas import replay_replicas
from toolkit.replay.results import Results
from toolkit.replay.shared import replay_shared
from toolkit.schemes import STALENESS, Scheme, Shared, Staleness, make_scheme
from toolkit.schemes.updates import sgd
from toolkit.workloads import get_workload
from toolkit.workloads.base import Workload

__all__ = ["scheme_from_meta", "train"]

OPTIMIZERS = ("sgd",)
MAX_BYTES = 1 << 30  # default bound on the per-wave [k, P] tensors (see train)


def scheme_from_meta(meta: dict) -> Scheme | None:
    """The scheme recorded in a Schedule's meta (``meta["scheme"]`` as ``Scheme.to_dict()``, or
    a name with fields in ``meta["scheme_fields"]``), or None when there is none."""
    spec = meta.get("scheme") if isinstance(meta, dict) else None
    if spec is None:
        return None
    if isinstance(spec, Scheme):
        return spec
    if isinstance(spec, str):
        return make_scheme(spec, **dict(meta.get("scheme_fields", {})))
    if isinstance(spec, dict):
        fields = dict(spec)
        name = fields.pop("scheme", None) or fields.pop("name", None)
        if name is None:
            raise ValueError("schedule: meta['scheme'] has no 'scheme' name")
        return make_scheme(str(name), **fields)
    raise ValueError(f"schedule: cannot read a scheme from meta['scheme']={spec!r}")


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
        raise ValueError(f"schedule: meta['machines'] must be an integer >= 1, got {given!r}")
    return int(given)


def _rules(scheme: Scheme | None, exchanges: bool, lr: float, momentum: float, staleness):
    """The update rule: the scheme's own, or plain shared SGD for a Schedule without one."""
    if scheme is None:
        if exchanges:
            raise ValueError("scheme: a replica Schedule (exchange rows) needs its scheme")
        return Shared(staleness, sgd(lr, momentum))
    if exchanges and not scheme.rule.replicas:
        raise ValueError("schedule: exchange rows in a shared-parameter schedule")
    return scheme.updates(lr, momentum=momentum, staleness=staleness)


def train(
    schedule: Schedule,
    workload: Workload | str,
    optimizer: str = "sgd",
    lr: float | None = None,
    *,
    scheme: Scheme | None = None,
    batch_size: int | None = None,
    momentum: float = 0.0,
    eval_every: int | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    staleness: str = "none",
    max_staleness: int | None = None,
    max_wave: int = 512,
    max_samples: int = 1 << 16,
    max_bytes: int = MAX_BYTES,
    deterministic: bool = False,
    progress: bool = False,
    out: str | Path | None = None,
    stop_at: Callable[[dict], bool] | None = None,
    safe_point: Callable[[int, Callable[[], dict]], None] | None = None,
    resume: dict | None = None,
) -> Results:
    """Train ``workload``'s model (a Workload, or a registered name built with its defaults) by
    following ``schedule``; one Results row per update.

    ``lr`` defaults to ``workload.lr`` (the local rate eta for replica schemes); ``batch_size``
    (per worker) to ``workload.batch_size``. ``momentum`` is heavy-ball momentum on the shared
    parameters (shared schemes only; EAMSGD's momentum is the scheme's field). ``staleness`` is
    ``"none"``, ``"drop"`` (needs ``max_staleness``) or ``"lr"`` (lr / max(1, staleness)).
    The test split is evaluated every ``eval_every`` rows (default: about 20 times) and at the
    last row. ``scheme`` overrides ``schedule.meta["scheme"]``; without a scheme the number of
    workers is ``schedule.meta["machines"]`` when present, else the largest worker id + 1.

    Memory bounds (results do not depend on them beyond float rounding): ``max_wave`` caps the
    updates per wave, ``max_samples`` the samples per vmapped call, and ``max_bytes`` (default
    1 GiB) the per-wave [k, P] tensors of P parameters: the wave's update directions get at
    most half of it, each vmapped call's gathered versions and gradients the other half (at
    least one row each). Not counted: the version store [L, P], L the most versions live at
    once (about n for Async(n), not max staleness + 1), and the replicas [n, P] (state the
    schedule itself needs), activations (bounded by ``max_samples``) and the data.

    Train losses stay on the device and are read every ``CHECK_EVERY`` (256) rows and at every
    evaluation, so a run whose train loss becomes NaN/inf stops with status ``"diverged"`` at
    the first such read after it (its table ends there, params are from that row).
    ``deterministic=True`` runs under ``torch.use_deterministic_algorithms(True)`` (restored
    afterwards); on CUDA, without it, index/embedding backward kernels (charlm's embeddings)
    accumulate with atomics and results vary at rounding level from run to run (CUDA also needs
    ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` in the environment; torch raises otherwise). On CPU
    results are bitwise reproducible either way. With ``out``, the Results directory is written
    at every evaluation (a checkpoint) and at the end. Same seed, same numbers.

    For runs that can be stopped and continued (:mod:`toolkit.runs`): ``stop_at(metrics)`` ends
    training at the first evaluation where it holds (e.g. a target accuracy); at every safe
    point (after each wave of updates, after each centre update) ``safe_point(rows,
    snapshot)`` may call ``snapshot()`` for everything needed to continue (parameters still
    needed, optimizer, replica and exchange states, positions, rows, torch's RNG state) and may
    raise to stop; ``resume=snapshot`` continues from one, to the same numbers as a run that
    never stopped.
    """
    if not isinstance(schedule, Schedule):
        raise ValueError(f"schedule must be a Schedule, got {type(schedule).__name__}")
    if isinstance(workload, str):
        workload = get_workload(workload)
    if not isinstance(workload, Workload):
        raise ValueError(f"workload must be a Workload or its name, got {type(workload).__name__}")
    check_choice("optimizer", optimizer, OPTIMIZERS)
    lr = check_positive("lr", workload.lr if lr is None else lr)
    batch_size = check_int("batch_size", workload.batch_size if batch_size is None else batch_size)
    if batch_size > workload.n_train:
        raise ValueError(
            f"batch_size: {batch_size} is larger than the training set ({workload.n_train} samples)"
        )
    momentum = check_interval("momentum", momentum, 0.0, 1.0, "[)")
    check_choice("staleness", staleness, STALENESS)
    policy = Staleness(staleness, max_staleness)
    max_wave, max_samples = check_int("max_wave", max_wave), check_int("max_samples", max_samples)
    max_bytes = check_int("max_bytes", max_bytes)
    if eval_every is not None:
        eval_every = check_int("eval_every", eval_every)

    recorded = scheme_from_meta(schedule.meta)
    if scheme is not None and recorded is not None and scheme != recorded:
        raise ValueError(f"scheme: {scheme} does not match the Schedule's {recorded}")
    scheme = scheme if scheme is not None else recorded
    frame = schedule.frame
    rules = _rules(scheme, (frame["kind"] == "exchange").any(), lr, momentum, policy)
    replicas = not isinstance(rules, Shared)
    workers = frame["worker"].to_numpy()
    machines = _machines(scheme, schedule.meta, workers)
    if len(workers) and (workers.min() < 0 or workers.max() >= machines):
        raise ValueError(f"schedule: worker ids must lie in [0, {machines})")
    n_rows = schedule.rows
    if n_rows == 0:
        raise ValueError("schedule: has no used gradients (or no exchanges) to replay")

    dev = resolve_device(device)
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
        "optimizer": optimizer,
        "lr": lr,
        "batch_size": batch_size,
        "momentum": momentum,
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
    run = _Run(schedule, rules, machines, fm, stream, data, manifest, out)
    run.start(n_rows, eval_every, workload, progress, stop_at, resume)
    row_bytes = fm.size * fm.dtype.itemsize  # one [P] row
    limits = {"max_samples": max_samples, "max_rows": max(1, max_bytes // row_bytes)}
    if not replicas:
        limits["max_wave"] = max_wave
    return run.go(deterministic, limits, safe_point, resume)


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


class _Run:
    """One replay in progress: the recorder, the newest parameters, checkpoints, the result."""

    def __init__(self, schedule, rules, machines, fm, stream, data, manifest, out) -> None:
        self.schedule, self.rules, self.machines = schedule, rules, machines
        self.fm, self.stream, self.data = fm, stream, data
        self.manifest, self.out = manifest, out
        self.state: dict = {"params": None}
        self.t0 = _time.perf_counter()

    def start(
        self, n_rows, eval_every, workload: Workload, progress: bool, stop_at, resume
    ) -> None:
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_rows, desc=f"train {workload.name}", unit="upd")

        def evaluate(flat: torch.Tensor) -> dict:
            x, y = self.data["x_test"], self.data["y_test"]
            return self.fm.evaluate(flat, x, y, workload.accuracy)

        dev = self.data["x"].device
        self.rec = Recorder(
            n_rows, eval_every, evaluate, self.checkpoint, bar, dev, stop_at=stop_at
        )
        if resume is not None:
            self.rec.restore(resume["rec"])
            torch.set_rng_state(resume["torch_rng"])

    def results(self, complete: bool) -> Results:
        rec, flat = self.rec, self.state["params"]
        man = dict(self.manifest, complete=complete, wall_seconds=_time.perf_counter() - self.t0)
        params = None if flat is None else flat.detach().cpu().clone()
        status = "diverged" if rec.diverged else "ok"
        return Results(rec.frame(), man, status, rec.diverged or rec.stopped, params)

    def checkpoint(self) -> None:
        if self.out is not None:
            self.results(False).save(self.out)

    def go(self, deterministic: bool, limits: dict, safe_point, resume) -> Results:
        was = (
            torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
        )
        nbytes = _nbytes(self.schedule.meta)
        args = (self.fm, self.stream, self.data, self.rec, self.state)
        if safe_point is not None:
            user, rec = safe_point, self.rec

            def safe_point(rows: int, snapshot: Callable[[], dict]) -> None:
                def full() -> dict:
                    return {**snapshot(), "rec": rec.state(), "torch_rng": torch.get_rng_state()}

                user(rows, full)

            limits = {**limits, "safe_point": safe_point}
        if resume is not None:
            limits = {**limits, "resume": resume}
        try:
            if deterministic:
                torch.use_deterministic_algorithms(True)
            if isinstance(self.rules, Shared):
                replay_shared(self.schedule, self.rules, *args, nbytes=nbytes, **limits)
            else:
                replay_replicas(
                    self.schedule, self.rules, self.machines, *args, nbytes=nbytes, **limits
                )
        finally:
            if deterministic:
                torch.use_deterministic_algorithms(was[0], warn_only=was[1])
            if self.rec.bar is not None:
                self.rec.bar.close()
        res = self.results(True)
        if self.out is not None:
            res.save(self.out)
        return res
