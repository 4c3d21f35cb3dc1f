"""Sweep throughput on one machine: runs per minute of a 16-point lr x seed grid on the MNIST-1D
MLP (Sync(16), 300 updates per run), one by one (``--jobs 1``) and on the local process pool
(``--jobs 2``, one torch thread per process), measured in one run.

Target: the pool with 2 jobs runs >= 1.7x as many runs per minute as one by one on a 2-core CPU.
Each setting runs in a fresh process into a fresh directory, so neither inherits the other's
warm caches. Runs per minute count ``run_sweep`` from its call to its return (planning, the
Schedule cache, pool start-up, training, the final summary); the table also gives the whole
command's wall time, which adds the interpreter's imports (torch, scipy, pandas: a few seconds,
the same for both settings). The 16 points share 4 Schedules (one per seed: the lr does not change
the clock), so 4 are simulated. Rounds alternate the two settings (``--repeat``) and the best time
of each is kept, so load from other processes hits both alike.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from toolkit.runs import RunConfig
from toolkit.schemes import Sync
from toolkit.sweeps import SweepSpec, load, schedule_key

LRS = [0.03, 0.1, 0.3, 0.9]
CHILD = """
import sys, time
from toolkit.sweeps import run_sweep
t = time.perf_counter()
run_sweep(sys.argv[1], sys.argv[2], jobs=int(sys.argv[3]), progress=False)
print(time.perf_counter() - t)
"""
SEEDS = [0, 1, 2, 3]


def spec_toml(updates: int) -> str:
    return f"""name = "bench"
[base]
updates = {updates}
[base.scheme]
name = "sync"
n = 16
[base.workload]
name = "mnist1d_mlp"
[grid]
lr = {LRS}
seed = {SEEDS}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--updates", type=int, default=300, help="updates per run")
    parser.add_argument("--repeat", type=int, default=2, help="rounds of both settings")
    args = parser.parse_args()
    text = spec_toml(args.updates)
    points = SweepSpec.from_toml(text).points()
    assert points[0].scheme == Sync(16) and isinstance(points[0], RunConfig)
    schedules = len({schedule_key(p) for p in points})
    best = {1: float("inf"), 2: float("inf")}
    command_best = dict(best)
    root = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    (root / "spec.toml").write_text(text)
    try:
        for r in range(args.repeat):
            for jobs in (1, 2) if r % 2 == 0 else (2, 1):
                out = root / f"r{r}-j{jobs}"
                spec = str(root / "spec.toml")
                command = [sys.executable, "-c", CHILD, spec, str(out), str(jobs)]
                t = time.perf_counter()
                done = subprocess.run(command, check=True, capture_output=True, timeout=1800)
                command_best[jobs] = min(command_best[jobs], time.perf_counter() - t)
                best[jobs] = min(best[jobs], float(done.stdout.split()[-1]))
                summary = load(out)[1]
                assert summary["state"].eq("complete").all() and len(summary) == len(points)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    rate = {j: 60 * len(points) / best[j] for j in best}
    print(f"# python benchmarks/bench_sweep.py --updates {args.updates} --repeat {args.repeat}")
    print(f"# {len(points)} points ({len(LRS)} lr x {len(SEEDS)} seeds), Sync(16) on mnist1d_mlp,")
    print(f"# {args.updates} updates each; {schedules} Schedules simulated; {os.cpu_count()} CPUs")
    head = f"{'setting':<22}{'sweep s':>9}{'runs/min':>10}{'vs one by one':>15}{'command s':>11}"
    print(head)
    for j, name in ((1, "one by one (jobs=1)"), (2, "local pool (jobs=2)")):
        ratio = f"{rate[j] / rate[1]:.2f}x"
        print(f"{name:<22}{best[j]:>9.1f}{rate[j]:>10.1f}{ratio:>15}{command_best[j]:>11.1f}")
    print(f"target >= 1.7x: {'met' if rate[2] / rate[1] >= 1.7 else 'NOT met'}")


if __name__ == "__main__":
    main()
