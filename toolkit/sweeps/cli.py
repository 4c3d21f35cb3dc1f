"""``toolkit sweep run SPEC --out DIR``, ``toolkit sweep status DIR``, ``toolkit sweep report
DIR``: run a sweep spec (resumable: the same command after a kill or an edit of the spec runs only
what is not complete), count its runs, and write its tables and figures.

Examples::

    toolkit sweep run sweeps/quick.toml --out runs/quick --jobs 2
    toolkit sweep run sweeps/paper.toml --out runs/paper --executor ray --address auto
    toolkit sweep run sweeps/paper.toml --out runs/paper --executor submitit \\
        --slurm-partition gpu
    toolkit sweep status runs/quick
    toolkit sweep report runs/quick            # tables and figures in runs/quick/report
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``sweep`` and its sub-subcommands ``run``, ``status``, ``report``, ``export``."""
    sweep = subparsers.add_parser(
        "sweep",
        help="run, count and report parameter sweeps",
        description="Run a sweep spec (resumable: the same command after a kill or an edit of "
        "the spec runs only what is not complete), count its runs, write its tables and figures, "
        "or export its tables for data/.",
    )
    sub = sweep.add_subparsers(dest="sweep_command", metavar="subcommand", required=True)

    r = sub.add_parser(
        "run",
        help="run (or continue) every point of a spec",
        description="Run every point of a sweep spec (TOML) not yet complete in --out, on a local "
        "process pool, Ray or Slurm; a run that raises is recorded and the sweep goes "
        "on.",
    )
    r.add_argument("spec", help="sweep spec (TOML; see toolkit.sweeps.spec)")
    r.add_argument("--out", required=True, help="sweep directory (created; reused when it exists)")
    r.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="parallel runs (default: the cores, at most 8); more than the cores are cut to "
        "them unless --force-jobs, and never more than the runs to do",
    )
    r.add_argument(
        "--force-jobs", action="store_true", help="start --jobs workers even beyond the cores"
    )
    r.add_argument(
        "--executor",
        choices=["local", "ray", "submitit"],
        default="local",
        help="where the runs execute: a local process pool (default), Ray, or Slurm through "
        "submitit (the engine each run uses is its config's [engine])",
    )
    r.add_argument("--address", default=None, help="Ray cluster address (--executor ray)")
    r.add_argument(
        "--submitit-cluster",
        choices=["auto", "slurm", "local"],
        default="auto",
        help="submitit's cluster (--executor submitit; default auto)",
    )
    r.add_argument("--slurm-partition", default=None, help="Slurm partition (--executor submitit)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.set_defaults(func=_run)
    s = sub.add_parser(
        "status",
        help="runs complete, partial, failed and still to do",
        description="How many runs of a sweep directory are complete, partial or failed, and how "
        "many points of its spec have not started.",
    )
    s.add_argument("out", help="sweep directory")
    s.set_defaults(func=_status)
    rep = sub.add_parser(
        "report",
        help="tables (CSV) and figures (PDF, PNG) of a sweep",
        description="Write the tables (CSV) and figures (PDF, PNG) of a sweep: final metric and "
        "time to target over seeds, the best learning rate, sensitivity and failures.",
    )
    rep.add_argument("out", help="sweep directory")
    rep.add_argument("--dest", default=None, help="report directory (default OUT/report)")
    rep.set_defaults(func=_report)
    ex = sub.add_parser(
        "export",
        help="the sweep's tables (evaluations.parquet, summary.csv) for data/",
        description="Write a sweep's two tables (evaluations.parquet, summary.csv; no schedules "
        "or parameters) to --dest, which toolkit.sweeps.load reads back the same.",
    )
    ex.add_argument("out", help="sweep directory")
    ex.add_argument("--dest", required=True, help="folder for the two tables (created)")
    ex.add_argument(
        "--overwrite", action="store_true", help="replace files of --dest not written by an export"
    )
    ex.set_defaults(func=_export)


def _run(args: argparse.Namespace) -> int:
    from toolkit.limits import cores
    from toolkit.sweeps.runner import SweepInterrupted, run_sweep
    from toolkit.sweeps.store import status

    jobs = args.jobs if args.jobs is not None else min(8, cores())
    here = args.executor == "local" or (args.executor == "ray" and args.address is None)
    if here and jobs > cores() and not args.force_jobs:  # processes on this machine
        print(
            f"--jobs: {jobs} is more than this machine's {cores()} cores; running {cores()} "
            "(--force-jobs to start more)",
            file=sys.stderr,
        )
        jobs = cores()
    parameters = {"slurm_partition": args.slurm_partition} if args.slurm_partition else {}
    try:
        summary = run_sweep(
            args.spec,
            args.out,
            jobs=jobs,
            executor=args.executor,
            address=args.address,
            cluster=args.submitit_cluster,
            parameters=parameters,
            progress=not args.no_progress,
        )
    except SweepInterrupted as err:
        counts = status(args.out)
        print(
            f"interrupted ({err}): {counts['complete']} of {counts.sum()} runs complete, "
            f"{counts['partial']} partial (kept with their checkpoints); continue with: "
            f"toolkit sweep run {args.spec} --out {args.out}",
            file=sys.stderr,
        )
        return 128 + err.signum
    print(_counts(summary))
    failed = int((summary["state"] == "failed").sum())
    if failed:
        print(f"{failed} run(s) raised; their tracebacks: {args.out}/runs/<id>/error.txt")
    return 1 if failed else 0


def _counts(summary) -> str:
    counts = summary["state"].value_counts()
    parts = [f"{counts.get(k, 0)} {k}" for k in ("complete", "partial", "failed", "new")]
    diverged = int((summary.get("status") == "diverged").sum()) if "status" in summary else 0
    return f"{len(summary)} runs: " + ", ".join(parts) + f" ({diverged} diverged)"


def _status(args: argparse.Namespace) -> int:
    from toolkit.sweeps.store import status

    print(status(args.out).to_string())
    return 0


def _export(args: argparse.Namespace) -> int:
    from toolkit.sweeps.store import export

    for path in export(args.out, args.dest, overwrite=args.overwrite):
        print(f"{path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0


def _report(args: argparse.Namespace) -> int:
    import pandas as pd

    from toolkit.sweeps.report import report

    tables = report(args.out, args.dest)
    if "settings" in tables:  # a protocol's report
        names = ("settings", "evaluation", "targets", "time_to_target", "pairwise", "failures")
        columns = {
            "settings": ["protocol", "workload", "label", "comparison", "lr", "lr_status", "rule"],
            "evaluation": [
                "protocol",
                "label",
                "comparison",
                "lr",
                "metric",
                "n",
                "mean",
                "interval",
                "ci_low",
                "ci_high",
                "worst",
                "best",
                "diverged",
                "failed",
                "stopped",
            ],
            "time_to_target": [
                "protocol",
                "label",
                "comparison",
                "target",
                "n",
                "reached",
                "fraction",
                "median",
                "censored",
                "censored_max",
            ],
            "pairwise": [
                "protocol",
                "comparison",
                "a",
                "b",
                "mean_a",
                "mean_b",
                "p",
                "p_holm",
                "separated",
                "leader",
                "test",
            ],
        }
    else:
        names, columns = ("final", "time_to_target", "best_lr", "failures"), {}
    known = {"protocol", "workload", "label", "machines", "comparison", "lr", "lr_status", "rule"}
    fields = [c for c in tables.get("settings", pd.DataFrame()).columns if c not in known]
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        for name in names:
            if name in tables and len(tables[name]):
                table = tables[name]
                want = columns.get(name, list(table.columns))
                if name in columns:  # the fields that tell a protocol's cells apart
                    want = [*want[:3], *fields, *want[3:]]
                table = table[[c for c in want if c in table]]
                print(f"\n{name}:\n{table.to_string(index=False)}")
    for warning in tables.get("warnings", pd.DataFrame({"warning": []}))["warning"]:
        print(f"warning: {warning}")
    dest = args.dest or f"{args.out}/report"
    print(f"\ntables and figures in {dest}")
    return 0
