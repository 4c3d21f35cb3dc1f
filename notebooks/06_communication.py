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
# # 6. Communication: how much can be hidden, what does hiding cost, and where does the server saturate?
#
# Delayed synchronous SGD applies each update one step late so that the exchange overlaps the
# next step's computation; layer-wise overlap starts a layer's exchange as soon as the backward
# pass produced its gradient (Poseidon's wait-free backpropagation, Zhang et al., USENIX ATC 2017).
# The abstract of "Leveraging Asynchronicity in Gradient Descent for Scalable Deep Learning" (ICLR
# 2017 submission, OpenReview rkFd2P5gl) reports that "asynchronous gradient descent has a speedup
# of up to 1.7x compared to synchronous", for approaches ranging up to delaying gradient updates a
# fixed number of times and for a layer-wise variant that overlaps backpropagation with gradient
# synchronisation, measured for AlexNet and GoogleNet (ImageNet) in Caffe on an Intel Sandy
# Bridge cluster with InfiniBand and on an NVIDIA DGX-1. It is a measurement on that hardware and
# those networks, and the abstract states neither their ratio of communication to computation
# nor which variant gives the 1.7x; here that ratio is swept on a simulated cluster, so the 1.7x
# is a reference line, not a prediction. We measure (1) the step-time
# gain of Delayed(n, d) over Sync(n) on the clock against theory as communication grows relative
# to computation, (2) what the delay costs in convergence in the paper study (notebook 02),
# (3) the gain of layer-wise overlap predicted from per-layer backward times measured on the
# toolkit's models (`toolkit.theory.layerwise_step_time`), and (4) the parameter-server bottleneck
# as n grows, against sharded servers, ring all-reduce and a hierarchical exchange.

# %%
import time

import numpy as np
import pandas as pd
import torch
from scipy import stats

from toolkit.cluster import simulate
from toolkit.models import Hierarchical, ParameterServer, RingAllReduce, ShardedServer
from toolkit.notebook import Output, paper_sweep, profile
from toolkit.plots import plot_server_throughput
from toolkit.plots.common import axes
from toolkit.schemes import Async, Delayed, Sync
from toolkit.sweeps.stats import holm
from toolkit.theory import layerwise_step_time, mva, ps_bounds, step_time, step_time_estimate
from toolkit.workloads import get_workload

out = Output("06_communication")
quick = profile() == "quick"
n = 8
compute = stats.expon(loc=1.0, scale=0.5)  # mean 1.5 s per step

# %% [markdown]
# ## 1. Delayed(n, d) against Sync(n) as the exchange grows
#
# A ring all-reduce whose time is r times the mean compute time (r from 0 to 2). Theory: Sync is
# E[max of n] + c; Delayed is the long-run period of the clock's recursion (Monte Carlo with its
# standard error, `toolkit.theory.step_time`). The clock runs the same schemes for 3,000 updates;
# its mean period's standard error is the batch-means one (20 batches after a burn-in of 500
# updates), and a speed-up's is propagated from the two independent runs (delta method).

# %%
rows = []
for r in [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0]:
    comm = RingAllReduce(
        nbytes=max(r, 1e-12) * compute.mean() * 1.25e9 / (2 * (n - 1) / n), bandwidth=1.25e9
    )
    for d in [0, 1, 2]:
        scheme = Delayed(n, d)
        est = step_time_estimate(scheme, compute, comm)
        sched = simulate(scheme, compute, comm, updates=3000 if quick else 20000, seed=d)
        gaps = np.diff(sched.update_times()[499:])
        batches = gaps[: len(gaps) // 20 * 20].reshape(20, -1).mean(axis=1)
        rows.append(
            {
                "r": r,
                "delay": d,
                "theory": est.value,
                "theory_se": est.se,
                "clock": gaps.mean(),
                "clock_se": batches.std(ddof=1) / np.sqrt(len(batches)),
            }
        )
delayed = pd.DataFrame(rows)
sync = delayed[delayed["delay"] == 0].set_index("r")
delayed["speedup_theory"] = delayed["r"].map(sync["theory"]) / delayed["theory"]
delayed["speedup_clock"] = delayed["r"].map(sync["clock"]) / delayed["clock"]
delayed["speedup_clock_se"] = delayed["speedup_clock"] * np.hypot(
    delayed["r"].map(sync["clock_se"] / sync["clock"]), delayed["clock_se"] / delayed["clock"]
)
delayed["rel_err"] = delayed["clock"] / delayed["theory"] - 1
out.table("delayed", delayed)
fig, (ax,) = axes(None)
for d, g in delayed[delayed["delay"] > 0].groupby("delay"):
    (line,) = ax.plot(g["r"], g["speedup_theory"], "-", label=f"theory, delay {d}")
    ax.errorbar(
        g["r"],
        g["speedup_clock"],
        yerr=2 * g["speedup_clock_se"],
        fmt="o",
        ms=4,
        capsize=2,
        color=line.get_color(),
        label=f"clock, delay {d} (2 SE)",
    )
ax.axhline(1.7, ls=":", c="k", label="layer-wise async, measured (OpenReview rkFd2P5gl): 1.7x")
ax.set(xlabel="exchange time / mean compute time", ylabel="speed-up over Sync(8)")
ax.legend(fontsize=7)
out.figure("delayed_speedup", fig)
delayed.pivot(index="r", columns="delay", values="speedup_clock")

# %% [markdown]
# ## 2. What the delay costs in convergence (the paper study)
#
# Delayed(n, 1) against Sync(n) in the study of notebook 02 (`data/paper`): same cluster, each
# at its own tuned learning rate and momentum (protocol `tuned`), plateau accuracy on the five
# evaluation seeds (a diverged run scores 0), Welch's t test Holm-corrected over the four cells.

# %%
study = paper_sweep()  # data/paper, checked against sweeps/paper.toml
pair = study.runs[
    (study.runs["protocol"] == "tuned") & study.runs["name"].isin(["Sync", "Delayed"])
]
cost = pair.pivot_table(index=["workload", "machines"], columns="name", values="score")
tests = [
    stats.ttest_ind(
        g.loc[g["name"] == "Delayed", "score"], g.loc[g["name"] == "Sync", "score"], equal_var=False
    ).pvalue
    for _, g in pair.groupby(["workload", "machines"])
]
cost["delayed_minus_sync"] = cost["Delayed"] - cost["Sync"]
cost["p_holm"] = holm(tests)
cost["separated"] = cost["p_holm"] <= 0.05
upd = pair.groupby(["workload", "machines", "name"])["updates"].mean().unstack("name")
cost["updates_ratio"] = upd["Delayed"] / upd["Sync"]
cost = out.table("delay_cost", cost.reset_index())
cost

# %% [markdown]
# ## 3. Layer-wise overlap, from measured per-layer backward times
#
# Each parameter-holding module's backward time is measured with backward hooks (median of 20
# passes on this CPU, batch 128); its exchange moves its parameters in a ring all-reduce of 8
# workers, over a link whose bandwidth is set so that the whole exchange C takes a given multiple
# of the compute time F + B. The gain is (F + B + C) / `layerwise_step_time`, against that ratio;
# its bound is (F + B + C) / (F + max(B, C)).


# %%
def layer_times(workload, batch=128, reps=20):
    """(forward time, per-layer backward times in the order backward finishes them, their
    parameter counts), medians over ``reps`` passes."""
    model = workload.make_model(0)
    mods = [m for m in model.modules() if any(p.requires_grad for p in m.parameters(recurse=False))]
    params = [sum(p.numel() for p in m.parameters(recurse=False)) for m in mods]
    x, y = workload.x_train[:batch], workload.y_train[:batch]
    stamps: dict[int, float] = {}
    for i, m in enumerate(mods):
        m.register_full_backward_hook(lambda *_, i=i: stamps.__setitem__(i, time.perf_counter()))
    fwd, bwd, order = [], [], None
    for _ in range(reps + 1):  # the first pass warms up and fixes the order
        model.zero_grad()
        t0 = time.perf_counter()
        loss = workload.loss(model(x.requires_grad_()), y)
        t1 = time.perf_counter()
        loss.backward()
        if order is None:
            order = sorted(stamps, key=stamps.get)  # the order the backward pass finished them
            continue
        ends = np.maximum.accumulate(np.array([stamps[i] for i in order]))
        bwd.append(np.diff(np.concatenate([[t1], ends])))
        fwd.append(t1 - t0)
    return float(np.median(fwd)), np.median(bwd, axis=0), np.array([params[i] for i in order])


torch.manual_seed(0)
rows = []
for name in ["mnist1d_mlp", "digits_cnn"]:
    fwd, bwd, params = layer_times(get_workload(name))
    unit = [RingAllReduce(nbytes=4.0 * p, bandwidth=1.0).exchange_time(n) for p in params]
    for ratio in [0.1, 0.3, 0.5, 1.0, 2.0, 3.0, 10.0]:
        ring = np.array(unit) * ratio * (fwd + bwd.sum()) / sum(unit)
        plain = fwd + bwd.sum() + sum(ring)
        overlapped = layerwise_step_time(bwd, ring, forward=fwd)
        rows.append(
            {
                "workload": name,
                "layers": len(params),
                "ratio": ratio,
                "compute_ms": 1e3 * (fwd + bwd.sum()),
                "exchange_ms": 1e3 * sum(ring),
                "gain": plain / overlapped,
                "bound": plain / (fwd + max(bwd.sum(), sum(ring))),
            }
        )
layerwise = out.table("layerwise", pd.DataFrame(rows))
fig, (ax,) = axes(None)
for name, g in layerwise.groupby("workload"):
    ax.plot(g["ratio"], g["gain"], "o-", label=f"{name} ({g['layers'].iloc[0]} layers)")
    ax.plot(g["ratio"], g["bound"], ":", c=ax.lines[-1].get_color(), label=f"{name}, bound")
ax.axhline(1.7, ls="--", c="k", lw=0.8, label="layer-wise async, measured: 1.7x")
ax.set(
    xscale="log", xlabel="exchange time / compute time", ylabel="layer-wise overlap gain over Sync"
)
ax.legend(fontsize=7)
out.figure("layerwise", fig)
layerwise

# %% [markdown]
# ## 4. The parameter-server bottleneck
#
# Sync(n) pays 2 n nbytes / bandwidth per exchange through one server link, 1/k of that with k
# shards, about 2 nbytes / bandwidth in a ring, and a ring per group of 8 plus a server for the
# group leaders in the hierarchical exchange. Async(n) through one server is a closed queue:
# throughput is bounded by the link (1/s) and by the workers (n / (Z + s)); the knee is
# n* = (Z + s) / s. Theory against the clock for both; then Sync through one server and through a
# ring and Async through the same server on one plot, in gradients per second, against n.

# %%
nbytes, bw = 4e7, 1.25e9  # a 10M-parameter model over 10 Gbit/s
comms = {
    "parameter server": ParameterServer(nbytes, bw, 1e-4),
    "4 shards": ShardedServer(nbytes, bw, 1e-4, shards=4),
    "ring all-reduce": RingAllReduce(nbytes, bw, 1e-4),
    "hierarchical (groups of 8)": Hierarchical(nbytes, bw, 1e-4, group=8),
}
ns = [2, 4, 8, 16, 32, 64]
rows = []
for label, comm in comms.items():
    for k in ns:
        sched = simulate(Sync(k), compute, comm, updates=400, seed=k)
        rows.append(
            {
                "comm": label,
                "n": k,
                "theory": step_time(Sync(k), compute, comm),
                "clock": sched.update_times()[-1] / 400,
                "exchange": comm.exchange_time(k),
            }
        )
sync_ps = pd.DataFrame(rows)
sync_ps["samples_per_s"] = sync_ps["n"] / sync_ps["theory"]
out.table("sync_comm", sync_ps)

comm = ParameterServer(nbytes=4e6, bandwidth=1e8, latency=1e-4)  # s = 0.08 s per push + pull
s = comm.server_time()
Z = compute.mean() + comm.message_time() - s
ans = [1, 2, 4, 8, 12, 16, 20, 24, 32, 48]
rows = []
for k in ans:
    est = step_time_estimate(Async(k), compute, comm)
    sched = simulate(Async(k), compute, comm, updates=8000, seed=k)
    rows.append({"n": k, "theory": 1 / est.value, "simulated": 8000 / sched.update_times()[-1]})
tput = pd.DataFrame(rows)
lower, upper = ps_bounds(np.array(ans), Z, s)
tput["upper_bound"], tput["lower_bound"] = upper, lower
tput["mva"] = mva(max(ans), Z, s).set_index("n").loc[ans, "throughput"].to_numpy()
out.table("async_throughput", tput)
series = {
    "clock": tput["simulated"],
    "theory (the clock's FIFO link, Monte Carlo)": tput["theory"],
    "MVA (exponential service)": tput["mva"],
}
out.figure("ps_bottleneck", plot_server_throughput(tput["n"], series, Z, s, points=["clock"]))
fig, (ax,) = axes(None)
for label, g in sync_ps.groupby("comm", sort=False):
    ax.plot(g["n"], g["samples_per_s"], "o-", label=label)
ax.set(xscale="log", yscale="log", xlabel="workers n", ylabel="gradients per second, Sync(n)")
ax.legend(fontsize=7)
out.figure("sync_comm", fig)

# Async(n) through the same server link as Sync's (4e7 bytes, 1.25e9 bytes/s): one gradient per
# update, so its gradient rate is 1 / (time per update), and it saturates at the link's
# 1 / s = bandwidth / (2 nbytes), the same ceiling as Sync through that server
big = comms["parameter server"]
rows = []
for k in ns:
    est = step_time_estimate(Async(k), compute, big, samples=4000 if quick else 20000, seed=k)
    sched = simulate(Async(k), compute, big, updates=4000, seed=k)
    rows.append(
        {
            "n": k,
            "theory": 1 / est.value,
            "theory_se": est.se / est.value**2,
            "clock": 4000 / sched.update_times()[-1],
        }
    )
async_ps = out.table("async_same_link", pd.DataFrame(rows))
ceiling = 1 / big.server_time()
fig, (ax,) = axes(None, width=5.5)
for label, style in [("parameter server", "o-"), ("ring all-reduce", "s-")]:
    g = sync_ps[sync_ps["comm"] == label]
    ax.plot(g["n"], g["samples_per_s"], style, ms=4, label=f"Sync(n), {label}: theory")
    ax.plot(g["n"], g["n"] / g["clock"], "x", c="k", ms=5)
ax.plot(async_ps["n"], async_ps["theory"], "^-", ms=4, label="Async(n), parameter server: theory")
ax.plot(async_ps["n"], async_ps["clock"], "x", c="k", ms=5, label="clock")
ax.axhline(ceiling, ls=":", c="k", label=f"server link's ceiling, {ceiling:.1f} per s")
ax.set(
    xscale="log",
    yscale="log",
    xlabel="workers n",
    ylabel="gradients applied per second",
    title="4e7-byte messages over 1.25e9 bytes/s, compute 1 + Exp(mean 0.5) s",
)
ax.set_xticks(ns, [str(k) for k in ns], minor=False)
ax.set_xticks([], minor=True)
ax.title.set_fontsize(8)
ax.legend(fontsize=7)
out.figure("ps_saturation", fig)
sync_ps.pivot(index="n", columns="comm", values="samples_per_s")

# %%
d1 = delayed[delayed["delay"] == 1].set_index("r")
ps64 = float(sync_ps.query("comm == 'parameter server' and n == 64")["samples_per_s"].iloc[0])
ring64 = float(sync_ps.query("comm == 'ring all-reduce' and n == 64")["samples_per_s"].iloc[0])
out.number(
    max_rel_err_delayed=delayed["rel_err"].abs().max(),
    hides=bool((delayed.query("delay > 0 and r > 0")["speedup_clock"] > 1).all()),
    speedup_no_comm=d1.loc[0.0, "speedup_clock"],
    max_speedup_d1=d1["speedup_clock"].max(),
    r_at_max=d1["speedup_clock"].idxmax(),
    r_largest=d1.index.max(),
    max_speedup_d2=delayed.loc[delayed["delay"] == 2, "speedup_clock"].max(),
    delay_cost=cost["delayed_minus_sync"].round(3).tolist(),
    delay_cost_separated=int(cost["separated"].sum()),
    max_layerwise_gain=layerwise["gain"].max(),
    layerwise_gain_by_workload=layerwise.groupby("workload")["gain"].max().round(2).to_dict(),
    layerwise_ratio_at_max=float(layerwise.loc[layerwise["gain"].idxmax(), "ratio"]),
    ps_ceiling=bw / (2 * nbytes),
    ps_at_64=ps64,
    ps_sync_rel_err=(sync_ps["clock"] / sync_ps["theory"] - 1).abs().max(),
    ring_over_ps_at_64=ring64 / ps64,
    knee=(Z + s) / s,
    async_link_use=float(tput["simulated"].iloc[-1] * s),
    async_rel_err=(tput["simulated"] / tput["theory"] - 1).abs().max(),
    link_ceiling=ceiling,
    async_ps_at_64=float(async_ps.set_index("n").loc[64, "theory"]),
    async_same_link_rel_err=(async_ps["clock"] / async_ps["theory"] - 1).abs().max(),
    async_within_bounds=bool(
        ((tput["simulated"] <= upper * 1.02) & (tput["simulated"] >= lower * 0.98)).all()
    ),
)
reach = "reaches" if out["max_speedup_d1"] >= 1.7 else "stays below"
where = (
    f"at the largest exchange tried ({out['r_at_max']:g}x the mean compute time)"
    if out["r_at_max"] == out["r_largest"]
    else f"when the exchange takes {out['r_at_max']:g}x the mean compute time"
)
no_comm = (
    f"without communication it still gains {out['speedup_no_comm']:.2f}x, from not waiting for the "
    "slowest worker at every step"
    if out["speedup_no_comm"] > 1.02
    else f"without communication the gain is {out['speedup_no_comm']:.2f}x"
)
server = (
    f"saturates towards the link's ceiling bandwidth / (2 nbytes) = {out['ps_ceiling']:.1f} per "
    f"second ({out['ps_at_64']:.1f} at n = 64)"
    if out["ps_at_64"] > 0.5 * out["ps_ceiling"]
    else f"reaches {out['ps_at_64']:.1f} per second at n = 64 (the link's ceiling is {out['ps_ceiling']:.1f})"
)
knee = (
    f"saturates past the knee n* = {out['knee']:.1f} ({100 * out['async_link_use']:.0f} % of the link's "
    f"capacity at n = {ans[-1]})"
    if out["async_link_use"] > 0.9
    else f"uses {100 * out['async_link_use']:.0f} % of the link at n = {ans[-1]} (knee n* = {out['knee']:.1f})"
)
bounds = "inside" if out["async_within_bounds"] else "OUTSIDE"
out.conclusion(
    f"""**Answer.** Delayed(8, 1) {"hides communication: its" if out["hides"] else "does not always gain: its"}
step time on the clock agrees with theory within {100 * out["max_rel_err_delayed"]:.1f} %, and its
speed-up over Sync(8) is largest, {out["max_speedup_d1"]:.2f}x, {where} (delay 2:
{out["max_speedup_d2"]:.2f}x), which {reach} the 1.7x measured for asynchronous layer-wise SGD on
real clusters (OpenReview rkFd2P5gl); {no_comm}. In the study of Section 4 (each tuned, five
evaluation seeds) the delay changes plateau accuracy by
{", ".join(f"{100 * v:+.1f}" for v in out["delay_cost"])} points (workload x cluster size),
{out["delay_cost_separated"]} of {len(out["delay_cost"])} separated by Welch's test,
Holm-corrected. Layer-wise overlap, predicted from measured per-layer backward
times, gains at most {out["max_layerwise_gain"]:.2f}x
({", ".join(f"{k}: {v}x" for k, v in out["layerwise_gain_by_workload"].items())}), at an exchange
{out["layerwise_ratio_at_max"]:g}x as long as the compute; it stays below the bound
(F + B + C) / (F + max(B, C)) because the first layer's backward time passes before any exchange
can start and the last layer's exchange starts only when the backward pass ends. Through one
parameter server Sync(n)'s gradient rate {server}, while a ring all-reduce moves
{out["ring_over_ps_at_64"]:.1f}x as many gradients per second at n = 64 (clock within
{100 * out["ps_sync_rel_err"]:.1f} % of theory); Async(n) through one server {knee}, the clock within
{100 * out["async_rel_err"]:.1f} % of theory and {bounds} the operational bounds. Through Sync's
server link, Async(n) reaches {out["async_ps_at_64"]:.1f} gradients per second at n = 64, the
link's ceiling of {out["link_ceiling"]:.1f} that Sync through that server approaches from below
(clock within {100 * out["async_same_link_rel_err"]:.1f} % of theory)."""
)
