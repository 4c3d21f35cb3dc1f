"""A sweep's report: the tables of :mod:`toolkit.sweeps.analysis` and the standard figures of
:mod:`toolkit.plots.sweeps`, written to ``DIR/report`` from what is on disk.

Per workload (each has one main metric and its direction): the metric's final value over seeds
per configuration (mean, best, worst, a Student-t interval from 5 seeds, the range below), time
to the workload's target as a survival quantity (fraction reached, Kaplan-Meier median, censored
runs), the best lr per configuration under the stated protocol (with ``edge`` where it is an end
of the grid), learning-rate sensitivity, and figures of accuracy (or loss) against simulated
wall-clock time at each configuration's best lr, sensitivity, time to target and a heatmap of
the final metric over scheme and lr. Across workloads: a performance profile of time to target.
Runs that raised are listed with the last line of their traceback.

A sweep run under a ``[protocol]`` (:mod:`toolkit.sweeps.protocol`) gets the protocol's report
instead (:func:`protocol_report`): every lr search with its status, each protocol's setting per
cell, the evaluation seeds' final values with their intervals, time to target with censoring,
and the pairwise tests, every row naming its protocol; ``warnings`` lists every capped cell.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from toolkit.checks import ConfigError
from toolkit.sweeps import analysis, store

__all__ = ["config_groups", "protocol_report", "report"]

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
    "stopped",
    "label",
    "error",
    "role",
    "protocols",
    "lr_status",
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
    spec = store._spec(out)
    if spec is not None and spec.protocol is not None:
        return protocol_report(spec, evaluations, summary, dest)
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
        target = runs["target"].dropna()
        ttt = pd.DataFrame()
        if len(target):
            ttt = analysis.survival(
                evaluations, runs, float(target.iloc[0]), metric, groups, higher_is_better=higher
            )
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
        if len(ttt):
            ttt = ttt.assign(label=ttt[groups[1:]].astype(str).agg(" ".join, axis=1))
            save_figure(plot_time_to_target(ttt), f"{stem}_time_to_target")
    tables["final"] = pd.concat(finals, ignore_index=True)
    if times:
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


def protocol_report(
    spec,
    evaluations: pd.DataFrame,
    summary: pd.DataFrame,
    dest: str | Path,
    *,
    figures: bool = True,
) -> dict[str, pd.DataFrame]:
    """The report of a sweep run under ``spec``'s ``[protocol]`` (module docstring): its tables
    by name, written to ``dest`` as CSV with figures per workload (the lr searches on tuning
    seeds; each protocol's evaluation curves and time to target) unless ``figures`` is False
    (a caller that draws its own: each figure is drawn twice, as PDF and PNG).

    Tables: ``searches`` (each lr search: the lrs run, the mean tuning score at each (a shared
    search: its mean over the schemes; the worst value, +-inf, where a run diverged), the best,
    its status and the extension steps below and above the grid), ``settings`` (per protocol
    and cell: the lr chosen on tuning seeds, its status and the rule that chose it),
    ``evaluation`` (per setting, over evaluation seeds only: the final value of the main metric;
    diverged and failed runs counted and left out of the mean; a Student-t interval, or "range"
    below 5 seeds; ``stopped``: how many runs ended at a plateau, a target or their budget),
    ``targets`` (per workload: the target and how it was set), ``time_to_target`` (per setting:
    fraction reached, Kaplan-Meier median, censored runs), ``pairwise`` (per protocol and
    comparison: Welch's t, Holm-corrected), ``warnings`` (capped cells, an unfinished protocol)
    and ``failures``."""
    from toolkit.sweeps.protocol import _comparison_key, outcomes_of, plan_protocol

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    protocol = spec.protocol
    plan = plan_protocol(spec, outcomes_of(summary, protocol.score))
    tables: dict[str, pd.DataFrame] = {"summary": summary}
    failed = summary[summary["state"] == "failed"]
    if len(failed):
        tables["failures"] = failed[["run_id", "label", "error"]].reset_index(drop=True)
    cells = {c.id(): c for s in plan.searches for c in s.cells}
    cells.update({s.cell.id(): s.cell for s in plan.settings})
    columns = _cell_columns(list(cells.values()))
    named = {}
    for cell in cells.values():
        key = _comparison_key(cell, protocol.tune)
        fields = {k: v for k, v in columns[cell.id()].items() if k not in ("label", *protocol.tune)}
        named[key] = ", ".join(f"{v}" if k == "workload" else f"{k}={v}" for k, v in fields.items())

    metric_of = {}
    if "metric" in summary:
        metric_of = dict(summary.dropna(subset=["metric"]).groupby("workload")["metric"].first())
    searches = []
    for s in plan.searches:
        first = dict(columns[s.cells[0].id()])
        first["label"] = " + ".join(str(c.scheme) for c in s.cells)
        sign = 1 if metric_of.get(s.cells[0].workload) == "test_accuracy" else -1
        searches.append(
            {
                "search": s.kind,
                **first,
                "lrs": " ".join(f"{lr:g}" for lr in s.lrs),
                "score": " ".join(f"{sign * v:.4g}" for v in s.objective),
                "best_lr": s.best,
                "lr_status": s.status,
                "below": s.below,
                "above": s.above,
            }
        )
    tables["searches"] = pd.DataFrame(searches)
    settings = pd.DataFrame(
        [
            {
                "protocol": s.protocol,
                **columns[s.cell.id()],
                "comparison": named[s.comparison],
                "lr": s.lr,
                "lr_status": s.status,
                "rule": s.rule,
            }
            for s in plan.settings
        ]
    )
    tables["settings"] = settings
    warnings = plan.warnings()
    if not plan.done:
        warnings.append(
            f"the protocol is not finished: {len(plan.needed)} run(s) of its next step are "
            "missing; run the spec again (only what is missing runs)"
        )
    tables["warnings"] = pd.DataFrame({"warning": warnings})

    # the evaluation runs of each setting (a run may evaluate the settings of several protocols)
    by_id = summary.set_index("run_id")
    parts = []
    for i, s in enumerate(plan.settings):
        ids = [c.id() for c in s.configs(protocol.evaluation_seeds) if c.id() in by_id.index]
        rows = by_id.loc[ids].reset_index()
        parts.append(rows.assign(setting=i, protocol=s.protocol))
    runs = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if runs.empty:  # no evaluation run yet
        _write(tables, dest)
        return tables
    if "status" not in runs:
        runs["status"] = None
    ok = (runs["state"] == "complete") & (runs["status"] == "ok")
    runs["value"] = runs["final"].where(ok) if "final" in runs else float("nan")
    meta = settings.reset_index(names="setting")
    evaluation = analysis.over_seeds(runs, "value", ["setting"])
    if "stopped" not in runs:
        runs["stopped"] = None
    counts = runs.groupby("setting").agg(
        diverged=("status", lambda x: int((x == "diverged").sum())),
        failed=("state", lambda x: int((x == "failed").sum())),
        stopped=("stopped", _reasons),
    )
    evaluation = meta.merge(evaluation, on="setting", how="left").merge(
        counts, on="setting", how="left"
    )
    for column in ("n", "n_finite", "diverged", "failed"):  # a setting not run yet: none
        evaluation[column] = evaluation[column].fillna(0).astype(int)
    evaluation["metric"] = evaluation["workload"].map(metric_of)
    tables["evaluation"] = evaluation.drop(columns="setting")

    targets, times, pairs = [], [], []
    for workload, ev in evaluation.groupby("workload", sort=True):
        given = protocol.targets.get(workload)
        main = metric_of.get(workload, "test_accuracy")
        if given:
            ((metric, target),) = given.items()
            how = "given in the spec"
        else:
            metric = main
            higher = metric == "test_accuracy"
            means = ev["mean"].dropna()
            if means.empty:
                continue
            best = means.max() if higher else means.min()
            f = protocol.target_fraction
            target = f * best if higher else best / f
            lead = ev.loc[means.idxmax() if higher else means.idxmin()]
            how = (
                f"{f:g} x best evaluation mean final {metric} ({best:.4g}, {lead['protocol']} "
                f"{lead['label']})"
                if higher
                else f"best evaluation mean final {metric} ({best:.4g}, {lead['protocol']} "
                f"{lead['label']}) / {f:g}"
            )
        higher = metric == "test_accuracy"
        targets.append({"workload": workload, "metric": metric, "target": target, "how": how})
        wl_runs = runs[runs["workload"] == workload]
        t = analysis.survival(
            evaluations, wl_runs, float(target), metric, ["setting"], higher_is_better=higher
        )
        times.append(meta.merge(t, on="setting").drop(columns="setting"))
        named_runs = wl_runs.assign(comparison=wl_runs["setting"].map(meta["comparison"]))
        pairs.append(
            analysis.pairwise(
                named_runs,
                "value",
                "label",
                table=["protocol", "comparison"],
                alpha=protocol.alpha,
                higher_is_better=main == "test_accuracy",
            ).assign(value=f"final {main}")
        )
    tables["targets"] = pd.DataFrame(targets)
    if times:
        tables["time_to_target"] = pd.concat(times, ignore_index=True)
    if pairs:
        tables["pairwise"] = pd.concat(pairs, ignore_index=True)

    if figures:
        _protocol_figures(tables, evaluations, summary, runs, metric_of, dest)
    _write(tables, dest)
    return tables


def _protocol_figures(tables, evaluations, summary, runs, metric_of, dest: Path) -> None:
    """The figures of :func:`protocol_report`: the lr searches (tuning seeds), then each
    protocol's runs (evaluation seeds)."""
    from toolkit.plots import plot_curves, plot_sensitivity, plot_time_to_target, save_figure

    times = "time_to_target" in tables
    tuning = summary[summary["role"] == "tuning"]
    for workload, g in tuning.groupby("workload", sort=True):
        by = [c for c in config_groups(g) if c not in ("workload", "lr")]
        g = g.assign(value=g["final"].where(g["status"] == "ok"))
        curve = analysis.sensitivity(g, "value", by)
        curve = curve.assign(label=curve[by].astype(str).agg(" ".join, axis=1))
        ylabel = f"final {metric_of.get(workload, '')} (tuning seeds)"
        save_figure(plot_sensitivity(curve, ylabel=ylabel), dest / f"{workload}_lr_search")
    for (workload, name), g in runs.groupby(["workload", "protocol"], sort=True):
        stem = dest / f"{workload}_{name}"
        curves = evaluations[evaluations["run_id"].isin(g["run_id"])] if len(evaluations) else []
        if len(curves):
            curves = curves.merge(g[["run_id", "label"]].drop_duplicates(), on="run_id")
            metric = metric_of.get(workload, "test_accuracy")
            title = f"{workload}, protocol {name}: evaluation seeds"
            save_figure(plot_curves(curves, y=metric, by="label", title=title), f"{stem}_curves")
        if times:
            t = tables["time_to_target"]
            t = t[(t["workload"] == workload) & (t["protocol"] == name)]
            if len(t):
                save_figure(plot_time_to_target(t), f"{stem}_time_to_target")


def _reasons(stopped: pd.Series) -> str:
    """How many runs ended for each reason: ``"plateau 3, budget 2"``."""
    counts = stopped.dropna().value_counts()
    return ", ".join(f"{reason} {n}" for reason, n in counts.items())


def _cell_columns(cells: list) -> dict[str, dict]:
    """Per cell id: ``workload``, ``label`` (the scheme), ``machines`` and every other config
    field whose value differs between the cells."""
    flat = {c.id(): store._flat(c.to_dict()) for c in cells}
    keys = sorted({k for f in flat.values() for k in f})
    varied = [
        k
        for k in keys
        if k not in ("workload", "scheme", "seed", "lr")
        and not k.startswith("scheme.")
        and len({repr(f.get(k)) for f in flat.values()}) > 1
    ]
    out = {}
    for c in cells:
        f = flat[c.id()]
        out[c.id()] = {
            "workload": c.workload,
            "label": str(c.scheme),
            "machines": c.scheme.rule.machines,
            **{k: f.get(k) for k in varied},
        }
    return out


def _write(tables: dict[str, pd.DataFrame], dest: Path) -> None:
    for name, table in tables.items():
        table.to_csv(dest / f"{name}.csv", index=False)
