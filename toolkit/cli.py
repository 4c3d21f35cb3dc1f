"""Command line: ``python -m toolkit <command> ...`` (or the ``toolkit`` entry point).

Each layer registers its own subcommands with a ``register(subparsers)`` function in its
``cli`` module, so this file only lists them and turns the errors a user can cause into one
line on stderr: bad input (a ``toolkit.checks.ConfigError`` naming its field, or another
ValueError) and file-system errors (OSError, with the path) give exit code 2, a closed output
pipe (``... | head``) ends quietly, Ctrl-C (SIGINT) gives exit code 130 and SIGTERM 143, at any
moment, the imports included (a run writes its checkpoint first and says how to resume).
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading

# (module, help) pairs; each module has register(subparsers). Imported lazily so that
# `python -m toolkit theory ...` never imports torch.
COMMANDS = {
    "demo": ("toolkit.demo", "the main job: theory, clock and training side by side"),
    "theory": (
        "toolkit.theory.cli",
        "closed forms and numerics: step time, order statistics, optimal backups, demo",
    ),
    "simulate": ("toolkit.cluster.cli", "run the clock: a Schedule of updates for a scheme"),
    "train": ("toolkit.runs.cli", "train a real model following a simulated Schedule"),
    "run": ("toolkit.runs.cli", "run (or resume) a RunConfig from a TOML or JSON file"),
    "sweep": ("toolkit.sweeps.cli", "run, count and report parameter sweeps"),
    "distributed": (
        "toolkit.distributed.cli",
        "run a scheme as real processes (torch.distributed, gloo) on this machine",
    ),
}


class Parser(argparse.ArgumentParser):
    """argparse's parser with its errors in one line (``error: PROG: MESSAGE (PROG --help)``,
    exit 2) instead of the usage lines before them; subcommands' parsers are of this class too
    (``add_subparsers`` makes parsers of its parser's class)."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = Parser(
        prog="toolkit",
        description="Distributed SGD under stragglers and staleness: theory, a simulated "
        "cluster, and training that follows it.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", metavar="command")
    for name, (module, help_) in COMMANDS.items():
        if only is None or only == name:
            _register(module, name, sub)
        else:
            sub.add_parser(name, help=help_)
    return parser


def _register(module: str, name: str, sub: argparse._SubParsersAction) -> None:
    mod = importlib.import_module(module)
    register = getattr(mod, f"register_{name}", None) or mod.register
    register(sub)


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is so that it ends like a Ctrl-C (exit 143)."""

    signum = signal.SIGTERM


def _terminate(signum, frame):
    raise _Terminated("terminated")


def main(argv: list[str] | None = None) -> int:
    """The command line (module docstring); returns the exit code."""
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    try:
        return _main(sys.argv[1:] if argv is None else argv)
    except KeyboardInterrupt as err:  # also during the imports of build_parser
        signum = int(getattr(err, "signum", signal.SIGINT))
        print("interrupted" if signum == signal.SIGINT else "terminated", file=sys.stderr)
        return 128 + signum
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str]) -> int:
    debug = "--debug" in argv
    try:
        first = next((a for a in argv if not a.startswith("-")), None)
        parser = build_parser(first if first in COMMANDS else None)
    except ValueError as err:  # a command module refused its environment
        if debug:
            raise
        return _error(str(err))
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        if args.command is None:
            parser.print_help()
            return 0
        return _error(
            f"{args.command}: a subcommand is required (see toolkit {args.command} --help)"
        )
    if args.debug:
        return int(args.func(args) or 0)
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except BrokenPipeError:  # the reader went away (| head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except ValueError as err:
        return _error(str(err))
    except MemoryError:
        return _error("out of memory; lower the sizes, or TOOLKIT_MEMORY_LIMIT to be refused early")
    except OSError as err:
        where = err.filename if err.filename is not None else ""
        return _error(f"{where}: {err.strerror or err}" if where else str(err))
