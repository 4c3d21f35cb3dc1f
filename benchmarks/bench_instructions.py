"""Instructions per event of the clock's paths and of replay, counted by ``perf stat``.

Wall-clock timings on a shared 2-core machine vary by 2x from hour to hour; instruction counts
vary by well under 1 %. Each case runs twice at two lengths in fresh one-thread processes, and
(instructions(long) - instructions(short)) / (events(long) - events(short)) removes the start-up
(imports, data) from the count. Compare commits by running this on each, e.g. in a
``git worktree``.

Reproduce:  .venv/bin/python benchmarks/bench_instructions.py   (about 3 minutes; needs perf)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

CASES = {
    # name: (code run with N = its length, short N, long N, what N counts)
    "clock Async(100), PS link (heap)": (
        "simulate(Async(100), D, PS, updates=N)",
        20_000,
        120_000,
        "update",
    ),
    "clock Async(100), merge": ("simulate(Async(100), D, updates=N)", 100_000, 600_000, "update"),
    "clock Backup(90, 10)": ("simulate(Backup(90, 10), D, updates=N)", 2_000, 12_000, "update"),
    "clock Delayed(16, 2)": ("simulate(Delayed(16, 2), D, updates=N)", 2_000, 12_000, "update"),
    "clock KBatchSync(16, 8)": ("simulate(KBatchSync(16, 8), D, updates=N)", 500, 3_000, "update"),
    "clock KAsync(16, 4)": ("simulate(KAsync(16, 4), D, updates=N)", 2_000, 12_000, "update"),
    "replay Sync(16), MNIST-1D MLP": ("replay(Sync(16), N)", 40, 160, "update"),
    "replay Async(16), MNIST-1D MLP": ("replay(Async(16), N)", 100, 400, "update"),
    "replay EASGD(16, 4), MNIST-1D MLP": ("replay(EASGD(16, 4, 0.05), N)", 40, 160, "local step"),
}

PRELUDE = """
import sys, torch, scipy.stats as st
torch.set_num_threads(1)
from toolkit.cluster import simulate
try:
    from toolkit.models import ParameterServer
except ImportError:  # commits before the models layer
    from toolkit.cluster import ParameterServer
from toolkit.schemes import *
D = st.expon(loc=1, scale=0.5)
PS = ParameterServer(nbytes=4e6, bandwidth=1e9, latency=1e-4)
N = int(sys.argv[1])

def replay(scheme, n):
    from toolkit.replay import train
    from toolkit.workloads import get_workload
    wl = get_workload("mnist1d_mlp")
    train(simulate(scheme, D, updates=n, seed=0), wl, lr=0.05, seed=0, eval_every=10**9)
"""


def instructions(code: str, n: int) -> int:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        ["perf", "stat", "-x,", "-e", "instructions", sys.executable, "-c", PRELUDE + code, str(n)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=True,
    )
    line = next(x for x in done.stderr.splitlines() if "instructions" in x)
    return int(line.split(",")[0])


def main() -> int:
    if shutil.which("perf") is None:
        print("perf is not installed (Debian: linux-perf): nothing measured")
        return 0
    print("# reproduce: .venv/bin/python benchmarks/bench_instructions.py")
    print(f"{'case':<36} {'instructions per event':>24} {'spread':>8}")
    for name, (code, short, long, unit) in CASES.items():
        a = [instructions(code, short) for _ in range(2)]
        b = [instructions(code, long) for _ in range(2)]
        per = (sum(b) - sum(a)) / 2 / (long - short)
        spread = (max(abs(b[0] - b[1]), abs(a[0] - a[1]))) / (long - short) / per
        print(f"{name:<36} {per:>17,.0f} /{unit:<6} {spread:>7.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
