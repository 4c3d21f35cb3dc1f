"""What forking from a process that has made its imports saves, in CPU seconds.

1. The real backend: one Async(4) run of 40 updates on logreg (``run_distributed``) with its
   ranks forked, through one forker process, from the calling process, which has imported torch
   and the toolkit and builds the workload before the fork (``toolkit.distributed.fork``),
   against one ``python -m toolkit.distributed.process`` per rank (the launcher's other path).
2. A sweep's local executor: 12 runs of ``sweeps/protocol-quick.toml`` on 2 jobs, a child forked
   per run, with the runner warmed first (``toolkit.sweeps.runner._warm``: the run's imports and
   the workload's data) against without.

Each case runs in a fresh Python process, so that nothing is imported before it starts; the CPU
is that of the case's children (``RUSAGE_CHILDREN``: ranks and the forker, or the runs) plus the
case process's own after its imports (where the workload is built and the warm-up is done).

    .venv/bin/python benchmarks/bench_process_start.py
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CASE = r"""
import json, resource, sys, tempfile, time
from pathlib import Path

def cpu(who):
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime

kind, mode = sys.argv[1], sys.argv[2]
if kind == "distributed":
    from toolkit.distributed import launch, run_distributed
    from toolkit.runs import RunConfig
    from toolkit.schemes import Async
    if mode == "spawned":
        launch._Forked = launch._Spawned
    config = RunConfig(scheme=Async(4), workload="logreg", updates=40, lr=0.1, seed=3,
                       engine="distributed")
    c0, s0, t0 = cpu(resource.RUSAGE_CHILDREN), cpu(resource.RUSAGE_SELF), time.monotonic()
    run_distributed(config, timeout=300)
else:
    from toolkit.sweeps import SweepSpec
    from toolkit.sweeps import runner
    if mode == "cold":
        runner._warm = lambda tasks: None
    spec = SweepSpec.load("sweeps/protocol-quick.toml")
    tasks = runner.tasks_for(list(spec.points())[:12], Path(tempfile.mkdtemp()))
    c0, s0, t0 = cpu(resource.RUSAGE_CHILDREN), cpu(resource.RUSAGE_SELF), time.monotonic()
    for _ in runner._local(runner.run_point, tasks, 2):
        pass
children = cpu(resource.RUSAGE_CHILDREN) - c0
own = cpu(resource.RUSAGE_SELF) - s0
print(json.dumps({"children": children, "own": own, "wall": time.monotonic() - t0}))
"""


def case(kind: str, mode: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CASE, kind, mode],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    rows = []
    for kind, modes, unit in (
        ("distributed", ("spawned", "forked"), 1),
        ("sweep", ("cold", "warm"), 12),
    ):
        for mode in modes:
            r = case(kind, mode)
            total = r["children"] + r["own"]
            rows.append((kind, mode, total, total / unit, r["wall"]))
    print("| case | mode | CPU s | CPU s per run | wall s |")
    print("|---|---|---|---|---|")
    for kind, mode, total, per, wall in rows:
        print(f"| {kind} | {mode} | {total:.1f} | {per:.2f} | {wall:.1f} |")
    print("\ncommand: .venv/bin/python benchmarks/bench_process_start.py")


if __name__ == "__main__":
    main()
