"""``toolkit distributed``: one scheme as real processes on this machine (gloo), with the shared
scheme and cluster flags; writes the measured Schedule and the final parameters, and prints the
measured step time beside the theory's prediction."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from toolkit import cli_args
from toolkit.distributed.engine import run_distributed
from toolkit.runs.config import RunConfig
from toolkit.theory import step_time
from toolkit.workloads import get_workload

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "distributed",
        help="run a scheme as real processes (torch.distributed, gloo) on this machine",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("--workload", required=True, help="workload name (toolkit.workloads)")
    p.add_argument("--lr", type=float, default=None, help="learning rate; default the workload's")
    p.add_argument("--updates", type=int, required=True, help="updates to run")
    p.add_argument("--seed", type=int, default=0, help="seed of the model, data and delays")
    cli_args.add_scheme_args(p.add_argument_group("scheme (toolkit.schemes)"))
    cli_args.add_dist_args(p, default=cli_args.DEFAULT_DIST)
    p.add_argument(
        "--time-scale",
        type=float,
        default=0.01,
        help="seconds of injected delay per unit of --dist (default 0.01: 1 -> 10 ms)",
    )
    p.add_argument(
        "--no-inject", action="store_true", help="no injected delays (a real cluster's own)"
    )
    p.add_argument(
        "--server", action="store_true", help="Sync through the server instead of all_reduce"
    )
    p.add_argument("--timeout", type=float, default=600.0, help="bound on the whole run (s)")
    p.add_argument("--out", required=True, help="new folder: schedule.parquet and params.pt")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"out: {str(out)!r} already exists and is not an empty folder")
    config = RunConfig(
        scheme=cli_args.scheme_from_args(args),
        workload=args.workload,
        compute=cli_args.compute_from_args(args),
        lr=args.lr,
        updates=args.updates,
        seed=args.seed,
    )
    schedule, params = run_distributed(
        config,
        time_scale=args.time_scale,
        inject=not args.no_inject,
        collective=not args.server,
        timeout=args.timeout,
    )
    out.mkdir(parents=True, exist_ok=True)
    schedule.save(out / "schedule.parquet")
    torch.save(params, out / "params.pt")
    used = schedule.used
    times = used.groupby("update")["time"].max().to_numpy()
    measured = float(np.diff(times).mean()) if len(times) > 1 else float("nan")
    workload = get_workload(config.workload, **config.workload_args)
    model = workload.make_model(config.seed)
    torch.nn.utils.vector_to_parameters(params, model.parameters())
    metrics = workload.evaluate(model)
    print(f"{config.scheme} on {config.workload}: {schedule.updates} updates")
    print(f"  measured step time      {measured:.4g} s")
    if not args.no_inject:
        predicted = step_time(config.scheme, cli_args.dist_from_args(args)) * args.time_scale
        ratio = measured / predicted
        print(f"  theory (no comm)        {predicted:.4g} s   measured / theory {ratio:.3f}")
    grads = schedule.grads
    print(f"  dropped gradients       {1 - grads['used'].mean():.3f}")
    print(f"  mean staleness          {used['staleness'].mean():.3f}")
    for name, value in metrics.items():
        print(f"  {name:<24}{value:.4f}")
    print(f"wrote {out / 'schedule.parquet'} and {out / 'params.pt'}")
    return 0
