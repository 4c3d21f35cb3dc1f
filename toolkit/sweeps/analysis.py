"""Analysis of sweep tables: pure functions of pandas DataFrames (:func:`toolkit.sweeps.load`'s
``evaluations`` and ``summary``).

* :func:`time_to_target`: simulated wall-clock time at which each run's metric first reaches a
  target, the headline score of AlgoPerf (Dahl et al. 2023, "Benchmarking Neural Network
  Training Algorithms", Sec. 4).
* :func:`over_seeds`: mean, best, worst and an interval of the mean over seeds per
  configuration: Student-t from 5 seeds up, labelled; below 5 seeds the label says ``"range"``
  and no interval is drawn (best and worst are the range); a bootstrap on request from 10 seeds
  up (:func:`toolkit.sweeps.stats.interval`).
* :func:`best_lr`: the best learning rate per group under a stated tuning protocol (every group
  gets the same grid and budget; the score is the mean over seeds), with ``lr_status``
  ``edge`` where the best is an end of the grid (the optimum may lie beyond; the protocol of
  :mod:`toolkit.sweeps.protocol` extends the grid instead) or ``interior``.
* :func:`survival`: time to target per configuration as a survival quantity: the fraction of
  runs that reached the target and the Kaplan-Meier median, a run that never did censored at
  its own end time.
* :func:`pairwise`: every pair of configurations in a table compared by Welch's t test,
  Holm-corrected over the table's comparisons.
* :func:`performance_profile`: Dolan & More (Math. Programming 91, 2002): for each solver the
  fraction of problems it solves within a factor tau of the best solver's time.
* :func:`sensitivity`: a value against the learning rate per group, with seed bands.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from toolkit.sweeps import stats

__all__ = [
    "best_lr",
    "over_seeds",
    "pairwise",
    "performance_profile",
    "sensitivity",
    "survival",
    "time_to_target",
]


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


def over_seeds(
    summary: pd.DataFrame,
    value: str,
    by: Sequence[str],
    *,
    higher_is_better: bool = True,
    confidence: float = 0.95,
    method: str = "t",
    seed: int = 0,
) -> pd.DataFrame:
    """Per configuration (the columns ``by``): ``n`` seeds (``n_finite`` of them with a finite
    value), ``mean``, ``best``, ``worst`` (by ``higher_is_better``), and ``ci_low``/``ci_high``,
    an interval of the mean labelled in ``interval`` (:func:`toolkit.sweeps.stats.interval`:
    ``"t 95%"``, Student-t, by default; ``"bootstrap 95%"`` with ``method="bootstrap"``, seeded,
    from 10 values; ``"range"`` with no interval below 5 values). NaN values (a run that never
    reached a target) count as the worst possible in ``worst`` and are left out of the mean and
    the interval: for a time to target, :func:`survival` treats them as censored instead."""
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
        low, high, label = stats.interval(fin, confidence, method=method, seed=seed)
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
                "interval": label,
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
    group's lr with a missing (NaN) mean cannot win. ``lr_status``: ``"edge"`` where the pick is
    the smallest or largest lr the group ran (the optimum may lie beyond the grid), else
    ``"interior"``. The pick and its numbers come from the same seeds, so its mean is biased
    upwards (the winner's curse); :mod:`toolkit.sweeps.protocol` selects and reports on disjoint
    seeds."""
    table = over_seeds(summary, value, [*by, "lr"], higher_is_better=higher_is_better)
    grid = ", ".join(f"{lr:g}" for lr in sorted(summary["lr"].dropna().unique()))
    rows = []
    for _, g in table.groupby(list(by), sort=True, dropna=False):
        ran = g["lr"]
        g = g.dropna(subset=["mean"])
        if g.empty:
            continue
        pick = g.loc[g["mean"].idxmax() if higher_is_better else g["mean"].idxmin()].copy()
        edge = pick["lr"] in (ran.min(), ran.max())
        pick["lr_status"] = "edge" if edge else "interior"
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
    of a sensitivity curve) and the interval of the mean (:func:`over_seeds`)."""
    return over_seeds(summary, value, [*by, x], higher_is_better=higher_is_better)


def survival(
    evaluations: pd.DataFrame,
    runs: pd.DataFrame,
    target: float,
    metric: str,
    by: Sequence[str],
    *,
    higher_is_better: bool = True,
) -> pd.DataFrame:
    """Time to ``target`` per configuration (the columns ``by`` of ``runs``, one row per run
    with its ``run_id``) as a survival quantity: a run reaches the target at the first
    evaluation where ``metric`` does (``time_to_target``); a run that never does is censored at
    its own end, the ``time`` of its last evaluation (a diverged run at its divergence).

    Columns: ``n``, ``reached``, ``fraction`` (reached / n), ``median`` (Kaplan-Meier, NaN when
    it lies beyond the last time observed), ``censored``, ``censored_max`` (the latest
    censoring time: the median is then reported as > it) and ``target``, ``metric``. Runs
    without evaluations (one that raised) are left out and counted in ``missing``."""
    ev = evaluations[evaluations["run_id"].isin(runs["run_id"])] if len(evaluations) else None
    if ev is not None and len(ev):
        hit = time_to_target(ev, target, metric, higher_is_better=higher_is_better)
        end = ev.groupby("run_id")["time"].max()
    else:
        hit = end = pd.Series(dtype=float)
    rows = []
    for key, g in runs.groupby(list(by), sort=True, dropna=False):
        have = g[g["run_id"].isin(end.index)]
        t_hit = hit.reindex(have["run_id"]).to_numpy(dtype=float)
        reached = np.isfinite(t_hit)
        times = np.where(reached, t_hit, end.reindex(have["run_id"]).to_numpy(dtype=float))
        km = stats.kaplan_meier(times, reached)
        key = key if isinstance(key, tuple) else (key,)
        censored = km["censored_at"]
        rows.append(
            {
                **dict(zip(by, key, strict=True)),
                "metric": metric,
                "target": target,
                "n": km["n"],
                "reached": km["reached"],
                "fraction": km["fraction"],
                "median": km["median"],
                "censored": len(censored),
                "censored_max": max(censored) if censored else np.nan,
                "missing": len(g) - len(have),
            }
        )
    return pd.DataFrame(rows)


def pairwise(
    summary: pd.DataFrame,
    value: str,
    by: str,
    *,
    table: Sequence[str] = (),
    alpha: float = 0.05,
    higher_is_better: bool = True,
) -> pd.DataFrame:
    """Every pair of the configurations ``by`` within each table (the columns ``table``),
    compared on the finite values of ``value``: Welch's two-sided t test
    (:func:`toolkit.sweeps.stats.welch`), p-values Holm-adjusted over the pairs of one table
    (``p_holm``); ``separated`` only where the adjusted p <= ``alpha`` (and then ``leader``
    names the better by its mean). Columns: ``a``, ``b``, ``mean_a``, ``mean_b``, ``n_a``,
    ``n_b``, ``t``, ``df``, ``p``, ``p_holm``, ``separated``, ``leader``, ``test``."""
    rows = []
    groups = summary.groupby(list(table), sort=True, dropna=False) if table else [((), summary)]
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        values = {name: s[value].to_numpy(dtype=float) for name, s in g.groupby(by, sort=True)}
        names = list(values)
        pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
        tests = [stats.welch(values[a], values[b]) for a, b in pairs]
        adjusted = stats.holm([p for _, _, p in tests])
        m = int(np.isfinite(adjusted).sum())
        for (a, b), (t, df, p), p_holm in zip(pairs, tests, adjusted, strict=True):
            xa, xb = values[a][np.isfinite(values[a])], values[b][np.isfinite(values[b])]
            mean_a = float(xa.mean()) if len(xa) else np.nan
            mean_b = float(xb.mean()) if len(xb) else np.nan
            separated = bool(np.isfinite(p_holm) and p_holm <= alpha)
            better_a = mean_a > mean_b if higher_is_better else mean_a < mean_b
            rows.append(
                {
                    **dict(zip(table, key, strict=True)),
                    "a": a,
                    "b": b,
                    "mean_a": mean_a,
                    "mean_b": mean_b,
                    "n_a": len(xa),
                    "n_b": len(xb),
                    "t": t,
                    "df": df,
                    "p": p,
                    "p_holm": p_holm,
                    "separated": separated,
                    "leader": (a if better_a else b) if separated else "",
                    "test": f"Welch t, Holm over {m} comparisons, alpha {alpha:g}",
                }
            )
    return pd.DataFrame(rows)
