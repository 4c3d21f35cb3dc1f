"""The rank forker (``python -m toolkit.distributed.fork JOB WORLD LOG_DIR``): one process that
imports what a rank needs once (torch, scipy, pandas and the toolkit: about 3 s of CPU per
process on a 2-core machine), then forks every rank of a run from it, as torch's DataLoader
workers are forked on Linux.

Rank r runs ``toolkit.distributed.process.main(JOB, r)`` with ``RANK=r``, its stderr in
``LOG_DIR/rank<r>.err`` and its stdout discarded, and dies with the forker
(``PR_SET_PDEATHSIG``), which dies with the launcher. The forker reports on its stdout, one line
each: ``start R PID`` when rank R is forked and ``exit R CODE`` when it has ended (CODE as
:attr:`subprocess.Popen.returncode`: the exit status, or minus the signal that killed it). It
ends once every rank has ended. SIGTERM kills the ranks left (SIGKILL), reaps them and ends;
SIGINT is left to the launcher (a Ctrl-C reaches the ranks themselves).

Before the forks the forker builds the run's workload (its data, in an in-memory cache the
ranks inherit) and starts no thread of its own: the one thread besides the main one is
pyarrow's allocator's, which registers its own fork handlers.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from pathlib import Path


def _rank(job: str, rank: int, log_dir: Path, forker: int) -> None:
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
        os.dup2(err, 2)
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        process.main(job, rank)  # ends the process itself (os._exit)
    except SystemExit as stop:  # a rank's refusal (exit code 2)
        code = stop.code if isinstance(stop.code, int) else 1
    except BaseException:
        traceback.print_exc()
    sys.stderr.flush()
    os._exit(code)


def _warm(job: str) -> None:
    """Build the run's workload once before the forks (MNIST-1D's arrays stay in an in-memory
    cache that every rank inherits); a rank reports whatever fails here itself."""
    try:
        from toolkit.runs.config import RunConfig
        from toolkit.workloads import get_workload

        config = RunConfig.from_dict(json.loads(Path(job).read_text())["config"])
        get_workload(config.workload, **config.workload_args)
    except Exception:
        pass


def main(job: str, world: int, log_dir: Path) -> None:
    """Fork ``world`` ranks and report on stdout until every one has ended (module docstring)."""
    from toolkit.distributed import process  # noqa: F401  (the imports every rank shares)
    from toolkit.distributed.launch import die_with_parent

    die_with_parent()
    _warm(job)
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

    signal.signal(signal.SIGTERM, stop)
    me = os.getpid()
    for rank in range(world):
        if stopping:
            break
        sys.stdout.flush()  # nothing buffered is written twice
        pid = os.fork()
        if pid == 0:
            _rank(job, rank, log_dir, me)
        ranks[pid] = rank
        print(f"start {rank} {pid}", flush=True)
        if stopping:  # SIGTERM came during the fork
            stop(signal.SIGTERM, None)
    while ranks:
        pid, status = os.wait()
        if pid in ranks:
            print(f"exit {ranks.pop(pid)} {os.waitstatus_to_exitcode(status)}", flush=True)


if __name__ == "__main__":  # JOB WORLD LOG_DIR
    main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))
