"""``toolkit.cli_args``: the scheme and cluster flags shared by ``theory``, ``simulate`` and
``train`` build the same objects as the library, and bad values are errors naming the flag."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from toolkit import schemes
from toolkit.checks import ConfigError
from toolkit.cli import build_parser, main
from toolkit.cli_args import (
    DEFAULT_COMM,
    SCHEME_FLAGS,
    add_cluster_args,
    add_scheme_args,
    comm_from_args,
    dist_from_args,
    flagged,
    scheme_from_args,
)
from toolkit.models import Empirical
from toolkit.models.comm import (
    COMM_MODELS,
    Hierarchical,
    ParameterServer,
    RingAllReduce,
    ShardedServer,
    parse_comm,
)
from toolkit.models.dists import check_step_dist
from toolkit.schemes import SCHEMES, Scheme

# One scheme per name, every field away from its default, so a flag that is not passed on fails.
EXAMPLES: list[Scheme] = [
    schemes.Sync(5),
    schemes.Backup(7, 3),
    schemes.KBatchSync(4, 9),
    schemes.Async(6),
    schemes.KAsync(7, 4),
    schemes.KBatchAsync(8, 3),
    schemes.Delayed(5, 2),
    schemes.EASGD(6, 3, 0.125, momentum=0.5, synchronous=False),
    schemes.LocalSGD(4, 7),
    schemes.DiLoCo(3, 11, outer_lr=0.25, outer_momentum=0.5),
]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    add_scheme_args(p)
    add_cluster_args(p, dist_required=False)
    return p


def flags_of(scheme: Scheme) -> list[str]:
    """The command line that describes ``scheme``, written from its fields."""
    argv = ["--scheme", scheme.name]
    for f in dataclasses.fields(scheme):
        value = getattr(scheme, f.name)
        flag = SCHEME_FLAGS[f.name][0]
        if isinstance(value, bool):
            argv += [flag] if flag == "--asynchronous" and not value else []
        else:
            argv += [flag, repr(value)]
    return argv


def test_examples_cover_every_scheme_and_every_field_has_a_flag():
    assert sorted(s.name for s in EXAMPLES) == sorted(SCHEMES)
    fields = {f.name for cls in SCHEMES.values() for f in dataclasses.fields(cls)}
    assert fields == set(SCHEME_FLAGS)


@pytest.mark.parametrize("scheme", EXAMPLES, ids=lambda s: s.name)
def test_every_scheme_is_built_from_its_flags(scheme):
    args = parser().parse_args(flags_of(scheme))
    assert scheme_from_args(args) == scheme


def test_flags_left_out_take_the_scheme_defaults():
    p = parser()
    assert scheme_from_args(p.parse_args(["--scheme", "delayed", "--n", "4"])) == schemes.Delayed(4)
    easgd = scheme_from_args(p.parse_args("--scheme easgd --n 4 --tau 2 --alpha 0.1".split()))
    assert easgd == schemes.EASGD(4, 2, 0.1) and easgd.synchronous
    diloco = scheme_from_args(p.parse_args("--scheme diloco --n 4 --h 2".split()))
    assert diloco == schemes.DiLoCo(4, 2)


def test_help_names_the_schemes_that_use_each_flag():
    text = parser().format_help()
    for field, (flag, _, _) in SCHEME_FLAGS.items():
        users = [
            n for n, cls in SCHEMES.items() if field in {f.name for f in dataclasses.fields(cls)}
        ]
        start = text.index(f"  {flag}")
        entry = " ".join(text[start : start + 400].split("\n  --")[0].split())
        if len(users) == len(SCHEMES):
            assert "every scheme" in entry, entry
        else:
            assert all(u in entry for u in users), (flag, users, entry)


@pytest.mark.parametrize(
    ("argv", "flag", "message"),
    [
        (["--scheme", "nope", "--n", "3"], "--scheme", "--scheme: unknown scheme 'nope'; valid: "),
        (["--scheme", "sync", "--n", "0"], "--n", "--n must be an integer >= 1, got 0"),
        (["--scheme", "sync", "--n", "3", "--b", "1"], "--b", "--b: scheme 'sync' takes ['n']"),
        (["--scheme", "backup", "--n", "3"], "--b", "--b: scheme 'backup' needs ['b']"),
        (["--scheme", "easgd", "--n", "3", "--tau", "2", "--alpha", "1.5"], "--alpha", "--alpha "),
        (
            ["--scheme", "diloco", "--n", "3", "--h", "2", "--outer-lr", "0"],
            "--outer-lr",
            "--outer-lr must be > 0",
        ),
    ],
)
def test_bad_scheme_flags_are_config_errors_about_the_flag(argv, flag, message):
    with pytest.raises(ConfigError) as err:
        scheme_from_args(parser().parse_args(argv))
    assert err.value.field == flag
    assert str(err.value).startswith(message), str(err.value)


def test_flagged_maps_the_field_attribute_not_the_message():
    err = ConfigError("tau", "tau must be an integer >= 1, got 0").within("scheme")
    assert (err.field, str(err)) == ("scheme.tau", "scheme.tau must be an integer >= 1, got 0")
    assert (flagged(err).field, str(flagged(err))) == (
        "--tau",
        "--tau must be an integer >= 1, got 0",
    )
    # the message is never parsed: one that names no field gets the flag in front
    assert str(flagged(ConfigError("comm", "no server"))) == "--comm: no server"
    other = ConfigError("lr", "compute: looks like a field but is not one")
    assert flagged(other) is other
    plain = ValueError("compute: a plain ValueError carries no field")
    assert flagged(plain) is plain


# --------------------------------------------------------------------------- --comm
@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("none", None),
        (
            "ParameterServer(nbytes=4e6, bandwidth=1.25e9, latency=1e-4)",
            ParameterServer(4e6, 1.25e9, 1e-4),
        ),
        ("ParameterServer(8, 2.0)", ParameterServer(8, 2.0)),
        (
            "ShardedServer(nbytes=8, bandwidth=2.0, latency=0.5, shards=4)",
            ShardedServer(8, 2.0, 0.5, 4),
        ),
        ("RingAllReduce(nbytes=8, bandwidth=2.0)", RingAllReduce(8, 2.0)),
        (
            "Hierarchical(nbytes=8, bandwidth=2.0, group=4, local_bandwidth=20.0)",
            Hierarchical(8, 2.0, group=4, local_bandwidth=20.0),
        ),
    ],
)
def test_comm_is_parsed_into_the_model(text, want):
    args = parser().parse_args(["--scheme", "sync", "--n", "2", "--comm", text])
    assert comm_from_args(args) == want
    assert parse_comm(text) == want


def test_every_comm_model_can_be_written_as_a_flag():
    for name, cls in COMM_MODELS.items():
        assert parse_comm(f"{name}(nbytes=8, bandwidth=2.0)") == cls(8, 2.0)
    assert parse_comm(None) is None
    assert parse_comm(DEFAULT_COMM) == ParameterServer(4e6, 1.25e9, 1e-4)


@pytest.mark.parametrize(
    "text",
    [
        "Evil()",
        "exchange_cost(None, 1, 1)",  # in toolkit.models.comm, but not a model
        "CommModel(nbytes=1, bandwidth=1)",  # the abstract base
        "ParameterServer(nbytes=open('x'), bandwidth=1)",
        "ParameterServer(nbytes=1)",  # bandwidth missing
        "ParameterServer(nbytes=1, bandwidth=-1)",
        "ParameterServer(nbytes='a', bandwidth=1)",
        "ParameterServer(nbytes=1, bandwidth=1, speed=3)",
        "ShardedServer(nbytes=1, bandwidth=1, shards=0)",
        "ParameterServer(**{'nbytes': 1})",
        "ParameterServer(nbytes=1,",
        "toolkit.models.comm.ParameterServer(1, 1)",
    ],
)
def test_bad_comm_is_an_error_naming_the_flag(text):
    args = parser().parse_args(["--scheme", "sync", "--n", "2", "--comm", text])
    with pytest.raises(ValueError, match=r"^--comm: "):
        comm_from_args(args)


def test_comm_is_never_evaluated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for text in (
        "__import__('pathlib').Path('pwned').touch()",
        "ParameterServer(nbytes=__import__('pathlib').Path('pwned2').touch(), bandwidth=1)",
    ):
        with pytest.raises(ValueError, match="--comm"):
            parse_comm_flag(text)
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()


def parse_comm_flag(text: str):
    return comm_from_args(parser().parse_args(["--scheme", "sync", "--n", "2", "--comm", text]))


# --------------------------------------------------------------------------- --dist
def test_dist_is_the_scipy_distribution():
    args = parser().parse_args(["--scheme", "sync", "--n", "2", "--dist", "gamma(2, scale=0.5)"])
    dist = dist_from_args(args)
    want = stats.gamma(2, scale=0.5)
    assert dist.mean() == pytest.approx(want.mean()) and dist.var() == pytest.approx(want.var())


def test_dist_csv_and_column(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "trace.csv"
    frame = pd.DataFrame({"a": rng.uniform(1, 2, 20), "b": rng.uniform(3, 4, 20)})
    frame.to_csv(path, index=False)
    base = ["--scheme", "sync", "--n", "2", "--dist", str(path)]
    dist = dist_from_args(parser().parse_args([*base, "--column", "b"]))
    assert isinstance(dist, Empirical)
    np.testing.assert_array_equal(np.sort(dist.values), np.sort(frame["b"].to_numpy()))
    with pytest.raises(ValueError, match=r"^--column: "):  # two numeric columns, none named
        dist_from_args(parser().parse_args(base))
    with pytest.raises(ValueError, match=r"^--column: "):
        dist_from_args(parser().parse_args([*base, "--column", "c"]))


def test_missing_dist_is_an_error_naming_the_flag():
    with pytest.raises(ValueError, match=r"^--dist: .*required"):
        dist_from_args(parser().parse_args(["--scheme", "sync", "--n", "2"]))


@pytest.mark.parametrize(
    "text", ["nosuch(1)", "expon(loc=", "expon(loc=a)", "missing.csv", "pareto(0.5)", "1 + 2"]
)
def test_bad_dist_is_an_error_naming_the_flag(text):
    args = parser().parse_args(["--scheme", "sync", "--n", "2", "--dist", text])
    with pytest.raises(ValueError, match=r"^--dist: "):
        dist_from_args(args)


def test_dist_check_hook_refuses_what_theory_refuses():
    # negative support is refused by parsing itself (parse_compute checks step times) ...
    args = parser().parse_args(["--scheme", "sync", "--n", "2", "--dist", "norm(0, 1)"])
    with pytest.raises(ConfigError, match=r"^--dist: step times must be >= 0") as err:
        dist_from_args(args)
    assert err.value.field == "--dist"
    # ... and the theory's hook refuses a compute model that is not one i.i.d. distribution
    text = 'SlowMachines("expon()", fraction=0.5, slowdown=2)'
    args = parser().parse_args(["--scheme", "sync", "--n", "2", "--dist", text])
    assert dist_from_args(args).slowdown == 2.0
    with pytest.raises(ConfigError, match=r"^--dist must be a frozen scipy.stats"):
        dist_from_args(args, check=check_step_dist)


@pytest.mark.parametrize(
    "text",
    [
        "expon(loc=[1, 2])",
        "expon([1, 2])",
        'expon(loc="1")',
        "expon(loc=True)",
        'SlowMachines("expon(scale=[1, 2])", fraction=0.5, slowdown=2)',
    ],
)
def test_non_scalar_dist_arguments_are_refused_naming_the_flag(text):
    args = parser().parse_args(["--scheme", "sync", "--n", "2", "--dist", text])
    with pytest.raises(ConfigError, match=r"^--dist: the arguments of .* must be numbers") as err:
        dist_from_args(args)
    assert err.value.field == "--dist"


def test_non_scalar_dist_is_one_line_on_the_command_line(capsys):
    argv = ["simulate", "--scheme", "sync", "--n", "2", "--dist", "expon(loc=[1,2])"]
    assert main([*argv, "--updates", "3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --dist: the arguments of 'expon(loc=[1,2])' must be numbers")
    assert err.count("\n") == 1 and "ambiguous" not in err


# --------------------------------------------------------------------------- the three commands
SHARED = [
    *("--scheme", "easgd", "--n", "6", "--b", "1", "--k", "2", "--delay", "3", "--tau", "4"),
    *("--alpha", "0.125", "--momentum", "0.5", "--asynchronous", "--h", "5"),
    *("--outer-lr", "0.25", "--outer-momentum", "0.5"),
    *("--dist", "lognorm(0.5)", "--column", "t", "--comm", "RingAllReduce(nbytes=8, bandwidth=2)"),
]
COMMANDS = {
    "theory step-time": ["theory", "step-time"],
    "simulate": ["simulate"],
    "train": ["train", "--workload", "logreg", "--out", "unused"],
}


def test_the_three_subcommands_accept_the_same_flags_with_the_same_meaning():
    dests = {*(SCHEME_FLAGS[f][0].lstrip("-").replace("-", "_") for f in SCHEME_FLAGS)}
    dests |= {"scheme", "dist", "column", "comm"}
    seen = {}
    for name, prefix in COMMANDS.items():
        args = build_parser(prefix[0]).parse_args([*prefix, *SHARED])
        seen[name] = {d: getattr(args, d) for d in dests}
    first = next(iter(seen.values()))
    assert all(values == first for values in seen.values()), seen
    assert first["asynchronous"] is True and first["outer_lr"] == 0.25 and first["h"] == 5


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--comm", "Evil(1)"], "error: --comm: unknown model 'Evil'"),
        (["--dist", "nosuch(1)"], "error: --dist: 'nosuch' is not a scipy.stats distribution"),
        (["--scheme", "nope"], "valid: async, backup"),
    ],
)
def test_the_three_subcommands_report_bad_flags_alike(command, flags, message, capsys, tmp_path):
    argv = [*COMMANDS[command], "--scheme", "sync", "--n", "2", "--dist", "expon"]
    argv = [a if a != "unused" else str(tmp_path / "x") for a in argv]
    assert main([*argv, *flags]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.integration
def test_theory_commands_do_not_import_torch():
    code = (
        "import sys; from toolkit.cli import main; "
        "rc = main(['theory', 'step-time', '--scheme', 'sync', '--n', '4', '--dist', 'expon', "
        f"'--comm', {DEFAULT_COMM!r}]); "
        "assert rc == 0, rc; assert 'torch' not in sys.modules, 'torch imported'"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert "step_time" in r.stdout
