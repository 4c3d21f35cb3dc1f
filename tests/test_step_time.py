"""Expected step time and throughput per scheme (toolkit.theory.step_time).

Oracles: closed forms for exponential step times (Rényi: E[X_(k:n)] = loc + scale (H_n - H_{n-k});
a Poisson superposition for K-batch-sync), independent Monte Carlo simulations written here
(tolerance 5 standard errors, fixed seeds), a numpy CTMC for the exponential-service queue (MVA),
hand-derived closed forms for the deterministic-service server link (constant times; two
exponential workers), and the operational-analysis bounds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from toolkit.models import Empirical, ParameterServer, RingAllReduce
from toolkit.models.comm import exchange_cost
from toolkit.schemes import (
    EASGD,
    Async,
    Backup,
    Delayed,
    DiLoCo,
    KBatchAsync,
    KBatchSync,
    LocalSGD,
    Sync,
)
from toolkit.theory.queueing import mva, ps_bounds, saturation_point
from toolkit.theory.renewal import kbatch_sync_time
from toolkit.theory.step_time import (
    gradients_per_update,
    step_time,
    step_time_estimate,
    throughput,
)

EXP = stats.expon(loc=1.0, scale=0.5)
LOGN = stats.lognorm(0.6, scale=1.0)  # no closed form: quadrature / Monte Carlo paths
PS = ParameterServer(nbytes=4e6, bandwidth=1.25e9, latency=1e-4)


def harmonic(n: int) -> float:
    return float(np.sum(1.0 / np.arange(1, n + 1))) if n > 0 else 0.0


def assert_mc(value: float, draws: np.ndarray, se_extra: float = 0.0) -> None:
    """value agrees with the mean of i.i.d. draws within 5 standard errors."""
    se = math.hypot(draws.std(ddof=1) / math.sqrt(draws.size), se_extra)
    assert abs(value - draws.mean()) < 5 * se, (value, draws.mean(), se)


# --------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("n", [1, 5, 40])
def test_sync_exponential_is_loc_plus_scale_harmonic(n):
    assert step_time(Sync(n), EXP) == pytest.approx(1.0 + 0.5 * harmonic(n), rel=1e-10)


@pytest.mark.parametrize(("n", "b"), [(1, 0), (8, 2), (96, 4), (10, 30)])
def test_backup_exponential_closed_form(n, b):
    want = 1.0 + 0.5 * (harmonic(n + b) - harmonic(b))
    assert step_time(Backup(n, b), EXP) == pytest.approx(want, rel=1e-10)


def test_sync_comm_adds_exchange_time():
    assert step_time(Sync(20), EXP, PS) == pytest.approx(
        step_time(Sync(20), EXP) + PS.exchange_time(20), rel=1e-12
    )


def test_backup_exchange_is_n_gradients_in_and_m_models_out():
    # parameter server: 2 latency + (n + m) nbytes / bandwidth
    n, b = 30, 5
    want = 2 * PS.latency + (n + n + b) * PS.nbytes / PS.bandwidth
    assert exchange_cost(PS, n, n + b) == pytest.approx(want, rel=1e-12)
    assert step_time(Backup(n, b), EXP, PS) == pytest.approx(
        step_time(Backup(n, b), EXP) + want, rel=1e-12
    )


# --------------------------------------------------------------------------- Monte Carlo
def order_stat_draws(dist, q, m, reps, seed):
    x = dist.rvs(size=(reps, m), random_state=np.random.default_rng(seed))
    return np.partition(x, q - 1, axis=1)[:, q - 1]


@pytest.mark.parametrize("scheme", [Sync(12), Backup(10, 3)])
def test_sync_family_matches_monte_carlo_lognormal(scheme):
    rule = scheme.rule
    draws = order_stat_draws(LOGN, rule.quorum, rule.machines, 40_000, seed=1)
    assert_mc(step_time(scheme, LOGN), draws)


def test_sync_family_empirical_trace_matches_monte_carlo():
    trace = Empirical(LOGN.rvs(size=50, random_state=3))
    draws = order_stat_draws(trace, 7, 9, 40_000, seed=4)
    assert_mc(step_time(Backup(7, 2), trace), draws)


def kbatch_draws(dist, n, k, reps, seed):
    """Direct simulation: every worker runs k mini-batches back to back; the iteration ends at
    the k-th smallest of all n k arrival times."""
    rng = np.random.default_rng(seed)
    x = np.cumsum(dist.rvs(size=(reps, n, k), random_state=rng), axis=2)
    return np.partition(x.reshape(reps, n * k), k - 1, axis=1)[:, k - 1]


@pytest.mark.parametrize(("n", "k"), [(10, 4), (10, 10), (5, 12), (1, 3)])
def test_kbatch_sync_exponential_is_k_scale_over_n(n, k):
    # superposition of n Poisson processes of rate 1/scale: k-th event at k scale / n
    # (Dutta et al., AISTATS 2018: K / (P mu))
    d = stats.expon(scale=0.7)
    assert step_time(KBatchSync(n, k), d) == pytest.approx(k * 0.7 / n, rel=1e-8)


def test_kbatch_sync_shifted_exponential_large_shift_limit():
    # k <= n and loc >> scale: second mini-batches never come first, so T = loc + E_(k:n)
    d = stats.expon(loc=100.0, scale=1.0)
    want = 100.0 + harmonic(10) - harmonic(5)
    assert step_time(KBatchSync(10, 5), d) == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize(("n", "k"), [(6, 4), (6, 15)])
def test_kbatch_sync_shifted_exponential_quadrature_vs_monte_carlo(n, k):
    est = kbatch_sync_time(n, k, EXP)
    assert est.method == "quadrature"
    assert_mc(est.value, kbatch_draws(EXP, n, k, 20_000, seed=5))


@pytest.mark.parametrize("dist", [LOGN, Empirical(LOGN.rvs(size=40, random_state=6))])
def test_kbatch_sync_monte_carlo_path_vs_independent_simulation(dist):
    est = kbatch_sync_time(8, 11, dist, samples=20_000, seed=7)
    assert est.method == "monte-carlo" and est.se > 0
    assert_mc(est.value, kbatch_draws(dist, 8, 11, 20_000, seed=8), se_extra=est.se)


def test_kbatch_sync_monte_carlo_when_fast_workers_exceed_the_first_draws():
    # k = n = 20 and a heavy tail: each worker first gets ceil(k/n) + 3 = 4 draws and fast workers
    # often finish more before T_k, so the sampler must extend those same realisations (redrawing
    # them from scratch biases T_k low by about 7 standard errors here)
    heavy = stats.lognorm(1.2)
    est = kbatch_sync_time(20, 20, heavy, samples=40_000, seed=15)
    assert_mc(est.value, kbatch_draws(heavy, 20, 20, 40_000, seed=16), se_extra=est.se)


def test_same_seed_same_numbers_and_seed_matters():
    a = step_time_estimate(KBatchSync(8, 11), LOGN, seed=3)
    b = step_time_estimate(KBatchSync(8, 11), LOGN, seed=3)
    c = step_time_estimate(KBatchSync(8, 11), LOGN, seed=4)
    assert a == b and a.value != c.value


def delayed_pipeline(dist, n, c, delay, steps, reps, seed):
    """Event-level timeline of Delayed(n, delay), one worker at a time (not vectorised like the
    code under test): worker w starts step u when it has finished its step u - 1 and update
    u - 1 - delay is applied; update u comes once all n gradients of step u are in and the link
    has finished exchange u - 1. Returns the mean period per run after a quarter burn-in."""
    rng = np.random.default_rng(seed)
    out = np.empty(reps)
    burn = steps // 4
    for r in range(reps):
        x = dist.rvs(size=(steps, n), random_state=rng)
        done = [0.0] * n  # each worker's finish time of its previous step
        exch_end = np.zeros(steps)
        for u in range(steps):
            gate = exch_end[u - 1 - delay] if u - 1 - delay >= 0 else 0.0
            for w in range(n):
                done[w] = max(done[w], gate) + x[u, w]
            exch_end[u] = max(max(done), exch_end[u - 1] if u else 0.0) + c
        out[r] = (exch_end[-1] - exch_end[burn - 1]) / (steps - burn)
    return out


@pytest.mark.parametrize("delay", [1, 2])
def test_delayed_monte_carlo_vs_independent_timeline(delay):
    comm = ParameterServer(nbytes=1e6, bandwidth=4e6, latency=0.0)  # c = 2: the max matters
    c = comm.exchange_time(4)
    for d in (stats.expon(), LOGN):
        est = step_time_estimate(Delayed(4, delay), d, comm, seed=2)
        assert est.method == "monte-carlo" and est.se > 0
        sim = delayed_pipeline(d, 4, c, delay, steps=400, reps=40, seed=10 + delay)
        assert_mc(est.value, sim, se_extra=est.se)
        # bounds: every worker computes every step (mu) and the link carries every exchange (c);
        # Sync waits for the slowest worker and then the exchange, E[X_(n:n)] + c
        assert est.value >= max(d.mean(), c) - 5 * est.se
        assert est.value <= step_time(Sync(4), d, comm) + 5 * est.se


@pytest.mark.parametrize(("x", "c"), [(1.0, 3.0), (3.0, 1.0), (2.0, 0.0)])
@pytest.mark.parametrize("delay", [1, 3])
def test_delayed_constant_times_is_max_of_compute_and_comm(x, c, delay):
    """Constant X and c: every worker is in lock step, C_t = max(C_{t-1}, A_{t-d-1}) + X and
    A_t = max(C_t, A_{t-1}) + c. If X >= c the compute never waits for the gate (A_{t-d-1} <=
    C_{t-d} + ... <= C_{t-1}) and the link keeps up, so A_t - A_{t-1} = X; if X < c the link is
    the bottleneck and A_t - A_{t-1} = c: max(X, c) per step (d = 0 would give X + c)."""
    comm = None if c == 0 else ParameterServer(nbytes=c / 8, bandwidth=1.0)  # exchange_time(4) = c
    if comm is not None:
        assert comm.exchange_time(4) == pytest.approx(c)
    est = step_time_estimate(Delayed(4, delay), Empirical([x]), comm)
    assert est.value == pytest.approx(max(x, c), rel=1e-9)
    assert est.se == pytest.approx(0.0, abs=1e-9)
    assert step_time(Delayed(4, 0), Empirical([x]), comm) == pytest.approx(x + c, rel=1e-12)


def test_delayed_without_comm_is_faster_than_sync():
    """No comm: Sync waits for the slowest worker every step (E[X_(n:n)]); with delay >= 1 a worker
    only waits for update t - d - 1, so its slow steps overlap other workers' fast ones and the
    period drops strictly below E[X_(n:n)] for non-constant step times (and stays >= mu)."""
    for d in (EXP, LOGN):
        sync = step_time(Sync(7), d)
        for delay in (1, 3):
            est = step_time_estimate(Delayed(7, delay), d, seed=5)
            assert est.value + 5 * est.se < sync
            assert est.value > d.mean() - 5 * est.se
    # more delay hides more
    t1 = step_time_estimate(Delayed(7, 1), LOGN, seed=6)
    t3 = step_time_estimate(Delayed(7, 3), LOGN, seed=7)
    assert t3.value < t1.value + 5 * math.hypot(t1.se, t3.se)


@pytest.mark.parametrize("tau", [1, 5])
def test_period_schemes_exponential_gamma_sums_vs_monte_carlo(tau):
    rng = np.random.default_rng(11)
    n = 6
    s = EXP.rvs(size=(40_000, n, tau), random_state=rng).sum(axis=2).max(axis=1)
    for scheme in (LocalSGD(n, tau), EASGD(n, tau, 0.1), DiLoCo(n, tau)):
        est = step_time_estimate(scheme, EXP)
        assert est.method == "exact"
        assert_mc(est.value * tau, s)
    with_comm = step_time(LocalSGD(n, tau), EXP, PS)
    assert with_comm == pytest.approx(step_time(LocalSGD(n, tau), EXP) + PS.exchange_time(n) / tau)


def test_period_scheme_lognormal_monte_carlo_vs_independent_draws():
    est = step_time_estimate(LocalSGD(5, 3), LOGN, seed=12)
    assert est.method == "monte-carlo"
    s = LOGN.rvs(size=(20_000, 5, 3), random_state=np.random.default_rng(13)).sum(axis=2)
    assert_mc(est.value * 3, s.max(axis=1), se_extra=est.se * 3)


# --------------------------------------------------------------------------- async: renewal
def renewal_rate(dist, n, horizon, reps, seed):
    """Long-run rate of gradient arrivals from n independent renewal workers, counted in
    [horizon/4, horizon] (after a warm-up) in each of reps runs."""
    rng = np.random.default_rng(seed)
    mu = dist.mean()
    steps = int(horizon / mu * 1.5) + 50
    rates = np.empty(reps)
    for r in range(reps):
        t = np.cumsum(dist.rvs(size=(n, steps), random_state=rng), axis=1)
        assert np.all(t[:, -1] > horizon)
        count = np.count_nonzero((t > horizon / 4) & (t <= horizon))
        rates[r] = count / (0.75 * horizon)
    return rates


@pytest.mark.parametrize("dist", [stats.uniform(loc=0.5, scale=1.0), LOGN])
def test_async_update_rate_matches_renewal(dist):
    n = 3
    rates = renewal_rate(dist, n, horizon=400.0, reps=200, seed=14)
    assert_mc(1.0 / step_time(Async(n), dist), rates)
    assert step_time(KBatchAsync(n, 2), dist) == pytest.approx(2 * dist.mean() / n, rel=1e-12)


def test_async_one_worker_is_serial():
    assert step_time(Async(1), LOGN) == pytest.approx(LOGN.mean(), rel=1e-12)


def test_async_easgd_renewal_per_local_step():
    tau = 4
    assert step_time(EASGD(5, tau, 0.1, synchronous=False), EXP) == pytest.approx(EXP.mean())
    # no contention (a nearly free server link): mu + message_time / tau
    cheap = ParameterServer(nbytes=1.0, bandwidth=1e12, latency=0.01)
    want = EXP.mean() + cheap.message_time() / tau
    got = step_time_estimate(EASGD(5, tau, 0.1, synchronous=False), EXP, cheap, seed=1)
    assert got.method == "monte-carlo"
    assert abs(got.value - want) < 5 * got.se
    # constant step times: think = tau + message_time - s, closed form max(s, (think + s) / n)
    # per exchange, n / tau exchanges per local step (see the Async constant-time test)
    # (up to one partial period of length <= Z + s = 5 in a window of >= 20 000 exchanges)
    link = ParameterServer(nbytes=1.0, bandwidth=2.0, latency=0.0)  # s = 1, think = 4 + 0
    got = step_time(EASGD(3, tau, 0.1, synchronous=False), Empirical([1.0]), link, samples=20_000)
    assert abs(got - 3 / tau * max(1.0, (4.0 + 1.0) / 3)) <= 3 / tau * 5.0 / 20_000


def test_ring_allreduce_with_async_raises():
    ring = RingAllReduce(nbytes=1e6, bandwidth=1e9)
    with pytest.raises(ValueError, match="comm"):
        step_time(Async(4), EXP, ring)
    with pytest.raises(ValueError, match="comm"):
        step_time(KBatchAsync(4, 2), EXP, ring)
    assert step_time(Sync(4), EXP, ring) == pytest.approx(
        step_time(Sync(4), EXP) + ring.exchange_time(4)
    )


# --------------------------------------------------------------------------- async: MVA
def ctmc_throughput(n: int, think: float, service: float) -> float:
    """Closed network with exponential think (rate 1/Z each) and service (rate 1/s): birth-death
    chain on j = number at the server; throughput = P(j > 0) / s."""
    q = np.zeros((n + 1, n + 1))
    for j in range(n + 1):
        if j < n:
            q[j, j + 1] = (n - j) / think
        if j > 0:
            q[j, j - 1] = 1.0 / service
        q[j, j] = -q[j].sum()
    a = np.vstack([q.T, np.ones(n + 1)])
    rhs = np.zeros(n + 2)
    rhs[-1] = 1.0
    pi = np.linalg.lstsq(a, rhs, rcond=None)[0]
    return (1.0 - pi[0]) / service


def test_mva_one_worker():
    table = mva(1, think=2.0, service=0.5)
    assert table["throughput"].iloc[0] == pytest.approx(1.0 / 2.5, rel=1e-14)


def test_mva_two_workers_by_hand():
    # 3-state CTMC: pi0 2/Z = pi1/s, pi1/Z = pi2/s -> pi1 = 2 s/Z pi0, pi2 = 2 (s/Z)^2 pi0
    z, s = 2.0, 0.5
    r = s / z
    pi0 = 1.0 / (1 + 2 * r + 2 * r * r)
    want = (1 - pi0) / s
    assert mva(2, z, s)["throughput"].iloc[-1] == pytest.approx(want, rel=1e-12)
    assert ctmc_throughput(2, z, s) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize(("z", "s"), [(1.0, 0.1), (1.5, 0.0064), (0.2, 1.0)])
def test_mva_equals_ctmc_and_bounds_hold(z, s):
    table = mva(60, z, s)
    for n in (3, 7, 20, 60):
        assert table["throughput"].iloc[n - 1] == pytest.approx(ctmc_throughput(n, z, s), rel=1e-9)
    x = table["throughput"].to_numpy()
    n = table["n"].to_numpy()
    assert np.all(x <= np.minimum(n / (z + s), 1 / s) * (1 + 1e-12))
    assert np.all(x >= n / (z + n * s) * (1 - 1e-12))
    assert np.all(np.diff(x) > -1e-12 * x[1:])  # non-decreasing up to rounding
    lower, upper = ps_bounds(n, z, s)
    assert np.allclose(upper, table["upper"]) and np.allclose(lower, table["lower"])
    # Little's law at the server: Q = X R
    assert np.allclose(table["queue"], x * table["residence"])


def test_ps_becomes_the_bottleneck():
    z, s = 1.5, 0.0064
    n_star = saturation_point(z, s)
    assert n_star == pytest.approx((z + s) / s)
    x = mva(int(4 * n_star), z, s)["throughput"].to_numpy()
    assert x[-1] == pytest.approx(1 / s, rel=1e-3)
    # far below n*, almost no queueing: X(n) within 1% of n / (Z + s)
    assert x[int(n_star / 4)] == pytest.approx((int(n_star / 4) + 1) / (z + s), rel=1e-2)


def test_async_with_ps_constant_times_closed_form():
    """Constant think time Z and deterministic service s, all workers start at 0: after the first
    round the network is periodic with the server busy (step s) if n s >= Z + s, else every worker
    cycles in Z + s without waiting (step (Z + s) / n): exactly max(s, (Z + s) / n) per message.
    The estimate averages the gaps over a window of E >= ``samples`` departures, which is whole
    periods (of length <= Z + s) but at most one, so it is within (Z + s) / samples of that."""
    comm = ParameterServer(nbytes=1.0, bandwidth=10.0, latency=0.05)  # s = 0.2, lat = 0.1
    s = comm.server_time()
    z = 1.0 + comm.message_time() - s
    samples = 20_000
    for n in (2, 3, 5, 6, 7, 20):
        for scheme, q in ((Async(n), 1), (KBatchAsync(n, 2), 2)):
            est = step_time_estimate(scheme, Empirical([1.0]), comm, samples=samples)
            assert est.method == "monte-carlo"
            want = q * max(s, (z + s) / n)
            assert abs(est.value - want) <= q * (z + s) / samples * (1 + 1e-9), (n, est, want)


def test_async_with_ps_two_workers_exponential_closed_form():
    """n = 2, exponential think times (mean Z) and deterministic service s. Embed at departures:
    the other worker is either thinking (A) or queued (B). From A both think, the next arrival
    comes after Z / 2 on average, is served for s, and the other arrives meanwhile with
    probability p = 1 - exp(-s / Z): cycle Z / 2 + s. From B service starts at once: cycle s, and
    the departed one returns within it with probability p. So P(A -> B) = P(B -> B) = p, the
    stationary P(A) = 1 - p, and the mean time between departures is s + exp(-s / Z) Z / 2."""
    comm = ParameterServer(nbytes=1.0, bandwidth=10.0, latency=0.0)  # s = 0.2, think = X
    s = comm.server_time()
    for z in (0.5, 1.0, 3.0):
        want = s + math.exp(-s / z) * z / 2
        est = step_time_estimate(Async(2), stats.expon(scale=z), comm, samples=100_000, seed=3)
        assert est.method == "monte-carlo" and est.se > 0
        assert abs(est.value - want) < 5 * est.se, (z, est, want)
        # the exponential-service model (MVA) is a different network: it overestimates here
        assert 1 / mva(2, z, s)["throughput"].iloc[-1] > want


@pytest.mark.parametrize("n", [3, 6, 12, 50])
def test_async_with_ps_within_operational_bounds(n):
    """max(s, (Z + s) / n) <= step <= (Z + n s) / n for any think and service laws (Lazowska et
    al. 1984, ch. 5). Step >= s holds on every path (the link serves one message at a time, every
    gap is >= s); the other two hold for the long-run mean, so within 5 standard errors."""
    comm = ParameterServer(nbytes=0.025e9, bandwidth=1e9, latency=1e-3)  # s = 0.05
    s = comm.server_time()
    think = EXP.mean() + comm.message_time() - s
    est = step_time_estimate(Async(n), EXP, comm, seed=4)
    lower, upper = ps_bounds(n, think, s)
    # (1e-9: rounding of departure times ~ 1e3 differenced over ~ 2e4 gaps)
    assert est.value >= s * (1 - 1e-9)
    assert est.value >= 1 / upper - 5 * est.se - 1e-9 * s
    assert est.value <= 1 / lower + 5 * est.se
    k = step_time_estimate(KBatchAsync(n, 3), EXP, comm, seed=4)
    # the same network: an update of 3 gradients takes 3 message gaps
    assert abs(k.value - 3 * est.value) < 5 * math.hypot(k.se, 3 * est.se)


# --------------------------------------------------------------------------- throughput, input
def test_throughput_counts_used_gradients():
    t = step_time(Backup(8, 2), EXP)
    assert gradients_per_update(Backup(8, 2)) == 8
    assert throughput(Backup(8, 2), EXP) == pytest.approx(8 / t)
    assert throughput(Backup(8, 2), EXP, batch_size=32) == pytest.approx(8 * 32 / t)
    assert throughput(Async(6), EXP) == pytest.approx(6 / EXP.mean())
    assert throughput(LocalSGD(6, 3), EXP) == pytest.approx(6 / step_time(LocalSGD(6, 3), EXP))
    assert throughput(KBatchSync(4, 9), EXP) == pytest.approx(9 / step_time(KBatchSync(4, 9), EXP))


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="scheme"):
        step_time("sync", EXP)
    with pytest.raises(ValueError, match="compute"):
        step_time(Sync(3), stats.norm())
    with pytest.raises(ValueError, match="comm"):
        step_time(Sync(3), EXP, comm="ps")
    with pytest.raises(ValueError, match="samples"):
        step_time(Sync(3), EXP, samples=1)
    with pytest.raises(ValueError, match="seed"):
        step_time(KBatchSync(3, 4), LOGN, seed=-1)
    with pytest.raises(ValueError, match="seed"):
        kbatch_sync_time(3, 4, LOGN, seed=-1)
    with pytest.raises(ValueError, match="compute"):
        step_time(Sync(3), Empirical([0.0, 1.0]))  # zero-length steps: refused, as by the clock
    with pytest.raises(ValueError, match="batch_size"):
        throughput(Sync(3), EXP, batch_size=0)
    with pytest.raises(ValueError, match="n must"):
        mva(0, 1.0, 1.0)
    with pytest.raises(ValueError, match="service"):
        mva(3, 1.0, -1.0)
