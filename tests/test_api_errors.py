"""Wrong-typed or out-of-range arguments to the Python API are ConfigErrors naming the argument
(never a TypeError from deep inside, a bare ValueError or a warning before the error)."""

from __future__ import annotations

import warnings

import pytest
import scipy.stats as st

from toolkit.checks import ConfigError
from toolkit.cluster import simulate
from toolkit.models.dists import parse_dist
from toolkit.replay import train
from toolkit.runs import RunConfig
from toolkit.schemes import Sync
from toolkit.sweeps import load
from toolkit.theory import expected_order_statistic, step_time
from toolkit.theory.extremes import expected_max_asymptotic
from toolkit.theory.order_groups import order_statistics_groups


def _field(call, field: str) -> ConfigError:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning printed before the error is a defect too
        with pytest.raises(ConfigError) as info:
            call()
    assert info.value.field == field and str(info.value).startswith(f"{field}"), info.value
    return info.value


def test_a_number_where_a_path_belongs():
    _field(lambda: RunConfig.load(5), "path")
    _field(lambda: load(5), "out")


def test_an_export_that_cannot_be_read(tmp_path):
    (tmp_path / "evaluations.parquet").write_text("not parquet")
    (tmp_path / "summary.csv").write_text("run_id\nx\n")
    assert "cannot be read" in str(_field(lambda: load(tmp_path), "out"))


def test_array_valued_step_time_laws():
    family = st.expon([1.0, 2.0], 0.5)
    _field(lambda: simulate(Sync(2), family, updates=3), "compute")
    _field(lambda: step_time(Sync(2), family), "compute")
    _field(lambda: parse_dist("expon(loc=[1, 2])"), "dist")


def test_replay_seed_and_stop():
    schedule = simulate(Sync(2), st.expon(1, 0.5), updates=3)
    _field(lambda: train(schedule, "logreg", seed=-1), "seed")
    _field(lambda: train(schedule, "logreg", stop=5), "stop")


def test_order_statistics_beyond_their_checked_range_and_empty_groups():
    _field(lambda: expected_order_statistic(st.gamma(2), 10**18, 10**18), "n")
    # at the bound the quadrature agrees with the Gumbel asymptotics (error O(1 / log n))
    exact = expected_order_statistic(st.gamma(2), 10**12, 10**12)
    assert exact == pytest.approx(expected_max_asymptotic(st.gamma(2), 10**12), rel=0.01)
    _field(lambda: order_statistics_groups([], [1]), "groups")


def test_a_law_without_a_finite_mean_is_refused_without_warnings():
    assert "no finite mean" in str(_field(lambda: parse_dist("lognorm(50)"), "dist"))
