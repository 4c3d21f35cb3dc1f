"""``run(config, out)`` on the real backend: the RunConfig as processes, written to the same run
directory (:class:`toolkit.runs.directory.RunDirectory`) and the same Results table as replay
(:mod:`toolkit.replay.results`), from what the processes measured.

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
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from toolkit.cluster.schedule import RowKind
from toolkit.distributed.collective import ROW, Row
from toolkit.distributed.engine import path_of, read_logs, run_distributed, world_size
from toolkit.replay.batched import FlatModel
from toolkit.replay.results import Results
from toolkit.replay.train import provenance
from toolkit.runs.config import RunConfig
from toolkit.runs.directory import RunDirectory
from toolkit.workloads import get_workload

__all__ = ["TRACE_FILE", "run", "trace"]

RANKS_DIR = "ranks"
TRACE_FILE = "trace.csv"


def trace(schedule) -> pd.DataFrame:
    """The measured step times of a Schedule's completed gradients (used ones: a dropped
    gradient's time was cut short when it was cancelled): ``worker``, ``batch``,
    ``compute_time``."""
    g = schedule.used
    return g[["worker", "batch", "compute_time"]].sort_values(["worker", "batch"])


def run(
    config: RunConfig,
    out: str | Path | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    time_scale: float = 0.01,
    inject: bool = True,
    collective: bool = True,
    timeout: float | None = None,
    wait_timeout: float = 30.0,
) -> Results:
    """Run ``config`` on the real backend (one process per rank on this machine) and return its
    Results; with ``out``, in a run directory. ``config.updates`` (else the workload's step
    budget) updates, local steps for replica schemes. ``timeout`` bounds the run (default: 60 s
    plus 1 s per update). The ranks checkpoint at every evaluation point; ``resume`` goes on
    from the newest checkpoint of a run that stopped part-way (a killed launcher, a lost node)
    and returns a complete run's Results. Engine options as
    :func:`toolkit.distributed.run_distributed`."""
    if not isinstance(config, RunConfig):
        raise ValueError(f"config: expected a RunConfig, got {type(config).__name__}")
    for name in ("time_budget", "target"):
        if getattr(config, name) is not None:
            raise ValueError(
                f"{name}: the real backend runs a fixed number of updates; give updates instead"
            )
    workload = get_workload(config.workload, **config.workload_args).with_dtype(config.dtype)
    updates = config.updates if config.updates is not None else workload.steps
    directory = RunDirectory(out, config, resume=resume, overwrite=overwrite) if out else None
    if directory is not None and directory.complete:
        return Results.load(directory.path)
    again = directory is not None and (directory.path / RANKS_DIR).exists()  # stopped part-way
    scheme = config.scheme
    rows = updates // scheme.rule.period if scheme.rule.period else updates
    if scheme.rule.period and not scheme.rule.barrier:
        rows *= scheme.rule.machines  # asynchronous EASGD: one row per exchange
    every = config.eval_every or max(1, math.ceil(rows / 20))
    start = time.perf_counter()
    path = path_of(scheme, collective)
    world = world_size(scheme, path)
    bar = _Progress(rows, path, str(scheme)) if progress else None
    with tempfile.TemporaryDirectory(prefix="toolkit-dist-") as tmp:
        folder = directory.path / RANKS_DIR if directory is not None else Path(tmp)
        try:
            schedule, params = run_distributed(
                config,
                updates=updates,
                time_scale=time_scale,
                inject=inject,
                collective=collective,
                timeout=60.0 + updates if timeout is None else timeout,
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
        schedule.meta["nbytes"] = params.numel() * params.element_size()  # for replay's bytes
        res = measured_results(schedule, logs, params, config, workload, every, folder)
    res.manifest.update(
        wall_seconds=time.perf_counter() - start,
        engine={"name": "distributed", "time_scale": time_scale if inject else 0.0},
    )
    if directory is not None:
        trace(schedule).to_csv(directory.path / TRACE_FILE, index=False)
        directory.save_schedule(schedule)
        res.manifest["run_id"] = directory.id
        directory.finish(res)
    return res


def measured_results(
    schedule,
    logs: list[list],
    params: torch.Tensor,
    config: RunConfig,
    workload,
    every: int,
    folder: Path,
) -> Results:
    """The Results table of a measured run (module docstring) from its Schedule, the ranks'
    rows (with their losses) and rank 0's snapshots in ``folder``."""
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
        grads = log[log["kind"] == 0].set_index(["worker", "batch"])["loss"]
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
        g = log[(log["kind"] == 0) & log["used"].astype(bool)]
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
        "scheme": config.scheme.to_dict(),
        "workload": workload.name,
        "lr": workload.lr if config.lr is None else config.lr,
        "batch_size": workload.batch_size if config.batch_size is None else config.batch_size,
        "momentum": config.momentum,
        "seed": int(config.seed),
        "staleness": config.staleness,
        "machines": int(config.scheme.rule.machines),
        "parameters": int(fm.size),
        "schedule_status": schedule.status,
        "schedule_meta": schedule.meta,
        "rows": "per centre update" if replicas else "per update",
        "eval_every": every,
        "metric": workload.metric,
        "target": workload.target,
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
