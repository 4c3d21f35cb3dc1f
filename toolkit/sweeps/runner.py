"""Running a sweep: every point of a spec as a resumable run, on an executor (a local process
pool, Ray or Slurm through submitit), skipping what is done.

Each point is a RunConfig whose run directory is named by its id (:mod:`toolkit.sweeps.store`),
so running a spec again (after a ``kill -9``, or after editing it) starts only the points not yet
complete and continues partial ones from their checkpoints. A run that raises records its
traceback (``error.txt``) and the sweep goes on; a diverged run is a result. Points of the replay
engine that share a Schedule (same scheme, step-time model, comm, seed and stopping rule: an lr
grid, say) get it from one simulation, cached under ``DIR/schedules``. Each point runs on the
engine its config names (:mod:`toolkit.runs.engine`); the engine is part of the config's id, so
points of two engines never share a run directory.

Executors, one small interface (``map(function, tasks)`` yielding results as they finish):

* ``local`` (default): ``jobs`` runs at a time on this machine, each in a child process forked
  from the runner (so it starts with the runner's imports), one torch thread each, dying with the
  runner (``PR_SET_PDEATHSIG``); ``jobs=1`` runs in this process.
* ``ray``: Ray tasks (``ray.init(address)``; ``pip install 'stragglers-toolkit[ray]'``), retried
  when a worker process dies.
* ``submitit``: Slurm array jobs through submitit (``pip install 'stragglers-toolkit[slurm]'``);
  ``cluster="local"`` runs them as local processes, for tests and laptops.

One runner at a time per sweep directory: :func:`run_configs` holds an exclusive lock on
``DIR/.lock`` (``fcntl.flock``, released by the kernel when the holder dies, so a stale lock never
blocks) and a second runner is refused with the holder's pid. SIGINT or SIGTERM to the runner
(alone, or to its whole process group) stops the runs in flight (each child gets SIGTERM: a
replay writes a checkpoint at its next safe point and stops; after a grace period what is left is
killed) and raises :class:`SweepInterrupted`; finished runs are kept, and the same command goes
on.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from multiprocessing import connection, get_context
from pathlib import Path

import pandas as pd

from toolkit.checks import ConfigError, check_choice, check_int
from toolkit.runs.config import RunConfig
from toolkit.runs.engine import get_engine
from toolkit.sweeps import store
from toolkit.sweeps.spec import SweepSpec

__all__ = [
    "EXECUTORS",
    "SweepInterrupted",
    "plan",
    "run_configs",
    "run_point",
    "run_sweep",
    "schedule_key",
    "sweep_lock",
]

EXECUTORS = ("local", "ray", "submitit")
LOCK_FILE = ".lock"
GRACE = 10.0  # seconds a stopped run has to write its checkpoint before it is killed


class SweepInterrupted(KeyboardInterrupt):
    """The runner got SIGINT or SIGTERM (``signum``); the runs in flight were stopped, finished
    ones kept."""

    def __init__(self, message: str, signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.signum = int(signum)


def schedule_key(config: RunConfig) -> str:
    """What a Schedule depends on: scheme, step-time model, comm, seed and stopping rule."""
    parts = {
        "scheme": config.scheme.to_dict(),
        "compute": config.compute,
        "comm": config.comm,
        "seed": config.seed,
        "updates": config.updates,
        "time_budget": config.time_budget,
        # the workload's step budget is the stopping rule only when neither is given
        "workload": [config.workload, config.workload_args]
        if config.updates is None and config.time_budget is None
        else None,
    }
    text = json.dumps(parts, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _schedules(out: Path, configs: list[RunConfig]) -> dict[str, Path | None]:
    """Simulate each distinct Schedule of the replay engine's configs once
    (DIR/schedules/<key>.parquet, written atomically). A config whose Schedule cannot be made
    gets None: its run makes it, and records why it cannot."""
    from toolkit.runs.run import schedule_for
    from toolkit.workloads import get_workload

    paths: dict[str, Path | None] = {}
    for config in configs:
        if config.engine.name != "replay":
            continue
        key = schedule_key(config)
        path = out / "schedules" / f"{key}.parquet"
        if key in paths or path.exists():
            paths.setdefault(key, path)
            continue
        try:  # the workload only where its step budget is the stopping rule
            by_steps = config.updates is None and config.time_budget is None
            steps = None
            if by_steps:
                steps = get_workload(config.workload, **config.workload_args).steps
            schedule_for(config, steps).save(path)  # the table last: its presence means done
            paths[key] = path
        except Exception:  # the run itself raises it again and records it
            paths[key] = None
    return paths


def _child_init() -> None:
    """A local executor's child: one torch thread, death with the runner (Linux
    PR_SET_PDEATHSIG), and SIGINT left to the runner (a Ctrl-C reaches the whole process group;
    the runner stops the children with SIGTERM)."""
    import torch

    from toolkit.distributed.launch import die_with_parent

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
    die_with_parent()  # not Linux: children may outlive a killed runner


def _start_method() -> str:
    """``fork`` on Linux, so that workers start with the runner's imports (torch, scipy, pandas:
    seconds per process) already done, as torch's DataLoader workers do, with one torch thread
    each (:func:`_worker_init`); ``spawn`` elsewhere and once CUDA is initialised (a forked
    child cannot use it)."""
    import sys

    torch = sys.modules.get("torch")
    cuda = torch is not None and torch.cuda.is_initialized()
    return "fork" if sys.platform == "linux" and not cuda else "spawn"


def run_point(task: dict) -> dict:
    """Run (or resume) one point; never raises: a failure is recorded in the run directory."""
    from toolkit.cluster import Schedule
    from toolkit.runs.run import run

    config = RunConfig.from_dict(task["config"])
    path = Path(task["dir"])
    for name in store.FAILURE_FILES:  # an earlier attempt's failure; this one starts afresh
        (path / name).unlink(missing_ok=True)
    store.log(task["out"], "start", config.id())
    try:
        schedule = Schedule.load(task["schedule"]) if task.get("schedule") else None
        res = run(config, path, resume=True, schedule=schedule)
    except Exception as err:  # a run that raises is recorded; the sweep goes on
        store.record_failure(path, config, err)
        store.log(task["out"], "failed", config.id())
        return {"id": config.id(), "state": "failed", "name": _name(config)}
    store.log(task["out"], "end", config.id(), status=res.status)
    return {"id": config.id(), "state": "complete", "status": res.status, "name": _name(config)}


def _name(config: RunConfig) -> str:
    """A short name for the progress bar: workload, scheme, lr and seed."""
    lr = "" if config.lr is None else f" lr={config.lr:g}"
    return f"{config.workload} {config.scheme}{lr} seed={config.seed}"


# ------------------------------------------------------------------ executors
def _child(function: Callable, task: dict, send) -> None:
    """Body of a local executor's child: run ``function(task)`` and send its result; a stop
    (SIGTERM from the runner) ends it quietly."""
    _child_init()
    code = 0
    try:
        send.send(function(task))
    except KeyboardInterrupt as err:  # stopped by the runner after its checkpoint
        code = 128 + getattr(err, "signum", signal.SIGINT)
    except BaseException:  # a crash outside the run (the run records its own): the runner
        code = 1  # counts the point as failed from the exit code
    finally:
        send.close()
    os._exit(code)


def _local(function: Callable, tasks: list[dict], jobs: int) -> Iterator[dict]:
    if jobs == 1:  # in this process, one torch thread as in a child, restored after
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield from map(function, tasks)
        finally:
            torch.set_num_threads(threads)
        return
    method = _start_method()
    if method == "fork":
        _warm(tasks)
    ctx = get_context(method)
    pending = list(reversed(tasks))
    running: dict[int, tuple] = {}  # sentinel -> (process, receiving end, task)
    try:
        while pending or running:
            while pending and len(running) < jobs:
                task = pending.pop()
                recv, send = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=_child, args=(function, task, send))
                proc.start()
                send.close()
                running[proc.sentinel] = (proc, recv, task)
            for sentinel in connection.wait(list(running)):
                proc, recv, task = running.pop(sentinel)
                result = recv.recv() if recv.poll() else None
                recv.close()
                proc.join()
                if result is None:  # died without a result (killed, or a crash)
                    config = RunConfig.from_dict(task["config"])
                    why = f"its process ended with exit code {proc.exitcode}"
                    store.record_failure(Path(task["dir"]), config, why)
                    result = {"id": config.id(), "state": "failed", "name": _name(config)}
                yield result
    finally:
        _stop([proc for proc, _, _ in running.values()])


def _warm(tasks: list[dict], most: int = 8) -> None:
    """Before forking a child per run: import what a run uses and build the sweep's first
    ``most`` distinct workloads here (MNIST-1D's arrays stay in an in-memory cache), so that
    every child inherits them instead of doing it again (:func:`_warm_gradients` too)."""
    import pyarrow.parquet  # noqa: F401  (the Results and Schedule files)

    import toolkit.runs.run  # noqa: F401
    from toolkit.workloads import get_workload

    tables = {}  # the workload tables as the tasks hold them: no config is rebuilt per task
    for task in tasks:
        table = task["config"]["workload"]
        tables.setdefault(json.dumps(table, sort_keys=True, default=str), table)
        if len(tables) == most:
            break
    for table in tables.values():
        try:
            config = RunConfig.from_dict({**tasks[0]["config"], "workload": table})
            _warm_gradients(get_workload(config.workload, **config.workload_args))
        except Exception:  # the run itself records why its workload cannot be built
            pass


def _warm_gradients(workload) -> None:
    """One vmapped gradient of ``workload`` at two parameter versions, as replay computes them:
    torch imports what its first one needs (for a cross-entropy loss, a Python decomposition
    and sympy: about 0.5 CPU-s), here once rather than in every forked run."""
    import torch

    from toolkit.replay.batched import FlatModel

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # no OpenMP thread team in the process the runs are forked from
    try:
        fm = FlatModel(workload.make_model(0), workload.loss)
        x, y = workload.x_train[:2], workload.y_train[:2]
        fm.grads(fm.flat().expand(2, -1).clone(), torch.stack([x, x]), torch.stack([y, y]))
    finally:
        torch.set_num_threads(threads)


def _stop(procs: list) -> None:
    """SIGTERM to each child still running, GRACE seconds to write its checkpoint and end, then
    SIGKILL; every child reaped."""
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    deadline = time.monotonic() + GRACE
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()
            proc.join()


def _ray(function: Callable, tasks: list[dict], jobs: int, address: str | None) -> Iterator[dict]:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "executor",
            "executor: 'ray' needs the [ray] extra: pip install 'stragglers-toolkit[ray]'",
        ) from None
    started = not ray.is_initialized()
    if started:
        _check_listening(address)
        ray.init(address=address, num_cpus=None if address else jobs, include_dashboard=False)
    try:
        remote = ray.remote(num_cpus=1, max_retries=3)(function)
        pending = [remote.remote(t) for t in tasks]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        if started:
            ray.shutdown()


def _check_listening(address: str | None, wait: float = 5.0) -> None:
    """A ConfigError naming ``address`` when it is ``HOST:PORT`` (a Ray cluster's GCS) and
    nothing accepts a connection there within ``wait`` seconds: ``ray.init`` would retry for
    minutes. ``auto``, ``ray://`` and None are left to Ray."""
    import socket

    if not address or address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError("address", f"address: expected HOST:PORT or auto, got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=wait).close()
    except OSError as err:
        raise ConfigError(
            "address",
            f"address: no Ray cluster answers at {address} ({err.strerror or err}); start one "
            "with `ray start --head` or leave --address out for a local one",
        ) from None


def _submitit(
    function: Callable, tasks: list[dict], out: Path, cluster: str, parameters: dict
) -> Iterator[dict]:
    try:
        import submitit
    except ImportError:
        raise ConfigError(
            "executor",
            "executor: 'submitit' needs the [slurm] extra: pip install 'stragglers-toolkit[slurm]'",
        ) from None
    folder = out / "submitit"
    if cluster == "local":
        ex = submitit.LocalExecutor(folder=folder)
    else:
        try:
            ex = submitit.AutoExecutor(folder, cluster=None if cluster == "auto" else cluster)
        except RuntimeError as err:  # no Slurm here ("Could not detect srun")
            why = f"cluster: {err} (--submitit-cluster local runs the tasks here)"
            raise ConfigError("cluster", why) from None
    ex.update_parameters(**{"timeout_min": 24 * 60, **parameters})
    jobs = ex.map_array(function, tasks)
    for job in jobs:
        yield job.result()


def plan(spec: SweepSpec | str | Path, out: Path) -> tuple[SweepSpec, list[RunConfig]]:
    """The spec and its distinct points; writes ``out/spec.toml`` (atomically) for a spec read
    from a file. ``out`` is refused when it holds a ``spec.toml`` or ``runs/`` of something
    other than a sweep (:func:`toolkit.files.claim_folder`)."""
    from toolkit.files import atomic_write, claim_folder

    text = None
    if not isinstance(spec, SweepSpec):
        text = Path(spec).read_text()
        spec = SweepSpec.from_toml(text)
    outputs, own = ("spec.toml", "runs", "schedules"), (LOCK_FILE, "runs", "log.jsonl")
    claim_folder(out, "sweep run", outputs, "out", own=own, hint="choose another folder")
    if text is not None:
        atomic_write(out / "spec.toml", lambda tmp: tmp.write_text(text))
    return spec, list({c.id(): c for c in spec.points()}.values())


def tasks_for(configs: list[RunConfig], out: Path) -> list[dict]:
    """A task for each of ``configs`` not complete in ``out`` (Schedules cached first)."""
    todo = [c for c in configs if store.run_state(store.run_dir(out, c)) != "complete"]
    schedules = _schedules(out, todo)
    return [
        {
            "config": c.to_dict(),
            "dir": str(store.run_dir(out, c)),
            "out": str(out),
            "schedule": _str(schedules.get(schedule_key(c))),
        }
        for c in todo
    ]


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)


@contextlib.contextmanager
def sweep_lock(out: Path):
    """Hold ``out/.lock`` exclusively for the block (module docstring); a second runner gets a
    ValueError naming the holder's pid."""
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            raise ConfigError(
                "out",
                f"out: the sweep directory {str(out)!r} is in use by another runner ({holder}); "
                "wait for it to end or stop it, then run the same command again",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def _stop_on_signals():
    """SIGINT and SIGTERM raise :class:`SweepInterrupted` in the runner (main thread only)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise SweepInterrupted(f"stopped by {signal.Signals(signum).name}", signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def run_configs(
    configs: list[RunConfig],
    out: str | Path,
    *,
    jobs: int = 1,
    executor: str = "local",
    address: str | None = None,
    cluster: str = "auto",
    parameters: dict | None = None,
    progress: bool = True,
    label: str = "sweep",
) -> None:
    """Run every config of ``configs`` not yet complete in the sweep directory ``out`` (module
    docstring: the lock, the Schedule cache, signals). ``jobs``: local children (and the CPUs of
    a Ray cluster it starts); ``address``: an existing Ray cluster; ``cluster`` and
    ``parameters``: submitit's (``"local"``, ``"slurm"`` or ``"auto"``; e.g.
    ``{"slurm_partition": "gpu"}``)."""
    from tqdm.auto import tqdm

    check_choice("executor", executor, EXECUTORS)
    jobs = check_int("jobs", jobs)
    out = Path(out)
    configs = list({c.id(): c for c in configs}.values())
    with sweep_lock(out), _stop_on_signals():
        tasks = tasks_for(configs, out)
        if executor == "local":
            results: Iterable[dict] = _local(run_point, tasks, jobs)
        elif executor == "ray":
            results = _ray(run_point, tasks, jobs, address)
        else:
            results = _submitit(run_point, tasks, out, cluster, parameters or {})
        done = len(configs) - len(tasks)
        with tqdm(total=len(configs), initial=done, desc=label, disable=not progress) as bar:
            for result in results:
                bar.update(1)
                bar.set_postfix_str(f"{result['name']}: {result.get('status', result['state'])}")


def run_sweep(
    spec: SweepSpec | str | Path,
    out: str | Path,
    *,
    jobs: int = 1,
    executor: str = "local",
    address: str | None = None,
    cluster: str = "auto",
    parameters: dict | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Run every point of ``spec`` (a SweepSpec or a TOML file) not yet complete in ``out``
    (:func:`run_configs`); returns the sweep's summary (:func:`toolkit.sweeps.load`). A spec with
    a ``[protocol]`` table runs its protocol instead (the lr searches, their extensions, then
    the evaluation seeds: :func:`toolkit.sweeps.protocol.run_protocol`)."""
    check_choice("executor", executor, EXECUTORS)
    out = Path(out)
    spec, configs = plan(spec, out)
    for config in configs:  # what an engine cannot run (e.g. more ranks than the machine hosts)
        if config.engine.name != "replay":  # is refused before any run starts
            get_engine(config.engine.name).check(config)
    run = dict(jobs=jobs, executor=executor, address=address, cluster=cluster)
    run.update(parameters=parameters, progress=progress)
    if spec.protocol is not None:
        from toolkit.sweeps.protocol import run_protocol

        spec.protocol.check(spec)
        return run_protocol(spec, out, **run)
    run_configs(configs, out, label=f"sweep {spec.name}", **run)
    return store.load(out)[1]
