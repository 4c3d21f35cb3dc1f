"""Hostile-input probe: bad, hostile and extreme inputs through every ``toolkit`` subcommand and
the main Python entry points, each in its own process, and what each one got.

Every case runs in a fresh process group under ``nice`` and an address-space cap (``ulimit -v``,
``--memory``, 8 GB by default), with a timeout far above what a refusal needs (``--timeout``,
60 s), in its own temporary directory; the whole group, and any process that carries the case's
tag in its environment, is killed when it ends, so nothing outlives the probe. Outcomes:

============================  =====================================================================
``one-line error (2)``        CLI: exit code 2 and one line on stderr, starting ``error:``
``ConfigError``               API: a ConfigError (the field named, ``err.field``), one line
``OSError (path)``            API: an OSError naming the path (a file-system answer)
``success``                   exit code 0; right where the input is valid
``interrupted (130/143)``     SIGINT / SIGTERM: exit 130 / 143 and one line, no traceback
``usage + error (2)``         argparse's usage lines before its error: more than one line
``more than one line``        an error of several lines (no traceback)
``ValueError without field``  API: a ValueError that is not a ConfigError
``TypeError``                 API: a TypeError (right only for a call of the wrong shape)
``traceback``                 a traceback (exit 1, or 2 with a traceback on stderr)
``MemoryError caught``        a MemoryError under the cap: an estimate before work would refuse it
``hang (timeout)``            still running at the timeout
``killed``                    killed by a signal (the kernel's OOM killer, SIGKILL, ...)
``accepted bad input``        exit 0 (or a normal return) for input that should be refused
``silent overwrite``          a file that existed before was replaced without being asked
``left processes``            processes of the case still running after it ended
============================  =====================================================================

A case is *good* when its outcome is what its input calls for (a clear refusal for bad input,
success for valid input, either for valid but extreme input); the table lists every case, the
defects last with the command that reproduces each. Run::

    .venv/bin/python benchmarks/probe_inputs.py                 # every case, 2 at a time
    .venv/bin/python benchmarks/probe_inputs.py -k theory --jobs 1 --csv probe.csv
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TAG = "TOOLKIT_PROBE_TAG"

GOOD_ERRORS = {"one-line error (2)", "ConfigError", "OSError (path)"}


@dataclass
class Case:
    """One input: ``argv`` (the command line after ``toolkit``) or ``code`` (Python run in the
    harness); ``expect`` is ``error`` (bad input), ``ok`` (valid) or ``either`` (valid but
    extreme: a clear refusal or success); ``files`` are written into the case's directory first
    (``{fix}`` in a name, an argument or code is the shared fixtures' folder, ``{tmp}`` the case's
    own); ``copy`` copies fixtures in; ``unchanged`` lists files that must keep their content;
    ``signal`` sends (signum, after seconds, whole group?) to the process."""

    group: str
    name: str
    argv: list[str] | None = None
    code: str | None = None
    expect: str = "error"
    files: dict[str, str] = field(default_factory=dict)
    copy: dict[str, str] = field(default_factory=dict)
    unchanged: tuple[str, ...] = ()
    signal: tuple[int, float, bool] | None = None
    accept: tuple[str, ...] = ()
    timeout: float | None = None

    @property
    def id(self) -> str:
        return f"{self.group}/{self.name}"


# --------------------------------------------------------------------------- fixtures
VALID_CONFIG = """seed = 0
compute = "expon(loc=1, scale=0.5)"
updates = 4
[scheme]
name = "sync"
n = 2
[workload]
name = "logreg"
"""

VALID_SPEC = """name = "probe"
[base]
updates = 4
compute = "expon(loc=1, scale=0.5)"
[base.scheme]
name = "sync"
n = 2
[base.workload]
name = "logreg"
[grid]
lr = [0.1, 0.2]
"""

FIXTURES = """
import sys
from pathlib import Path
from toolkit.runs import RunConfig, run
from toolkit.sweeps import run_sweep, export
fix = Path(sys.argv[1])
config = RunConfig.from_toml((fix / "config.toml").read_text())
run(config, fix / "run")
run_sweep(fix / "spec.toml", fix / "sweep", jobs=1, progress=False)
export(fix / "sweep", fix / "export")
"""


def make_fixtures(fix: Path, memory: float) -> None:
    """Shared inputs: step-time CSVs (good and bad), a valid config and spec, a finished run,
    a finished sweep and its export."""
    fix.mkdir(parents=True, exist_ok=True)
    (fix / "times.csv").write_text("step_time\n" + "\n".join(str(1 + i / 10) for i in range(20)))
    (fix / "neg.csv").write_text("step_time\n" + "\n".join(str(i - 5.0) for i in range(10)))
    (fix / "empty.csv").write_text("")
    (fix / "header.csv").write_text("step_time\n")
    (fix / "garbage.csv").write_text("\x00\x01\x02 not, a, csv\n\xff\xfe\n")
    (fix / "text.csv").write_text("step_time\nfast\nslow\n")
    (fix / "nan.csv").write_text("step_time\nnan\ninf\n1.0\n")
    (fix / "config.toml").write_text(VALID_CONFIG)
    (fix / "spec.toml").write_text(VALID_SPEC)
    proc = subprocess.run(
        [sys.executable, "-c", FIXTURES, str(fix)],
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=_limits(memory),
        env=_env("fixtures"),
    )
    if proc.returncode != 0:
        raise SystemExit(f"probe: making the fixtures failed:\n{proc.stderr}")


# --------------------------------------------------------------------------- cases
D = ["--dist", "expon(loc=1, scale=0.5)"]
STEP = ["theory", "step-time", "--scheme", "sync", "--n", "4"]
ORDER = ["theory", "order-stat", "--k", "2", "--n", "4"]
BACKUPS = ["theory", "backups", "--machines", "8"]
TDEMO = ["theory", "demo", "--out", "{tmp}/td"]
SIM = ["simulate", "--scheme", "sync", "--n", "4", *D, "--updates", "10"]
TRAIN = ["train", "--workload", "logreg", "--scheme", "sync", "--n", "2", "--updates", "4"]
TRAIN += ["--no-progress", *D]
DIST = ["distributed", "--workload", "logreg", "--scheme", "sync", "--n", "2", "--updates", "4"]
DIST += ["--no-progress"]
DEMO = ["demo", "--no-progress"]

BAD_DISTS = {
    "empty": "",
    "blank": "   ",
    "unclosed": "expon(",
    "negative-support": "norm(0, 1)",
    "negative-loc": "expon(loc=-1)",
    "array-loc": "expon(loc=[1, 2])",
    "array-scale": "expon(scale=[1, 2])",
    "unknown-name": "nosuch(1)",
    "nan-scale": "expon(scale=nan)",
    "inf-scale": "expon(scale=inf)",
    "zero-scale": "expon(scale=0)",
    "negative-scale": "expon(scale=-1)",
    "huge-loc": "expon(loc=1e400)",
    "code-injection": "__import__('os').system('echo pwned')",
    "call-of-call": "expon(loc=1)(2)",
    "too-many-args": "expon(1, 2, 3, 4)",
    "unknown-kwarg": "expon(foo=1)",
    "lambda": "lambda: 1",
    "deep-nesting": "expon(" * 5000,
    "infinite-mean": "cauchy()",
    "missing-csv": "missing.csv",
    "negative-csv": "{fix}/neg.csv",
    "empty-csv": "{fix}/empty.csv",
    "header-only-csv": "{fix}/header.csv",
    "garbage-csv": "{fix}/garbage.csv",
    "text-csv": "{fix}/text.csv",
    "nan-csv": "{fix}/nan.csv",
    "directory": "{tmp}",
    "unreadable-csv": "/proc/x.csv",
    "slow-negative": 'SlowMachines("norm(0, 1)", fraction=0.1, slowdown=4)',
    "slow-fraction": 'SlowMachines("expon()", fraction=2, slowdown=4)',
    "trace-missing": 'Trace("missing.csv")',
}
SOME_DISTS = ("negative-support", "array-loc", "nan-scale", "missing-csv", "code-injection")

BAD_COMMS = {
    "unknown": "nosuch()",
    "negative-bytes": "ParameterServer(nbytes=-1, bandwidth=1)",
    "nan-bytes": "ParameterServer(nbytes=nan, bandwidth=1)",
    "zero-bandwidth": "ParameterServer(nbytes=1, bandwidth=0)",
    "array-bytes": "ParameterServer(nbytes=[1, 2], bandwidth=1)",
    "positional-overflow": "ParameterServer(1, 2, 3, 4, 5)",
    "empty": "",
    "shards-zero": "ShardedServer(nbytes=1, bandwidth=1, shards=0)",
    "negative-latency": "RingAllReduce(nbytes=1, bandwidth=1, latency=-1)",
    "not-a-call": "ParameterServer",
}


def _dist_cases(group: str, base: list[str], names) -> list[Case]:
    return [Case(group, f"dist-{name}", [*base, "--dist", BAD_DISTS[name]]) for name in names]


def cli_cases() -> list[Case]:
    c: list[Case] = []
    # -------------------------------------------------------------- the top level
    top = "toolkit"
    c += [
        Case(top, "no-command", [], expect="ok"),
        Case(top, "help", ["--help"], expect="ok"),
        Case(top, "unknown-command", ["nosuch"]),
        Case(top, "unknown-flag", ["--nosuch"]),
        Case(top, "theory-no-subcommand", ["theory"]),
        Case(top, "theory-unknown-subcommand", ["theory", "nosuch"]),
        Case(top, "sweep-no-subcommand", ["sweep"]),
        Case(top, "simulate-no-flags", ["simulate"]),
        Case(top, "train-help", ["train", "--help"], expect="ok"),
        Case(top, "debug-unknown-command", ["--debug", "nosuch"]),
    ]
    # -------------------------------------------------------------- theory step-time
    g = "theory step-time"
    c += _dist_cases(g, STEP, BAD_DISTS)
    for name, comm in BAD_COMMS.items():
        c.append(Case(g, f"comm-{name}", [*STEP, *D, "--comm", comm]))
    s = ["theory", "step-time", *D]
    c += [
        Case(g, "valid", [*STEP, *D], expect="ok"),
        Case(g, "scheme-unknown", [*s, "--scheme", "nosuch", "--n", "4"]),
        Case(g, "scheme-empty", [*s, "--scheme", "", "--n", "4"]),
        Case(g, "n-zero", [*s, "--scheme", "sync", "--n", "0"]),
        Case(g, "n-negative", [*s, "--scheme", "sync", "--n", "-1"]),
        Case(g, "n-text", [*s, "--scheme", "sync", "--n", "abc"]),
        Case(g, "n-float", [*s, "--scheme", "sync", "--n", "1e9"]),
        Case(g, "sync-n-1e9", [*s, "--scheme", "sync", "--n", "1000000000"], expect="either"),
        Case(g, "sync-n-1e18", [*s, "--scheme", "sync", "--n", str(10**18)], expect="either"),
        Case(g, "async-n-1e9", [*s, "--scheme", "async", "--n", "1000000000"], expect="either"),
        Case(g, "async-n-1e6", [*s, "--scheme", "async", "--n", "1000000"], expect="either"),
        Case(g, "backup-b-negative", [*s, "--scheme", "backup", "--n", "4", "--b", "-1"]),
        Case(
            g,
            "backup-b-1e9",
            [*s, "--scheme", "backup", "--n", "4", "--b", "1000000000"],
            expect="either",
        ),
        Case(g, "kasync-k-above-n", [*s, "--scheme", "kasync", "--n", "4", "--k", "5"]),
        Case(g, "kasync-k-zero", [*s, "--scheme", "kasync", "--n", "4", "--k", "0"]),
        Case(
            g,
            "kbatchsync-1e6",
            [*s, "--scheme", "kbatchsync", "--n", "1000000", "--k", "1000000"],
            expect="either",
        ),
        Case(
            g,
            "kbatchasync-1e9",
            [*s, "--scheme", "kbatchasync", "--n", "1000000000", "--k", "3"],
            expect="either",
        ),
        Case(g, "easgd-tau-zero", [*s, "--scheme", "easgd", "--n", "4", "--tau", "0"]),
        Case(g, "easgd-alpha-2", [*s, "--scheme", "easgd", "--n", "4", "--alpha", "2"]),
        Case(g, "easgd-alpha-nan", [*s, "--scheme", "easgd", "--n", "4", "--alpha", "nan"]),
        Case(g, "easgd-alpha-inf", [*s, "--scheme", "easgd", "--n", "4", "--alpha", "inf"]),
        Case(g, "easgd-momentum-1.5", [*s, "--scheme", "easgd", "--n", "4", "--momentum", "1.5"]),
        Case(
            g,
            "easgd-tau-1e9",
            [*s, "--scheme", "easgd", "--n", "4", "--tau", "1000000000"],
            expect="either",
        ),
        Case(g, "delayed-negative", [*s, "--scheme", "delayed", "--n", "4", "--delay", "-1"]),
        Case(
            g,
            "delayed-1e9",
            [*s, "--scheme", "delayed", "--n", "4", "--delay", "1000000000"],
            expect="either",
        ),
        Case(g, "diloco-h-zero", [*s, "--scheme", "diloco", "--n", "4", "--h", "0"]),
        Case(g, "diloco-outer-lr-nan", [*s, "--scheme", "diloco", "--n", "4", "--outer-lr", "nan"]),
        Case(
            g,
            "diloco-outer-momentum-2",
            [*s, "--scheme", "diloco", "--n", "4", "--outer-momentum", "2"],
        ),
        Case(g, "field-not-taken", [*s, "--scheme", "sync", "--n", "4", "--b", "2"]),
        Case(
            g,
            "localsgd-tau-1e9",
            [*s, "--scheme", "localsgd", "--n", "4", "--tau", "1000000000"],
            expect="either",
        ),
        Case(g, "samples-zero", [*STEP, *D, "--samples", "0"]),
        Case(g, "samples-negative", [*STEP, *D, "--samples", "-5"]),
        Case(
            g,
            "samples-1e12-async",
            [*s, "--scheme", "async", "--n", "4", "--samples", str(10**12)],
            expect="either",
        ),
        Case(g, "seed-negative", [*s, "--scheme", "async", "--n", "4", "--seed", "-1"]),
        Case(g, "seed-1e30", [*s, "--scheme", "async", "--n", "4", "--seed", str(10**30)]),
        Case(g, "batch-size-zero", [*STEP, *D, "--batch-size", "0"]),
        Case(g, "batch-size-negative", [*STEP, *D, "--batch-size", "-5"]),
        Case(g, "column-without-csv", [*STEP, *D, "--column", "x"]),
        Case(g, "column-missing", [*STEP, "--dist", "{fix}/times.csv", "--column", "nosuch"]),
        Case(
            g,
            "ring-async",
            [*s, "--scheme", "async", "--n", "4", "--comm", "RingAllReduce(nbytes=1, bandwidth=1)"],
        ),
        Case(
            g,
            "huge-comm",
            [*STEP, *D, "--comm", "ParameterServer(nbytes=1e300, bandwidth=1e-300)"],
        ),
    ]
    # -------------------------------------------------------------- theory order-stat
    g = "theory order-stat"
    c += _dist_cases(g, ORDER, (*SOME_DISTS, "infinite-mean", "negative-csv", "directory"))
    o = ["theory", "order-stat"]
    c += [
        Case(g, "valid", [*ORDER, *D], expect="ok"),
        Case(g, "k-zero", [*o, *D, "--k", "0", "--n", "4"]),
        Case(g, "k-above-n", [*o, *D, "--k", "5", "--n", "4"]),
        Case(g, "n-zero", [*o, *D, "--k", "1", "--n", "0"]),
        Case(g, "n-negative", [*o, *D, "--k", "1", "--n", "-3"]),
        Case(g, "n-text", [*o, *D, "--k", "1", "--n", "x"]),
        Case(g, "expon-n-1e9", [*o, *D, "--k", "1000000000", "--n", "1000000000"], expect="either"),
        Case(
            g,
            "lognorm-n-1e12",
            [*o, "--dist", "lognorm(0.5)", "--k", "1000", "--n", str(10**12)],
            expect="either",
        ),
        Case(
            g,
            "gamma-n-1e18",
            [*o, "--dist", "gamma(2)", "--k", str(10**18), "--n", str(10**18)],
            expect="either",
        ),
        Case(
            g,
            "n-above-int64",
            [*o, *D, "--k", "1", "--n", str(10**30)],
        ),
        Case(g, "pareto-half", [*o, "--dist", "pareto(0.5)", "--k", "4", "--n", "4"]),
        Case(
            g,
            "csv-n-1e9",
            [*o, "--dist", "{fix}/times.csv", "--k", "5", "--n", "1000000000"],
            expect="either",
        ),
        Case(
            g,
            "lognorm-s-50",
            [*o, "--dist", "lognorm(50)", "--k", "9", "--n", "10"],
            expect="either",
        ),
    ]
    # -------------------------------------------------------------- theory backups
    g = "theory backups"
    c += _dist_cases(g, BACKUPS, SOME_DISTS)
    b = ["theory", "backups", *D]
    c += [
        Case(g, "valid", [*BACKUPS, *D], expect="ok"),
        Case(g, "machines-zero", [*b, "--machines", "0"]),
        Case(g, "machines-one", [*b, "--machines", "1"]),
        Case(g, "machines-negative", [*b, "--machines", "-5"]),
        Case(g, "machines-1e9", [*b, "--machines", "1000000000"], expect="either"),
        Case(g, "machines-1e6", [*b, "--machines", "1000000"], expect="either"),
        Case(g, "b-max-negative", [*b, "--machines", "8", "--b-max", "-1"]),
        Case(g, "b-max-above", [*b, "--machines", "8", "--b-max", "200"]),
        Case(g, "critical-zero", [*b, "--machines", "8", "--critical-batch", "0"]),
        Case(g, "critical-negative", [*b, "--machines", "8", "--critical-batch", "-1"]),
        Case(g, "critical-nan", [*b, "--machines", "8", "--critical-batch", "nan"]),
        Case(
            g, "critical-inf", [*b, "--machines", "8", "--critical-batch", "inf"], expect="either"
        ),
        Case(g, "progress-unknown", [*b, "--machines", "8", "--progress", "linear"]),
        Case(g, "comm-negative", [*b, "--machines", "8", "--comm", BAD_COMMS["negative-bytes"]]),
    ]
    # -------------------------------------------------------------- theory demo
    g = "theory demo"
    c += [
        Case(g, "valid", [*TDEMO, "--machines", "4"], expect="ok"),
        Case(g, "machines-one", [*TDEMO, "--machines", "1"]),
        Case(g, "machines-zero", [*TDEMO, "--machines", "0"]),
        Case(g, "machines-1e9", [*TDEMO, "--machines", "1000000000"], expect="either"),
        Case(g, "machines-1e6", [*TDEMO, "--machines", "1000000"], expect="either"),
        Case(
            g,
            "out-is-file",
            ["theory", "demo", "--out", "{tmp}/f", "--machines", "4"],
            files={"f": "x"},
        ),
        Case(g, "out-unwritable", ["theory", "demo", "--out", "/proc/x", "--machines", "4"]),
        Case(
            g,
            "out-holds-outputs",
            [*TDEMO, "--machines", "4"],
            files={"td/step_times.csv": "mine\n", "td/backups.csv": "mine\n"},
            unchanged=("td/step_times.csv", "td/backups.csv"),
        ),
        Case(g, "seed-negative", [*TDEMO, "--machines", "4", "--seed", "-1"]),
        Case(g, "critical-negative", [*TDEMO, "--machines", "4", "--critical-batch", "-1"]),
        Case(g, "dist-negative", [*TDEMO, "--machines", "4", "--dist", "norm(0, 1)"]),
        Case(g, "comm-unknown", [*TDEMO, "--machines", "4", "--comm", "nosuch()"]),
    ]
    # -------------------------------------------------------------- simulate
    g = "simulate"
    base = ["simulate", "--scheme", "sync", "--n", "4", "--updates", "10"]
    c += _dist_cases(g, base, BAD_DISTS)
    c += [
        Case(g, "valid", SIM, expect="ok"),
        Case(g, "updates-zero", [*SIM, "--updates", "0"]),
        Case(g, "updates-negative", [*SIM, "--updates", "-1"]),
        Case(g, "updates-1e9", [*SIM, "--updates", "1000000000"], expect="either"),
        Case(g, "updates-1e18", [*SIM, "--updates", str(10**18)], expect="either"),
        Case(g, "updates-above-int64", [*SIM, "--updates", str(10**30)]),
        Case(g, "n-1e6", [*SIM, "--n", "1000000"], expect="either"),
        Case(
            g,
            "async-n-1e7",
            ["simulate", "--scheme", "async", "--n", "10000000", *D, "--updates", "100000000"],
            expect="either",
        ),
        Case(
            g,
            "easgd-async-1e9",
            [
                "simulate",
                "--scheme",
                "easgd",
                "--n",
                "4",
                "--asynchronous",
                *D,
                "--updates",
                "1000000000",
            ],
            expect="either",
        ),
        Case(g, "seed-negative", [*SIM, "--seed", "-1"]),
        Case(
            g,
            "out-existing",
            [*SIM, "--out", "{tmp}/s.csv"],
            files={"s.csv": "mine\n"},
            unchanged=("s.csv",),
        ),
        Case(
            g,
            "out-existing-overwrite",
            [*SIM, "--out", "{tmp}/s.csv", "--overwrite"],
            files={"s.csv": "mine\n"},
            expect="ok",
        ),
        Case(g, "out-unwritable", [*SIM, "--out", "/proc/x/s.parquet"]),
        Case(g, "out-directory", [*SIM, "--out", "{tmp}"]),
        Case(g, "out-bad-suffix", [*SIM, "--out", "{tmp}/s.txt"]),
        Case(g, "out-empty", [*SIM, "--out", ""]),
        Case(g, "out-parent-is-file", [*SIM, "--out", "{tmp}/f/s.csv"], files={"f": "x"}),
        Case(g, "comm-nan", [*SIM, "--comm", BAD_COMMS["nan-bytes"]]),
        Case(
            g,
            "comm-ring-async",
            [
                "simulate",
                "--scheme",
                "async",
                "--n",
                "4",
                *D,
                "--comm",
                "RingAllReduce(nbytes=1, bandwidth=1)",
            ],
        ),
        Case(g, "column-missing", [*base, "--dist", "{fix}/times.csv", "--column", "nosuch"]),
        Case(g, "kasync-k-above-n", ["simulate", "--scheme", "kasync", "--n", "4", "--k", "9", *D]),
    ]
    # -------------------------------------------------------------- train
    g = "train"
    tbase = [a for a in TRAIN if a not in D]
    c += _dist_cases(g, tbase, SOME_DISTS)
    c += [
        Case(g, "valid", [*TRAIN, "--out", "{tmp}/r"], expect="ok"),
        Case(g, "workload-unknown", [*TRAIN, "--workload", "nosuch", "--out", "{tmp}/r"]),
        Case(g, "workload-empty", [*TRAIN, "--workload", "", "--out", "{tmp}/r"]),
        Case(g, "lr-zero", [*TRAIN, "--lr", "0", "--out", "{tmp}/r"]),
        Case(g, "lr-negative", [*TRAIN, "--lr", "-1", "--out", "{tmp}/r"]),
        Case(g, "lr-nan", [*TRAIN, "--lr", "nan", "--out", "{tmp}/r"]),
        Case(g, "lr-inf", [*TRAIN, "--lr", "inf", "--out", "{tmp}/r"]),
        Case(g, "lr-1e18", [*TRAIN, "--lr", "1e18", "--out", "{tmp}/r"], expect="either"),
        Case(g, "batch-zero", [*TRAIN, "--batch-size", "0", "--out", "{tmp}/r"]),
        Case(g, "batch-negative", [*TRAIN, "--batch-size", "-1", "--out", "{tmp}/r"]),
        Case(g, "batch-1e9", [*TRAIN, "--batch-size", "1000000000", "--out", "{tmp}/r"]),
        Case(g, "momentum-1.5", [*TRAIN, "--sgd-momentum", "1.5", "--out", "{tmp}/r"]),
        Case(g, "momentum-nan", [*TRAIN, "--sgd-momentum", "nan", "--out", "{tmp}/r"]),
        Case(g, "staleness-unknown", [*TRAIN, "--staleness", "bad", "--out", "{tmp}/r"]),
        Case(g, "max-staleness-without-drop", [*TRAIN, "--max-staleness", "5", "--out", "{tmp}/r"]),
        Case(
            g,
            "max-staleness-negative",
            [*TRAIN, "--staleness", "drop", "--max-staleness", "-1", "--out", "{tmp}/r"],
        ),
        Case(g, "drop-without-max", [*TRAIN, "--staleness", "drop", "--out", "{tmp}/r"]),
        Case(g, "eval-every-zero", [*TRAIN, "--eval-every", "0", "--out", "{tmp}/r"]),
        Case(g, "updates-zero", [*TRAIN, "--updates", "0", "--out", "{tmp}/r"]),
        Case(
            g,
            "updates-1e9",
            [*TRAIN, "--updates", "1000000000", "--out", "{tmp}/r"],
            expect="either",
        ),
        Case(
            g,
            "updates-1e18",
            [*TRAIN, "--updates", str(10**18), "--out", "{tmp}/r"],
            expect="either",
        ),
        Case(g, "time-budget-with-updates", [*TRAIN, "--time-budget", "5", "--out", "{tmp}/r"]),
        Case(
            g,
            "time-budget-zero",
            [
                *[a for a in TRAIN if a not in ("--updates", "4")],
                "--time-budget",
                "0",
                "--out",
                "{tmp}/r",
            ],
        ),
        Case(
            g,
            "time-budget-nan",
            [
                *[a for a in TRAIN if a not in ("--updates", "4")],
                "--time-budget",
                "nan",
                "--out",
                "{tmp}/r",
            ],
        ),
        Case(
            g,
            "time-budget-1e18",
            [
                *[a for a in TRAIN if a not in ("--updates", "4")],
                "--time-budget",
                "1e18",
                "--out",
                "{tmp}/r",
            ],
            expect="either",
        ),
        Case(g, "target-nan", [*TRAIN, "--target", "nan", "--out", "{tmp}/r"]),
        Case(g, "plateau-zero", [*TRAIN, "--plateau", "0", "0.1", "--out", "{tmp}/r"]),
        Case(g, "plateau-text", [*TRAIN, "--plateau", "x", "y", "--out", "{tmp}/r"]),
        Case(g, "plateau-negative-delta", [*TRAIN, "--plateau", "5", "-1", "--out", "{tmp}/r"]),
        Case(g, "seed-negative", [*TRAIN, "--seed", "-1", "--out", "{tmp}/r"]),
        Case(g, "device-unknown", [*TRAIN, "--device", "nosuch", "--out", "{tmp}/r"]),
        Case(g, "device-cuda-absent", [*TRAIN, "--device", "cuda", "--out", "{tmp}/r"]),
        Case(g, "dtype-float16", [*TRAIN, "--dtype", "float16", "--out", "{tmp}/r"]),
        Case(g, "out-is-file", [*TRAIN, "--out", "{tmp}/f"], files={"f": "x"}, unchanged=("f",)),
        Case(g, "out-unwritable", [*TRAIN, "--out", "/proc/x/r"]),
        Case(
            g,
            "out-existing-dir",
            [*TRAIN, "--out", "{tmp}/d"],
            files={"d/mine.txt": "x"},
            unchanged=("d/mine.txt",),
        ),
        Case(
            g,
            "overwrite-non-run",
            [*TRAIN, "--out", "{tmp}/d", "--overwrite"],
            files={"d/mine.txt": "x"},
            unchanged=("d/mine.txt",),
        ),
        Case(
            g, "resume-empty", [*TRAIN, "--out", "{tmp}/d", "--resume"], files={"d/mine.txt": "x"}
        ),
        Case(
            g,
            "resume-other-config",
            [*TRAIN, "--lr", "0.7", "--out", "{tmp}/run", "--resume"],
            copy={"run": "run"},
        ),
        Case(g, "resume-and-overwrite", [*TRAIN, "--out", "{tmp}/r", "--resume", "--overwrite"]),
        Case(
            g,
            "n-1e6",
            [*[a for a in TRAIN if a != "2"], "--n", "1000000", "--out", "{tmp}/r"],
            expect="either",
        ),
        Case(
            g,
            "engine-distributed-n-1000",
            [
                *[a for a in TRAIN if a != "2"],
                "--n",
                "1000",
                "--engine",
                "distributed",
                "--out",
                "{tmp}/r",
            ],
        ),
        Case(g, "time-scale-without-engine", [*TRAIN, "--time-scale", "0.1", "--out", "{tmp}/r"]),
        Case(g, "timeout-without-engine", [*TRAIN, "--timeout", "5", "--out", "{tmp}/r"]),
        Case(
            g,
            "time-scale-negative",
            [*TRAIN, "--engine", "distributed", "--time-scale", "-1", "--out", "{tmp}/r"],
        ),
        Case(
            g,
            "time-scale-nan",
            [*TRAIN, "--engine", "distributed", "--time-scale", "nan", "--out", "{tmp}/r"],
        ),
        Case(
            g,
            "timeout-negative",
            [*TRAIN, "--engine", "distributed", "--timeout", "-1", "--out", "{tmp}/r"],
        ),
        Case(g, "engine-unknown", [*TRAIN, "--engine", "nosuch", "--out", "{tmp}/r"]),
        Case(
            g,
            "workload-cifar-no-data",
            [
                "train",
                "--workload",
                "cifar10_resnet",
                "--scheme",
                "sync",
                "--n",
                "2",
                "--updates",
                "2",
                "--no-progress",
                *D,
                "--out",
                "{tmp}/r",
            ],
        ),
        Case(
            g,
            "replica-momentum",
            [
                "train",
                "--workload",
                "logreg",
                "--scheme",
                "easgd",
                "--n",
                "2",
                "--updates",
                "2",
                "--sgd-momentum",
                "0.9",
                *D,
                "--no-progress",
                "--out",
                "{tmp}/r",
            ],
        ),
    ]
    # -------------------------------------------------------------- run
    g = "run"
    cfg = VALID_CONFIG

    def conf_case(name, text, *extra, suffix=".toml", expect="error", **kw):
        return Case(
            g,
            name,
            ["run", "{tmp}/c" + suffix, "--no-progress", "--out", "{tmp}/r", *extra],
            files={"c" + suffix: text},
            expect=expect,
            **kw,
        )

    c += [
        conf_case("valid", cfg, expect="ok"),
        Case(g, "missing-file", ["run", "{tmp}/nosuch.toml", "--out", "{tmp}/r"]),
        Case(g, "directory", ["run", "{tmp}", "--out", "{tmp}/r"]),
        Case(g, "unreadable", ["run", "/proc/x/c.toml", "--out", "{tmp}/r"]),
        conf_case("malformed-toml", "seed = \n[scheme\n"),
        conf_case("empty-file", ""),
        conf_case("binary", "\x00\xff\xfe garbage"),
        conf_case("malformed-json", "{", suffix=".json"),
        conf_case("json-list", "[1, 2]", suffix=".json"),
        conf_case("unknown-top-key", "nosuch = 1\n" + cfg),
        conf_case("missing-scheme", cfg.replace('[scheme]\nname = "sync"\nn = 2\n', "")),
        conf_case("missing-workload", cfg.replace('[workload]\nname = "logreg"\n', "")),
        conf_case("scheme-unknown", cfg.replace('name = "sync"', 'name = "nosuch"')),
        conf_case("scheme-n-string", cfg.replace("n = 2", 'n = "2"')),
        conf_case("scheme-n-float", cfg.replace("n = 2", "n = 2.5")),
        conf_case("scheme-extra-field", cfg.replace("n = 2", "n = 2\nzzz = 1")),
        conf_case(
            "scheme-not-table",
            cfg.replace('[scheme]\nname = "sync"\nn = 2\n', "").replace(
                "updates = 4", 'updates = 4\nscheme = "sync"'
            ),
        ),
        conf_case("lr-string", "lr = 'x'\n" + cfg),
        conf_case("lr-negative", "lr = -1.0\n" + cfg),
        conf_case("lr-nan", "lr = nan\n" + cfg),
        conf_case("lr-list", "lr = [0.1, 0.2]\n" + cfg),
        conf_case("updates-float", cfg.replace("updates = 4", "updates = 4.5")),
        conf_case(
            "updates-1e18", cfg.replace("updates = 4", f"updates = {10**18}"), expect="either"
        ),
        conf_case("updates-overflow", cfg.replace("updates = 4", f"updates = {10**30}")),
        conf_case(
            "updates-and-budget", cfg.replace("updates = 4", "updates = 4\ntime_budget = 1.0")
        ),
        conf_case("workload-unknown-arg", cfg + "nosuch = 1\n"),
        conf_case("workload-arg-table", cfg + "[workload.n_train]\nx = 1\n"),
        conf_case("workload-n-train-zero", cfg + "n_train = 0\n"),
        conf_case("workload-n-train-huge", cfg + f"n_train = {10**12}\n", expect="either"),
        conf_case("engine-unknown", cfg + '[engine]\nname = "nosuch"\n'),
        conf_case(
            "engine-time-scale-negative",
            cfg + '[engine]\nname = "distributed"\ntime_scale = -1.0\n',
        ),
        conf_case("engine-unknown-key", cfg + '[engine]\nname = "replay"\nzzz = 1\n'),
        conf_case(
            "engine-distributed-n-1000",
            cfg.replace("n = 2", "n = 1000") + '[engine]\nname = "distributed"\n',
        ),
        conf_case("plateau-window-zero", cfg + "[plateau]\nwindow = 0\ndelta = 0.1\n"),
        conf_case("plateau-unknown-key", cfg + "[plateau]\nwindow = 2\ndelta = 0.1\nzzz = 1\n"),
        conf_case("seed-negative", cfg.replace("seed = 0", "seed = -1")),
        conf_case("seed-float", cfg.replace("seed = 0", "seed = 1.5")),
        conf_case("device-number", "device = 5\n" + cfg),
        conf_case("dtype-float16", 'dtype = "float16"\n' + cfg),
        conf_case("compute-negative", cfg.replace("expon(loc=1, scale=0.5)", "norm(0, 1)")),
        conf_case("compute-number", cfg.replace('"expon(loc=1, scale=0.5)"', "5")),
        conf_case("comm-unknown", 'comm = "nosuch()"\n' + cfg),
        conf_case("staleness-drop-no-max", 'staleness = "drop"\n' + cfg),
        conf_case("max-staleness-without-drop", "max_staleness = 3\n" + cfg),
        conf_case("eval-every-zero", "eval_every = 0\n" + cfg),
        conf_case("evaluations-zero", "evaluations = 0\n" + cfg),
        conf_case("target-inf", "target = inf\n" + cfg),
        conf_case("nesterov-string", "nesterov = 'yes'\nmomentum = 0.5\n" + cfg),
        conf_case("yaml-suffix", cfg, suffix=".yaml"),
        Case(
            g,
            "resume-complete",
            ["run", "{tmp}/run/config.toml", "--out", "{tmp}/run", "--resume", "--no-progress"],
            copy={"run": "run"},
            expect="ok",
        ),
        Case(
            g,
            "existing-run-no-flag",
            ["run", "{tmp}/run/config.toml", "--out", "{tmp}/run", "--no-progress"],
            copy={"run": "run"},
            unchanged=("run/results.parquet",),
        ),
        Case(
            g,
            "out-is-file",
            ["run", "{fix}/config.toml", "--out", "{tmp}/f"],
            files={"f": "x"},
            unchanged=("f",),
        ),
        Case(g, "out-unwritable", ["run", "{fix}/config.toml", "--out", "/proc/x"]),
        Case(
            g,
            "corrupt-manifest-resume",
            ["run", "{tmp}/run/config.toml", "--out", "{tmp}/run", "--resume", "--no-progress"],
            copy={"run": "run"},
            files={"run/manifest.json": "{not json"},
        ),
        Case(
            g,
            "no-out-engine-replay-timeout",
            ["run", "{fix}/config.toml", "--timeout", "3", "--out", "{tmp}/r"],
        ),
    ]
    # -------------------------------------------------------------- demo
    g = "demo"
    c += [
        Case(g, "machines-one", [*DEMO, "--machines", "1", "--out", "{tmp}/d"]),
        Case(g, "machines-zero", [*DEMO, "--machines", "0", "--out", "{tmp}/d"]),
        Case(
            g,
            "machines-1e9",
            [*DEMO, "--machines", "1000000000", "--out", "{tmp}/d"],
            expect="either",
        ),
        Case(
            g, "machines-1e6", [*DEMO, "--machines", "1000000", "--out", "{tmp}/d"], expect="either"
        ),
        Case(g, "jobs-zero", [*DEMO, "--jobs", "0", "--out", "{tmp}/d"]),
        Case(g, "jobs-negative", [*DEMO, "--jobs", "-1", "--out", "{tmp}/d"]),
        Case(g, "budget-zero", [*DEMO, "--budget-steps", "0", "--out", "{tmp}/d"]),
        Case(g, "budget-negative", [*DEMO, "--budget-steps", "-1", "--out", "{tmp}/d"]),
        Case(g, "budget-nan", [*DEMO, "--budget-steps", "nan", "--out", "{tmp}/d"]),
        Case(g, "budget-inf", [*DEMO, "--budget-steps", "inf", "--out", "{tmp}/d"]),
        Case(
            g, "budget-1e18", [*DEMO, "--budget-steps", "1e18", "--out", "{tmp}/d"], expect="either"
        ),
        Case(
            g, "budget-1e9", [*DEMO, "--budget-steps", "1e9", "--out", "{tmp}/d"], expect="either"
        ),
        Case(g, "workload-unknown", [*DEMO, "--workload", "nosuch", "--out", "{tmp}/d"]),
        Case(g, "lr-negative", [*DEMO, "--lr", "-1", "--out", "{tmp}/d"]),
        Case(g, "lr-nan", [*DEMO, "--lr", "nan", "--out", "{tmp}/d"]),
        Case(g, "dist-negative", [*DEMO, "--dist", "norm(0, 1)", "--out", "{tmp}/d"]),
        Case(g, "dist-missing-csv", [*DEMO, "--dist", "missing.csv", "--out", "{tmp}/d"]),
        Case(g, "dist-array", [*DEMO, "--dist", "expon(loc=[1, 2])", "--out", "{tmp}/d"]),
        Case(g, "seed-negative", [*DEMO, "--seed", "-1", "--out", "{tmp}/d"]),
        Case(g, "out-unwritable", [*DEMO, "--out", "/proc/x"]),
        Case(g, "out-is-file", [*DEMO, "--out", "{tmp}/f"], files={"f": "x"}, unchanged=("f",)),
        Case(
            g,
            "out-holds-other-files",
            [*DEMO, "--budget-steps", "1", "--machines", "2", "--out", "{tmp}/d"],
            files={"d/summary.csv": "mine\n"},
            unchanged=("d/summary.csv",),
        ),
    ]
    # -------------------------------------------------------------- sweep run
    g = "sweep run"
    spec = VALID_SPEC

    def sweep_case(name, text, *extra, expect="error", **kw):
        return Case(
            g,
            name,
            ["sweep", "run", "{tmp}/s.toml", "--out", "{tmp}/o", "--no-progress", *extra],
            files={"s.toml": text},
            expect=expect,
            **kw,
        )

    grid9 = "\n".join(f'"workload.x{i}" = [{", ".join(map(str, range(10)))}]' for i in range(9))
    c += [
        sweep_case("valid", spec, "--jobs", "1", expect="ok"),
        Case(g, "missing-spec", ["sweep", "run", "{tmp}/nosuch.toml", "--out", "{tmp}/o"]),
        Case(g, "spec-directory", ["sweep", "run", "{tmp}", "--out", "{tmp}/o"]),
        Case(g, "spec-unreadable", ["sweep", "run", "/proc/x.toml", "--out", "{tmp}/o"]),
        sweep_case("malformed-toml", "[base\n"),
        sweep_case("empty-spec", ""),
        sweep_case("unknown-top-key", "zzz = 1\n" + spec),
        sweep_case("engine-at-top", '[engine]\nname = "replay"\n' + spec),
        sweep_case("grid-not-list", spec.replace("lr = [0.1, 0.2]", "lr = 0.1")),
        sweep_case("grid-empty-list", spec.replace("lr = [0.1, 0.2]", "lr = []")),
        sweep_case("grid-bad-value", spec.replace("lr = [0.1, 0.2]", 'lr = ["x"]')),
        sweep_case("grid-unknown-field", spec.replace("lr = [0.1, 0.2]", "zzz = [1, 2]")),
        sweep_case("grid-1e9-points", spec.replace("[grid]\nlr = [0.1, 0.2]", "[grid]\n" + grid9)),
        sweep_case(
            "grid-1e5-plus-1",
            spec.replace("lr = [0.1, 0.2]", f"seed = [{', '.join(map(str, range(100001)))}]"),
        ),
        sweep_case(  # valid work, far longer than a probe: it must start and stop cleanly
            "grid-1e4-points",
            spec.replace("lr = [0.1, 0.2]", f"seed = [{', '.join(map(str, range(10000)))}]"),
            "--jobs",
            "1",
            signal=(signal.SIGINT, 20.0, False),
            timeout=60,
        ),
        sweep_case(
            "random-count-1e9",
            spec + "[random]\ncount = 1000000000\n[random.axes.lr]\nlow = 0.01\nhigh = 1.0\n",
        ),
        sweep_case(
            "random-low-above-high",
            spec + "[random]\ncount = 2\n[random.axes.lr]\nlow = 1.0\nhigh = 0.01\n",
        ),
        sweep_case(
            "random-log-zero",
            spec + "[random]\ncount = 2\n[random.axes.lr]\nlow = 0.0\nhigh = 1.0\nlog = true\n",
        ),
        sweep_case(
            "random-nan-low",
            spec + "[random]\ncount = 2\n[random.axes.lr]\nlow = nan\nhigh = 1.0\n",
        ),
        sweep_case("random-no-count", spec + "[random.axes.lr]\nlow = 0.01\nhigh = 1.0\n"),
        sweep_case(
            "random-sequence-unknown",
            spec + '[random]\ncount = 2\nsequence = "grid"\n'
            "[random.axes.lr]\nlow = 0.01\nhigh = 1.0\n",
        ),
        sweep_case("random-unknown-key", spec + "[random]\ncount = 2\nzzz = 1\n"),
        sweep_case(
            "random-axis-unknown-key",
            spec + "[random]\ncount = 2\n[random.axes.lr]\nlow = 0.01\nhigh = 1.0\nzzz = 1\n",
        ),
        sweep_case(
            "random-axis-bad-field",
            spec + "[random]\ncount = 2\n[random.axes.zzz]\nlow = 0.01\nhigh = 1.0\n",
        ),
        sweep_case(
            "base-missing-scheme", spec.replace('[base.scheme]\nname = "sync"\nn = 2\n', "")
        ),
        sweep_case("base-lr-negative", spec.replace("updates = 4", "updates = 4\nlr = -1.0")),
        sweep_case("base-unknown-key", spec.replace("updates = 4", "updates = 4\nzzz = 1")),
        sweep_case("skip-invalid-bad", 'skip_invalid = "momentum"\n' + spec),
        sweep_case("protocol-unknown-key", spec + "[protocol]\nzzz = 1\n"),
        sweep_case("protocol-unknown-name", spec + '[protocol]\nnames = ["nosuch"]\n'),
        sweep_case("jobs-zero", spec, "--jobs", "0"),
        sweep_case("jobs-negative", spec, "--jobs", "-3"),
        sweep_case("jobs-1e9", spec, "--jobs", "1000000000", expect="ok"),
        sweep_case("executor-unknown", spec, "--executor", "nosuch"),
        sweep_case(
            "submitit-slurm-absent", spec, "--executor", "submitit", "--submitit-cluster", "slurm"
        ),
        sweep_case("ray-bad-address", spec, "--executor", "ray", "--address", "127.0.0.1:1"),
        sweep_case(
            "distributed-n-1000",
            spec.replace("n = 2", "n = 1000") + '[base.engine]\nname = "distributed"\n',
        ),
        sweep_case(
            "kasync-k-above-n-in-grid",
            spec.replace("lr = [0.1, 0.2]", '"scheme" = [{ name = "kasync", n = 2, k = 3 }]'),
        ),
        Case(
            g,
            "out-is-file",
            ["sweep", "run", "{fix}/spec.toml", "--out", "{tmp}/f", "--no-progress"],
            files={"f": "x"},
            unchanged=("f",),
        ),
        Case(
            g,
            "out-unwritable",
            ["sweep", "run", "{fix}/spec.toml", "--out", "/proc/x", "--no-progress"],
        ),
        Case(
            g,
            "out-holds-other-files",
            ["sweep", "run", "{fix}/spec.toml", "--out", "{tmp}/o", "--no-progress", "--jobs", "1"],
            files={"o/spec.toml": "mine", "o/notes.txt": "mine"},
            unchanged=("o/spec.toml", "o/notes.txt"),
        ),
        Case(
            g,
            "rerun-complete",
            [
                "sweep",
                "run",
                "{fix}/spec.toml",
                "--out",
                "{tmp}/sweep",
                "--no-progress",
                "--jobs",
                "1",
            ],
            copy={"sweep": "sweep"},
            expect="ok",
        ),
    ]
    # -------------------------------------------------------------- sweep status/report/export
    for sub in ("status", "report", "export"):
        g = f"sweep {sub}"
        dest = ["--dest", "{tmp}/dest"] if sub == "export" else []
        c += [
            Case(
                g,
                "valid",
                ["sweep", sub, "{tmp}/sweep", *dest],
                copy={"sweep": "sweep"},
                expect="ok",
            ),
            Case(g, "missing-dir", ["sweep", sub, "{tmp}/nosuch", *dest]),
            Case(g, "a-file", ["sweep", sub, "{tmp}/f", *dest], files={"f": "x"}),
            Case(g, "not-a-sweep", ["sweep", sub, "{tmp}/d", *dest], files={"d/x.txt": "x"}),
            Case(g, "empty-dir", ["sweep", sub, "{tmp}/d", *dest], files={"d/.keep": ""}),
            Case(g, "unreadable", ["sweep", sub, "/proc/x", *dest]),
            Case(
                g,
                "corrupt-spec",
                ["sweep", sub, "{tmp}/sweep", *dest],
                copy={"sweep": "sweep"},
                files={"sweep/spec.toml": "[base\n"},
            ),
            Case(
                g,
                "runs-is-file",
                ["sweep", sub, "{tmp}/s", *dest],
                files={"s/runs": "x", "s/spec.toml": VALID_SPEC},
            ),
        ]
    g = "sweep report"
    c += [
        Case(
            g,
            "dest-unwritable",
            ["sweep", "report", "{tmp}/sweep", "--dest", "/proc/x"],
            copy={"sweep": "sweep"},
        ),
        Case(
            g,
            "dest-is-file",
            ["sweep", "report", "{tmp}/sweep", "--dest", "{tmp}/f"],
            copy={"sweep": "sweep"},
            files={"f": "x"},
            unchanged=("f",),
        ),
        Case(
            g,
            "export-folder",
            ["sweep", "report", "{tmp}/export"],
            copy={"export": "export"},
            expect="either",
        ),
    ]
    g = "sweep export"
    c += [
        Case(g, "dest-missing-flag", ["sweep", "export", "{tmp}/sweep"], copy={"sweep": "sweep"}),
        Case(
            g,
            "dest-unwritable",
            ["sweep", "export", "{tmp}/sweep", "--dest", "/proc/x"],
            copy={"sweep": "sweep"},
        ),
        Case(
            g,
            "dest-is-file",
            ["sweep", "export", "{tmp}/sweep", "--dest", "{tmp}/f"],
            copy={"sweep": "sweep"},
            files={"f": "x"},
            unchanged=("f",),
        ),
        Case(
            g,
            "dest-holds-other-export",
            ["sweep", "export", "{tmp}/sweep", "--dest", "{tmp}/dest"],
            copy={"sweep": "sweep"},
            files={"dest/summary.csv": "mine\n"},
            unchanged=("dest/summary.csv",),
        ),
        Case(
            g,
            "dest-is-sweep",
            ["sweep", "export", "{tmp}/sweep", "--dest", "{tmp}/sweep"],
            copy={"sweep": "sweep"},
        ),
    ]
    # -------------------------------------------------------------- distributed
    g = "distributed"
    dbase = ["distributed", "--workload", "logreg", "--updates", "4", "--no-progress"]
    c += [
        Case(g, "valid", [*DIST, "--out", "{tmp}/r"], expect="ok", timeout=120),
        Case(g, "n-1000", [*dbase, "--scheme", "sync", "--n", "1000", "--out", "{tmp}/r"]),
        Case(g, "async-n-1e6", [*dbase, "--scheme", "async", "--n", "1000000", "--out", "{tmp}/r"]),
        Case(g, "n-zero", [*dbase, "--scheme", "sync", "--n", "0", "--out", "{tmp}/r"]),
        Case(g, "updates-zero", [*DIST, "--updates", "0", "--out", "{tmp}/r"]),
        Case(g, "updates-negative", [*DIST, "--updates", "-1", "--out", "{tmp}/r"]),
        Case(
            g,
            "updates-1e9",
            [*DIST, "--updates", "1000000000", "--out", "{tmp}/r"],
            expect="either",
        ),
        Case(g, "time-scale-negative", [*DIST, "--time-scale", "-1", "--out", "{tmp}/r"]),
        Case(g, "time-scale-nan", [*DIST, "--time-scale", "nan", "--out", "{tmp}/r"]),
        Case(g, "time-scale-inf", [*DIST, "--time-scale", "inf", "--out", "{tmp}/r"]),
        Case(
            g, "time-scale-1e9", [*DIST, "--time-scale", "1e9", "--out", "{tmp}/r"], expect="either"
        ),
        Case(g, "timeout-zero", [*DIST, "--timeout", "0", "--out", "{tmp}/r"]),
        Case(g, "timeout-negative", [*DIST, "--timeout", "-1", "--out", "{tmp}/r"]),
        Case(g, "timeout-nan", [*DIST, "--timeout", "nan", "--out", "{tmp}/r"]),
        Case(g, "dist-negative", [*DIST, "--dist", "norm(0, 1)", "--out", "{tmp}/r"]),
        Case(g, "dist-array", [*DIST, "--dist", "expon(loc=[1, 2])", "--out", "{tmp}/r"]),
        Case(g, "dist-missing-csv", [*DIST, "--dist", "missing.csv", "--out", "{tmp}/r"]),
        Case(g, "max-ranks-zero", [*DIST, "--max-ranks", "0", "--out", "{tmp}/r"]),
        Case(g, "max-ranks-negative", [*DIST, "--max-ranks", "-1", "--out", "{tmp}/r"]),
        Case(g, "workload-unknown", [*DIST, "--workload", "nosuch", "--out", "{tmp}/r"]),
        Case(g, "lr-nan", [*DIST, "--lr", "nan", "--out", "{tmp}/r"]),
        Case(g, "lr-negative", [*DIST, "--lr", "-1", "--out", "{tmp}/r"]),
        Case(g, "eval-every-zero", [*DIST, "--eval-every", "0", "--out", "{tmp}/r"]),
        Case(g, "seed-negative", [*DIST, "--seed", "-1", "--out", "{tmp}/r"]),
        Case(g, "out-is-file", [*DIST, "--out", "{tmp}/f"], files={"f": "x"}, unchanged=("f",)),
        Case(g, "out-unwritable", [*DIST, "--out", "/proc/x"]),
        Case(
            g,
            "out-existing-run",
            [*DIST, "--out", "{tmp}/run"],
            copy={"run": "run"},
            unchanged=("run/results.parquet",),
        ),
        Case(
            g,
            "out-holds-other-files",
            [*DIST, "--out", "{tmp}/d"],
            files={"d/mine.txt": "x"},
            unchanged=("d/mine.txt",),
        ),
        Case(
            g,
            "kasync-k-above-n",
            [*dbase, "--scheme", "kasync", "--n", "2", "--k", "3", "--out", "{tmp}/r"],
        ),
        Case(g, "comm-flag", [*DIST, "--comm", "none", "--out", "{tmp}/r"]),
    ]
    # -------------------------------------------------------------- signals
    g = "signals"
    for cmd, argv in (
        ("theory", [*STEP, *D]),
        ("simulate", SIM),
        ("train", [*TRAIN, "--out", "{tmp}/r"]),
        ("run", ["run", "{fix}/config.toml", "--out", "{tmp}/r", "--no-progress"]),
        ("demo", [*DEMO, "--out", "{tmp}/d"]),
        ("sweep", ["sweep", "run", "{fix}/spec.toml", "--out", "{tmp}/o", "--no-progress"]),
        ("distributed", [*DIST, "--out", "{tmp}/r"]),
    ):
        for after in (0.15, 0.6):
            c.append(Case(g, f"sigint-{cmd}-{after}s", argv, signal=(signal.SIGINT, after, False)))
        c.append(Case(g, f"sigterm-{cmd}-0.6s", argv, signal=(signal.SIGTERM, 0.6, False)))
    c += [
        Case(
            g,
            "sigint-group-sweep-3s",
            ["sweep", "run", "{fix}/spec.toml", "--out", "{tmp}/o", "--no-progress", "--jobs", "2"],
            signal=(signal.SIGINT, 3.0, True),
        ),
        Case(
            g,
            "sigint-runner-sweep-3s",
            ["sweep", "run", "{fix}/spec.toml", "--out", "{tmp}/o", "--no-progress", "--jobs", "2"],
            signal=(signal.SIGINT, 3.0, False),
        ),
        Case(
            g,
            "sigint-train-5s",
            [*TRAIN, "--updates", "3000", "--out", "{tmp}/r"],
            signal=(signal.SIGINT, 5.0, False),
        ),
    ]
    return c


def api_cases() -> list[Case]:
    c: list[Case] = []
    imp = "from toolkit.runs import RunConfig, run\nfrom toolkit.schemes import *\n"
    good = "cfg = RunConfig(scheme=Sync(2), workload='logreg', updates=4)\n"
    # -------------------------------------------------------------- RunConfig
    g = "RunConfig"
    for name, kwargs in {
        "scheme-string": "scheme='sync'",
        "scheme-none": "scheme=None",
        "workload-number": "scheme=Sync(2), workload=5",
        "workload-unknown": "scheme=Sync(2), workload='nosuch'",
        "workload-args-list": "scheme=Sync(2), workload='logreg', workload_args=[1]",
        "workload-args-unknown": "scheme=Sync(2), workload='logreg', workload_args={'zzz': 1}",
        "workload-args-object": "scheme=Sync(2), workload='logreg', "
        "workload_args={'n_train': object()}",
        "compute-number": "scheme=Sync(2), compute=5",
        "compute-negative": "scheme=Sync(2), compute='norm(0, 1)'",
        "comm-number": "scheme=Sync(2), comm=5",
        "lr-string": "scheme=Sync(2), lr='0.1'",
        "lr-nan": "scheme=Sync(2), lr=float('nan')",
        "lr-bool": "scheme=Sync(2), lr=True",
        "momentum-one": "scheme=Sync(2), momentum=1.0",
        "nesterov-string": "scheme=Sync(2), momentum=0.5, nesterov='yes'",
        "batch-size-float": "scheme=Sync(2), batch_size=2.5",
        "staleness-number": "scheme=Sync(2), staleness=5",
        "drop-no-max": "scheme=Sync(2), staleness='drop'",
        "max-staleness-negative": "scheme=Sync(2), staleness='drop', max_staleness=-1",
        "max-staleness-without-drop": "scheme=Sync(2), max_staleness=3",
        "updates-bool": "scheme=Sync(2), updates=True",
        "updates-float": "scheme=Sync(2), updates=1.5",
        "updates-and-budget": "scheme=Sync(2), updates=3, time_budget=1.0",
        "time-budget-inf": "scheme=Sync(2), time_budget=float('inf')",
        "target-string": "scheme=Sync(2), target='x'",
        "plateau-bad": "scheme=Sync(2), plateau={'window': 0, 'delta': 0.1}",
        "plateau-number": "scheme=Sync(2), plateau=5",
        "engine-unknown": "scheme=Sync(2), engine='nosuch'",
        "engine-negative-scale": "scheme=Sync(2), engine={'name': 'distributed', 'time_scale': -1}",
        "eval-every-zero": "scheme=Sync(2), eval_every=0",
        "evaluations-and-eval-every": "scheme=Sync(2), evaluations=3, eval_every=2",
        "seed-negative": "scheme=Sync(2), seed=-1",
        "seed-string": "scheme=Sync(2), seed='0'",
        "device-none": "scheme=Sync(2), device=None",
        "dtype-float16": "scheme=Sync(2), dtype='float16'",
        "easgd-momentum": "scheme=EASGD(2, 2, 0.1), momentum=0.9",
    }.items():
        c.append(Case(g, name, code=f"{imp}RunConfig({kwargs})"))
    c += [
        Case(g, "valid", code=f"{imp}{good}print(cfg.id())", expect="ok"),
        Case(g, "no-arguments", code=f"{imp}RunConfig()", accept=("TypeError",)),
        Case(g, "replace-bad", code=f"{imp}{good}cfg.replace(lr=-1)"),
        Case(g, "replace-unknown", code=f"{imp}{good}cfg.replace(zzz=1)", accept=("TypeError",)),
    ]
    # -------------------------------------------------------------- from_toml / from_dict / load
    g = "RunConfig.from_*"
    for name, text in {
        "empty": "",
        "malformed": "x = \n",
        "unclosed-table": "[scheme\n",
        "unknown-key": "zzz = 1\n" + VALID_CONFIG,
        "no-workload": VALID_CONFIG.replace('[workload]\nname = "logreg"\n', ""),
        "scheme-string": 'scheme = "sync"\n[workload]\nname = "logreg"\n',
        "scheme-no-name": "[scheme]\nn = 2\n[workload]\nname = 'logreg'\n",
        "scheme-name-number": "[scheme]\nname = 5\n[workload]\nname = 'logreg'\n",
        "int-overflow": VALID_CONFIG.replace("updates = 4", f"updates = {10**30}"),
        "float-overflow": VALID_CONFIG.replace("updates = 4", "time_budget = 1e400"),
        "lr-nan": "lr = nan\n" + VALID_CONFIG,
        "workload-arg-huge": VALID_CONFIG + f"n_train = {10**15}\n",
    }.items():
        c.append(Case(g, f"toml-{name}", code=f"{imp}RunConfig.from_toml({text!r})"))
    c += [
        Case(
            g,
            "toml-valid",
            code=f"{imp}print(RunConfig.from_toml({VALID_CONFIG!r}).id())",
            expect="ok",
        ),
        Case(g, "toml-not-text", code=f"{imp}RunConfig.from_toml(5)"),
        Case(g, "toml-bytes", code=f"{imp}RunConfig.from_toml(b'seed = 0')"),
        Case(g, "dict-none", code=f"{imp}RunConfig.from_dict(None)"),
        Case(g, "dict-list", code=f"{imp}RunConfig.from_dict([1, 2])"),
        Case(
            g,
            "dict-scheme-n-string",
            code=f"{imp}RunConfig.from_dict("
            "{'scheme': {'name': 'sync', 'n': '4'}, 'workload': 'logreg'})",
        ),
        Case(
            g,
            "dict-scheme-extra",
            code=f"{imp}RunConfig.from_dict("
            "{'scheme': {'name': 'sync', 'n': 4, 'zzz': 1}, 'workload': 'logreg'})",
        ),
        Case(
            g,
            "dict-workload-number",
            code=f"{imp}RunConfig.from_dict("
            "{'scheme': {'name': 'sync', 'n': 4}, 'workload': 5})",
        ),
        Case(
            g,
            "dict-workload-no-name",
            code=f"{imp}RunConfig.from_dict("
            "{'scheme': {'name': 'sync', 'n': 4}, 'workload': {'n_train': 5}})",
        ),
        Case(
            g,
            "dict-plateau-list",
            code=f"{imp}RunConfig.from_dict("
            "{'scheme': {'name': 'sync', 'n': 4}, 'workload': 'logreg', 'plateau': [1, 2]})",
        ),
        Case(
            g,
            "dict-engine-list",
            code=f"{imp}RunConfig.from_dict("
            "{'scheme': {'name': 'sync', 'n': 4}, 'workload': 'logreg', 'engine': [1]})",
        ),
        Case(g, "json-malformed", code=f"{imp}RunConfig.from_json('{{')"),
        Case(g, "json-number", code=f"{imp}RunConfig.from_json('5')"),
        Case(g, "load-missing", code=f"{imp}RunConfig.load('nosuch.toml')"),
        Case(g, "load-directory", code=f"{imp}RunConfig.load('.')"),
        Case(g, "load-proc", code=f"{imp}RunConfig.load('/proc/x/c.toml')"),
        Case(g, "load-number", code=f"{imp}RunConfig.load(5)"),
        Case(
            g,
            "load-binary",
            code=f"{imp}RunConfig.load('{{tmp}}/b.toml')",
            files={"b.toml": "\x00\xff"},
        ),
    ]
    # -------------------------------------------------------------- toolkit.runs.run
    g = "runs.run"
    c += [
        Case(g, "valid", code=f"{imp}{good}print(run(cfg).status)", expect="ok"),
        Case(g, "config-string", code=f"{imp}run('config.toml')"),
        Case(g, "config-dict", code=f"{imp}run({{'scheme': {{'name': 'sync', 'n': 2}}}})"),
        Case(g, "out-number", code=f"{imp}{good}run(cfg, 123)"),
        Case(g, "out-unwritable", code=f"{imp}{good}run(cfg, '/proc/x')"),
        Case(
            g,
            "out-is-file",
            code=f"{imp}{good}run(cfg, '{{tmp}}/f')",
            files={"f": "x"},
            unchanged=("f",),
        ),
        Case(
            g,
            "out-holds-other-files",
            code=f"{imp}{good}run(cfg, '{{tmp}}/d')",
            files={"d/mine.txt": "x"},
            unchanged=("d/mine.txt",),
        ),
        Case(
            g,
            "resume-and-overwrite",
            code=f"{imp}{good}run(cfg, '{{tmp}}/r', resume=True, overwrite=True)",
        ),
        Case(g, "replay-timeout", code=f"{imp}{good}run(cfg, timeout=5)"),
        Case(
            g,
            "updates-1e9",
            code=f"{imp}run(RunConfig(scheme=Sync(2), workload='logreg', updates=10**9))",
            expect="either",
        ),
        Case(
            g,
            "updates-1e18",
            code=f"{imp}run(RunConfig(scheme=Sync(2), workload='logreg', updates=10**18))",
            expect="either",
        ),
        Case(
            g,
            "n-1e6",
            code=f"{imp}run(RunConfig(scheme=Sync(10**6), workload='logreg', updates=2))",
            expect="either",
        ),
        Case(
            g,
            "batch-above-data",
            code=f"{imp}run(RunConfig(scheme=Sync(2), workload='logreg', "
            "updates=2, batch_size=10**9))",
        ),
        Case(
            g,
            "distributed-n-1000",
            code=f"{imp}run(RunConfig(scheme=Sync(1000), "
            "workload='logreg', updates=2, engine='distributed'))",
        ),
        Case(
            g,
            "resume-other",
            code=f"{imp}run(RunConfig(scheme=Sync(2), workload='logreg', "
            "updates=5), '{tmp}/run', resume=True)",
            copy={"run": "run"},
        ),
        Case(
            g,
            "resume-complete",
            code=f"{imp}print(run(RunConfig.load('{{tmp}}/run/config.toml'"
            "), '{tmp}/run', resume=True).status)",
            copy={"run": "run"},
            expect="ok",
        ),
        Case(g, "progress-string", code=f"{imp}{good}run(cfg, progress='yes')", expect="either"),
        Case(
            g,
            "cifar-no-data",
            code=f"{imp}run(RunConfig(scheme=Sync(2), workload='cifar10_resnet', updates=2))",
        ),
    ]
    # -------------------------------------------------------------- toolkit.replay.train
    g = "replay.train"
    sched = (
        "import scipy.stats as st\nfrom toolkit.cluster import simulate\n"
        "from toolkit.replay import train\nfrom toolkit.schemes import *\n"
        "s = simulate(Sync(2), st.expon(1, 0.5), updates=4)\n"
    )
    for name, call in {
        "schedule-none": "train(None, 'logreg')",
        "schedule-string": "train('schedule', 'logreg')",
        "workload-unknown": "train(s, 'nosuch')",
        "workload-number": "train(s, 5)",
        "lr-negative": "train(s, 'logreg', -1)",
        "lr-nan": "train(s, 'logreg', float('nan'))",
        "lr-string": "train(s, 'logreg', 'x')",
        "batch-zero": "train(s, 'logreg', batch_size=0)",
        "batch-1e9": "train(s, 'logreg', batch_size=10**9)",
        "staleness-unknown": "train(s, 'logreg', staleness='bad')",
        "max-staleness-negative": "train(s, 'logreg', staleness='drop', max_staleness=-1)",
        "eval-every-zero": "train(s, 'logreg', eval_every=0)",
        "seed-negative": "train(s, 'logreg', seed=-1)",
        "momentum-2": "train(s, 'logreg', momentum=2.0)",
        "scheme-mismatch": "train(s, 'logreg', scheme=Sync(3))",
        "scheme-string": "train(s, 'logreg', scheme='sync')",
        "stop-not-callable": "train(s, 'logreg', stop=5)",
        "memory-string": "train(s, 'logreg', memory='x')",
        "runtime-string": "train(s, 'logreg', runtime='x')",
        "continuation-string": "train(s, 'logreg', continuation='x')",
        "device-unknown": "from toolkit.replay import Runtime\n"
        "train(s, 'logreg', runtime=Runtime(device='nosuch'))",
        "empty-schedule": "train(s.until(0.0), 'logreg')",
    }.items():
        c.append(Case(g, name, code=sched + call))
    c.append(Case(g, "valid", code=sched + "print(train(s, 'logreg').status)", expect="ok"))
    c.append(
        Case(g, "lr-1e18", code=sched + "print(train(s, 'logreg', 1e18).status)", expect="either")
    )
    # -------------------------------------------------------------- toolkit.cluster.simulate
    g = "cluster.simulate"
    sim = "import numpy as np, scipy.stats as st\nfrom toolkit.cluster import simulate\n"
    sim += "from toolkit.schemes import *\nd = st.expon(1, 0.5)\n"
    for name, call in {
        "scheme-string": "simulate('sync', d)",
        "compute-string-bad": "simulate(Sync(2), 'expon')",
        "compute-none": "simulate(Sync(2), None)",
        "compute-negative": "simulate(Sync(2), st.norm(0, 1))",
        "compute-array-args": "simulate(Sync(2), st.expon(loc=[1, 2]))",
        "compute-wrong-length": "simulate(Sync(3), [d, d])",
        "trace-negative": "simulate(Sync(2), np.full((2, 5), -1.0))",
        "trace-empty": "simulate(Sync(2), np.ones((2, 0)))",
        "trace-nan": "simulate(Sync(2), np.full((2, 5), np.nan))",
        "updates-zero": "simulate(Sync(2), d, updates=0)",
        "updates-float": "simulate(Sync(2), d, updates=1.5)",
        "updates-1e18": "simulate(Sync(2), d, updates=10**18)",
        "seed-negative": "simulate(Sync(2), d, seed=-1)",
        "seed-float": "simulate(Sync(2), d, seed=0.5)",
        "comm-string": "simulate(Sync(2), d, comm='x')",
        "failures-string": "simulate(Sync(2), d, failures='x')",
        "sync-1e7": "simulate(Sync(10**7), d, updates=10)",
        "async-1e6-1e8": "simulate(Async(10**6), d, updates=10**8)",
        "kbatchsync-1e6": "simulate(KBatchSync(10**6, 10**6), d, updates=100)",
    }.items():
        expect = "either" if name in ("sync-1e7", "async-1e6-1e8", "kbatchsync-1e6") else "error"
        c.append(Case(g, name, code=sim + call, expect=expect))
    c.append(
        Case(
            g, "valid", code=sim + "print(len(simulate(Sync(2), d, updates=5).frame))", expect="ok"
        )
    )
    # -------------------------------------------------------------- toolkit.theory
    g = "theory"
    th = "import numpy as np, scipy.stats as st\nfrom toolkit.theory import *\n"
    th += "from toolkit.schemes import *\nd = st.expon(1, 0.5)\n"
    either = {
        "order-n-1e18",
        "order-lognorm-1e12",
        "optimal-backups-1e9",
        "mva-1e9",
        "step-time-async-1e7",
        "kbatch-1e9",
        "delayed-threshold-1e9",
        "easgd-p-1e9",
        "staleness-threshold-1e6",
        "derive-n-1e6",
        "expected-max-cauchy",
    }
    valid = {  # valid input with a right answer
        "kbatch-k-above",  # k > n: workers restart on new batches (Dutta et al. 2018, sec. 3)
        "variance-pareto",  # Var of the max of Pareto(1.5) is infinite: inf is the answer
    }
    for name, call in {
        "step-time-negative-support": "step_time(Sync(2), st.norm(0, 1))",
        "step-time-scheme-string": "step_time('sync', d)",
        "step-time-dist-string": "step_time(Sync(2), 'expon')",
        "step-time-array-dist": "step_time(Sync(2), st.expon(loc=[1, 2]))",
        "step-time-async-1e7": "step_time(Async(10**7), d)",
        "step-time-estimate-samples-zero": "step_time_estimate(Async(4), d, samples=0)",
        "throughput-samples-negative": "throughput(KAsync(4, 2), d, samples=-1)",
        "order-k-zero": "expected_order_statistic(d, 0, 5)",
        "order-k-above-n": "expected_order_statistic(d, 5, 4)",
        "order-k-float": "expected_order_statistic(d, 1.5, 4)",
        "order-shape-mismatch": "expected_order_statistic(d, [1, 2], [2, 3, 4])",
        "order-n-1e18": "expected_order_statistic(d, 10**18, 10**18)",
        "order-n-above-int64": "expected_order_statistic(d, 1, 10**30)",
        "order-lognorm-1e12": "expected_order_statistic(st.lognorm(0.5), 10**12, 10**12)",
        "order-huge-array": "expected_order_statistic(st.lognorm(0.5), np.arange(1, 10**8), 10**8)",
        "expected-max-cauchy": "print(expected_max(st.cauchy(), 10))",
        "variance-pareto": "print(order_statistic_variance(st.pareto(1.5), 10, 10))",
        "harmonic-negative": "harmonic_difference(-1, 2)",
        "optimal-backups-zero": "optimal_backups(0, d)",
        "optimal-backups-1e9": "optimal_backups(10**9, d)",
        "optimal-backups-string": "optimal_backups('8', d)",
        "mva-negative": "mva(-1, 1.0, 1.0)",
        "mva-1e9": "mva(10**9, 1.0, 1.0)",
        "mva-nan": "mva(10, float('nan'), 1.0)",
        "saturation-zero": "saturation_point(0.0, 0.0)",
        "ps-bounds-negative": "ps_bounds(-1, 1.0, 1.0)",
        "delayed-threshold-negative": "delayed_gd_threshold(-1)",
        "delayed-threshold-1e9": "print(delayed_gd_threshold(10**9))",
        "staleness-threshold-empty": "staleness_threshold([])",
        "staleness-threshold-not-pmf": "staleness_threshold([0.5, 0.6])",
        "staleness-threshold-negative": "staleness_threshold([-1.0, 2.0])",
        "staleness-threshold-1e6": "staleness_threshold(np.full(10**6, 1e-6))",
        "easgd-radius-p-zero": "easgd_spectral_radius(eta=0.1, alpha=0.1, p=0)",
        "easgd-radius-nan": "easgd_spectral_radius(eta=float('nan'), alpha=0.1, p=4)",
        "easgd-p-1e9": "easgd_spectral_radius(eta=0.1, alpha=0.1, p=10**9)",
        "easgd-region-string": "easgd_stable_region(eta='x', alpha=0.1, p=4)",
        "admm-huge-grid": "admm_round_robin_spectral_radius(eta=np.ones(10**8), alpha=0.1, p=8)",
        "kbatch-k-above": "kbatch_sync_time(4, 5, d)",
        "kbatch-1e9": "kbatch_sync_time(10**9, 10**9, d)",
        "extreme-table-zero": "extreme_value_table(d, ns=[0])",
        "tail-exponent-string": "tail_exponent('x')",
        "layerwise-negative": "layerwise_step_time([-1.0], None)",
        "staleness-aware-negative": "staleness_aware_lr(-1.0, 3)",
        "implicit-momentum-bad": "implicit_momentum(0)",
        "lian-bad": "lian_max_staleness(-1, 1)",
        "derive-n-1e6": "derive_closed_forms(n_max=10**6)",
        "derive-n-zero": "derive_closed_forms(n_max=0)",
        "schedule-threshold-empty": "schedule_threshold([], [])",
        "groups-empty": "order_statistics_groups([], 1)",
        "runtime-bad": "runtime(Sync(2), -1)",
        "tradeoff-bad": "tradeoff(None, None)",
        "kasync-bound-bad": "kasync_bound(5, 0, d)",
    }.items():
        expect = "either" if name in either else "error"
        if name in valid:
            expect = "ok"
        accept = (
            ("TypeError",)
            if name
            in (
                "runtime-bad",
                "tradeoff-bad",
                "implicit-momentum-bad",
                "lian-bad",
                "kasync-bound-bad",
            )
            else ()
        )
        c.append(Case(g, name, code=th + call, expect=expect, accept=accept))
    c.append(Case(g, "valid", code=th + "print(step_time(Backup(4, 1), d))", expect="ok"))
    # -------------------------------------------------------------- sweeps
    g = "sweeps"
    sw = "from toolkit.sweeps import SweepSpec, load, status, report, export\n"
    for name, text in {
        "empty": "",
        "malformed": "[base\n",
        "unknown-key": "zzz = 1\n" + VALID_SPEC,
        "grid-huge": VALID_SPEC.replace(
            "[grid]\nlr = [0.1, 0.2]",
            "[grid]\n"
            + "\n".join(f'"workload.x{i}" = [{", ".join(map(str, range(10)))}]' for i in range(9)),
        ),
        "random-count-huge": VALID_SPEC + "[random]\ncount = 1000000000\n"
        "[random.axes.lr]\nlow = 0.01\nhigh = 1.0\n",
        "grid-not-table": VALID_SPEC.replace("[grid]\nlr = [0.1, 0.2]", "grid = 5"),
        "base-not-table": 'base = "x"\n',
        "axes-not-table": VALID_SPEC + "[random]\ncount = 2\naxes = 5\n",
        "axis-string-low": VALID_SPEC + "[random]\ncount = 2\n[random.axes.lr]\nlow = 'a'\n"
        "high = 1.0\n",
        "count-negative": VALID_SPEC + "[random]\ncount = -1\n[random.axes.lr]\nlow = 0.1\n"
        "high = 1.0\n",
        "skip-invalid-number": "skip_invalid = 5\n" + VALID_SPEC,
        "protocol-not-table": "protocol = 5\n" + VALID_SPEC,
        "name-table": "[name]\nx = 1\n" + VALID_SPEC,
    }.items():
        c.append(Case(g, f"spec-{name}", code=f"{sw}SweepSpec.from_toml({text!r})"))
    c += [
        Case(
            g,
            "spec-valid",
            code=f"{sw}print(SweepSpec.from_toml({VALID_SPEC!r}).size)",
            expect="ok",
        ),
        Case(g, "spec-not-text", code=f"{sw}SweepSpec.from_toml(None)"),
        Case(g, "spec-grid-dict-wrong", code=f"{sw}SweepSpec(base={{}}, grid={{'lr': 5}})"),
        Case(g, "spec-base-none", code=f"{sw}SweepSpec(base=None)"),
        Case(g, "spec-load-missing", code=f"{sw}SweepSpec.load('nosuch.toml')"),
        Case(g, "load-missing", code=f"{sw}load('/nonexistent')"),
        Case(g, "load-file", code=f"{sw}load('{{tmp}}/f')", files={"f": "x"}),
        Case(g, "load-not-sweep", code=f"{sw}load('{{tmp}}')", files={"x.txt": "x"}),
        Case(g, "load-number", code=f"{sw}load(5)"),
        Case(g, "load-valid", code=f"{sw}print(len(load('{{fix}}/sweep')[1]))", expect="ok"),
        Case(g, "load-export", code=f"{sw}print(len(load('{{fix}}/export')[1]))", expect="ok"),
        Case(
            g,
            "load-corrupt-summary",
            code=f"{sw}load('{{tmp}}/e')",
            files={"e/summary.csv": "\x00\xff", "e/evaluations.parquet": "not parquet"},
        ),
        Case(g, "load-ids-unknown", code=f"{sw}load('{{fix}}/sweep', ids=['nosuch'])"),
        Case(g, "status-missing", code=f"{sw}status('/nonexistent')"),
        Case(g, "status-not-sweep", code=f"{sw}status('{{tmp}}')", files={"x.txt": "x"}),
        Case(g, "status-valid", code=f"{sw}print(status('{{fix}}/sweep').sum())", expect="ok"),
        Case(g, "report-missing", code=f"{sw}report('/nonexistent')"),
        Case(
            g,
            "report-dest-unwritable",
            code=f"{sw}report('{{tmp}}/sweep', '/proc/x')",
            copy={"sweep": "sweep"},
        ),
        Case(
            g,
            "report-empty-sweep",
            code=f"{sw}report('{{tmp}}/s')",
            files={"s/spec.toml": VALID_SPEC},
        ),
        Case(g, "export-dest-unwritable", code=f"{sw}export('{{fix}}/sweep', '/proc/x')"),
        Case(
            g,
            "export-not-sweep",
            code=f"{sw}export('{{tmp}}', '{{tmp}}/dest')",
            files={"x.txt": "x"},
        ),
        Case(
            g,
            "export-dest-is-file",
            code=f"{sw}export('{{fix}}/sweep', '{{tmp}}/f')",
            files={"f": "x"},
            unchanged=("f",),
        ),
        Case(
            g,
            "export-over-other",
            code=f"{sw}export('{{fix}}/sweep', '{{tmp}}/dest')",
            files={"dest/summary.csv": "mine\n"},
            unchanged=("dest/summary.csv",),
        ),
    ]
    # -------------------------------------------------------------- parse_compute / parse_comm
    g = "parse"
    pc = "from toolkit.models import parse_compute, parse_comm\n"
    for name, text in BAD_DISTS.items():
        if name in ("directory",):
            continue
        c.append(Case(g, f"compute-{name}", code=f"{pc}parse_compute({text!r})"))
    for name, arg in {
        "compute-none": "None",
        "compute-number": "5",
        "compute-huge-string": "'x' * 10**7",
        "compute-per-worker-bad": "\"PerWorker(['expon()', 'norm(0, 1)'])\"",
        "compute-markov-bad": "\"Markov('expon()', 'expon()', p_slow=2, p_recover=0.5)\"",
    }.items():
        c.append(Case(g, name, code=f"{pc}parse_compute({arg})"))
    for name, text in BAD_COMMS.items():
        if name == "empty":
            continue
        c.append(Case(g, f"comm-{name}", code=f"{pc}parse_comm({text!r})"))
    c += [
        Case(g, "comm-number", code=f"{pc}parse_comm(5)"),
        Case(g, "comm-deep-nesting", code=f"{pc}parse_comm({'(' * 5000!r})"),
        Case(g, "comm-none-text", code=f"{pc}print(parse_comm('none'))", expect="ok"),
        Case(
            g,
            "compute-valid",
            code=f"{pc}print(parse_compute('expon(loc=1, scale=0.5)'))",
            expect="ok",
        ),
    ]
    return c


# --------------------------------------------------------------------------- running
HARNESS = r"""
import sys, traceback
code = sys.argv[1]
try:
    exec(compile(code, "<case>", "exec"), {"__name__": "__probe__"})
except BaseException as err:
    from toolkit.checks import ConfigError
    kind = "ConfigError" if isinstance(err, ConfigError) else type(err).__name__
    bases = [c.__name__ for c in type(err).__mro__]
    print(f"PROBE-RAISED {kind} {','.join(bases)} {getattr(err, 'field', None)!r}",
          file=sys.stderr)
    print("PROBE-MESSAGE " + repr(str(err)), file=sys.stderr)
    sys.stderr.flush()
    sys.exit(3)
"""


def _limits(memory: float) -> Callable[[], None]:
    def apply() -> None:
        os.nice(10)
        resource.setrlimit(resource.RLIMIT_AS, (int(memory), int(memory)))

    return apply


def _env(tag: str) -> dict[str, str]:
    env = dict(os.environ)
    env[TAG] = tag
    env.pop("TOOLKIT_MEMORY_LIMIT", None)
    env.pop("TOOLKIT_MAX_RANKS", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _tagged(tag: str) -> list[int]:
    """Processes whose environment carries ``tag`` (descendants of a case, even those that left
    its process group)."""
    pids = []
    needle = f"{TAG}={tag}\0".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle in f.read():
                    pids.append(int(entry))
        except OSError:
            continue
    return pids


def _kill(pgid: int, tag: str) -> int:
    """SIGKILL the case's group and its tagged processes; how many were still there."""
    left = set(_tagged(tag))
    try:
        os.killpg(pgid, 0)
        alive_group = True
    except ProcessLookupError:
        alive_group = False
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(left) or int(alive_group)


def _fmt(value: str, tmp: Path, fix: Path) -> str:
    return value.replace("{tmp}", str(tmp)).replace("{fix}", str(fix))


@dataclass
class Outcome:
    case: Case
    outcome: str
    good: bool
    seconds: float
    rc: int | None
    detail: str
    command: str
    stderr: str = ""


def _classify_cli(rc: int | None, err: str, case: Case) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    if case.signal is not None:
        want = 128 + case.signal[0]
        if rc == want and "Traceback" not in err and len(lines) <= 2:
            return "interrupted (130/143)"
    if "Traceback (most recent call last)" in err:
        return "traceback"
    if any("out of memory" in line or "MemoryError" in line for line in lines):
        return "MemoryError caught"
    if rc == 0:
        return "success"
    if rc == 2 and lines and lines[0].startswith("usage:"):
        return "usage + error (2)"
    if rc == 2 and len(lines) == 1 and lines[0].startswith("error:"):
        return "one-line error (2)"
    if rc == 2 and lines:
        return "more than one line"
    return f"exit {rc}"


def _classify_api(rc: int | None, err: str, case: Case) -> tuple[str, str]:
    if rc == 0:
        return "success", ""
    m = re.search(r"^PROBE-RAISED (\S+) (\S+) (.*)$", err, re.M)
    msg = re.search(r"^PROBE-MESSAGE (.*)$", err, re.M)
    if rc != 3 or not m:
        return f"exit {rc}", ""
    kind, bases = m.group(1), m.group(2).split(",")
    message = eval(msg.group(1)) if msg else ""  # the repr the harness printed
    detail = f"{kind}: {message}"
    if kind == "MemoryError" or "out of memory" in message:
        return "MemoryError caught", detail
    if "\n" in message.strip():
        return "more than one line", detail
    if kind == "ConfigError":
        return "ConfigError", detail
    if "OSError" in bases:
        return ("OSError (path)" if "/" in message or "'" in message else "OSError"), detail
    if kind == "TypeError":
        return "TypeError", detail
    if "ValueError" in bases:
        return "ValueError without field", detail
    return f"traceback ({kind})", detail


def run_case(case: Case, i: int, work: Path, fix: Path, memory: float, timeout: float) -> Outcome:
    tmp = work / f"{i:03d}"
    tmp.mkdir(parents=True)
    for src, dst in case.copy.items():
        shutil.copytree(fix / dst, tmp / src)
    for name, text in case.files.items():
        path = tmp / _fmt(name, tmp, fix)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8", "surrogateescape"))
    before = {name: (tmp / name).read_bytes() for name in case.unchanged if (tmp / name).exists()}
    toolkit = str(Path(sys.executable).with_name("toolkit"))
    if case.argv is not None:
        cmd = [toolkit, *(_fmt(a, tmp, fix) for a in case.argv)]
        shown = shlex.join(["toolkit", *cmd[1:]])
    else:
        code = _fmt(case.code, tmp, fix)
        cmd = [sys.executable, "-c", HARNESS, code]
        shown = "python -c " + shlex.quote(code)
    tag = f"{os.getpid()}-{i}"
    limit = case.timeout or timeout
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        cwd=tmp,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_limits(memory),
        env=_env(tag),
    )
    hung = False
    try:
        if case.signal is not None:
            signum, after, group = case.signal
            try:
                proc.wait(after)
            except subprocess.TimeoutExpired:
                (os.killpg if group else os.kill)(proc.pid, signum)
        try:
            out, err = proc.communicate(timeout=max(1.0, limit - (time.monotonic() - t0)))
        except subprocess.TimeoutExpired:
            hung = True
            _kill(proc.pid, tag)
            out, err = proc.communicate()
    finally:
        seconds = time.monotonic() - t0
        left = _kill(proc.pid, tag) if not hung else 0
    err_text = err.decode(errors="replace")
    rc = proc.returncode
    if hung:
        outcome, detail = "hang (timeout)", ""
    elif rc is not None and rc < 0 and not (case.signal and rc == -case.signal[0]):
        outcome, detail = "killed", f"signal {-rc}"
    elif case.argv is not None:
        outcome = _classify_cli(rc, err_text, case)
        detail = next((ln for ln in reversed(err_text.splitlines()) if ln.strip()), "")
    else:
        outcome, detail = _classify_api(rc, err_text, case)
        if not detail:
            detail = next((ln for ln in reversed(err_text.splitlines()) if ln.strip()), "")
    changed = [n for n, data in before.items() if (tmp / n).read_bytes() != data]
    if not all((tmp / n).exists() for n in before):
        changed += [n for n in before if not (tmp / n).exists()]
    if changed:
        outcome, detail = "silent overwrite", f"{', '.join(changed)} changed; {detail}"
    elif left:
        outcome, detail = "left processes", f"{left} still running; {detail}"
    good = _good(case, outcome)
    if not detail and out:
        detail = out.decode(errors="replace").strip().splitlines()[-1]
    return Outcome(case, outcome, good, seconds, rc, detail[:160], shown, err_text[-2000:])


def _good(case: Case, outcome: str) -> bool:
    if case.signal is not None:
        return outcome == "interrupted (130/143)"
    if outcome in case.accept:
        return True
    if case.expect == "ok":
        return outcome == "success"
    if case.expect == "either":
        return outcome == "success" or outcome in GOOD_ERRORS
    return outcome in GOOD_ERRORS


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-k", default=None, help="only the cases whose group/name contains this")
    p.add_argument("--jobs", type=int, default=2, help="cases at a time (default 2)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per case (default 60)")
    p.add_argument("--memory", type=float, default=8e9, help="address-space cap in bytes (8e9)")
    p.add_argument("--csv", default=None, help="also write the table to this CSV file")
    p.add_argument("--list", action="store_true", help="list the cases and stop")
    args = p.parse_args(argv)
    cases = cli_cases() + api_cases()
    ids = Counter(case.id for case in cases)
    dup = [i for i, n in ids.items() if n > 1]
    if dup:
        raise SystemExit(f"probe: duplicate case ids: {dup}")
    if args.k:
        cases = [case for case in cases if args.k in case.id]
    if args.list:
        for case in cases:
            print(case.id)
        print(f"{len(cases)} cases")
        return 0
    work = Path(tempfile.mkdtemp(prefix="probe-"))
    try:
        fix = work / "fix"
        print(f"probe: fixtures in {fix} ...", file=sys.stderr, flush=True)
        make_fixtures(fix, args.memory)
        results: list[Outcome] = []
        t0 = time.monotonic()
        with ThreadPoolExecutor(args.jobs) as pool:
            futures = [
                pool.submit(run_case, case, i, work, fix, args.memory, args.timeout)
                for i, case in enumerate(cases)
            ]
            for n, future in enumerate(futures, 1):
                res = future.result()
                results.append(res)
                mark = "ok " if res.good else "BAD"
                print(
                    f"[{n:3d}/{len(cases)}] {mark} {res.seconds:5.1f}s {res.case.id}: "
                    f"{res.outcome}",
                    file=sys.stderr,
                    flush=True,
                )
        _report(results, time.monotonic() - t0, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(r.good for r in results) else 1


def _report(results: list[Outcome], seconds: float, args: argparse.Namespace) -> None:
    width = max(len(r.case.id) for r in results)
    print(f"{'case':<{width}}  {'expect':<6}  {'outcome':<26}  {'verdict':<7}  {'s':>5}  detail")
    for r in sorted(results, key=lambda r: (not r.good, r.case.id)):
        verdict = "good" if r.good else "DEFECT"
        print(
            f"{r.case.id:<{width}}  {r.case.expect:<6}  {r.outcome:<26}  {verdict:<7}  "
            f"{r.seconds:5.1f}  {r.detail}"
        )
    print("\noutcomes:")
    for outcome, n in Counter(r.outcome for r in results).most_common():
        bad = sum(1 for r in results if r.outcome == outcome and not r.good)
        print(f"  {outcome:<26} {n:4d}   ({bad} defects)")
    defects = [r for r in results if not r.good]
    print(
        f"\n{len(results)} cases, {len(results) - len(defects)} good, {len(defects)} defects, "
        f"{seconds:.0f} s (--jobs {args.jobs}, --timeout {args.timeout:g} s, address space "
        f"{args.memory / 1e9:g} GB, nice 10)"
    )
    if defects:
        print("\ndefects, each with the command that reproduces it (in an empty folder):")
        for r in defects:
            print(f"  {r.case.id}: {r.outcome}\n    {r.command[:400]}")
    command = [".venv/bin/python", "benchmarks/probe_inputs.py", "--jobs", str(args.jobs)]
    if args.k:
        command += ["-k", args.k]
    print(f"\nreproduce the table: {shlex.join(command)}")
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(
                [
                    "case",
                    "expect",
                    "outcome",
                    "good",
                    "seconds",
                    "rc",
                    "detail",
                    "command",
                    "stderr",
                ]
            )
            for r in results:
                w.writerow(
                    [
                        r.case.id,
                        r.case.expect,
                        r.outcome,
                        r.good,
                        f"{r.seconds:.2f}",
                        r.rc,
                        r.detail,
                        r.command,
                        r.stderr,
                    ]
                )


if __name__ == "__main__":
    sys.exit(main())
