"""The rank forker: one process per run, forked from the launcher (which has imported torch,
scipy, pandas and the toolkit, and built the run's workload: about 3 s of CPU per process on a
2-core machine that a fresh interpreter would spend again), that forks every rank of the run, as
torch's DataLoader workers are forked on Linux.

Rank r runs ``toolkit.distributed.process.main(JOB, r)`` with ``RANK=r``, its stderr in
``LOG_DIR/rank<r>.err`` and its stdout discarded, and dies with the forker
(``PR_SET_PDEATHSIG``), which dies with the launcher. The forker's own stderr is
``LOG_DIR/fork.err``. It reports on a pipe to the launcher, one line each: ``start R PID`` when
rank R is forked and ``exit R CODE`` when it has ended (CODE as
:attr:`subprocess.Popen.returncode`: the exit status, or minus the signal that killed it). It
ends once every rank has ended. SIGTERM kills the ranks left (SIGKILL), reaps them and ends;
SIGINT is left to the launcher (a Ctrl-C reaches the ranks themselves).

The launcher may have threads (a progress bar's monitor, pyarrow's allocator): a forked child
has only the thread that forked, so neither the forker nor a rank touches an object another
thread could have held locked at the fork. They write with ``os.write`` or through new
``sys.stdout``/``sys.stderr`` objects, and end with ``os._exit``: the launcher's buffers,
``atexit`` handlers and finalizers never run twice.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from pathlib import Path


def prepare(job: Path) -> None:
    """In the launcher, before the fork: the imports every rank shares, and the run's workload
    (MNIST-1D's arrays stay in an in-memory cache that the forker, its ranks and the launcher's
    next runs share). A rank reports whatever fails here itself."""
    from toolkit.distributed import process  # noqa: F401

    try:
        from toolkit.runs.config import RunConfig
        from toolkit.workloads import get_workload

        config = RunConfig.from_dict(json.loads(Path(job).read_text())["config"])
        get_workload(config.workload, **config.workload_args)
    except Exception:
        pass


def start(job: Path, world: int, env: dict, log_dir: Path) -> tuple[int, int]:
    """Fork the forker of ``world`` ranks with environment ``env``; returns (its pid, the
    read end of its report pipe). The caller reaps it (``os.waitpid``)."""
    from toolkit.distributed.launch import die_with_parent

    prepare(job)
    read, write = os.pipe()
    err = os.open(log_dir / "fork.err", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    launcher = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        pid = os.fork()
    except OSError:  # no process left to fork (EAGAIN, ENOMEM): nothing stays open
        for fd in (read, write, err):
            os.close(fd)
        raise
    if pid:
        os.close(write)
        os.close(err)
        return pid, read
    code = 1
    try:
        die_with_parent()
        if os.getppid() != launcher:  # the launcher died between the fork and the line above
            os._exit(1)
        os.close(read)
        _own_stdio(err)
        os.environ.clear()
        os.environ.update(env)
        main(job, world, log_dir, write)
        code = 0
    except BaseException:
        os.write(2, traceback.format_exc().encode())
    os._exit(code)


def _own_stdio(err: int) -> None:
    """fd 2 is ``err``, fd 1 and 0 are /dev/null, and ``sys.std*`` are new objects on them."""
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(err, 2)
    os.dup2(null, 1)
    os.dup2(null, 0)
    os.close(null)
    if err > 2:
        os.close(err)
    sys.stdin = open(0, closefd=False)
    sys.stdout = open(1, "w", closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False, errors="backslashreplace")


def _rank(job: Path, rank: int, log_dir: Path, forker: int) -> None:
    """In the forked child: become rank ``rank`` and never return."""
    from toolkit.distributed import process
    from toolkit.distributed.launch import die_with_parent

    code = 1
    try:
        die_with_parent()
        if os.getppid() != forker:  # the forker died between the fork and the line above
            os._exit(1)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.environ["RANK"] = str(rank)
        err = os.open(log_dir / f"rank{rank}.err", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        _own_stdio(err)
        process.main(str(job), rank)  # ends the process itself (os._exit)
    except SystemExit as stop:  # a rank's refusal (exit code 2)
        code = stop.code if isinstance(stop.code, int) else 1
    except BaseException:
        traceback.print_exc()
    sys.stderr.flush()
    os._exit(code)


def main(job: Path, world: int, log_dir: Path, out: int) -> None:
    """Fork ``world`` ranks and report on file descriptor ``out`` until every one has ended
    (module docstring)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ranks: dict[int, int] = {}  # pid: rank
    stopping: list[int] = []

    def stop(signum, frame):
        stopping.append(signum)
        for pid in list(ranks):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def report(line: str) -> None:
        try:
            os.write(out, f"{line}\n".encode())
        except BrokenPipeError:  # the launcher has stopped reading: it is ending
            pass

    signal.signal(signal.SIGTERM, stop)
    me = os.getpid()
    for rank in range(world):
        if stopping:
            break
        pid = os.fork()
        if pid == 0:
            os.close(out)
            _rank(job, rank, log_dir, me)
        ranks[pid] = rank
        report(f"start {rank} {pid}")
        if stopping:  # SIGTERM came during the fork
            stop(signal.SIGTERM, None)
    while ranks:
        pid, status = os.wait()
        if pid in ranks:
            report(f"exit {ranks.pop(pid)} {os.waitstatus_to_exitcode(status)}")
