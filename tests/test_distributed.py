"""The real backend. The server's aggregation logic mirrors TensorFlow's SyncReplicasOptimizer
tests (tensorflow/python/training/sync_replicas_optimizer_test.py, ``test2Workers`` and
``test3Workers1Backup``): 2 variables starting at 0 and 1, worker i's gradients 0.1 + 0.2 i and
0.9 + 0.2 i, plain SGD with lr 2.0; the expected values are those the TF tests assert."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.stats as st
import torch
import warm_cli

from toolkit.checks import TooLargeError
from toolkit.cluster import Schedule, simulate
from toolkit.cluster.schedule import RowKind
from toolkit.distributed import Aggregator, RunFailed, collect, path_of, run_distributed, write_job
from toolkit.distributed import launch as launch_module
from toolkit.distributed.collective import Row
from toolkit.distributed.engine import world_size
from toolkit.distributed.launch import free_port, launch, rank_limit
from toolkit.distributed.run import _Progress
from toolkit.limits import set_memory_limit
from toolkit.models import Empirical, parse_compute
from toolkit.replay import Results, Runtime, train
from toolkit.runs import EngineSpec, RunConfig, run
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

CPU = Runtime(device="cpu")
NAN = float("nan")
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


def _on(config: RunConfig, **engine) -> RunConfig:
    """``config`` on the distributed engine with these settings (``time_scale``, ``inject``,
    ``collective``)."""
    return config.replace(engine=EngineSpec("distributed", **engine))


@pytest.mark.integration
@pytest.mark.parametrize("scheme", SHARED + REPLICAS, ids=str)
def test_replay_of_the_measured_schedule_reaches_the_backends_parameters(scheme):
    """Every scheme on real processes: replaying the measured Schedule (same seed, so the same
    batches and initial model) follows the same gradients, so it ends at the same parameters up
    to float summation order; its rows are what the scheme allows."""
    config = RunConfig(scheme=scheme, workload="logreg", updates=12, lr=0.1, seed=3)
    schedule, params = run_distributed(_on(config, time_scale=0.01), timeout=120, wait_timeout=20)
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
    res = train(schedule, "logreg", lr=0.1, seed=3, runtime=CPU)
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
    schedule, _ = run_distributed(_on(config, time_scale=scale), timeout=180, wait_timeout=20)
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
        "run_distributed(RunConfig(scheme=Async(3), workload='logreg', updates=100000,"
        " engine={'name': 'distributed', 'time_scale': 0.05}), timeout=120)\n"
    )
    launcher = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        ranks: list[int] = []
        while len(ranks) < 4:  # the rank forker (Linux) and its ranks, or the ranks
            assert time.monotonic() < deadline, "the ranks did not start within 60 s"
            assert launcher.poll() is None
            ranks = [p for c in _children(launcher.pid) for p in _children(c)]
            ranks = ranks or _children(launcher.pid)
            time.sleep(0.1)
        ranks += _children(launcher.pid)
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
    command = ["distributed", "--scheme", "backup", "--n", "2"]
    command += ["--b", "1", "--workload", "logreg", "--updates", "6", "--out", str(out)]
    done = warm_cli.run(command, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "Backup(n=2, b=1) on logreg: 6 updates" in done.stdout
    schedule = Schedule.load(out / "schedule.parquet")
    assert schedule.updates == 6 and schedule.meta["engine"] == "distributed"
    again = warm_cli.run(command, timeout=60)
    assert again.returncode == 2 and "out:" in again.stderr and "already exists" in again.stderr
    bad = ["distributed", "--scheme", "hogwild", "--n", "2"]
    bad += ["--workload", "logreg", "--updates", "3", "--out", str(tmp_path / "e")]
    refused = warm_cli.run(bad, timeout=60)
    assert refused.returncode == 2 and "hogwild" in refused.stderr
    assert not (tmp_path / "e").exists()


# ------------------------------------------------------------------ faults
def _run_and_kill(config, out, rank, *, after=1.0, timeout=120, directory=False, **engine):
    """run_distributed of ``config`` on the distributed engine with the settings ``engine``, in
    a thread (with ``directory``: ``toolkit.runs.run`` in the run directory ``out``); SIGKILL
    ``rank`` ``after`` seconds into training (once every rank has written its ready marker).
    Returns (result or exception, killed pid)."""
    box: dict = {}
    config = _on(config, **engine)

    def go():
        try:
            if directory:
                box["result"] = run(config, out, timeout=timeout)
            else:
                box["result"] = run_distributed(config, out=out, timeout=timeout)
        except Exception as err:  # the test inspects it
            box["error"] = err

    ranks = out / "ranks" if directory else out  # where the ranks write

    thread = threading.Thread(target=go)
    thread.start()
    path = path_of(config.scheme, config.engine.collective)
    world = config.scheme.rule.machines + (path in ("server", "replica_server"))
    deadline = time.monotonic() + 90
    while len(list(ranks.glob("rank*.ready"))) < world:
        assert time.monotonic() < deadline and thread.is_alive(), box
        time.sleep(0.05)
    time.sleep(after)
    pid = _rank_pid(ranks, rank)
    os.kill(pid, signal.SIGKILL)
    thread.join(timeout=120)
    assert not thread.is_alive(), "the run did not end within 120 s of the kill"
    return box.get("result", box.get("error")), pid


def _rank_pid(out, rank: int) -> int:
    """The pid of ``rank``, from the ready marker it writes in ``out``."""
    return int((out / f"rank{rank}.ready").read_text())


@pytest.mark.integration
def test_backup_and_async_carry_on_after_a_worker_is_killed(tmp_path):
    for scheme, updates in ((Backup(2, 1), 100), (Async(3), 300)):  # about 4 s each
        config = RunConfig(scheme=scheme, workload="logreg", updates=updates, lr=0.1, seed=1)
        out = tmp_path / scheme.name
        result, _ = _run_and_kill(config, out, rank=2, after=0.5, time_scale=0.03)
        assert not isinstance(result, Exception), result
        schedule, params = result
        assert schedule.updates == updates and schedule.meta["died"] == [1]
        used = schedule.used
        late = used[used["update"] >= updates - 10]
        assert not (late["worker"] == 1).any()  # the dead worker's gradients stop
        res = train(schedule, "logreg", lr=0.1, seed=1, runtime=CPU)
        torch.testing.assert_close(res.params, params, rtol=0, atol=1e-6)


@pytest.mark.integration
def test_a_run_that_lost_a_worker_says_so_in_its_results_and_final_line(tmp_path):
    """A Backup(2, 1) run that lost a worker is a result (status ok: the scheme tolerates one
    lost worker), and its message, which the command line's final line prints, says so."""
    from toolkit.runs.cli import summary_line

    config = RunConfig(scheme=Backup(2, 1), workload="logreg", updates=100, lr=0.1, seed=1)
    res, _ = _run_and_kill(
        config, tmp_path / "r", rank=2, after=0.5, directory=True, time_scale=0.03
    )
    assert not isinstance(res, Exception), res
    assert res.status == "ok" and "lost worker(s) 1" in res.message
    assert "lost worker(s) 1" in summary_line(res, measured=True)
    assert Results.load(tmp_path / "r").message == res.message


@pytest.mark.integration
def test_asynchronous_easgd_carries_on_after_a_worker_is_killed(tmp_path):
    scheme = EASGD(3, 2, 0.2, synchronous=False)
    config = RunConfig(scheme=scheme, workload="logreg", updates=150, lr=0.1, seed=1)
    result, _ = _run_and_kill(config, tmp_path, rank=2, after=0.5, time_scale=0.03)
    assert not isinstance(result, Exception), result
    schedule, params = result
    assert schedule.meta["died"] == [1]
    ex = schedule.frame[schedule.frame["kind"] == "exchange"]
    counts = ex.groupby("worker").size()
    assert counts[0] == counts[2] == 150 // 2 and counts[1] < 150 // 2  # the others finish
    res = train(schedule, "logreg", lr=0.1, seed=1, runtime=CPU)
    torch.testing.assert_close(res.params, params, rtol=0, atol=1e-6)


@pytest.mark.integration
def test_backup_stops_when_fewer_than_n_workers_are_left(tmp_path):
    config = RunConfig(scheme=Backup(3, 0), workload="logreg", updates=400, lr=0.1)
    kw = dict(time_scale=0.03, collective=False)  # through the server
    error, _ = _run_and_kill(config, tmp_path, rank=2, **kw)
    assert isinstance(error, RunFailed)
    assert "rank 2 died (SIGKILL)" in str(error) and "needs 3" in str(error)


@pytest.mark.integration
@pytest.mark.parametrize("scheme", [Sync(3), LocalSGD(3, 2)], ids=str)
def test_a_collective_run_stops_naming_the_dead_rank(tmp_path, scheme):
    config = RunConfig(scheme=scheme, workload="logreg", updates=400, lr=0.1)
    error, _ = _run_and_kill(config, tmp_path, rank=1, time_scale=0.03)
    assert isinstance(error, RunFailed) and "rank 1 died (SIGKILL)" in str(error)


@pytest.mark.integration
def test_workers_stop_when_the_server_is_killed(tmp_path):
    config = RunConfig(scheme=Async(2), workload="logreg", updates=4000, lr=0.1)
    before = _live_children()  # a forkserver of an earlier test's, say
    error, _ = _run_and_kill(config, tmp_path, rank=0, time_scale=0.03)
    assert isinstance(error, RunFailed) and "rank 0 died (SIGKILL)" in str(error)
    assert _live_children() <= before


# ------------------------------------------------------------------ run directories and sweeps
@pytest.mark.integration
def test_toolkit_run_on_the_backend_writes_the_results_replay_would(tmp_path):
    """``toolkit run CONFIG --engine distributed``: a run directory with the measured Schedule
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
    command = ["run", str(tmp_path / "config.toml")]
    command += ["--out", str(out), "--engine", "distributed", "--no-progress"]
    done = warm_cli.run(command, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "ok: 12 centre updates, measured time (s)" in done.stdout
    res = Results.load(out)
    schedule = Schedule.load(out / "schedule.parquet")
    assert len(res.frame) == 12 and schedule.meta["engine"] == "distributed"
    assert list(res.evaluations.index) == [3, 7, 11]
    assert res.manifest["engine"]["name"] == "distributed"
    replayed = train(schedule, "logreg", lr=0.1, seed=5, eval_every=4, runtime=CPU)
    for column in ("update", "time", "staleness", "bytes"):
        np.testing.assert_allclose(res.frame[column], replayed.frame[column], rtol=1e-12)
    for column in ("train_loss", "test_loss", "test_accuracy"):
        np.testing.assert_allclose(res.frame[column], replayed.frame[column], atol=1e-5)
    again = warm_cli.run(command, timeout=60)
    assert again.returncode == 2 and "already exists" in again.stderr


@pytest.mark.integration
def test_a_sweep_runs_its_points_on_the_backend_and_the_engine_is_in_the_id(tmp_path):
    """The engine is a config field: [base.engine] puts every point on the real backend, and
    the same spec on the replay engine is other points (other ids), so re-running the sweep
    directory after switching engines runs every point again instead of taking the other
    engine's runs as complete."""
    text = (
        'name = "measured"\n'
        '[base]\nworkload = "logreg"\nupdates = 6\nlr = 0.1\n'
        '[base.scheme]\nname = "backup"\nn = 2\nb = 1\n'
        "[grid]\nseed = [0, 1]\n"
    )
    measured = text + '[base.engine]\nname = "distributed"\ntime_scale = 0.01\n'
    summary = run_sweep(SweepSpec.from_toml(measured), tmp_path, progress=False)
    assert list(summary["state"]) == ["complete", "complete"]
    for run_id in summary["run_id"]:
        res = Results.load(tmp_path / "runs" / run_id)
        assert res.manifest["engine"]["name"] == "distributed" and len(res.frame) == 6
    replayed = run_sweep(SweepSpec.from_toml(text), tmp_path, progress=False)
    assert len(replayed) == 4 and replayed["state"].eq("complete").all()
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert sum(e["event"] == "start" for e in log) == 4  # each point ran once, on its engine
    with pytest.raises(ValueError, match=r"engine\.name"):
        SweepSpec.from_toml(text + '[base.engine]\nname = "torchrun"\n')
    with pytest.raises(ValueError, match=r"^engine: .*\[base\.engine\]"):
        SweepSpec.from_toml('[base]\nworkload = "logreg"\n[engine]\nname = "distributed"\n')


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
        res = run(_on(config, time_scale=0.25), tmp_path / scheme.name)
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
    res = train(schedule, "logreg", lr=0.1, seed=4, runtime=CPU)
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
    command = ["run", str(tmp_path / "config.toml")]
    command += ["--out", str(out), "--engine", "distributed", "--no-progress"]
    command += ["--time-scale", "0.03"]
    path = path_of(scheme)
    ranks = range(world_size(scheme, path)) if path in ("shared", "replicas") else [0]
    first = warm_cli.start(command, new_session=True)
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
    done = warm_cli.run([*command, "--resume"], timeout=180)
    assert done.returncode == 0, done.stderr
    res = Results.load(out)
    schedule = Schedule.load(out / "schedule.parquet")
    assert schedule.meta["resumed_from"] >= 8  # not started afresh
    rows = 80 // 2 * (2 if not scheme.rule.barrier else 1) if scheme.rule.period else 80
    assert len(res.frame) == rows and res.frame["update"].tolist() == list(range(rows))
    assert res.frame["time"].is_monotonic_increasing or scheme.rule.period
    grads = schedule.grads
    assert not grads.duplicated(["worker", "batch"]).any()
    replayed = train(schedule, "logreg", lr=0.1, seed=6, eval_every=8, runtime=CPU)
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


# ------------------------------------------------------------------ limits and errors
@pytest.mark.integration
def test_more_ranks_than_the_machine_hosts_are_refused_before_any_process(tmp_path, monkeypatch):
    """The rule, hand-computed: min(4 per core, memory limit / 300 MB) ranks. More is a
    ValueError naming n, with the estimate and the override, and no process starts;
    ``TOOLKIT_MAX_RANKS`` replaces the rule."""
    monkeypatch.setattr(launch_module, "cores", lambda: 2)
    set_memory_limit("12GB")
    try:
        assert rank_limit()[0] == 8  # 4 x 2 cores (memory for 40)
        set_memory_limit("1GB")
        assert rank_limit()[0] == 3  # floor(1e9 / 3e8) (cores for 8)
    finally:
        set_memory_limit(None)
    config = RunConfig(scheme=Async(1000), workload="logreg", updates=5)
    started: list = []

    class Started(Exception):
        pass

    def start(*args, **kwargs):  # a process start of either kind: Popen, or a fork (Linux)
        started.append(args)
        raise Started

    before = _live_children()
    with monkeypatch.context() as m:
        m.setattr(subprocess, "Popen", start)
        m.setattr(os, "fork", start)
        with pytest.raises(TooLargeError, match=r"^scheme.n: Async\(n=1000\) runs as 1001 proc"):
            run_distributed(config, out=tmp_path / "a")
        assert started == [] and not (tmp_path / "a").exists()
        m.setenv("TOOLKIT_MAX_RANKS", "1001")
        with pytest.raises(Started):  # allowed: the launcher goes on to start the ranks
            run_distributed(config, out=tmp_path / "b")
        m.setenv("TOOLKIT_MAX_RANKS", "many")
        with pytest.raises(ValueError, match="TOOLKIT_MAX_RANKS: expected a number"):
            run_distributed(config, out=tmp_path / "c")
    assert len(started) == 1 and _live_children() == before


@pytest.mark.integration
def test_cli_refuses_too_many_ranks_in_one_line(tmp_path):
    base = ["distributed", "--workload", "logreg"]
    base += ["--updates", "5", "--out", str(tmp_path / "d")]
    done = warm_cli.run([*base, "--scheme", "async", "--n", "1000"], timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: --n: Async(n=1000) runs as 1001 processes (about 300 GB)")
    assert "more than this machine hosts" in done.stderr and "--max-ranks N" in done.stderr
    assert not (tmp_path / "d").exists()
    bad = [*base, "--scheme", "sync", "--n", "2", "--max-ranks", "0"]
    done = warm_cli.run(bad, timeout=120)
    assert (
        done.returncode == 2
        and done.stderr == "error: --max-ranks: expected a number of ranks >= 1, got 0\n"
    )


@pytest.mark.integration
def test_cli_run_failures_are_one_line_naming_the_ranks_and_why(tmp_path):
    """A step-time law the ranks cannot use is refused before any starts; a run past its
    ``--timeout``, and a rank killed mid-run, end in one line on stderr with exit code 2;
    ``--debug`` shows the traceback."""
    base = ["distributed", "--workload", "logreg", "--no-progress"]
    sync = ["--scheme", "sync", "--n", "2", "--updates", "5"]
    bad = [*base, *sync, "--dist", "norm(1, 1)", "--out", str(tmp_path / "bad")]
    done = warm_cli.run(bad, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: --dist: step times must be >= 0")
    assert not (tmp_path / "bad").exists()
    debug = ["--debug", *bad]
    done = warm_cli.run(debug, timeout=120)
    assert done.returncode != 0 and "Traceback" in done.stderr

    # 300 updates take at least 2.3 s (the engine's lower bound: no refusal before the start)
    # and about 5 s (300 E[max of 2 step times] x 0.01 s) plus the ranks' start
    late = [*base, "--scheme", "sync", "--n", "2", "--updates", "300", "--timeout", "3"]
    done = warm_cli.run([*late, "--out", str(tmp_path / "late")], timeout=180)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    head = "error: timeout: the run did not finish within 3 s; ranks 0-1 were still running"
    assert done.stderr.startswith(head)

    out = tmp_path / "killed"
    command = [*base, "--scheme", "sync", "--n", "3", "--updates", "4000", "--time-scale", "0.03"]
    proc = warm_cli.start([*command, "--out", str(out)])
    try:
        deadline = time.monotonic() + 90
        while len(list((out / "ranks").glob("rank*.ready"))) < 3:
            assert proc.poll() is None and time.monotonic() < deadline, "the ranks did not start"
            time.sleep(0.05)
        os.kill(_rank_pid(out / "ranks", 1), signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == 2 and err.count("\n") == 1, err
    assert err.startswith("error: distributed run failed: ") and "rank 1 died (SIGKILL)" in err


def test_a_rank_failing_before_the_rendezvous_is_named_with_its_reason(tmp_path):
    """Ranks that refuse their environment (the wrong world size) end the launch with the
    rank, its exit code and its one-line reason (the last line of its stderr)."""
    job = write_job(RunConfig(scheme=Async(2), workload="logreg", updates=5, lr=0.1), tmp_path)
    before = _live_children()
    pattern = r"^distributed run failed: rank \d failed \(exit code 2\): WORLD_SIZE: Async\(n=2\) "
    with pytest.raises(RunFailed, match=pattern + r"needs 3 ranks \(its workers and a server\)"):
        launch(job, 2, timeout=120, log_dir=tmp_path)
    assert _live_children() == before


@pytest.mark.parametrize(
    ("path", "rows", "want"),
    [
        ("shared", [Row(RowKind.GRAD, u, 0.1, 0, u, True, u, 0.0, 0.0, 1.0) for u in range(3)], 3),
        (
            "server",  # the server's rows of arrivals, and its note of each update
            [Row(RowKind.GRAD, 0, 0.1, w, 0, True, 0, 0.0, 0.0, 1.0) for w in range(3)]
            + [{"update": 0, "time": 0.2}, {"update": 1, "time": 0.3}],
            2,
        ),
        (
            "replicas",  # local steps, then an exchange every 2
            [Row(RowKind.GRAD, t, 0.1, 0, t, True, t, 0.0, 0.0, 1.0) for t in range(4)]
            + [
                Row(RowKind.EXCHANGE, k, 0.2, 0, 2 * k + 2, True, -1, 0.0, 0.0, NAN) for k in (0, 1)
            ],
            2,
        ),
        (
            "replica_server",
            [Row(RowKind.EXCHANGE, k, 0.2, 0, 2, True, -1, 0.0, 0.0, NAN) for k in range(3)],
            3,
        ),
    ],
)
def test_the_progress_bar_reads_rank_0s_rows_by_kind(tmp_path, path, rows, want):
    """The rows of a run in rank 0's log, as each path writes them; a line still being written
    counts once it is whole."""
    log = tmp_path / "rank0.rows"
    text = "".join(json.dumps(row) + "\n" for row in rows)
    log.write_text(text + text[: len(text) // 3])  # and a part of the next lines
    bar = _Progress(100, path, "test")
    try:
        bar(tmp_path)
        assert bar.bar.n >= want and bar.bar.n < 2 * want
        with log.open("w") as f:
            f.write(text + text)
        bar(tmp_path)
        assert bar.bar.n == 2 * want
    finally:
        bar.close()


def _live_children() -> set[int]:
    """This process's children that are alive (read from /proc: a ``ps`` would be one)."""
    me = str(os.getpid())
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


def test_run_refuses_what_the_real_backend_cannot_run_before_making_its_directory(tmp_path):
    """toolkit.runs.run asks the engine first: too many ranks, a time budget or a plateau are
    refused naming the field, and no run directory is left behind."""
    engine = EngineSpec("distributed")
    bad = [
        (RunConfig(scheme=Sync(1000), workload="logreg", updates=5, engine=engine), "scheme.n"),
        (
            RunConfig(scheme=Sync(2), workload="logreg", time_budget=5.0, engine=engine),
            "time_budget",
        ),
    ]
    for config, field in bad:
        out = tmp_path / field
        with pytest.raises(ValueError, match=rf"^{field}") as err:
            run(config, out)
        assert err.value.field == field and not out.exists()


def test_failed_ranks_are_quoted_as_spans():
    assert launch_module._spans([5, 0, 2, 1, 7, 6]) == "0-2, 5-7"
    assert launch_module._spans([3]) == "3"
