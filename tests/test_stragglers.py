"""Straggler models: draws, validation, dist parsing, failure timelines."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from toolkit.models import (
    IID,
    Empirical,
    Failures,
    Markov,
    PerWorker,
    SlowMachines,
    Trace,
    as_compute,
    parse_dist,
)
from toolkit.models.seeds import child_seed


def test_streams_do_not_depend_on_worker_count_or_draw_size():
    m = IID(stats.gamma(2.0))
    a = m.sample(5, 300, seed=3)
    assert a.shape == (5, 300)
    np.testing.assert_array_equal(m.sample(3, 300, seed=3), a[:3])  # worker w's own stream
    np.testing.assert_array_equal(m.sample(5, 100, seed=3), a[:, :100])  # prefix
    assert not np.array_equal(m.sample(5, 300, seed=4), a)
    # rows are independent streams, not copies
    assert len({tuple(r[:5]) for r in a}) == 5


def test_iid_mean_matches_distribution():
    d = stats.lognorm(0.5, scale=2.0)
    x = as_compute(d).sample(50, 2000, seed=0)
    assert abs(x.mean() - d.mean()) < 5 * x.std() / math.sqrt(x.size)


def test_per_worker_heterogeneous_means():
    scales = [0.5, 1.0, 4.0]
    x = PerWorker([stats.expon(scale=s) for s in scales]).sample(3, 20_000, seed=1)
    for row, s in zip(x, scales, strict=True):
        assert abs(row.mean() - s) < 5 * s / math.sqrt(row.size)  # sd of expon = scale
    with pytest.raises(ValueError, match="dists"):
        PerWorker([stats.expon()] * 2).sample(3, 10)
    with pytest.raises(ValueError, match=r"dists\[1\]"):
        PerWorker([stats.expon(), "slow"])


def test_slow_machines():
    m = SlowMachines(stats.expon(), fraction=0.25, slowdown=3.0)
    assert m.slow_workers(8) == [0, 1]
    x = m.sample(8, 20_000, seed=2)
    means = x.mean(axis=1)
    se = 1 / math.sqrt(x.shape[1])
    assert np.all(np.abs(means[:2] - 3.0) < 5 * 3 * se)
    assert np.all(np.abs(means[2:] - 1.0) < 5 * se)
    assert SlowMachines(stats.expon(), 0.5, 2.0, workers=[3]).slow_workers(4) == [3]
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="fraction"):
            SlowMachines(stats.expon(), bad, 2.0)
    with pytest.raises(ValueError, match="slowdown"):
        SlowMachines(stats.expon(), 0.5, 0.5)
    with pytest.raises(ValueError, match="workers"):
        SlowMachines(stats.expon(), 0.5, 2.0, workers=[9]).sample(4, 3)


def test_markov_slow_fraction_and_spell_length():
    """With a constant base time 1 the times reveal the chain: slow steps take `slowdown`.
    Stationary slow fraction p_slow / (p_slow + p_recover); spells geometric, mean 1/p_recover."""
    m = Markov(Empirical([1.0]), slowdown=4.0, p_slow=0.05, p_recover=0.2)
    x = m.sample(200, 2000, seed=5)
    slow = x > 2.0
    frac = slow.mean(axis=1)  # per-worker fractions are independent
    assert abs(frac.mean() - 0.2) < 5 * frac.std(ddof=1) / math.sqrt(frac.size)
    # spell lengths of slow runs that start and end inside the window
    lengths = []
    for row in slow:
        d = np.diff(row.astype(int))
        starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
        ends = ends[ends > starts[0]] if starts.size else ends[:0]
        k = min(starts.size, ends.size)
        lengths.extend(ends[:k] - starts[:k])
    lengths = np.asarray(lengths)
    assert abs(lengths.mean() - 5.0) < 5 * lengths.std(ddof=1) / math.sqrt(lengths.size)
    # time-correlated: the chain starts stationary, so for every step t
    # E[(s_t - pi)(s_{t+1} - pi)] = (1 - p_slow - p_recover) pi (1 - pi) = 0.75 * 0.16 exactly;
    # per-worker averages are independent: 5 standard errors across workers
    s = slow.astype(float) - 0.2
    lag1 = (s[:, 1:] * s[:, :-1]).mean(axis=1)
    assert abs(lag1.mean() - 0.75 * 0.16) < 5 * lag1.std(ddof=1) / math.sqrt(lag1.size)
    for kw in ({"p_slow": 0.0}, {"p_recover": 1.5}):
        with pytest.raises(ValueError, match=next(iter(kw))):
            Markov(stats.expon(), 2.0, **{"p_slow": 0.1, "p_recover": 0.1, **kw})


def test_trace_replays_columns_and_cycles(tmp_path):
    t = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
    x = Trace(t).sample(2, 5)
    np.testing.assert_array_equal(x, [[1, 2, 3, 1, 2], [10, 20, 30, 10, 20]])
    path = tmp_path / "trace.csv"
    path.write_text("w0,w1\n1,10\n2,20\n3,30\n")
    np.testing.assert_array_equal(Trace.from_csv(path).sample(2, 3), x[:, :3])
    with pytest.raises(ValueError, match="times"):
        Trace([[1.0, -2.0]])
    with pytest.raises(ValueError, match="times"):
        Trace([[1.0, np.nan]])
    with pytest.raises(ValueError, match="3 workers"):
        Trace(t).sample(3, 2)


def test_as_compute_rejects_garbage_and_nonpositive_draws():
    with pytest.raises(ValueError, match="compute"):
        as_compute("expon")
    with pytest.raises(ValueError, match="compute"):
        as_compute(stats.norm(4, 1))


@pytest.mark.parametrize(
    "bad",
    [stats.norm(4, 1), stats.expon(loc=-1), stats.poisson(3), stats.expon, Empirical([0.0, 1.0])],
    ids=["norm", "negative-loc", "discrete", "unfrozen", "zero-in-trace"],
)
def test_models_validate_like_the_theory_at_construction(bad):
    """The straggler models refuse, when built, exactly what toolkit.theory refuses (the shared
    check_step_dist): negative support however unlikely the negative draws, discrete laws, and
    Empirical traces with a zero step time (the clock needs every step time > 0)."""
    from toolkit.models.dists import check_step_dist

    with pytest.raises(ValueError, match=r"^dist"):
        check_step_dist(bad)
    with pytest.raises(ValueError, match=r"^dist\b"):
        IID(bad)
    with pytest.raises(ValueError, match=r"^dists\[1\]"):
        PerWorker([stats.expon(), bad])
    with pytest.raises(ValueError, match=r"^dist\b"):
        SlowMachines(bad, 0.5, 2.0)
    with pytest.raises(ValueError, match=r"^dist\b"):
        Markov(bad, 2.0, 0.1, 0.1)
    with pytest.raises(ValueError, match=r"^compute"):
        as_compute(bad)


def test_check_step_dist_is_shared_by_cluster_and_theory():
    import toolkit.theory.order_stats
    import toolkit.theory.renewal
    from toolkit.models.dists import check_step_dist

    assert toolkit.theory.order_stats.check_step_dist is check_step_dist
    assert toolkit.theory.renewal.check_step_dist is check_step_dist
    for ok in (stats.expon(), stats.uniform(0, 1), Empirical([1e-9, 2.0])):
        assert check_step_dist(ok) is ok


def test_parse_dist():
    d = parse_dist("expon(loc=1, scale=0.5)")
    assert d.mean() == pytest.approx(1.5)
    assert parse_dist("expon").mean() == pytest.approx(1.0)
    assert parse_dist("gamma(2.0, scale=3)").mean() == pytest.approx(6.0)
    for bad in (
        "__import__('os').system('true')",
        "os.system",
        "nosuch(1)",
        "expon(scale=x)",
        "expon(**{'scale': 2})",
        "expon(scale=-1)",
        "lognorm(",
        "Empirical",
        "poisson(3)",
        "binom(10, 0.5)",
    ):
        with pytest.raises(ValueError, match="dist"):
            parse_dist(bad)


def test_parse_dist_csv(tmp_path):
    path = tmp_path / "times.csv"
    path.write_text("step_time\n1.0\n2.0\n4.0\n")
    e = parse_dist(str(path))
    assert isinstance(e, Empirical) and e.mean() == pytest.approx(7 / 3)
    with pytest.raises(ValueError, match="dist"):
        parse_dist(str(tmp_path / "missing.csv"))


def test_failures_validation():
    with pytest.raises(ValueError, match="at"):
        Failures({0: -1.0})
    with pytest.raises(ValueError, match="rate"):
        Failures(rate=-0.1)
    with pytest.raises(ValueError, match="at, rate"):
        Failures({0: 1.0}, rate=0.1)
    with pytest.raises(ValueError, match="repair"):
        Failures({0: 1.0}, repair=0.0)
    with pytest.raises(ValueError, match=r"^repair"):
        Failures({0: 1.0}, repair="abc")
    with pytest.raises(ValueError, match=r"^rate"):
        Failures(rate="x")
    with pytest.raises(ValueError, match=r"^at"):
        Failures(at={0: "x"})
    with pytest.raises(ValueError, match=r"^at"):
        Failures(at={"w0": 1.0})
    with pytest.raises(ValueError, match=r"^at"):
        Failures(at=[1.0])


def test_failure_timeline_finish_by_hand():
    tl = Failures({0: 2.0}, repair=3.0).timeline(2, child_seed(0))  # worker 0 down [2, 5)
    assert tl.finish(0, 0.0, 1.5) == (0.0, 1.5)  # done before the failure
    assert tl.finish(0, 1.0, 1.5) == (5.0, 6.5)  # interrupted at 2, restarts at 5
    assert tl.finish(0, 3.0, 1.0) == (5.0, 6.0)  # down at 3
    assert tl.finish(1, 1.0, 1.5) == (1.0, 2.5)
    assert tl.attempt_at(0, 1.0, 4.0) is None and tl.attempt_at(0, 1.0, 5.5) == 5.0
    dead = Failures({1: 2.0}).timeline(2, child_seed(0))
    assert dead.finish(1, 1.0, 1.5) == (math.inf, math.inf) and dead.dead_since(1) == 2.0


def test_rate_failures_down_fraction():
    """Alternating renewal: up ~ expon(mean 1/rate), down = repair r: in steady state a worker is
    down a fraction r / (1/rate + r). Every worker starts up at 0, so the down time is counted in
    [t0, horizon] after a burn-in t0 of ~17 mean cycles (the start-up transient decays
    geometrically in the number of cycles); workers are independent: 5 standard errors."""
    tl = Failures(rate=0.5, repair=1.0).timeline(100, child_seed(1))
    t0, horizon = 50.0, 450.0
    fracs = []
    for w in range(100):
        tl.finish(w, horizon, 0.0)  # generates the intervals past the horizon
        down = sum(
            max(0.0, min(b, horizon) - max(a, t0)) for a, b in tl.intervals[w] if a < horizon
        )
        fracs.append(down / (horizon - t0))
    fracs = np.asarray(fracs)
    assert abs(fracs.mean() - 1 / 3) < 5 * fracs.std(ddof=1) / math.sqrt(fracs.size)
