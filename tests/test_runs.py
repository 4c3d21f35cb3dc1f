"""Runs (toolkit.runs): the config round-trips and names its errors, run directories never mix,
and a run killed (SIGKILL) or stopped (SIGINT) at any point continues with --resume to exactly
the numbers of a run that never stopped.

Every child process is bounded by a timeout and killed in a ``finally``.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import warm_cli

from toolkit.checks import ConfigError
from toolkit.replay import Continuation, Results, train
from toolkit.runs import RunConfig, run, schedule_for
from toolkit.schemes import EASGD, Async, Backup, KAsync, Sync
from toolkit.workloads import get_workload

ROOT = Path(__file__).resolve().parents[1]

CONFIG = RunConfig(
    scheme=Async(4),
    workload="logreg",
    workload_args={"n_train": 1000},
    compute="expon(loc=1, scale=0.5)",
    comm="ParameterServer(nbytes=4e4, bandwidth=1e6, latency=1e-3)",
    lr=0.1,
    momentum=0.5,
    staleness="lr",
    updates=60,
    eval_every=10,
    seed=3,
)


# ------------------------------------------------------------------ the config
def test_config_round_trips_through_dict_json_and_toml():
    for config in (
        CONFIG,
        RunConfig(scheme=EASGD(4, 2, 0.1, momentum=0.5, synchronous=False), time_budget=30.0),
        RunConfig(
            scheme=Backup(8, 2), compute='SlowMachines("lognorm(0.5)", fraction=0.2, slowdown=3)'
        ),
    ):
        assert RunConfig.from_dict(config.to_dict()) == config
        assert RunConfig.from_json(config.to_json()) == config
        assert RunConfig.from_toml(config.to_toml()) == config
        assert RunConfig.from_toml(config.to_toml()).id() == config.id()
    assert len(CONFIG.id()) == 16
    assert CONFIG.replace(lr=1).id() == CONFIG.replace(lr=1.0).id()
    ids = {CONFIG.id(), CONFIG.replace(seed=4).id(), CONFIG.replace(lr=0.2).id()}
    ids.add(CONFIG.replace(scheme=KAsync(4, 2)).id())
    assert len(ids) == 4


def test_a_hand_written_toml_file():
    text = """
        seed = 1
        updates = 40
        compute = "lognorm(0.5)"
        [scheme]
        name = "backup"
        n = 4
        b = 1
        [workload]
        name = "logreg"
        n_train = 500
    """
    config = RunConfig.from_toml(text)
    assert config.scheme == Backup(4, 1) and config.workload_args == {"n_train": 500}
    assert config.updates == 40 and config.lr is None


@pytest.mark.parametrize(
    ("data", "field", "start"),
    [
        ({"lr": "0.1"}, "lr", "lr must be a number"),
        ({"updates": 1e3}, "updates", "updates must be an integer"),
        ({"updates": 10, "time_budget": 5.0}, "time_budget", "updates, time_budget: give one"),
        ({"learning_rate": 0.1}, "learning_rate", "learning_rate: unknown key"),
        ({"staleness": "sometimes"}, "staleness", "staleness must be one of"),
        ({"staleness": "drop"}, "max_staleness", "max_staleness: staleness='drop' needs"),
        ({"max_staleness": 3}, "max_staleness", "max_staleness: only staleness='drop'"),
        (
            {"staleness": "lr", "max_staleness": 3},
            "max_staleness",
            "max_staleness: only staleness='drop' takes a bound; staleness is 'lr'",
        ),
        ({"compute": "nope(1)"}, "compute", "compute: 'nope' is not a scipy.stats"),
        ({"compute": "norm(0, 1)"}, "compute", "compute: step times must be >= 0"),
        ({"compute": "expon(loc=[1, 2])"}, "compute", "compute: the arguments of"),
        ({"comm": "ParameterServer(1)"}, "comm", "comm: bad arguments"),
        (
            {"comm": "ParameterServer(nbytes=1, bandwidth=-1)"},
            "comm",
            "comm: bandwidth must be > 0",
        ),
        ({"dtype": "float16"}, "dtype", "dtype must be one of"),
        ({"workload": {"name": "nope"}}, "workload", "workload: unknown workload 'nope'"),
        ({"workload": {"name": "logreg", "bogus": 1}}, "workload.bogus", "workload.bogus: not an"),
        ({"scheme": {"name": "sync", "n": 0}}, "scheme.n", "scheme.n must be an integer >= 1"),
        ({"scheme": {"name": "easgd", "n": 2, "tau": 2}}, "scheme.alpha", "scheme 'easgd' needs"),
        ({"scheme": {"name": "nope", "n": 2}}, "scheme.name", "unknown scheme 'nope'"),
        ({"scheme": {"n": 4}}, "scheme", "scheme: a [scheme] table"),
        ({"seed": -1}, "seed", "seed must be an integer >= 0"),
        ({"workload": None}, "workload", "workload: a [workload] table"),
        ({"nesterov": "yes"}, "nesterov", "nesterov"),
        ({"plateau": {"window": 0}}, "plateau.window", "plateau.window"),
        ({"plateau": {"window": 3, "delta": -0.1}}, "plateau.delta", "plateau.delta"),
        ({"plateau": {"patience": 3}}, "plateau.patience", "plateau.patience"),
        ({"engine": {"name": "torchrun"}}, "engine.name", "engine.name"),
        ({"engine": {"name": "replay", "time_scale": 0.1}}, "engine.time_scale", "engine.time_"),
        ({"engine": {"name": "distributed", "time_scale": -1}}, "engine.time_scale", "engine.t"),
        ({"engine": {"name": "distributed", "speed": 2}}, "engine.speed", "engine.speed"),
        (
            {"scheme": {"name": "easgd", "n": 4, "tau": 2, "alpha": 0.1}, "momentum": 0.9},
            "momentum",
            "momentum: EASGD takes plain local SGD steps",
        ),
    ],
)
def test_bad_values_are_config_errors_naming_the_field(data, field, start):
    base = {"scheme": {"name": "sync", "n": 4}, "workload": {"name": "logreg"}}
    table = {k: v for k, v in {**base, **data}.items() if v is not None}
    with pytest.raises(ConfigError) as err:
        RunConfig.from_dict(table)
    assert err.value.field == field
    assert str(err.value).startswith(start), str(err.value)


def test_the_engine_is_part_of_the_config_and_its_id():
    """The default engine (replay) leaves the id as it was; the distributed engine and each of
    its settings (defaults filled in and written to the file) change it."""
    from toolkit.runs import EngineSpec

    dist = CONFIG.replace(engine=EngineSpec("distributed"))
    assert dist.engine.to_dict() == {
        "name": "distributed",
        "time_scale": 0.01,
        "inject": True,
        "collective": True,
    }
    assert "engine" not in CONFIG.to_dict() and CONFIG.engine == EngineSpec()
    ids = {
        CONFIG.id(),
        dist.id(),
        dist.replace(engine={"name": "distributed", "time_scale": 0.02}).id(),
    }
    assert len(ids) == 3
    assert RunConfig.from_toml(dist.to_toml()) == dist
    assert "time_scale = 0.01" in dist.to_toml()  # a resumed run reads its settings back


def test_nesterov_without_momentum_is_plain_sgd_one_id():
    assert CONFIG.replace(momentum=0.0, nesterov=True) == CONFIG.replace(momentum=0.0)
    assert CONFIG.replace(nesterov=True).id() != CONFIG.id()
    assert "nesterov" not in CONFIG.to_dict()  # ids of configs written before the field stay


def test_nesterov_through_replay_is_pytorchs_sgd():
    """Sync(2) replay with nesterov=True follows torch.optim.SGD(nesterov=True) on the averaged
    gradient (PyTorch's convention, the same as the schemes' update rule)."""
    config = RunConfig(
        scheme=Sync(1),
        workload="logreg",
        workload_args={"n_train": 256},
        lr=0.2,
        momentum=0.9,
        nesterov=True,
        updates=15,
        seed=0,
        eval_every=15,
    )
    res = run(config)
    wl = get_workload("logreg", n_train=256)
    model = wl.make_model(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9, nesterov=True)
    from toolkit.replay import DataStream

    stream = DataStream(wl.n_train, 1, wl.batch_size, 0)
    for j in range(15):
        idx = stream.many([0], [j])[0]
        opt.zero_grad()
        wl.loss(model(wl.x_train[idx]), wl.y_train[idx]).backward()
        opt.step()
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    torch.testing.assert_close(res.params, flat, rtol=1e-5, atol=1e-6)
    heavy = run(config.replace(nesterov=False))
    assert not torch.allclose(heavy.params, res.params)


def test_plateau_stops_when_the_metric_stops_improving():
    """The plateau rule (toolkit.runs.stopping): stop at the first evaluation k > window where
    the best of the last `window` evaluations beats the best before them by <= delta; the budget
    stays the maximum. Checked against the rule applied by hand to the evaluations of the same
    run without it."""
    from toolkit.runs import Plateau

    base = CONFIG.replace(updates=400, eval_every=10, staleness="none", momentum=0.0)
    full = run(base)
    acc = full.evaluations["test_accuracy"].to_list()
    rule = Plateau(window=4, delta=0.002)
    stop = next(k for k in range(1, len(acc) + 1) if rule.reached(acc[:k], True))
    res = run(base.replace(plateau=rule))
    assert res.manifest["stopped"] == "plateau" and full.manifest["stopped"] == "budget"
    assert len(res.evaluations) == stop < len(acc)
    pd.testing.assert_frame_equal(res.frame, full.frame.iloc[: len(res.frame)])
    assert Plateau(2, 0.0).reached([0.5, 0.6, 0.6, 0.6], True)
    assert not Plateau(2, 0.0).reached([0.5, 0.6, 0.7, 0.6], True)
    assert Plateau(1, 0.1).reached([1.0, 0.95], False)  # a loss: lower is better


def test_evaluations_spread_over_the_budget_at_the_same_times_for_every_scheme():
    """``evaluations = k`` evaluates every ceil(rows / k) rows: with a time budget, at about the
    same simulated times whatever the scheme's rows per second (k evaluations, the last row
    included); with eval_every it is an error naming both."""
    base = CONFIG.replace(eval_every=None, updates=None, time_budget=600.0, evaluations=12)
    for scheme in (Sync(4), Async(4)):
        res = run(base.replace(scheme=scheme, staleness="none"))
        rows = len(res.frame)
        every = math.ceil(rows / 12)
        times = res.evaluations["time"].to_numpy()
        assert len(times) == math.ceil(rows / every) and times[-1] == res.frame["time"].iloc[-1]
        k = np.arange(1, len(times))  # evaluation k at row k * every: time about 600 k / 12
        np.testing.assert_allclose(times[:-1], 600.0 * k * every / rows, rtol=0.05, atol=10.0)
    with pytest.raises(ValueError, match=r"^evaluations, eval_every"):
        CONFIG.replace(evaluations=5)


def test_run_refuses_an_out_that_is_not_a_path():
    with pytest.raises(ValueError, match=r"^out"):
        run(CONFIG, 123)


# ------------------------------------------------------------------ runs and directories
def _same(a: Results, b: Results) -> None:
    pd.testing.assert_frame_equal(a.frame, b.frame, check_exact=True)
    assert torch.equal(a.params, b.params)


def test_run_is_simulate_then_train_and_writes_a_complete_directory(tmp_path):
    res = run(CONFIG, tmp_path / "r")
    again = run(CONFIG)  # no directory
    _same(res, again)
    loaded = Results.load(tmp_path / "r")
    _same(res, loaded)
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["run"]["complete"] and manifest["run"]["id"] == CONFIG.id()
    assert RunConfig.load(tmp_path / "r" / "config.toml") == CONFIG
    assert not (tmp_path / "r" / "checkpoint.pt").exists()
    # resuming a complete run returns it
    _same(run(CONFIG, tmp_path / "r", resume=True), res)


@pytest.mark.parametrize(("seconds", "expected"), [("0", "every"), ("3600", "none")])
def test_periodic_checkpoints_wait_for_the_wall_clock_interval(
    tmp_path, monkeypatch, seconds, expected
):
    """TOOLKIT_CHECKPOINT_SECONDS=0: a checkpoint at every evaluation but the last (the run
    ends there); an hour: none in a run of a second. The numbers are the same either way."""
    from toolkit.runs.directory import RunDirectory

    saved = []
    real = RunDirectory.save_checkpoint
    monkeypatch.setattr(
        RunDirectory,
        "save_checkpoint",
        lambda self, state, rows: saved.append(rows) or real(self, state, rows),
    )
    monkeypatch.setenv("TOOLKIT_CHECKPOINT_SECONDS", seconds)
    config = CONFIG.replace(updates=60, eval_every=10)
    res = run(config, tmp_path / "r")
    rows = sorted(set(res.evaluations["update"]))  # evaluation points
    assert len(rows) >= 5
    if expected == "every":
        assert len(saved) >= len(rows) - 2 and saved == sorted(set(saved))
    else:
        assert saved == []
    _same(res, run(config))


@pytest.mark.parametrize("value", ["soon", "-1", "nan"])
def test_a_bad_checkpoint_interval_is_refused_naming_the_variable(tmp_path, monkeypatch, value):
    monkeypatch.setenv("TOOLKIT_CHECKPOINT_SECONDS", value)
    with pytest.raises(ConfigError, match=r"^TOOLKIT_CHECKPOINT_SECONDS: expected seconds >= 0"):
        run(CONFIG, tmp_path / "r")
    assert not (tmp_path / "r").exists()  # refused before the run directory is made


def test_directories_are_never_mixed(tmp_path):
    out = tmp_path / "r"
    run(CONFIG, out)
    with pytest.raises(ValueError, match="already exists; pass --resume"):
        run(CONFIG, out)
    with pytest.raises(ValueError, match="another config"):
        run(CONFIG.replace(seed=9), out, resume=True)
    run(CONFIG.replace(seed=9), out, overwrite=True)  # a run directory may be replaced
    assert RunConfig.load(out / "config.toml").seed == 9
    other = tmp_path / "notes"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    with pytest.raises(ValueError, match="not a run directory"):
        run(CONFIG, other, overwrite=True)
    assert (other / "thesis.tex").read_text() == "precious"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        run(CONFIG, tmp_path / "file")


def test_time_budget_trains_exactly_to_the_budget():
    config = CONFIG.replace(updates=None, time_budget=25.0)
    wl = get_workload("logreg", n_train=1000)
    sched = schedule_for(config, wl.steps)
    times = sched.update_times()
    assert times[-1] <= 25.0
    longer = schedule_for(config.replace(time_budget=1000.0), wl.steps)
    assert longer.update_times()[len(times)] > 25.0  # the next update is past the budget
    res = run(config)
    assert res.frame["time"].max() <= 25.0 and len(res.frame) == len(times)


def test_target_stops_at_the_first_evaluation_that_reaches_it():
    full = run(CONFIG.replace(updates=200, eval_every=20))
    acc = full.evaluations["test_accuracy"].to_numpy()
    target = float(acc[3])  # reached at the 4th evaluation (or earlier)
    first = int(np.argmax(acc >= target))
    stopped = run(CONFIG.replace(updates=200, eval_every=20, target=target))
    assert len(stopped.frame) == (first + 1) * 20
    assert "target reached" in stopped.message
    pd.testing.assert_frame_equal(stopped.frame, full.frame.iloc[: len(stopped.frame)])


@pytest.mark.parametrize(
    "scheme", [Sync(4), KAsync(4, 2), EASGD(4, 2, 0.1, synchronous=False)], ids=str
)
def test_resume_from_every_checkpoint_gives_the_same_numbers(scheme):
    config = CONFIG.replace(
        scheme=scheme, momentum=0.0 if scheme.rule.replicas else 0.5, staleness="none"
    )
    full = run(config)
    snaps = []
    wl = get_workload(config.workload, **config.workload_args)
    sched = schedule_for(config, wl.steps)
    kw = dict(lr=config.lr, momentum=config.momentum, eval_every=10, seed=config.seed)
    safe_point = lambda rows, snap: snaps.append(snap())  # noqa: E731
    train(sched, wl, continuation=Continuation(safe_point=safe_point), **kw)
    assert len(snaps) >= 3
    for snap in snaps[:: max(1, len(snaps) // 3)]:
        _same(train(sched, wl, continuation=Continuation(resume=snap), **kw), full)


# ------------------------------------------------------------------ real kills
KILLER = """
import os, signal
real, count, at = os.replace, [0], int(os.environ["KILL_AT_REPLACE"])
def replace(a, b):
    count[0] += 1
    if count[0] == at:
        os.kill(os.getpid(), signal.SIGKILL)  # the temporary file is written, not yet renamed
    return real(a, b)
os.replace = replace
"""


# children run with one thread each (float sums depend on the thread count) and checkpoint at
# every evaluation, whatever the wall-clock, so that the kills land at known writes
ENV = {
    **os.environ,
    "OMP_NUM_THREADS": "1",
    "KILL_AT_REPLACE": "0",
    "TOOLKIT_CHECKPOINT_SECONDS": "0",
}


def _child(args: list[str], env: dict | None = None, timeout: float = 120):
    """``toolkit ARGS`` in a process of its own (forked warm: tests/warm_cli.py) whose
    KILL_AT_REPLACE-th ``os.replace`` SIGKILLs it."""
    return warm_cli.run(args, env={**ENV, **(env or {})}, setup=KILLER, timeout=timeout)


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_sigkill_at_any_point_then_resume_gives_the_same_numbers(tmp_path):
    """os.replace calls of a run: config.toml, manifest, schedule sidecar, schedule, manifest,
    then per checkpoint checkpoint.pt and manifest (six checkpoints), then results, params and
    the final manifest. Kills: before the schedule, during the first checkpoint, after the
    second, during the last manifest, and while writing the results."""
    config_file = tmp_path / "config.toml"
    config_file.write_text(CONFIG.to_toml())
    done = _child(["run", str(config_file), "--out", str(tmp_path / "ref"), "--no-progress"])
    assert done.returncode == 0, done.stderr[-2000:]
    reference = Results.load(tmp_path / "ref")
    for at in (3, 6, 10, 17, 18):
        out = tmp_path / f"killed-{at}"
        done = _child(
            ["run", str(config_file), "--out", str(out), "--no-progress"],
            {"KILL_AT_REPLACE": str(at)},
        )
        assert done.returncode == -signal.SIGKILL, (at, done.stderr[-2000:])
        with pytest.raises(ValueError):
            Results.load(out)  # a partial directory never loads as complete
        done = _child(["run", str(config_file), "--out", str(out), "--resume", "--no-progress"])
        assert done.returncode == 0, (at, done.stderr[-2000:])
        _same(Results.load(out), reference)


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_sigint_writes_a_checkpoint_and_says_how_to_resume(tmp_path):
    config = CONFIG.replace(updates=4000, eval_every=50)
    config_file = tmp_path / "config.toml"
    config_file.write_text(config.to_toml())
    out = tmp_path / "r"
    cmd = ["run", str(config_file), "--no-progress", "--out"]
    proc = warm_cli.start([*cmd, str(out)], env=ENV)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            m = out / "manifest.json"
            if m.exists() and json.loads(m.read_text())["run"]["rows"] > 0:
                break
            time.sleep(0.05)
        else:
            pytest.fail("no checkpoint within 120 s")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == 130, err[-2000:]
    assert "--resume" in err and "Traceback" not in err
    with pytest.raises(ValueError, match="not complete"):
        Results.load(out)
    for args in ([*cmd, str(out), "--resume"], [*cmd, str(tmp_path / "ref")]):
        done = warm_cli.run(args, env=ENV, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
    _same(Results.load(out), Results.load(tmp_path / "ref"))
