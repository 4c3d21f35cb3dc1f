"""Flags shared by every subcommand that takes a scheme or a cluster (``theory``, ``simulate``,
``train``), defined once so that they read and parse the same everywhere.

Scheme flags (:func:`add_scheme_args`, :func:`scheme_from_args`): ``--scheme`` names a scheme of
``toolkit.schemes`` and one flag per field of any scheme gives its value; fields the chosen scheme
does not take must be left out (``toolkit.schemes.make_scheme`` refuses them)::

    --scheme backup --n 96 --b 4
    --scheme easgd --n 8 --tau 4 --alpha 0.1 --asynchronous
    --scheme diloco --n 8 --h 50 --outer-lr 0.7 --outer-momentum 0.9

Cluster flags (:func:`add_cluster_args`, :func:`dist_from_args`, :func:`comm_from_args`):
``--dist`` is a scipy.stats distribution written as a call with literal arguments, or the path of a
CSV of measured step times (``--column`` picks its column), parsed by
``toolkit.models.dists.parse_dist``; ``--comm`` is a model of ``toolkit.models.comm``
written the same way, parsed by ``toolkit.models.comm.parse_comm``::

    --dist "expon(loc=1, scale=0.5)"
    --comm "ParameterServer(nbytes=4e6, bandwidth=1.25e9, latency=1e-4)"
    --dist runs/times.csv --column step_time --comm "RingAllReduce(nbytes=4e6, bandwidth=1.25e9)"

Both are parsed with ``ast`` and never evaluated. Bad values raise a
``toolkit.checks.ConfigError`` about the flag (its ``field`` is the flag, and so is the start of its
message: ``--dist: ...``, ``--n must be ...``), mapped from the error's config field by
:data:`FLAGS`; ``toolkit.cli.main`` turns it into a line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable
from typing import Any

from toolkit.checks import ConfigError
from toolkit.models.comm import COMM_MODELS, CommModel, parse_comm
from toolkit.models.dists import parse_dist
from toolkit.models.stragglers import parse_compute
from toolkit.schemes import SCHEMES, Scheme, make_scheme

__all__ = [
    "DEFAULT_COMM",
    "DEFAULT_DIST",
    "FLAGS",
    "SCHEME_FLAGS",
    "add_cluster_args",
    "add_comm_args",
    "add_dist_args",
    "add_scheme_args",
    "comm_from_args",
    "compute_from_args",
    "dist_from_args",
    "flagged",
    "scheme_from_args",
]

DEFAULT_DIST = "expon(loc=1, scale=0.5)"
DEFAULT_COMM = "ParameterServer(nbytes=4e6, bandwidth=1.25e9, latency=1e-4)"

# scheme field -> (flag, type, what it means); ``synchronous`` is the switch --asynchronous.
SCHEME_FLAGS: dict[str, tuple[str, type, str]] = {
    "n": ("--n", int, "workers, excluding backups"),
    "b": ("--b", int, "backup workers"),
    "k": ("--k", int, "gradients per update"),
    "delay": ("--delay", int, "steps between computing a gradient and applying it"),
    "tau": ("--tau", int, "local steps between meetings with the centre"),
    "alpha": ("--alpha", float, "elastic moving rate alpha = eta rho, in (0, 1)"),
    "momentum": ("--momentum", float, "local Nesterov momentum, EAMSGD when > 0"),
    "synchronous": ("--asynchronous", bool, "each worker meets the centre alone"),
    "h": ("--h", int, "inner steps per outer step"),
    "outer_lr": ("--outer-lr", float, "outer learning rate"),
    "outer_momentum": ("--outer-momentum", float, "outer Nesterov momentum"),
}


# config field (``err.field`` of a ConfigError) -> the flag that sets it
FLAGS: dict[str, str] = {
    "compute": "--dist",
    "dist": "--dist",
    "column": "--column",
    "comm": "--comm",
    "scheme.name": "--scheme",
    **{
        f"scheme.{field}": flag for field, (flag, typ, _) in SCHEME_FLAGS.items() if typ is not bool
    },
}


def flagged(err: ValueError) -> ValueError:
    """``err`` about the flag that sets its field (:data:`FLAGS`), e.g. ``compute: ...`` ->
    ``--dist: ...``; unchanged where the field has no flag or ``err`` is no ConfigError."""
    if isinstance(err, ConfigError) and err.field in FLAGS:
        return err.renamed(FLAGS[err.field])
    return err


def _users(field: str) -> tuple[list[str], object]:
    """Names of the schemes that have ``field`` and its default (MISSING when required)."""
    names, default = [], dataclasses.MISSING
    for name, cls in SCHEMES.items():
        for f in dataclasses.fields(cls):
            if f.name == field:
                names.append(name)
                default = f.default if default is dataclasses.MISSING else default
    return names, default


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def add_scheme_args(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Add ``--scheme`` and one flag per field of every scheme in ``toolkit.schemes`` (help names
    the schemes that use it); all but ``--scheme`` and ``--n`` default to the scheme's default."""
    parser.add_argument("--scheme", required=True, help=f"one of {', '.join(sorted(SCHEMES))}")
    for field, (flag, typ, text) in SCHEME_FLAGS.items():
        users, default = _users(field)
        if typ is bool:
            help_ = f"{text} (synchronous=False; {', '.join(users)})"
            parser.add_argument(flag, action="store_true", help=help_)
            continue
        where = ", ".join(users) if len(users) < len(SCHEMES) else "every scheme"
        if default is not dataclasses.MISSING:
            where += f"; default {default:g}"
        parser.add_argument(
            flag, type=typ, default=None, required=field == "n", help=f"{text} ({where})"
        )


def scheme_from_args(args: argparse.Namespace) -> Scheme:
    """The scheme the flags of :func:`add_scheme_args` describe (``toolkit.schemes.make_scheme``:
    flags left out take the scheme's defaults; a flag the scheme does not take is an error);
    errors name the flag."""
    fields: dict[str, Any] = {}
    for field, (flag, typ, _) in SCHEME_FLAGS.items():
        value = getattr(args, _dest(flag), None)
        if typ is bool:  # --asynchronous: synchronous=False when given, else the default
            value = False if value else None
        fields[field] = value
    try:
        return make_scheme(args.scheme, **fields)
    except ConfigError as err:
        raise flagged(err.within("scheme")) from None


def add_dist_args(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    required: bool = True,
    default: str | None = None,
) -> None:
    """Add ``--dist`` (a scipy.stats call or a CSV of step times) and ``--column``."""
    shown = f' (default "{default}")' if default is not None else ""
    parser.add_argument(
        "--dist",
        required=required and default is None,
        default=default,
        help="step-time distribution: a scipy.stats call with literal arguments, e.g. "
        f'"{DEFAULT_DIST}", or the path of a .csv of measured step times{shown}',
    )
    parser.add_argument(
        "--column",
        default=None,
        help="column of the .csv given to --dist (default: step_time, time or the only number)",
    )


def add_comm_args(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, default: str | None = None
) -> None:
    """Add ``--comm``: a model of ``toolkit.models.comm`` written as a call, or ``none``."""
    base = [f.name for f in dataclasses.fields(CommModel)]
    models = ", ".join(
        name + "".join(f" +{f.name}" for f in dataclasses.fields(cls) if f.name not in base)
        for name, cls in COMM_MODELS.items()
    )
    parser.add_argument(
        "--comm",
        default=default,
        help="communication model of toolkit.models.comm as a call with literal arguments, "
        f'e.g. "{DEFAULT_COMM}"; models: {models} (all take {", ".join(base)}); '
        f'"none" means no cost (default {default or "none"})',
    )


def add_cluster_args(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    dist_required: bool = True,
    *,
    dist_default: str | None = None,
    comm_default: str | None = None,
) -> None:
    """Add ``--dist``, ``--column`` and ``--comm`` (see :func:`add_dist_args`,
    :func:`add_comm_args`); ``dist_required=False`` without a default leaves ``--dist`` None."""
    add_dist_args(parser, required=dist_required, default=dist_default)
    add_comm_args(parser, default=comm_default)


def dist_from_args(args: argparse.Namespace, check: Callable[[Any], Any] | None = None) -> Any:
    """The step-time model of ``--dist`` (``toolkit.models.parse_compute``: a scipy.stats call, a
    .csv trace, or a model such as ``SlowMachines("lognorm(0.5)", fraction=0.1, slowdown=4)``)
    or of a .csv and ``--column``, then ``check(dist)`` if given (the theory's
    ``toolkit.models.dists.check_step_dist``, which takes i.i.d. distributions only); errors name
    ``--dist`` or ``--column``."""
    if getattr(args, "dist", None) is None:
        raise ConfigError("--dist", "--dist: a step-time distribution is required")
    column = getattr(args, "column", None)
    try:
        if column is not None or str(args.dist).strip().lower().endswith(".csv"):
            dist = parse_dist(args.dist, column)  # errors name --column where it is the fix
        else:
            dist = parse_compute(args.dist)
        if check is not None:
            check(dist)
    except ConfigError as err:
        raise flagged(err if err.field in FLAGS else err.renamed("dist")) from None
    return dist


def compute_from_args(args: argparse.Namespace) -> str:
    """The step-time model as a RunConfig writes it (``toolkit.models.parse_compute``): the
    ``--dist`` text, or ``Empirical("<csv>", column="<--column>")``; checked by parsing it."""
    dist_from_args(args)
    if getattr(args, "column", None) is not None:
        return f"Empirical({json.dumps(args.dist)}, column={json.dumps(args.column)})"
    return args.dist


def comm_from_args(args: argparse.Namespace) -> CommModel | None:
    """``parse_comm(args.comm)``: the comm model, or None for no communication cost; errors name
    ``--comm``."""
    try:
        return parse_comm(getattr(args, "comm", None))
    except ConfigError as err:
        raise flagged(err) from None
