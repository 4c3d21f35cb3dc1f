"""Wrong-typed or out-of-range arguments to the Python API are ConfigErrors naming the argument
(never a TypeError from deep inside, a bare ValueError or a warning before the error)."""

from __future__ import annotations

import socket
import time
import warnings

import numpy as np
import pytest
import scipy.stats as st

from toolkit.checks import ConfigError
from toolkit.cli import main
from toolkit.cluster import simulate
from toolkit.demo import run_demo
from toolkit.distributed.run import DistributedEngine
from toolkit.models.dists import parse_dist
from toolkit.replay import train
from toolkit.runs import RunConfig
from toolkit.schemes import Delayed, Sync
from toolkit.sweeps import SweepSpec, load
from toolkit.theory import expected_order_statistic, step_time
from toolkit.theory.delay import staleness_threshold
from toolkit.theory.extremes import expected_max_asymptotic
from toolkit.theory.order_derive import derive_closed_forms
from toolkit.theory.order_groups import order_statistics_groups
from toolkit.theory.renewal import kbatch_sync_time
from toolkit.theory.stability import admm_round_robin_spectral_radius
from toolkit.workloads import get_workload


def _field(call, field: str) -> ConfigError:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning printed before the error is a defect too
        with pytest.raises(ConfigError) as info:
            call()
    assert info.value.field == field and str(info.value).startswith(f"{field}"), info.value
    return info.value


def test_a_number_where_a_path_belongs_and_paths_of_the_wrong_kind(tmp_path, capsys):
    _field(lambda: RunConfig.load(5), "path")
    _field(lambda: load(5), "out")
    (tmp_path / "c.yaml").write_text('seed = 0\n[scheme]\nname = "sync"\nn = 2\n')
    assert "not a .toml or .json" in str(
        _field(lambda: RunConfig.load(tmp_path / "c.yaml"), "path")
    )
    argv = ["simulate", "--scheme", "sync", "--n", "2", "--updates", "3", "--out", ""]
    argv += ["--dist", "expon(loc=1, scale=0.5)"]
    assert main(argv) == 2 and capsys.readouterr().err.startswith("error: out: an empty path")


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


# ------------------------------------------------------------------ limits checked before work
def _refused(call, field: str, seconds: float = 20.0) -> str:
    """``call`` refused naming ``field`` before its work: well within ``seconds`` (a bound for a
    loaded machine; the work refused would take minutes to days)."""
    start = time.monotonic()
    err = _field(call, field)
    assert time.monotonic() - start < seconds
    return str(err)


def test_theory_refuses_work_beyond_the_limit(monkeypatch):
    assert "TOOLKIT_WORK_LIMIT" in _refused(
        lambda: kbatch_sync_time(10**6, 10**6, st.expon(1, 0.5)), "k"
    )
    _refused(lambda: derive_closed_forms(10**6), "n_max")
    monkeypatch.setenv("TOOLKIT_WORK_LIMIT", "1e3")  # the limit is the user's to move
    _refused(lambda: step_time(Delayed(64, 1), st.expon(1, 0.5)), "n")
    monkeypatch.setenv("TOOLKIT_WORK_LIMIT", "lots")
    _refused(lambda: step_time(Delayed(64, 1), st.expon(1, 0.5)), "TOOLKIT_WORK_LIMIT")


def test_data_runs_and_demos_too_large_are_refused_before_work(tmp_path):
    _refused(lambda: get_workload("logreg", n_train=10**12), "n_train")
    _refused(lambda: get_workload("cifar10_resnet", synthetic=True, n_train=10**10), "n_train")
    _refused(lambda: run_demo(tmp_path / "d", machines=10**6, progress=False), "machines")
    assert not (tmp_path / "d").exists()
    engine = DistributedEngine()
    sync = RunConfig(scheme=Sync(2), workload="logreg", updates=10**9, engine="distributed")
    assert "300 GB" in _refused(lambda: engine.check(sync), "updates")
    slow = sync.replace(updates=4, engine={"name": "distributed", "time_scale": 1e9})
    assert "at least 3" in _refused(lambda: engine.check(slow), "timeout")
    engine.check(sync.replace(updates=4))  # the same run at the default scale is fine


def test_a_ray_address_nobody_listens_on_is_refused_at_once():
    from toolkit.sweeps.runner import _check_listening

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert "no Ray cluster answers" in _refused(
        lambda: _check_listening(f"127.0.0.1:{port}"), "address"
    )
    _refused(lambda: _check_listening("nohostport"), "address")
    _check_listening("auto")  # left to Ray


def test_theory_grids_and_states_too_large_are_refused_before_allocating():
    assert "companion matrices" in _refused(
        lambda: staleness_threshold(np.full(10**6, 1e-6)), "probs"
    )
    big = np.broadcast_to(1.0, (10**8,))  # a view of one number: 17x17 stacks over it do not fit
    _refused(lambda: admm_round_robin_spectral_radius(eta=big, alpha=0.1, p=8), "eta")
    _refused(lambda: expected_order_statistic(st.lognorm(0.5), big, 10**8), "k")
    _refused(lambda: step_time(Delayed(4, 10**9), st.expon(1, 0.5)), "delay")


def test_values_that_a_sweep_or_config_cannot_hold():
    with pytest.raises(
        ConfigError, match=r"^updates must be an integer in \[1, 9223372036854775807\]"
    ):
        RunConfig(scheme=Sync(2), workload="logreg", updates=10**30)
    spec = 'name = "p"\n[base]\nupdates = 4\nlr = -1.0\n[base.scheme]\nname = "sync"\nn = 2\n'
    spec += '[base.workload]\nname = "logreg"\n[grid]\nlr = [0.1, 0.2]\n'
    assert "line 4" in str(_field(lambda: SweepSpec.from_toml(spec), "base.lr"))
    _field(
        lambda: SweepSpec.from_toml(
            spec.replace("-1.0", "0.1").replace('name = "p"', "[name]\nx = 1")
        ),
        "name",
    )


def test_a_link_whose_message_takes_forever_is_refused():
    from toolkit.models.comm import ParameterServer

    assert "infinite time" in str(_field(lambda: ParameterServer(1e300, 1e-300), "comm"))


def test_the_demos_budget_must_be_finite(tmp_path):
    _field(
        lambda: run_demo(tmp_path / "d", budget_steps=float("inf"), progress=False), "budget_steps"
    )
    assert not (tmp_path / "d").exists()
