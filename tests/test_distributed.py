"""The real backend. The server's aggregation logic mirrors TensorFlow's SyncReplicasOptimizer
tests (tensorflow/python/training/sync_replicas_optimizer_test.py, ``test2Workers`` and
``test3Workers1Backup``): 2 variables starting at 0 and 1, worker i's gradients 0.1 + 0.2 i and
0.9 + 0.2 i, plain SGD with lr 2.0; the expected values are those the TF tests assert."""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import scipy.stats as st
import torch

from toolkit.cluster import Schedule, simulate
from toolkit.distributed import Aggregator, collect, path_of, run_distributed, write_job
from toolkit.distributed.engine import world_size
from toolkit.distributed.launch import free_port
from toolkit.distributed.run import run as run_measured
from toolkit.models import Empirical, parse_compute
from toolkit.replay import Results, train
from toolkit.runs import RunConfig
from toolkit.schemes import (
    EASGD,
    Async,
    Backup,
    Delayed,
    DiLoCo,
    KAsync,
    KBatchAsync,
    KBatchSync,
    LocalSGD,
    Staleness,
    Sync,
)
from toolkit.sweeps import SweepSpec, run_sweep
from toolkit.theory import step_time

# Real processes: up to ~2.5 min a test on a 2-core machine at load 16 (the default is 120 s).
pytestmark = pytest.mark.timeout(600)


def grad(i: int) -> torch.Tensor:
    return torch.tensor([0.1 + 0.2 * i, 0.9 + 0.2 * i], dtype=torch.float64)


def server(scheme) -> Aggregator:
    return Aggregator(scheme, torch.tensor([0.0, 1.0], dtype=torch.float64), lr=2.0)


def test_tf_two_workers():
    s = server(Sync(2))
    assert s.push(0, 0, grad(0)).used and s.version == 0  # waits for the second
    s.push(1, 0, grad(1))
    assert s.version == 1
    expect = torch.tensor([0 - (0.1 + 0.3) / 2 * 2.0, 1 - (0.9 + 1.1) / 2 * 2.0])
    torch.testing.assert_close(s.params, expect.double())
    # TF's initial tokens are 0: both workers' next gradients are computed at step 0, dropped
    assert not s.push(0, 0, grad(0)).used and not s.push(1, 0, grad(1)).used
    assert s.version == 1
    s.push(0, 1, grad(0))
    s.push(1, 1, grad(1))
    assert s.version == 2
    expect = torch.tensor([0 - 2 * (0.1 + 0.3) / 2 * 2.0, 1 - 2 * (0.9 + 1.1) / 2 * 2.0])
    torch.testing.assert_close(s.params, expect.double())


def test_tf_three_workers_one_backup():
    s = server(Backup(2, 1))
    s.push(0, 0, grad(0))
    s.push(2, 0, grad(2))  # workers 0 and 2 finish first: the update uses them
    assert s.version == 1
    torch.testing.assert_close(
        s.params, torch.tensor([0 - (0.1 + 0.5) / 2 * 2.0, 1 - (0.9 + 1.3) / 2 * 2.0]).double()
    )
    late = s.push(1, 0, grad(1))  # worker 1 is late: stale, dropped
    assert not late.used and late.update == 0
    for w in (0, 1, 2):  # the initial tokens again: computed at step 0, dropped
        assert not s.push(w, 0, grad(w)).used
    assert s.version == 1
    s.push(0, 1, grad(0))
    assert s.version == 1  # needs two
    s.push(1, 1, grad(1))
    assert s.version == 2
    expect = torch.tensor([-0.6 - (0.1 + 0.3) / 2 * 2.0, -1.2 - (0.9 + 1.1) / 2 * 2.0])
    torch.testing.assert_close(s.params, expect.double())
    assert [a.used for a in s.arrivals] == [True, True, False, False, False, False, True, True]


def test_async_uses_every_gradient_with_its_staleness_policy():
    s = Aggregator(Async(2), torch.zeros(2, dtype=torch.float64), lr=1.0, staleness=Staleness("lr"))
    s.push(0, 0, torch.tensor([1.0, 0.0], dtype=torch.float64))  # fresh: step -1
    a = s.push(1, 0, torch.tensor([0.0, 1.0], dtype=torch.float64))  # staleness 1: lr / 1
    assert a.used and s.version == 2
    s.push(0, 0, torch.tensor([0.0, 4.0], dtype=torch.float64))  # staleness 2: lr / 2
    torch.testing.assert_close(s.params, torch.tensor([-1.0, -3.0], dtype=torch.float64))
    k = Aggregator(KBatchAsync(3, 2), torch.zeros(1, dtype=torch.float64), lr=1.0)
    k.push(0, 0, torch.ones(1, dtype=torch.float64))
    assert k.version == 0
    k.push(2, 0, 3 * torch.ones(1, dtype=torch.float64))
    torch.testing.assert_close(k.params, torch.tensor([-2.0], dtype=torch.float64))


def test_aggregator_refuses_what_it_cannot_serve():
    with pytest.raises(ValueError, match="scheme: LocalSGD"):
        server(LocalSGD(2, 4))
    s = server(Sync(2))
    with pytest.raises(ValueError, match="version: 3 is newer"):
        s.push(0, 3, grad(0))


# ------------------------------------------------------------------ real processes (gloo)
SHARED = [Sync(3), Backup(3, 1), KBatchSync(3, 4), Async(4), KAsync(4, 2), KBatchAsync(4, 2)]
SHARED += [Delayed(3, 2)]
REPLICAS = [LocalSGD(3, 2), DiLoCo(3, 2), EASGD(3, 2, 0.2, momentum=0.5)]
REPLICAS += [EASGD(3, 2, 0.2, synchronous=False)]


@pytest.mark.integration
@pytest.mark.parametrize("scheme", SHARED + REPLICAS, ids=str)
def test_replay_of_the_measured_schedule_reaches_the_backends_parameters(scheme):
    """Every scheme on real processes: replaying the measured Schedule (same seed, so the same
    batches and initial model) follows the same gradients, so it ends at the same parameters up
    to float summation order; its rows are what the scheme allows."""
    config = RunConfig(scheme=scheme, workload="logreg", updates=12, lr=0.1, seed=3)
    schedule, params = run_distributed(config, time_scale=0.01, timeout=120, wait_timeout=20)
    f, rule = schedule.frame, scheme.rule
    assert schedule.updates == 12
    if rule.period:  # 12 local steps each, an exchange after every period
        grads, ex = schedule.grads, f[f["kind"] == "exchange"]
        assert grads.groupby("worker")["batch"].apply(list).eq([list(range(12))] * 3).all()
        assert len(ex) == 3 * 12 // rule.period and ex["version"].mod(rule.period).eq(0).all()
        assert ex.groupby("update").size().eq(rule.quorum).all()  # n at once, or one by one
    else:
        used = f[f["used"]]
        per_update = used.groupby("update").size()
        assert per_update.eq(rule.quorum).all()  # Sync: n, Backup: n of n + b, K-variants: K
        if rule.barrier:  # Delayed(n, d): step t's gradients are taken at version t - d
            assert used["staleness"].eq(np.minimum(used["update"], rule.delay)).all()
    res = train(schedule, "logreg", lr=0.1, seed=3, device="cpu")
    torch.testing.assert_close(res.params, params, rtol=0, atol=1e-6)
    assert not torch.equal(params, train(schedule, "logreg", lr=0.1, seed=4).params)


@pytest.mark.integration
@pytest.mark.parametrize("scheme", [Sync(3), Backup(3, 1), Async(4)], ids=str)
def test_measured_step_time_and_staleness_against_theory_and_the_clock(scheme):
    """Injected shifted-exponential delays of 250 ms + Exp(125 ms) (the same per-worker streams
    as the clock): the measured mean step time lies within 10 % of theory.step_time (the rest
    is real computation and messages: on a 2-core machine at load 12, about 20 ms a step, 4-6 %
    at this scale), and Async's measured staleness distribution is close to the simulated one
    (two-sample Kolmogorov-Smirnov: 0.25 is the 0.5 % critical value for 60 independent samples
    against many)."""
    scale = 0.25
    config = RunConfig(scheme=scheme, workload="logreg", updates=60, seed=0, lr=0.1)
    schedule, _ = run_distributed(config, time_scale=scale, timeout=180, wait_timeout=20)
    used = schedule.used
    times = used.groupby("update")["time"].max().to_numpy()
    measured = np.diff(times)[3:].mean()  # the first steps include start-up
    dist = st.expon(loc=scale, scale=0.5 * scale)
    predicted = step_time(scheme, dist)
    assert predicted <= measured * 1.02 and measured <= 1.10 * predicted, (measured, predicted)
    sim = simulate(scheme, dist, updates=4000, seed=1).used
    ks = st.ks_2samp(used["staleness"], sim["staleness"])
    assert ks.statistic < 0.25, ks


def test_bad_input_is_refused_before_any_process_starts():
    with pytest.raises(ValueError, match="config: expected a RunConfig"):
        run_distributed({"scheme": "sync"})
    with pytest.raises(ValueError, match="updates"):
        run_distributed(RunConfig(scheme=Sync(2), workload="logreg"))


@pytest.mark.integration
def test_killing_the_launcher_leaves_no_rank_behind(tmp_path):
    code = (
        "from toolkit.runs import RunConfig\n"
        "from toolkit.schemes import Async\n"
        "from toolkit.distributed import run_distributed\n"
        "run_distributed(RunConfig(scheme=Async(3), workload='logreg', updates=100000),"
        " time_scale=0.05, timeout=120)\n"
    )
    launcher = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        ranks: list[int] = []
        while len(ranks) < 4:
            assert time.monotonic() < deadline, "the ranks did not start within 60 s"
            assert launcher.poll() is None
            ranks = _children(launcher.pid)
            time.sleep(0.1)
        time.sleep(2.0)  # the ranks are training
        launcher.kill()  # SIGKILL: no handler runs
        launcher.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in ranks):
            assert time.monotonic() < deadline, [p for p in ranks if _alive(p)]
            time.sleep(0.05)
    finally:
        if launcher.poll() is None:
            launcher.kill()


def _children(pid: int) -> list[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, timeout=30
    )
    return [int(p) for p in out.stdout.split()]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.integration
def test_cli_runs_a_scheme_and_writes_its_schedule(tmp_path):
    out = tmp_path / "d"
    command = [sys.executable, "-m", "toolkit", "distributed", "--scheme", "backup", "--n", "2"]
    command += ["--b", "1", "--workload", "logreg", "--updates", "6", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "Backup(n=2, b=1) on logreg: 6 updates" in done.stdout
    schedule = Schedule.load(out / "schedule.parquet")
    assert schedule.updates == 6 and schedule.meta["engine"] == "distributed"
    again = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "out:" in again.stderr and "already exists" in again.stderr
    bad = [sys.executable, "-m", "toolkit", "distributed", "--scheme", "hogwild", "--n", "2"]
    bad += ["--workload", "logreg", "--updates", "3", "--out", str(tmp_path / "e")]
    refused = subprocess.run(bad, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "hogwild" in refused.stderr
    assert not (tmp_path / "e").exists()


# ------------------------------------------------------------------ faults
def _run_and_kill(config, out, rank, *, after=1.0, **kw):
    """run_distributed in a thread; SIGKILL ``rank`` ``after`` seconds into training (once
    every rank has written its ready marker). Returns (result or exception, killed pid)."""
    box: dict = {}

    def go():
        try:
            box["result"] = run_distributed(config, out=out, **kw)
        except Exception as err:  # the test inspects it
            box["error"] = err

    thread = threading.Thread(target=go)
    thread.start()
    path = path_of(config.scheme, kw.get("collective", True))
    world = config.scheme.rule.machines + (path in ("server", "replica_server"))
    deadline = time.monotonic() + 90
    while len(list(out.glob("rank*.ready"))) < world:
        assert time.monotonic() < deadline and thread.is_alive(), box
        time.sleep(0.05)
    time.sleep(after)
    pid = _rank_pid(out, rank)
    os.kill(pid, signal.SIGKILL)
    thread.join(timeout=120)
    assert not thread.is_alive(), "the run did not end within 120 s of the kill"
    return box.get("result", box.get("error")), pid


def _rank_pid(out, rank: int) -> int:
    for pid in _children(os.getpid()):
        try:
            args = open(f"/proc/{pid}/cmdline").read().split("\0")
        except FileNotFoundError:
            continue
        if "toolkit.distributed.process" in args and args[-2] == str(rank) and str(out) in args[-3]:
            return pid
    raise AssertionError(f"rank {rank} not found")


@pytest.mark.integration
def test_backup_and_async_carry_on_after_a_worker_is_killed(tmp_path):
    for scheme, updates in ((Backup(2, 1), 100), (Async(3), 300)):  # about 4 s each
        config = RunConfig(scheme=scheme, workload="logreg", updates=updates, lr=0.1, seed=1)
        out = tmp_path / scheme.name
        result, _ = _run_and_kill(config, out, rank=2, after=0.5, time_scale=0.03, timeout=120)
        assert not isinstance(result, Exception), result
        schedule, params = result
        assert schedule.updates == updates and schedule.meta["died"] == [1]
        used = schedule.used
        late = used[used["update"] >= updates - 10]
        assert not (late["worker"] == 1).any()  # the dead worker's gradients stop
        res = train(schedule, "logreg", lr=0.1, seed=1, device="cpu")
        torch.testing.assert_close(res.params, params, rtol=0, atol=1e-6)


@pytest.mark.integration
def test_asynchronous_easgd_carries_on_after_a_worker_is_killed(tmp_path):
    scheme = EASGD(3, 2, 0.2, synchronous=False)
    config = RunConfig(scheme=scheme, workload="logreg", updates=150, lr=0.1, seed=1)
    result, _ = _run_and_kill(config, tmp_path, rank=2, after=0.5, time_scale=0.03, timeout=120)
    assert not isinstance(result, Exception), result
    schedule, params = result
    assert schedule.meta["died"] == [1]
    ex = schedule.frame[schedule.frame["kind"] == "exchange"]
    counts = ex.groupby("worker").size()
    assert counts[0] == counts[2] == 150 // 2 and counts[1] < 150 // 2  # the others finish
    res = train(schedule, "logreg", lr=0.1, seed=1, device="cpu")
    torch.testing.assert_close(res.params, params, rtol=0, atol=1e-6)


@pytest.mark.integration
def test_backup_stops_when_fewer_than_n_workers_are_left(tmp_path):
    config = RunConfig(scheme=Backup(3, 0), workload="logreg", updates=400, lr=0.1)
    kw = dict(time_scale=0.03, timeout=120, collective=False)  # through the server
    error, _ = _run_and_kill(config, tmp_path, rank=2, **kw)
    assert isinstance(error, RuntimeError)
    assert "rank 2 died (SIGKILL)" in str(error) and "needs 3" in str(error)


@pytest.mark.integration
@pytest.mark.parametrize("scheme", [Sync(3), LocalSGD(3, 2)], ids=str)
def test_a_collective_run_stops_naming_the_dead_rank(tmp_path, scheme):
    config = RunConfig(scheme=scheme, workload="logreg", updates=400, lr=0.1)
    error, _ = _run_and_kill(config, tmp_path, rank=1, time_scale=0.03, timeout=120)
    assert isinstance(error, RuntimeError) and "rank 1 died (SIGKILL)" in str(error)


@pytest.mark.integration
def test_workers_stop_when_the_server_is_killed(tmp_path):
    config = RunConfig(scheme=Async(2), workload="logreg", updates=4000, lr=0.1)
    error, _ = _run_and_kill(config, tmp_path, rank=0, time_scale=0.03, timeout=120)
    assert isinstance(error, RuntimeError) and "rank 0 died (SIGKILL)" in str(error)
    assert not any(_alive(p) for p in _children(os.getpid()))


# ------------------------------------------------------------------ run directories and sweeps
@pytest.mark.integration
def test_toolkit_run_on_the_backend_writes_the_results_replay_would(tmp_path):
    """``toolkit run CONFIG --backend distributed``: a run directory with the measured Schedule
    and a Results table whose every column replay agrees with: replaying the measured Schedule
    gives the same per-update train losses (the ranks' own, at the versions they used) and, at
    the evaluation points, the same test metrics."""
    config = RunConfig(
        scheme=EASGD(2, 2, 0.2, synchronous=False),
        workload="logreg",
        updates=12,
        lr=0.1,
        seed=5,
        eval_every=4,
    )
    (tmp_path / "config.toml").write_text(config.to_toml())
    out = tmp_path / "run"
    command = [sys.executable, "-m", "toolkit", "run", str(tmp_path / "config.toml")]
    command += ["--out", str(out), "--backend", "distributed", "--no-progress"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "ok: 12 centre updates, measured time (s)" in done.stdout
    res = Results.load(out)
    schedule = Schedule.load(out / "schedule.parquet")
    assert len(res.frame) == 12 and schedule.meta["engine"] == "distributed"
    assert list(res.evaluations.index) == [3, 7, 11]
    assert res.manifest["engine"]["name"] == "distributed"
    replayed = train(schedule, "logreg", lr=0.1, seed=5, eval_every=4, device="cpu")
    for column in ("update", "time", "staleness", "bytes"):
        np.testing.assert_allclose(res.frame[column], replayed.frame[column], rtol=1e-12)
    for column in ("train_loss", "test_loss", "test_accuracy"):
        np.testing.assert_allclose(res.frame[column], replayed.frame[column], atol=1e-5)
    again = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "already exists" in again.stderr


@pytest.mark.integration
def test_a_sweep_runs_its_points_on_the_backend(tmp_path):
    spec = SweepSpec.from_toml(
        'name = "measured"\n'
        '[base]\nworkload = "logreg"\nupdates = 6\nlr = 0.1\n'
        '[base.scheme]\nname = "backup"\nn = 2\nb = 1\n'
        "[grid]\nseed = [0, 1]\n"
        '[engine]\nname = "distributed"\ntime_scale = 0.01\n'
    )
    summary = run_sweep(spec, tmp_path, progress=False)
    assert list(summary["state"]) == ["complete", "complete"]
    for run_id in summary["run_id"]:
        res = Results.load(tmp_path / "runs" / run_id)
        assert res.manifest["engine"]["name"] == "distributed" and len(res.frame) == 6
    with pytest.raises(ValueError, match=r"engine\.name"):
        SweepSpec.from_toml('[base]\nworkload = "logreg"\n[engine]\nname = "torchrun"\n')


@pytest.mark.integration
def test_a_sync_runs_measured_trace_predicts_a_backup_run(tmp_path):
    """Closing the loop: the per-gradient step times a Sync(4) run measured (``trace.csv``, read
    back by ``Empirical``) predict, through ``theory.step_time`` and through the clock, the
    mean step time a Backup(3, 1) run then measures on the same (injected) cluster: within
    12 % (the measurement adds messages and the server's work, about 25 ms a step on a 2-core
    machine at load 12, 7 % at this 250 ms scale; each mean carries a few % of sampling error
    from 40 updates)."""
    measured = {}
    for scheme in (Sync(4), Backup(3, 1)):
        config = RunConfig(
            scheme=scheme,
            workload="logreg",
            updates=40,
            lr=0.1,
            seed=2,
            compute="expon(loc=1, scale=0.5)",
        )
        res = run_measured(config, tmp_path / scheme.name, time_scale=0.25)
        measured[scheme.name] = float(np.diff(res.frame["time"].to_numpy())[3:].mean())
    trace = Empirical.from_csv(tmp_path / "sync" / "trace.csv")
    assert trace.size == 4 * 40
    predicted = step_time(Backup(3, 1), trace)
    assert abs(measured["backup"] / predicted - 1) < 0.12, (measured, predicted)
    compute = parse_compute(f"Empirical('{tmp_path / 'sync' / 'trace.csv'}')")
    clock = simulate(Backup(3, 1), compute, updates=4000, seed=0).used
    simulated = float(np.diff(clock.groupby("update")["time"].max().to_numpy()).mean())
    assert abs(simulated / predicted - 1) < 0.03
    assert predicted < 0.95 * measured["sync"]  # a backup worker pays on this cluster


@pytest.mark.integration
def test_ranks_started_by_torchrun_write_a_run_that_collect_reads(tmp_path):
    """The multi-node route on one node: ``write_job``, the ranks started by torchrun (its own
    c10d rendezvous and environment, as on a cluster), then ``collect``: the measured Schedule
    replays to the backend's parameters."""
    config = RunConfig(scheme=Async(2), workload="logreg", updates=10, lr=0.1, seed=4)
    job = write_job(config, tmp_path)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "3"]
    command += ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{free_port()}"]
    command += ["-m", "toolkit.distributed.process", str(job)]
    proc = subprocess.Popen(command, start_new_session=True, stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    assert proc.returncode == 0, err[-2000:]
    schedule, params = collect(tmp_path)
    assert schedule.updates == 10 and schedule.meta["path"] == "server"
    res = train(schedule, "logreg", lr=0.1, seed=4, device="cpu")
    torch.testing.assert_close(res.params, params, rtol=0, atol=1e-6)


@pytest.mark.integration
@pytest.mark.parametrize(
    "scheme",
    [Delayed(3, 1), KAsync(3, 2), EASGD(2, 2, 0.2), EASGD(2, 2, 0.2, 0.5, synchronous=False)],
    ids=str,
)
def test_a_killed_measured_run_resumes_from_its_last_checkpoint(tmp_path, scheme):
    """The launcher SIGKILLed (its ranks die with it) after the first checkpoint; ``--resume``
    goes on from the newest one: the Results are complete, no gradient is counted twice,
    times go on, and replaying the whole measured Schedule (both attempts) reaches the final
    parameters, so the resumed state was exactly the checkpointed one (Delayed: exchanges in
    flight; KAsync: a partial quorum; EASGD: every replica, and asynchronous EAMSGD's
    velocities carried to the server)."""
    config = RunConfig(scheme=scheme, workload="logreg", updates=80, lr=0.1, seed=6, eval_every=8)
    (tmp_path / "config.toml").write_text(config.to_toml())
    out = tmp_path / "run"
    command = [sys.executable, "-m", "toolkit", "run", str(tmp_path / "config.toml")]
    command += ["--out", str(out), "--backend", "distributed", "--no-progress"]
    command += ["--time-scale", "0.03"]
    path = path_of(scheme)
    ranks = range(world_size(scheme, path)) if path in ("shared", "replicas") else [0]
    first = subprocess.Popen(command, start_new_session=True, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while not all((out / "ranks" / f"ckpt8_rank{r}.pt").exists() for r in ranks):
            assert first.poll() is None and time.monotonic() < deadline, "no checkpoint"
            time.sleep(0.02)
        first.kill()
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert not (out / "results.parquet").exists()
    done = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    res = Results.load(out)
    schedule = Schedule.load(out / "schedule.parquet")
    assert schedule.meta["resumed_from"] >= 8  # not started afresh
    rows = 80 // 2 * (2 if not scheme.rule.barrier else 1) if scheme.rule.period else 80
    assert len(res.frame) == rows and res.frame["update"].tolist() == list(range(rows))
    assert res.frame["time"].is_monotonic_increasing or scheme.rule.period
    grads = schedule.grads
    assert not grads.duplicated(["worker", "batch"]).any()
    replayed = train(schedule, "logreg", lr=0.1, seed=6, eval_every=8, device="cpu")
    torch.testing.assert_close(replayed.params, res.params, rtol=0, atol=1e-6)
    np.testing.assert_allclose(res.frame["test_loss"], replayed.frame["test_loss"], atol=1e-5)


@pytest.mark.integration
def test_a_rank_refuses_a_wrong_world_size_or_an_unreachable_master(tmp_path):
    """Started by hand or by a launcher (torchrun, srun), a rank checks its environment
    before any training: the world size the scheme needs, and a rendezvous it can reach
    within the job's timeout; each error names the variable."""
    config = RunConfig(scheme=Async(2), workload="logreg", updates=5, lr=0.1)
    job = write_job(config, tmp_path, wait_timeout=2.0)
    base = [sys.executable, "-m", "toolkit.distributed.process", str(job)]
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    wrong = subprocess.run(
        [*base, "0"], env=dict(env, WORLD_SIZE="2"), capture_output=True, text=True, timeout=60
    )
    assert wrong.returncode == 2
    assert "WORLD_SIZE: Async(n=2) needs 3 ranks (its workers and a server)" in wrong.stderr
    lost = subprocess.run(
        [*base, "1"], env=dict(env, WORLD_SIZE="3"), capture_output=True, text=True, timeout=60
    )
    assert lost.returncode == 2
    assert f"MASTER_ADDR: rank 1 could not join the group at 127.0.0.1:{env['MASTER_PORT']}" in (
        lost.stderr
    )
