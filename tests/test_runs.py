"""Runs (toolkit.runs): the config round-trips and names its errors, run directories never mix,
and a run killed (SIGKILL) or stopped (SIGINT) at any point continues with --resume to exactly
the numbers of a run that never stopped.

Every child process is bounded by a timeout and killed in a ``finally``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from toolkit.replay import Results, train
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
    ("data", "name"),
    [
        ({"lr": "0.1"}, "lr"),
        ({"updates": 1e3}, "updates"),
        ({"updates": 10, "time_budget": 5.0}, "updates, time_budget"),
        ({"learning_rate": 0.1}, "learning_rate"),
        ({"staleness": "sometimes"}, "staleness"),
        ({"staleness": "drop"}, "max_staleness"),
        ({"compute": "nope(1)"}, "compute"),
        ({"comm": "ParameterServer(1)"}, "comm"),
        ({"dtype": "float16"}, "dtype"),
        ({"workload": {"name": "nope"}}, "workload"),
        ({"scheme": {"name": "sync", "n": 0}}, "n"),
        ({"scheme": {"n": 4}}, "scheme"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_values_are_errors_naming_the_field(data, name):
    base = {"scheme": {"name": "sync", "n": 4}}
    with pytest.raises(ValueError, match=rf"^{name}\b"):
        RunConfig.from_dict({**base, **data})


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
    sched = schedule_for(config, wl)
    times = sched.update_times()
    assert times[-1] <= 25.0
    longer = schedule_for(config.replace(time_budget=1000.0), wl)
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
    sched = schedule_for(config, wl)
    kw = dict(lr=config.lr, momentum=config.momentum, eval_every=10, seed=config.seed)
    train(sched, wl, safe_point=lambda rows, snap: snaps.append(snap()), **kw)
    assert len(snaps) >= 3
    for snap in snaps[:: max(1, len(snaps) // 3)]:
        _same(train(sched, wl, resume=snap, **kw), full)


# ------------------------------------------------------------------ real kills
KILLER = """
import os, signal, sys
real, count, at = os.replace, [0], int(os.environ["KILL_AT_REPLACE"])
def replace(a, b):
    count[0] += 1
    if count[0] == at:
        os.kill(os.getpid(), signal.SIGKILL)  # the temporary file is written, not yet renamed
    return real(a, b)
os.replace = replace
from toolkit.cli import main
sys.exit(main(sys.argv[1:]))
"""


# children run with one thread each: float sums depend on the thread count
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "KILL_AT_REPLACE": "0"}


def _child(args: list[str], env: dict | None = None, timeout: float = 120):
    return subprocess.run(
        [sys.executable, "-c", KILLER, *args],
        cwd=ROOT,
        env={**ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


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
    cmd = [sys.executable, "-m", "toolkit", "run", str(config_file), "--no-progress", "--out"]
    proc = subprocess.Popen(
        [*cmd, str(out)],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as in a terminal
    )
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
        done = subprocess.run(args, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
    _same(Results.load(out), Results.load(tmp_path / "ref"))
