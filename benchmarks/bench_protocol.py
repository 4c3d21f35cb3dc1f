"""What selection before evaluation saves: the comparison protocol (toolkit.sweeps.protocol) on 4
schemes x 1 workload x 1 cluster against a full grid x 7 seeds over the same extended lr range.

The protocol searches each scheme's lr from a two-point grid on 2 tuning seeds, extending it until
the best is interior (or at a wall, or capped), then runs 5 evaluation seeds of each chosen
setting (protocols ``tuned`` and ``scaled``). The full grid runs every scheme at every lr the
protocol's searches reached (the whole range from the smallest to the largest, on the same log
lattice) with all 7 seeds: what the same range and the same seeds cost without selection.

Target: the protocol makes at most half the runs of the full grid. Both run on the local pool with
``--jobs`` workers (default 2), each in a fresh process into a fresh directory; wall time counts
the whole command (imports, Schedules, training, the summary).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from toolkit.sweeps import SweepSpec, load

SCHEMES = [
    '{ name = "sync", n = 4 }',
    '{ name = "backup", n = 3, b = 1 }',
    '{ name = "async", n = 4 }',
    '{ name = "kasync", n = 4, k = 2 }',
]
SEEDS = list(range(7))


def spec_toml(workload: str, budget: float, lrs: list[float], protocol: bool) -> str:
    grid = f"lr = {lrs}\n" + ("" if protocol else f"seed = {SEEDS}\n")
    text = f"""name = "bench-protocol"
[base]
time_budget = {budget}
compute = "expon(loc=1, scale=0.5)"
[base.scheme]
name = "sync"
n = 4
[base.workload]
name = "{workload}"
[grid]
scheme = [{", ".join(SCHEMES)}]
{grid}"""
    if protocol:
        text += """[protocol]
names = ["tuned", "scaled"]
tuning_seeds = [0, 1]
evaluation_seeds = [2, 3, 4, 5, 6]
max_extensions = 4
"""
    return text


def timed(spec: Path, out: Path, jobs: int) -> float:
    command = [sys.executable, "-m", "toolkit", "sweep", "run", str(spec), "--out", str(out)]
    command += ["--jobs", str(jobs), "--no-progress"]
    t = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, timeout=3600)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workload", default="logreg")
    parser.add_argument("--budget", type=float, default=150.0, help="simulated seconds per run")
    parser.add_argument("--lrs", default="0.03,0.1", help="the protocol's starting grid")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    start = [float(v) for v in args.lrs.split(",")]
    root = Path(tempfile.mkdtemp(prefix="bench-protocol-"))
    try:
        spec = root / "protocol.toml"
        spec.write_text(spec_toml(args.workload, args.budget, start, protocol=True))
        protocol_s = timed(spec, root / "protocol", args.jobs)
        summary = load(root / "protocol")[1]
        assert summary["state"].eq("complete").all()
        lrs = sorted(summary.loc[summary["role"] == "tuning", "lr"].unique())
        full = root / "full.toml"
        full.write_text(spec_toml(args.workload, args.budget, [float(x) for x in lrs], False))
        n_full = len(SweepSpec.load(full).points())
        full_s = timed(full, root / "full", args.jobs)
        assert len(load(root / "full")[1]) == n_full
    finally:
        shutil.rmtree(root, ignore_errors=True)
    roles = summary["role"].value_counts()
    n_protocol = len(summary)
    print(
        f"# python benchmarks/bench_protocol.py --workload {args.workload} "
        f"--budget {args.budget:g} --lrs {args.lrs} --jobs {args.jobs}"
    )
    print(f"# 4 schemes x 1 workload ({args.workload}) x 1 cluster (4 machines)")
    print(f"# {os.cpu_count()} CPUs; protocols tuned and scaled, 2 tuning + 5 evaluation seeds")
    print(f"# extended lr range: {json.dumps([float(f'{x:.6g}') for x in lrs])}")
    head = f"{'setting':<44}{'runs':>6}{'wall s':>9}{'runs vs full':>14}{'time vs full':>14}"
    print(head)
    rows = [
        (
            f"protocol ({roles.get('tuning', 0)} tuning, {roles.get('evaluation', 0)} evaluation)",
            n_protocol,
            protocol_s,
        ),
        (f"full grid ({len(lrs)} lr x 4 schemes x 7 seeds)", n_full, full_s),
    ]
    for name, runs, seconds in rows:
        print(f"{name:<44}{runs:>6}{seconds:>9.1f}{runs / n_full:>14.2f}{seconds / full_s:>14.2f}")
    met = n_protocol <= n_full / 2
    print(f"target: at most half the runs of the full grid: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
