# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 2. Sync with backups or async: which trains faster on a real model?
#
# Chen et al. (2016, 2017) find that synchronous SGD with a few backup workers beats asynchronous
# SGD both in time to converge and in final accuracy (arXiv 1604.00981v3, Sec. 4.2, Figs. 7-8;
# in Fig. 8, Sync converges 6 h and 18 h sooner at 106 and 212 workers and 3 h later at 53).
# Here Sync(n), Backup(n - 1, 1), Async(n) and six other schemes train the MNIST-1D MLP and a
# CNN on scikit-learn's digits on the same simulated cluster (shifted-exponential step times, a
# parameter server at 1 Gbit/s) at 8 and 16 machines, under the comparison protocol
# (`toolkit.sweeps.protocol`; the study is `sweeps/paper.toml`, its tables `data/paper`):
#
# * each cell (workload, cluster, scheme, momentum) searches its learning rate on a log grid
#   extended by factors of 3 until the best is interior, against a divergence wall, or capped,
#   on two *tuning* seeds; momentum (0 or 0.9, heavy ball) is chosen on the same seeds;
# * protocol **tuned** gives every scheme its own best; protocol **scaled** follows Chen et al.
#   (App. A.2/A.3): the synchronous family (Sync, Backup, Delayed) gets the tuned asynchronous
#   rate times the number of gradients each update averages, with Async's momentum;
# * every run stops at a plateau of test accuracy (no gain above half a point over ten
#   evaluations) or at a maximum simulated budget; the chosen settings run on five
#   *evaluation* seeds, disjoint from the tuning seeds, and only those are reported.
#
# Plateau accuracy is the final test accuracy of a run (where it stopped); a run that diverged
# scores 0 and is counted. Intervals are Student-t 95 % over the five evaluation seeds; pairs are
# compared by Welch's t test, Holm-corrected over the pairs of each (protocol, workload,
# cluster) table; time to target is a survival quantity (below).

# %%
import json

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats

from toolkit.notebook import Output, paper_sweep, repo_root
from toolkit.plots import plot_curves
from toolkit.sweeps import over_seeds, pairwise
from toolkit.sweeps.stats import holm, kaplan_meier

out = Output("02_sync_vs_async")
study = paper_sweep()  # data/paper, checked against sweeps/paper.toml
spec, protocol = study.spec, study.spec.protocol
summary, settings, runs, evaluations = study.summary, study.settings, study.runs, study.evaluations
budget = study.budget
cells = ["workload", "machines"]
order = [
    "Sync",
    "Backup",
    "Async",
    "KAsync",
    "KBatchAsync",
    "Delayed",
    "EASGD",
    "EAMSGD",
    "LocalSGD",
]
order = [s for s in order if s in set(settings["name"])]
protocols = [p for p in ("tuned", "scaled") if p in set(settings["protocol"])]
plateau = spec.base["plateau"]
out.number(
    runs=len(summary),
    tuning_runs=int((summary["role"] == "tuning").sum()),
    evaluation_runs=int((summary["role"] == "evaluation").sum()),
    tuning_seeds=list(protocol.tuning_seeds),
    evaluation_seeds=list(protocol.evaluation_seeds),
    budget=budget,
    evaluations=int(spec.base["evaluations"]),
    eval_interval=budget / spec.base["evaluations"],
    plateau_window=int(plateau["window"]),
    plateau_delta=float(plateau["delta"]),
    lr_grid=sorted(float(v) for v in spec.grid["lr"]),
    factor=protocol.factor,
    max_extensions=protocol.max_extensions,
    momenta=sorted(float(v) for v in spec.grid["momentum"]),
    batch_size=int(spec.base["batch_size"]),
    compute=spec.base["compute"],
    comm=spec.base["comm"],
    workloads=sorted(summary["workload"].unique()),
    machines=sorted(int(m) for m in summary["machines"].unique()),
    schemes=order,
    cells=len(study.searches.groupby(["workload", "machines", "label", "momentum"])),
    protocols=protocols,
    target_fraction=protocol.target_fraction,
)

# %% [markdown]
# ## The study's cost: runs and wall time
#
# The runner's log (`data/paper/log.jsonl`, one line per run started and ended, with its time)
# gives the study's wall time as the union of the intervals during which at least one run was in
# progress (a study run in parts does not count the pauses between them); the runs' own
# `wall_seconds` add up to the process time spent in runs. `data/paper/host.json` records the
# machine the study ran on.

# %%
log = pd.read_json(repo_root() / "data" / "paper" / "log.jsonl", lines=True)
spans = log.pivot_table(index="id", columns="event", values="t", aggfunc="max").dropna()
spans = spans[spans["end"] >= spans["start"]].sort_values("start")
busy, reach = 0.0, -np.inf
for start, end in spans[["start", "end"]].itertuples(index=False):
    busy += max(0.0, end - max(start, reach))
    reach = max(reach, end)
host = json.loads((repo_root() / "data" / "paper" / "host.json").read_text())
out.number(
    wall_hours=busy / 3600,
    elapsed_hours=(log["t"].max() - log["t"].min()) / 3600,
    run_hours=float(summary["wall_seconds"].sum()) / 3600,
    study_cpu=host["cpu"],
    study_cores=host["cores"],
    study_jobs=host["jobs"],
)

# %% [markdown]
# ## The chosen settings and their status
#
# `interior`: the best lr has run neighbours on both sides that score lower; `wall`: the next
# larger lr diverged on every tuning seed; `capped`: still at an end of the search after the
# stated number of extension steps (the optimum may lie beyond).

# %%
chosen = settings.assign(
    scheme=pd.Categorical(settings["name"], order, ordered=True),
    protocol=pd.Categorical(settings["protocol"], protocols, ordered=True),
).sort_values(["protocol", *cells, "scheme"])
chosen = out.table(
    "settings",
    chosen[["protocol", *cells, "name", "label", "lr", "momentum", "lr_status", "rule"]],
)
status_counts = chosen.groupby(["protocol", "lr_status"], observed=True).size()
capped = chosen[chosen["lr_status"] == "capped"]
out.number(
    statuses={
        p: {s: int(n) for s, n in status_counts.loc[p].items()}
        for p in protocols
        if p in status_counts.index.get_level_values(0)
    },
    capped=[
        f"{r.name} on {r.workload} at {r.machines} machines ({r.protocol}, lr {r.lr:g})"
        for r in capped.itertuples()
    ],
)
chosen.pivot_table(
    index=[*cells, "name"], columns="protocol", values="lr", observed=True, sort=False
)

# %% [markdown]
# ## Plateau accuracy on the evaluation seeds

# %%
by = ["protocol", *cells, "name"]
acc = over_seeds(runs, "score", by)
extra = runs.groupby(by).agg(
    diverged=("diverged", "sum"),
    plateau=("stopped", lambda s: int((s == "plateau").sum())),
    at_budget=("stopped", lambda s: int((s == "budget").sum())),
    updates=("updates", "mean"),
)
acc = acc.merge(extra.reset_index(), on=by).merge(
    settings[[*by, "lr", "momentum", "lr_status"]], on=by
)
acc = out.table("accuracy", acc)

# the target of each workload: the stated fraction of the best mean plateau accuracy that any
# chosen setting reaches (under either protocol)
lead = acc.loc[acc.groupby("workload")["mean"].idxmax()].set_index("workload")
targets = (protocol.target_fraction * lead["mean"]).rename("target")
out.number(
    targets=targets.to_dict(),
    target_from={
        w: f"{r['name']} ({r['protocol']}, {r['machines']} machines)" for w, r in lead.iterrows()
    },
)
out.table("targets", pd.DataFrame({"target": targets, "best": lead["mean"]}).reset_index())

colors = dict(zip(order, [f"C{i}" for i in range(len(order))], strict=True))
fig = Figure(figsize=(11, 7), layout="constrained")
panels = runs[cells].drop_duplicates().sort_values(cells).itertuples(index=False)
axs = fig.subplots(2, 2).ravel()
for ax, (w, m) in zip(axs, panels, strict=True):
    edge = ax.get_yaxis_transform()  # x in axes coordinates, y in data
    for j, p in enumerate(protocols):
        a = acc[(acc["protocol"] == p) & (acc["workload"] == w) & (acc["machines"] == m)]
        a = a.set_index("name").reindex(order)
        y = np.arange(len(order)) + (j - 0.5) * 0.3
        err = np.vstack([a["mean"] - a["ci_low"], a["ci_high"] - a["mean"]])
        ax.errorbar(
            a["mean"],
            y,
            xerr=err,
            fmt="o" if p == "tuned" else "s",
            ms=4,
            capsize=2,
            color="k" if p == "tuned" else "C3",
            label=f"{p}: mean, t 95 %",
        )
        r = runs[(runs["protocol"] == p) & (runs["workload"] == w) & (runs["machines"] == m)]
        ok = r[~r["diverged"]]
        pos = dict(zip(order, y, strict=True))
        ax.plot(
            ok["score"],
            ok["name"].map(pos),
            "|",
            ms=6,
            alpha=0.6,
            color="k" if p == "tuned" else "C3",
        )
        bad = r[r["diverged"]]
        if len(bad):  # at the panel's left edge: scored 0, counted in the mean and interval
            ax.plot(
                np.full(len(bad), 0.01),
                bad["name"].map(pos),
                "x",
                color="C3",
                transform=edge,
                clip_on=False,
                label="a seed diverged (scored 0)",
            )
    ax.set_yticks(np.arange(len(order)), order, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(targets[w], ls=":", c="gray", lw=0.8)
    ax.set_title(f"{w}, {m} machines", fontsize=9)
    ax.set_xlabel("plateau test accuracy (evaluation seeds)")
axs[0].legend(fontsize=7)
out.figure("accuracy", fig)
acc.pivot_table(index=[*cells, "name"], columns="protocol", values="mean", sort=False)

# %% [markdown]
# ## Time to target as a survival quantity
#
# A run reaches the target at its first evaluation at or above it (evaluations every
# `budget / evaluations` simulated seconds). A run that never reaches it (stopped at its plateau
# below the target, diverged, or at the budget) is counted as not reaching it within the maximum
# budget: it is censored at the budget, so the Kaplan-Meier median
# (`toolkit.sweeps.stats.kaplan_meier`) is the time by which half of all the runs reached the
# target, and lies beyond the budget when fewer than half did; never a mean over the runs that
# reached it. Pairs of schemes are compared by the log-rank test (`scipy.stats.logrank`),
# Holm-corrected over the tests of one protocol.


# %%
def reach_times(r: pd.DataFrame, target: float) -> tuple[np.ndarray, np.ndarray]:
    """(times, reached) of the runs ``r``: the first evaluation time at or above ``target``, or
    the budget (censored) for a run that never got there."""
    ev = evaluations[evaluations["run_id"].isin(r["run_id"])]
    hit = ev[ev["test_accuracy"] >= target].groupby("run_id")["time"].min()
    t = hit.reindex(r["run_id"]).to_numpy(float)
    reached = np.isfinite(t)
    return np.where(reached, t, budget), reached


rows = []
for key, r in runs.groupby(by, sort=False):
    t, reached = reach_times(r, targets[key[1]])
    km = kaplan_meier(t, reached)
    rows.append(
        {
            **dict(zip(by, key, strict=True)),
            "target": targets[key[1]],
            "n": km["n"],
            "reached": km["reached"],
            "fraction": km["fraction"],
            "median": km["median"],
            "censored": len(km["censored_at"]),
        }
    )
ttt = out.table("time_to_target", pd.DataFrame(rows))

fig = Figure(figsize=(11, 7), layout="constrained")
axs = fig.subplots(2, 2, sharey=True).ravel()
focus = ["Sync", "Backup", "Async"]
panels = runs[cells].drop_duplicates().sort_values(cells).itertuples(index=False)
for ax, (w, m) in zip(axs, panels, strict=True):
    for p, ls in zip(protocols, ["-", "--"], strict=False):
        for name in focus:
            r = runs[
                (runs["protocol"] == p)
                & (runs["workload"] == w)
                & (runs["machines"] == m)
                & (runs["name"] == name)
            ]
            t, reached = reach_times(r, targets[w])
            steps = np.sort(t[reached])
            ax.step(
                np.r_[0, steps, budget],
                np.r_[0, np.arange(1, len(steps) + 1), len(steps)] / len(t),
                where="post",
                ls=ls,
                color=colors[name],
                label=f"{name} ({p})",
            )
    ax.set(xlim=(0, budget), title=f"{w}, {m} machines, target {targets[w]:.3f}")
    ax.set_xlabel("simulated wall-clock time (s)")
    ax.set_ylabel("fraction of runs at the target")
    ax.title.set_fontsize(9)
axs[0].legend(fontsize=7)
out.figure("time_to_target", fig)
ttt.pivot_table(index=[*cells, "name"], columns="protocol", values="median", sort=False)

# %% [markdown]
# ## Pairwise tests
#
# Plateau accuracy: Welch's t test on the evaluation seeds for every pair of the nine schemes in
# each (protocol, workload, cluster) table, Holm-corrected over its pairs (36), "separated" only
# where the corrected p is at most 0.05. Time to target: the log-rank test for Sync and Backup
# against Async, Holm-corrected over the tests of one protocol.

# %%
tests = pairwise(runs, "score", "name", table=["protocol", *cells], alpha=protocol.alpha)
tests = out.table("pairwise", tests)

rows = []
for (p, w, m), r in runs.groupby(["protocol", *cells], sort=False):
    for name in ("Sync", "Backup"):
        a, b = r[r["name"] == name], r[r["name"] == "Async"]
        (ta, ra), (tb, rb) = reach_times(a, targets[w]), reach_times(b, targets[w])
        if ra.any() or rb.any():
            res = stats.logrank(
                stats.CensoredData(uncensored=ta[ra], right=ta[~ra]),
                stats.CensoredData(uncensored=tb[rb], right=tb[~rb]),
            )
            pvalue = float(res.pvalue)
        else:
            pvalue = np.nan  # neither reached the target: nothing to compare
        rows.append(
            {"protocol": p, "workload": w, "machines": m, "a": name, "b": "Async", "p": pvalue}
        )
logrank = pd.DataFrame(rows)
logrank["p_holm"] = logrank.groupby("protocol")["p"].transform(lambda s: holm(s.to_numpy()))
logrank["separated"] = logrank["p_holm"] <= protocol.alpha
out.table("logrank", logrank)

# %% [markdown]
# ## Sync and Backup against Async, and why
#
# For each protocol and cell: who leads in plateau accuracy and in time to target (only where
# the test separates them), and what separates the schemes: updates and gradients per simulated
# second (an update of Sync(n) averages n gradients, Backup(n - 1, 1) n - 1, Async 1), the
# staleness of the gradients applied (Async(n): n - 1 updates on average, a renewal argument,
# checked in notebook 04), and the accuracy each reaches after the same number of gradients
# (the statistical efficiency of a gradient, whatever its staleness).


# %%
def rate(r: pd.DataFrame) -> pd.Series:
    """Per run: updates per simulated second up to its last evaluation."""
    last = evaluations[evaluations["run_id"].isin(r["run_id"])].sort_values("time")
    last = last.groupby("run_id").last()
    return (last["update"] / last["time"]).reindex(r["run_id"])


def quorum(name: str, n: int) -> int:
    """Gradients averaged per update (Backup(n - 1, 1): n - 1; asynchronous schemes: 1)."""
    return {"Sync": n, "Backup": n - 1}.get(name, 1)


def accuracy_at_gradients(r: pd.DataFrame, name: str, grads: float) -> float:
    """Mean over the runs ``r`` that did not diverge of test accuracy after ``grads`` gradients
    (interpolated between evaluations; a run that stopped earlier holds its last value)."""
    per_update = quorum(name, int(r["machines"].iloc[0]))
    ev = evaluations[evaluations["run_id"].isin(r.loc[~r["diverged"], "run_id"])]
    ys = [
        np.interp(grads, g["update"] * per_update, g["test_accuracy"])
        for _, g in ev.dropna(subset=["test_accuracy"]).sort_values("update").groupby("run_id")
    ]
    return float(np.mean(ys)) if ys else np.nan


def faster(ttt_cell: pd.DataFrame, a: str, b: str) -> str:
    """The scheme with the earlier Kaplan-Meier median (beyond the budget when undefined), the
    larger reached fraction breaking ties."""
    key = {
        s: (np.nan_to_num(ttt_cell.loc[s, "median"], nan=np.inf), -ttt_cell.loc[s, "fraction"])
        for s in (a, b)
    }
    return a if key[a] < key[b] else b


acc_i = acc.set_index(["protocol", *cells, "name"])
tests_i = tests.set_index(["protocol", *cells, "a", "b"])  # pairs in alphabetical order
logrank_i = logrank.set_index(["protocol", *cells, "a"])
rows = []
for (p, w, m), r in runs.groupby(["protocol", *cells], sort=False):
    r3 = {name: r[r["name"] == name] for name in ("Sync", "Backup", "Async")}
    ups = {name: rate(g).mean() for name, g in r3.items()}
    grads = {name: ups[name] * quorum(name, m) for name in ups}
    # compare the accuracy per gradient at the fewest gradients any of the three runs applied
    common = min(float((g["updates"] * quorum(name, m)).min()) for name, g in r3.items())
    t_cell = ttt[(ttt["protocol"] == p) & (ttt["workload"] == w) & (ttt["machines"] == m)]
    t_cell = t_cell.set_index("name")
    for name in ("Sync", "Backup"):
        pair = tests_i.loc[(p, w, m, *sorted([name, "Async"]))]
        time_test = logrank_i.loc[(p, w, m, name)]
        rows.append(
            {
                "protocol": p,
                "workload": w,
                "machines": m,
                "scheme": name,
                "acc": acc_i.loc[(p, w, m, name), "mean"],
                "acc_async": acc_i.loc[(p, w, m, "Async"), "mean"],
                "acc_p_holm": pair["p_holm"],
                "acc_leader": pair["leader"] if pair["separated"] else "not separated",
                "median": t_cell.loc[name, "median"],
                "median_async": t_cell.loc["Async", "median"],
                "fraction": t_cell.loc[name, "fraction"],
                "fraction_async": t_cell.loc["Async", "fraction"],
                "time_p_holm": time_test["p_holm"],
                "time_leader": faster(t_cell, name, "Async")
                if time_test["separated"]
                else "not separated",
                "updates_per_s": ups[name],
                "updates_per_s_async": ups["Async"],
                "gradients_per_s": grads[name],
                "gradients_per_s_async": grads["Async"],
                "staleness_async": m - 1,
                "gradients_compared": common,
                "acc_at_gradients": accuracy_at_gradients(r3[name], name, common),
                "acc_at_gradients_async": accuracy_at_gradients(r3["Async"], "Async", common),
                "lr": acc_i.loc[(p, w, m, name), "lr"],
                "lr_async": acc_i.loc[(p, w, m, "Async"), "lr"],
            }
        )
versus = out.table("versus", pd.DataFrame(rows))


def pair(a: float, b: float, fmt: str) -> str:
    """``"a / b"``, a median beyond the budget as ``"> budget"``."""
    text = [f"> {budget:.0f}" if not np.isfinite(x) else format(x, fmt) for x in (a, b)]
    return " / ".join(text)


short = {"not separated": "n.s."}
out.table(
    "versus_paper",
    pd.DataFrame(
        {
            "protocol": versus["protocol"],
            "workload": versus["workload"],
            "n": versus["machines"],
            "scheme": versus["scheme"],
            "accuracy (vs Async)": [
                pair(a, b, ".3f") for a, b in zip(versus["acc"], versus["acc_async"], strict=True)
            ],
            "Welch, Holm": versus["acc_leader"].replace(short),
            "median time, s (vs Async)": [
                pair(a, b, ".0f")
                for a, b in zip(versus["median"], versus["median_async"], strict=True)
            ],
            "log-rank, Holm": versus["time_leader"].replace(short),
            "gradients/s (vs Async)": [
                pair(a, b, ".2f")
                for a, b in zip(
                    versus["gradients_per_s"], versus["gradients_per_s_async"], strict=True
                )
            ],
            "accuracy at equal gradients": [
                pair(a, b, ".3f")
                for a, b in zip(
                    versus["acc_at_gradients"], versus["acc_at_gradients_async"], strict=True
                )
            ],
        }
    ),
)
versus

# %% [markdown]
# ## Curves: accuracy against simulated time and against gradients computed
#
# Evaluation seeds of the chosen settings (mean, band = best to worst; a run that stopped at its
# plateau holds its last value; a diverged run is drawn alone and ends in a cross).

# %%
for w in sorted(runs["workload"].unique()):
    fig = Figure(figsize=(12, 7), layout="constrained")
    axs = fig.subplots(2, 3)
    for i, m in enumerate(sorted(runs["machines"].unique())):
        for j, p in enumerate(protocols):
            r = runs[(runs["protocol"] == p) & (runs["workload"] == w) & (runs["machines"] == m)]
            r = r[r["name"].isin(focus)]
            ev = evaluations.merge(r[["run_id", "name", "status"]], on="run_id")
            ev = ev.sort_values("name", key=lambda c: c.map(focus.index), kind="stable")
            plot_curves(
                ev,
                by="name",
                hold=True,
                colors=colors,
                budget=budget,
                ax=axs[i, j],
                title=f"{w}, {m} machines, protocol {p}",
            )
            axs[i, j].axhline(targets[w], ls=":", c="gray", lw=0.8)
            axs[i, j].set_ylabel("test accuracy")
        r = runs[(runs["protocol"] == "tuned") & (runs["workload"] == w) & (runs["machines"] == m)]
        r = r[r["name"].isin(focus)]
        ev = evaluations.merge(r[["run_id", "name", "status", "machines"]], on="run_id")
        ev["gradients"] = ev["update"] * [
            quorum(a, b) for a, b in zip(ev["name"], ev["machines"], strict=True)
        ]
        ev = ev.sort_values("name", key=lambda c: c.map(focus.index), kind="stable")
        plot_curves(
            ev,
            x="gradients",
            by="name",
            hold=True,
            colors=colors,
            ax=axs[i, 2],
            title=f"{w}, {m} machines, protocol tuned: against gradients",
        )
        axs[i, 2].set(xlabel="gradients applied", ylabel="test accuracy")
    out.figure(f"curves_{w}", fig)

# %% [markdown]
# ## Answer


# %%
def cases(frame: pd.DataFrame) -> str:
    """The cells of ``frame`` in words."""
    return "; ".join(f"{r.workload} at {r.machines} machines" for r in frame.itertuples())


def plural(n: int, one: str, many: str) -> str:
    return one if n == 1 else many


backup = versus[versus["scheme"] == "Backup"]
sync_v = versus[versus["scheme"] == "Sync"]
rows = []
for p in protocols:
    v = backup[backup["protocol"] == p]
    rows.append(
        {
            "protocol": p,
            "cases": len(v),
            "acc_ahead": int((v["acc_leader"] == "Backup").sum()),
            "acc_behind": int((v["acc_leader"] == "Async").sum()),
            "time_ahead": int((v["time_leader"] == "Backup").sum()),
            "time_behind": int((v["time_leader"] == "Async").sum()),
            "both_ahead": int(
                ((v["acc_leader"] == "Backup") & (v["time_leader"] == "Backup")).sum()
            ),
            "sync_acc_ahead": int((sync_v[sync_v["protocol"] == p]["acc_leader"] == "Sync").sum()),
            "sync_acc_behind": int(
                (sync_v[sync_v["protocol"] == p]["acc_leader"] == "Async").sum()
            ),
            "sync_time_ahead": int(
                (sync_v[sync_v["protocol"] == p]["time_leader"] == "Sync").sum()
            ),
            "sync_time_behind": int(
                (sync_v[sync_v["protocol"] == p]["time_leader"] == "Async").sum()
            ),
        }
    )
verdict = out.table("verdict", pd.DataFrame(rows)).set_index("protocol")
n_cases = int(verdict["cases"].iloc[0])
reproduced = [p for p in protocols if verdict.loc[p, "both_ahead"] == n_cases]
partly = [p for p in protocols if 0 < verdict.loc[p, "both_ahead"] < n_cases]
any_ahead = [p for p in protocols if verdict.loc[p, "acc_ahead"] + verdict.loc[p, "time_ahead"] > 0]
any_behind = [
    p for p in protocols if verdict.loc[p, "acc_behind"] + verdict.loc[p, "time_behind"] > 0
]
if reproduced:
    direction = (
        f"Chen et al.'s direction (synchronous SGD with backups ahead of asynchronous SGD in both "
        f"time to target and final accuracy) is reproduced in every cell under "
        f"{' and '.join(reproduced)}."
    )
elif partly:
    direction = (
        "Chen et al.'s direction (synchronous SGD with backups ahead of asynchronous SGD in both "
        "time to target and final accuracy) is reproduced in "
        + "; ".join(f"{verdict.loc[p, 'both_ahead']} of {n_cases} cells under {p}" for p in partly)
        + ", not in the others."
    )
elif any_ahead and not any_behind:
    direction = (
        "Chen et al.'s direction is reproduced only in part: where a test separates Backup from "
        "Async, Backup is ahead, but never in both time to target and final accuracy."
    )
elif any_behind and not any_ahead:
    direction = (
        "Chen et al.'s direction (synchronous SGD with backups ahead of asynchronous SGD) is not "
        "reproduced under either protocol: wherever a test separates the two, Async is ahead."
    )
elif any_behind:
    direction = (
        "Chen et al.'s direction is not reproduced as a rule: the tests separate the two in both "
        "directions, depending on the cell."
    )
else:
    direction = (
        "Chen et al.'s direction is not reproduced: no test separates Backup from Async under "
        "either protocol at five evaluation seeds."
    )

# why: throughput, the worth of a stale gradient, plateau against speed
speed = backup["gradients_per_s_async"] / backup["gradients_per_s"]
per_grad_ahead = int((backup["acc_at_gradients"] > backup["acc_at_gradients_async"]).sum())
tuned_b = backup[backup["protocol"] == "tuned"]
staleness = sorted(set(backup["staleness_async"]))
why = (
    f"Async applies {speed.min():.2f} to {speed.max():.2f} times as many gradients per simulated "
    f"second as Backup(n - 1, 1) (no update waits for a straggler), each stale by "
    f"{' or '.join(str(s) for s in staleness)} updates on average (n - 1). After the same number "
    f"of gradients, Backup's accuracy is the higher in {per_grad_ahead} of {len(backup)} "
    f"(protocol, cell) pairs: "
    + (
        "a stale gradient is worth less than a fresh one, so Async's speed is partly spent on "
        "staleness."
        if per_grad_ahead > len(backup) / 2
        else "staleness costs Async little per gradient on these models, so its higher "
        "throughput decides."
    )
)
# did the budget let every cell's leader plateau?
leaders = acc.loc[acc.groupby(["protocol", *cells])["mean"].idxmax()]
unplateaued = leaders[leaders["plateau"] < leaders["n"]]
budget_note = (
    f"Every cell's most accurate setting stopped at its plateau on every evaluation seed within "
    f"{budget:.0f} s."
    if unplateaued.empty
    else f"The most accurate setting did not plateau within {budget:.0f} s on every seed in "
    f"{len(unplateaued)} (protocol, cell) pair(s) ("
    + "; ".join(
        f"{r.name}, {r.protocol}, {r.workload} at {r.machines} machines: {r.plateau} of {r.n}"
        for r in unplateaued.itertuples()
    )
    + "), whose accuracy may still have been rising."
)
capped_note = (
    "Every tuned setting is interior or against a divergence wall."
    if capped.empty
    else f"{len(capped)} setting(s) are capped, their optimum possibly beyond the search: "
    + "; ".join(out["capped"])
    + "; the comparisons that involve them are in doubt."
)
tuned_v, scaled_v = verdict.loc["tuned"], verdict.loc["scaled"]
out.number(
    verdict=verdict.reset_index().to_dict("records"),
    reproduced=reproduced,
    direction=direction,
    speed_min=speed.min(),
    speed_max=speed.max(),
    per_gradient_backup_ahead=per_grad_ahead,
    pairs=len(backup),
    unplateaued=len(unplateaued),
)
out.conclusion(
    f"""**Answer.** Under the protocol (each cell's learning rate searched on
{len(protocol.tuning_seeds)} tuning seeds until interior or at a wall, momentum chosen there,
runs to a plateau within {budget:.0f} simulated seconds, {len(protocol.evaluation_seeds)}
held-out evaluation seeds), Backup(n - 1, 1) is ahead of Async in plateau accuracy in
{tuned_v["acc_ahead"]} of {n_cases} cells under tuned and {scaled_v["acc_ahead"]} under scaled,
behind in {tuned_v["acc_behind"]} and {scaled_v["acc_behind"]} (Welch, Holm-corrected; the rest
are not separated), and ahead in time to target in {tuned_v["time_ahead"]} and
{scaled_v["time_ahead"]}, behind in {tuned_v["time_behind"]} and {scaled_v["time_behind"]}
(log-rank, Holm-corrected). Sync(n) against Async: ahead in plateau accuracy in
{tuned_v["sync_acc_ahead"]} (tuned) and {scaled_v["sync_acc_ahead"]} (scaled) cells, behind in
{tuned_v["sync_acc_behind"]} and {scaled_v["sync_acc_behind"]}. {direction} {why} {budget_note}
{capped_note} These models are far smaller than Inception and the cluster is simulated, so the
margins are not comparable with Chen et al.'s."""
)
