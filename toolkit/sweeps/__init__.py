"""Parameter sweeps: a spec (a base RunConfig and axes), a resumable runner on a local process
pool, Ray or Slurm (submitit), the sweep's tidy tables, their analysis and a report.

::

    from toolkit.sweeps import SweepSpec, run_sweep, load
    summary = run_sweep("sweeps/quick.toml", "runs/quick", jobs=2)
    evaluations, summary = load("runs/quick")
"""

from toolkit.sweeps.analysis import (
    best_lr,
    over_seeds,
    performance_profile,
    sensitivity,
    time_to_target,
)
from toolkit.sweeps.report import report
from toolkit.sweeps.runner import (
    EXECUTORS,
    SweepInterrupted,
    run_configs,
    run_point,
    run_sweep,
    schedule_key,
)
from toolkit.sweeps.spec import Axis, SweepSpec
from toolkit.sweeps.store import export, load, status

__all__ = [
    "EXECUTORS",
    "Axis",
    "SweepInterrupted",
    "SweepSpec",
    "best_lr",
    "export",
    "load",
    "over_seeds",
    "performance_profile",
    "report",
    "run_configs",
    "run_point",
    "run_sweep",
    "schedule_key",
    "sensitivity",
    "status",
    "time_to_target",
]
