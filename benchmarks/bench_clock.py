"""Clock speed: events (gradient rows) per second for Async, Sync and Backup, and Async against
the same model written in SimPy.

Reproduce:  .venv/bin/python benchmarks/bench_clock.py   (add --quick for a smaller run)
Targets: Async n=1000, 10^6 updates >= 1,000,000 events/s on one core; >= 5x SimPy's rate.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import numpy as np
import simpy
from scipy import stats

from toolkit.cluster import simulate
from toolkit.models import ParameterServer, PerWorker
from toolkit.schemes import Async, Backup, Sync


def timed(fn, repeat: int = 3) -> float:
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def simpy_async(n: int, updates: int, seed: int) -> list[tuple[int, int, int]]:
    """Async SGD in SimPy: n worker processes; each computes (timeout), its gradient is applied
    on arrival (update index, version = updates applied when it started)."""
    env = simpy.Environment()
    rng = np.random.default_rng(seed)
    draws = rng.exponential(size=(n, 2 * updates // n + 64))
    state = {"version": 0}
    rows: list[tuple[int, int, int]] = []

    def worker(w: int):
        j = 0
        while True:
            version = state["version"]
            yield env.timeout(draws[w, j])
            j += 1
            if state["version"] >= updates:
                return
            rows.append((state["version"], w, version))
            state["version"] += 1

    for w in range(n):
        env.process(worker(w))
    while state["version"] < updates:
        env.step()
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10x fewer events")
    args = ap.parse_args()
    scale = 10 if args.quick else 1
    print("# reproduce: .venv/bin/python benchmarks/bench_clock.py" + (" --quick" * args.quick))
    print(
        f"# python {sys.version.split()[0]}, numpy {np.__version__}, simpy {simpy.__version__}, "
        f"cpus {os.cpu_count()}"
    )
    d = stats.expon()
    n = 1000
    U = 1_000_000 // scale
    rows = []
    t = timed(lambda: simulate(Async(n), d, updates=U, seed=0))
    rows.append(("clock Async (merge)", n, U, U, t))
    Us = 100_000 // scale
    ts = timed(lambda: simpy_async(n, Us, 0), repeat=1)
    rows.append(("SimPy Async", n, Us, Us, ts))
    link = ParameterServer(nbytes=1.0, bandwidth=1e7)  # a shared link: the event-heap path
    th = timed(lambda: simulate(Async(n), d, link, updates=Us, seed=0), repeat=1)
    rows.append(("clock Async (heap, PS link)", n, Us, Us, th))
    # very unequal speeds (one worker 100x faster): the merge is ragged per worker, so memory
    # stays O(updates + n) (it was a dense (n, draws of the fastest worker) matrix before)
    skew = PerWorker([stats.expon(scale=0.01)] + [d] * (n - 1))
    Uk = 300_000 // scale
    tk = timed(lambda: simulate(Async(n), skew, updates=Uk, seed=0), repeat=1)
    rows.append(("clock Async (merge, 1 fast)", n, Uk, Uk, tk))
    for scheme, u in ((Sync(100), 10_000 // scale), (Backup(90, 10), 10_000 // scale)):
        t2 = timed(lambda s=scheme, u=u: simulate(s, d, updates=u, seed=0))
        rows.append((f"clock {scheme!r}", scheme.rule.machines, u, u * scheme.rule.machines, t2))
    print(
        f"{'model':28s} {'workers':>8s} {'updates':>9s} {'events':>10s} {'seconds':>8s} "
        f"{'events/s':>12s}"
    )
    for name, w, u, ev, sec in rows:
        print(f"{name:28s} {w:8d} {u:9d} {ev:10d} {sec:8.3f} {ev / sec:12,.0f}")
    rate = rows[0][3] / rows[0][4]
    simpy_rate = rows[1][3] / rows[1][4]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    print(f"\npeak resident memory of this process: {peak:,.0f} MB")
    print(
        f"Async: clock {rate:,.0f} events/s (target >= 1,000,000); "
        f"SimPy {simpy_rate:,.0f} events/s; speed-up x{rate / simpy_rate:.1f} (target >= 5)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
