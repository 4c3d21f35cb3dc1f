"""The main job: ``python -m toolkit demo``, the whole data flow on the embedded default.

For one cluster (16 machines, shifted-exponential step times, a parameter server) and one model
(the MLP on MNIST-1D), each scheme goes through the toolkit's four stages:

1. theory predicts its expected time per update (``toolkit.theory.step_time``);
2. the clock simulates its Schedule for a fixed wall-clock budget (``toolkit.cluster.simulate``);
3. replay trains the real model following that Schedule (``toolkit.replay.train``);
4. a table and a figure put prediction, simulation and training side by side.

Every scheme gets the same simulated wall-clock budget, so the table answers "which scheme
reaches the best test accuracy in the same time on this cluster?"
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from toolkit.checks import ConfigError, check_int, check_positive
from toolkit.cluster import Schedule
from toolkit.cluster.clock import estimate_bytes
from toolkit.files import claim_folder
from toolkit.limits import check_memory
from toolkit.models import ParameterServer
from toolkit.models.dists import parse_dist
from toolkit.schemes import EASGD, Async, Backup, Delayed, KAsync, KBatchAsync, Scheme, Sync

__all__ = ["default_schemes", "register", "run_demo"]


def default_schemes(m: int) -> list[Scheme]:
    """The schemes compared on m machines (every one uses all m)."""
    b = max(1, m // 8)
    return [
        Sync(m),
        Backup(m - b, b),
        Delayed(m, 1),
        Async(m),
        KAsync(m, max(1, m // 4)),
        KBatchAsync(m, max(1, m // 4)),
        EASGD(m, tau=4, alpha=0.9 / m),
    ]


def run_demo(
    out: str | Path = "runs/demo",
    machines: int = 16,
    dist: str = "expon(loc=1, scale=0.5)",
    budget_steps: float = 400.0,
    workload: str = "mnist1d_mlp",
    lr: float | None = None,
    seed: int = 0,
    progress: bool = True,
    jobs: int = 2,
    overwrite: bool = False,
) -> pd.DataFrame:
    """Run the demo; returns the summary table (also written to ``out/summary.csv``).

    ``budget_steps``: the wall-clock budget, in units of Sync's predicted step time; every scheme
    trains on exactly the updates its simulated cluster applies within it (a RunConfig with that
    ``time_budget``, one run directory per scheme under ``out``, replaced on every demo). The
    asynchronous schemes (Async, KAsync, KBatchAsync) use the staleness-aware rate
    (lr / staleness, Zhang et al. IJCAI 2016). "Time to target" is the workload's own target.
    ``jobs``: schemes run at once, each in a process with one torch thread (1: one after the
    other in this process, with a progress bar per run); the numbers do not depend on it.
    ``out`` is refused when it holds files of the same names that another command wrote
    (:func:`toolkit.files.claim_folder`), unless ``overwrite``.
    """
    from toolkit.plots import plot_curves
    from toolkit.runs import RunConfig  # torch is imported only here
    from toolkit.theory import step_time
    from toolkit.workloads import get_workload

    jobs = check_int("jobs", jobs, 1)
    machines = check_int("machines", machines, 2)
    budget_steps = check_positive("budget_steps", budget_steps)
    compute = parse_dist(dist)
    schemes = default_schemes(machines)
    wl = get_workload(workload)
    n_params = sum(p.numel() for p in wl.make_model(seed).parameters())
    comm = ParameterServer(nbytes=4.0 * n_params, bandwidth=2e6, latency=1e-3)
    comm_text = f"ParameterServer(nbytes={comm.nbytes!r}, bandwidth=2e6, latency=1e-3)"
    budget = budget_steps * step_time(Sync(machines), compute, comm)
    # every worker busy for the whole budget: an upper bound on each scheme's gradients, which
    # Async turns into as many updates, each one Schedule row (toolkit.cluster.clock)
    gradients = math.ceil(machines * budget / float(compute.mean()))
    what = f"the demo's clusters of {machines} machines (up to {gradients:.3g} gradients each)"
    check_memory("machines", what, estimate_bytes(Async(machines), gradients))
    outputs = ("summary.csv", "accuracy_vs_time.png", *(s.name for s in schemes))
    out = claim_folder(out, "demo", outputs, "out", overwrite=overwrite)

    tasks = []
    for scheme in schemes:
        asynchronous = not (scheme.rule.barrier or scheme.rule.replicas)
        config = RunConfig(
            scheme=scheme,
            workload=workload,
            compute=dist,
            comm=comm_text,
            lr=lr,
            staleness="lr" if asynchronous else "none",
            time_budget=budget,
            seed=seed,
        )
        task = {"config": config, "path": out / scheme.name, "progress": progress and jobs == 1}
        task["predicted_step"] = step_time(scheme, compute, comm)
        task["cost"] = budget / task["predicted_step"]  # updates (local steps) in the budget
        tasks.append(task)
    results = _run_all(tasks, jobs, progress)

    rows, curves = [], []
    for task, (row, curve) in zip(tasks, results, strict=True):
        rows.append(
            {"scheme": str(task["config"].scheme), "predicted_step": task["predicted_step"]}
        )
        rows[-1].update(row)
        curves.append(curve.assign(scheme=rows[-1]["scheme"]))
    table = pd.DataFrame(rows)
    table.to_csv(out / "summary.csv", index=False)
    title = f"{workload} on {machines} machines, {dist} step times, budget {budget:.4g} s"
    fig = plot_curves(pd.concat(curves), y=wl.metric, budget=budget, title=title)
    fig.savefig(out / "accuracy_vs_time.png", dpi=120)
    return table


def _run_scheme(task: dict) -> tuple[dict, pd.DataFrame]:
    """Simulate and train one scheme's run; its table row (without the prediction) and its
    evaluations."""
    from toolkit.runs import run
    from toolkit.workloads import get_workload

    t0 = time.perf_counter()
    config = task["config"]
    wl = get_workload(config.workload)
    res = run(config, task["path"], overwrite=True, progress=task["progress"])
    summary = Schedule.load(task["path"] / "schedule.parquet").summary()
    ev = res.evaluations
    target = wl.target
    hit = ev[ev[wl.metric].map(wl.reached)] if target is not None else ev.iloc[:0]
    row = {
        "simulated_step": summary["mean_step_time"],
        "updates_in_budget": len(res.frame),
        "staleness_mean": summary["staleness_mean"],
        "dropped_fraction": summary["dropped_fraction"],
        "status": res.status,
        wl.metric: float(ev[wl.metric].iloc[-1]) if len(ev) else np.nan,
        f"time_to_{target}": float(hit["time"].iloc[0]) if len(hit) else np.nan,
        "replay_seconds": time.perf_counter() - t0,
    }
    return row, ev


def _worker_init() -> None:
    """A demo worker: one torch thread, and death with the demo (Linux ``PR_SET_PDEATHSIG``).

    The MLP's operations are small: two threads on one of them cost more CPU than they save, and
    two one-thread processes use two cores fully."""
    import torch

    from toolkit.distributed.launch import die_with_parent

    torch.set_num_threads(1)
    die_with_parent()


def _run_all(tasks: list[dict], jobs: int, progress: bool) -> list[tuple[dict, pd.DataFrame]]:
    """``_run_scheme`` of every task, in the tasks' order; ``jobs`` > 1 on a process pool.

    Replay's cost grows with the number of updates a scheme makes in the budget (each one batched
    step) more than with its gradients, so the pool starts the schemes with the most predicted
    updates first (``cost``) and the workers finish close together."""
    import sys

    import torch

    if jobs == 1:  # in this process, with one torch thread as in a worker, restored after
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return [_run_scheme(task) for task in tasks]
        finally:
            torch.set_num_threads(threads)
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    from tqdm.auto import tqdm

    cuda = torch.cuda.is_initialized()  # a forked child cannot use CUDA
    ctx = get_context("fork" if sys.platform == "linux" and not cuda else "spawn")
    order = sorted(range(len(tasks)), key=lambda i: -tasks[i]["cost"])
    results: list = [None] * len(tasks)
    bar = tqdm(total=len(tasks), desc="demo", unit="scheme", disable=not progress)
    with ProcessPoolExecutor(
        min(jobs, len(tasks)), mp_context=ctx, initializer=_worker_init
    ) as pool:
        futures = {pool.submit(_run_scheme, tasks[i]): i for i in order}
        for future in as_completed(futures):
            i = futures[future]
            results[i] = future.result()
            bar.set_postfix_str(tasks[i]["config"].scheme.name)
            bar.update()
    bar.close()
    return results


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="the main job: theory, clock and training side by side on the default cluster",
        description="Theory, clock and training side by side for Sync, Backup, Delayed, Async, "
        "KAsync, KBatchAsync and EASGD on one cluster (a parameter server whose link moves the "
        "model's bytes at 2e6 bytes per simulated second) and one wall-clock budget.",
    )
    p.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    p.add_argument("--machines", type=int, default=16, help="machines in the cluster (16)")
    p.add_argument(
        "--dist",
        default="expon(loc=1, scale=0.5)",
        help='step-time distribution, a scipy.stats call (default "expon(loc=1, scale=0.5)")',
    )
    p.add_argument(
        "--budget-steps",
        type=float,
        default=400.0,
        help="wall-clock budget in units of Sync's predicted step time (400)",
    )
    p.add_argument("--workload", default="mnist1d_mlp", help="workload name (mnist1d_mlp)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (workload default)")
    p.add_argument("--seed", type=int, default=0, help="seed of the clock, data and model (0)")
    p.add_argument(
        "--jobs",
        type=int,
        default=2,
        help="schemes trained at once, one process with one torch thread each (2)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--overwrite", action="store_true", help="replace files of --out that another command wrote"
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.machines < 2:
        raise ConfigError("--machines", f"--machines must be >= 2, got {args.machines}")
    if args.jobs < 1:
        raise ConfigError("--jobs", f"--jobs must be >= 1, got {args.jobs}")
    table = run_demo(
        args.out,
        args.machines,
        args.dist,
        args.budget_steps,
        args.workload,
        args.lr,
        args.seed,
        progress=not args.no_progress,
        jobs=args.jobs,
        overwrite=args.overwrite,
    )
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(
        f"\nwrote {args.out}/summary.csv, {args.out}/accuracy_vs_time.png and one run directory "
        "per scheme"
    )
    return 0
