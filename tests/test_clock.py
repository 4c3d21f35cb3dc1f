"""The clock: long runs agree with theory, small runs match hand-derived tables, every gradient
is accounted for, seeds reproduce, failures stall or are absorbed."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from toolkit.cluster import simulate
from toolkit.cluster.barrier import delayed_updates
from toolkit.models import Empirical, Failures, ParameterServer, PerWorker, Trace
from toolkit.schemes import (
    EASGD,
    Async,
    Backup,
    Delayed,
    DiLoCo,
    KAsync,
    KBatchAsync,
    KBatchSync,
    LocalSGD,
    Sync,
)
from toolkit.theory.order_stats import expected_order_statistic
from toolkit.theory.step_time import step_time, step_time_estimate

EXP = stats.expon()


def H(n: int) -> float:
    """Harmonic number H_n = sum_{i<=n} 1/i."""
    return float(np.sum(1.0 / np.arange(1, n + 1)))


def step_stats(sched) -> tuple[float, float]:
    """Mean time per update and its standard error (updates of barrier schemes are i.i.d.)."""
    steps = np.diff(np.concatenate([[0.0], sched.update_times()]))
    return float(steps.mean()), float(steps.std(ddof=1) / math.sqrt(steps.size))


def batch_means(steps: np.ndarray, burn: int, batches: int = 50) -> tuple[float, float]:
    """Mean of ``steps`` after dropping the first ``burn`` and its batch-means standard error
    (``batches`` equal batches, long against the correlation time; Law & Kelton, *Simulation
    Modeling and Analysis*, sec. 9.5). The burn-in removes the start-up transient."""
    x = np.asarray(steps, dtype=float)[burn:]
    x = x[: x.size // batches * batches].reshape(batches, -1).mean(axis=1)
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(batches))


def const(*times: float) -> PerWorker:
    """Per-worker constant step times (a point mass is Empirical([t]))."""
    return PerWorker([Empirical([t]) for t in times])


ALL_SCHEMES = [
    Sync(4),
    Backup(3, 2),
    KBatchSync(4, 3),
    KBatchSync(3, 7),
    Async(5),
    KBatchAsync(5, 3),
    KAsync(5, 3),
    Delayed(4, 2),
    EASGD(4, 3, 0.1),
    EASGD(4, 3, 0.1, momentum=0.9),
    EASGD(4, 3, 0.1, synchronous=False),
    LocalSGD(3, 4),
    DiLoCo(3, 5),
]


# ------------------------------------------------------------------ agreement with theory
@pytest.mark.parametrize(
    ("scheme", "closed_form"),
    [
        (Sync(8), H(8)),  # E[max of n expon(1)] = H_n
        (Backup(6, 2), H(8) - H(2)),  # E[X_(n:n+b)] = H_{n+b} - H_b
        (Backup(1, 3), H(4) - H(3)),
        # superposition of n expon(1) renewal processes is Poisson(n): k-th event at k / n
        (KBatchSync(4, 3), 3 / 4),
        (KBatchSync(3, 7), 7 / 3),
    ],
)
def test_barrier_mean_step_time_matches_closed_form(scheme, closed_form):
    sched = simulate(scheme, EXP, updates=20_000, seed=1)
    mean, se = step_stats(sched)
    assert abs(mean - closed_form) < 5 * se
    assert step_time(scheme, EXP) == pytest.approx(closed_form, rel=1e-6)


@pytest.mark.parametrize(
    "scheme", [Sync(5), Backup(4, 2), KBatchSync(4, 6), Delayed(4, 1), Delayed(4, 3)]
)
@pytest.mark.parametrize("dist", [stats.lognorm(0.5), stats.uniform(1, 2)])
def test_barrier_mean_step_time_matches_step_time(scheme, dist):
    comm = ParameterServer(nbytes=1.0, bandwidth=4.0, latency=0.05)
    sched = simulate(scheme, dist, comm, updates=20_000, seed=2)
    est = step_time_estimate(scheme, dist, comm, samples=200_000, seed=3)
    mean, se = step_stats(sched)
    if scheme.rule.delay:  # successive steps are correlated: batch means after a burn-in
        mean, se = batch_means(np.diff(np.concatenate([[0.0], sched.update_times()])), 1000, 40)
    assert abs(mean - est.value) < 5 * math.hypot(se, est.se)


def test_sync_adds_exchange_time():
    comm = ParameterServer(nbytes=1.0, bandwidth=2.0, latency=0.1)  # c = 0.2 + 2 * 6 * 0.5
    sched = simulate(Sync(6), EXP, comm, updates=20_000, seed=4)
    mean, se = step_stats(sched)
    assert abs(mean - (H(6) + comm.exchange_time(6))) < 5 * se
    assert np.allclose(sched.used["comm_time"], comm.exchange_time(6))


def test_backup_drops_exactly_b_of_n_plus_b():
    sched = simulate(Backup(5, 3), stats.lognorm(1.0), updates=500, seed=5)
    assert sched.summary()["dropped_fraction"] == pytest.approx(3 / 8, abs=1e-12)
    per_update = sched.grads.groupby("update")["used"].agg(["sum", "size"])
    assert (per_update["sum"] == 5).all() and (per_update["size"] == 8).all()


def _replicated(scheme, dist, updates, seeds, fn):
    return np.array([fn(simulate(scheme, dist, updates=updates, seed=s)) for s in seeds])


@pytest.mark.parametrize(
    "dist",
    [EXP, stats.uniform(0.5, 1.0), stats.lognorm(0.8, scale=2.0)],
    ids=["expon", "uniform", "lognorm"],  # the same on every xdist worker (str shows an address)
)
def test_async_throughput_is_n_over_mu(dist):
    """Renewal reward: n independent renewal workers of mean mu deliver n / mu per unit time. The
    rate is counted after a burn-in of U / 10 updates (the all-fresh start makes the first
    updates early), so the only bias left is the ratio estimator's, O(1 / U) relative, far below
    the standard error over 20 seeds."""
    n, U = 6, 6000

    def rate(s):
        t = s.update_times()
        return (U - U // 10) / (t[-1] - t[U // 10 - 1])

    rates = _replicated(Async(n), dist, U, range(20), rate)
    se = rates.std(ddof=1) / math.sqrt(rates.size)
    assert abs(rates.mean() - n / dist.mean()) < 5 * se


def _steady_staleness(sched) -> float:
    """Mean staleness after a burn-in of a tenth of the updates (the first gradients of the
    all-fresh start are less stale than in steady state)."""
    used = sched.used
    burn = (used["update"].max() + 1) // 10
    return float(used.loc[used["update"] >= burn, "staleness"].mean())


@pytest.mark.parametrize(
    "compute",
    [
        EXP,
        stats.uniform(0.5, 1.0),
        stats.lognorm(1.0),
        PerWorker([stats.expon(scale=s) for s in (0.5, 1.0, 1.0, 2.0, 4.0)]),
    ],
    ids=["expon", "uniform", "lognorm", "heterogeneous"],
)
def test_async_mean_staleness_is_n_minus_1(compute):
    """Staleness of worker w's gradient = arrivals of the others between two of its own. With
    rates lambda_i (total Lambda), w sees (Lambda - lambda_w) / lambda_w per cycle on average and
    a fraction lambda_w / Lambda of the gradients, so the mean is sum_w (Lambda - lambda_w) /
    Lambda = n - 1 for ANY independent renewal workers, not only exponential or identical ones
    (the distribution of staleness does depend on the step-time law)."""
    n, U = 5, 5000
    means = _replicated(Async(n), compute, U, range(20), _steady_staleness)
    se = means.std(ddof=1) / math.sqrt(means.size)
    assert abs(means.mean() - (n - 1)) < 5 * se


def test_async_equal_constant_speeds_tie_rule():
    # all 4 arrive together at t = 1, 2, ...: applied in worker order, and each worker restarts
    # after all 4 updates of that instant, so staleness is 0, 1, 2, 3 (mean (n-1)/2, not n-1:
    # the n - 1 law needs ties of probability 0)
    sched = simulate(Async(4), const(1.0, 1.0, 1.0, 1.0), updates=400)
    st = sched.used.loc[sched.used["batch"] > 0]
    np.testing.assert_array_equal(st["staleness"], st["worker"])


@pytest.mark.parametrize(("n", "k"), [(6, 2), (6, 3), (5, 5), (8, 3)])
def test_kasync_mean_staleness_exponential(n, k):
    """Derivation (exponential i.i.d. workers): after worker w's arrival the number G of other
    arrivals before its next one is geometric with mean n - 1 (each arrival is w's with
    probability 1/n, memorylessness). Versions advance once per k arrivals; if the arrival after
    w's previous one sits at position m = 0..k-1 inside its group (uniform, independent of G),
    staleness = floor((m + G) / k), and by Hermite's identity sum_m floor((m + G)/k) = G, so
    E[staleness] = (n - 1) / k update units."""
    U = 20_000 // k
    means = _replicated(KBatchAsync(n, k), EXP, U, range(12), _steady_staleness)
    se = means.std(ddof=1) / math.sqrt(means.size)
    assert abs(means.mean() - (n - 1) / k) < 5 * se


def test_async_server_link_saturates_at_one_over_service_time():
    # 32 fast workers, a slow shared link: the server is busy all the time, rate -> 1 / s
    comm = ParameterServer(nbytes=1.0, bandwidth=10.0)  # s = 0.2, m = 0.2
    sched = simulate(Async(32), stats.expon(scale=0.5), comm, updates=3000, seed=6)
    t = sched.update_times()
    assert np.all(np.diff(t) >= 0.2 - 1e-12)  # the link serves one push + pull at a time
    assert (t[-1] - t[99]) / (len(t) - 100) == pytest.approx(0.2, rel=1e-9)
    # light load (n = 4, knee n* = (Z + s) / s = 12) and loaded (n = 12, at the knee, where
    # queueing matters most): agrees with the theory's simulation of the deterministic-service
    # network (not with MVA, which assumes exponential service and overestimates here)
    comm = ParameterServer(nbytes=1.0, bandwidth=20.0, latency=0.05)  # s = 0.1, Z = mu + 0.1
    for n in (4, 12):
        sched = simulate(Async(n), EXP, comm, updates=20_000, seed=7)
        mean, se = batch_means(np.diff(sched.update_times()), 2000)
        est = step_time_estimate(Async(n), EXP, comm, samples=100_000, seed=8)
        assert est.method == "monte-carlo"
        assert abs(mean - est.value) < 5 * math.hypot(se, est.se)


@pytest.mark.parametrize("n", [3, 6, 12])
@pytest.mark.parametrize(
    "dist", [Empirical([1.0]), stats.uniform(0.5, 1.0), EXP], ids=["const", "uniform", "expon"]
)
def test_async_server_link_theory_below_at_above_knee(dist, n):
    """s = 0.2, think Z = step time (latency 0), mu = 1: knee n* = (Z + s) / s = 6. The theory's
    simulation of the closed FIFO network and the clock's event heap agree within 5 combined
    standard errors. For constant times both are periodic: a window of whole periods but one
    (of length <= Z + s) is off by at most (Z + s) / window, added to the tolerance."""
    comm = ParameterServer(nbytes=1.0, bandwidth=10.0, latency=0.0)
    U, burn, samples = 20_000, 2000, 100_000
    sched = simulate(Async(n), dist, comm, updates=U, seed=n)
    mean, se = batch_means(np.diff(sched.update_times()), burn)
    est = step_time_estimate(Async(n), dist, comm, samples=samples, seed=n + 1)
    period = dist.mean() + 0.2
    tol = 5 * math.hypot(se, est.se) + period / (U - burn - 1) + period / samples
    assert abs(mean - est.value) < tol, (mean, se, est)
    # operational bounds: step >= s on every path, >= (Z + s) / n and <= (Z + n s) / n on average
    assert mean >= 0.2 * (1 - 1e-9)
    assert est.value >= (dist.mean() + 0.2) / n - tol
    assert est.value <= (dist.mean() + n * 0.2) / n + tol


def test_localsgd_period_time_matches_expected_max_of_gamma_sums():
    # a round is max over n workers of a sum of tau expon(1) = max of n gamma(tau)
    n, tau = 4, 5
    g = stats.gamma(tau)
    expected, _ = integrate.quad(lambda x: 1 - g.cdf(x) ** n, 0, np.inf)
    sched = simulate(LocalSGD(n, tau), EXP, updates=tau * 4000, seed=8)
    ex = sched.frame[sched.frame["kind"] == "exchange"]
    rounds = np.diff(np.concatenate([[0.0], ex.groupby("update")["time"].max().to_numpy()]))
    assert abs(rounds.mean() - expected) < 5 * rounds.std(ddof=1) / math.sqrt(rounds.size)
    assert step_time(LocalSGD(n, tau), EXP) == pytest.approx(expected / tau, rel=1e-6)


def test_order_statistic_closed_form_for_theory_cross_check():
    # guard the oracle used above: E[X_(n:n+b)] of expon(1) = H_{n+b} - H_b
    assert expected_order_statistic(EXP, 6, 8) == pytest.approx(H(8) - H(2), rel=1e-8)


# ------------------------------------------------------------------ identities
def _frames_equal(a, b):
    pd.testing.assert_frame_equal(a.frame, b.frame, check_exact=True)


def test_identities_between_schemes():
    d = stats.lognorm(0.7)
    _frames_equal(simulate(Backup(5, 0), d, updates=200), simulate(Sync(5), d, updates=200))
    _frames_equal(simulate(Delayed(5, 0), d, updates=200), simulate(Sync(5), d, updates=200))
    # the Delayed recursion itself at d = 0 is Sync's A_t = A_{t-1} + max_w X_wt + c
    x = stats.lognorm(0.7).rvs(size=(5, 200), random_state=1)
    np.testing.assert_allclose(delayed_updates(x, 0, 0.3)[0], np.cumsum(x.max(axis=0) + 0.3))
    _frames_equal(simulate(KBatchAsync(5, 1), d, updates=300), simulate(Async(5), d, updates=300))
    # Async(1) is serial SGD: staleness 0, update u at the sum of the first u + 1 step times
    s = simulate(Async(1), d, updates=100, seed=3)
    assert (s.frame["staleness"] == 0).all()
    ref = simulate(Sync(1), d, updates=100, seed=3)
    np.testing.assert_allclose(s.update_times(), ref.update_times(), rtol=1e-12)
    # KBatchAsync(n, n) on equal constant workers is Sync(n)
    k = simulate(KBatchAsync(3, 3), const(1.0, 1.0, 1.0), updates=10)
    assert (k.frame["staleness"] == 0).all()
    np.testing.assert_allclose(k.update_times(), np.arange(1, 11))


def test_heap_path_equals_merge_path():
    """Failures that never happen force the event heap: it must give the merge's schedule."""
    d = stats.gamma(2.0)
    for scheme in (Async(7), KBatchAsync(7, 3)):
        fast = simulate(scheme, d, updates=500, seed=9)
        heap = simulate(scheme, d, updates=500, seed=9, failures=Failures())
        _frames_equal(fast, heap)
    # very unequal speeds (one worker 100x faster): the ragged merge extends that worker only
    fast_one = PerWorker([stats.expon(scale=0.01)] + [EXP] * 9)
    fast = simulate(Async(10), fast_one, updates=3000, seed=9)
    _frames_equal(fast, simulate(Async(10), fast_one, updates=3000, seed=9, failures=Failures()))
    assert (fast.used["worker"] == 0).mean() > 0.85  # rate 100 of a total 109
    fast = simulate(Backup(4, 2), d, updates=200, seed=9)
    slow = simulate(Backup(4, 2), d, updates=200, seed=9, failures=Failures())
    pd.testing.assert_frame_equal(fast.frame, slow.frame, check_exact=False, rtol=1e-12)


# ------------------------------------------------------------------ every gradient once
@pytest.mark.parametrize("scheme", ALL_SCHEMES, ids=str)
def test_every_gradient_appears_exactly_once(scheme):
    sched = simulate(scheme, stats.lognorm(0.9), updates=60, seed=10)
    g = sched.grads
    for w, rows in g.groupby("worker"):
        assert np.array_equal(np.sort(rows["batch"].to_numpy()), np.arange(len(rows))), w
    assert set(g["worker"]) == set(range(scheme.rule.machines))
    rule = scheme.rule
    if rule.replicas:
        assert len(g) == rule.machines * 60  # updates = local steps per worker
        ex = sched.frame[sched.frame["kind"] == "exchange"]
        assert len(ex) == rule.machines * (60 // rule.period)
        assert (ex["version"] % rule.period == 0).all() and (ex["version"] > 0).all()
        assert (ex["batch"] == -1).all()
    else:
        assert len(sched.used) == rule.quorum * 60  # each update uses exactly quorum gradients
        assert (sched.used.groupby("update").size() == rule.quorum).all()
    # times never run backwards per worker, versions never exceed the update
    assert (g["version"] <= g["update"]).all()
    # compute times of used gradients are the worker's draws, positive
    assert (sched.used["compute_time"] > 0).all()


def test_compute_times_are_the_workers_streams():
    """The j-th gradient of worker w takes the j-th step time of w's stream (same for every
    scheme: common random numbers), except a cancelled one, which took less."""
    from toolkit.models.seeds import child_seed
    from toolkit.models.stragglers import Streams, as_compute

    d = stats.gamma(1.5)
    st = Streams(as_compute(d), 5, child_seed(child_seed(11), 0))
    buf = st.matrix(400)
    for scheme in (Async(5), KBatchAsync(5, 2), KBatchSync(5, 3), Sync(5), Delayed(5, 2)):
        g = simulate(scheme, d, updates=50, seed=11).grads
        x = buf[g["worker"].to_numpy(), g["batch"].to_numpy()]
        done = g["used"].to_numpy()
        np.testing.assert_array_equal(g["compute_time"].to_numpy()[done], x[done])
        assert np.all(g["compute_time"].to_numpy() <= x + 1e-12)


# ------------------------------------------------------------------ hand-derived tables
def _table(sched, cols=("update", "worker", "version", "staleness", "used", "batch")):
    return [tuple(r) for r in sched.grads[list(cols)].itertuples(index=False)]


def test_backup_3_plus_1_by_hand():
    # rows = steps, columns = workers 0..3. Backup(3, 1): the first 3 of 4 finishes are used.
    trace = Trace([[1.0, 2.0, 3.0, 4.0], [4.0, 1.0, 2.0, 3.0], [2.0, 2.0, 1.0, 5.0]])
    sched = simulate(Backup(3, 1), trace, updates=3)
    # u0: starts 0, finishes 1,2,3,4 -> T=3, worker 3 cancelled at 3 (spent 3), A0 = 3
    # u1: starts 3, finishes 4,1,2,3 -> T=3, worker 0 cancelled (spent 3), A1 = 6
    # u2: starts 6, finishes 2,2,1,5 -> T=2 (workers 2, 0, 1), worker 3 cancelled (2), A2 = 8
    expected = [
        # update, worker, version, staleness, used, batch, time, compute_time
        (0, 0, 0, 0, True, 0, 3.0, 1.0),
        (0, 1, 0, 0, True, 0, 3.0, 2.0),
        (0, 2, 0, 0, True, 0, 3.0, 3.0),
        (0, 3, 0, 0, False, 0, 3.0, 3.0),
        (1, 0, 1, 0, False, 1, 6.0, 3.0),
        (1, 1, 1, 0, True, 1, 6.0, 1.0),
        (1, 2, 1, 0, True, 1, 6.0, 2.0),
        (1, 3, 1, 0, True, 1, 6.0, 3.0),
        (2, 0, 2, 0, True, 2, 8.0, 2.0),
        (2, 1, 2, 0, True, 2, 8.0, 2.0),
        (2, 2, 2, 0, True, 2, 8.0, 1.0),
        (2, 3, 2, 0, False, 2, 8.0, 2.0),
    ]
    cols = ("update", "worker", "version", "staleness", "used", "batch", "time", "compute_time")
    assert _table(sched, cols) == expected


def test_async_three_constant_speeds_by_hand():
    # worker w takes w + 1 seconds per gradient: arrivals w0: 1,2,3,4,5; w1: 2,4; w2: 3.
    # Simultaneous arrivals are applied lower worker id first; a worker restarting at time t
    # reads every update applied at times <= t (so version = number of arrivals by then).
    sched = simulate(Async(3), const(1.0, 2.0, 3.0), updates=8)
    expected = [
        # update, worker, version, staleness, used, batch   (time)
        (0, 0, 0, 0, True, 0),  # t=1
        (1, 0, 1, 0, True, 1),  # t=2: w0 restarted at 1 (1 update applied)
        (2, 1, 0, 2, True, 0),  # t=2: w1 started at 0
        (3, 0, 3, 0, True, 2),  # t=3: w0 restarted at 2, updates 0, 1, 2 applied by then
        (4, 2, 0, 4, True, 0),  # t=3
        (5, 0, 5, 0, True, 3),  # t=4: w0 restarted at 3, updates 0..4 applied
        (6, 1, 3, 3, True, 1),  # t=4: w1 restarted at 2: version 3
        (7, 0, 7, 0, True, 4),  # t=5: w0 restarted at 4, updates 0..6 applied
    ]
    assert _table(sched) == expected
    np.testing.assert_array_equal(sched.frame["time"], [1, 2, 2, 3, 3, 4, 4, 5])


def test_kbatchasync_by_hand():
    # KBatchAsync(3, 2), speeds 1, 2, 3: arrival order as in the Async table, grouped in pairs.
    sched = simulate(KBatchAsync(3, 2), const(1.0, 2.0, 3.0), updates=4)
    expected = [
        (0, 0, 0, 0, True, 0),  # arrivals 0,1: w0 (t=1), w0 (t=2) -> update 0 at t=2
        (0, 0, 0, 0, True, 1),  # w0 restarted at t=1 before any update: version 0
        (1, 0, 1, 0, True, 2),  # arrivals 2,3: w1 (t=2), w0 (t=3) -> update 1 at t=3
        (1, 1, 0, 1, True, 0),  # (w0 restarted at 2, after update 0 at 2: version 1)
        (2, 0, 2, 0, True, 3),  # arrivals 4,5: w2 (t=3), w0 (t=4); w0 restarted at 3 (v=2)
        (2, 2, 0, 2, True, 0),
        (3, 0, 3, 0, True, 4),  # arrivals 6,7: w1 (t=4, restarted at 2: v=1), w0 (t=5, v=3)
        (3, 1, 1, 2, True, 1),
    ]
    assert _table(sched) == expected
    np.testing.assert_array_equal(sched.update_times(), [2, 3, 4, 5])


def test_kasync_by_hand():
    # KAsync(3, 2), speeds 1, 2, 3 (Dutta et al.'s K-async): each update waits for the first two
    # distinct workers, which restart at the update reading the new version; the third keeps
    # computing on its old version.
    sched = simulate(KAsync(3, 2), const(1.0, 2.0, 3.0), updates=3)
    cols = ("update", "worker", "version", "staleness", "used", "batch", "time")
    assert _table(sched, cols) == [
        # u0: finishes w0 1, w1 2, w2 3 -> w0, w1 at A0 = 2; they restart at 2 on version 1
        (0, 0, 0, 0, True, 0, 2.0),
        (0, 1, 0, 0, True, 0, 2.0),
        # u1: finishes w0 3, w1 4, w2 3 -> tie at 3: w0 then w2 (worker id); A1 = 3
        (1, 0, 1, 0, True, 1, 3.0),
        (1, 2, 0, 1, True, 0, 3.0),
        # u2: w0 restarted at 3 (finish 4), w1 finish 4 (version 1), w2 restarted (finish 6)
        (2, 0, 2, 0, True, 2, 4.0),
        (2, 1, 1, 1, True, 1, 4.0),
    ]


def test_kasync_identities_with_sync_and_async():
    """KAsync(n, n) is Sync(n) (same rows; times equal up to summation order) and KAsync(n, 1)
    is Async(n) (same rule, same path)."""
    d = stats.lognorm(0.7)
    comm = ParameterServer(nbytes=1.0, bandwidth=4.0, latency=0.05)
    a = simulate(KAsync(5, 5), d, comm, updates=300, seed=2).frame
    b = simulate(Sync(5), d, comm, updates=300, seed=2).frame
    pd.testing.assert_frame_equal(a.drop(columns="time"), b.drop(columns="time"))
    np.testing.assert_allclose(a["time"], b["time"], rtol=1e-12)
    _frames_equal(simulate(KAsync(5, 1), d, updates=300), simulate(Async(5), d, updates=300))


def test_kasync_exponential_step_time_is_the_kth_order_statistic():
    """Memoryless workers: every K-async iteration lasts X_(K:P) (Dutta et al., AISTATS 2018,
    Supp. 7.3.1), so the clock's mean time per update is H_P - H_{P-K} for expon(1)."""
    sched = simulate(KAsync(8, 3), EXP, updates=20_000, seed=4)
    mean, se = step_stats(sched)
    assert abs(mean - (H(8) - H(5))) < 5 * se


def test_kbatchsync_by_hand():
    # KBatchSync(2, 2), worker 0 takes 1 s, worker 1 takes 3 s: worker 0 finishes two
    # mini-batches by t=2 (both used), worker 1's batch in flight is cancelled at 2 (dropped,
    # spent 2); all restart at 2.
    sched = simulate(KBatchSync(2, 2), const(1.0, 3.0), updates=2)
    cols = ("update", "worker", "version", "used", "batch", "time", "compute_time")
    assert _table(sched, cols) == [
        (0, 0, 0, True, 0, 2.0, 1.0),
        (0, 0, 0, True, 1, 2.0, 1.0),
        (0, 1, 0, False, 0, 2.0, 2.0),
        (1, 0, 1, True, 2, 4.0, 1.0),
        (1, 0, 1, True, 3, 4.0, 1.0),
        (1, 1, 1, False, 1, 4.0, 2.0),
    ]
    # ties at the k-th instant: times 1 and 2, k = 2: w0 at 1 and 2, w1 at 2 -> w1's finished
    # gradient is beyond the quorum (dropped, full 2 s); w0 does not start a third batch at 2
    sched = simulate(KBatchSync(2, 2), const(1.0, 2.0), updates=1)
    assert _table(sched, cols) == [
        (0, 0, 0, True, 0, 2.0, 1.0),
        (0, 0, 0, True, 1, 2.0, 1.0),
        (0, 1, 0, False, 0, 2.0, 2.0),
    ]


@pytest.mark.parametrize(("x", "c"), [(1.0, 3.0), (3.0, 1.0)])
def test_delayed_overlaps_compute_and_exchange(x, c):
    """Equal constant workers, d = 1: C_t = max(C_{t-1}, A_{t-2}) + x, A_t = max(C_t, A_{t-1}) + c.
    x = 1, c = 3: C = 1, 2, 5, 8, ...; A = 4, 7, 10, 13 (the link is busy: +c per step).
    x = 3, c = 1: C = 3, 6, 9, ...; A = 4, 7, 10 (compute never waits: +x per step)."""
    comm = ParameterServer(nbytes=c / 4, bandwidth=1.0)  # exchange_time(2) = 2 * 2 * c / 4 = c
    assert comm.exchange_time(2) == pytest.approx(c)
    d1 = simulate(Delayed(2, 1), const(x, x), comm, updates=6)
    d0 = simulate(Delayed(2, 0), const(x, x), comm, updates=6)
    np.testing.assert_allclose(np.diff(d1.update_times()), max(x, c))  # max, not the sum
    np.testing.assert_allclose(np.diff(d0.update_times()), x + c)
    assert d1.update_times()[0] == pytest.approx(x + c)
    g = d1.grads
    np.testing.assert_array_equal(g["version"], np.maximum(g["update"] - 1, 0))
    np.testing.assert_array_equal(g["staleness"], np.minimum(g["update"], 1))


ALTERNATING = Trace([[3.0, 1.0], [1.0, 3.0]])  # worker 0: 3, 1, 3, 1, ...; worker 1: 1, 3, 1, 3


def test_delayed_alternating_workers_by_hand_no_comm():
    """Delayed(2, 1), no comm: S_wt = max(C_w,t-1, A_{t-2}), C_wt = S_wt + X_wt,
    A_t = max(C_0t, C_1t, A_{t-1}).

    t | gate A_{t-2} | worker 0: start, end | worker 1: start, end | A_t
    0 |      0       |        0, 3          |        0, 1          |  3
    1 |      0       |        3, 4          |        1, 4          |  4
    2 |  A_0 = 3     |        4, 7          |  max(4, 3) = 4, 5    |  7
    3 |  A_1 = 4     |        7, 8          |  max(5, 4) = 5, 8    |  8
    4 |  A_2 = 7     |        8, 11         |  max(8, 7) = 8, 9    | 11
    5 |  A_3 = 8     |       11, 12         |  max(9, 8) = 9, 12   | 12

    From t = 2 on the state repeats every 2 steps shifted by 4 (each worker does one 3 and one 1
    per 2 steps and never waits), so A_{2k} = 3 + 4k, A_{2k+1} = 4 + 4k: 2 per step in the long
    run ((A_7 - A_0) / 7 = 13 / 7 = 1.857... over the first 8), against 3 for Sync(2), whose
    every step waits for the worker that drew 3."""
    d = simulate(Delayed(2, 1), ALTERNATING, updates=8)
    np.testing.assert_array_equal(d.update_times(), [3, 4, 7, 8, 11, 12, 15, 16])
    np.testing.assert_array_equal(
        simulate(Sync(2), ALTERNATING, updates=8).update_times(), 3.0 * np.arange(1, 9)
    )
    long = simulate(Delayed(2, 1), ALTERNATING, updates=1000).update_times()
    assert long[-1] == 2 * 1000  # A_{2K-1} = 4K with 2K = 1000 updates
    cols = ("update", "worker", "version", "staleness", "time", "compute_time")
    assert _table(d, cols)[:6] == [
        (0, 0, 0, 0, 3.0, 3.0),
        (0, 1, 0, 0, 3.0, 1.0),
        (1, 0, 0, 1, 4.0, 1.0),
        (1, 1, 0, 1, 4.0, 3.0),
        (2, 0, 1, 1, 7.0, 3.0),
        (2, 1, 1, 1, 7.0, 1.0),
    ]


def test_delayed_alternating_workers_by_hand_with_comm():
    """Same trace, exchange c = 1 on the link: A_t = max(C_0t, C_1t, A_{t-1}) + 1.

    t | gate | worker 0: start, end | worker 1: start, end | A_t
    0 |  0   |        0, 3          |        0, 1          | max(3, 1, 0) + 1 = 4
    1 |  0   |        3, 4          |        1, 4          | max(4, 4, 4) + 1 = 5
    2 |  4   |        4, 7          |        4, 5          | max(7, 5, 5) + 1 = 8
    3 |  5   |        7, 8          |        5, 8          | max(8, 8, 8) + 1 = 9
    4 |  8   |        8, 11         |        8, 9          | 12
    5 |  9   |       11, 12         |        9, 12         | 13

    4 per 2 steps again (the exchanges hide under the compute), against Sync's 3 + 1 per step.
    d = 2 (gate A_{t-3}): worker 0 never waits either (its ends 3, 4, 7, 8, ... exceed the gate),
    worker 1's ends are 1, 4, 5, 8, 9, ... and A_t = max(ends) + 1 = 4, 5, 8, 9, ... the same."""
    comm = ParameterServer(nbytes=0.25, bandwidth=1.0)  # exchange_time(2) = 2 * 2 * 0.25 = 1
    for delay in (1, 2):
        d = simulate(Delayed(2, delay), ALTERNATING, comm, updates=6)
        np.testing.assert_array_equal(d.update_times(), [4, 5, 8, 9, 12, 13])
    sync = simulate(Sync(2), ALTERNATING, comm, updates=6)
    np.testing.assert_array_equal(sync.update_times(), 4.0 * np.arange(1, 7))


def test_easgd_sync_and_async_timelines_by_hand():
    # 2 workers of 1 s and 2 s, tau = 2, no comm: synchronous rounds end at 4, 8 (slowest),
    # asynchronous: each meets the centre on its own clock (w0 at 2, 4, 6; w1 at 4, 8, ...)
    sync = simulate(EASGD(2, 2, 0.1), const(1.0, 2.0), updates=4)
    ex = sync.frame[sync.frame["kind"] == "exchange"]
    assert list(ex[["update", "worker", "version", "time"]].itertuples(index=False, name=None)) == [
        (0, 0, 2, 4.0),
        (0, 1, 2, 4.0),
        (1, 0, 4, 8.0),
        (1, 1, 4, 8.0),
    ]
    w0 = sync.grads[sync.grads["worker"] == 0]
    np.testing.assert_array_equal(w0["time"], [1, 2, 5, 6])  # waits at the barrier until 4
    asyn = simulate(EASGD(2, 2, 0.1, synchronous=False), const(1.0, 2.0), updates=4)
    ex = asyn.frame[asyn.frame["kind"] == "exchange"]
    assert list(ex[["update", "worker", "version", "time"]].itertuples(index=False, name=None)) == [
        (0, 0, 2, 2.0),
        (1, 0, 4, 4.0),
        (2, 1, 2, 4.0),
        (3, 1, 4, 8.0),
    ]


# ------------------------------------------------------------------ seeds
@pytest.mark.parametrize("scheme", ALL_SCHEMES, ids=str)
def test_same_seed_same_schedule_different_seed_different(scheme):
    d = stats.lognorm(0.5)
    a = simulate(scheme, d, updates=40, seed=123)
    b = simulate(scheme, d, updates=40, seed=123)
    c = simulate(scheme, d, updates=40, seed=124)
    pd.testing.assert_frame_equal(a.frame, b.frame, check_exact=True)
    assert a.meta == b.meta
    assert not a.frame["time"].equals(c.frame["time"])


# ------------------------------------------------------------------ failures
def test_sync_stalls_when_a_worker_dies():
    sched = simulate(Sync(4), const(1.0, 1.0, 1.0, 1.0), updates=100, failures=Failures({2: 5.0}))
    assert sched.status == "stalled"
    assert "worker 2" in sched.message and "t=5" in sched.message
    assert sched.updates == 5  # updates 0..4 finish at t = 1..5; the 6th needs worker 2
    np.testing.assert_allclose(sched.update_times(), [1, 2, 3, 4, 5])


def test_backup_absorbs_up_to_b_failures():
    f = Failures({0: 2.5, 3: 4.0})
    sched = simulate(Backup(3, 2), const(1.0, 1.0, 1.0, 1.0, 1.0), updates=20, failures=f)
    assert sched.status == "ok" and sched.updates == 20
    np.testing.assert_allclose(sched.update_times(), np.arange(1, 21))
    g = sched.grads
    # worker 0 died during its 3rd step (lost, no row); worker 3 finished 4 steps, died at t=4
    assert len(g[g["worker"] == 0]) == 2 and len(g[g["worker"] == 3]) == 4
    third = simulate(
        Backup(3, 2), const(*[1.0] * 5), updates=20, failures=Failures({0: 2.5, 3: 4.0, 4: 7.0})
    )
    assert third.status == "stalled" and third.updates == 7
    assert "worker 0" in third.message and "worker 3" in third.message


def test_failure_with_repair_resumes_the_same_batch():
    f = Failures({1: 2.5}, repair=3.0)  # worker 1 is down in [2.5, 5.5)
    sched = simulate(Backup(1, 1), const(1.0, 1.0), updates=8, failures=f)
    assert sched.status == "ok"
    w1 = sched.grads[sched.grads["worker"] == 1]
    np.testing.assert_array_equal(w1["batch"], np.arange(len(w1)))
    # its 3rd gradient (update 2, from t=2) is lost at 2.5; it is down through updates 2..4;
    # back at 5.5 during update 5 (t in [5, 6]) it recomputes that batch and is cancelled at 6
    assert list(w1["update"]) == [0, 1, 5, 6, 7]
    assert list(w1["used"]) == [False, False, False, False, False]  # ties go to worker 0
    assert w1["compute_time"].tolist() == [1.0, 1.0, 0.5, 1.0, 1.0]


def test_async_all_dead_stalls_and_rate_failures_with_repair_run():
    f = Failures({0: 3.5, 1: 1.5})
    sched = simulate(Async(2), const(1.0, 1.0), updates=50, failures=f)
    assert sched.status == "stalled" and len(sched.grads) == 4  # w0: t=1,2,3; w1: t=1
    assert "worker 0 failed at t=3.5" in sched.message
    rate = Failures(rate=0.05, repair=stats.expon(scale=2.0))
    s = simulate(Async(6), EXP, updates=3000, seed=12, failures=rate)
    assert s.status == "ok" and s.updates == 3000
    for _, rows in s.grads.groupby("worker"):
        assert np.array_equal(rows["batch"].sort_values(), np.arange(len(rows)))
    b = simulate(Backup(4, 2), EXP, updates=500, seed=13, failures=Failures(rate=0.02, repair=1.0))
    assert b.status == "ok" and (b.used.groupby("update").size() == 4).all()


@pytest.mark.parametrize("repair", [2.0, stats.expon(scale=2.0)], ids=["fixed", "expon"])
def test_async_rate_failures_throughput_exact(repair):
    """Async(n), expon(1) steps, failures at rate lam while up, repair time D, the interrupted
    mini-batch recomputed from scratch (same length x). Given x, with tau ~ Exp(lam) the time to
    the next failure: T = x if tau >= x, else tau + D + T' (T' an independent copy), so
    E[T] = E[min(tau, x)] + P(tau < x) (E[D] + E[T]) = (1 - e^{-lam x}) (1/lam + E[D]) + (1 -
    e^{-lam x}) E[T] ... i.e. E[T | x] = (e^{lam x} - 1)(1/lam + E[D]). With x ~ Exp(1) and lam < 1,
    E[e^{lam x}] = 1 / (1 - lam): E[T] = (1 + lam E[D]) / (1 - lam). Each worker is a renewal
    process (restarts are memoryless for the failure clock), so the n workers deliver
    n (1 - lam) / (1 + lam E[D]) gradients per unit time (only E[D] enters)."""
    lam, n, U = 0.05, 6, 5000
    want = n * (1 - lam) / (1 + lam * 2.0)

    def rate(sched):
        t = sched.update_times()
        return (U - U // 10) / (t[-1] - t[U // 10 - 1])  # after a burn-in of U / 10 updates

    f = Failures(rate=lam, repair=repair)
    rates = np.array(
        [rate(simulate(Async(n), EXP, updates=U, seed=s, failures=f)) for s in range(10)]
    )
    se = rates.std(ddof=1) / math.sqrt(rates.size)
    assert abs(rates.mean() - want) < 5 * se
    assert want < n  # the oracle differs from the failure-free n / mu by far more than 5 se
    assert n - rates.mean() > 5 * se


# ------------------------------------------------------------------ invalid input
@pytest.mark.parametrize("updates", [0, -3, 1.5, True])
def test_updates_must_be_positive_integer(updates):
    with pytest.raises(ValueError, match="updates"):
        simulate(Sync(2), EXP, updates=updates)


def test_invalid_inputs_name_the_problem():
    with pytest.raises(ValueError, match="dists"):
        simulate(Sync(3), [EXP, EXP], updates=5)
    with pytest.raises(ValueError, match="times"):
        simulate(Sync(3), Trace(np.ones((4, 2))), updates=5)
    with pytest.raises(ValueError, match="compute"):
        simulate(Sync(3), "expon", updates=5)
    with pytest.raises(ValueError, match="compute"):
        simulate(Sync(3), stats.norm(0, 1), updates=5)  # negative step times
    # refused up front, like the theory, not when a negative draw happens to come
    with pytest.raises(ValueError, match="compute"):
        simulate(Sync(4), stats.norm(4, 1), updates=1)
    with pytest.raises(ValueError, match="compute"):
        simulate(Sync(2), Empirical([0.0, 1.0]), updates=1)  # zero-length steps
    with pytest.raises(ValueError, match="compute"):
        simulate(Sync(2), stats.poisson(3), updates=1)  # discrete
    with pytest.raises(ValueError, match="scheme"):
        simulate("sync", EXP, updates=5)
    with pytest.raises(ValueError, match="comm"):
        simulate(Sync(3), EXP, comm="ring", updates=5)
    with pytest.raises(ValueError, match="seed"):
        simulate(Sync(3), EXP, updates=5, seed=-1)
    with pytest.raises(ValueError, match="failures"):
        simulate(LocalSGD(3, 2), EXP, updates=5, failures=Failures({0: 1.0}))
    with pytest.raises(ValueError, match="at"):
        simulate(Sync(3), EXP, updates=5, failures=Failures({7: 1.0}))


@pytest.mark.parametrize(
    "scheme",
    [
        EASGD(4, tau=3, alpha=0.1),
        LocalSGD(4, tau=2),
        DiLoCo(4, h=3),
        EASGD(4, 2, 0.1, synchronous=False),
    ],
)
def test_replica_exchange_never_precedes_the_local_step_it_follows(scheme):
    """An exchange at local version t comes after the worker's local step t - 1 in time order
    (rounding once put it one ulp earlier)."""
    frame = simulate(scheme, stats.lognorm(0.7), updates=300, seed=3).frame
    grads = frame[frame["kind"] == "grad"].set_index(["worker", "version"])["time"]
    ex = frame[frame["kind"] == "exchange"]
    before = grads.loc[list(zip(ex["worker"], ex["version"] - 1, strict=True))].to_numpy()
    assert (ex["time"].to_numpy() >= before).all()
    # and the frame's order agrees: row position of each exchange is after its local step
    pos = {
        (w, v, k): i
        for i, (w, v, k) in enumerate(zip(frame.worker, frame.version, frame.kind, strict=True))
    }
    assert all(
        pos[(w, v, "exchange")] > pos[(w, v - 1, "grad")]
        for w, v in zip(ex.worker, ex.version, strict=True)
    )


@pytest.mark.parametrize("delay", [0, 1, 2, 5])
def test_delayed_recursion_in_blocks_and_batches_is_one_recursion(delay):
    """The clock runs delayed_updates on one cluster in one call, the theory's Monte Carlo on a
    batch of clusters in blocks (continuing from the returned state): the same numbers."""
    x = np.random.default_rng(delay).exponential(size=(6, 40))
    whole, _ = delayed_updates(x, delay, 0.3)
    for batch in (x, x[None]):
        state, parts = None, []
        for lo in range(0, 40, 7):
            a, state = delayed_updates(batch[..., lo : lo + 7], delay, 0.3, state)
            parts.append(a)
        np.testing.assert_allclose(np.concatenate(parts, axis=-1).reshape(-1), whole, rtol=1e-15)
