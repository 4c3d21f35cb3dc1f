# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 4. Staleness: how old are asynchronous gradients, and how large a step survives them?
#
# Three checks. (1) The staleness of Async(M) on the simulated clock against Mitliagkas et al.'s
# queueing model (arXiv 1605.09774, Theorem 5: exponential workers give geometric staleness with
# q_l = (1/M)(1 - 1/M)^l, an implicit momentum 1 - 1/M) and against the renewal mean M - 1 that
# holds for any step-time law. (2) The largest stable learning rate under a delay, predicted from
# the theory and the top Hessian eigenvalue (`toolkit.compare.divergence_table`) against the
# divergence boundary measured by replay. (3) Zhang et al.'s staleness-aware learning rate
# alpha_0 / tau (IJCAI 2016) against a constant rate for Async on a real model.

# %%
import numpy as np
import pandas as pd
from scipy import stats

from toolkit.cluster import simulate
from toolkit.compare import divergence_table
from toolkit.notebook import Output, profile
from toolkit.plots import plot_curves, plot_delay_thresholds
from toolkit.plots.common import axes
from toolkit.replay import train
from toolkit.schemes import Async, Delayed, Sync
from toolkit.theory import delayed_gd_threshold, implicit_momentum, staleness_pmf
from toolkit.workloads import get_workload

out = Output("04_staleness")
quick = profile() == "quick"
updates = 20_000 if quick else 200_000

# %% [markdown]
# ## 1. The staleness distribution of Async(M)

# %%
rows, hists = [], {}
laws = {"exponential": stats.expon(), "shifted exponential": stats.expon(loc=1.0, scale=0.5)}
for law, dist in laws.items():
    for M in [4, 8, 16, 32]:
        s = simulate(Async(M), dist, updates=updates, seed=M).used["staleness"].to_numpy()
        s = s[len(s) // 10 :]  # drop the start-up transient
        pmf = staleness_pmf(s)
        law_geo = stats.geom(1 / M, loc=-1)  # q_l = (1/M)(1 - 1/M)^l, l = 0, 1, ...
        geo = law_geo.pmf(np.arange(len(pmf)))
        mu_hat = s.mean() / (1 + s.mean())  # the geometric law with this mean has mu = m/(1+m)
        rows.append(
            {
                "law": law,
                "M": M,
                "mean": s.mean(),
                "se": s.std(ddof=1) / np.sqrt(len(s)),
                "theory_mean": M - 1,
                # the geometric law's mass beyond the largest observed staleness counts too
                "tv_to_geometric": 0.5 * (np.abs(pmf - geo).sum() + law_geo.sf(len(pmf) - 1)),
                "fitted_momentum": mu_hat,
                "implicit_momentum": implicit_momentum(M),
            }
        )
        hists[(law, M)] = pmf
stale = out.table("staleness", pd.DataFrame(rows))
stale["rel_err"] = stale["mean"] / stale["theory_mean"] - 1
out.table("staleness", stale)

fig, (ax,) = axes(None, width=6.5)
for law, ls in zip(laws, ["-", "--"], strict=True):
    pmf = hists[(law, 16)]
    ax.plot(np.arange(len(pmf)), pmf, ls, label=f"clock, {law}")
ax.plot(
    np.arange(60),
    stats.geom(1 / 16, loc=-1).pmf(np.arange(60)),
    ":k",
    label="geometric, mu = 1 - 1/16",
)
ax.set(xlabel="staleness (updates)", ylabel="probability", xlim=(0, 60), title="Async(16)")
ax.legend(fontsize=7)
out.figure("staleness_pmf", fig)
stale

# %% [markdown]
# ## 2. Divergence threshold against delay
#
# Gradient descent with a fixed delay tau on a quadratic with curvature h is stable iff
# eta h < 2 sin(pi / (2 (2 tau + 1))) (`delayed_gd_threshold`). Delayed(4, tau) applies every
# gradient tau updates late, so on the quadratic with top eigenvalue 2 the prediction is exact;
# on the MNIST-1D MLP the prediction uses the Hessian's top eigenvalue at initialisation.

# %%
delays = [0, 1, 2, 4] if quick else [0, 1, 2, 4, 8]
quad = get_workload("quadratic", d=4, eigenvalues=[0.5, 1.0, 1.5, 2.0], noise_std=0.0)
schemes = [Sync(4)] + [Delayed(4, d) for d in delays[1:]]
qtable = divergence_table([quad], schemes, updates=1000 if quick else 2000, rel_tol=0.02)
qtable["delay"] = delays
mlp = get_workload("mnist1d_mlp", n_train=2000)
mlp_delays = [0, 2] if quick else [0, 1, 2, 4]
mtable = divergence_table(
    [mlp], [Sync(4)] + [Delayed(4, d) for d in mlp_delays[1:]], updates=150, rel_tol=0.1
)
mtable["delay"] = mlp_delays
cols = ["workload", "delay", "lambda_max", "predicted_lr", "measured_lo", "measured_hi", "ratio"]
thresholds = out.table("thresholds", pd.concat([qtable[cols], mtable[cols]], ignore_index=True))
fig = plot_delay_thresholds(taus=tuple(range(delays[-1] + 1)))
ax = fig.axes[0]
ax.plot(
    qtable["delay"],
    qtable["measured_lo"] * qtable["lambda_max"],
    "ok",
    ms=4,
    label="quadratic, measured",
)
ax.plot(
    mtable["delay"], mtable["measured_lo"] * mtable["lambda_max"], "sr", ms=4, label="MLP, measured"
)
ax.legend(fontsize=7)
out.figure("thresholds", fig)
thresholds

# %% [markdown]
# ## 3. Staleness-aware learning rate on Async(16)
#
# The same simulated Async(16) schedule trained with a constant rate and with alpha_0 / tau
# (`train(..., staleness="lr")`), at two base rates, on the MNIST-1D MLP.

# %%
seeds = [0] if quick else [0, 1, 2, 3, 4]
n_updates = 1000 if quick else 4000
curves, rows = [], []
for seed in seeds:
    sched = simulate(Async(16), stats.expon(loc=1.0, scale=0.5), updates=n_updates, seed=seed)
    for lr in [0.1, 0.5]:
        for policy in ["none", "lr"]:
            res = train(sched, "mnist1d_mlp", lr=lr, seed=seed, staleness=policy, eval_every=100)
            ev = res.evaluations
            label = f"lr {lr:g}, " + ("alpha0/tau" if policy == "lr" else "constant")
            curves.append(ev.assign(scheme=label, seed=seed))
            rows.append(
                {
                    "lr": lr,
                    "policy": policy,
                    "seed": seed,
                    "status": res.status,
                    "final_accuracy": ev["test_accuracy"].iloc[-1]
                    if res.status == "ok"
                    else np.nan,
                }
            )
aware = out.table("staleness_aware", pd.DataFrame(rows))
curves = pd.concat(curves, ignore_index=True)
out.figure("staleness_aware", plot_curves(curves.dropna(subset=["test_accuracy"]), x="update"))
aware_summary = aware.groupby(["lr", "policy"]).agg(
    diverged=("status", lambda s: int((s != "ok").sum())), mean_accuracy=("final_accuracy", "mean")
)
aware_summary

# %%
quad_ok = bool(
    (
        (qtable["predicted_lr"] >= 0.98 * qtable["measured_lo"])
        & (qtable["predicted_lr"] <= 1.02 * qtable["measured_hi"])
    ).all()
)
a = aware_summary.reset_index().set_index(["lr", "policy"])
out.number(
    max_mean_rel_err=stale["rel_err"].abs().max(),
    max_tv_exponential=stale.loc[stale["law"] == "exponential", "tv_to_geometric"].max(),
    min_tv_shifted=stale.loc[stale["law"] != "exponential", "tv_to_geometric"].min(),
    max_momentum_gap=(
        stale.loc[stale["law"] == "exponential", "fitted_momentum"]
        - stale.loc[stale["law"] == "exponential", "implicit_momentum"]
    )
    .abs()
    .max(),
    quad_in_bracket=quad_ok,
    threshold_ratio_d0=float(qtable["measured_lo"].iloc[0] / qtable["measured_lo"].iloc[-1]),
    theory_ratio_d0=delayed_gd_threshold(0) / delayed_gd_threshold(delays[-1]),
    mlp_ratios=mtable["ratio"].round(2).tolist(),
    aware_high_acc=a.loc[(0.5, "lr"), "mean_accuracy"],
    constant_high_acc=a.loc[(0.5, "none"), "mean_accuracy"],
    constant_high_diverged=int(a.loc[(0.5, "none"), "diverged"]),
    aware_low_acc=a.loc[(0.1, "lr"), "mean_accuracy"],
    constant_low_acc=a.loc[(0.1, "none"), "mean_accuracy"],
    seeds=len(seeds),
    updates=updates,
)


def pct(x):
    return "no finite accuracy" if x is None or not np.isfinite(x) else f"{100 * x:.1f} %"


mean_ok = bool((stale["rel_err"].abs() < 0.02).all())
geometric = out["max_tv_exponential"] < 0.05
not_geometric = out["min_tv_shifted"] > 0.2
if geometric and not_geometric:
    shape = (
        f"With exponential workers the whole distribution is Mitliagkas et al.'s geometric law "
        f"(total-variation distance at most {out['max_tv_exponential']:.3f}; the fitted momentum "
        f"m / (1 + m) is within {out['max_momentum_gap']:.4f} of 1 - 1/M); with shifted-exponential "
        f"workers it is not (TV at least {out['min_tv_shifted']:.2f}): the mean survives a change of "
        "law, the geometric shape behind the implicit-momentum result does not."
    )
else:
    shape = (
        f"The total-variation distance to the geometric law is at most "
        f"{out['max_tv_exponential']:.3f} for exponential workers and at least "
        f"{out['min_tv_shifted']:.2f} for shifted-exponential ones."
    )
bracket = (
    "lies inside the measured bracket (within the bisection's 2 % resolution) for every delay"
    if quad_ok
    else "falls OUTSIDE the measured bracket for some delay"
)
out.conclusion(
    f"""**Answer.** The clock's mean staleness of Async(M) is
{"M - 1 within" if mean_ok else "off M - 1 by up to"} {100 * out["max_mean_rel_err"]:.2f} % for
M = 4..32 under both laws. {shape} The predicted delay threshold on the quadratic {bracket}; from
delay 0 to {delays[-1]} the measured stable rate falls {out["threshold_ratio_d0"]:.1f}x (theory
{out["theory_ratio_d0"]:.1f}x). On the MLP, measured / predicted is {out["mlp_ratios"]} (the Hessian
at initialisation is a local model). On Async(16) with base rate 0.5 the constant rate gives
{pct(out["constant_high_acc"])} ({out["constant_high_diverged"]} of {len(seeds)} seeds diverged) and
alpha_0 / tau {pct(out["aware_high_acc"])}; at 0.1 they give {pct(out["constant_low_acc"])} and
{pct(out["aware_low_acc"])}."""
)
