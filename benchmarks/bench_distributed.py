"""The real backend against theory and the clock: for each scheme on real processes (gloo,
this machine), the measured mean step time beside ``theory.step_time`` and the measured
staleness beside the simulated one (two-sample Kolmogorov-Smirnov statistic).

Injected delays: worker w's j-th gradient takes the clock's j-th draw for w of
``expon(loc=1, scale=0.5)`` times ``--scale`` seconds (default 0.05: 50 ms + Exp(25 ms)); the
measured step time adds real computation, messages and the server's work, which is what the
ratio shows. Logistic regression on MNIST-1D, ``--updates`` updates per scheme.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import scipy.stats as st

from toolkit.cluster import simulate
from toolkit.distributed import run_distributed
from toolkit.runs import RunConfig
from toolkit.schemes import Async, Backup, KAsync, KBatchAsync, KBatchSync, Sync
from toolkit.theory import step_time

SCHEMES = [Sync(4), Backup(3, 1), KBatchSync(4, 4), Async(4), KAsync(4, 2), KBatchAsync(4, 2)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument("--scale", type=float, default=0.05, help="seconds per unit of delay")
    args = parser.parse_args()
    dist = st.expon(loc=args.scale, scale=0.5 * args.scale)
    print(f"# python benchmarks/bench_distributed.py --updates {args.updates} --scale {args.scale}")
    cpus = os.cpu_count()
    print(f"# gloo on one machine, {cpus} CPUs; logreg; delays {args.scale:g} x expon(1, 0.5)")
    head = f"{'scheme':<24}{'measured s':>11}{'theory s':>10}{'ratio':>7}"
    print(head + f"{'staleness':>10}{'simulated':>10}{'KS':>6}{'wall s':>8}")
    for scheme in SCHEMES:
        config = RunConfig(scheme=scheme, workload="logreg", updates=args.updates, lr=0.1)
        t = time.perf_counter()
        schedule, _ = run_distributed(config, time_scale=args.scale, timeout=1800)
        wall = time.perf_counter() - t
        used = schedule.used
        times = used.groupby("update")["time"].max().to_numpy()
        measured = float(np.diff(times)[3:].mean())
        predicted = step_time(scheme, dist)
        sim = simulate(scheme, dist, updates=20 * args.updates, seed=1).used
        ks = st.ks_2samp(used["staleness"], sim["staleness"]).statistic
        print(
            f"{scheme!s:<24}{measured:>11.4f}{predicted:>10.4f}{measured / predicted:>7.3f}"
            f"{used['staleness'].mean():>10.3f}{sim['staleness'].mean():>10.3f}{ks:>6.3f}"
            f"{wall:>8.1f}"
        )


if __name__ == "__main__":
    main()
