"""Build the paper: execute every notebook of notebooks/ (each writes its tables, figures and
numbers to OUT/notebooks/<name>/), gather the numbers into OUT/numbers.json, record how this
build ran (OUT/build.json: profile, CPU model and cores, read here) and compile paper/paper.typ
with Typst into OUT/paper.pdf. Nothing in the text is typed by hand: it reads numbers.json,
build.json and the figures the notebooks wrote in this build.

    python paper/build.py                 # from the committed data/ (make paper)
    python paper/build.py --full          # re-run sweeps/paper.toml first (make paper FULL=1)

``--full`` runs (or resumes) the paper study in runs/paper (resumable: a second run starts only
what is missing), exports its tables to data/paper with the runner's log and the machine it ran
on (:func:`full_sweep`), and executes the notebooks on the ``full`` profile. Executed notebooks
are kept in OUT/executed/. The notebooks that gather other notebooks' outputs (:data:`GATHER`)
run after all the others.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SPEC = ROOT / "sweeps" / "paper.toml"
SWEEP_DIR = ROOT / "runs" / "paper"
DATA = ROOT / "data" / "paper"
TIMEOUT = 900  # seconds per cell
GATHER = ("09_",)  # notebooks that read the other notebooks' outputs: run last


def notebooks(only: list[str] | None = None) -> list[Path]:
    """The notebooks' jupytext sources (``notebooks/NN_*.py``), optionally those whose name
    starts with one of ``only``."""
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))
    if only:
        paths = [p for p in paths if any(p.stem.startswith(o) for o in only)]
    if not paths:
        raise SystemExit(f"--only: no notebook matches {only}")
    return paths


def execute(path: Path, out: Path) -> tuple[str, float, str | None]:
    """Execute one notebook (its outputs go to ``out/notebooks/<name>``); returns (name, seconds,
    error or None). The executed notebook is written to ``out/executed/<name>.ipynb`` either way."""
    import jupytext
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    start = time.perf_counter()
    shutil.rmtree(out / "notebooks" / path.stem, ignore_errors=True)  # no stale outputs survive
    nb = jupytext.read(path)
    client = NotebookClient(
        nb,
        timeout=TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
        extra_arguments=["--IPKernelApp.log_level=ERROR"],  # no transport notices in the log
    )
    error = None
    try:
        client.execute()
    except CellExecutionError as exc:
        error = str(exc).splitlines()[-1] if str(exc) else repr(exc)
    finally:
        (out / "executed").mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out / "executed" / f"{path.stem}.ipynb")
    return path.stem, time.perf_counter() - start, error


def run_notebooks(paths: list[Path], out: Path, jobs: int) -> dict[str, float]:
    """Execute ``paths`` on ``jobs`` processes with a progress bar; raise SystemExit naming the
    notebooks that failed."""
    from tqdm.auto import tqdm

    seconds, failed = {}, {}
    with (
        ProcessPoolExecutor(max_workers=jobs) as pool,
        tqdm(total=len(paths), desc="notebooks", unit="nb") as bar,
    ):
        futures = [pool.submit(execute, p, out) for p in paths]
        for future in as_completed(futures):
            name, secs, error = future.result()
            seconds[name] = secs
            if error:
                failed[name] = error
            bar.set_postfix_str(f"{name}: {'FAILED' if error else f'{secs:.0f} s'}")
            bar.update()
    if failed:
        lines = "\n".join(f"  {k}: {v} (see {out}/executed/{k}.ipynb)" for k, v in failed.items())
        raise SystemExit(f"notebooks failed:\n{lines}")
    return seconds


def gather_numbers(out: Path) -> Path:
    """OUT/numbers.json: {notebook name: its numbers.json}."""
    numbers = {}
    for path in sorted((out / "notebooks").glob("*/numbers.json")):
        numbers[path.parent.name] = json.loads(path.read_text())
    target = out / "numbers.json"
    target.write_text(json.dumps(numbers, indent=1, sort_keys=True))
    return target


def compile_pdf(out: Path) -> Path:
    """Copy paper.typ and its bibliography (references.yml) next to the build's outputs and
    compile it there (Typst's root is OUT)."""
    import typst

    shutil.copy(ROOT / "paper" / "paper.typ", out / "paper.typ")
    shutil.copy(ROOT / "paper" / "references.yml", out / "references.yml")
    pdf = out / "paper.pdf"
    typst.compile(str(out / "paper.typ"), output=str(pdf), root=str(out))
    return pdf


def hardware() -> dict:
    """This machine: ``cpu`` (the model name in /proc/cpuinfo, else :func:`platform.processor`
    or the architecture) and ``cores`` (:func:`os.cpu_count`)."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cpu = cpu or platform.processor() or platform.machine() or "unknown"
    return {"cpu": cpu, "cores": os.cpu_count() or 1}


def full_sweep(jobs: int) -> None:
    """Run (or resume) sweeps/paper.toml in runs/paper and export its tables to data/paper, with
    the runner's log (``log.jsonl``: each run's start and end, from which the study's wall time is
    read) and ``host.json`` (the CPU, cores and jobs it ran on)."""
    from toolkit.sweeps import export, run_sweep

    run_sweep(SPEC, SWEEP_DIR, jobs=jobs, progress=True)
    for path in export(SWEEP_DIR, DATA):
        print(f"wrote {path.relative_to(ROOT)}")
    record_study(SWEEP_DIR, DATA, jobs)


def record_study(sweep: Path, data: Path, jobs: int) -> None:
    """Copy the runner's log of ``sweep`` to ``data/log.jsonl`` and write ``data/host.json``
    (this machine's :func:`hardware` and ``jobs``)."""
    shutil.copy(sweep / "log.jsonl", data / "log.jsonl")
    (data / "host.json").write_text(json.dumps({**hardware(), "jobs": jobs}, indent=1) + "\n")
    print(f"wrote {data / 'log.jsonl'} and {data / 'host.json'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "paper" / "build"), help="build folder")
    parser.add_argument("--full", action="store_true", help="re-run the paper sweep first")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--only", default=None, help="comma-separated notebook prefixes")
    parser.add_argument("--no-pdf", action="store_true", help="execute notebooks only")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs: expected >= 1, got {args.jobs}")
    start = time.perf_counter()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.full:
        full_sweep(args.jobs)
    os.environ["NOTEBOOK_OUT"] = str(out / "notebooks")
    os.environ["MPLBACKEND"] = "Agg"
    os.environ["TOOLKIT_PROFILE"] = "full" if args.full else "quick"
    build = {**hardware(), "jobs": args.jobs, "profile": os.environ["TOOLKIT_PROFILE"]}
    (out / "build.json").write_text(json.dumps(build, indent=1))
    # one kernel per job: split the CPUs between them rather than oversubscribe torch's threads
    threads = str(max(1, (os.cpu_count() or 1) // args.jobs))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, threads)
    paths = notebooks(args.only.split(",") if args.only else None)
    first = [p for p in paths if not p.stem.startswith(GATHER)]
    last = [p for p in paths if p.stem.startswith(GATHER)]
    seconds = run_notebooks(first, out, args.jobs) if first else {}
    if last:
        seconds |= run_notebooks(last, out, args.jobs)
    for name, secs in sorted(seconds.items()):
        print(f"  {name}: {secs:.1f} s")
    gather_numbers(out)
    if not args.no_pdf:
        pdf = compile_pdf(out)
        print(f"wrote {pdf} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
