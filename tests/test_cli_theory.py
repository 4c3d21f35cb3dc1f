"""``python -m toolkit theory ...``: numbers printed by the CLI equal the library's."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from toolkit.cli import main
from toolkit.models import Empirical, ParameterServer, RingAllReduce, ShardedServer
from toolkit.models.dists import parse_dist
from toolkit.schemes import Backup, KBatchSync, Sync
from toolkit.theory.backups import Progress, optimal_backups
from toolkit.theory.order_stats import expected_order_statistic, order_statistic_variance
from toolkit.theory.step_time import step_time

DIST = "expon(loc=1, scale=0.5)"


def value(out: str, key: str) -> float:
    match = re.search(rf"^{key}\s+(\S+)\s*$", out, flags=re.MULTILINE)
    assert match, f"{key} not in output:\n{out}"
    return float(match.group(1))


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_step_time_backup(capsys):
    rc, out, _ = run(
        capsys,
        "theory",
        "step-time",
        "--scheme",
        "backup",
        "--n",
        "96",
        "--b",
        "4",
        "--dist",
        DIST,
        "--batch-size",
        "32",
    )
    assert rc == 0
    want = step_time(Backup(96, 4), stats.expon(loc=1, scale=0.5))
    assert value(out, "step_time") == pytest.approx(want, rel=1e-9)
    assert value(out, "throughput") == pytest.approx(96 / want, rel=1e-9)
    assert value(out, "samples_per_time") == pytest.approx(96 * 32 / want, rel=1e-9)
    assert "Backup(n=96, b=4)" in out


def test_step_time_with_parameter_server(capsys):
    rc, out, _ = run(
        capsys,
        "theory",
        "step-time",
        "--scheme",
        "sync",
        "--n",
        "20",
        "--dist",
        DIST,
        "--comm",
        "ParameterServer(nbytes=1e6, bandwidth=1e8, latency=0.001)",
    )
    assert rc == 0
    comm = ParameterServer(nbytes=1e6, bandwidth=1e8, latency=0.001)
    want = step_time(Sync(20), stats.expon(loc=1, scale=0.5), comm)
    assert value(out, "step_time") == pytest.approx(want, rel=1e-9)


def test_step_time_monte_carlo_path_is_seeded(capsys):
    argv = [
        "theory",
        "step-time",
        "--scheme",
        "kbatchsync",
        "--n",
        "5",
        "--k",
        "7",
        "--dist",
        "lognorm(0.5)",
        "--samples",
        "4000",
        "--seed",
        "3",
    ]
    rc, out, _ = run(capsys, *argv)
    assert rc == 0
    want = step_time(KBatchSync(5, 7), stats.lognorm(0.5), samples=4000, seed=3)
    assert value(out, "step_time") == pytest.approx(want, rel=1e-9)
    assert value(out, "step_time_se") > 0
    assert re.search(r"^method\s+monte-carlo", out, flags=re.MULTILINE)


def test_order_stat(capsys):
    rc, out, _ = run(
        capsys, "theory", "order-stat", "--dist", "gamma(2, scale=0.5)", "--k", "3", "--n", "9"
    )
    assert rc == 0
    d = stats.gamma(2, scale=0.5)
    assert value(out, "expected") == pytest.approx(expected_order_statistic(d, 3, 9), rel=1e-9)
    assert value(out, "variance") == pytest.approx(order_statistic_variance(d, 3, 9), rel=1e-9)


def test_backups(capsys):
    rc, out, _ = run(
        capsys, "theory", "backups", "--machines", "30", "--dist", DIST, "--critical-batch", "12"
    )
    assert rc == 0
    best, table = optimal_backups(30, stats.expon(loc=1, scale=0.5), None, Progress(critical=12))
    assert value(out, "best_b") == best
    assert value(out, "best_time_to_target") == pytest.approx(
        table.loc[table["b"] == best, "time_to_target"].iloc[0], rel=1e-9
    )
    assert len(re.findall(r"^\s*\d+\s+\d+\s", out, flags=re.MULTILINE)) == 30  # one row per b


def test_csv_trace(capsys, tmp_path):
    times = stats.lognorm(0.4).rvs(size=25, random_state=np.random.default_rng(0))
    path = tmp_path / "trace.csv"
    pd.DataFrame({"worker": np.arange(25), "step_time": times}).to_csv(path, index=False)
    rc, out, _ = run(
        capsys,
        "theory",
        "step-time",
        "--scheme",
        "backup",
        "--n",
        "6",
        "--b",
        "2",
        "--dist",
        str(path),
    )
    assert rc == 0
    assert value(out, "step_time") == pytest.approx(
        step_time(Backup(6, 2), Empirical(times)), rel=1e-9
    )


@pytest.mark.parametrize(
    ("dist", "message"),
    [
        ("nosuch(1)", "'nosuch' is not a scipy.stats distribution"),
        ("expon(loc=a)", "literal"),
        ("expon(*[1])", "must be literals"),
        ("expon(loc=", "cannot parse"),
        ("missing.csv", "does not exist"),
        ("norm(0, 1)", "step times must be >= 0"),  # negative support
    ],
)
@pytest.mark.parametrize("command", ["step-time", "backups", "order-stat"])
def test_bad_dist_is_a_clear_error(capsys, dist, message, command):
    extra = {
        "step-time": ["--scheme", "sync", "--n", "3"],
        "backups": ["--machines", "4"],
        "order-stat": ["--k", "1", "--n", "3"],
    }[command]
    rc, _, err = run(capsys, "theory", command, *extra, "--dist", dist)
    assert rc == 2
    assert "error: --dist: " in err and message in err


def test_dist_is_never_evaluated(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for text in (
        "__import__('pathlib').Path('pwned').touch()",
        "expon(loc=__import__('pathlib').Path('pwned2').touch())",
    ):
        rc, _, err = run(
            capsys, "theory", "step-time", "--scheme", "sync", "--n", "3", "--dist", text
        )
        assert rc == 2 and "dist" in err
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()


def test_parse_dist_forms():
    assert parse_dist("expon").mean() == pytest.approx(1.0)
    d = parse_dist(" gamma(2, loc=0.5, scale=0.25) ")
    assert d.mean() == pytest.approx(0.5 + 2 * 0.25)
    assert parse_dist("lognorm(s=0.5)").median() == pytest.approx(1.0)


def test_scheme_errors(capsys):
    rc, _, err = run(capsys, "theory", "step-time", "--scheme", "nope", "--n", "3", "--dist", DIST)
    assert rc == 2 and "valid:" in err and "backup" in err
    rc, _, err = run(
        capsys,
        "theory",
        "step-time",
        "--scheme",
        "async",
        "--n",
        "3",
        "--dist",
        DIST,
        "--comm",
        "RingAllReduce(nbytes=1e6, bandwidth=1e8)",
    )
    assert rc == 2 and "ring" in err


def test_theory_without_subcommand_is_one_line_naming_what_is_missing(capsys):
    with pytest.raises(SystemExit) as exc:
        run(capsys, "theory")
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and "subcommand" in err and len(err.splitlines()) == 1


def test_demo_writes_figures_and_tables(capsys, tmp_path):
    rc, out, _ = run(
        capsys,
        "theory",
        "demo",
        "--out",
        str(tmp_path / "demo"),
        "--machines",
        "12",
        "--critical-batch",
        "8",
    )
    assert rc == 0
    for name in ("backups.png", "ps_throughput.png"):
        path = tmp_path / "demo" / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"wrote {path}" in out
    steps = pd.read_csv(tmp_path / "demo" / "step_times.csv")
    comm = ParameterServer(nbytes=4e6, bandwidth=1.25e9, latency=1e-4)  # the demo's default link
    sync = steps.loc[steps["scheme"] == "Sync(n=12)"].iloc[0]
    assert sync["step_time"] == pytest.approx(
        step_time(Sync(12), stats.expon(loc=1, scale=0.5), comm), rel=1e-9
    )
    best, _ = optimal_backups(12, stats.expon(loc=1, scale=0.5), comm, Progress(critical=8))
    assert f"best b = {best}" in out
    backups = pd.read_csv(tmp_path / "demo" / "backups.csv")
    assert len(backups) == 12


def test_demo_with_another_comm_model(capsys, tmp_path):
    text = "ShardedServer(nbytes=1e6, bandwidth=1e8, latency=0.001, shards=4)"
    rc, out, _ = run(
        capsys,
        "theory",
        "demo",
        "--out",
        str(tmp_path),
        "--machines",
        "6",
        "--critical-batch",
        "4",
        "--comm",
        text,
    )
    assert rc == 0
    comm = ShardedServer(nbytes=1e6, bandwidth=1e8, latency=0.001, shards=4)
    assert f"comm = {comm}" in out
    steps = pd.read_csv(tmp_path / "step_times.csv")
    sync = steps.loc[steps["scheme"] == "Sync(n=6)"].iloc[0]
    dist = stats.expon(loc=1, scale=0.5)
    assert sync["step_time"] == pytest.approx(step_time(Sync(6), dist, comm), rel=1e-9)
    # the queueing plot uses a single parameter server on the same link
    ps = ParameterServer(nbytes=1e6, bandwidth=1e8, latency=0.001)
    queue = pd.read_csv(tmp_path / "ps_throughput.csv")
    assert queue["throughput"].max() <= 1 / ps.server_time() * (1 + 1e-9)
    assert f"1/s = {1 / ps.server_time():.5g}" in out


def test_demo_without_comm(capsys, tmp_path):
    rc, out, _ = run(
        capsys, "theory", "demo", "--out", str(tmp_path), "--machines", "4", "--comm", "none"
    )
    assert rc == 0 and "comm = none" in out
    steps = pd.read_csv(tmp_path / "step_times.csv")
    np.testing.assert_allclose(steps["step_time"], steps["step_time_compute"], rtol=1e-12)


def test_step_time_with_ring_and_backups_matches_the_library(capsys):
    comm = RingAllReduce(nbytes=2e6, bandwidth=1e8, latency=1e-3)
    rc, out, _ = run(
        capsys,
        "theory",
        "step-time",
        *("--scheme", "backup", "--n", "10", "--b", "2", "--dist", DIST),
        *("--comm", "RingAllReduce(nbytes=2e6, bandwidth=1e8, latency=1e-3)"),
    )
    assert rc == 0 and f"{comm}" in out
    want = step_time(Backup(10, 2), stats.expon(loc=1, scale=0.5), comm)
    assert value(out, "step_time") == pytest.approx(want, rel=1e-9)
    assert want > step_time(Backup(10, 2), stats.expon(loc=1, scale=0.5))  # comm costs time
