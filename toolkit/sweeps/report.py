"""A sweep's report: the tables of :mod:`toolkit.sweeps.analysis` and the standard figures of
:mod:`toolkit.plots.sweeps`, written to ``DIR/report`` from what is on disk.

Per workload (each has one main metric and its direction): the metric's final value and time to
target over seeds per configuration (mean, best, worst, bootstrap interval), the best lr per
configuration under the stated protocol, learning-rate sensitivity, and figures of accuracy (or
loss) against simulated wall-clock time at each configuration's best lr, sensitivity, time to
target and a heatmap of the final metric over scheme and lr. Across workloads: a performance
profile of time to target. Runs that raised are listed with the last line of their traceback.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from toolkit.checks import ConfigError
from toolkit.sweeps import analysis, store

__all__ = ["config_groups", "report"]

# Summary columns that are results, not config fields.
_RESULTS = {
    "run_id",
    "state",
    "status",
    "updates",
    "metric",
    "target",
    "final",
    "best",
    "time_to_target",
    "wall_seconds",
    "label",
}


def config_groups(summary: pd.DataFrame, *, exclude: tuple[str, ...] = ("seed",)) -> list[str]:
    """The columns that name a configuration in a sweep: ``workload``, ``label`` (the scheme and
    its fields) and every other config field that takes more than one value, except
    ``exclude``."""
    varied = [
        c
        for c in summary.columns
        if c not in _RESULTS
        and c not in exclude
        and c != "workload"
        and c != "scheme"
        and not c.startswith("scheme.")
        and summary[c].astype(str).nunique() > 1
    ]
    return ["workload", "label", *varied]


def report(out: str | Path, dest: str | Path | None = None) -> dict[str, pd.DataFrame]:
    """Write the report of the sweep in ``out`` to ``dest`` (default ``out/report``): CSV
    tables and PDF + PNG figures. Returns the tables by name."""
    from toolkit.plots import (
        plot_curves,
        plot_heatmap,
        plot_sensitivity,
        plot_time_to_target,
        save_figure,
    )

    out = Path(out)
    evaluations, summary = store.load(out)  # before making dest: a non-sweep is refused
    if summary.empty:
        raise ConfigError("out", f"out: no runs in {str(out)!r}")
    dest = Path(dest) if dest is not None else out / "report"
    dest.mkdir(parents=True, exist_ok=True)
    tables: dict[str, pd.DataFrame] = {"summary": summary}
    failed = summary[summary["state"] == "failed"]
    if len(failed):
        columns = ["run_id", "label", "error", "error_type", "error_field"]
        tables["failures"] = failed[[c for c in columns if c in failed]]
    done = summary[summary["state"] == "complete"]
    if done.empty:
        _write(tables, dest)
        return tables
    groups = config_groups(done)
    finals, times, lrs, sens, best_runs = [], [], [], [], []
    for workload, runs in done.groupby("workload", sort=True):
        higher = runs["metric"].iloc[0] == "test_accuracy"
        metric = runs["metric"].iloc[0]
        final = analysis.over_seeds(runs, "final", groups, higher_is_better=higher)
        finals.append(final.assign(metric=metric))
        ttt = analysis.over_seeds(runs, "time_to_target", groups, higher_is_better=False)
        times.append(ttt)
        stem = dest / str(workload)
        if "lr" in runs and runs["lr"].notna().all():
            by = [g for g in groups if g != "lr"]
            best = analysis.best_lr(runs, "final", by, higher_is_better=higher)
            lrs.append(best.assign(metric=metric))
            s = analysis.sensitivity(runs, "final", by, higher_is_better=higher)
            sens.append(s)
            s_label = s.assign(label=s[by[1:]].astype(str).agg(" ".join, axis=1))
            save_figure(plot_sensitivity(s_label, ylabel=f"final {metric}"), f"{stem}_lr")
            save_figure(plot_heatmap(runs, "final", "lr", "label"), f"{stem}_heatmap")
            chosen = runs.merge(best[[*by, "lr"]], on=[*by, "lr"])
        else:
            chosen = runs
        best_runs.append(chosen)
        curves = evaluations[evaluations["run_id"].isin(chosen["run_id"])]
        if len(curves):
            curves = curves.merge(chosen[["run_id", "label"]], on="run_id")
            fig = plot_curves(curves, y=metric, by="label", title=f"{workload}: best lr each")
            save_figure(fig, f"{stem}_curves")
        reached = ttt.dropna(subset=["mean"])
        if len(reached):
            reached = reached.assign(label=reached[groups[1:]].astype(str).agg(" ".join, axis=1))
            save_figure(plot_time_to_target(reached), f"{stem}_time_to_target")
    tables["final"] = pd.concat(finals, ignore_index=True)
    tables["time_to_target"] = pd.concat(times, ignore_index=True)
    if lrs:
        tables["best_lr"] = pd.concat(lrs, ignore_index=True)
        tables["sensitivity"] = pd.concat(sens, ignore_index=True)
    if done["workload"].nunique() > 1:  # each configuration at its best lr on each workload
        chosen = pd.concat(best_runs, ignore_index=True)
        solver = [g for g in groups[1:] if g != "lr"]
        chosen = chosen.assign(solver=chosen[solver].astype(str).agg(" ".join, axis=1))
        tables["performance_profile"] = analysis.performance_profile(chosen, solver="solver")
    _write(tables, dest)
    return tables


def _write(tables: dict[str, pd.DataFrame], dest: Path) -> None:
    for name, table in tables.items():
        table.to_csv(dest / f"{name}.csv", index=False)
