"""``run_distributed(config)``: a RunConfig on real processes (:mod:`toolkit.distributed.process`),
returned as the measured Schedule (the simulator's columns, real seconds) and the final
parameters.

The measured Schedule is replayable: replay (:func:`toolkit.replay.train`) of it on the same
seed follows the same gradients (worker, batch, version) and so reaches the backend's parameters
up to float summation order, which is how the backend is checked against the simulator's
training path for every server scheme.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from toolkit.checks import check_int, check_positive
from toolkit.cluster import Schedule
from toolkit.cluster.schedule import make_frame, sort_shared
from toolkit.distributed.launch import launch
from toolkit.runs.config import RunConfig

__all__ = ["SERVER_SCHEMES", "run_distributed"]

COLLECTIVE_SCHEMES = ("sync",)
SERVER_SCHEMES = ("sync", "backup", "kbatchsync", "async", "kasync", "kbatchasync")


def run_distributed(
    config: RunConfig,
    *,
    updates: int | None = None,
    time_scale: float = 0.01,
    inject: bool = True,
    collective: bool = True,
    timeout: float = 300.0,
    wait_timeout: float = 30.0,
    out: str | Path | None = None,
) -> tuple[Schedule, torch.Tensor]:
    """Run ``config`` (``updates`` updates, default ``config.updates``) as one process per rank
    on this machine. ``time_scale``: seconds of injected delay per unit of the config's step-time
    model (``inject=False`` for none, on a real cluster); ``collective``: Sync by ``all_reduce``
    (else through the server, like Backup(n, 0)); ``timeout`` bounds the whole run,
    ``wait_timeout`` each wait for a message. A worker of a server scheme may die (SIGKILL, a
    lost node) while the scheme can go on: Backup(n, b) while n workers are left, Async while
    one is; ``schedule.meta["died"]`` lists them. A collective run stops with the first dead
    rank, named in the error. Returns the measured Schedule and the parameters."""
    if not isinstance(config, RunConfig):
        raise ValueError(f"config: expected a RunConfig, got {type(config).__name__}")
    scheme = config.scheme
    updates = check_int("updates", config.updates if updates is None else updates)
    check_positive("timeout", timeout)
    check_positive("wait_timeout", wait_timeout)
    if scheme.name not in SERVER_SCHEMES:
        raise ValueError(
            f"scheme: {scheme} has no distributed path yet (available: {', '.join(SERVER_SCHEMES)})"
        )
    collective = collective and scheme.name in COLLECTIVE_SCHEMES
    machines = scheme.rule.machines
    world = machines if collective else machines + 1
    with tempfile.TemporaryDirectory(prefix="toolkit-dist-") as tmp:
        folder = Path(out) if out is not None else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        job = {
            "config": config.to_dict(),
            "updates": updates,
            "time_scale": float(time_scale),
            "inject": bool(inject),
            "collective": collective,
            "pg_timeout": float(wait_timeout),
            "wait_timeout": float(wait_timeout),
            "out": str(folder),
        }
        path = folder / "job.json"
        path.write_text(json.dumps(job))
        survivable = () if collective else tuple(range(1, world))  # the server decides
        died = launch(path, world, timeout=timeout, log_dir=folder, survivable=survivable)
        ranks = [
            json.loads((folder / f"rank{r}.json").read_text()) if r not in died else {}
            for r in range(world)
        ]
        params = torch.load(folder / "params.pt")
    meta = {
        "scheme": scheme.to_dict(),
        "machines": machines,
        "updates": updates,
        "seed": config.seed,
        "engine": "distributed",
        "time_scale": float(time_scale) if inject else 0.0,
        "collective": collective,
        "died": [r - 1 for r in died],  # workers killed during the run (server schemes)
    }
    return Schedule(_frame(ranks, collective), meta=meta), params


def _frame(ranks: list[dict], collective: bool):
    """Rows (update, time, worker, version, used, batch, compute[, comm]) of every rank, as the
    Schedule's columns."""
    if collective:
        rows = [row for r in ranks for row in r["rows"]]
        u, t, w, v, _, _, b, comp, comm = (np.array(c) for c in zip(*rows, strict=True))
        first = {}
        for i in np.flatnonzero(w == 0):  # rank 0's clock for the update times
            first[int(u[i])] = t[i]
        time = np.array([first[int(x)] for x in u])
        return sort_shared(
            make_frame(
                kind=0,
                update=u,
                time=time,
                worker=w,
                version=v,
                staleness=0,
                used=True,
                batch=b,
                compute_time=comp,
                comm_time=comm,
            )
        )
    rows = list(ranks[0]["rows"])
    for r in ranks[1:]:
        rows += r.get("cancelled", [])  # a worker that died left none
    u, t, w, v, used, b, comp = (np.array(c) for c in zip(*rows, strict=True))
    used = used.astype(bool)
    return sort_shared(
        make_frame(
            kind=0,
            update=u,
            time=t,
            worker=w,
            version=v,
            staleness=np.where(used, u - v, 0),
            used=used,
            batch=b,
            compute_time=comp,
            comm_time=np.nan,
        )
    )
