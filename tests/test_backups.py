"""Optimal number of backup workers (toolkit.theory.backups).

Oracle: a brute force over b written here from the exponential closed form
E[X_(n:m)] = loc + scale (H_m - H_{m-n}) (Rényi), independent of the library's order statistics.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from toolkit.models import ParameterServer
from toolkit.schemes import Backup
from toolkit.theory.backups import Progress, optimal_backups
from toolkit.theory.step_time import step_time


def harmonic(n: int) -> float:
    return float(np.sum(1.0 / np.arange(1, n + 1))) if n > 0 else 0.0


def brute_force(m, loc, scale, progress, comm=None):
    times = []
    for b in range(m):
        n = m - b
        t = loc + scale * (harmonic(m) - harmonic(b))
        if comm is not None:  # parameter server: n gradients in, m models out
            t += 2 * comm.latency + (n + m) * comm.nbytes / comm.bandwidth
        times.append(t / progress(n))
    times = np.array(times)
    return int(np.argmin(times)), times


def test_linear_progress_exponential_matches_brute_force():
    m, loc, scale = 40, 1.0, 0.5
    best, table = optimal_backups(m, stats.expon(loc=loc, scale=scale))
    want_b, want_t = brute_force(m, loc, scale, lambda n: n)
    assert best == want_b
    assert list(table.columns) == ["b", "n", "step_time", "progress", "time_to_target"]
    assert table["b"].tolist() == list(range(m))
    assert (table["n"] + table["b"] == m).all()
    np.testing.assert_allclose(table["time_to_target"], want_t, rtol=1e-10)


def test_critical_batch_moves_the_optimum_and_matches_brute_force():
    m, loc, scale = 40, 1.0, 0.5
    c = 16
    best_flat, table = optimal_backups(
        m, stats.expon(loc=loc, scale=scale), progress=Progress(critical=c)
    )
    want_b, want_t = brute_force(m, loc, scale, lambda n: min(n, c))
    assert best_flat == want_b
    np.testing.assert_allclose(table["time_to_target"], want_t, rtol=1e-10)
    np.testing.assert_allclose(table["progress"], np.minimum(table["n"], c))
    best_linear, _ = optimal_backups(m, stats.expon(loc=loc, scale=scale))
    assert best_flat > best_linear  # with flat progress beyond c, extra gradients are worthless
    assert best_flat >= m - c  # never average more than c gradients when the extra ones are free


def test_callable_progress_and_comm():
    m, loc, scale = 30, 0.2, 1.0
    comm = ParameterServer(nbytes=1e6, bandwidth=1e8, latency=1e-3)

    def progress(n):
        return np.sqrt(n)

    best, table = optimal_backups(m, stats.expon(loc=loc, scale=scale), comm, progress)
    want_b, want_t = brute_force(m, loc, scale, progress, comm)
    assert best == want_b
    np.testing.assert_allclose(table["time_to_target"], want_t, rtol=1e-10)
    for b in (0, 3, 17):
        row = table.loc[table["b"] == b].iloc[0]
        assert row["step_time"] == pytest.approx(
            step_time(Backup(m - b, b), stats.expon(loc=loc, scale=scale), comm), rel=1e-12
        )


def test_deterministic_step_times_need_no_backups():
    best, table = optimal_backups(50, stats.uniform(loc=1.0, scale=1e-9))
    assert best == 0
    np.testing.assert_allclose(table["step_time"], 1.0, rtol=1e-8)
    _, table = optimal_backups(
        50, stats.uniform(loc=1.0, scale=1e-9), progress=Progress(critical=20)
    )
    # flat beyond 20 gradients: every b <= 30 is as good (up to the 1e-9 spread), more is worse
    t = table["time_to_target"].to_numpy()
    np.testing.assert_allclose(t[:31], 1.0 / 20, rtol=1e-8)
    assert np.all(t[31:] > t[30] * 1.04)


def test_b_max_limits_the_search():
    best, table = optimal_backups(20, stats.expon(scale=1.0), b_max=3)
    assert table["b"].max() == 3 and 0 <= best <= 3


def test_smooth_progress_formula():
    p = Progress(critical=10, kind="smooth")
    assert p(10) == pytest.approx(5.0)
    np.testing.assert_allclose(p(np.array([1, 1000])), [1 / 1.1, 1000 / 101])
    assert Progress()(7) == 7.0
    assert Progress(critical=4)(7) == 4.0


def test_bad_input_names_the_field():
    with pytest.raises(ValueError, match="critical"):
        Progress(critical=0)
    with pytest.raises(ValueError, match="kind"):
        Progress(critical=3, kind="log")
    with pytest.raises(ValueError, match="critical"):
        Progress(kind="smooth")  # n / (1 + n / critical) needs a critical batch
    with pytest.raises(ValueError, match="m must"):
        optimal_backups(0, stats.expon())
    with pytest.raises(ValueError, match="b_max"):
        optimal_backups(5, stats.expon(), b_max=5)
    with pytest.raises(ValueError, match="progress"):
        optimal_backups(5, stats.expon(), progress=lambda n: 0.0)
    with pytest.raises(ValueError, match="progress"):
        optimal_backups(5, stats.expon(), progress=3)
    with pytest.raises(ValueError, match="compute"):
        optimal_backups(5, stats.norm())
    with pytest.raises(ValueError, match="comm"):
        optimal_backups(5, stats.expon(), comm="ps")
