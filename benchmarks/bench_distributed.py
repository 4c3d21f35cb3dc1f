"""The real backend against theory, the clock and PyTorch's own data parallelism (gloo, this
machine), in three tables:

1. ``schemes``: for each scheme on real processes, the measured mean step time beside
   ``theory.step_time`` and the measured staleness beside the simulated one (two-sample
   Kolmogorov-Smirnov statistic). Injected delays: worker w's j-th gradient takes the clock's
   j-th draw for w of ``expon(loc=1, scale=0.5)`` times ``--scale`` seconds (default 0.05:
   50 ms + Exp(25 ms)); the measured step time adds real computation, messages and the
   server's work, which is what the ratio shows. Logistic regression, ``--updates`` updates
   (local steps per worker for the replica schemes, whose time is per local step).
2. ``ddp``: Sync(n) on the backend (no injected delay) against
   ``torch.nn.parallel.DistributedDataParallel`` on the same model, world size, batch and data
   stream: training samples per second of each (after ``--warmup`` steps) and their ratio,
   the median of ``--repeats`` alternating runs (4 ranks on 2 cores swing by 30 % run to run).
3. ``delayed``: Delayed(n, d) for d = 0, 1, 2, 4 with one random rank slowed each step (a
   ``Trace``: every step one rank, drawn uniformly, takes 1 + ``--slow`` units, the others 1),
   measured step time beside the clock's prediction for the same trace (hiding is bounded by
   the straggler: every rank computes every step, so the floor is 1 + slow / n units).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats as st
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from toolkit.cluster import simulate
from toolkit.distributed import run_distributed
from toolkit.distributed.launch import free_port
from toolkit.models import parse_compute
from toolkit.replay.batched import DataStream, batches
from toolkit.runs import RunConfig
from toolkit.schemes import (
    EASGD,
    Async,
    Backup,
    Delayed,
    KAsync,
    KBatchAsync,
    KBatchSync,
    LocalSGD,
    Sync,
)
from toolkit.theory import step_time
from toolkit.workloads import get_workload

SCHEMES = [Sync(4), Backup(3, 1), KBatchSync(4, 4), Async(4), KAsync(4, 2), KBatchAsync(4, 2)]
SCHEMES += [Delayed(4, 1), LocalSGD(4, 4), EASGD(4, 4, 0.1, synchronous=False)]


def schemes_table(updates: int, scale: float) -> None:
    law = st.expon(loc=scale, scale=0.5 * scale)
    print(f"\n## schemes: logreg, {updates} updates, delays {scale:g} x expon(1, 0.5)")
    head = f"{'scheme':<36}{'measured s':>11}{'theory s':>10}{'ratio':>7}"
    print(head + f"{'staleness':>10}{'simulated':>10}{'KS':>6}{'wall s':>8}")
    for scheme in SCHEMES:
        engine = {"name": "distributed", "time_scale": scale}
        config = RunConfig(scheme=scheme, workload="logreg", updates=updates, lr=0.1, engine=engine)
        t = time.perf_counter()
        schedule, _ = run_distributed(config, timeout=1800)
        wall = time.perf_counter() - t
        used = schedule.used
        predicted = step_time(scheme, law)
        label = str(scheme).replace("momentum=0, ", "").replace("asynchronous", "async")
        if scheme.rule.period:  # per local step: each worker's last step time / its steps
            measured = float(used.groupby("worker")["time"].max().mean()) / updates
            print(f"{label:<36}{measured:>11.4f}{predicted:>10.4f}{measured / predicted:>7.3f}")
            continue
        times = used.groupby("update")["time"].max().to_numpy()
        measured = float(np.diff(times)[3:].mean())
        sim = simulate(scheme, law, updates=20 * updates, seed=1).used
        ks = st.ks_2samp(used["staleness"], sim["staleness"]).statistic
        print(
            f"{label:<36}{measured:>11.4f}{predicted:>10.4f}{measured / predicted:>7.3f}"
            f"{used['staleness'].mean():>10.3f}{sim['staleness'].mean():>10.3f}{ks:>6.3f}"
            f"{wall:>8.1f}"
        )


# ------------------------------------------------------------------ DDP
def _ddp_rank(rank: int, world: int, port: int, name: str, steps: int, warmup: int, q) -> None:
    """One DDP rank: the workload's model, SGD at its lr, worker ``rank``'s batches j = 0, 1, ...
    of the same data stream as the backend; rank 0 reports the seconds of the timed steps."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    w = get_workload(name)
    model = torch.nn.parallel.DistributedDataParallel(w.make_model(0))
    opt = torch.optim.SGD(model.parameters(), lr=w.lr)
    stream = DataStream(w.n_train, world, w.batch_size, 0)
    data = {"x": w.x_train, "y": w.y_train}
    for j in range(warmup + steps):
        if j == warmup:
            dist.barrier()
            start = time.monotonic()
        x, y = batches(data, stream.indices(rank, j))
        opt.zero_grad()
        w.loss(model(x), y).backward()
        opt.step()
    dist.barrier()
    if rank == 0:
        q.put(time.monotonic() - start)
    dist.destroy_process_group()


def ddp_seconds(name: str, world: int, steps: int, warmup: int) -> float:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    port = free_port()
    procs = [
        ctx.Process(target=_ddp_rank, args=(r, world, port, name, steps, warmup, q))
        for r in range(world)
    ]
    for p in procs:
        p.start()
    seconds = q.get(timeout=600)
    for p in procs:
        p.join(timeout=60)
    return seconds


def ddp_table(steps: int, warmup: int, repeats: int) -> None:
    print(
        f"\n## ddp: Sync(n) on the backend vs DistributedDataParallel, {steps} timed steps; "
        f"median (min-max) of {repeats} alternating repeats"
    )
    head = f"{'workload':<14}{'n':>3}{'params':>8}{'backend/s':>11}{'DDP/s':>9}"
    print(head + f"{'DDP / backend':>15}{'range':>15}")
    for name in ("mnist1d_mlp", "mnist1d_cnn"):
        w = get_workload(name)
        size = sum(p.numel() for p in w.make_model(0).parameters())
        for n in (2, 4):
            samples = n * w.batch_size * steps
            backend, ddp = [], []
            for _ in range(repeats):
                engine = {"name": "distributed", "inject": False}
                config = RunConfig(
                    scheme=Sync(n), workload=name, updates=warmup + steps, engine=engine
                )
                schedule, _ = run_distributed(config, timeout=1800)
                t = schedule.used.groupby("update")["time"].max().to_numpy()
                backend.append(samples / (t[-1] - t[warmup - 1]))
                ddp.append(samples / ddp_seconds(name, n, steps, warmup))
            ratio = np.array(ddp) / np.array(backend)
            print(
                f"{name:<14}{n:>3}{size:>8}{np.median(backend):>11.0f}{np.median(ddp):>9.0f}"
                f"{np.median(ratio):>15.3f}{f'{ratio.min():.2f}-{ratio.max():.2f}':>15}"
            )


# ------------------------------------------------------------------ Delayed
def delayed_table(n: int, updates: int, scale: float, slow: float) -> None:
    print(
        f"\n## delayed: Delayed(n={n}, d), one random rank of {n} takes 1 + {slow:g} units each "
        f"step, 1 unit = {scale:g} s; logreg, {updates} updates"
    )
    rng = np.random.default_rng(0)
    times = np.ones((4 * updates, n))
    times[np.arange(len(times)), rng.integers(0, n, len(times))] += slow
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "one_slow_rank.csv"
        pd.DataFrame(times, columns=[f"w{i}" for i in range(n)]).to_csv(path, index=False)
        compute = f"Trace('{path}')"
        print(f"{'delay':>5}{'measured s':>12}{'clock s':>10}{'ratio':>7}{'speed-up vs d=0':>17}")
        first = None
        for d in (0, 1, 2, 4):
            config = RunConfig(
                scheme=Delayed(n, d),
                workload="logreg",
                updates=updates,
                lr=0.1,
                compute=compute,
                engine={"name": "distributed", "time_scale": scale},
            )
            schedule, _ = run_distributed(config, timeout=1800)
            t = schedule.used.groupby("update")["time"].max().to_numpy()
            measured = float(np.diff(t)[5:].mean())
            sim = simulate(Delayed(n, d), parse_compute(compute), updates=updates, seed=0)
            ts = sim.used.groupby("update")["time"].max().to_numpy()
            predicted = float(np.diff(ts)[5:].mean()) * scale
            first = first or measured
            print(
                f"{d:>5}{measured:>12.4f}{predicted:>10.4f}{measured / predicted:>7.3f}"
                f"{first / measured:>17.2f}"
            )
    print(f"floor (every rank computes every step): {(1 + slow / n) * scale:.4f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["schemes", "ddp", "delayed"], default=None)
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument("--scale", type=float, default=0.05, help="seconds per unit of delay")
    parser.add_argument("--steps", type=int, default=300, help="DDP comparison: timed steps")
    parser.add_argument("--warmup", type=int, default=20, help="DDP comparison: untimed steps")
    parser.add_argument("--repeats", type=int, default=3, help="DDP comparison: repeats")
    parser.add_argument("--slow", type=float, default=3.0, help="Delayed: extra units of one rank")
    args = parser.parse_args()
    command = "python benchmarks/bench_distributed.py"
    command += f" --updates {args.updates} --scale {args.scale} --steps {args.steps}"
    command += f" --warmup {args.warmup} --repeats {args.repeats} --slow {args.slow}"
    command += f" --only {args.only}" if args.only else ""
    print(f"# {command}")
    print(f"# gloo on one machine, {os.cpu_count()} CPUs, torch {torch.__version__}")
    if args.only in (None, "schemes"):
        schemes_table(args.updates, args.scale)
    if args.only in (None, "ddp"):
        ddp_table(args.steps, args.warmup, args.repeats)
    if args.only in (None, "delayed"):
        delayed_table(4, args.updates, 0.02, args.slow)


if __name__ == "__main__":
    main()
