"""``python -m toolkit theory ...``: step time, order statistics, optimal backups and a demo.

Examples::

    python -m toolkit theory step-time --scheme backup --n 96 --b 4 --dist "expon(loc=1, scale=0.5)"
    python -m toolkit theory step-time --scheme async --n 100 --dist "expon(loc=1, scale=0.5)" \\
        --comm "ParameterServer(nbytes=4e6, bandwidth=1.25e9, latency=1e-4)"
    python -m toolkit theory order-stat --dist "expon(loc=1, scale=0.5)" --k 96 --n 100
    python -m toolkit theory backups --machines 100 --dist "expon(loc=1, scale=0.5)" \\
        --critical-batch 64
    python -m toolkit theory demo --out figures/theory-demo

``--dist`` is a scipy.stats distribution written as a call, ``name(arg, key=value, ...)`` with
literal arguments only (parsed with ``ast``, never evaluated), or the path of a CSV of measured step
times (``toolkit.models.Empirical.from_csv``; ``--column`` picks the column); it must not allow
negative step times. ``--comm`` is a model of ``toolkit.models.comm`` written the same way, or
``none``. These and the scheme flags are shared with ``simulate`` and ``train``
(``toolkit.cli_args``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from toolkit.checks import ConfigError, check_int
from toolkit.cli_args import (
    DEFAULT_COMM,
    DEFAULT_DIST,
    add_cluster_args,
    add_dist_args,
    add_scheme_args,
    comm_from_args,
    dist_from_args,
    scheme_from_args,
)
from toolkit.files import claim_folder
from toolkit.models.comm import ParameterServer, parse_comm
from toolkit.schemes import (
    EASGD,
    Async,
    Backup,
    Delayed,
    DiLoCo,
    KAsync,
    KBatchAsync,
    KBatchSync,
    LocalSGD,
    Scheme,
    Sync,
)
from toolkit.theory.backups import Progress, optimal_backups
from toolkit.theory.order_stats import (
    check_step_dist,
    expected_order_statistic,
    order_statistic_variance,
)
from toolkit.theory.queueing import mva, saturation_point
from toolkit.theory.step_time import gradients_per_update, step_time_estimate

__all__ = ["demo_schemes", "register"]


# --------------------------------------------------------------------------- parsing
def _dist(args: argparse.Namespace) -> object:
    """``--dist``/``--column`` (``toolkit.cli_args.dist_from_args``), checked as step times:
    ``check_step_dist`` refuses a distribution with negative support."""
    return dist_from_args(args, check=check_step_dist)


def _line(key: str, value: object) -> str:
    if isinstance(value, (float, np.floating)):
        value = f"{float(value):.10g}"
    return f"{key:<22} {value}"


# --------------------------------------------------------------------------- commands
def _cmd_step_time(args: argparse.Namespace) -> int:
    if args.batch_size is not None:
        check_int("batch_size", args.batch_size)
    dist = _dist(args)
    comm = comm_from_args(args)
    scheme = scheme_from_args(args)
    est = step_time_estimate(scheme, dist, comm, samples=args.samples, seed=args.seed)
    grads = gradients_per_update(scheme)
    rule = scheme.rule
    print(_line("scheme", str(scheme)))
    print(_line("rule", ", ".join(f"{k}={v}" for k, v in vars(rule).items())))
    print(_line("dist", args.dist))
    print(_line("comm", comm if comm is not None else "none"))
    print(_line("step_time", est.value))
    print(_line("step_time_se", est.se))
    print(_line("method", est.method))
    print(_line("gradients_per_step", grads))
    print(_line("throughput", grads / est.value))
    if args.batch_size is not None:
        print(_line("samples_per_time", grads * args.batch_size / est.value))
    return 0


def _cmd_order_stat(args: argparse.Namespace) -> int:
    dist = _dist(args)
    if not 1 <= args.k <= args.n:
        raise ConfigError("k", f"k must lie in [1, n] = [1, {args.n}], got {args.k}")
    mean = float(expected_order_statistic(dist, args.k, args.n))
    var = float(order_statistic_variance(dist, args.k, args.n))
    print(_line("dist", args.dist))
    print(_line("k", args.k))
    print(_line("n", args.n))
    print(_line("expected", mean))
    print(_line("variance", var))
    print(_line("std", float(np.sqrt(max(var, 0.0)))))
    return 0


def _progress(critical: float | None, kind: str) -> Progress:
    return Progress(critical=critical, kind=kind)


def _cmd_backups(args: argparse.Namespace) -> int:
    dist = _dist(args)
    comm = comm_from_args(args)
    progress = _progress(args.critical_batch, args.progress)
    best, table = optimal_backups(args.machines, dist, comm, progress, b_max=args.b_max)
    with pd.option_context("display.max_rows", None, "display.width", 120):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.6g}"))
    row = table.loc[table["b"] == best].iloc[0]
    print(_line("best_b", best))
    print(_line("best_n", int(row["n"])))
    print(_line("best_step_time", float(row["step_time"])))
    print(_line("best_time_to_target", float(row["time_to_target"])))
    return 0


def demo_schemes(m: int) -> list[Scheme]:
    """The schemes the demo compares on m machines."""
    tau = 10
    return [
        Sync(m),
        Backup(m - max(1, m // 25), max(1, m // 25)),
        Backup(m - max(1, m // 10), max(1, m // 10)),
        KBatchSync(m, m),
        Delayed(m, 1),
        Async(m),
        KAsync(m, max(1, m // 10)),
        KBatchAsync(m, max(1, m // 10)),
        EASGD(m, tau, 0.9 / m),
        EASGD(m, tau, 0.9 / m, synchronous=False),
        LocalSGD(m, tau),
        DiLoCo(m, tau),
    ]


def _parameter_server(comm: object) -> ParameterServer:
    """The parameter server of the queueing plot: ``comm`` itself when it is one, else one with the
    same link (``nbytes``, ``bandwidth``, ``latency``), else the default ``DEFAULT_COMM``."""
    if isinstance(comm, ParameterServer):
        return comm
    if comm is None:
        return parse_comm(DEFAULT_COMM)
    return ParameterServer(comm.nbytes, comm.bandwidth, comm.latency)


def _demo_step_times(m: int, dist, comm, seed: int) -> pd.DataFrame:
    """Predicted step time and throughput of every demo scheme, without and with ``comm``."""
    rows = []
    for scheme in demo_schemes(m):
        bare = step_time_estimate(scheme, dist, None, seed=seed)
        try:
            est = step_time_estimate(scheme, dist, comm, seed=seed)
        except ValueError:  # e.g. an async scheme on a ring all-reduce
            est = None
        grads = gradients_per_update(scheme)
        rows.append(
            {
                "scheme": str(scheme),
                "machines": scheme.rule.machines,
                "grads_per_step": grads,
                "step_time_compute": bare.value,
                "step_time": est.value if est else float("nan"),
                "throughput": grads / est.value if est else float("nan"),
                "method": est.method if est else "n/a",
            }
        )
    return pd.DataFrame(rows)


def _demo_backups(m: int, dist, comm, progress: Progress, out: Path) -> pd.DataFrame:
    """Optimal backups on m machines: table, printout and figure (out/backups.png)."""
    from matplotlib.figure import Figure  # Agg canvas via Figure.savefig; no pyplot state

    from toolkit.plots import plot_backup_step_times, plot_backup_tradeoff

    best, table = optimal_backups(m, dist, comm, progress)
    _, table_bare = optimal_backups(m, dist, None, progress)
    shown = sorted({*[b for b in (0, 1, 2, 4, 8, 16, 32, 64) if b < m], best})
    print(f"\noptimal backups on {m} machines (progress {progress}): best b = {best}")
    print(table[table["b"].isin(shown)].to_string(index=False, float_format=lambda v: f"{v:.5g}"))
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    plot_backup_step_times({"compute only": table_bare, "with comm": table}, m, ax=ax1)
    plot_backup_tradeoff({str(progress): (table, best)}, m, ax=ax2)
    fig.savefig(out / "backups.png", dpi=120)
    return table


def _demo_server(m: int, dist, comm, out: Path) -> pd.DataFrame:
    """The parameter server's throughput against n (MVA and bounds): figure and printout."""
    from toolkit.plots import plot_server_throughput

    ps = _parameter_server(comm)
    think = float(dist.mean()) + ps.message_time() - ps.server_time()
    service = ps.server_time()
    n_star = saturation_point(think, service)
    queue = mva(int(max(2 * m, 3 * n_star)), think, service)
    series = {"MVA (exact for exponential service)": queue["throughput"]}
    plot_server_throughput(queue["n"], series, think, service).savefig(
        out / "ps_throughput.png", dpi=120
    )
    print(
        f"\nparameter server saturates near n* = (Z+s)/s = {n_star:.4g} workers "
        f"(max throughput 1/s = {1 / service:.5g})"
    )
    return queue


DEMO_FILES = (
    "backups.png",
    "ps_throughput.png",
    "step_times.csv",
    "backups.csv",
    "ps_throughput.csv",
)


def _cmd_demo(args: argparse.Namespace) -> int:
    m = args.machines
    if m < 2:
        raise ConfigError("machines", f"machines must be >= 2 for the demo, got {m}")
    out = Path(args.out)
    dist = _dist(args)
    comm = comm_from_args(args)
    print(
        f"cluster: {m} machines, step time ~ {args.dist} (mean {float(dist.mean()):.6g}), "
        f"comm = {comm if comm is not None else 'none'}"
    )
    steps = _demo_step_times(m, dist, comm, args.seed)  # refuses a cluster too large first
    claim_folder(out, "theory demo", DEMO_FILES, "out", overwrite=args.overwrite)
    print("\npredicted step time (per update; per local step for replica schemes) and throughput")
    with pd.option_context("display.max_colwidth", 60, "display.width", 160):
        print(steps.to_string(index=False, float_format=lambda v: f"{v:.5g}"))
    table = _demo_backups(m, dist, comm, _progress(args.critical_batch, args.progress), out)
    queue = _demo_server(m, dist, comm, out)
    steps.to_csv(out / "step_times.csv", index=False)
    table.to_csv(out / "backups.csv", index=False)
    queue.to_csv(out / "ps_throughput.csv", index=False)
    for name in DEMO_FILES:
        print(f"wrote {out / name}")
    return 0


# --------------------------------------------------------------------------- registration
def _add_progress_args(p: argparse.ArgumentParser, critical: float | None) -> None:
    """``--critical-batch`` and ``--progress``: the progress model of ``optimal_backups``."""
    p.add_argument(
        "--critical-batch",
        type=float,
        default=critical,
        help="gradients beyond which progress per update stops growing "
        f"(default {'none' if critical is None else f'{critical:g}'})",
    )
    p.add_argument(
        "--progress",
        choices=("hard", "smooth"),
        default="hard",
        help="hard: min(n, c); smooth: n / (1 + n / c) (McCandlish et al. 2018; default hard)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``theory`` and its sub-subcommands to the top-level CLI."""
    theory = subparsers.add_parser(
        "theory",
        help="closed forms and numerics: step time, order statistics",
        description="Closed forms and numerics without simulation: a scheme's expected step "
        "time and throughput (step-time), the mean and variance of an order statistic of step "
        "times (order-stat), the optimal number of backup workers (backups), and the three side "
        "by side with figures (demo).",
    )
    sub = theory.add_subparsers(dest="theory_command", metavar="subcommand", required=True)

    st = sub.add_parser(
        "step-time",
        help="expected step time and throughput of a scheme",
        description="The expected time per update (per local step for replica schemes) and the "
        "throughput of a scheme on a cluster, in closed form where one exists, else by "
        "Monte Carlo.",
    )
    add_scheme_args(st.add_argument_group("scheme (toolkit.schemes)"))
    add_cluster_args(st.add_argument_group("cluster (toolkit.cluster)"))
    st.add_argument("--batch-size", type=int, default=None, help="per-worker mini-batch size")
    st.add_argument(
        "--samples",
        type=int,
        default=20_000,
        help="Monte Carlo samples where no closed form exists (default 20000)",
    )
    st.add_argument("--seed", type=int, default=0, help="seed of the Monte Carlo (default 0)")
    st.set_defaults(func=_cmd_step_time)

    os_ = sub.add_parser(
        "order-stat",
        help="mean and variance of the k-th smallest of n draws",
        description="The mean and variance of the k-th smallest of n i.i.d. step times: how long an"
        " update that waits for k of n workers takes.",
    )
    add_dist_args(os_)
    os_.add_argument("--k", type=int, required=True, help="rank: the k-th smallest, 1 <= k <= n")
    os_.add_argument("--n", type=int, required=True, help="number of i.i.d. draws")
    os_.set_defaults(func=_cmd_order_stat)

    bk = sub.add_parser(
        "backups",
        help="optimal number of backup workers on m machines",
        description="The number of backup workers b that minimises the expected time to a target "
        "on m machines (n workers and b backups), with the step time and time to target of every "
        "b.",
    )
    bk.add_argument("--machines", type=int, required=True, help="m = n + b")
    _add_progress_args(bk, critical=None)
    bk.add_argument("--b-max", type=int, default=None, help="largest b tried (default m - 1)")
    add_cluster_args(bk.add_argument_group("cluster (toolkit.cluster)"))
    bk.set_defaults(func=_cmd_backups)

    dm = sub.add_parser(
        "demo",
        help="step time per scheme, optimal backups, figures",
        description="The step time of every scheme, the optimal number of backups and the parameter"
        " server's throughput against n on one cluster, as tables and figures in --out.",
    )
    dm.add_argument("--out", required=True, help="directory for the figures and tables")
    dm.add_argument("--machines", type=int, default=100, help="machines (default 100)")
    _add_progress_args(dm, critical=64.0)
    dm.add_argument("--seed", type=int, default=0, help="seed of the Monte Carlo (default 0)")
    dm.add_argument(
        "--overwrite", action="store_true", help="replace files of --out that another command wrote"
    )
    add_cluster_args(
        dm.add_argument_group("cluster (toolkit.cluster)"),
        dist_default=DEFAULT_DIST,
        comm_default=DEFAULT_COMM,
    )
    dm.set_defaults(func=_cmd_demo)
