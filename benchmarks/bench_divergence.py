"""Predicted vs measured largest stable learning rate (issue: stability theory on real models).

Reproduce: .venv/bin/python benchmarks/bench_divergence.py   (about 2 minutes on 2 CPU cores)

Prediction: theory (delayed_gd_threshold, easgd_spectral_radius, schedule_threshold along the
Schedule's realised staleness) divided by the top Hessian eigenvalue (Lanczos, torch.func HVPs).
Measurement: bisection over lr with the replay harness on the same simulated Schedule.
"""

import pandas as pd

from toolkit.compare import divergence_table
from toolkit.replay import Runtime
from toolkit.schemes import EASGD, Async, Delayed, KBatchAsync, Sync
from toolkit.workloads import get_workload

CPU = Runtime(device="cpu")

pd.set_option("display.width", 250)
pd.set_option("display.max_columns", 20)
COLS = [
    "workload",
    "scheme",
    "tau",
    "lambda_max",
    "predicted_lr",
    "iid_meansquare_lr",
    "iid_meanfield_lr",
    "measured_lo",
    "measured_hi",
    "ratio",
    "runs",
]


def main() -> None:
    print(__doc__.splitlines()[2])
    quad = get_workload("quadratic", d=2, eigenvalues=[0.5, 2.0], noise_std=0.0, x0=[1.0, 1.0])
    schemes = [
        Sync(4),
        Delayed(4, 2),
        EASGD(4, 1, 0.1, momentum=0.5),
        Async(4),
        KBatchAsync(4, 2),
        Async(8),
        KBatchAsync(8, 4),
    ]
    t = divergence_table([quad], schemes, updates=1000, rel_tol=0.02, runtime=CPU)
    print(t[COLS].to_string(float_format=lambda v: f"{v:.4g}"), flush=True)
    mlp = get_workload("mnist1d_mlp")
    t = divergence_table(
        [mlp],
        [Sync(4), Delayed(4, 2), Async(4), KBatchAsync(4, 2)],
        updates=150,
        rel_tol=0.05,
        hessian_iters=30,
        runtime=CPU,
    )
    print(t[COLS].to_string(float_format=lambda v: f"{v:.4g}"), flush=True)


if __name__ == "__main__":
    main()
