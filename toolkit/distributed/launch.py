"""Starting the ranks of one run on this machine: one process per rank, none outliving the
launcher, every wait bounded.

torchrun ends every local survivor when one worker dies and, killed itself, leaves its workers
running (measured on torch 2.13, ../shared notes); a scheme that carries on without a dead
worker needs neither. Each rank here is a ``Popen`` child with ``PR_SET_PDEATHSIG = SIGKILL``
(Linux), so a launcher killed even with SIGKILL takes its ranks with it, and a hard deadline
kills what is left.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["die_with_parent", "free_port", "launch"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the rendezvous store's)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (``PR_SET_PDEATHSIG``); a no-op
    elsewhere."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: a deadline must bound the children
        pass


def launch(
    job: Path,
    world: int,
    *,
    timeout: float,
    log_dir: Path,
    survivable: tuple[int, ...] = (),
    watch: Callable[[], None] | None = None,
) -> list[int]:
    """Run ``python -m toolkit.distributed.process JOB RANK`` for every rank of ``world`` with
    the rendezvous of torch.distributed (``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``,
    ``WORLD_SIZE``) on 127.0.0.1. A rank in ``survivable`` may die while the others go on (a
    scheme that carries on without it); any other rank failing, or the deadline, kills the rest.
    ``watch`` is called about four times a second while the ranks run (a progress bar).
    Returns the survivable ranks that died; raises a RuntimeError naming each failed rank with
    the end of its stderr (``log_dir/rank<r>.err``) when a rank outside ``survivable`` failed."""
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    env["WORLD_SIZE"] = str(world)
    env.setdefault("OMP_NUM_THREADS", "1")
    log_dir.mkdir(parents=True, exist_ok=True)
    procs = []
    for rank in range(world):
        err = open(log_dir / f"rank{rank}.err", "w")  # closed once the child has it
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "toolkit.distributed.process", str(job), str(rank)],
                env=dict(env, RANK=str(rank)),
                stdout=subprocess.DEVNULL,
                stderr=err,
                preexec_fn=die_with_parent,
            )
        )
        err.close()
    deadline = time.monotonic() + timeout
    late, watched = False, time.monotonic()
    try:
        while any(p.poll() is None for p in procs):
            fatal = [r for r, p in enumerate(procs) if p.poll() not in (None, 0)]
            if any(r not in survivable for r in fatal):
                break
            if time.monotonic() > deadline:
                late = True
                break
            if watch is not None and time.monotonic() - watched > 0.25:
                watch()
                watched = time.monotonic()
            time.sleep(0.02)
    finally:
        stopped = {r for r, p in enumerate(procs) if p.poll() is None}
        for p in procs:
            if p.poll() is None:
                p.kill()
        for p in procs:
            p.wait(timeout=10)
    failed = [r for r, p in enumerate(procs) if p.returncode != 0 and r not in stopped]
    if late or any(r not in survivable for r in failed):
        reasons = [_why(r, procs[r].returncode, log_dir) for r in failed]
        if late:
            reasons.append(f"ranks {sorted(stopped)} still running at the deadline, killed")
        elif stopped:
            reasons.append(f"ranks {sorted(stopped)} stopped")
        raise RuntimeError(f"distributed run failed: {'; '.join(reasons)}") from None
    return failed


def _why(rank: int, code: int, log_dir: Path) -> str:
    if code < 0:
        return f"rank {rank} died ({signal.Signals(-code).name})"
    tail = (log_dir / f"rank{rank}.err").read_text().strip().splitlines()[-2:]
    return f"rank {rank} failed (exit code {code}): " + " | ".join(tail)
