"""Every error a user can cause on the command line is one line on stderr and an exit code: bad
input and file-system errors 2, Ctrl-C 130, a closed pipe quietly; ``--debug`` shows the
traceback. Work too large for the machine is refused before it starts (toolkit.limits).

Child processes are bounded by timeouts and killed in a ``finally``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import scipy.stats as st
import torch

from toolkit.cli import main
from toolkit.cluster import simulate
from toolkit.limits import set_memory_limit
from toolkit.replay import train
from toolkit.schemes import EASGD, Sync
from toolkit.workloads import get_workload

ROOT = Path(__file__).resolve().parents[1]
DIST = ["--dist", "expon(loc=1, scale=0.5)"]
SIM = ["simulate", "--scheme", "sync", "--n", "4", *DIST, "--updates", "10"]
TRAIN = ["train", "--workload", "logreg", "--scheme", "sync", "--n", "2", *DIST, "--updates", "4"]


def _one_line_error(capsys, *parts: str) -> None:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for part in parts:
        assert part in err, err


@pytest.mark.parametrize(
    ("argv", "parts"),
    [
        ([*SIM, "--out", "/proc/nonexistent/s.parquet"], ["/proc/nonexistent"]),
        ([*TRAIN, "--no-progress", "--out", "/proc/nonexistent/run"], ["/proc/nonexistent"]),
        (
            ["simulate", "--scheme", "sync", "--n", "2", "--dist", "tests", "--updates", "2"],
            ["--dist", "is a directory"],
        ),
        ([*SIM, "--column", "step_time"], ["--column", "only for a .csv"]),
        (["run", "no/such/config.toml"], ["no/such/config.toml", "No such file"]),
    ],
    ids=[
        "simulate-out-os-error",
        "train-out-os-error",
        "dist-directory",
        "column-without-csv",
        "missing-config",
    ],
)
def test_os_and_input_errors_are_one_line(capsys, argv, parts):
    assert main(argv) == 2
    _one_line_error(capsys, *parts)


def test_out_that_is_a_file_or_a_directory(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert main([*TRAIN, "--no-progress", "--out", str(tmp_path / "f")]) == 2
    _one_line_error(capsys, "not a directory")
    assert main([*SIM, "--out", str(tmp_path)]) == 2
    _one_line_error(capsys, "use a .parquet or .csv suffix")
    (tmp_path / "d.parquet").mkdir()
    assert main([*SIM, "--out", str(tmp_path / "d.parquet")]) == 2
    _one_line_error(capsys, "is a directory")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "old.txt").write_text("x")
    assert main([*TRAIN, "--no-progress", "--out", str(tmp_path / "run")]) == 2
    _one_line_error(capsys, "already exists; pass --resume")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a build or machine without CUDA")
def test_cuda_on_a_cpu_build_says_what_to_install(tmp_path, capsys):
    assert main([*TRAIN, "--no-progress", "--device", "cuda", "--out", str(tmp_path / "r")]) == 2
    _one_line_error(capsys, "device", "CUDA", "--device cpu")


@pytest.mark.integration
def test_debug_shows_the_traceback():
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "toolkit",
            "--debug",
            "simulate",
            "--scheme",
            "sync",
            "--n",
            "0",
            *DIST,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and "Traceback" in done.stderr and "ValueError" in done.stderr


@pytest.mark.integration
def test_a_closed_pipe_ends_quietly():
    cmd = [sys.executable, "-m", "toolkit", "theory", "backups", "--machines", "3000", *DIST]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = proc.stdout.readline()
        proc.stdout.close()  # like `| head -1`
        err = proc.stderr.read().decode()
        proc.wait(timeout=120)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert first.strip()
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert proc.returncode == 141


def _default_sigint() -> None:
    """A child started from a background job inherits SIGINT ignored (POSIX shells ignore it
    for background commands), and Python then installs no KeyboardInterrupt handler: restore
    the default, as a terminal's foreground process has it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# The command line of ``python -m toolkit``, after touching the file named by its first argument
# once every module the command needs is imported: the test then knows the command is running.
ANNOUNCED = (
    "import pathlib, sys, toolkit.cli, toolkit.theory.cli\n"
    "pathlib.Path(sys.argv.pop(1)).touch()\n"
    "raise SystemExit(toolkit.cli.main(sys.argv[1:]))\n"
)


@pytest.mark.integration
def test_ctrl_c_gives_exit_code_130_without_a_traceback(tmp_path):
    started = tmp_path / "started"
    cmd = [sys.executable, "-c", ANNOUNCED, str(started)]
    cmd += ["theory", "backups", "--machines", "5000000", "--dist", "lognorm(0.5)"]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )
    try:
        deadline = time.monotonic() + 120
        while not started.exists():  # importing: a SIGINT now would stop the interpreter
            assert proc.poll() is None and time.monotonic() < deadline, "did not start"
            time.sleep(0.05)
        time.sleep(1.0)  # in the table: parsing the arguments takes milliseconds
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted" in err and "Traceback" not in err


# ------------------------------------------------------------------ limits before work
@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["simulate", "--scheme", "sync", "--n", "1000000", *DIST, "--updates", "100"], "updates"),
        (
            ["simulate", "--scheme", "async", "--n", "16", *DIST, "--updates", "1000000000"],
            "updates",
        ),
        (["simulate", "--scheme", "kbatchsync", "--n", "10000000", "--k", "10", *DIST], "updates"),
        (
            [
                "theory",
                "step-time",
                "--scheme",
                "async",
                "--n",
                "10000000",
                *DIST,
                "--comm",
                "ParameterServer(nbytes=4e6, bandwidth=1.25e9, latency=1e-4)",
            ],
            "n",
        ),
    ],
    ids=["sync-1e6", "updates-1e9", "kbatchsync-1e7", "theory-async-1e7"],
)
def test_too_large_is_refused_at_once_naming_the_argument(capsys, argv, name):
    start = time.perf_counter()
    assert main(argv) == 2
    assert time.perf_counter() - start < 5.0
    _one_line_error(capsys, f"{name}: ", "needs about", "above the limit")


def test_the_memory_limit_can_be_set(monkeypatch):
    monkeypatch.setenv("TOOLKIT_MEMORY_LIMIT", "1MB")
    with pytest.raises(ValueError, match="above the limit of 1 MB"):
        simulate(Sync(100), st.expon(), updates=1000)
    monkeypatch.setenv("TOOLKIT_MEMORY_LIMIT", "lots")
    with pytest.raises(ValueError, match="TOOLKIT_MEMORY_LIMIT"):
        simulate(Sync(2), st.expon(), updates=10)
    monkeypatch.delenv("TOOLKIT_MEMORY_LIMIT")
    sched = simulate(Sync(4), st.expon(), updates=20)
    replicas = simulate(EASGD(4, 2, 0.1), st.expon(), updates=20)
    set_memory_limit("10 kB")
    try:
        with pytest.raises(ValueError, match="updates"):
            simulate(Sync(4), st.expon(), updates=1000)
        with pytest.raises(ValueError, match=r"^schedule: replaying it"):  # the version store
            train(sched, "mnist1d_mlp")
        with pytest.raises(ValueError, match=r"^n: replaying 4 replicas"):
            train(replicas, "mnist1d_mlp")
    finally:
        set_memory_limit(None)
    simulate(Sync(4), st.expon(), updates=1000)


# ------------------------------------------------------------------ the API
def test_train_refuses_a_scheme_that_is_not_the_schedules_and_text_numbers():
    wl = get_workload("logreg", n_train=500)
    sched = simulate(Sync(4), st.expon(), updates=5)
    with pytest.raises(ValueError, match=r"scheme: Sync\(n=8\) does not match"):
        train(sched, wl, scheme=Sync(8))
    with pytest.raises(ValueError, match=r"^lr"):
        train(sched, wl, lr="0.1")
    with pytest.raises(ValueError, match=r"^momentum"):
        train(sched, wl, momentum="0.5")


def test_train_takes_a_workload_name():
    sched = simulate(Sync(2), st.expon(), updates=5)
    by_name = train(sched, "logreg", seed=1)
    by_value = train(sched, get_workload("logreg"), seed=1)
    assert torch.equal(by_name.params, by_value.params)
    with pytest.raises(ValueError, match="unknown workload 'nope'"):
        train(sched, "nope")
