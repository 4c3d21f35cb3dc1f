"""Running a sweep: every point of a spec as a resumable run, on a local process pool, Ray or
Slurm (submitit), skipping what is done.

Each point is a RunConfig whose run directory is named by its id (:mod:`toolkit.sweeps.store`),
so running a spec again (after a ``kill -9``, or after editing it) starts only the points not yet
complete and continues partial ones from their checkpoints. A run that raises records its
traceback (``error.txt``) and the sweep goes on; a diverged run is a result. Points that share a
Schedule (same scheme, step-time model, comm, seed and stopping rule: an lr grid, say) get it from
one simulation, cached under ``DIR/schedules``.

Back-ends, one small interface (``map(function, tasks)`` yielding results as they finish):

* ``local`` (default): a process pool of ``jobs`` workers (forked on Linux, so they start with
  the runner's imports), one torch thread each, each worker dying with the runner
  (``PR_SET_PDEATHSIG``); ``jobs=1`` runs in this process.
* ``ray``: Ray tasks (``ray.init(address)``; ``pip install 'stragglers-toolkit[ray]'``), retried
  when a worker process dies.
* ``submitit``: Slurm array jobs through submitit (``pip install 'stragglers-toolkit[slurm]'``);
  ``executor="local"`` runs them as local processes, for tests and laptops.
"""

from __future__ import annotations

import hashlib
import json
import traceback
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path

import pandas as pd

from toolkit.checks import check_choice, check_int
from toolkit.runs.config import RunConfig
from toolkit.sweeps import store
from toolkit.sweeps.spec import SweepSpec

__all__ = ["BACKENDS", "plan", "run_point", "run_sweep", "schedule_key"]

BACKENDS = ("local", "ray", "submitit")


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
    """Simulate each distinct Schedule once (DIR/schedules/<key>.parquet). A config whose
    Schedule cannot be made gets None: its run makes it, and records why it cannot."""
    from toolkit.runs.run import schedule_for
    from toolkit.workloads import get_workload

    paths: dict[str, Path | None] = {}
    for config in configs:
        key = schedule_key(config)
        path = out / "schedules" / f"{key}.parquet"
        if key in paths or path.exists():
            paths.setdefault(key, path)
            continue
        try:  # the workload only where its step budget is the stopping rule
            by_steps = config.updates is None and config.time_budget is None
            workload = get_workload(config.workload, **config.workload_args) if by_steps else None
            schedule_for(config, workload).save(path)
            paths[key] = path
        except Exception:  # the run itself raises it again and records it
            paths[key] = None
    return paths


def _worker_init() -> None:
    """A pool worker: one torch thread, and death with the runner (Linux PR_SET_PDEATHSIG)."""
    import torch

    from toolkit.distributed.launch import die_with_parent

    torch.set_num_threads(1)
    die_with_parent()  # not Linux: workers may outlive a killed runner


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
        engine = dict(task.get("engine") or {"name": "replay"})
        if engine.pop("name") == "distributed":
            from toolkit.distributed.run import run as measure

            res = measure(config, path, resume=True, **engine)
        else:
            schedule = Schedule.load(task["schedule"]) if task.get("schedule") else None
            res = run(config, path, resume=True, schedule=schedule)
    except Exception:  # a run that raises is recorded; the sweep goes on
        store.record_failure(path, config, traceback.format_exc())
        store.log(task["out"], "failed", config.id())
        return {"id": config.id(), "state": "failed", "name": _name(config)}
    store.log(task["out"], "end", config.id(), status=res.status)
    return {"id": config.id(), "state": "complete", "status": res.status, "name": _name(config)}


def _name(config: RunConfig) -> str:
    """A short name for the progress bar: workload, scheme, lr and seed."""
    lr = "" if config.lr is None else f" lr={config.lr:g}"
    return f"{config.workload} {config.scheme}{lr} seed={config.seed}"


# ------------------------------------------------------------------ back-ends
def _local(function: Callable, tasks: list[dict], jobs: int) -> Iterator[dict]:
    if jobs == 1:  # in this process, one torch thread as in a pool worker, restored after
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield from map(function, tasks)
        finally:
            torch.set_num_threads(threads)
        return
    ctx = get_context(_start_method())
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_worker_init) as pool:
        pending = {pool.submit(function, t) for t in tasks}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                yield f.result()


def _ray(function: Callable, tasks: list[dict], jobs: int, address: str | None) -> Iterator[dict]:
    try:
        import ray
    except ImportError:
        raise ValueError(
            "backend: 'ray' needs the [ray] extra: pip install 'stragglers-toolkit[ray]'"
        ) from None
    started = not ray.is_initialized()
    if started:
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


def _submitit(
    function: Callable, tasks: list[dict], out: Path, executor: str, parameters: dict
) -> Iterator[dict]:
    try:
        import submitit
    except ImportError:
        raise ValueError(
            "backend: 'submitit' needs the [slurm] extra: pip install 'stragglers-toolkit[slurm]'"
        ) from None
    folder = out / "submitit"
    if executor == "local":
        ex = submitit.LocalExecutor(folder=folder)
    else:
        try:
            ex = submitit.AutoExecutor(folder, cluster=None if executor == "auto" else executor)
        except RuntimeError as err:  # no Slurm here ("Could not detect srun")
            raise ValueError(f"executor: {err} (--executor local runs the tasks here)") from None
    ex.update_parameters(**{"timeout_min": 24 * 60, **parameters})
    jobs = ex.map_array(function, tasks)
    for job in jobs:
        yield job.result()


def plan(spec: SweepSpec | str | Path, out: Path) -> tuple[SweepSpec, list[RunConfig], list[dict]]:
    """The spec, its distinct points, and a task for each point not complete in ``out`` (its
    Schedule simulated and cached first); writes ``out/spec.toml`` for a spec read from a file."""
    if not isinstance(spec, SweepSpec):
        text = Path(spec).read_text()
        spec = SweepSpec.from_toml(text)
    else:
        text = None
    configs = list({c.id(): c for c in spec.points()}.values())
    out.mkdir(parents=True, exist_ok=True)
    if text is not None:
        (out / "spec.toml").write_text(text)
    todo = [c for c in configs if store.run_state(store.run_dir(out, c)) != "complete"]
    measured = spec.engine_name == "distributed"  # no simulated Schedule to cache
    schedules = {} if measured else _schedules(out, todo)
    tasks = [
        {
            "config": c.to_dict(),
            "dir": str(store.run_dir(out, c)),
            "out": str(out),
            "schedule": None if measured else _str(schedules[schedule_key(c)]),
            "engine": spec.engine,
        }
        for c in todo
    ]
    return spec, configs, tasks


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)


def run_sweep(
    spec: SweepSpec | str | Path,
    out: str | Path,
    *,
    jobs: int = 1,
    backend: str = "local",
    address: str | None = None,
    executor: str = "auto",
    parameters: dict | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Run every point of ``spec`` (a SweepSpec or a TOML file) not yet complete in ``out``;
    returns the sweep's summary (:func:`toolkit.sweeps.load`). ``jobs``: local workers (and the
    CPUs of a Ray cluster it starts); ``address``: an existing Ray cluster; ``executor`` and
    ``parameters``: submitit's (``"local"``, ``"slurm"`` or ``"auto"``; e.g. ``{"slurm_partition":
    "gpu"}``)."""
    from tqdm.auto import tqdm

    check_choice("backend", backend, BACKENDS)
    jobs = check_int("jobs", jobs)
    out = Path(out)
    spec, configs, tasks = plan(spec, out)
    jobs = min(jobs, max(1, len(tasks)))  # a pool starts all its workers: none without a run
    if backend == "local":
        results: Iterable[dict] = _local(run_point, tasks, jobs)
    elif backend == "ray":
        results = _ray(run_point, tasks, jobs, address)
    else:
        results = _submitit(run_point, tasks, out, executor, parameters or {})
    done = len(configs) - len(tasks)
    with tqdm(
        total=len(configs), initial=done, desc=f"sweep {spec.name}", disable=not progress
    ) as bar:
        for result in results:
            bar.update(1)
            bar.set_postfix_str(f"{result['name']}: {result.get('status', result['state'])}")
    return store.load(out)[1]
