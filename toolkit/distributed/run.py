"""The real backend as an engine (:class:`DistributedEngine`, ``engine = {name =
"distributed"}`` in a RunConfig; :func:`toolkit.runs.run` runs it): the RunConfig as processes,
written to the same run directory (:class:`toolkit.runs.directory.RunDirectory`) and the same
Results table as replay (:mod:`toolkit.replay.results`), from what the processes measured.

Results rows (one per update; one per centre update for replica schemes):

``time``        measured seconds since the start (the Schedule's update time).
``train_loss``  mean loss of the mini-batches the update used, as the ranks computed them
                (replica schemes: of the local steps the exchanging workers took since their
                previous exchange).
``staleness``   mean staleness of the used gradients (0 for replica schemes).
``bytes``       2 x model bytes per used gradient (per exchange), replay's convention.
``test_*``      the test split evaluated, after the run, at the parameters rank 0 kept every
                ``eval_every`` rows (and at the end), so evaluation takes no measured time.

A diverged run (a non-finite loss) is a result: status ``"diverged"`` and every measured row.
The Schedule goes to ``schedule.parquet``; the ranks' logs and snapshots stay in ``ranks/``;
``trace.csv`` holds every completed gradient's measured step time (``worker``, ``batch``,
``compute_time`` in seconds: real computation plus injected delay), which
``Empirical.from_csv`` (and so theory and the clock: ``compute = "Empirical('trace.csv')"``)
reads back, closing the loop from measurement to prediction. The ranks checkpoint at every
evaluation point (``ranks/ckpt<row>_rank<r>.pt``), and ``resume=True`` goes on from the newest
complete one, its rows appended to the measured past (times go on from the checkpoint's).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from toolkit.checks import ConfigError, check_positive
from toolkit.cluster.clock import estimate_bytes
from toolkit.cluster.schedule import RowKind
from toolkit.distributed.collective import ROW, Row
from toolkit.distributed.engine import path_of, read_logs, run_distributed, world_size
from toolkit.distributed.launch import check_ranks
from toolkit.limits import check_memory
from toolkit.models import as_compute, parse_compute
from toolkit.replay.batched import FlatModel
from toolkit.replay.results import Results
from toolkit.replay.train import provenance
from toolkit.runs.config import RunConfig
from toolkit.runs.directory import RunDirectory
from toolkit.runs.engine import Prepared, RunOutcome, eval_every, prepare

__all__ = ["TRACE_FILE", "DistributedEngine", "measured_results", "trace"]

RANKS_DIR = "ranks"
TRACE_FILE = "trace.csv"


def trace(schedule) -> pd.DataFrame:
    """The measured step times of a Schedule's completed gradients (used ones: a dropped
    gradient's time was cut short when it was cancelled): ``worker``, ``batch``,
    ``compute_time``."""
    g = schedule.used
    return g[["worker", "batch", "compute_time"]].sort_values(["worker", "batch"])


def _timeout(timeout: float | None, updates: int) -> float:
    """The bound on a run: ``timeout``, by default 60 s plus 1 s per update."""
    return 60.0 + updates if timeout is None else timeout


class DistributedEngine:
    """The real backend as an engine (:mod:`toolkit.runs.engine`): ``config`` runs as one
    process per rank on this machine, with the engine settings of ``config.engine``
    (``time_scale``, ``inject``, ``collective``); ``config.updates`` (else the workload's step
    budget) updates, local steps for replica schemes. Options: ``timeout`` bounds the run
    (default: 60 s plus 1 s per update), ``wait_timeout`` each wait for a message. The ranks
    checkpoint at every evaluation point in the run directory; a run directory of a run that
    stopped part-way (a killed launcher, a lost node) goes on from its newest checkpoint."""

    name = "distributed"

    def check(
        self,
        config: RunConfig,
        *,
        timeout: float | None = None,
        wait_timeout: float = 30.0,
    ) -> None:
        """What the real backend cannot run, refused before a directory or a process exists:
        a time budget, a target or a plateau (it runs a fixed number of updates), bad bounds,
        more ranks than the machine hosts (:func:`~toolkit.distributed.launch.check_ranks`), a
        measured Schedule larger than the memory limit (the simulator's estimate of the same
        rows, :func:`toolkit.cluster.clock.estimate_bytes`), and a run that cannot end within
        its timeout. The last is a lower bound derived here: the M workers make at most M
        gradients per mean step time (times ``time_scale``), and every update takes at least
        one, so ``updates`` updates take at least updates * mean * time_scale / M seconds
        (replica schemes: each worker's updates local steps, updates * mean * time_scale)."""
        for name in ("time_budget", "target", "plateau"):
            if getattr(config, name) is not None:
                raise ConfigError(
                    name,
                    f"{name}: the real backend runs a fixed number of updates; give updates "
                    "instead",
                )
        if timeout is not None:
            check_positive("timeout", timeout)
        check_positive("wait_timeout", wait_timeout)
        scheme = config.scheme
        check_ranks(scheme, config.engine.collective is not False)
        if config.updates is None:  # the workload's step budget: sized for a run
            return
        updates = config.updates
        need = estimate_bytes(scheme, updates)
        check_memory("updates", f"the measured Schedule of {updates} updates of {scheme}", need)
        rule = scheme.rule
        mean = float(as_compute(parse_compute(config.compute)).sample(rule.machines, 64).mean())
        least = updates * mean * config.engine.time_scale / (1 if rule.replicas else rule.machines)
        limit = _timeout(timeout, updates)
        if least > limit:
            raise ConfigError(
                "timeout",
                f"timeout: {updates} updates of {scheme} take at least {least:.3g} s "
                f"(mean step time {mean:.3g} x time_scale {config.engine.time_scale:g}), more "
                f"than the run's timeout of {limit:g} s; lower updates or the time scale, or "
                "raise the timeout",
            )

    def run(
        self,
        config: RunConfig,
        directory: RunDirectory | None,
        *,
        progress: bool = False,
        schedule=None,
        timeout: float | None = None,
        wait_timeout: float = 30.0,
    ) -> RunOutcome:
        if schedule is not None:
            raise ConfigError("schedule", "schedule: the distributed engine measures its Schedule")
        self.check(config, timeout=timeout, wait_timeout=wait_timeout)
        prep = prepare(config)
        updates = prep.updates
        engine = config.engine
        again = directory is not None and (directory.path / RANKS_DIR).exists()  # part-way
        scheme = config.scheme
        rows = updates // scheme.rule.period if scheme.rule.period else updates
        if scheme.rule.period and not scheme.rule.barrier:
            rows *= scheme.rule.machines  # asynchronous EASGD: one row per exchange
        every = eval_every(config, rows)
        start = time.perf_counter()
        path = path_of(scheme, engine.collective)
        world = world_size(scheme, path)
        bar = _Progress(rows, path, str(scheme)) if progress else None
        with tempfile.TemporaryDirectory(prefix="toolkit-dist-") as tmp:
            folder = directory.path / RANKS_DIR if directory is not None else Path(tmp)
            try:
                schedule, params = run_distributed(
                    config,
                    updates=updates,
                    timeout=_timeout(timeout, updates),
                    wait_timeout=wait_timeout,
                    eval_every=every,
                    out=folder,
                    watch=bar,
                    resume=again,
                )
            finally:
                if bar is not None:
                    bar.close()
            logs = read_logs(folder, world)[0]
            schedule.meta["nbytes"] = params.numel() * params.element_size()  # replay's bytes
            res = measured_results(schedule, logs, params, config, prep, every, folder)
        res.manifest["wall_seconds"] = time.perf_counter() - start
        died = schedule.meta.get("died") or []
        if died:  # the scheme carried on without them (else run_distributed raised)
            lost = ", ".join(str(w) for w in died)
            note = f"lost worker(s) {lost}; {scheme} carried on without them"
            res.message = f"{res.message}; {note}" if res.message else note
        if directory is not None:
            trace(schedule).to_csv(directory.path / TRACE_FILE, index=False)
            directory.save_schedule(schedule)
        return RunOutcome(schedule, res)


def measured_results(
    schedule,
    logs: list[list],
    params: torch.Tensor,
    config: RunConfig,
    prep: Prepared,
    every: int,
    folder: Path,
) -> Results:
    """The Results table of a measured run (module docstring) from its Schedule, the ranks'
    rows (with their losses) and rank 0's snapshots in ``folder``."""
    workload = prep.workload
    log = pd.DataFrame(logs, columns=ROW)
    fm = FlatModel(workload.make_model(config.seed), workload.loss)
    nbytes = schedule.meta.get("nbytes", fm.size * fm.dtype.itemsize)
    f = schedule.frame
    replicas = config.scheme.rule.period > 0
    if replicas:
        ex = f[f["kind"].to_numpy() == "exchange"]
        by = ex.groupby("update")
        table = pd.DataFrame({"time": by["time"].max(), "count": by.size()})
        table["staleness"] = 0.0
        grads = log[log["kind"] == RowKind.GRAD].set_index(["worker", "batch"])["loss"]
        tau = config.scheme.rule.period
        losses = []
        for _, group in by:
            pairs = zip(group["worker"], group["version"], strict=True)
            keys = [(w, b) for w, v in pairs for b in range(v - tau, v)]
            losses.append(grads.reindex(keys).mean())
        table["train_loss"] = losses
    else:
        used = f[f["used"].to_numpy()]
        by = used.groupby("update")
        table = pd.DataFrame(
            {"time": by["time"].max(), "staleness": by["staleness"].mean(), "count": by.size()}
        )
        g = log[(log["kind"] == RowKind.GRAD) & log["used"].astype(bool)]
        table["train_loss"] = g.groupby("update")["loss"].mean()
    table = table.reset_index().rename(columns={"index": "update"})
    table["bytes"] = 2.0 * nbytes * table["count"].cumsum()
    table["test_loss"] = np.nan
    table["test_accuracy"] = np.nan
    n = len(table)
    x, y = workload.x_test, workload.y_test
    for done in [*range(every, n, every), n]:
        snap = folder / f"snap{done}.pt"
        flat = params if done == n else torch.load(snap, weights_only=True)
        res = fm.evaluate(flat, x, y, workload.accuracy)
        for key, value in res.items():
            table.loc[done - 1, key] = value
    table = table.drop(columns="count")
    bad = ~np.isfinite(table[["train_loss"]].to_numpy()).all(1)
    status, message = "ok", ""
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        status, message = "diverged", f"train loss became non-finite at row {first}"
    manifest = {
        "parameters": int(fm.size),
        "schedule_status": schedule.status,
        "schedule_meta": schedule.meta,
        "rows": "per centre update" if replicas else "per update",
        "eval_every": every,
        "stopped": "diverged" if status == "diverged" else "budget",
        **provenance(torch.device("cpu")),
    }
    return Results(table, manifest, status, message, params.detach().cpu().clone())


class _Progress:
    """A progress bar over a run's rows, read from rank 0's log while the ranks run: on the
    collective shared path every row is an update, on the server path the server notes
    ``{"update": ...}`` each one, and on the replica paths the exchanges are the rows of kind
    ``RowKind.EXCHANGE``."""

    def __init__(self, total: int, path: str, label: str) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc=f"distributed {label}", unit="row")
        self.path = path
        self.offset = 0

    def counts(self, entry: list | dict) -> bool:
        """Whether an entry of rank 0's log is one of the run's rows."""
        if self.path == "server":
            return isinstance(entry, dict)
        if not isinstance(entry, list):
            return False
        return self.path == "shared" or Row(*entry).kind == RowKind.EXCHANGE

    def __call__(self, folder: Path) -> None:
        path = folder / "rank0.rows"
        if not path.exists():
            return
        with path.open("rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        done = chunk.rfind(b"\n") + 1  # whole lines only
        self.offset += done
        lines = chunk[:done].decode().splitlines()
        self.bar.update(sum(self.counts(json.loads(line)) for line in lines))

    def close(self) -> None:
        self.bar.close()
