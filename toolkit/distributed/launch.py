"""Starting the ranks of one run on this machine: one process per rank, none outliving the
launcher, every wait bounded, and no more ranks than the machine can host.

torchrun ends every local survivor when one worker dies and, killed itself, leaves its workers
running (measured on torch 2.13, ../shared notes); a scheme that carries on without a dead
worker needs neither. On Linux the ranks are forked from one process forked from the launcher
(:mod:`toolkit.distributed.fork`: no import of torch per run or per rank), elsewhere each is a
``Popen`` child; either way every process has ``PR_SET_PDEATHSIG = SIGKILL`` (Linux),
so a launcher killed even with SIGKILL takes its ranks with it, and a hard deadline kills what
is left.

How many ranks the machine hosts (:func:`rank_limit`), checked before any process starts: at
most :data:`RANKS_PER_CORE` per core (ranks spend most of a run in their injected delays and
waits, so a core carries several; 1000 ranks on 2 cores drove the load average to 28) and at
most ``memory_limit() / RANK_BYTES`` (:mod:`toolkit.limits`). ``TOOLKIT_MAX_RANKS`` (the
command line's ``--max-ranks``) replaces both.
"""

from __future__ import annotations

import ctypes
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from toolkit.checks import ConfigError, TooLargeError
from toolkit.limits import cores, format_bytes, memory_limit

__all__ = [
    "RANKS_PER_CORE",
    "RANK_BYTES",
    "RunFailed",
    "check_ranks",
    "die_with_parent",
    "free_port",
    "launch",
    "path_of",
    "rank_limit",
    "world_size",
]

# Measured on torch 2.13 (CPU), logreg and mnist1d_mlp: a rank's resident memory peaks at
# 410 MB, of which about 165 MB are torch's shared libraries (PSS 280-300 MB, private 250 MB).
RANK_BYTES = 300e6
RANKS_PER_CORE = 4
MAX_REASONS = 4  # failed ranks whose reason a RunFailed quotes; the others are counted


class RunFailed(ValueError):
    """A distributed run that did not finish: which ranks failed and why, in one line (a
    ValueError, so that the command line prints it as one; ``--debug`` shows the trace)."""


def path_of(scheme, collective: bool = True) -> str:
    """Which processes run ``scheme`` (:data:`toolkit.distributed.process.PATHS`): replica
    schemes on ``all_reduce`` (``"replicas"``) or, asynchronous, with a centre server
    (``"replica_server"``); Delayed, and the rules that wait for every worker's one gradient
    (Sync, Backup(n, 0)), on ``all_reduce`` (``"shared"``; the latter through the server when
    ``collective`` is False); the other shared schemes through the server."""
    rule = scheme.rule
    if rule.period:
        return "replicas" if rule.barrier else "replica_server"
    everyone = rule.barrier and not rule.repeat and rule.quorum == rule.machines
    if rule.delay or (collective and everyone):
        return "shared"
    return "server"


def world_size(scheme, path: str) -> int:
    """Ranks of a run: one per worker, plus the server on the server paths."""
    return scheme.rule.machines + (path in ("server", "replica_server"))


def rank_limit() -> tuple[int, str]:
    """The most ranks this machine hosts, and the rule that gave it (module docstring)."""
    forced = os.environ.get("TOOLKIT_MAX_RANKS")
    if forced:
        if not forced.strip().isdigit() or int(forced) < 1:
            why = f"TOOLKIT_MAX_RANKS: expected a number of ranks >= 1, got {forced!r}"
            raise ConfigError("TOOLKIT_MAX_RANKS", why)
        return int(forced), "TOOLKIT_MAX_RANKS"
    by_cores = RANKS_PER_CORE * cores()
    by_memory = math.floor(memory_limit() / RANK_BYTES)
    rule = (
        f"{RANKS_PER_CORE} per core on {cores()} cores, and memory for {by_memory} at about "
        f"{format_bytes(RANK_BYTES)} each within the limit of {format_bytes(memory_limit())}"
    )
    return min(by_cores, by_memory), rule


def check_ranks(scheme, collective: bool = True, argument: str = "scheme.n") -> int:
    """The ranks ``scheme`` runs as; a :class:`~toolkit.checks.TooLargeError` naming
    ``argument`` when they are more than :func:`rank_limit`, with the estimate and the
    override."""
    world = world_size(scheme, path_of(scheme, collective))
    limit, rule = rank_limit()
    if world > limit:
        raise TooLargeError(
            argument,
            f"{argument}: {scheme} runs as {world} processes (about "
            f"{format_bytes(world * RANK_BYTES)}), more than this machine hosts: {limit} "
            f"({rule}); --max-ranks N (TOOLKIT_MAX_RANKS) allows more",
        )
    return world


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
    """Run ``toolkit.distributed.process.main(JOB, RANK)`` for every rank of ``world`` (module
    docstring) with the rendezvous of torch.distributed (``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``,
    ``WORLD_SIZE``) on 127.0.0.1. A rank in ``survivable`` may die while the others go on (a
    scheme that carries on without it); any other rank failing, or the deadline, kills the rest.
    ``watch`` is called about four times a second while the ranks run (a progress bar).
    Returns the survivable ranks that died; raises :class:`RunFailed` naming each failed rank
    with the last line of its stderr (``log_dir/rank<r>.err``) when a rank outside
    ``survivable`` failed, or the deadline passed."""
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    env["WORLD_SIZE"] = str(world)
    env.setdefault("OMP_NUM_THREADS", "1")
    log_dir.mkdir(parents=True, exist_ok=True)
    ranks = (_Forked if sys.platform == "linux" else _Spawned)(job, world, env, log_dir)
    deadline = time.monotonic() + timeout
    late, watched = False, time.monotonic()
    try:
        while None in (codes := ranks.poll()):
            if any(c not in (None, 0) and r not in survivable for r, c in enumerate(codes)):
                break
            if time.monotonic() > deadline:
                late = True
                break
            if watch is not None and time.monotonic() - watched > 0.25:
                watch()
                watched = time.monotonic()
            time.sleep(0.02)
    finally:
        stopped = {r for r, c in enumerate(ranks.poll()) if c is None}
        ranks.stop()
    codes = ranks.poll()
    failed = [r for r, c in enumerate(codes) if c != 0 and r not in stopped]
    if late or any(r not in survivable for r in failed):
        reasons = [_why(r, codes[r], log_dir) for r in failed[:MAX_REASONS]]
        if len(failed) > MAX_REASONS:
            reasons.append(f"ranks {_spans(failed[MAX_REASONS:])} failed too (see {log_dir})")
        if late:
            head = f"timeout: the run did not finish within {timeout:g} s; "
            reasons.insert(0, f"ranks {_spans(stopped)} were still running, killed")
        else:
            head = "distributed run failed: "
            if stopped:
                reasons.append(f"ranks {_spans(stopped)} stopped")
        raise RunFailed(head + "; ".join(reasons)) from None
    return failed


class _Forked:
    """The ranks forked by one forker process (Linux; :mod:`toolkit.distributed.fork`), itself
    forked from this process: the imports and the workload are made once per launcher, not once
    per run or per rank. ``poll()`` is every rank's return code so far (None: running or not yet
    started); ``stop()`` kills the ranks left and waits for them."""

    def __init__(self, job: Path, world: int, env: dict, log_dir: Path) -> None:
        from toolkit.distributed import fork

        self.codes: list[int | None] = [None] * world
        self._buffer = b""
        self.pid, self._out = fork.start(job, world, env, log_dir)
        self.returncode: int | None = None
        os.set_blocking(self._out, False)

    def _read(self) -> None:
        while self._out is not None:
            try:
                chunk = os.read(self._out, 65536)
            except BlockingIOError:
                return
            if not chunk:  # the forker has ended
                os.close(self._out)
                self._out = None
                return
            self._buffer += chunk
            *lines, self._buffer = self._buffer.split(b"\n")
            for line in lines:  # "start RANK PID" (the ranks write their pids themselves)
                what, rank, value = line.decode().split()
                if what == "exit":
                    self.codes[int(rank)] = int(value)

    def _reap(self, block: bool = False) -> int | None:
        """The forker's return code (as :attr:`subprocess.Popen.returncode`), None while it
        runs."""
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, 0 if block else os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere (SIGCHLD ignored): as Popen, code 0
                pid, status = self.pid, 0
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def _wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self._reap() is None:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def poll(self) -> list[int | None]:
        self._read()
        code = self._reap()
        if code is not None:
            self._read()  # the lines written before it ended
            # a forker that died (killed, or failing before a fork) takes its ranks with it
            lost = code if code != 0 else 1
            self.codes = [lost if c is None else c for c in self.codes]
        return list(self.codes)

    def stop(self) -> None:
        if self._reap() is None:
            os.kill(self.pid, signal.SIGTERM)  # the forker kills and reaps its ranks, then ends
            if not self._wait(10):
                os.kill(self.pid, signal.SIGKILL)  # its ranks die with it (PR_SET_PDEATHSIG)
                self._reap(block=True)
        self.poll()
        if self._out is not None:
            os.close(self._out)
            self._out = None


class _Spawned:
    """One ``python -m toolkit.distributed.process JOB RANK`` process per rank (not Linux)."""

    def __init__(self, job: Path, world: int, env: dict, log_dir: Path) -> None:
        self.procs = []
        for rank in range(world):
            with open(log_dir / f"rank{rank}.err", "w") as err:
                self.procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "toolkit.distributed.process", str(job), str(rank)],
                        env=dict(env, RANK=str(rank)),
                        stdout=subprocess.DEVNULL,
                        stderr=err,
                        preexec_fn=die_with_parent,
                    )
                )

    def poll(self) -> list[int | None]:
        return [p.poll() for p in self.procs]

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for p in self.procs:
            p.wait(timeout=10)


def _spans(ranks) -> str:
    """Ranks as sorted spans: ``[0, 1, 2, 5]`` is ``"0-2, 5"``."""
    spans: list[list[int]] = []
    for r in sorted(ranks):
        if spans and r == spans[-1][1] + 1:
            spans[-1][1] = r
        else:
            spans.append([r, r])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def _why(rank: int, code: int, log_dir: Path) -> str:
    """Why a rank ended: the signal that killed it, or its exit code and the last line it wrote
    to stderr (a traceback's exception, or the one-line refusal of the rank's checks)."""
    if code < 0:
        return f"rank {rank} died ({signal.Signals(-code).name})"
    err = log_dir / f"rank{rank}.err"
    if not err.exists():  # never started: the forker's own error
        err = log_dir / "fork.err"
    lines = err.read_text().strip().splitlines() if err.exists() else []
    return f"rank {rank} failed (exit code {code})" + (f": {lines[-1].strip()}" if lines else "")
