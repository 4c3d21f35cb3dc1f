"""The main job (`python -m toolkit demo`) runs end to end on a small budget."""

import pandas as pd
import pytest

from toolkit.cli import main
from toolkit.demo import default_schemes


def test_demo_runs_every_scheme_and_writes_its_outputs(tmp_path, capsys):
    rc = main(
        ["demo", "--out", str(tmp_path), "--machines", "4", "--budget-steps", "15", "--no-progress"]
    )
    assert rc == 0
    table = pd.read_csv(tmp_path / "summary.csv")
    assert list(table["scheme"]) == [str(s) for s in default_schemes(4)]
    assert set(table["status"]) <= {"ok", "diverged"}
    ok = table[table["status"] == "ok"]
    assert ((ok["test_accuracy"] >= 0) & (ok["test_accuracy"] <= 1)).all()
    # Every scheme trains on exactly the updates applied within the budget: its run directory's
    # Results end at or before the budget, and its next update would come after it.
    assert (table["updates_in_budget"] > 0).all()
    from toolkit.replay import Results

    for scheme in default_schemes(4):
        res = Results.load(tmp_path / scheme.name)
        budget = res.manifest["schedule_meta"]["time_budget"]
        assert res.frame["time"].max() <= budget
    assert (tmp_path / "accuracy_vs_time.png").stat().st_size > 0
    for scheme in default_schemes(4):
        assert (tmp_path / scheme.name / "manifest.json").exists()
    assert "summary.csv" in capsys.readouterr().out


@pytest.mark.integration
def test_demo_numbers_do_not_depend_on_jobs(tmp_path):
    """Two workers (one torch thread each) give the table one process gives, row for row."""
    from toolkit.demo import run_demo

    kwargs = {"machines": 4, "budget_steps": 10, "progress": False}
    one = run_demo(tmp_path / "one", jobs=1, **kwargs).drop(columns="replay_seconds")
    two = run_demo(tmp_path / "two", jobs=2, **kwargs).drop(columns="replay_seconds")
    pd.testing.assert_frame_equal(one, two)


def test_demo_refuses_zero_jobs(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--jobs", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--jobs" in err and len(err.splitlines()) == 1
