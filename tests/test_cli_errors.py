"""Every error a user can cause on the command line is one line on stderr and an exit code: bad
input and file-system errors 2, Ctrl-C 130, a closed pipe quietly; ``--debug`` shows the
traceback. Work too large for the machine is refused before it starts (toolkit.limits).

Child processes are bounded by timeouts and killed in a ``finally``.
"""

from __future__ import annotations

import argparse
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import scipy.stats as st
import torch
import warm_cli

from toolkit.checks import ConfigError, TooLargeError, check_positive
from toolkit.cli import build_parser, main
from toolkit.cluster import Schedule, simulate
from toolkit.limits import set_memory_limit
from toolkit.replay import train
from toolkit.schemes import EASGD, Sync
from toolkit.theory.queueing import mva
from toolkit.theory.renewal import kbatch_sync_time
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
    assert done.returncode != 0 and "Traceback" in done.stderr
    assert "toolkit.checks.ConfigError: --n must be an integer >= 1, got 0" in done.stderr


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
        (
            [
                "theory",
                "step-time",
                "--scheme",
                "kbatchsync",
                "--n",
                "1000000000",
                "--k",
                "1000000000",
                *DIST,
            ],
            "k",
        ),
    ],
    ids=["sync-1e6", "updates-1e9", "kbatchsync-1e7", "theory-async-1e7", "theory-kbatch-1e9"],
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


def test_the_demo_refuses_a_cluster_too_large_before_it_writes(capsys, tmp_path):
    """``theory demo --machines 1e9`` once grew until the kernel killed it: its K-batch-sync
    quadrature holds a series of k = m terms (measured: at most 280 bytes each)."""
    set_memory_limit("8GB")
    try:
        argv = ["theory", "demo", "--machines", "1000000000", "--out", str(tmp_path / "demo")]
        assert main(argv) == 2
    finally:
        set_memory_limit(None)
    _one_line_error(capsys, "k: the K-batch-sync quadrature", "needs about 300 GB", "8 GB")
    assert not (tmp_path / "demo").exists()


def test_order_statistic_tables_are_estimated_before_they_are_allocated():
    set_memory_limit("1GB")
    try:
        with pytest.raises(ValueError, match=r"^n: the MVA table of n=100000000 rows .* 12.8 GB"):
            mva(100_000_000, 1.0, 0.1)
        with pytest.raises(
            ValueError,
            match=r"^k: the K-batch-sync quadrature's series of k=100000000 terms .* 30 GB",
        ):
            kbatch_sync_time(100_000_000, 100_000_000, st.expon(loc=1, scale=0.5))
    finally:
        set_memory_limit(None)
    assert len(mva(10, 1.0, 0.1)) == 10


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


# ------------------------------------------------------------------ silent surprises, refused
def _toolkit(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """``toolkit ARGV`` in a process of its own (forked warm: tests/warm_cli.py), bounded by a
    timeout."""
    return warm_cli.run(list(argv), cwd=cwd, timeout=300)


def _one_line(done: subprocess.CompletedProcess, *parts: str) -> None:
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    for part in parts:
        assert part in done.stderr, done.stderr


def test_simulate_refuses_an_existing_out_unless_overwrite(tmp_path):
    out = tmp_path / "s.parquet"
    out.write_text("an earlier result")
    _one_line(_toolkit(*SIM, "--out", str(out)), "already exists", "--overwrite")
    assert out.read_text() == "an earlier result"
    done = _toolkit(*SIM, "--out", str(out), "--overwrite")
    assert done.returncode == 0, done.stderr[-2000:]
    assert Schedule.load(out).updates == 10


def test_a_non_scalar_distribution_argument_is_one_line_naming_dist():
    argv = ["simulate", "--scheme", "sync", "--n", "2", "--dist", "expon(loc=[1,2])"]
    done = _toolkit(*argv, "--updates", "5")
    _one_line(done, "--dist: the arguments of 'expon(loc=[1,2])' must be numbers")
    assert "ambiguous" not in done.stderr


def test_distributed_refuses_negative_step_times_before_starting_a_process(tmp_path):
    out = tmp_path / "run"
    argv = ["distributed", "--workload", "logreg", "--scheme", "sync", "--n", "2"]
    done = _toolkit(*argv, "--updates", "2", "--dist", "norm(0, 1)", "--out", str(out))
    _one_line(done, "--dist: step times must be >= 0")
    assert not out.exists()  # refused before the run directory, so before any rank


def test_max_staleness_without_drop_is_refused_by_train(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TRAIN, "--no-progress", "--max-staleness", "3", "--out", str(out)]) == 2
    _one_line_error(capsys, "--max-staleness: only staleness='drop' takes a bound")  # the flag
    assert not out.exists()
    argv = [*TRAIN, "--no-progress", "--staleness", "lr", "--max-staleness", "3"]
    assert main([*argv, "--out", str(out)]) == 2
    _one_line_error(capsys, "staleness is 'lr'")


def test_sweep_status_refuses_a_directory_that_is_not_a_sweep(tmp_path):
    (tmp_path / "notes.txt").write_text("not a sweep")
    _one_line(_toolkit("sweep", "status", str(tmp_path)), "is not a sweep directory")
    _one_line(_toolkit("sweep", "status", str(tmp_path / "nowhere")), "no sweep directory")


def _parsers(parser: argparse.ArgumentParser, name: str = "toolkit"):
    """(name, parser) of ``parser`` and every subcommand below it."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, child in action.choices.items():
                yield from _parsers(child, f"{name} {sub}")


COMMANDS = [name for name, _ in _parsers(build_parser())] + [
    name for top in ("theory", "sweep") for name, _ in _parsers(build_parser(top)) if " " in name
]


@pytest.mark.parametrize(
    "command",
    sorted(set(COMMANDS)),
)
def test_every_help_has_a_complete_description(command):
    top = command.split()[1] if " " in command else None
    parser = dict(_parsers(build_parser(top)))[command]
    text = parser.description or ""
    assert text.endswith(".") and text[0].isupper(), (command, text)  # a sentence, not cut
    assert "``" not in text, (command, text)  # reStructuredText belongs in docstrings


def test_config_errors_carry_their_field_through_rewording_and_pickling():
    with pytest.raises(ConfigError) as err:
        check_positive("lr", 0.0)
    assert (err.value.field, str(err.value)) == ("lr", "lr must be > 0 and finite, got 0.0")
    inner = ConfigError("n", "n must be an integer >= 1, got 0")
    assert str(inner.within("scheme")) == "scheme.n must be an integer >= 1, got 0"
    assert str(inner.renamed("--n")) == "--n must be an integer >= 1, got 0"
    # a message that does not start with its field keeps its text when re-rooted, and gets the
    # new name in front when renamed; a longer name that merely starts alike is not the field
    other = ConfigError("b", "scheme 'sync' takes ['n'], not ['b']")
    assert (other.within("scheme").field, str(other.within("scheme"))) == ("scheme.b", str(other))
    assert str(other.renamed("--b")) == "--b: scheme 'sync' takes ['n'], not ['b']"
    assert (
        str(ConfigError("n", "n_train must be <= 10").within("workload")) == "n_train must be <= 10"
    )
    set_memory_limit("10 kB")
    try:
        with pytest.raises(TooLargeError) as big:
            simulate(Sync(4), st.expon(), updates=1000)
    finally:
        set_memory_limit(None)
    assert big.value.field == "updates" and isinstance(big.value, ConfigError)
    for error in (inner, big.value, inner.within("scheme").renamed("--n")):
        back = pickle.loads(pickle.dumps(error))
        assert (type(back), back.field, str(back)) == (type(error), error.field, str(error))


@pytest.mark.parametrize(
    "argv",
    [
        ["bogus"],
        ["--bogus"],
        ["theory"],
        ["sweep"],
        ["simulate"],
        ["theory", "step-time", "--n", "x"],
    ],
    ids=str,
)
def test_argument_errors_are_one_line_with_exit_code_2(argv, capsys):
    """argparse's own refusals (an unknown command or flag, a missing subcommand or required
    flag, a value of the wrong type) are one line naming the command, exit 2, no usage lines."""
    with pytest.raises(SystemExit) as exc:
        code = main(argv)
        raise SystemExit(code)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: toolkit") and len(err.splitlines()) == 1, err
    assert "--help" in err


def test_theory_step_time_refuses_a_batch_size_below_one(capsys):
    args = ["theory", "step-time", "--scheme", "sync", "--n", "4", "--dist", "expon()"]
    assert main([*args, "--batch-size", "0"]) == 2
    assert "batch_size" in capsys.readouterr().err


def test_values_of_the_wrong_type_are_config_errors_naming_the_field():
    """A number where a comm model's text, a TOML text or a table is expected is a ConfigError
    naming the field, not an AttributeError from inside the parser."""
    from toolkit.runs import RunConfig
    from toolkit.schemes import Sync
    from toolkit.sweeps import SweepSpec

    base = '[base]\nupdates = 4\n[base.scheme]\nname = "sync"\nn = 2\n'
    cases = [
        (lambda: RunConfig(scheme=Sync(2), comm=5), "comm"),
        (lambda: RunConfig.from_toml(5), "config"),
        (lambda: SweepSpec.from_toml(None), "spec"),
        (lambda: SweepSpec.from_toml("random = 3\n" + base), "random"),
        (lambda: SweepSpec.from_toml(base + "[random]\ncount = 2\naxes = 1\n"), "random.axes"),
    ]
    for make, field in cases:
        with pytest.raises(ConfigError) as err:
            make()
        assert err.value.field == field, err.value
