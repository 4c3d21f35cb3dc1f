"""Replay throughput on the MNIST-1D MLP: samples/s of replaying a Schedule vs plain PyTorch.

For n = 16 and 64 workers with per-worker batch 32:

(a) plain single-process PyTorch SGD with batch n*32 (the limit);
(b) replaying Sync(n) and Backup(n, 2) (target >= 0.8 of (a));
(c) replaying Async(n) and EASGD(n, tau=4) (target >= 0.3 of (a) on CPU, and >= 1.5x a naive
    replay that computes one gradient per event in a Python loop, written below).

Samples/s counts the samples of the gradients an update uses (dropped ones are not computed).
Prints peak RSS and, when CUDA is available, the same table on the GPU. Runs are timed
round-robin (plain, replays, naive; ``--repeat`` rounds) and the best time of each is kept, so
load from other processes hits all of them alike; ratios within one run are what matter.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np
import scipy.stats as st
import torch
from torch import nn

from toolkit.cluster.clock import simulate
from toolkit.replay import DataStream, Runtime, train
from toolkit.schemes import EASGD, Async, Backup, Sync
from toolkit.workloads import get_workload

B = 32
DIST = st.expon(loc=1.0, scale=0.5)


def sync_device(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def plain(wl, n: int, steps: int, device: torch.device):
    """Plain PyTorch SGD, batch n*B, random batches, ``steps`` steps (model built once)."""
    x, y = wl.x_train.to(device), wl.y_train.to(device)
    model = wl.make_model(0).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(0)
    per_epoch = wl.n_train // (n * B)

    def run():
        perm = torch.randperm(wl.n_train, generator=g)
        for s in range(steps):
            if s % per_epoch == 0:
                perm = torch.randperm(wl.n_train, generator=g).to(device)
            idx = perm[(s % per_epoch) * n * B : (s % per_epoch + 1) * n * B]
            opt.zero_grad(set_to_none=True)
            wl.loss(model(x[idx]), y[idx]).backward()
            opt.step()
        sync_device(device)

    return run


def naive_shared(sched, wl, n: int, device: torch.device):
    """One gradient per event, plain autograd, every version kept as a flat vector."""
    x, y = wl.x_train.to(device), wl.y_train.to(device)
    used = sched.used
    upd, ver = used["update"].to_numpy(), used["version"].to_numpy()
    wrk, bat = used["worker"].to_numpy(), used["batch"].to_numpy()

    def run():
        model = wl.make_model(0).to(device)
        stream = DataStream(wl.n_train, n, B, 0)
        versions = {0: nn.utils.parameters_to_vector(model.parameters()).detach().clone()}
        params = list(model.parameters())
        for i in range(len(upd)):
            nn.utils.vector_to_parameters(versions[int(ver[i])], params)
            for p in params:
                p.grad = None
            idx = stream.indices(int(wrk[i]), int(bat[i])).to(device)
            wl.loss(model(x[idx]), y[idx]).backward()
            g = torch.cat([p.grad.flatten() for p in params])
            u = int(upd[i])
            versions[u + 1] = versions[u] - 0.05 * g  # Async: one gradient per update
            versions.pop(u - 4 * n, None)
        sync_device(device)

    return run


def naive_easgd(sched, wl, scheme, device: torch.device):
    """EASGD one local step at a time (a Python loop over workers and steps)."""
    x, y = wl.x_train.to(device), wl.y_train.to(device)
    n, tau, a = scheme.n, scheme.tau, scheme.alpha
    steps = int(sched.grads["update"].max()) + 1

    def run():
        model = wl.make_model(0).to(device)
        stream = DataStream(wl.n_train, n, B, 0)
        params = list(model.parameters())
        x0 = nn.utils.parameters_to_vector(params).detach().clone()
        xs = [x0.clone() for _ in range(n)]
        xc = x0.clone()
        for t in range(steps):
            if t > 0 and t % tau == 0:
                diffs = [xi - xc for xi in xs]
                xs = [xi - a * d for xi, d in zip(xs, diffs, strict=True)]
                xc = xc + a * sum(diffs)
            for w in range(n):
                nn.utils.vector_to_parameters(xs[w], params)
                for p in params:
                    p.grad = None
                idx = stream.indices(w, t).to(device)
                wl.loss(model(x[idx]), y[idx]).backward()
                xs[w] = xs[w] - 0.05 * torch.cat([p.grad.flatten() for p in params])
        sync_device(device)

    return run


def table(device: torch.device, ns: list[int], steps: int, repeat: int) -> None:
    wl = get_workload("mnist1d_mlp")
    size = sum(p.numel() for p in wl.make_model(0).parameters())
    print(f"\n## device = {device}   (MNIST-1D MLP, {size} parameters, per-worker batch {B})")
    header = f"{'n':>4} {'run':<26} {'samples/s':>11} {'/ plain':>8} {'/ naive':>8}   target"
    print(header)
    print("-" * (len(header) + 20))
    for n in ns:
        # runnables: name -> (function, samples per run); timed round-robin, best of `repeat`
        runs: dict[str, tuple] = {"plain": (plain(wl, n, steps, device), steps * n * B)}
        for name, scheme in (("sync", Sync(n)), ("backup", Backup(n, 2))):
            sched = simulate(scheme, DIST, updates=steps, seed=0)
            runs[name] = (replay(sched, wl, device), len(sched.used) * B)
        grads = steps * n  # Async: as many gradients as the Sync run
        sched = simulate(Async(n), DIST, updates=grads, seed=0)
        runs["async"] = (replay(sched, wl, device), grads * B)
        runs["naive async"] = (naive_shared(sched, wl, n, device), grads * B)
        scheme = EASGD(n, 4, 0.9 / n)
        sched = simulate(scheme, DIST, updates=steps, seed=0)
        runs["easgd"] = (replay(sched, wl, device), steps * n * B)
        runs["naive easgd"] = (naive_easgd(sched, wl, scheme, device), steps * n * B)
        best = {k: np.inf for k in runs}
        for _ in range(repeat):
            for k, (fn, _) in runs.items():
                t = time.perf_counter()
                fn()
                best[k] = min(best[k], time.perf_counter() - t)
        rate = {k: runs[k][1] / best[k] for k in runs}
        rows = [
            ("(a) plain torch, batch n*B", "plain", None, ""),
            ("(b) replay Sync(n)", "sync", None, ">= 0.8 plain"),
            ("(b) replay Backup(n, 2)", "backup", None, ">= 0.8 plain"),
            ("(c) replay Async(n)", "async", "naive async", ">= 0.3 plain, >= 1.5 naive"),
            ("    naive Async(n)", "naive async", None, ""),
            ("(c) replay EASGD(n, 4)", "easgd", "naive easgd", ">= 0.3 plain, >= 1.5 naive"),
            ("    naive EASGD(n, 4)", "naive easgd", None, ""),
        ]
        for label, key, naive, target in rows:
            vs = f"{rate[key] / rate[naive]:>8.2f}" if naive else f"{'':>8}"
            print(
                f"{n:>4} {label:<26} {rate[key]:>11.0f} {rate[key] / rate['plain']:>8.2f} "
                f"{vs}   {target}"
            )
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{n:>4} peak RSS so far: {rss:.0f} MiB (limit for Async n=64: 2048 MiB)")


def replay(sched, wl, device: torch.device):
    def run():
        train(sched, wl, lr=0.05, seed=0, runtime=Runtime(device=device), eval_every=10**9)
        sync_device(device)

    return run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, nargs="+", default=[16, 64])
    p.add_argument("--steps", type=int, default=200, help="updates of the Sync/plain runs")
    p.add_argument(
        "--repeat",
        type=int,
        default=5,
        help="rounds; each run is timed once per round, round-robin, and the best is kept",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch.set_num_threads (0: torch default); 1 is steadiest on a shared box",
    )
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print("# reproduce: .venv/bin/python benchmarks/bench_replay.py " + " ".join(sys.argv[1:]))
    print(f"# torch {torch.__version__}, numpy {np.__version__}, threads {torch.get_num_threads()}")
    table(torch.device("cpu"), args.n, args.steps, args.repeat)
    if torch.cuda.is_available():
        table(torch.device("cuda"), args.n, args.steps, args.repeat)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS: {rss:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
