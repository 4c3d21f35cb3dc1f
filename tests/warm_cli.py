"""``toolkit`` command lines as processes forked from a warm one (a test helper).

A fresh ``python -m toolkit ...`` spends most of a short command importing torch, scipy and
pandas (3 to 5 s of CPU on a 2-core machine). Tests that need the command line as a process of
its own (its exit code, stdout and stderr, signals sent to it, a SIGKILL at any point) but not
its interpreter's start use :func:`run` and :func:`start`: the process is forked from
multiprocessing's forkserver, which imports the command line's modules once per test worker,
and runs ``toolkit.cli.main(argv)`` with the given environment, working directory and stdio
(files, read back when it has ended), then ends with its exit code. The tests of the start
itself (imports, Ctrl-C during them, the entry point, the README's commands) keep a fresh
``python -m toolkit``.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRELOAD = [
    "toolkit.cli",
    "toolkit.runs.cli",
    "toolkit.sweeps.cli",
    "toolkit.sweeps.runner",
    "toolkit.distributed.cli",
    "toolkit.distributed.process",
]
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(PRELOAD)
_started: list[Started] = []


def _main(argv, env, cwd, out, err, setup, new_session) -> None:
    """In the forked process: become ``toolkit ARGV`` and end with its exit code."""
    code = 1
    try:
        if new_session:
            os.setsid()
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        for fd, path, flags in (
            (0, os.devnull, os.O_RDONLY),
            (1, out, os.O_WRONLY),
            (2, err, os.O_WRONLY),
        ):
            opened = os.open(path, flags)
            os.dup2(opened, fd)
            os.close(opened)
        sys.stdin = open(0, closefd=False)
        sys.stdout = open(1, "w", closefd=False)
        sys.stderr = open(2, "w", buffering=1, closefd=False)
        sys.argv = ["toolkit", *argv]
        if setup:
            exec(setup, {"__name__": "setup"})
        from toolkit.cli import main

        code = main(argv)
    except SystemExit as stop:  # argparse's --help and usage errors
        code = stop.code if isinstance(stop.code, int) else (stop.code is not None)
    except BaseException:  # as the interpreter shows an uncaught exception
        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)


class Started:
    """A started command line, with :class:`subprocess.Popen`'s methods that tests use."""

    def __init__(self, argv, env, cwd, setup, new_session):
        self.args = ["toolkit", *argv]
        folder = Path(tempfile.mkdtemp(prefix="warm-cli-"))
        self._out, self._err = folder / "stdout", folder / "stderr"
        self._out.touch()
        self._err.touch()
        self._process = _CONTEXT.Process(
            target=_main,
            args=(argv, env, str(cwd), str(self._out), str(self._err), setup, new_session),
        )
        self._process.start()
        self.pid = self._process.pid
        _started.append(self)

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self._process.exitcode

    def send_signal(self, signum: int) -> None:
        if self._process.exitcode is None:
            os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def output(self) -> tuple[str, str]:
        """(stdout, stderr) written so far."""
        read = lambda p: p.read_text(errors="backslashreplace")  # noqa: E731
        return read(self._out), read(self._err)

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        self.wait(timeout)
        return self.output()

    def close(self) -> None:
        """Remove the files of its stdout and stderr."""
        for path in (self._out, self._err):
            path.unlink(missing_ok=True)
        self._out.parent.rmdir()


def start(
    argv: list[str],
    *,
    env: dict | None = None,
    cwd: Path = ROOT,
    setup: str = "",
    new_session: bool = False,
) -> Started:
    """Start ``toolkit ARGV``; ``setup`` is Python run in the process before the command line
    (a patch, say); ``new_session`` makes it a process group's leader (``os.setsid``)."""
    return Started(
        list(map(str, argv)), dict(os.environ if env is None else env), cwd, setup, new_session
    )


def run(argv: list[str], *, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """Run ``toolkit ARGV`` to its end (:func:`start`'s keywords); the process is killed if it
    runs past ``timeout`` seconds."""
    started = start(argv, **kwargs)
    try:
        out, err = started.communicate(timeout)
    finally:
        if started.poll() is None:
            started.kill()
            started.wait(30)
        started.close()
        _started.remove(started)
    return subprocess.CompletedProcess(started.args, started.returncode, out, err)


def left_running() -> list[str]:
    """Command lines started here that are still running (each is then killed); the files of
    every one started are removed."""
    left = []
    for started in _started:
        if started.poll() is None:
            left.append(" ".join(started.args))
            started.kill()
            started.wait(30)
        started.close()
    _started.clear()
    return left
