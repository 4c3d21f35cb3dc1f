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
# # 8. Dutta et al.'s error-runtime trade-off: which K, and which variant?
#
# Dutta, Joshi, Ghosh, Dube and Nagpurkar (AISTATS 2018) compare four ways to wait for K of P
# learners: K-sync (`Backup(K, P - K)`), K-batch-sync (`KBatchSync(P, K)`), K-async
# (`KAsync(P, K)`) and K-batch-async (`KBatchAsync(P, K)`). Their Lemmas 3-5 give the runtime per
# iteration: E[X_(K:P)] for K-sync (Lemma 3), K E[X] / P for K-batch-async (Lemma 4), and
# E[X_(K:P)] as an upper bound for K-async under new-longer-than-used laws (Lemma 5, exact for
# exponential); Figs. 5-6 plot them against K for exponential and shifted-exponential workers. We
# put theory (`toolkit.theory.runtime`) and the clock on one plot for both laws, and then train the
# MNIST-1D MLP with every variant at small and large K to see error against wall-clock time.

# %%
import numpy as np
import pandas as pd
from scipy import stats

from toolkit.cluster import simulate
from toolkit.notebook import Output, profile
from toolkit.plots import plot_curves
from toolkit.plots.common import axes
from toolkit.replay import train
from toolkit.theory import runtime
from toolkit.theory.tradeoff import VARIANTS, variant_scheme
from toolkit.workloads import get_workload

out = Output("08_error_runtime")
quick = profile() == "quick"
P = 8
laws = {
    "exponential": stats.expon(scale=1.0),
    "shifted exponential": stats.expon(loc=1.0, scale=1.0),
}

# %% [markdown]
# ## Runtime per iteration against K (P = 8)

# %%
rows = []
updates = 3000 if quick else 30000
for law, dist in laws.items():
    for variant in VARIANTS:
        for k in range(1, P + 1):
            est = runtime(variant, P, k, dist)
            sched = simulate(variant_scheme(variant, P, k), dist, updates=updates, seed=k)
            t = sched.update_times()
            rows.append(
                {
                    "law": law,
                    "variant": variant,
                    "K": k,
                    "theory": est.value,
                    "theory_se": est.se,
                    "clock": (t[-1] - t[updates // 10]) / (updates - updates // 10 - 1),
                }
            )
rt = pd.DataFrame(rows)
rt["rel_err"] = rt["clock"] / rt["theory"] - 1
# the closed forms of the exponential case: K-sync (H_P - H_{P-K}) / mu, K-batch-async K E[X] / P
H = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, P + 1))])
expo = rt["law"] == "exponential"
mean = laws["exponential"].mean()  # 1 / mu
rt.loc[expo & (rt["variant"] == "k-sync"), "closed_form"] = [
    (H[P] - H[P - k]) * mean for k in range(1, P + 1)
]
rt.loc[expo & (rt["variant"] == "k-batch-async"), "closed_form"] = [
    k * mean / P for k in range(1, P + 1)
]
out.table("runtime", rt)
fig, axs = axes(None, ncols=2)
for ax, (law, g) in zip(axs, rt.groupby("law", sort=False), strict=True):
    for variant, v in g.groupby("variant", sort=False):
        ax.plot(v["K"], v["theory"], "-", label=f"{variant}, theory")
        ax.plot(
            v["K"], v["clock"], "o", ms=4, color=ax.lines[-1].get_color(), label=f"{variant}, clock"
        )
    ax.set(
        xlabel="K",
        ylabel="runtime per iteration (s)",
        title=f"P = {P}, {law}, mean step time {laws[law].mean():g} s",
    )
    ax.legend(fontsize=6)
out.figure("runtime", fig)
rt.pivot_table(index="K", columns=["law", "variant"], values="clock").round(3)

# %% [markdown]
# ## Error against wall-clock time on the MNIST-1D MLP
#
# Each variant at K = 2 and K = P, the same simulated budget and learning rate 0.1 (an update
# averages its K gradients), test error = 1 - test accuracy.

# %%
budget = 200.0 if quick else 600.0
seeds = [0] if quick else [0, 1, 2]
dist = laws["shifted exponential"]
workload = get_workload("mnist1d_mlp")
curves, rows = [], []
for variant in VARIANTS:
    for k in [2, P]:
        scheme = variant_scheme(variant, P, k)
        step = runtime(variant, P, k, dist).value
        n_upd = int(1.1 * budget / step) + 1
        for seed in seeds:
            sched = simulate(scheme, dist, updates=n_upd, seed=seed)
            res = train(sched, workload, lr=0.1, seed=seed, eval_every=max(1, n_upd // 12))
            ev = res.evaluations[res.evaluations["time"] <= budget].assign(
                scheme=f"{variant}, K={k}", seed=seed
            )
            if ev.empty:
                raise ValueError(f"{variant}, K={k}: no evaluation within {budget:g} s")
            ev["test_error"] = 1 - ev["test_accuracy"]
            curves.append(ev)
            rows.append(
                {
                    "variant": variant,
                    "K": k,
                    "seed": seed,
                    "status": res.status,
                    "updates_in_budget": int(ev["update"].iloc[-1]) + 1,
                    # a diverged run scores error 1 (accuracy 0), as in the sweep's notebooks
                    "final_error": float(ev["test_error"].iloc[-1]) if res.status == "ok" else 1.0,
                    "time_to_50pct": float(ev.loc[ev["test_accuracy"] >= 0.5, "time"].min()),
                }
            )
err = out.table("error_runtime", pd.DataFrame(rows))
curves = pd.concat(curves, ignore_index=True)
out.figure(
    "error_vs_time",
    plot_curves(curves.dropna(subset=["test_error"]), y="test_error", budget=budget),
)
summary = err.groupby(["variant", "K"])[
    ["final_error", "time_to_50pct", "updates_in_budget"]
].mean()
summary

# %%
exact = rt.dropna(subset=["closed_form"])
best = summary["final_error"].idxmin()
small_k_wins = int(
    sum(summary.loc[(v, 2), "final_error"] < summary.loc[(v, P), "final_error"] for v in VARIANTS)
)
out.number(
    max_rel_err=rt["rel_err"].abs().max(),
    max_closed_form_err=(exact["theory"] / exact["closed_form"] - 1).abs().max(),
    kasync_bound_holds=bool(
        (
            rt.loc[(rt["law"] != "exponential") & (rt["variant"] == "k-async"), "clock"].to_numpy()
            <= rt.loc[
                (rt["law"] != "exponential") & (rt["variant"] == "k-sync"), "theory"
            ].to_numpy()
            * 1.02
        ).all()
    ),
    fastest_at_k1=rt[(rt["K"] == 1) & (rt["law"] != "exponential")]
    .set_index("variant")["theory"]
    .idxmin(),
    best_variant=best[0],
    best_k=best[1],
    best_error=summary.loc[best, "final_error"],
    small_k_wins=small_k_wins,
    budget=budget,
    P=P,
)
bound = (
    "stays below the K-sync value E[X_(K:P)], as Lemma 5 bounds it"
    if out["kasync_bound_holds"]
    else "EXCEEDS the K-sync value E[X_(K:P)] that Lemma 5 bounds it by"
)
out.conclusion(
    f"""**Answer.** For P = {P} learners, the runtime per iteration on the clock matches the theory for
all {len(VARIANTS)} variants, both laws and every K within {100 * out["max_rel_err"]:.1f} %; for
exponential workers the theory equals Dutta et al.'s closed forms (K-sync (H_P - H_(P-K)) / mu,
K-batch-async K E[X] / P) to {out["max_closed_form_err"]:.1e}, and for shifted-exponential workers the
clock's K-async {bound}. On the MLP with {out["budget"]:g} simulated seconds the lowest final test
error is {out["best_variant"]} with K = {out["best_k"]} ({100 * out["best_error"]:.1f} %), and K = 2
beats K = {P} for {small_k_wins} of the {len(VARIANTS)} variants. Dutta et al.'s analysis gives the two
sides of this trade-off: a small K makes more updates per second, a large K averages more
gradients per update and so has a lower error floor (their Lemma 2 and Theorem 3); which wins
depends on the budget."""
)
