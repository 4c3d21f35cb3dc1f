"""``python -m toolkit train``: writes a Schedule and Results that match the library calls."""

from __future__ import annotations

import pandas as pd
import pytest

from toolkit.cli import main
from toolkit.cluster.clock import simulate
from toolkit.cluster.schedule import Schedule
from toolkit.models.dists import parse_dist
from toolkit.replay import Results, train
from toolkit.schemes import Backup
from toolkit.workloads import get_workload

ARGS = [
    "train",
    "--workload",
    "logreg",
    "--scheme",
    "backup",
    "--n",
    "4",
    "--b",
    "1",
    "--dist",
    "expon(loc=1, scale=0.5)",
    "--updates",
    "20",
    "--lr",
    "0.1",
    "--seed",
    "0",
    "--eval-every",
    "5",
    "--no-progress",
]


def test_train_writes_schedule_and_results_matching_the_library(tmp_path):
    out = tmp_path / "run"
    assert main([*ARGS, "--out", str(out)]) == 0
    sched = Schedule.load(out / "schedule.parquet")
    res = Results.load(out)
    expected_sched = simulate(
        Backup(4, 1), parse_dist("expon(loc=1, scale=0.5)"), updates=20, seed=0
    )
    pd.testing.assert_frame_equal(sched.frame, expected_sched.frame)
    expected = train(expected_sched, get_workload("logreg"), lr=0.1, seed=0, eval_every=5)
    pd.testing.assert_frame_equal(res.frame, expected.frame)
    assert res.status == "ok" and res.manifest["scheme"] == Backup(4, 1).to_dict()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--workload", "nope"], "valid: "),
        (["--scheme", "nope"], "valid: "),
        (["--lr", "0"], "lr must be > 0"),
        (["--lr", "-0.5"], "lr must be > 0"),
        (["--batch-size", "100000"], "batch_size: 100000 is larger than the training set"),
        (["--comm", "ParameterServer(nbytes=1)"], "--comm: bad arguments for ParameterServer"),
        (["--dist", "expon(loc="], "--dist: cannot parse"),
        (["--scheme", "localsgd"], "takes ['n', 'tau'], not ['b']"),
    ],
)
def test_bad_input_gives_a_clear_error(tmp_path, capsys, change, message):
    args = list(ARGS)
    flag = change[0]
    if flag in args:
        i = args.index(flag)
        args[i + 1] = change[1]
    else:
        args += change
    assert main([*args, "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert message in err
    if flag == "--workload":
        assert "mnist1d_mlp" in err
    if flag == "--scheme" and message == "valid: ":
        assert "backup" in err and "easgd" in err


def test_help_explains_the_options(capsys):
    with pytest.raises(SystemExit) as stop:  # argparse's --help
        main(["train", "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    for flag in (
        "--workload",
        "--scheme",
        "--dist",
        "--staleness",
        "--max-staleness",
        "--lr",
        "--batch-size",
        "--eval-every",
        "--device",
        "--comm",
        "--out",
        "--tau",
        "--column",
        "--outer-lr",
        "--outer-momentum",
        "--asynchronous",
    ):
        assert flag in out
