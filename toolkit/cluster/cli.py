"""``python -m toolkit simulate``: run the clock and write a Schedule.

Prints the Schedule's summary (mean step time, staleness quantiles, dropped fraction) and, with
``--out``, writes it to a new .parquet or .csv file (an existing one only with ``--overwrite``).

Example::

    python -m toolkit simulate --scheme backup --n 16 --b 2 --dist "expon(loc=1, scale=0.5)" \\
        --comm "ParameterServer(nbytes=4e6, bandwidth=1.25e9, latency=1e-4)" \\
        --updates 1000 --seed 0 --out runs/sched.parquet

Scheme and cluster flags (``--scheme``, ``--n``, ..., ``--dist``, ``--column``, ``--comm``) are
those of every subcommand: see ``toolkit.cli_args``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from toolkit.checks import ConfigError
from toolkit.cli_args import (
    add_cluster_args,
    add_scheme_args,
    comm_from_args,
    dist_from_args,
    scheme_from_args,
)
from toolkit.cluster.clock import simulate

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``simulate`` (shared scheme and cluster flags, then its own) to the top-level CLI."""
    p = subparsers.add_parser(
        "simulate",
        help="run the clock: a Schedule of updates for a scheme",
        description="Run the clock for a scheme on a simulated cluster and print the Schedule's "
        "summary (mean step time, staleness quantiles, dropped fraction); with --out, write the "
        "Schedule (one row per gradient: its update, time, worker, version and staleness) to a "
        "new .parquet or .csv file (an existing one only with --overwrite).",
    )
    add_scheme_args(p.add_argument_group("scheme (toolkit.schemes)"))
    add_cluster_args(p.add_argument_group("cluster (toolkit.cluster)"))
    p.add_argument(
        "--updates",
        type=int,
        default=1000,
        help="updates (local steps for replica schemes; default 1000)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the clock (default 0)")
    p.add_argument("--out", default=None, help="write the Schedule (.parquet or .csv)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.out is not None and not args.out.strip():
        raise ConfigError("out", "out: an empty path; name a .parquet or .csv file")
    if args.out and Path(args.out).is_file() and not args.overwrite:
        raise ConfigError(
            "out", f"out: {args.out!r} already exists; pass --overwrite to replace it"
        )
    scheme = scheme_from_args(args)
    sched = simulate(
        scheme,
        dist_from_args(args),
        comm=comm_from_args(args),
        updates=args.updates,
        seed=args.seed,
    )
    if args.out:
        sched.save(args.out)
    summary = sched.summary()
    print(f"{scheme}  dist={args.dist}  updates={args.updates}  seed={args.seed}")
    print(json.dumps(summary, indent=2))
    if sched.status != "ok":
        print(f"status: {sched.status}: {sched.message}")
    if args.out:
        print(f"wrote {args.out}")
    return 0
