"""Suite-wide settings.

One thread per test process, for torch and for numpy's BLAS (and, through the environment, for
the processes tests start): CI machines have 2 cores, shared by two test workers (pytest-xdist),
and two threads contending with anything else on the machine were ~10x slower (measured on
MNIST-1D: 2.1 s vs 21 s for 300 steps; a dense 1681 x 1681 eigvals on a loaded machine: 4.5 s
vs 35 s).

Integration tests (those that start processes) run first. No process left behind: after each of
them, a child of the test process still running after a grace period, or a command line started
through tests/warm_cli.py still running, is killed and fails the test, named.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

torch.set_num_threads(1)
threadpool_limits(1)  # numpy may have started its BLAS threads before this file ran

GRACE = 10.0  # seconds a child may take to exit after its test returned
# long-lived helpers of the standard library, started once and reused by later tests
HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")


def _children() -> dict[int, str]:
    """{pid: command line} of this process's live children (Linux; empty elsewhere)."""
    found = {}
    for task in Path("/proc/self/task").glob("*/children"):
        try:
            pids = [int(p) for p in task.read_text().split()]
        except OSError:  # the thread ended
            continue
        for pid in pids:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except (OSError, IndexError):  # it ended meanwhile
                continue
            if state != "Z" and not any(h in cmd for h in HELPERS):
                found[pid] = cmd.strip()
    return found


def pytest_collection_modifyitems(items):
    """Integration tests first (a stable sort: files keep their order), so that test workers
    start the long tests early and the short ones fill the end."""
    items.sort(key=lambda item: item.get_closest_marker("integration") is None)


@pytest.fixture(autouse=True)
def _no_process_left_behind(request):
    if request.node.get_closest_marker("integration") is None:
        yield
        return
    before = set(_children())
    yield
    warm = sys.modules.get("warm_cli")  # command lines forked from its forkserver
    if warm is not None and (left := warm.left_running()):
        pytest.fail(f"command lines left running after the test: {left}")
    deadline = time.monotonic() + GRACE
    while left := {p: c for p, c in _children().items() if p not in before}:
        if time.monotonic() > deadline:
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            pytest.fail(f"processes left running {GRACE:g} s after the test: {left}")
        time.sleep(0.1)
