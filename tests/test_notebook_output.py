"""toolkit.notebook: what a notebook leaves for the paper and the tests."""

import json

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from toolkit.checks import ConfigError
from toolkit.notebook import Output, paper_sweep, profile, repo_root


def test_output_writes_tables_figures_numbers_and_conclusion(tmp_path, monkeypatch):
    monkeypatch.setenv("NOTEBOOK_OUT", str(tmp_path))
    out = Output("99_example")
    frame = out.table("t", pd.DataFrame({"a": [1, 2]}))
    assert pd.read_csv(tmp_path / "99_example" / "t.csv").equals(frame)
    fig = Figure()
    fig.add_subplot().plot([0, 1])
    out.figure("f", fig)
    assert (tmp_path / "99_example" / "f.svg").stat().st_size > 0
    assert (tmp_path / "99_example" / "f.png").stat().st_size > 0
    out.number(x=np.float64(0.5), n=np.int64(3), missing=float("nan"), d={1.0: np.float32(2)})
    saved = json.loads((tmp_path / "99_example" / "numbers.json").read_text())
    assert saved == {"x": 0.5, "n": 3, "missing": None, "d": {"1.0": 2.0}}
    assert out["x"] == 0.5
    out.conclusion("**Answer.** x is 0.5.")
    assert (tmp_path / "99_example" / "conclusion.md").read_text() == "**Answer.** x is 0.5.\n"


def test_profile_is_checked(monkeypatch):
    monkeypatch.delenv("TOOLKIT_PROFILE", raising=False)
    assert profile() == "quick"
    monkeypatch.setenv("TOOLKIT_PROFILE", "full")
    assert profile() == "full"
    monkeypatch.setenv("TOOLKIT_PROFILE", "fast")
    with pytest.raises(ValueError, match="TOOLKIT_PROFILE"):
        profile()


def test_paper_sweep_classifies_refused_runs_by_their_error_columns(tmp_path):
    # data/paper: 120 points refused for their configuration (16 x 128 samples per step
    # exceed digits_cnn's 1,348 training images), named by error_field, not by message text
    _, summary = paper_sweep()
    infeasible = summary.attrs["infeasible"]
    assert (len(summary), len(infeasible)) == (840, 120)
    assert set(infeasible["error_field"]) == {"schedule"}
    cases = infeasible[["workload", "batch_size", "machines"]].drop_duplicates()
    assert cases.values.tolist() == [["digits_cnn", 128, 16]]
    # a run refused for this machine's memory, or one that raised for another reason, is not
    # a result: the point counts as missing
    table = pd.read_csv(repo_root() / "data" / "paper" / "summary.csv")
    failed = table.index[table["state"] == "failed"]
    table.loc[failed[0], "error_type"] = "TooLargeError"
    table.loc[failed[1], ["error_type", "error_field"]] = ["RuntimeError", None]
    table.to_csv(tmp_path / "summary.csv", index=False)
    (tmp_path / "evaluations.parquet").symlink_to(
        repo_root() / "data" / "paper" / "evaluations.parquet"
    )
    with pytest.raises(ConfigError, match=r"lacks 2 of the 960 runs") as err:
        paper_sweep(tmp_path)
    assert err.value.field == "data"
