"""Sweeps (toolkit.sweeps): specs validated with the line of a bad key, quasi-random points
reproducible from their index, a cached Schedule equal to a fresh one, a runner that survives
SIGKILL and redoes only unfinished runs, the three back-ends (a local pool, Ray with a worker
killed mid-task, submitit's local executor), analysis against hand-computed frames, and the
shipped quick spec end to end.

Every child process and every wait is bounded (timeouts, and a watchdog around the back-ends
that could block: faulthandler ends the test process with its tracebacks rather than hang CI).
"""

from __future__ import annotations

import contextlib
import faulthandler
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import warm_cli

from toolkit.checks import ConfigError
from toolkit.cli import main
from toolkit.cluster import Schedule
from toolkit.runs import run, schedule_for
from toolkit.sweeps import (
    Axis,
    SweepSpec,
    best_lr,
    export,
    load,
    over_seeds,
    performance_profile,
    report,
    run_sweep,
    runner,
    schedule_key,
    sensitivity,
    status,
    time_to_target,
)
from toolkit.workloads import WORKLOADS, get_workload, register_workload

ROOT = Path(__file__).resolve().parents[1]

TINY = """\
name = "tiny"

[base]
updates = 40
eval_every = 20
compute = "expon(loc=1, scale=0.5)"
[base.scheme]
name = "sync"
n = 2
[base.workload]
name = "logreg"
n_train = 400

[grid]
lr = [0.1, 0.3]
seed = [0, 1]
"""


@pytest.fixture
def watchdog():
    """End the test process (with tracebacks) if a back-end blocks for 660 s: beyond the test's
    own timeout (600 s), in case a blocking call never gives the timeout's signal a chance."""
    faulthandler.dump_traceback_later(660, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


def _log(out: Path) -> list[dict]:
    path = out / "log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# ------------------------------------------------------------------ specs
def test_spec_points_are_the_grid_product_with_dotted_paths_and_whole_tables():
    spec = SweepSpec.from_toml(
        TINY
        + """\
"scheme.n" = [2, 4]
"""
    )
    points = spec.points()
    assert len(points) == 2 * 2 * 2
    assert {(p.lr, p.seed, p.scheme.n) for p in points} == {
        (lr, s, n) for lr in (0.1, 0.3) for s in (0, 1) for n in (2, 4)
    }
    assert all(p.workload == "logreg" and p.workload_args == {"n_train": 400} for p in points)
    # a whole scheme table, then a field of it (shallower paths apply first)
    spec = SweepSpec(
        base=SweepSpec.from_toml(TINY).base,
        grid={"scheme.n": [3], "scheme": [{"name": "backup", "n": 2, "b": 1}]},
    )
    (point,) = spec.points()
    assert (point.scheme.n, point.scheme.b) == (3, 1)


@pytest.mark.parametrize(
    ("old", "new", "named", "line"),
    [
        ("lr = [0.1, 0.3]", "lrr = [0.1]", "lrr: unknown key", 15),  # no such config field
        ("lr = [0.1, 0.3]", 'lr = ["fast"]', "lr must be a number", 15),  # a wrong type
        ("lr = [0.1, 0.3]", "lr = 0.1", "grid.lr: expected a non-empty list", 15),
        ('name = "tiny"', 'name = "tiny"\nbogus = "x"', "bogus: unknown key", 2),
        ("n_train = 400", 'n_train = 400\nbatch = "x"', "workload.batch: not an argument", 13),
    ],
)
def test_spec_errors_name_the_key_and_its_line(old, new, named, line):
    with pytest.raises(ValueError, match=named) as err:
        SweepSpec.from_toml(TINY.replace(old, new))
    assert f"(line {line})" in str(err.value)


def test_spec_errors_in_base_and_random_name_their_lines():
    with pytest.raises(ValueError, match=r"updates.*\(line 4\)"):
        SweepSpec.from_toml(TINY.replace("updates = 40", "updates = -1"))
    with pytest.raises(ValueError, match=r"momentum.*\(line 4\)"):
        SweepSpec.from_toml(TINY.replace("updates = 40", "momentum = 2.0"))
    bad_axis = TINY + "[random]\ncount = 2\n[random.axes.lr]\nlow = 1.0\nhigh = 0.5\n"
    with pytest.raises(ValueError, match=r"random.axes.lr: low must be < high"):
        SweepSpec.from_toml(bad_axis)
    with pytest.raises(ValueError, match=r"unknown key in \[random\].*\(line 19\)"):
        SweepSpec.from_toml(TINY + "[random]\ncount = 2\nsequnce = 'sobol'\n")
    with pytest.raises(ValueError, match=r"random\.sequence"):
        SweepSpec.from_toml(TINY + "[random]\ncount = 2\nsequence = 'lattice'\n")
    with pytest.raises(ValueError, match="spec: not TOML"):
        SweepSpec.from_toml("[base\n")
    with pytest.raises(ValueError, match=r"scheme 'easgd' needs.*\(line 17\)"):
        SweepSpec.from_toml(TINY + 'scheme = [{name = "easgd", n = 2, tau = 2}]\n')


def test_spec_errors_keep_the_field_and_point_at_where_the_value_was_set():
    random = TINY + "[random]\ncount = 2\n[random.axes.momentum]\nlow = 1.0\nhigh = 2.0\n"
    with pytest.raises(ConfigError, match=r"^momentum must lie in .*\(line 19\)$") as err:
        SweepSpec.from_toml(random)  # the axis' table, not the base
    assert err.value.field == "momentum"
    whole = TINY + 'scheme = [{name = "sync", n = 0}]\n'
    with pytest.raises(ConfigError, match=r"^scheme.n must be an integer.*\(line 17\)$") as err:
        SweepSpec.from_toml(whole)  # a whole table of the grid holds the bad n
    assert err.value.field == "scheme.n"
    base = TINY.replace("n = 2\n", "n = 0\n")
    with pytest.raises(ConfigError, match=r"^scheme.n must be an integer.*\(line 9\)$"):
        SweepSpec.from_toml(base)
    with pytest.raises(ConfigError, match=r"high is required \(line 19\)") as err:
        SweepSpec.from_toml(TINY + "[random]\ncount = 2\n[random.axes.lr]\nlow = 1.0\n")
    assert err.value.field == "random.axes.lr.high"
    with pytest.raises(ConfigError) as err:  # from Python: the same field, no line to name
        SweepSpec(base=SweepSpec.from_toml(TINY).base, grid={"lr": [-1.0]}).points()
    assert err.value.field == "lr" and "line" not in str(err.value)


def test_skip_invalid_leaves_out_the_points_a_field_refuses():
    """momentum x replica schemes: with skip_invalid = ["momentum"] the refused points are left
    out (the replica scheme keeps momentum 0), without it reading the points is an error naming
    the point; a field outside the list is still an error."""
    text = TINY + 'scheme = [{name = "sync", n = 2}, {name = "localsgd", n = 2, tau = 2}]\n'
    text += "momentum = [0.0, 0.9]\n"
    spec = SweepSpec.from_toml('skip_invalid = ["momentum"]\n' + text)
    kept = {(str(c.scheme), c.momentum) for c in spec.points()}
    assert kept == {("Sync(n=2)", 0.0), ("Sync(n=2)", 0.9), ("LocalSGD(n=2, tau=2)", 0.0)}
    assert len(spec.points()) == 3 * 2 * 2  # x lr x seed
    with pytest.raises(ValueError, match=r"^momentum: LocalSGD .*at the point"):
        list(SweepSpec.from_toml(text).points())  # a combination: an error when points are read
    with pytest.raises(ValueError, match=r"^lr"):
        SweepSpec.from_toml('skip_invalid = ["momentum"]\n' + text.replace("0.1, 0.3", "0.1, -1"))
    with pytest.raises(ValueError, match=r"^skip_invalid"):
        SweepSpec.from_toml('skip_invalid = "momentum"\n' + text)


@pytest.mark.parametrize("sequence", ["sobol", "halton"])
def test_quasi_random_points_are_reproducible_from_spec_and_index(sequence):
    def spec(count, seed=0):
        return SweepSpec.from_toml(
            TINY.replace("lr = [0.1, 0.3]\nseed = [0, 1]\n", "seed = [0]\n")
            + f"""
[random]
count = {count}
sequence = "{sequence}"
seed = {seed}
[random.axes.lr]
low = 0.001
high = 1.0
log = true
[random.axes.batch_size]
low = 8
high = 64
integer = true
"""
        )

    eight, sixteen = list(spec(8).points()), spec(16).points()
    assert eight == list(spec(8).points())  # same spec, same points
    assert sixteen[:8] == eight  # point i depends only on the spec and i
    assert [sixteen[i] for i in (3, -1)] == [list(sixteen)[3], list(sixteen)[15]]  # by index
    assert list(spec(8, seed=1).points()) != eight
    lrs = np.array([p.lr for p in sixteen])
    assert np.all((lrs >= 0.001) & (lrs <= 1.0))
    # log-uniform: log10(lr) spreads over the 3 decades, each decade gets points
    assert np.histogram(np.log10(lrs), bins=3, range=(-3, 0))[0].min() >= 3
    assert all(isinstance(p.batch_size, int) and 8 <= p.batch_size <= 64 for p in sixteen)


def test_points_are_counted_without_building_them_and_each_value_is_checked_once(monkeypatch):
    """A 100 x 50 grid: len() is the product, reading the spec builds the points that hold each
    distinct value once (1 + 99 + 49 RunConfigs, not 5000), and point i is the i-th of the
    grid's product order (paths by depth, the last fastest)."""
    from toolkit.runs.config import RunConfig

    built = []
    real = RunConfig.from_dict.__func__
    monkeypatch.setattr(
        RunConfig, "from_dict", classmethod(lambda c, d: built.append(d) or real(c, d))
    )
    lrs = [round(0.001 * (i + 1), 3) for i in range(100)]
    text = TINY.replace(
        "lr = [0.1, 0.3]\nseed = [0, 1]\n", f"lr = {lrs}\nseed = {list(range(50))}\n"
    )
    spec = SweepSpec.from_toml(text)
    points = spec.points()
    assert spec.size == len(points) == 5000 and len(built) == 1 + 99 + 49
    assert (points[0].lr, points[0].seed) == (0.001, 0)
    assert (points[51].lr, points[51].seed) == (0.002, 1)  # 51 = 1 x 50 + 1
    assert (points[-1].lr, points[-1].seed) == (0.1, 49)
    assert [(p.lr, p.seed) for p in points[48:52]] == [
        (0.001, 48),
        (0.001, 49),
        (0.002, 0),
        (0.002, 1),
    ]
    with pytest.raises(IndexError):
        points[5000]


def test_a_bad_combination_of_valid_values_is_an_error_naming_its_point():
    """KAsync(n, k) needs k <= n: n in [8, 2] and k in [1, 4] are each valid with the other
    axis's first value, so the spec reads; the point (n = 2, k = 4) is an error when read."""
    text = TINY.replace('name = "sync"\nn = 2', 'name = "kasync"\nn = 8\nk = 1') + (
        '"scheme.n" = [8, 2]\n"scheme.k" = [1, 4]\n'
    )
    points = SweepSpec.from_toml(text).points()
    assert len(points) == 16
    with pytest.raises(
        ValueError, match=r"k must be .* \(at the point .*scheme.n = 2, scheme.k = 4"
    ):
        list(points)


@pytest.mark.integration
def test_a_spec_too_large_is_refused_at_once_in_one_line(tmp_path):
    """10^9 points: refused from the lists' lengths, naming the grid and the count, before any
    point is built or the sweep directory made; a spec built in Python likewise."""
    axes = "".join(
        f"{name} = {list(range(1, 1001))}\n" for name in ("seed", "batch_size", "eval_every")
    )
    spec = tmp_path / "huge.toml"
    spec.write_text(TINY.replace("lr = [0.1, 0.3]\nseed = [0, 1]\n", axes))
    command = [
        sys.executable,
        "-m",
        "toolkit",
        "sweep",
        "run",
        str(spec),
        "--out",
        str(tmp_path / "s"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(
        "error: grid: seed (1000) x batch_size (1000) x eval_every (1000) = 1,000,000,000 points, "
        "above the limit of 100,000"
    )
    assert not (tmp_path / "s").exists()
    base = SweepSpec.from_toml(TINY).base
    with pytest.raises(ValueError, match=r"^random.count: random.count \(200000\) = 200,000 "):
        SweepSpec(base, axes=(Axis("lr", 0.01, 1.0),), count=200_000)


def test_jobs_are_cut_to_the_cores_unless_forced_and_to_the_runs_to_do(
    tmp_path, monkeypatch, capsys
):
    """``--jobs 10^9``: the command line runs as many workers as cores and says so in one line
    (``--force-jobs`` keeps the number; the local executor starts a child per run to do, so
    never more than the runs)."""
    from toolkit.limits import cores

    seen = []

    def fake(spec, out, *, jobs, **kwargs):
        seen.append(jobs)
        return pd.DataFrame({"state": ["complete"]})

    monkeypatch.setattr(runner, "run_sweep", fake)
    spec = tmp_path / "tiny.toml"
    spec.write_text(TINY)
    argv = ["sweep", "run", str(spec), "--out", str(tmp_path / "s"), "--jobs", "1000000000"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert err == (
        f"--jobs: 1000000000 is more than this machine's {cores()} cores; running {cores()} "
        "(--force-jobs to start more)\n"
    )
    assert main([*argv, "--force-jobs"]) == 0 and capsys.readouterr().err == ""
    assert seen == [cores(), 1_000_000_000]


@pytest.mark.skipif(shutil.which("srun") is not None, reason="Slurm is installed here")
def test_slurm_without_slurm_is_one_line(tmp_path, capsys):
    pytest.importorskip("submitit")
    spec = tmp_path / "tiny.toml"
    spec.write_text(TINY)
    argv = ["sweep", "run", str(spec), "--out", str(tmp_path / "s"), "--executor", "submitit"]
    assert main([*argv, "--submitit-cluster", "slurm", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: cluster: ") and "srun" in err, err
    assert "--submitit-cluster local" in err


# ------------------------------------------------------------------ the Schedule cache
def test_cached_schedule_equals_a_fresh_one_and_is_shared_by_an_lr_grid(tmp_path):
    spec = SweepSpec.from_toml(TINY)
    points = spec.points()
    keys = {(p.lr, p.seed): schedule_key(p) for p in points}
    assert keys[0.1, 0] == keys[0.3, 0] != keys[0.1, 1]  # lr shares; the seed does not
    paths = runner._schedules(tmp_path, points)
    assert len(set(paths.values())) == 2 == len(list((tmp_path / "schedules").glob("*.parquet")))
    for p in points:
        cached = Schedule.load(paths[schedule_key(p)])
        fresh = schedule_for(p, get_workload(p.workload, **p.workload_args).steps)
        pd.testing.assert_frame_equal(cached.frame, fresh.frame)
        assert cached.meta == fresh.meta
    # a run with the cached Schedule gives the numbers of a run that simulates its own
    point = points[1]
    with_cache = run(point, tmp_path / "a", schedule=Schedule.load(paths[schedule_key(point)]))
    pd.testing.assert_frame_equal(with_cache.frame, run(point).frame)


# ------------------------------------------------------------------ the runner
def test_sweep_runs_skips_complete_runs_and_reuses_them_when_the_spec_changes(tmp_path):
    spec = tmp_path / "tiny.toml"
    spec.write_text(TINY)
    out = tmp_path / "sweep"
    summary = run_sweep(spec, out, progress=False)
    assert (summary["state"] == "complete").sum() == 4 and len(_log(out)) == 8
    assert run_sweep(spec, out, progress=False)["state"].eq("complete").all()
    assert len(_log(out)) == 8  # nothing ran again
    spec.write_text(TINY.replace("seed = [0, 1]", "seed = [0, 1, 2]"))  # one more seed
    run_sweep(spec, out, progress=False)
    started = [e["id"] for e in _log(out)[8:] if e["event"] == "start"]
    assert len(started) == 2 and set(started).isdisjoint(summary["run_id"])
    assert status(out).to_dict() == {"complete": 6, "partial": 0, "failed": 0, "new": 0}
    ev, summary = load(out)
    assert len(summary) == 6 and set(ev["run_id"]) == set(summary["run_id"])
    assert {"lr", "seed", "scheme", "scheme.n", "workload", "workload.n_train"} <= set(ev)
    assert ev.groupby("run_id")["update"].max().eq(39).all()  # updates 0..39
    # export: the two tables alone, read back by load() as the same frames (the form of data/)
    paths = export(out, tmp_path / "exported")
    assert [p.name for p in paths] == ["evaluations.parquet", "summary.csv"]
    ev2, summary2 = load(tmp_path / "exported")
    pd.testing.assert_frame_equal(ev2, ev, check_dtype=False)
    # CSV writes a missing value (None or NaN) as an empty field, read back as NaN
    pd.testing.assert_frame_equal(
        summary2, summary.astype(object).where(summary.notna(), np.nan), check_dtype=False
    )
    # only the runs of the spec last run there: back to two seeds, four of the six runs
    (out / "spec.toml").write_text(TINY)
    assert main(["sweep", "export", str(out), "--dest", str(tmp_path / "cli")]) == 0
    assert sorted(load(tmp_path / "cli")[1]["seed"]) == [0, 0, 1, 1]
    (tmp_path / "empty" / "runs").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"out: the sweep directory .* holds no runs"):
        export(tmp_path / "empty", tmp_path / "nowhere")


def test_load_and_status_refuse_what_is_not_a_sweep(tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    for out, message in [
        (tmp_path / "nonexistent", "out: no sweep directory"),
        (tmp_path / "other", "is not a sweep directory (no spec.toml, no runs/)"),
    ]:
        for call in (load, status, report):
            with pytest.raises(ConfigError, match=re.escape(message)) as err:
                call(out)
            assert err.value.field == "out"
    assert not (tmp_path / "nonexistent").exists()  # report made no folder for it
    (tmp_path / "fresh").mkdir()
    (tmp_path / "fresh" / "spec.toml").write_text(TINY)  # a sweep not yet run: empty tables
    assert load(tmp_path / "fresh")[1].empty
    assert status(tmp_path / "fresh")["new"] == 4


def test_a_run_that_raises_is_recorded_and_a_diverged_run_is_a_result(tmp_path):
    def broken(**kwargs):
        raise RuntimeError("this workload cannot be built")

    def refused(**kwargs):
        raise ConfigError("n_train", "n_train must be <= 10 (available), got 400")

    register_workload("broken_for_test", broken)
    register_workload("refused_for_test", refused)
    try:
        spec = SweepSpec.from_toml(
            TINY.replace("lr = [0.1, 0.3]\nseed = [0, 1]\n", "")
            + """\
workload = [{name = "broken_for_test"}, {name = "refused_for_test"}, {name = "quadratic"}]
lr = [0.01, 100.0]
"""
        )
        summary = run_sweep(spec, tmp_path, progress=False).set_index(["workload", "lr"])
    finally:
        WORKLOADS.pop("broken_for_test")
        WORKLOADS.pop("refused_for_test")
    assert summary.loc[("broken_for_test", 0.01), "state"] == "failed"
    run_id = summary.loc[("broken_for_test", 0.01), "run_id"]
    error = (tmp_path / "runs" / run_id / "error.txt").read_text()
    assert "RuntimeError: this workload cannot be built" in error
    # the structured record beside the traceback, and the summary's columns read from it
    record = json.loads((tmp_path / "runs" / run_id / "error.json").read_text())
    assert record == {
        "type": "RuntimeError",
        "field": None,
        "message": "this workload cannot be built",
    }
    refused_row = summary.loc[("refused_for_test", 0.01)]
    assert (refused_row["state"], refused_row["error_type"]) == ("failed", "ConfigError")
    assert refused_row["error_field"] == "n_train"
    assert summary.loc[("broken_for_test", 100.0), "error_type"] == "RuntimeError"
    assert pd.isna(summary.loc[("broken_for_test", 100.0), "error_field"])
    assert summary.loc[("quadratic", 0.01), ["error_type", "error_field"]].isna().all()
    assert summary.loc[("quadratic", 100.0), "state"] == "complete"
    assert summary.loc[("quadratic", 100.0), "status"] == "diverged"
    assert summary.loc[("quadratic", 0.01), "status"] == "ok"
    assert status(tmp_path)["failed"] == 4
    tables = report(tmp_path)
    assert set(tables["failures"]["error"]) == {
        "RuntimeError: this workload cannot be built",
        "toolkit.checks.ConfigError: n_train must be <= 10 (available), got 400",
    }
    assert set(tables["failures"]["error_field"].dropna()) == {"n_train"}


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_sigkill_of_the_runner_then_the_same_command_redoes_only_unfinished_runs(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(
        TINY.replace("updates = 40", "updates = 400").replace(
            "lr = [0.1, 0.3]", "lr = [0.03, 0.1, 0.3, 1.0]"
        )
    )
    out = tmp_path / "sweep"
    command = ["sweep", "run", str(spec), "--out", str(out)]
    command += ["--jobs", "2", "--no-progress"]
    every = {**os.environ, "TOOLKIT_CHECKPOINT_SECONDS": "0"}  # a checkpoint per evaluation
    proc = warm_cli.start(command, env=every, new_session=True)
    try:
        deadline = time.monotonic() + 180
        while not any(e["event"] == "end" for e in _log(out)):
            assert proc.poll() is None, proc.output()[1]
            assert time.monotonic() < deadline, "no run finished within 180 s"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the runner and its pool, at once
        proc.wait(timeout=30)
    states = {p.name: runner.store.run_state(p) for p in (out / "runs").iterdir()}
    complete = {k for k, v in states.items() if v == "complete"}
    points = {c.id() for c in SweepSpec.load(spec).points()}
    assert 1 <= len(complete) < len(points), states  # killed part way
    before = len(_log(out))
    done = warm_cli.run(command, env=every, timeout=300)
    assert done.returncode == 0, done.stderr
    second = _log(out)[before:]
    started = [e["id"] for e in second if e["event"] == "start"]
    assert sorted(started) == sorted(points - complete)  # each unfinished run once, no other
    assert status(out)["complete"] == len(points)
    # a run continued from its checkpoint has the numbers of an uninterrupted one
    ev, _ = load(out)
    config = SweepSpec.load(spec).points()[0]
    fresh = run(config)
    got = ev[ev["run_id"] == config.id()].reset_index(drop=True)
    np.testing.assert_array_equal(got["test_loss"], fresh.evaluations["test_loss"])


def _slow_spec(tmp_path: Path) -> Path:
    """Four runs (two learning rates, two seeds) of a few seconds each: long enough to be
    stopped part way, two at a time."""
    spec = tmp_path / "spec.toml"
    spec.write_text(TINY.replace("updates = 40", "updates = 1500"))
    return spec


def _session_processes(sid: int) -> list[int]:
    """Pids of the processes of session ``sid`` (the runner and everything it started)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":  # session id; zombies are gone
                out.append(int(entry.name))
    return out


@pytest.mark.parametrize(
    ("signum", "whole_group", "code"),
    [(signal.SIGINT, False, 130), (signal.SIGINT, True, 130), (signal.SIGTERM, False, 143)],
    ids=["sigint-runner-only", "sigint-group", "sigterm-runner-only"],
)
@pytest.mark.integration
def test_a_signal_stops_the_runner_and_its_runs_and_the_same_command_goes_on(
    tmp_path, signum, whole_group, code
):
    """SIGINT or SIGTERM to the runner alone (as a scheduler or `kill -INT PID` sends it) or to
    its whole process group (Ctrl-C in a terminal): the runner stops the runs in flight, exits
    with 128 + signum within the grace period, prints the command that goes on and no
    traceback, and leaves no process behind; the same command then runs only what was not
    complete."""
    spec, out = _slow_spec(tmp_path), tmp_path / "sweep"
    command = ["sweep", "run", str(spec), "--out", str(out)]
    command += ["--jobs", "2", "--no-progress"]
    proc = warm_cli.start(command, new_session=True)
    try:
        deadline = time.monotonic() + 180
        while sum(e["event"] == "start" for e in _log(out)) < 2:
            assert proc.poll() is None, proc.output()[1]
            assert time.monotonic() < deadline, "no two runs started within 180 s"
            time.sleep(0.05)
        time.sleep(0.5)
        if whole_group:
            os.killpg(proc.pid, signum)
        else:
            os.kill(proc.pid, signum)
        _, err = proc.communicate(timeout=runner.GRACE + 30)
        left = _session_processes(proc.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == code, err[-2000:]
    assert "Traceback" not in err and f"toolkit sweep run {spec} --out {out}" in err, err
    assert left == [], f"processes left behind: {left}"
    states = {p.name: runner.store.run_state(p) for p in (out / "runs").iterdir()}
    complete = {k for k, v in states.items() if v == "complete"}
    points = {c.id() for c in SweepSpec.load(spec).points()}
    before = len(_log(out))
    done = warm_cli.run(command, timeout=600)
    assert done.returncode == 0, done.stderr
    started = [e["id"] for e in _log(out)[before:] if e["event"] == "start"]
    assert sorted(started) == sorted(points - complete)
    assert status(out)["complete"] == len(points)


@pytest.mark.integration
def test_a_second_runner_on_the_same_directory_is_refused_naming_the_holder(tmp_path):
    """Two runners on one sweep directory would run every point twice: the second is refused
    (one line, exit 2, the holder's pid) while the first holds the lock, and each point runs
    once."""
    spec, out = _slow_spec(tmp_path), tmp_path / "sweep"
    command = ["sweep", "run", str(spec), "--out", str(out)]
    command += ["--jobs", "1", "--no-progress"]
    first = warm_cli.start(command, new_session=True)
    try:
        deadline = time.monotonic() + 180
        while not any(e["event"] == "start" for e in _log(out)):
            assert first.poll() is None, first.output()[1]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # the first runner (and its run) stopped while the second starts: it holds the lock
        # however long the second takes to import on a loaded machine
        os.killpg(first.pid, signal.SIGSTOP)
        try:
            second = warm_cli.run(command, timeout=120)
        finally:
            os.killpg(first.pid, signal.SIGCONT)
        assert second.returncode == 2, second.stderr
        assert f"pid {first.pid}" in second.stderr and "Traceback" not in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
        _, err = first.communicate(timeout=600)
        assert first.returncode == 0, err
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    starts = [e["id"] for e in _log(out) if e["event"] == "start"]
    assert len(starts) == len(set(starts)) == len(SweepSpec.load(spec).points())


@pytest.mark.integration
def test_a_lock_left_by_a_dead_runner_is_taken_over(tmp_path):
    """The lock is a kernel lock on DIR/.lock: a runner killed with SIGKILL leaves the file but
    not the lock, so the next runner goes on."""
    out = tmp_path / "sweep"
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from toolkit.sweeps.runner import sweep_lock\n"
        "with sweep_lock(Path(sys.argv[1])):\n"
        "    print('locked', flush=True); time.sleep(60)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(out)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ValueError, match=rf"in use by another runner \(pid {holder.pid}"):
            with runner.sweep_lock(out):
                pass
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert (out / ".lock").exists()
    with runner.sweep_lock(out):  # taken over
        pass


# ------------------------------------------------------------------ back-ends
@pytest.mark.integration
def test_local_pool_gives_the_numbers_of_one_by_one(tmp_path):
    spec = SweepSpec.from_toml(TINY)
    serial = run_sweep(spec, tmp_path / "one", jobs=1, progress=False)
    pool = run_sweep(spec, tmp_path / "two", jobs=2, progress=False)
    cols = ["run_id", "final", "best", "updates"]
    pd.testing.assert_frame_equal(
        serial[cols].sort_values("run_id").reset_index(drop=True),
        pool[cols].sort_values("run_id").reset_index(drop=True),
    )


def _kill_first_attempt(task: dict) -> dict:
    """run_point, except that the first attempt at the first task kills its own worker
    process (SIGKILL), as an OOM killer or a lost node would."""
    marker = Path(task["out"]) / "killed-once"
    if task["config"]["seed"] == 0 and task["config"]["lr"] == 0.1:
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pass
        else:
            os.close(fd)
            os.kill(os.getpid(), signal.SIGKILL)
    return runner.run_point(task)


@pytest.mark.integration
@pytest.mark.timeout(600)  # Ray or submitit on a loaded 2-core machine: up to ~4 min
def test_ray_executor_retries_a_task_whose_worker_was_killed(tmp_path, watchdog):
    import ray  # the [ray] extra: `make test` installs it, so a missing install fails here
    from ray import cloudpickle  # Ray's own copy pickles its remote functions

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not import tests/
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        _, configs = runner.plan(SweepSpec.from_toml(TINY), tmp_path)
        tasks = runner.tasks_for(configs, tmp_path)
        results = list(runner._ray(_kill_first_attempt, tasks, 2, None))
        assert (tmp_path / "killed-once").exists()  # a worker did die
        assert sorted(r["id"] for r in results) == sorted(c.id() for c in configs)
        assert all(r["state"] == "complete" for r in results)
        summary = run_sweep(SweepSpec.from_toml(TINY), tmp_path / "ray", executor="ray")
        assert summary["state"].eq("complete").all() and len(summary) == 4
    finally:
        ray.shutdown()
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    local = run_sweep(SweepSpec.from_toml(TINY), tmp_path / "local", progress=False)
    cols = ["run_id", "final"]
    pd.testing.assert_frame_equal(
        summary[cols].sort_values("run_id").reset_index(drop=True),
        local[cols].sort_values("run_id").reset_index(drop=True),
    )


@pytest.mark.integration
@pytest.mark.timeout(600)  # Ray or submitit on a loaded 2-core machine: up to ~4 min
def test_submitit_executor_with_its_local_cluster(tmp_path, watchdog):
    """Two runs (one per seed): each submitit job is a fresh interpreter that imports torch."""
    import submitit  # noqa: F401  (the [slurm] extra; `make test` installs it)

    summary = run_sweep(
        SweepSpec.from_toml(TINY.replace("lr = [0.1, 0.3]", "lr = [0.1]")),
        tmp_path,
        executor="submitit",
        cluster="local",
        parameters={"timeout_min": 4},
        progress=False,
    )
    assert summary["state"].eq("complete").all() and len(summary) == 2
    assert any((tmp_path / "submitit").iterdir())  # submitit's own logs


def test_missing_extras_are_named(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    monkeypatch.setitem(sys.modules, "submitit", None)
    spec = SweepSpec.from_toml(TINY)
    with pytest.raises(ValueError, match=r"\[ray\] extra"):
        run_sweep(spec, tmp_path, executor="ray", progress=False)
    with pytest.raises(ValueError, match=r"\[slurm\] extra"):
        run_sweep(spec, tmp_path, executor="submitit", progress=False)
    with pytest.raises(ValueError, match="executor"):
        run_sweep(spec, tmp_path, executor="dask", progress=False)
    with pytest.raises(ValueError, match="jobs"):
        run_sweep(spec, tmp_path, jobs=0, progress=False)


# ------------------------------------------------------------------ analysis
def _summary() -> pd.DataFrame:
    """Two schemes x two lrs x three seeds on two workloads, values chosen by hand."""
    rows = []
    values = {  # (workload, label, lr) -> final accuracy per seed
        ("w1", "A", 0.1): [0.50, 0.60, 0.70],
        ("w1", "A", 0.3): [0.80, 0.70, 0.90],
        ("w1", "B", 0.1): [0.40, 0.40, 0.40],
        ("w1", "B", 0.3): [0.20, 0.30, 0.10],
        ("w2", "A", 0.1): [0.10, 0.20, 0.30],
        ("w2", "A", 0.3): [0.30, 0.30, 0.30],
        ("w2", "B", 0.1): [0.90, 0.80, 0.70],
        ("w2", "B", 0.3): [0.60, 0.60, 0.60],
    }
    ttt = {("w1", "A"): 10.0, ("w1", "B"): 30.0, ("w2", "A"): 40.0, ("w2", "B"): 20.0}
    for (w, label, lr), finals in values.items():
        for seed, final in enumerate(finals):
            t = ttt[w, label] * (1 + seed) if lr == 0.3 else math.nan
            rows.append(dict(workload=w, label=label, lr=lr, seed=seed, final=final, t=t))
    return pd.DataFrame(rows)


def test_time_to_target_is_the_first_time_the_metric_reaches_it():
    ev = pd.DataFrame(
        {
            "run_id": ["a"] * 4 + ["b"] * 3 + ["c"] * 2,
            "time": [0.0, 1.0, 2.0, 3.0, 0.0, 5.0, 10.0, 0.0, 1.0],
            "test_accuracy": [0.1, 0.6, 0.4, 0.7, 0.1, 0.2, 0.55, 0.1, 0.2],
            "test_loss": [2.0, 1.0, 1.5, 0.5, 2.0, 1.9, 0.9, 3.0, 2.5],
        }
    )
    got = time_to_target(ev.sample(frac=1, random_state=0), 0.55)  # order of rows irrelevant
    assert got.loc["a"] == 1.0 and got.loc["b"] == 10.0 and math.isnan(got.loc["c"])
    loss = time_to_target(ev, 1.0, "test_loss", higher_is_better=False)
    assert loss.to_dict() == {"a": 1.0, "b": 10.0, "c": pytest.approx(math.nan, nan_ok=True)}


def test_over_seeds_mean_best_worst_and_an_interval_only_from_five_seeds():
    s = _summary()
    table = over_seeds(s, "final", ["workload", "label", "lr"]).set_index(
        ["workload", "label", "lr"]
    )
    row = table.loc["w1", "A", 0.1]
    assert row["n"] == 3 and row["mean"] == pytest.approx(0.6)
    assert (row["best"], row["worst"]) == (0.7, 0.5)
    # three seeds: the range (best, worst) and no interval
    assert table["interval"].eq("range").all()
    assert table["ci_low"].isna().all() and table["ci_high"].isna().all()
    # lower is better, and a NaN (never reached) is the worst and left out of the mean
    t = s.copy()
    t.loc[(t.workload == "w1") & (t.label == "A") & (t.lr == 0.3) & (t.seed == 2), "t"] = np.nan
    tt = over_seeds(t, "t", ["workload", "label", "lr"], higher_is_better=False)
    row = tt.set_index(["workload", "label", "lr"]).loc["w1", "A", 0.3]
    assert row["mean"] == pytest.approx(15.0) and row["best"] == 10.0
    assert math.isnan(row["worst"]) and row["n_finite"] == 2
    # five seeds: Student-t, mean +- t_{0.975, 4} s / sqrt(5) (t_{0.975, 4} = 2.7764, tables)
    five = pd.DataFrame({"g": "x", "v": [1.0, 2.0, 3.0, 4.0, 5.0]})
    row = over_seeds(five, "v", ["g"]).iloc[0]
    half = 2.7764451 * math.sqrt(2.5) / math.sqrt(5)
    assert row["interval"] == "t 95%"
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(3 - half), pytest.approx(3 + half))
    with pytest.raises(ValueError, match="method: the bootstrap needs >= 10 values"):
        over_seeds(five, "v", ["g"], method="bootstrap")
    # the interval covers the true mean at its level: normal samples, 200 replications
    rng = np.random.default_rng(1)
    frames = [pd.DataFrame({"rep": r, "v": rng.normal(0.0, 1.0, 30)}) for r in range(200)]
    for method in ("t", "bootstrap"):
        ci = over_seeds(pd.concat(frames), "v", ["rep"], method=method, seed=2)
        coverage = ((ci["ci_low"] <= 0) & (ci["ci_high"] >= 0)).mean()
        bias = 0.0 if method == "t" else 0.02  # the percentile bootstrap is narrow at n = 30
        assert abs(coverage - 0.95) < 4 * math.sqrt(0.95 * 0.05 / 200) + bias


def test_best_lr_states_its_protocol_and_picks_the_best_mean():
    best = best_lr(_summary(), "final", ["workload", "label"]).set_index(["workload", "label"])
    assert best["lr"].to_dict() == {
        ("w1", "A"): 0.3,  # mean 0.8 vs 0.6
        ("w1", "B"): 0.1,  # 0.4 vs 0.2
        ("w2", "A"): 0.3,  # 0.3 vs 0.2
        ("w2", "B"): 0.1,  # 0.8 vs 0.6
    }
    assert best.loc[("w1", "A"), "mean"] == pytest.approx(0.8)
    assert best["protocol"].iloc[0] == (
        "mean over seeds of final; lr grid [0.1, 0.3]; same budget for every group"
    )
    worst = best_lr(_summary(), "t", ["workload", "label"], higher_is_better=False)
    assert worst["lr"].eq(0.3).all()  # lr 0.1 never reached the target: NaN cannot win
    # with two lrs every pick is an end of the grid; with a third above, A on w1 is inside
    assert best["lr_status"].eq("edge").all()
    s = _summary()
    more = s[s.lr == 0.1].assign(lr=1.0, final=lambda d: d["final"] - 0.5)
    three = best_lr(pd.concat([s, more]), "final", ["workload", "label"])
    status = three.set_index(["workload", "label"])["lr_status"].to_dict()
    assert status == {
        ("w1", "A"): "interior",  # 0.3 between 0.1 and 1
        ("w1", "B"): "edge",  # 0.1, the smallest
        ("w2", "A"): "interior",
        ("w2", "B"): "edge",
    }


def test_performance_profile_against_hand_computed_ratios():
    # mean time to target (lr 0.3): w1: A 20, B 60; w2: A 80, B 40
    profile = performance_profile(
        _summary()[lambda d: d.lr == 0.3], "t", taus=(1.0, 2.0, 3.0)
    ).set_index(["solver", "tau"])["rho"]
    # ratios r_ps: A: w1 1, w2 2; B: w1 3, w2 1
    assert profile.to_dict() == {
        ("A", 1.0): 0.5,
        ("A", 2.0): 1.0,
        ("A", 3.0): 1.0,
        ("B", 1.0): 0.5,
        ("B", 2.0): 0.5,
        ("B", 3.0): 1.0,
    }
    # a solver that never solves a problem never reaches rho = 1 there
    s = _summary()[lambda d: d.lr == 0.3].copy()
    s.loc[(s.workload == "w2") & (s.label == "A"), "t"] = np.nan
    rho = performance_profile(s, "t", taus=(100.0,)).set_index("solver")["rho"]
    assert rho.to_dict() == {"A": 0.5, "B": 1.0}


def test_sensitivity_is_over_seeds_per_lr():
    table = sensitivity(_summary(), "final", ["workload", "label"])
    assert len(table) == 8 and set(table["lr"]) == {0.1, 0.3}
    row = table.set_index(["workload", "label", "lr"]).loc["w2", "B", 0.1]
    assert (row["mean"], row["best"], row["worst"]) == (pytest.approx(0.8), 0.9, 0.7)


# ------------------------------------------------------------------ the quick spec
@pytest.mark.integration
@pytest.mark.timeout(900)
def test_quick_spec_end_to_end_with_its_report(tmp_path):
    """The shipped quick spec, its simulated budget cut to an eighth: the same 48 points and code
    paths (every run still makes its 20 evaluations), an eighth of the training."""
    text = (ROOT / "sweeps/quick.toml").read_text()
    assert "time_budget = 600.0" in text
    path, out = tmp_path / "quick.toml", tmp_path / "quick"
    path.write_text(text.replace("time_budget = 600.0", "time_budget = 75.0"))
    command = ["sweep", "run", str(path)]
    command += ["--out", str(out), "--jobs", "2", "--no-progress"]
    done = warm_cli.run(command, timeout=600)
    assert done.returncode == 0, done.stderr
    spec = SweepSpec.load(path)
    points = spec.points()
    assert len(points) == 48 and spec.base["time_budget"] == 75.0
    assert f"{len(points)} runs: {len(points)} complete" in done.stdout
    rep = warm_cli.run(["sweep", "report", str(out)], timeout=300)
    assert rep.returncode == 0, rep.stderr
    dest = out / "report"
    final = pd.read_csv(dest / "final.csv")
    ev, summary = load(out)
    n_configs = len({(p.workload, str(p.scheme), p.lr) for p in points})
    assert len(final) == n_configs and final["n"].eq(2).all()  # two seeds each
    # the report's numbers are those of the runs on disk
    for _, row in final.iterrows():
        runs = summary[
            (summary.workload == row.workload)
            & (summary.label == row.label)
            & (summary.lr == row.lr)
        ]
        assert row["mean"] == pytest.approx(runs["final"].mean())
        assert row["best"] == pytest.approx(runs["final"].max())
    best = pd.read_csv(dest / "best_lr.csv")
    assert len(best) == n_configs // 3 and best["protocol"].str.contains("same budget").all()
    profile = pd.read_csv(dest / "performance_profile.csv")
    assert profile["rho"].between(0, 1).all()
    for workload in ("mnist1d_mlp", "logreg"):
        for kind in ("curves", "lr", "heatmap"):
            for suffix in ("pdf", "png"):
                assert (dest / f"{workload}_{kind}.{suffix}").stat().st_size > 1000
    # every run had the same simulated wall-clock budget
    assert ev.groupby("run_id")["time"].max().le(spec.base["time_budget"]).all()


def test_paper_spec_gives_every_scheme_the_same_start_and_budget():
    """sweeps/paper.toml: every cell's lr search starts from one grid, every run has the same
    maximum budget and plateau rule, momentum is tuned where a scheme takes it, and the tuned and
    scaled protocols report on held-out seeds."""
    spec = SweepSpec.load(ROOT / "sweeps/paper.toml")
    points = spec.points()
    names = {p.scheme.name for p in points}
    assert names == {
        "sync", "backup", "async", "kasync", "kbatchasync", "delayed", "easgd", "localsgd"
    }  # fmt: skip
    assert {p.workload for p in points} == {"mnist1d_mlp", "digits_cnn"}
    grids = {}
    for p in points:
        grids.setdefault((p.workload, str(p.scheme), p.momentum), set()).add(p.lr)
    assert set(map(frozenset, grids.values())) == {frozenset({0.03, 0.1, 0.3})}
    assert {p.time_budget for p in points} == {4000.0}
    assert {(p.plateau.window, p.plateau.delta) for p in points} == {(10, 0.005)}
    # momentum 0 and 0.9 for schemes on shared parameters; replica schemes (EASGD, EAMSGD,
    # LocalSGD) keep optimizer momentum 0 (EAMSGD's is its own local Nesterov step)
    replicas = [p for p in points if p.scheme.rule.replicas]
    shared = [p for p in points if not p.scheme.rule.replicas]
    assert {p.momentum for p in replicas} == {0.0} and {p.momentum for p in shared} == {0.0, 0.9}
    # groups compare equal clusters: each scheme at 8 or 16 machines (Backup(n - 1, 1) too)
    assert {p.scheme.rule.machines for p in points} == {8, 16}
    protocol = spec.protocol
    assert set(protocol.names) == {"tuned", "scaled"} and protocol.tune == ("momentum",)
    assert len(protocol.tuning_seeds) == 2 and len(protocol.evaluation_seeds) == 5
    assert not set(protocol.tuning_seeds) & set(protocol.evaluation_seeds)
    protocol.check(spec)


def test_curves_average_seeds_on_a_common_time_grid():
    from toolkit.plots import plot_curves

    df = pd.DataFrame(
        {
            "time": [0.0, 10, 20, 0, 5, 15, 20],
            "test_accuracy": [0.0, 1, 2, 0, 1, 3, 4],
            "seed": [0, 0, 0, 1, 1, 1, 1],
            "update": [0, 1, 2, 0, 1, 2, 3],
            "label": "A",
        }
    )
    fig = plot_curves(df, by="label")
    line = fig.axes[0].lines[0]
    x, y = line.get_xdata(), line.get_ydata()
    assert (x[0], x[-1], len(x)) == (0.0, 20.0, 64)
    both = np.interp(x, [0, 10, 20], [0, 1, 2]) + np.interp(x, [0, 5, 15, 20], [0, 1, 3, 4])
    np.testing.assert_allclose(y, both / 2)


def test_a_run_whose_process_died_is_recorded_without_an_exception(tmp_path):
    from toolkit.sweeps.store import record_failure, run_dir

    (config,) = SweepSpec.from_toml(TINY.replace("lr = [0.1, 0.3]\nseed = [0, 1]\n", "")).points()
    (tmp_path / "spec.toml").write_text(TINY)
    record_failure(run_dir(tmp_path, config), config, "its process ended with exit code -9")
    (row,) = load(tmp_path)[1].to_dict("records")
    assert (row["state"], row["error"]) == ("failed", "its process ended with exit code -9")
    assert pd.isna(row["error_type"]) and pd.isna(row["error_field"])


def test_sensitivity_draws_diverged_settings_as_points_not_joined():
    """A setting where a seed diverged breaks the mean line; it is a marked point instead (a
    cross when every seed diverged, an open circle when some did)."""
    from toolkit.plots import plot_sensitivity

    t = pd.DataFrame(
        {
            "label": "A",
            "lr": [0.01, 0.1, 1.0, 10.0],
            "mean": [0.5, 0.6, 0.3, 0.0],
            "best": [0.55, 0.65, 0.6, 0.0],
            "worst": [0.45, 0.55, 0.0, 0.0],
            "diverged_fraction": [0.0, 0.0, 0.5, 1.0],
        }
    )
    ax = plot_sensitivity(t).axes[0]
    line = ax.lines[0].get_ydata()
    np.testing.assert_array_equal(np.isnan(line), [False, False, True, True])
    marks = {
        tuple(ln.get_xdata()): (ln.get_marker(), ln.get_markerfacecolor()) for ln in ax.lines[1:]
    }
    assert marks[(10.0,)][0] == "x"
    assert marks[(1.0,)] == ("o", "none")
    # without the column every setting is joined, as before
    joined = plot_sensitivity(t.drop(columns="diverged_fraction")).axes[0].lines[0].get_ydata()
    assert not np.isnan(joined).any()


def test_curves_hold_a_stopped_run_and_mark_a_diverged_one():
    """With ``hold``, a run that stopped early holds its last value to the longest run's end; a
    diverged run is left out of the mean and drawn on its own, ending in a cross (never at 0)."""
    from toolkit.plots import plot_curves

    df = pd.DataFrame(
        {
            "time": [0.0, 10, 0, 10, 20, 0, 5],
            "test_accuracy": [0.0, 1, 0, 2, 4, 0, np.nan],
            "run_id": ["a", "a", "b", "b", "b", "c", "c"],
            "status": ["ok"] * 5 + ["diverged"] * 2,
            "label": "A",
        }
    )
    fig = plot_curves(df, by="label", hold=True)
    lines = fig.axes[0].lines
    x, y = lines[0].get_xdata(), lines[0].get_ydata()
    assert (x[0], x[-1], len(x)) == (0.0, 20.0, 64)
    both = np.interp(x, [0, 10], [0, 1]) + np.interp(x, [0, 10, 20], [0, 2, 4])
    np.testing.assert_allclose(y, both / 2)  # run a holds 1 after t = 10; run c is not in it
    # run c: its finite part (one point at t = 0), its end marked with a cross
    crosses = [ln for ln in lines if ln.get_marker() == "x" and len(ln.get_xdata())]
    assert [(list(ln.get_xdata()), list(ln.get_ydata())) for ln in crosses] == [([0.0], [0.0])]
    assert not any(5.0 in np.asarray(ln.get_xdata()) for ln in lines)  # its NaN is not drawn


def test_curves_of_single_runs_without_a_seed_column():
    """One run per line and no ``seed`` or ``run_id`` column (the demo's table): an ok run is
    its own line, a diverged one ends in a cross at its last finite value."""
    from toolkit.plots import plot_curves

    df = pd.DataFrame(
        {
            "time": [0.0, 10, 0, 10, 20],
            "test_accuracy": [0.1, 0.5, 0.1, 0.2, np.nan],
            "scheme": ["A", "A", "B", "B", "B"],
            "status": ["ok", "ok", "diverged", "diverged", "diverged"],
        }
    )
    lines = plot_curves(df).axes[0].lines
    assert list(lines[0].get_ydata()) == [0.1, 0.5]
    crosses = [ln for ln in lines if ln.get_marker() == "x" and len(ln.get_xdata())]
    assert [(list(ln.get_xdata()), list(ln.get_ydata())) for ln in crosses] == [([10.0], [0.2])]


def test_a_sweep_whose_engine_refuses_its_points_is_refused_before_any_run(tmp_path):
    """The real backend's checks (here: more ranks than the machine hosts) run for every point
    before the first run starts: one error, no run directory."""
    from toolkit.checks import TooLargeError

    spec = SweepSpec.from_toml(
        'name = "big"\n[base]\nworkload = "logreg"\nupdates = 4\nlr = 0.1\n'
        '[base.scheme]\nname = "sync"\nn = 1000\n[base.engine]\nname = "distributed"\n'
        "[grid]\nseed = [0, 1]\n"
    )
    with pytest.raises(TooLargeError, match="ranks"):
        run_sweep(spec, tmp_path / "sweep", jobs=1, progress=False)
    assert not (tmp_path / "sweep" / "runs").exists()


def test_save_figure_draws_the_png_with_the_pdfs_layout(tmp_path):
    """``save_figure`` lays a figure out once (for its PDF) and draws the PNG with that layout:
    the PNG's axes (a colorbar's too) sit where a PNG laid out on its own puts them, and the
    figure keeps its layout engine."""
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    from toolkit.plots import plot_heatmap, save_figure

    def figure():
        rows = [
            {"lr": lr, "label": s, "final": lr * i} for i, s in enumerate("abc") for lr in (1, 2)
        ]
        return plot_heatmap(pd.DataFrame(rows), "final", "lr", "label")

    alone = figure()
    alone.savefig(tmp_path / "alone.png", dpi=150)
    want = [ax.get_position().bounds for ax in alone.axes]
    fig = figure()
    paths = save_figure(fig, tmp_path / "heatmap")
    assert [p.suffix for p in paths] == [".pdf", ".png"] and all(p.stat().st_size for p in paths)
    assert len(fig.axes) == 2  # the heatmap and its colorbar
    np.testing.assert_allclose([ax.get_position().bounds for ax in fig.axes], want, atol=2e-3)
    assert isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine)


def test_load_tags_evaluation_rows_as_assigning_each_runs_config_would():
    """``load`` puts each run's id and config fields beside its evaluation rows in one pass
    (``store._tagged``): the same table as assigning them run by run, a config field named like
    an evaluation column (``staleness``) in its place, a table-valued one (``plateau``) NaN, runs
    with different fields or columns filled with NaN."""
    from toolkit.sweeps.store import _tag, _tagged

    rng = np.random.default_rng(0)

    def frame(n, accuracy=True):
        ev = pd.DataFrame({"update": np.arange(n), "staleness": rng.random(n)})
        return ev.assign(test_accuracy=rng.random(n)) if accuracy else ev

    runs = [
        ("a", frame(3), {"lr": 0.1, "staleness": "none", "plateau": {"window": 4}, "seed": 0}),
        ("b", frame(2, False), {"lr": 0.3, "staleness": "lr", "plateau": None, "seed": 1}),
        ("c", frame(4), {"lr": 0.1, "staleness": "none", "scheme.b": 1, "seed": 2}),
    ]
    want = pd.concat([ev.assign(run_id=i, **flat) for i, ev, flat in runs], ignore_index=True)
    got = _tagged([ev for _, ev, _ in runs], [_tag(i, flat) for i, _, flat in runs])
    pd.testing.assert_frame_equal(got, want)
