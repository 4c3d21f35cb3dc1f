"""Predicted vs measured divergence learning rates.

Prediction (a quadratic model of the loss around the start point):
``eta_max = threshold / lambda_max``, with ``lambda_max`` the largest Hessian eigenvalue
(:func:`~toolkit.compare.hessian.largest_hessian_eigenvalue`) and ``threshold`` the largest
stable eta*h of the scheme's recursion on f = h x^2 / 2 (toolkit.theory), by rule:

* barrier rules (Sync, Backup, KBatchSync, Delayed(n, tau)):
  :func:`~toolkit.theory.delay.delayed_gd_threshold` (tau = 0 but for Delayed);
* asynchronous rules (Async, KAsync, KBatchAsync):
  :func:`~toolkit.theory.delay.schedule_threshold` along the Schedule's realised staleness of
  used gradients, with replay's staleness policy; the i.i.d. staleness model's mean-square and
  mean-field thresholds are reported beside it as bounds of that model, not predictions;
* synchronous EASGD / EAMSGD with tau = 1: :func:`~toolkit.theory.stability.easgd_max_eta`;
  other replica rules have no prediction (ValueError).

Each is exact on a noiseless quadratic (plain SGD, no momentum). Measurement: geometric
bisection on the learning rate of a replay run over the same Schedule, a run counting as
divergent when its status is ``"diverged"`` or its final test loss exceeds the initial model's
(:func:`run_diverges`). Why each threshold applies, and measured numbers:
docs/theory.md#divergence-theory-against-models.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.stats

from toolkit.checks import ConfigError, check_positive
from toolkit.cluster import Schedule, simulate
from toolkit.compare.hessian import largest_hessian_eigenvalue
from toolkit.replay import train
from toolkit.schemes import Scheme, Staleness
from toolkit.theory.delay import (
    delayed_gd_threshold,
    schedule_threshold,
    staleness_moments,
    staleness_threshold,
    staleness_threshold_ms,
)
from toolkit.theory.stability import easgd_max_eta
from toolkit.workloads.base import Workload

__all__ = ["divergence_table", "measured_divergence_lr", "predicted_lr", "run_diverges"]


def _threshold(
    scheme: Scheme,
    schedule: Schedule | None,
    staleness: str = "none",
    max_staleness: int | None = None,
) -> dict:
    """Threshold on eta*h for a scheme (key ``threshold``), from its rule and update math; for
    asynchronous rules also the i.i.d. staleness model's mean-square and mean-field thresholds;
    tau (delay or mean staleness) and beta."""
    out = dict.fromkeys(("threshold", "iid_meansquare", "iid_meanfield", "tau", "beta"), math.nan)
    rule = scheme.rule
    if rule.replicas:
        rules = scheme.updates(1.0)
        if rules.exchange.kind != "elastic" or rule.period != 1 or not rule.barrier:
            raise ConfigError(
                "scheme",
                f"scheme: replica predictions cover synchronous EASGD with tau = 1, not {scheme}",
            )
        alpha, p = rules.exchange.alpha, rule.machines
        eta_h = easgd_max_eta(alpha=alpha, p=p, momentum=rules.local.momentum)
        out.update(threshold=eta_h, beta=p * alpha)
    elif rule.barrier:  # every gradient of update t is computed at version t - delay
        out.update(threshold=delayed_gd_threshold(rule.delay), tau=float(rule.delay))
    else:
        if schedule is None:
            raise ConfigError(
                "schedule", f"schedule: {scheme} predictions need the Schedule's staleness"
            )
        used = schedule.used
        upd = used["update"].to_numpy()
        stal = used["staleness"].to_numpy()
        keep, factor = Staleness(staleness, max_staleness).factors(stal)
        if not keep.any():
            raise ConfigError("max_staleness", "max_staleness: every gradient is dropped")
        out.update(
            threshold=schedule_threshold(
                upd[keep],
                stal[keep],
                weights=factor[keep] if staleness == "lr" else None,
                horizon=int(upd.max()) + 1,
            ),
            tau=float(stal[keep].mean()),
        )
        if staleness != "lr":  # the i.i.d. model has unweighted profiles only
            mean, second = staleness_moments(upd[keep], stal[keep])
            out.update(
                iid_meansquare=staleness_threshold_ms(mean, second),
                iid_meanfield=staleness_threshold(mean),
            )
    return out


def predicted_lr(
    scheme: Scheme,
    lambda_max: float,
    schedule: Schedule | None = None,
    *,
    staleness: str = "none",
    max_staleness: int | None = None,
) -> float:
    """Largest stable learning rate predicted by the theory: threshold(scheme) / lambda_max
    (module docstring). ``schedule`` supplies the realised staleness of Async/KBatchAsync;
    ``staleness``/``max_staleness`` are replay's staleness policy (``toolkit.replay.train``)."""
    lambda_max = check_positive("lambda_max", lambda_max)
    return _threshold(scheme, schedule, staleness, max_staleness)["threshold"] / lambda_max


def _initial_test_loss(workload: Workload, seed: int) -> float:
    return float(workload.evaluate(workload.make_model(seed))["test_loss"])


def run_diverges(
    schedule: Schedule, workload: Workload, lr: float, *, seed: int = 0, **train_kwargs
) -> bool:
    """True when replay at ``lr`` diverges: status ``"diverged"`` (a non-finite loss), or a final
    test loss that is not below the initial model's test loss."""
    res = train(schedule, workload, lr=lr, seed=seed, **train_kwargs)
    if res.status == "diverged":
        return True
    test = res.frame["test_loss"].dropna().to_numpy()
    if test.size == 0 or not np.isfinite(test[-1]):
        return True
    return bool(test[-1] >= _initial_test_loss(workload, seed))


def measured_divergence_lr(
    schedule: Schedule,
    workload: Workload,
    guess: float,
    *,
    seed: int = 0,
    rel_tol: float = 0.02,
    max_expand: int = 12,
    **train_kwargs,
) -> tuple[float, float, int]:
    """Bracket and bisect the divergence boundary in lr around ``guess``.

    The first bracket is [guess / 1.04, guess * 1.06] (asymmetric, so that no bisection point
    is ``guess`` itself), widened by factors of 2 while both ends converge or both diverge,
    then halved geometrically: with the boundary within 5 % of ``guess`` (an exact prediction)
    that is 5 runs to rel_tol = 0.02.
    Returns (lo, hi, runs): the largest lr seen converging and the smallest seen diverging,
    with hi / lo <= 1 + rel_tol (the boundary lies in [lo, hi] if divergence is monotone in lr).
    """
    guess = check_positive("guess", guess)
    rel_tol = check_positive("rel_tol", rel_tol)
    runs = 0

    def diverges(lr: float) -> bool:
        nonlocal runs
        runs += 1
        return run_diverges(schedule, workload, lr, seed=seed, **train_kwargs)

    lo, hi = guess / 1.04, guess * 1.06
    for _ in range(max_expand):
        if not diverges(lo):
            break
        hi, lo = lo, lo / 2.0
    else:
        raise RuntimeError(f"lr: runs diverge even at lr = {lo}")
    for _ in range(max_expand):
        if diverges(hi):
            break
        lo, hi = hi, hi * 2.0
    else:
        raise RuntimeError(f"lr: no divergence up to lr = {hi}")
    while hi / lo > 1.0 + rel_tol:
        mid = math.sqrt(lo * hi)
        if diverges(mid):
            hi = mid
        else:
            lo = mid
    return lo, hi, runs


def divergence_table(
    workloads: Sequence[Workload],
    schemes: Sequence[Scheme],
    *,
    updates: int = 1000,
    compute: object = None,
    seed: int = 0,
    rel_tol: float = 0.02,
    hessian_iters: int = 40,
    hessian_samples: int | None = None,
    lambda_max: Sequence[float] | None = None,
    **train_kwargs,
) -> pd.DataFrame:
    """Predicted vs measured largest stable learning rate, one row per (workload, scheme).

    For each workload: lambda_max from :func:`largest_hessian_eigenvalue` at the initial model
    (or given); for each scheme: a Schedule from ``toolkit.cluster.simulate(scheme, compute,
    updates=updates, seed=seed)`` (``compute`` defaults to Exp(1) step times), the prediction
    (:func:`predicted_lr`) and the measured boundary (:func:`measured_divergence_lr`, reported as
    the geometric mean of its bracket). Columns: workload, scheme, tau, beta, lambda_max,
    predicted_lr, iid_meansquare_lr and iid_meanfield_lr (async schemes: the i.i.d. staleness
    model's thresholds / lambda_max, bounds of that model, not predictions; NaN for
    staleness="lr"), measured_lr, measured_lo, measured_hi, ratio (measured / predicted), runs,
    status (Schedule status). ``train_kwargs`` go to replay; its ``staleness``/``max_staleness``
    also enter the async prediction. The predictions assume plain SGD: a nonzero ``momentum``
    is refused (EASGD's momentum is the scheme's field).
    """
    compute = scipy.stats.expon() if compute is None else compute
    if train_kwargs.get("momentum", 0.0):
        raise ConfigError(
            "momentum", "momentum: the predictions cover plain SGD (momentum = 0) only"
        )
    policy = train_kwargs.get("staleness", "none")
    max_staleness = train_kwargs.get("max_staleness")
    if lambda_max is not None and len(lambda_max) != len(workloads):
        raise ConfigError("lambda_max", "lambda_max: give one value per workload")
    rows = []
    for i, workload in enumerate(workloads):
        lam = (
            float(lambda_max[i])
            if lambda_max is not None
            else largest_hessian_eigenvalue(
                workload, iters=hessian_iters, seed=seed, samples=hessian_samples
            )
        )
        for scheme in schemes:
            schedule = simulate(scheme, compute, updates=updates, seed=seed)
            th = _threshold(scheme, schedule, policy, max_staleness)
            pred = th["threshold"] / lam
            lo, hi, runs = measured_divergence_lr(
                schedule,
                workload,
                pred,
                seed=seed,
                rel_tol=rel_tol,
                scheme=scheme,
                **train_kwargs,
            )
            measured = math.sqrt(lo * hi)
            rows.append(
                {
                    "workload": workload.name,
                    "scheme": str(scheme),
                    "tau": th["tau"],
                    "beta": th["beta"],
                    "lambda_max": lam,
                    "predicted_lr": pred,
                    "iid_meansquare_lr": th["iid_meansquare"] / lam,
                    "iid_meanfield_lr": th["iid_meanfield"] / lam,
                    "measured_lr": measured,
                    "measured_lo": lo,
                    "measured_hi": hi,
                    "ratio": measured / pred,
                    "runs": runs,
                    "status": schedule.status,
                }
            )
    return pd.DataFrame(rows)
