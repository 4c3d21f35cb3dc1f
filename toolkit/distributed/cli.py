"""``toolkit distributed``: one scheme as real processes on this machine (gloo), with the shared
scheme and cluster flags, in a run directory (config.toml, the measured schedule.parquet,
results.parquet, params.pt: the distributed engine,
:class:`toolkit.distributed.run.DistributedEngine`); prints the measured step time beside the
theory's prediction. ``toolkit run CONFIG --engine distributed`` runs a config file the same way.

The ranks are checked against what the machine hosts (:func:`toolkit.distributed.launch.
check_ranks`) before torch is imported or any process starts; ``--max-ranks`` overrides it."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from toolkit import cli_args
from toolkit.checks import ConfigError
from toolkit.distributed.launch import RANK_BYTES, RANKS_PER_CORE, check_ranks

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "distributed",
        help="run a scheme as real processes (torch.distributed, gloo) on this machine",
        description="Run one scheme as real processes on this machine (torch.distributed, gloo), "
        "with step times injected from --dist, in a new run directory (config.toml, the measured "
        "schedule.parquet, results.parquet, params.pt), and print the measured step time beside "
        "the theory's prediction. toolkit run CONFIG --backend distributed runs a config file the "
        "same way.",
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
    p.add_argument(
        "--timeout", type=float, default=None, help="bound on the run (s; default 60 + updates)"
    )
    p.add_argument("--eval-every", type=int, default=None, help="rows between evaluations")
    p.add_argument(
        "--max-ranks",
        type=int,
        default=None,
        help=f"start up to this many rank processes (default: {RANKS_PER_CORE} per core, and as "
        f"many as the memory limit holds at about {RANK_BYTES / 1e6:.0f} MB each; "
        "TOOLKIT_MAX_RANKS likewise)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--out", required=True, help="new run directory")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    scheme = cli_args.scheme_from_args(args)
    if args.max_ranks is not None:
        if args.max_ranks < 1:
            why = f"--max-ranks: expected a number of ranks >= 1, got {args.max_ranks}"
            raise ConfigError("--max-ranks", why)
        os.environ["TOOLKIT_MAX_RANKS"] = str(args.max_ranks)  # run_distributed reads it too
    check_ranks(scheme, not args.server, argument="--n")  # before torch, before any process

    import numpy as np

    from toolkit.cluster import Schedule
    from toolkit.distributed.engine import check_run
    from toolkit.runs import EngineSpec, RunConfig, run
    from toolkit.runs.cli import summary_line
    from toolkit.runs.directory import SCHEDULE_FILE
    from toolkit.theory import step_time

    engine = EngineSpec(
        "distributed",
        time_scale=args.time_scale,
        inject=not args.no_inject,
        collective=not args.server,
    )
    config = RunConfig(
        scheme=scheme,
        workload=args.workload,
        compute=cli_args.compute_from_args(args),
        lr=args.lr,
        updates=args.updates,
        seed=args.seed,
        eval_every=args.eval_every,
        engine=engine,
    )
    check_run(config)  # before run() makes the run directory
    out = Path(args.out)
    res = run(config, out, progress=not args.no_progress, timeout=args.timeout)
    schedule = Schedule.load(out / SCHEDULE_FILE)
    times = res.frame["time"].to_numpy()
    if config.scheme.rule.period:  # theory's step time is per local step
        measured, unit = float(schedule.grads["time"].max()) / args.updates, "local step"
        rows = "centre updates"
    else:
        measured = float(np.diff(times).mean()) if len(times) > 1 else float("nan")
        unit, rows = "update", "updates"
    print(f"{config.scheme} on {config.workload}: {len(res.frame)} {rows}")
    print(f"  {'measured per ' + unit:<24}{measured:.4g} s")
    if not args.no_inject:
        predicted = step_time(config.scheme, cli_args.dist_from_args(args)) * args.time_scale
        ratio = measured / predicted
        print(f"  theory (no comm)        {predicted:.4g} s   measured / theory {ratio:.3f}")
    grads = schedule.grads
    print(f"  dropped gradients       {1 - grads['used'].mean():.3f}")
    print(f"  mean staleness          {schedule.used['staleness'].mean():.3f}")
    last = res.evaluations.iloc[-1]
    for name in ("test_loss", "test_accuracy"):
        if np.isfinite(last[name]):
            print(f"  {name:<24}{last[name]:.4f}")
    print(summary_line(res, measured=True))
    print(f"wrote {out} (config.toml, {SCHEDULE_FILE}, results.parquet, params.pt, trace.csv)")
    return 0
