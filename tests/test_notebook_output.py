"""toolkit.notebook: what a notebook leaves for the paper and the tests."""

import json

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from toolkit.checks import ConfigError
from toolkit.notebook import Output, paper_sweep, profile, read_numbers, read_table, repo_root


def test_output_writes_tables_figures_numbers_and_conclusion(tmp_path, monkeypatch):
    monkeypatch.setenv("NOTEBOOK_OUT", str(tmp_path))
    out = Output("99_example")
    frame = out.table("t", pd.DataFrame({"a": [1, 2]}))
    assert pd.read_csv(tmp_path / "99_example" / "t.csv").equals(frame)
    fig = Figure()
    fig.add_subplot().plot([0, 1])
    out.figure("f", fig)
    assert (tmp_path / "99_example" / "f.svg").stat().st_size > 0
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


def test_paper_sweep_reads_the_protocol_study():
    """data/paper holds the finished protocol of sweeps/paper.toml: every setting of both
    protocols with its runs on the evaluation seeds only, a diverged run scoring 0."""
    study = paper_sweep()
    assert study.plan.done and study.budget == 4000.0
    protocol = study.spec.protocol
    evaluation = sorted(protocol.evaluation_seeds)
    assert set(study.settings["protocol"]) == {"tuned", "scaled"}
    seeds = study.runs.groupby("setting")["seed"].apply(sorted)
    assert len(seeds) == len(study.settings) and all(v == evaluation for v in seeds)
    assert not set(study.runs["seed"]) & set(protocol.tuning_seeds)
    ok = ~study.runs["diverged"]
    assert (study.runs.loc[ok, "score"] == study.runs.loc[ok, "final"]).all()
    assert (study.runs.loc[~ok, "score"] == 0).all()
    # one status per search, one of the protocol's
    per = study.searches.groupby(["workload", "machines", "label", "momentum"])["lr_status"]
    assert per.nunique().eq(1).all()
    assert set(study.searches["lr_status"]) <= {"interior", "wall", "capped"}


def test_paper_sweep_refuses_other_or_unfinished_data(tmp_path):
    data = repo_root() / "data" / "paper"
    for name in ("evaluations.parquet", "log.jsonl", "host.json"):
        (tmp_path / name).symlink_to(data / name)
    (tmp_path / "spec.toml").write_text((data / "spec.toml").read_text())
    summary = pd.read_csv(data / "summary.csv")
    # one evaluation run missing: the protocol still calls for it
    first = summary.index[summary["role"] == "evaluation"][0]
    summary.drop(index=first).to_csv(tmp_path / "summary.csv", index=False)
    with pytest.raises(ConfigError, match=r"lacks 1 run\(s\) that the protocol") as err:
        paper_sweep(tmp_path)
    assert err.value.field == "data"
    # data made with another spec than sweeps/paper.toml
    summary.to_csv(tmp_path / "summary.csv", index=False)
    text = (tmp_path / "spec.toml").read_text().replace("4000.0", "3000.0", 1)
    (tmp_path / "spec.toml").write_text(text)
    with pytest.raises(ConfigError, match=r"made with a spec other than paper\.toml") as err:
        paper_sweep(tmp_path)
    assert err.value.field == "data"
