"""Predicted vs measured divergence learning rate (toolkit/compare/divergence.py).

On a noiseless quadratic the theory is exact, so the measured boundary's bisection bracket must
contain the prediction (delayed_gd_threshold(tau) / lambda_max; EASGD's threshold / lambda_max;
for Async/KBatchAsync the realised-staleness threshold of the same Schedule, schedule_threshold /
lambda_max). On the MNIST-1D MLP there is no oracle: that test is a smoke test of the pipeline.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from toolkit.cluster import simulate
from toolkit.compare import divergence_table, predicted_lr, run_diverges
from toolkit.replay import Runtime
from toolkit.schemes import EASGD, Async, Delayed, KBatchAsync, LocalSGD, Sync
from toolkit.theory import delayed_gd_threshold
from toolkit.theory.delay import (
    schedule_threshold,
    staleness_moments,
    staleness_threshold,
    staleness_threshold_ms,
)
from toolkit.workloads import get_workload

CPU = Runtime(device="cpu")


@pytest.fixture(scope="module")
def quad():
    return get_workload("quadratic", d=2, eigenvalues=[0.5, 2.0], noise_std=0.0, x0=[1.0, 1.0])


@pytest.mark.parametrize(
    ("scheme", "iid"),
    [
        (Delayed(2, 2), False),
        (EASGD(4, 1, 0.1, momentum=0.5), False),
        (Async(4), True),  # asynchronous: the i.i.d. staleness model's bounds are reported too
        (KBatchAsync(4, 2), True),
    ],
    ids=str,
)
def test_quadratic_boundary_matches_theory(quad, scheme, iid) -> None:
    df = divergence_table([quad], [scheme], updates=1000, rel_tol=0.03, runtime=CPU)
    assert len(df) == 1
    row = df.iloc[0]
    assert row["lambda_max"] == pytest.approx(2.0, rel=1e-5)
    if isinstance(scheme, Delayed):
        assert row["predicted_lr"] == pytest.approx(delayed_gd_threshold(2) / 2.0, rel=1e-5)
    assert row["measured_lo"] <= row["predicted_lr"] * (1 + 1e-6)
    assert row["measured_hi"] >= row["predicted_lr"] * (1 - 1e-6)
    assert row["measured_hi"] / row["measured_lo"] <= 1.03
    assert abs(row["ratio"] - 1) <= 0.03
    assert np.isnan(row["iid_meansquare_lr"]) != iid


def test_async_prediction_with_staleness_policies(quad) -> None:
    """Replay's staleness="lr" (gradient scaled by 1 / max(1, s)) and "drop" enter the
    realised-staleness prediction; on the noiseless quadratic it is exact, so replay at 0.97x
    converges and at 1.03x diverges."""
    scheme = Async(4)
    schedule = simulate(scheme, scipy.stats.expon(), updates=600, seed=3)
    plain = predicted_lr(scheme, 2.0, schedule)
    for kwargs in ({"staleness": "lr"}, {"staleness": "drop", "max_staleness": 4}):
        eta = predicted_lr(scheme, 2.0, schedule, **kwargs)
        assert eta > plain  # both policies shrink the stale gradients' effect
        assert not run_diverges(schedule, quad, 0.97 * eta, runtime=CPU, **kwargs)
        assert run_diverges(schedule, quad, 1.03 * eta, runtime=CPU, **kwargs)


def test_run_diverges_on_either_side(quad) -> None:
    schedule = simulate(Delayed(2, 1), scipy.stats.expon(), updates=400, seed=0)
    eta = delayed_gd_threshold(1) / 2.0
    assert run_diverges(schedule, quad, 1.3 * eta, runtime=CPU)
    assert not run_diverges(schedule, quad, 0.7 * eta, runtime=CPU)


def test_predictions() -> None:
    assert predicted_lr(Sync(3), 4.0) == pytest.approx(0.5)
    assert predicted_lr(Delayed(3, 1), 2.0) == pytest.approx(0.5)
    assert predicted_lr(EASGD(4, 1, 0.1), 1.0) == pytest.approx(2 - 2 * 0.4 / (4 * 1.6))
    schedule = simulate(Async(4), scipy.stats.expon(), updates=300, seed=1)
    used = schedule.used
    upd, stal = used["update"].to_numpy(), used["staleness"].to_numpy()
    # the prediction is the realised-sequence threshold (its exactness: the quadratic tests)
    assert predicted_lr(Async(4), 2.0, schedule) == pytest.approx(
        schedule_threshold(upd, stal) / 2.0, rel=1e-12
    )
    # i.i.d. model: mean-square stability implies stability of the mean (a theorem, so this
    # checks the two numerical thresholds against each other)
    mean, second = staleness_moments(upd, stal)
    assert staleness_threshold_ms(mean, second) <= staleness_threshold(mean) + 1e-9


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="lambda_max"):
        predicted_lr(Sync(2), 0.0)
    with pytest.raises(ValueError, match="scheme"):
        predicted_lr(EASGD(2, 2, 0.1), 1.0)
    with pytest.raises(ValueError, match="scheme"):
        predicted_lr(LocalSGD(2, 2), 1.0)
    with pytest.raises(ValueError, match="schedule"):
        predicted_lr(Async(2), 1.0)
    with pytest.raises(ValueError, match="momentum"):
        divergence_table([], [Sync(2)], momentum=0.9)


def test_mlp_ratio_is_finite() -> None:
    """Smoke test of the pipeline on the MNIST-1D MLP (Hessian eigenvalue, Schedule, bracketing
    by replay): no oracle, the quadratic model is not exact there, so only finiteness and
    positivity are asserted."""
    mlp = get_workload("mnist1d_mlp")
    df = divergence_table(
        [mlp],
        [Sync(2)],
        updates=60,
        rel_tol=0.25,
        hessian_iters=15,
        hessian_samples=512,
        runtime=CPU,
    )
    row = df.iloc[0]
    assert math.isfinite(row["lambda_max"]) and row["lambda_max"] > 0
    assert np.isfinite(row["ratio"]) and row["ratio"] > 0
