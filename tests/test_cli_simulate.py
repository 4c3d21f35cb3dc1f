"""`python -m toolkit simulate`."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from toolkit.cli import main
from toolkit.cluster import Schedule
from toolkit.cluster.clock import simulate
from toolkit.models.comm import ParameterServer, parse_comm
from toolkit.models.dists import parse_dist
from toolkit.schemes import DiLoCo


def test_simulate_backup_writes_schedule_and_summary(tmp_path, capsys):
    out = tmp_path / "runs" / "sched.parquet"
    rc = main(
        [
            "simulate",
            "--scheme",
            "backup",
            "--n",
            "16",
            "--b",
            "2",
            "--dist",
            "expon(loc=1, scale=0.5)",
            "--updates",
            "200",
            "--seed",
            "0",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    for key in ("mean_step_time", "staleness_mean", "staleness_p90", "dropped_fraction"):
        assert key in text
    sched = Schedule.load(out)
    assert sched.updates == 200 and len(sched.grads) == 18 * 200
    assert sched.meta["scheme"] == {"name": "backup", "n": 16, "b": 2}
    assert sched.summary()["dropped_fraction"] == pytest.approx(2 / 18)


def test_simulate_csv_trace_comm_and_easgd(tmp_path, capsys):
    trace = tmp_path / "times.csv"
    trace.write_text("step_time\n0.5\n1.0\n2.0\n")
    out = tmp_path / "s.csv"
    rc = main(
        [
            "simulate",
            "--scheme",
            "easgd",
            "--n",
            "3",
            "--tau",
            "2",
            "--alpha",
            "0.1",
            "--asynchronous",
            "--dist",
            str(trace),
            "--updates",
            "10",
            "--comm",
            "ParameterServer(nbytes=1.0, bandwidth=10.0)",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    sched = Schedule.load(out)
    assert sched.meta["scheme"]["synchronous"] is False
    assert (sched.frame["kind"] == "exchange").sum() == 3 * 5


@pytest.mark.parametrize(
    ("args", "msg"),
    [
        (["--scheme", "sync", "--n", "4", "--dist", "__import__('os')"], "dist"),
        (["--scheme", "nope", "--n", "4", "--dist", "expon"], "scheme"),
        (["--scheme", "backup", "--n", "4", "--dist", "expon"], "b"),
        (["--scheme", "sync", "--n", "4", "--dist", "expon", "--updates", "0"], "updates"),
        (["--scheme", "sync", "--n", "4", "--dist", "expon", "--comm", "Evil()"], "--comm: "),
        (["--scheme", "sync", "--n", "4", "--dist", "nosuch(1)"], "--dist: "),
    ],
)
def test_simulate_errors(args, msg, capsys):
    assert main(["simulate", *args]) == 2
    assert msg in capsys.readouterr().err


def test_simulate_diloco_with_outer_flags_matches_the_library(tmp_path):
    out = tmp_path / "d.parquet"
    argv = ["simulate", "--scheme", "diloco", "--n", "3", "--h", "4", "--outer-lr", "0.5"]
    argv += ["--outer-momentum", "0.25", "--dist", "gamma(2.0)", "--updates", "40"]
    argv += ["--comm", "ParameterServer(nbytes=1.0, bandwidth=10.0)", "--seed", "5"]
    assert main([*argv, "--out", str(out)]) == 0
    sched = Schedule.load(out)
    scheme = DiLoCo(3, 4, outer_lr=0.5, outer_momentum=0.25)
    assert sched.meta["scheme"] == scheme.to_dict()
    want = simulate(
        scheme, parse_dist("gamma(2.0)"), ParameterServer(1.0, 10.0), updates=40, seed=5
    )
    pd.testing.assert_frame_equal(sched.frame, want.frame)


def test_simulate_csv_column(tmp_path):
    trace = tmp_path / "times.csv"
    trace.write_text("fast,slow\n0.5,5.0\n1.0,6.0\n")
    out = tmp_path / "s.parquet"
    argv = ["simulate", "--scheme", "sync", "--n", "2", "--dist", str(trace), "--updates", "20"]
    assert main([*argv, "--column", "slow", "--out", str(out)]) == 0
    step = Schedule.load(out).summary()["mean_step_time"]
    assert 5.0 <= step <= 6.0  # the max of two draws from {5, 6}, never from the fast column


def test_parse_comm():
    assert parse_comm(None) is None and parse_comm("none") is None
    assert parse_comm("RingAllReduce(nbytes=8, bandwidth=2.0)").exchange_time(2) == 4.0
    with pytest.raises(ValueError, match="comm"):
        parse_comm("ParameterServer(nbytes=open('x'))")


@pytest.mark.integration
def test_module_entry_point(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "toolkit",
            "simulate",
            "--scheme",
            "async",
            "--n",
            "4",
            "--dist",
            "gamma(2.0)",
            "--updates",
            "100",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "staleness_mean" in r.stdout
