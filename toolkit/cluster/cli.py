"""``python -m toolkit simulate``: run the clock and write a Schedule.

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
        description=__doc__.splitlines()[0],
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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
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
