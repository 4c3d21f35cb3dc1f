"""toolkit.notebook: what a notebook leaves for the paper and the tests."""

import json

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from toolkit.notebook import Output, profile, read_numbers, read_table


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


def test_another_notebooks_outputs_are_read_back(tmp_path, monkeypatch):
    monkeypatch.setenv("NOTEBOOK_OUT", str(tmp_path))
    out = Output("01_first")
    out.table("t", pd.DataFrame({"a": [1.5, 2.5]}))
    out.number(best=3)
    assert read_table("01_first", "t")["a"].tolist() == [1.5, 2.5]
    assert read_numbers("01_first") == {"best": 3}
    with pytest.raises(ValueError, match=r"02_second: .* run notebook 02_second first"):
        read_table("02_second", "t")
    with pytest.raises(ValueError, match=r"01_first: .*u\.csv is missing"):
        read_table("01_first", "u")


def test_profile_is_checked(monkeypatch):
    monkeypatch.delenv("TOOLKIT_PROFILE", raising=False)
    assert profile() == "quick"
    monkeypatch.setenv("TOOLKIT_PROFILE", "full")
    assert profile() == "full"
    monkeypatch.setenv("TOOLKIT_PROFILE", "fast")
    with pytest.raises(ValueError, match="TOOLKIT_PROFILE"):
        profile()
