"""The files shipped in data/ are what their script makes, and the command line reads them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from toolkit.cli import main
from toolkit.models import Empirical, Trace

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.integration
def test_traces_are_reproduced_by_their_script(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "data" / "make_traces.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for name in ("trace_8workers.csv", "step_times.csv"):
        pd.testing.assert_frame_equal(
            pd.read_csv(tmp_path / name), pd.read_csv(ROOT / "data" / name)
        )
    trace = Trace.from_csv(ROOT / "data" / "trace_8workers.csv")
    emp = Empirical.from_csv(ROOT / "data" / "step_times.csv")
    assert trace.times.shape == (500, 8) and emp.size == 4000
    assert sorted(emp.values) == sorted(trace.times.ravel())


def test_the_readme_trace_commands_run(tmp_path, capsys):
    args = ["simulate", "--scheme", "backup", "--n", "6", "--b", "2", "--updates", "50"]
    emp = str(ROOT / "data" / "step_times.csv")
    assert main([*args, "--dist", emp, "--out", str(tmp_path / "e.parquet")]) == 0
    trace = f'Trace("{ROOT / "data" / "trace_8workers.csv"}")'
    assert main([*args, "--dist", trace, "--out", str(tmp_path / "t.parquet")]) == 0
    assert capsys.readouterr().out.count("wrote") == 2


def test_the_measured_trace_is_a_whole_backend_trace_that_the_clock_reads(tmp_path, capsys):
    """A measurement is not reproducible bit for bit: check what it must be, a complete trace
    of Sync(4) x 500 updates (every worker's batches 0..499, positive seconds), and that the
    command line and ``Empirical`` read it."""
    path = ROOT / "data" / "measured_sync4_cnn.csv"
    frame = pd.read_csv(path)
    assert list(frame.columns) == ["worker", "batch", "compute_time"]
    for w in range(4):
        assert frame.loc[frame["worker"] == w, "batch"].tolist() == list(range(500))
    assert (frame["compute_time"] > 0).all()
    assert Empirical.from_csv(path).size == 2000
    out = tmp_path / "s.parquet"
    args = ["simulate", "--scheme", "backup", "--n", "3", "--b", "1", "--updates", "50"]
    assert main([*args, "--dist", str(path), "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
