"""``toolkit train`` (a RunConfig from flags) and ``toolkit run CONFIG`` (from a file): simulate
a Schedule, then train a real model following it, in a run directory.

Examples::

    toolkit train --workload mnist1d_mlp --scheme backup --n 16 --b 2 \\
        --dist "expon(loc=1, scale=0.5)" --updates 300 --lr 0.1 --seed 0 --out runs/x
    toolkit run runs/x/config.toml --out runs/x --resume
    toolkit run runs/x/config.toml --out runs/y --engine distributed    # measured, real processes

``--out`` must not exist yet (or be empty), unless ``--resume`` continues the run in it (same
config) or ``--overwrite`` replaces it. Ctrl-C (or SIGTERM) writes a checkpoint and stops (exit
code 130, or 143); the same command with ``--resume`` continues to the same numbers. The engine
(``--engine``, ``--time-scale``, ``--no-inject``) is part of the config, so a run directory holds
the runs of one engine only. Scheme and cluster flags
(``--scheme``, ``--n``, ..., ``--dist``, ``--column``, ``--comm``) are those of every
subcommand: see ``toolkit.cli_args``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from toolkit import cli_args
from toolkit.checks import ConfigError
from toolkit.runs.config import DTYPES, RunConfig
from toolkit.runs.engine import ENGINES, EngineSpec
from toolkit.runs.stopping import Plateau

__all__ = ["register_run", "register_train", "summary_line"]


def _add_run_flags(p: argparse.ArgumentParser, out_required: bool) -> None:
    p.add_argument("--out", required=out_required, help="run directory")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue the run in --out")
    mode.add_argument("--overwrite", action="store_true", help="delete --out first")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    e = p.add_argument_group("engine (toolkit.runs.engine; part of the config and its id)")
    e.add_argument(
        "--engine",
        choices=list(ENGINES),
        default=None,
        help="replay: simulate the Schedule, then train along it; distributed: run the scheme as "
        "real processes on this machine (torch.distributed, gloo) and measure it (default: "
        "the config's engine, else replay)",
    )
    e.add_argument(
        "--time-scale",
        type=float,
        default=None,
        help="distributed: seconds of injected delay per unit of the step-time model "
        "(default 0.01)",
    )
    e.add_argument(
        "--no-inject", action="store_true", help="distributed: no injected delays (a real cluster)"
    )
    e.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="distributed: bound on the run in seconds (default 60 + updates); not in the config",
    )


def register_train(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train``: workload and optimiser flags, the shared scheme and cluster flags
    (``toolkit.cli_args``) and the run's flags."""
    p = subparsers.add_parser(
        "train",
        help="train a real model following a simulated Schedule",
        description="Train a real model following a Schedule simulated from these flags (or, "
        "with --engine distributed, as real processes), in a new run directory or continued "
        "with --resume; the config is written to OUT/config.toml.",
    )
    g = p.add_argument_group("workload and optimiser")
    g.add_argument("--workload", required=True, help="workload name (toolkit.workloads)")
    g.add_argument("--lr", type=float, default=None, help="learning rate; default the workload's")
    g.add_argument(
        "--batch-size", type=int, default=None, help="per-worker mini-batch; default the workload's"
    )
    g.add_argument(
        "--sgd-momentum",
        type=float,
        default=0.0,
        help="momentum on the shared parameters, heavy ball unless --nesterov (shared schemes "
        "only; default 0)",
    )
    g.add_argument(
        "--nesterov", action="store_true", help="Nesterov momentum instead of heavy ball"
    )
    g.add_argument(
        "--staleness",
        choices=["none", "drop", "lr"],
        default="none",
        help="stale gradients: apply as is, drop beyond --max-staleness, or scale "
        "lr by 1/max(1, staleness) (Zhang et al., IJCAI 2016); default none",
    )
    g.add_argument("--max-staleness", type=int, default=None, help="bound for --staleness drop")
    g.add_argument("--eval-every", type=int, default=None, help="rows between evaluations")
    g.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, ...")
    g.add_argument("--dtype", choices=DTYPES, default="float32", help="default float32")
    cli_args.add_scheme_args(p.add_argument_group("scheme (toolkit.schemes)"))
    s = p.add_argument_group("cluster and stopping rule")
    cli_args.add_cluster_args(s)
    stop = s.add_mutually_exclusive_group()
    stop.add_argument("--updates", type=int, default=None, help="updates; default the workload's")
    stop.add_argument("--time-budget", type=float, default=None, help="simulated time budget")
    s.add_argument("--target", type=float, default=None, help="stop at this test metric")
    s.add_argument(
        "--plateau",
        nargs=2,
        metavar=("WINDOW", "DELTA"),
        default=None,
        help="stop once the main metric improved by <= DELTA over the last WINDOW evaluations "
        "(toolkit.runs.stopping); --updates or --time-budget stays the maximum",
    )
    s.add_argument("--seed", type=int, default=0, help="seed of the clock, data and model")
    _add_run_flags(p, out_required=True)
    p.set_defaults(func=_train)


def register_run(subparsers: argparse._SubParsersAction) -> None:
    """Add ``run CONFIG``: a RunConfig from a .toml or .json file."""
    p = subparsers.add_parser(
        "run",
        help="run (or resume) a RunConfig from a TOML or JSON file",
        description="Run a RunConfig (toolkit.runs.RunConfig) written as TOML or JSON.",
    )
    p.add_argument("config", help="a .toml or .json file")
    _add_run_flags(p, out_required=False)
    p.set_defaults(func=_run)


# config fields that train sets from a flag of another name (the others are cli_args.FLAGS)
_TRAIN_FLAGS = {"momentum": "--sgd-momentum", "max_staleness": "--max-staleness"}


def _train(args: argparse.Namespace) -> int:
    cli_args.comm_from_args(args)  # errors name --comm
    try:
        config = _config(args)
    except ConfigError as err:
        flag = _TRAIN_FLAGS.get(err.field)
        raise err.renamed(flag) if flag else cli_args.flagged(err) from None
    return _execute(config, args)


def _config(args: argparse.Namespace) -> RunConfig:
    return RunConfig(
        scheme=cli_args.scheme_from_args(args),
        workload=args.workload,
        compute=cli_args.compute_from_args(args),
        comm=args.comm if args.comm and args.comm.lower() != "none" else None,
        lr=args.lr,
        momentum=args.sgd_momentum,
        nesterov=args.nesterov,
        batch_size=args.batch_size,
        staleness=args.staleness,
        max_staleness=args.max_staleness,
        updates=args.updates,
        time_budget=args.time_budget,
        target=args.target,
        plateau=_plateau(args.plateau),
        eval_every=args.eval_every,
        seed=args.seed,
        device=args.device,
        dtype=args.dtype,
    )


def _plateau(values: list[str] | None) -> Plateau | None:
    if values is None:
        return None
    try:
        window, delta = int(values[0]), float(values[1])
    except ValueError:
        raise ConfigError(
            "--plateau", f"--plateau: expected WINDOW (an integer) and DELTA, got {values}"
        ) from None
    return Plateau(window, delta)


def _run(args: argparse.Namespace) -> int:
    config = RunConfig.load(args.config)
    return _execute(config, args)


def _engine(config: RunConfig, args: argparse.Namespace) -> RunConfig:
    """The config with the engine flags applied (a flag left out keeps the config's value)."""
    spec = config.engine.to_dict()
    if args.engine is not None and args.engine != spec["name"]:
        spec = {"name": args.engine}
    if args.time_scale is not None:
        spec["time_scale"] = args.time_scale
    if args.no_inject:
        spec["inject"] = False
    if spec["name"] != "distributed":
        for flag, given in (("--time-scale", args.time_scale), ("--no-inject", args.no_inject)):
            if given not in (None, False):
                raise ConfigError(flag, f"{flag}: only the distributed engine takes it (--engine)")
    return config.replace(engine=EngineSpec.from_dict(spec))


def _execute(config: RunConfig, args: argparse.Namespace) -> int:
    from toolkit.runs.run import Interrupted, run  # torch is imported only here

    config = _engine(config, args)
    out = Path(args.out) if args.out else Path("runs") / config.id()
    options = {}
    if args.timeout is not None:
        if config.engine.name != "distributed":
            raise ConfigError(
                "--timeout", "--timeout: only the distributed engine takes it (--engine)"
            )
        options["timeout"] = args.timeout
    try:
        res = run(
            config,
            out,
            resume=args.resume,
            overwrite=args.overwrite,
            progress=not args.no_progress,
            **options,
        )
    except Interrupted as err:
        print(f"interrupted: {err}", file=sys.stderr)
        return 128 + err.signum
    print(summary_line(res, measured=config.engine.name == "distributed"))
    print(f"run {config.id()} in {out}: config.toml, schedule.parquet, results.parquet")
    return 0


def summary_line(res, *, measured: bool) -> str:
    """The final line of a run: status, rows, last time and test metrics, why it stopped and
    what it lost (workers a scheme carried on without)."""
    last = res.evaluations.iloc[-1] if len(res.evaluations) else None
    rows = "centre updates" if res.manifest.get("rows") == "per centre update" else "updates"
    text = f"{res.status}: {len(res.frame)} {rows}, "
    clock = "measured time (s)" if measured else "simulated time"
    text += f"{clock} {res.frame['time'].iloc[-1]:.6g}"
    if last is not None:
        text += f", test loss {last['test_loss']:.4g}"
        if last["test_accuracy"] == last["test_accuracy"]:
            text += f", test accuracy {last['test_accuracy']:.4f}"
    stopped = res.manifest.get("stopped")
    if stopped and stopped not in ("budget", "diverged"):
        text += f", stopped: {stopped}"
    if res.message:
        text += f" ({res.message})"
    return text
