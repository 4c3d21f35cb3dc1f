"""Output folders are never shared with another command's files: ``toolkit.files.claim_folder``
and the commands that write a folder of outputs (demo, theory demo, sweep run, sweep export)."""

from __future__ import annotations

import pytest

from toolkit.checks import ConfigError
from toolkit.cli import main
from toolkit.files import MARK, claim_folder
from toolkit.sweeps import export
from toolkit.sweeps.runner import run_sweep

OUTPUTS = ("summary.csv", "figure.png")
SPEC = """name = "tiny"
[base]
updates = 3
lr = 0.1
seed = 0
[base.scheme]
name = "sync"
n = 2
[base.workload]
name = "logreg"
[grid]
seed = [0, 1]
"""


def test_a_folder_holding_another_commands_file_is_refused_and_left_alone(tmp_path):
    (tmp_path / "summary.csv").write_text("mine")
    with pytest.raises(ConfigError, match=r"^out: .* holds files this command did not write "):
        claim_folder(tmp_path, "demo", OUTPUTS, "out")
    assert (tmp_path / "summary.csv").read_text() == "mine" and not (tmp_path / MARK).exists()
    assert claim_folder(tmp_path, "demo", OUTPUTS, "out", overwrite=True) == tmp_path
    assert (tmp_path / MARK).read_text() == "demo\n"


def test_a_commands_own_folder_is_reused_and_another_commands_is_refused(tmp_path):
    claim_folder(tmp_path / "a", "demo", OUTPUTS, "out")
    (tmp_path / "a" / "summary.csv").write_text("the demo's")
    claim_folder(tmp_path / "a", "demo", OUTPUTS, "out")  # a re-run replaces its outputs
    with pytest.raises(ConfigError, match=r"^dest: .* holds demo's outputs \(summary.csv\)"):
        claim_folder(tmp_path / "a", "sweep export", ("summary.csv",), "dest")
    for name in OUTPUTS:  # every output there, no mark: written before marks existed
        (tmp_path / "b" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "b" / name).write_text("x")
    claim_folder(tmp_path / "b", "demo", OUTPUTS, "out")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "summary.csv").write_text("x")
    (tmp_path / "c" / ".lock").write_text("")
    claim_folder(tmp_path / "c", "sweep run", OUTPUTS, "out", own=(".lock",))
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "notes.txt").write_text("x")  # not an output: no conflict
    claim_folder(tmp_path / "d", "demo", OUTPUTS, "out")
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match=r"^out: .* is a file, not a folder"):
        claim_folder(tmp_path / "f", "demo", OUTPUTS, "out")


def test_demo_refuses_a_folder_holding_other_files_then_reruns_in_its_own(tmp_path, capsys):
    out = tmp_path / "d"
    out.mkdir()
    (out / "summary.csv").write_text("mine\n")
    argv = ["demo", "--no-progress", "--budget-steps", "1", "--machines", "2", "--jobs", "1"]
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: out: ") and err.count("\n") == 1 and "--overwrite" in err
    assert (out / "summary.csv").read_text() == "mine\n"
    assert main([*argv, "--out", str(out), "--overwrite"]) == 0
    assert (out / "summary.csv").read_text().startswith("scheme,")
    assert main([*argv, "--out", str(out)]) == 0  # its own folder: the demo runs again


def test_theory_demo_refuses_a_folder_holding_other_files(tmp_path, capsys):
    out = tmp_path / "td"
    out.mkdir()
    (out / "step_times.csv").write_text("mine\n")
    assert main(["theory", "demo", "--out", str(out), "--machines", "4"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: out: ") and "step_times.csv" in err and err.count("\n") == 1
    assert (out / "step_times.csv").read_text() == "mine\n"


def test_sweep_run_and_export_refuse_folders_of_other_files(tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    other = tmp_path / "other"
    other.mkdir()
    (other / "spec.toml").write_text("mine")
    assert main(["sweep", "run", str(spec), "--out", str(other), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: out: ") and "choose another folder" in err
    assert (other / "spec.toml").read_text() == "mine" and not (other / "runs").exists()

    run_sweep(spec, tmp_path / "sweep", progress=False)
    run_sweep(spec, tmp_path / "sweep", progress=False)  # its own folder: nothing to redo
    with pytest.raises(ConfigError, match=r"^dest: .* holds sweep run's outputs \(spec.toml\)"):
        export(tmp_path / "sweep", tmp_path / "sweep")
    (other / "summary.csv").write_text("mine")
    assert main(["sweep", "export", str(tmp_path / "sweep"), "--dest", str(other)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (other / "summary.csv").read_text() == "mine"
    export(tmp_path / "sweep", tmp_path / "dest")
    export(tmp_path / "sweep", tmp_path / "dest")  # a re-export replaces its own tables
    forced = ["sweep", "export", str(tmp_path / "sweep"), "--dest", str(other), "--overwrite"]
    assert main(forced) == 0
    assert (other / "summary.csv").read_text() != "mine"
