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
import queue
import re
import shutil
import sys
import threading
import time
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


ANSI = re.compile(r"\x1b\[[0-9;]*m")  # terminal colour codes in a traceback
# Run before each notebook but a kernel's first: a fresh namespace (IPython's %reset: every name the
# last notebook defined, its outputs and history) and no figure left open. Modules stay imported.
RESET = "%reset -f\nimport matplotlib.pyplot as _plt\n_plt.close('all')\ndel _plt"


class Kernel:
    """One Jupyter kernel (nbclient, ``python3``) that executes notebooks one after another.

    Each notebook after the kernel's first starts from :data:`RESET`, so no name defined by an
    earlier notebook is seen; what it shares with them is the imported modules (a kernel's start
    and the imports of torch, scipy, pandas and matplotlib cost about 6 s of CPU each, once per
    kernel instead of once per notebook). A cell that raises leaves the kernel idle and usable; a
    dead kernel or a cell past :data:`TIMEOUT` ends it, and the next notebook gets a new one.
    ``fresh`` (``--fresh-kernels``) gives every notebook a kernel of its own."""

    def __init__(self, fresh: bool = False) -> None:
        self.fresh = fresh
        self.km = None

    def execute(self, path: Path, out: Path) -> tuple[str, float, str | None]:
        """Execute one notebook (its outputs go to ``out/notebooks/<name>``); returns (name,
        seconds, error or None). The executed notebook is written to
        ``out/executed/<name>.ipynb`` either way."""
        import jupytext
        import nbformat
        from nbclient.exceptions import CellExecutionError

        start = time.perf_counter()
        shutil.rmtree(out / "notebooks" / path.stem, ignore_errors=True)  # no stale outputs
        nb = jupytext.read(path)
        error = None
        if self.km is None:  # the first client starts it, with its arguments and folder
            from jupyter_client.manager import AsyncKernelManager

            self.km = AsyncKernelManager(kernel_name="python3")
        try:
            if self.km.has_kernel:  # started: it ran a notebook before this one
                reset = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(RESET)])
                self._run(reset)
            self._run(nb)
        except CellExecutionError as exc:  # its last line, without the traceback's colours
            error = ANSI.sub("", str(exc)).splitlines()[-1] if str(exc) else repr(exc)
        except Exception as exc:  # a dead kernel, a cell past TIMEOUT: not this kernel again
            error = f"{type(exc).__name__}: {exc}".splitlines()[0]
            self.close()
        finally:
            if self.fresh:
                self.close()
            (out / "executed").mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, out / "executed" / f"{path.stem}.ipynb")
        return path.stem, time.perf_counter() - start, error

    def _run(self, nb) -> None:
        from nbclient import NotebookClient

        client = NotebookClient(
            nb,
            km=self.km,  # not owned by the client: the kernel outlives this notebook
            timeout=TIMEOUT,
            kernel_name="python3",
            resources={"metadata": {"path": str(NOTEBOOKS)}},
            extra_arguments=["--IPKernelApp.log_level=ERROR"],  # no transport notices
        )
        try:
            client.execute()
        finally:
            if client.kc is not None:
                client.kc.stop_channels()

    def close(self) -> None:
        """Shut the kernel down (at once: nothing of it is needed any more)."""
        from jupyter_core.utils import run_sync

        km, self.km = self.km, None
        if km is not None and km.has_kernel:
            try:
                run_sync(km.shutdown_kernel)(now=True)
            except Exception:  # already gone
                pass


def _serve(kernel: Kernel, todo: queue.Queue, done: queue.Queue, out: Path) -> None:
    """A job: execute the notebooks taken from ``todo`` in ``kernel`` until a None."""
    try:
        while (path := todo.get()) is not None:
            try:
                done.put(kernel.execute(path, out))
            except BaseException as exc:  # never leave the build waiting for this notebook
                done.put((path.stem, 0.0, f"{type(exc).__name__}: {exc}"))
    finally:
        kernel.close()


def run_notebooks(
    stages: list[list[Path]], out: Path, jobs: int, fresh: bool = False
) -> dict[str, float]:
    """Execute each stage's notebooks on ``jobs`` kernels (one thread each), a stage only once
    the one before it has ended, with a progress bar; raise SystemExit naming the notebooks that
    failed."""
    from tqdm.auto import tqdm

    todo, done = queue.Queue(), queue.Queue()
    kernels = [Kernel(fresh) for _ in range(jobs)]
    threads = [
        threading.Thread(target=_serve, args=(k, todo, done, out), daemon=True) for k in kernels
    ]
    for thread in threads:
        thread.start()
    seconds, failed = {}, {}
    try:
        with tqdm(total=sum(map(len, stages)), desc="notebooks", unit="nb") as bar:
            for stage in stages:
                for path in stage:
                    todo.put(path)
                for _ in stage:
                    name, secs, error = done.get()
                    seconds[name] = secs
                    if error:
                        failed[name] = error
                    bar.set_postfix_str(f"{name}: {'FAILED' if error else f'{secs:.0f} s'}")
                    bar.update()
    except BaseException:  # Ctrl-C: the jobs may be inside a notebook; their kernels go now
        for kernel in kernels:
            kernel.close()
        raise
    finally:
        for _ in threads:
            todo.put(None)
    for thread in threads:  # each shuts its own kernel down
        thread.join(timeout=60)
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
    parser.add_argument(
        "--fresh-kernels", action="store_true", help="a new kernel for every notebook (slower)"
    )
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
    seconds = run_notebooks([first, last], out, args.jobs, fresh=args.fresh_kernels)
    for name, secs in sorted(seconds.items()):
        print(f"  {name}: {secs:.1f} s")
    gather_numbers(out)
    if not args.no_pdf:
        pdf = compile_pdf(out)
        print(f"wrote {pdf} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
