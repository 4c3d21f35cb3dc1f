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
# # 5. Elastic averaging: where is EASGD stable, and what does a longer communication period cost?
#
# Zhang, Choromanska and LeCun (NIPS 2015) analyse EASGD on a quadratic: synchronous EASGD is
# stable on a region of (eta h, beta = p alpha) (Sec. 4, Eqs. 5-6), and in the round-robin setting
# ADMM can be unstable where EASGD with the same eta and rho is stable (Sec. 4 and Fig. 1, p = 3,
# h = 1, eta = 0.001, rho = 2.5). We reproduce both from the spectral radii in `toolkit.theory`,
# check the predicted divergence boundary against replay on the quadratic, and compare EASGD,
# EAMSGD, LocalSGD and DiLoCo on the MNIST-1D MLP as the communication period tau grows over 1, 4, 16 and
# 64, with Sync and Async as references and Sync with Nesterov momentum as the control for
# DiLoCo's outer momentum, each setting tuned under the comparison protocol and read from the
# committed tables of `sweeps/period.toml` (no training here).

# %%
import numpy as np
import pandas as pd

from toolkit.compare import divergence_table
from toolkit.notebook import Output, profile, repo_root, setting_result, status_words
from toolkit.plots import plot_curves, plot_easgd_regions, plot_round_robin_comparison
from toolkit.plots.common import axes
from toolkit.schemes import EASGD
from toolkit.sweeps import SweepSpec, load
from toolkit.sweeps.analysis import pairwise
from toolkit.sweeps.protocol import outcomes_of, plan_protocol
from toolkit.sweeps.report import protocol_report
from toolkit.theory import (
    admm_round_robin_spectral_radius,
    easgd_round_robin_spectral_radius,
    easgd_spectral_radius,
)
from toolkit.workloads import get_workload

out = Output("05_easgd")
quick = profile() == "quick"

# %% [markdown]
# ## Stability regions and the round-robin example

# %%
out.figure("regions", plot_easgd_regions(ps=(1, 4, 16)))
eta, beta = np.meshgrid(np.linspace(0.01, 2.5, 200), np.linspace(0.01, 2.5, 200))
stable = {
    p: float((easgd_spectral_radius(eta=eta, alpha=beta / p, p=p) < 1).mean()) for p in (1, 4, 16)
}
p, h, eta0, rho = 3, 1.0, 0.001, 2.5
admm = admm_round_robin_spectral_radius(eta=eta0, alpha=eta0 * rho, p=p, h=h)
easgd = easgd_round_robin_spectral_radius(eta=eta0, alpha=eta0 * rho, p=p, h=h)
out.figure("round_robin", plot_round_robin_comparison())
pd.Series(
    {
        "ADMM radius": admm,
        "EASGD radius": easgd,
        **{f"stable fraction p={k}": v for k, v in stable.items()},
    }
)

# %% [markdown]
# ## Predicted against measured divergence boundary (quadratic, EASGD(4, tau = 1))

# %%
quad = get_workload("quadratic", d=4, eigenvalues=[0.5, 1.0, 1.5, 2.0], noise_std=0.0)
alphas = [0.05, 0.2] if quick else [0.025, 0.05, 0.1, 0.2]
bound = divergence_table(
    [quad],
    [EASGD(4, tau=1, alpha=a) for a in alphas],
    updates=1000 if quick else 2000,
    rel_tol=0.02,
)
bound["alpha"] = alphas
bound = out.table(
    "boundary",
    bound[["alpha", "lambda_max", "predicted_lr", "measured_lo", "measured_hi", "ratio"]],
)
bound

# %% [markdown]
# ## The communication period, every setting tuned, on held-out seeds
#
# 8 machines, shifted-exponential compute (1 + Exp(0.5) s), each exchange a 4 MB message each way
# through one parameter server at 1 Gbit/s, so exchanging every step costs time. EASGD keeps
# beta = p alpha = 0.9 at every tau; EAMSGD adds Nesterov momentum 0.9 to the local steps (Zhang et
# al.'s Algorithm 2); DiLoCo applies the replicas' mean displacement with an outer Nesterov SGD
# (outer lr 0.7, momentum 0.9). At tau = 1 DiLoCo is Sync with that outer momentum, so Sync with
# Nesterov momentum 0.9 at its own tuned rate is the control that separates the period from the
# momentum; Async (with and without Nesterov momentum) is the asynchronous reference. Under the
# comparison protocol (`toolkit.sweeps.protocol`) every setting's learning rate is searched on a
# x3 grid with the tuning seeds until its optimum is interior (or against a divergence wall), and
# the chosen rate runs on held-out evaluation seeds, which alone are reported. The best period of
# each family is chosen on the tuning seeds too (the best tuning score of its settings' searches),
# so the evaluation seeds also report it without selection bias.

# %%
data = repo_root() / "data" / "period"
spec = SweepSpec.load(data / "spec.toml")
protocol = spec.protocol
evaluations, summary = load(data)
report = protocol_report(spec, evaluations, summary, out.dir / "period_protocol", figures=False)
plan = plan_protocol(spec, outcomes_of(summary, protocol.score))
searches = {s.cells[0].id(): s for s in plan.searches}
evaluation = report["evaluation"]
times = report["time_to_target"]
by_id = summary.set_index("run_id")


def family(cell) -> str:
    """The row a setting belongs to: its scheme's family (EAMSGD: EASGD with local momentum) and,
    for Sync and Async, the momentum it was given."""
    scheme = cell.scheme
    name = type(scheme).__name__
    if name == "EASGD" and scheme.momentum:
        return "EAMSGD"
    if cell.momentum:
        return f"{name} + Nesterov {cell.momentum:g}" if cell.nesterov else f"{name} + momentum"
    return name


rows, runs = [], []
for i, s in enumerate(plan.settings):
    ev, tt = evaluation.iloc[i], times.iloc[i]
    assert ev["label"] == tt["label"] == str(s.cell.scheme) and ev["lr"] == tt["lr"] == s.lr
    scheme = s.cell.scheme
    tau = getattr(scheme, "tau", getattr(scheme, "h", None))
    name = family(s.cell)
    rows.append(
        {
            "family": name,
            "tau": tau,
            "scheme": str(scheme),
            "lr": s.lr,
            "lr_status": s.status,
            "lrs_searched": " ".join(f"{lr:g}" for lr in searches[s.cell.id()].lrs),
            "tuning_score": searches[s.cell.id()].best_objective,
            **ev[["n", "n_finite", "diverged", "mean", "ci_low", "ci_high", "interval"]],
            "stopped": ev["stopped"],
            "target": tt["target"],
            "reached": tt["reached"],
            "median_time_to_target": tt["median"],
            "censored_max": tt["censored_max"],
        }
    )
    got = by_id.loc[[c.id() for c in s.configs(protocol.evaluation_seeds)]]
    ok = (got["state"] == "complete") & (got["status"] == "ok")
    runs.append(pd.DataFrame({"family": name, "tau": tau, "value": got["final"].where(ok)}))
tau_settings = out.table("tau_settings", pd.DataFrame(rows))
runs = pd.concat(runs, ignore_index=True)
periodic = tau_settings.dropna(subset=["tau"])
families = list(dict.fromkeys(periodic["family"]))
references = [f for f in tau_settings["family"] if f not in families]
# the best period of each family by its tuning score (tuning seeds only)
best = periodic.loc[periodic.groupby("family", sort=False)["tuning_score"].idxmax()]
best = out.table("best_tau", best.set_index("family").loc[families].reset_index())
tau_range = (int(periodic["tau"].min()), int(periodic["tau"].max()))
# per family: every pair of periods (Welch, Holm over the family's pairs)
within = pairwise(
    runs.dropna(subset=["tau"]).astype({"tau": int}),
    "value",
    "tau",
    table=["family"],
    alpha=protocol.alpha,
)
out.table("tau_pairwise", within)
# the momentum control: DiLoCo at tau = 1 and at its best period against Sync, Sync + Nesterov
# and Async, in one table (Welch, Holm over its pairs)
diloco_best = int(best.set_index("family").loc["DiLoCo", "tau"])
control = runs.assign(
    setting=runs["family"]
    + np.where(runs["tau"].notna(), " tau=" + runs["tau"].astype("Int64").astype(str), "")
)
members = [*references, "DiLoCo tau=1", f"DiLoCo tau={diloco_best}"]
control = pairwise(
    control[control["setting"].isin(members)], "value", "setting", alpha=protocol.alpha
)
out.table("momentum_control", control)

fig, (ax, ax2) = axes(None, ncols=2, width=4.6)
for name in families:
    g = periodic[periodic["family"] == name].sort_values("tau")
    bad = (g["diverged"] > 0).to_numpy()
    err = np.vstack([g["mean"] - g["ci_low"], g["ci_high"] - g["mean"]])
    # a setting with a diverged evaluation seed is a cross, not joined to its neighbours
    line = ax.errorbar(
        g["tau"],
        g["mean"].where(~bad),
        yerr=np.where(bad, np.nan, err),
        fmt="o-",
        ms=4,
        capsize=2,
        label=name,
    )
    colour = line.lines[0].get_color()
    if bad.any():
        ax.plot(g["tau"][bad], g["mean"][bad], "x", ms=8, mew=2, color=colour)
    med = g["median_time_to_target"]
    ax2.plot(g["tau"], med, "o-", ms=4, color=colour, label=name)
    late = med.isna().to_numpy()  # fewer than half reached the target: beyond the last time
    if late.any():
        ax2.plot(g["tau"][late], g["censored_max"][late], "^", mfc="none", color=colour)
if (periodic["diverged"] > 0).any():
    ax.plot([], [], "x", c="gray", ms=8, mew=2, label="an evaluation seed diverged")
styles = {
    "Sync": dict(ls="--", c="k"),
    "Sync + Nesterov 0.9": dict(ls=":", c="k"),
    "Async": dict(ls="-.", c="tab:purple"),
    "Async + Nesterov 0.9": dict(ls=(0, (1, 1)), c="tab:purple"),
}
ref = tau_settings.set_index("family")
for name in references:
    style = styles.get(name, dict(ls="--", c="gray"))
    ax.axhline(ref.loc[name, "mean"], lw=1.5, label=name, **style)
    if np.isfinite(ref.loc[name, "median_time_to_target"]):
        ax2.axhline(ref.loc[name, "median_time_to_target"], lw=1.5, label=name, **style)
for a in (ax, ax2):
    a.set_xscale("log", base=2)
    a.set_xlabel("communication period tau (local steps per exchange)")
ax.set_ylabel("final test accuracy, evaluation seeds (t 95 % interval)")
ax2.set_ylabel("simulated time to target (s), Kaplan-Meier median")
(censored_mark,) = ax2.plot(
    [], [], "^", c="gray", mfc="none", label="fewer than half reached it: latest censoring"
)
ax.legend(fontsize=6)
ax2.legend(handles=[censored_mark], fontsize=6, loc="lower right")  # colours: left panel
out.figure("tau", fig)
shown = [*references] + [f"{f} tau=4" for f in families]
chosen = summary[(summary["role"] == "evaluation") & (summary["status"] == "ok")]  # not diverged
curves = evaluations[evaluations["run_id"].isin(chosen["run_id"])].dropna(subset=["test_accuracy"])
names = {}
for s in plan.settings:
    tau = getattr(s.cell.scheme, "tau", getattr(s.cell.scheme, "h", None))
    label = family(s.cell) + ("" if tau is None else f" tau={tau}")
    for c in s.configs(protocol.evaluation_seeds):
        names[c.id()] = label
curves = curves.assign(setting=curves["run_id"].map(names))
curves = curves[curves["setting"].isin(shown)]
out.figure("curves_tau4", plot_curves(curves, by="setting", title="tuned rates, evaluation seeds"))
tau_settings

# %%
quad_ok = bool(
    (
        (bound["predicted_lr"] >= 0.98 * bound["measured_lo"])
        & (bound["predicted_lr"] <= 1.02 * bound["measured_hi"])
    ).all()
)
statuses = tau_settings["lr_status"].value_counts()
budget = float(spec.base["time_budget"])
plateau = spec.base["plateau"]
out.number(
    admm_radius=admm,
    easgd_radius=easgd,
    stable_fraction=stable,
    boundary_in_bracket=quad_ok,
    boundary_ratios=bound["ratio"].round(3).tolist(),
    best_tau={r.family: int(r.tau) for r in best.itertuples()},
    tau_range=list(tau_range),
    budget=budget,
    settings=len(tau_settings),
    statuses=statuses.to_dict(),
    tuning_seeds=len(protocol.tuning_seeds),
    evaluation_seeds=len(protocol.evaluation_seeds),
    target=float(tau_settings["target"].iloc[0]),
)
radii = (
    f"ADMM's spectral radius is {admm:.4f} (unstable) and EASGD's {easgd:.4f} (stable), as in their Sec. 4"
    if admm > 1 > easgd
    else f"ADMM's spectral radius is {admm:.4f} and EASGD's {easgd:.4f}, which does NOT reproduce their Sec. 4"
)
bracket = (
    "lies inside the measured bracket (within the bisection's 2 % resolution) for every alpha"
    if quad_ok
    else "falls OUTSIDE the measured bracket for some alpha"
)


def pct(x):
    return "no finite accuracy" if x is None or not np.isfinite(x) else f"{100 * x:.1f} %"


result = setting_result


def test_words(table, a, b) -> str:
    """Whether the Welch test of a table separates a from b (either order)."""
    hit = table[((table["a"] == a) & (table["b"] == b)) | ((table["a"] == b) & (table["b"] == a))]
    if hit.empty or not np.isfinite(hit["p_holm"].iloc[0]):
        return "untested"
    r = hit.iloc[0]
    if r["separated"]:
        return f"separated, {r['leader']} ahead (Holm-adjusted p = {r['p_holm']:.2g})"
    return f"not separated (Holm-adjusted p = {r['p_holm']:.2g})"


lo, hi = tau_range
period_words = []
for r in best.itertuples():
    t = int(r.tau)
    where = f"interior of {lo}..{hi}" if lo < t < hi else f"at the edge of {lo}..{hi}"
    fam = within[within["family"] == r.family]
    ends = [e for e in (lo, hi) if e != t]
    vs = "; ".join(f"against tau = {e}: {test_words(fam, t, e)}" for e in ends)
    period_words.append(f"{r.family} tau = {t} ({where}; {result(r._asdict())}; {vs})")
capped = tau_settings[tau_settings["lr_status"] == "capped"]
capped_words = (
    " Capped, so possibly short of their optimum: "
    + "; ".join(f"{r.scheme} (momentum {r.family})" for r in capped.itertuples())
    + "."
    if len(capped)
    else ""
)
d1 = ref_row = tau_settings.query("family == 'DiLoCo' and tau == 1").iloc[0]
out.conclusion(
    f"""**Answer.** At Zhang et al.'s round-robin parameters (p = 3, h = 1, eta = 0.001, rho = 2.5)
{radii}. Synchronous EASGD's stable share of (eta h, beta) in [0, 2.5]^2 is
{100 * stable[1]:.0f} % at p = 1, {100 * stable[4]:.0f} % at p = 4 and {100 * stable[16]:.0f} % at p = 16.
On the quadratic the predicted largest stable rate {bracket} (measured / predicted
{out["boundary_ratios"]}). On 8 machines with a costly exchange, every setting tuned under the
comparison protocol ({len(protocol.tuning_seeds)} tuning seeds, x{protocol.factor:g} lr search;
{len(protocol.evaluation_seeds)} held-out evaluation seeds; runs to a plateau of test accuracy,
{plateau["window"]} evaluations without a gain above {plateau["delta"]:g}, within {budget:g}
simulated seconds; the {len(tau_settings)} tuned rates are {status_words(statuses)}), the best
period chosen on the tuning seeds is, with its final test accuracy on the evaluation seeds:
{"; ".join(period_words)} (Welch's t, Holm over each family's {len(fam)} pairs of periods).{capped_words}
The references reach {"; ".join(f"{f} {result(ref.loc[f])}" for f in references)}. DiLoCo at
tau = 1 ({pct(d1["mean"])}) against Sync + Nesterov 0.9 at its own tuned rate:
{test_words(control, "DiLoCo tau=1", "Sync + Nesterov 0.9")}; against plain Sync:
{test_words(control, "DiLoCo tau=1", "Sync")} (Welch's t, Holm over the {len(control)} pairs of
{len(members)} settings)."""
)
