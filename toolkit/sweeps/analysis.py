"""Analysis of sweep tables: pure functions of pandas DataFrames (:func:`toolkit.sweeps.load`'s
``evaluations`` and ``summary``).

* :func:`time_to_target`: simulated wall-clock time at which each run's metric first reaches a
  target, the headline score of AlgoPerf (Dahl et al. 2023, "Benchmarking Neural Network
  Training Algorithms", Sec. 4).
* :func:`over_seeds`: mean, best, worst and a bootstrap confidence interval of a value over seeds
  (``scipy.stats.bootstrap``, percentile method), per configuration.
* :func:`best_lr`: the best learning rate per group under a stated tuning protocol (every group
  gets the same grid and budget; the score is the mean over seeds).
* :func:`performance_profile`: Dolan & More (Math. Programming 91, 2002): for each solver the
  fraction of problems it solves within a factor tau of the best solver's time.
* :func:`sensitivity`: a value against the learning rate per group, with seed bands.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["best_lr", "over_seeds", "performance_profile", "sensitivity", "time_to_target"]


def time_to_target(
    evaluations: pd.DataFrame,
    target: float,
    metric: str = "test_accuracy",
    *,
    higher_is_better: bool = True,
    by: str = "run_id",
) -> pd.Series:
    """Per run (``by``), the first ``time`` at which ``metric`` reached ``target`` (>= for a
    higher-is-better metric, <= otherwise); NaN for a run that never did."""
    ev = evaluations.sort_values([by, "time"])
    hit = ev[metric] >= target if higher_is_better else ev[metric] <= target
    first = ev[hit].groupby(by, sort=True)["time"].first()
    return first.reindex(sorted(ev[by].unique())).rename("time_to_target")


def _ci(values: np.ndarray, confidence: float, seed: int) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if len(values) < 2 or np.all(values == values[0]):
        v = values[0] if len(values) else np.nan
        return (v, v) if len(values) >= 2 else (np.nan, np.nan)
    res = stats.bootstrap(
        (values,),
        np.mean,
        confidence_level=confidence,
        method="percentile",
        n_resamples=2000,
        random_state=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def over_seeds(
    summary: pd.DataFrame,
    value: str,
    by: Sequence[str],
    *,
    higher_is_better: bool = True,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Per configuration (the columns ``by``): ``n`` seeds (``n_finite`` of them with a finite
    value), ``mean``, ``best``, ``worst`` (by ``higher_is_better``), and ``ci_low``/``ci_high``,
    a bootstrap confidence interval of the mean
    (percentile method, 2000 resamples, seeded). NaN values (a run that never reached a target)
    count as the worst possible in ``worst`` and are left out of the mean."""
    rows = []
    for key, g in summary.groupby(list(by), sort=True, dropna=False):
        v = g[value].to_numpy(dtype=float)
        fin = v[np.isfinite(v)]
        best = (fin.max() if higher_is_better else fin.min()) if len(fin) else np.nan
        worst = (
            np.nan
            if len(fin) < len(v) or not len(fin)
            else (fin.min() if higher_is_better else fin.max())
        )
        low, high = _ci(v, confidence, seed)
        key = key if isinstance(key, tuple) else (key,)
        rows.append(
            {
                **dict(zip(by, key, strict=True)),
                "n": len(v),
                "n_finite": len(fin),
                "mean": float(fin.mean()) if len(fin) else np.nan,
                "best": best,
                "worst": worst,
                "ci_low": low,
                "ci_high": high,
            }
        )
    return pd.DataFrame(rows)


def best_lr(
    summary: pd.DataFrame,
    value: str,
    by: Sequence[str] = ("label",),
    *,
    higher_is_better: bool = True,
) -> pd.DataFrame:
    """The learning rate with the best mean ``value`` over seeds in each group ``by``.

    Protocol (stated in the ``protocol`` column): every group is tuned over the same lr grid, the
    lrs present in the summary, with the same budget, and scored by the mean over its seeds; a
    group's lr with a missing (NaN) mean cannot win."""
    stats_ = over_seeds(summary, value, [*by, "lr"], higher_is_better=higher_is_better)
    grid = ", ".join(f"{lr:g}" for lr in sorted(summary["lr"].dropna().unique()))
    rows = []
    for _, g in stats_.groupby(list(by), sort=True, dropna=False):
        g = g.dropna(subset=["mean"])
        if g.empty:
            continue
        pick = g.loc[g["mean"].idxmax() if higher_is_better else g["mean"].idxmin()]
        rows.append(pick)
    out = pd.DataFrame(rows).reset_index(drop=True)
    out["protocol"] = f"mean over seeds of {value}; lr grid [{grid}]; same budget for every group"
    return out


def performance_profile(
    summary: pd.DataFrame,
    value: str = "time_to_target",
    *,
    solver: str = "label",
    problem: str = "workload",
    taus: Sequence[float] = (1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0),
) -> pd.DataFrame:
    """Dolan-More performance profile of ``value`` (lower is better; NaN = not solved): the
    per-(problem, solver) value is the mean over the rows (seeds) that solved it; its ratio to the
    problem's best solver r_ps; rho_s(tau) = the fraction of problems with r_ps <= tau. Columns
    ``solver``, ``tau``, ``rho``."""
    t = summary.groupby([problem, solver])[value].mean().unstack(solver)
    ratio = t.div(t.min(axis=1), axis=0)
    rows = [
        {"solver": s, "tau": tau, "rho": float((ratio[s] <= tau).mean())}
        for s in ratio.columns
        for tau in taus
    ]
    return pd.DataFrame(rows)


def sensitivity(
    summary: pd.DataFrame,
    value: str,
    by: Sequence[str] = ("label",),
    x: str = "lr",
    *,
    higher_is_better: bool = True,
) -> pd.DataFrame:
    """``value`` against ``x`` for each group ``by``: mean, best and worst over seeds (the bands
    of a sensitivity curve) and the bootstrap interval of the mean."""
    return over_seeds(summary, value, [*by, x], higher_is_better=higher_is_better)
