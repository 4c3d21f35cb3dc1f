"""Step-time distributions: validation, parsing and printing, shared by the clock and the theory.

One rule for both sides: a step-time model is a frozen ``scipy.stats`` *continuous* distribution
with valid parameters and support in [0, inf) (a draw of exactly 0 then has probability 0), or an
:class:`~toolkit.models.Empirical` trace whose values are all > 0 (an atom at 0 would make
zero-length steps, which the clock refuses). The straggler models check their distributions at
construction with :func:`check_step_dist`, and theory calls the same function, so both reject the
same inputs up front.
"""

from __future__ import annotations

import ast
import math
import numbers
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from toolkit.checks import ConfigError
from toolkit.models.empirical import Empirical

__all__ = [
    "check_numbers",
    "check_step_dist",
    "dist_params",
    "dist_repr",
    "is_dist",
    "parse_call",
    "parse_dist",
]


def dist_params(dist: Any) -> dict[str, float]:
    """Shape, loc and scale of a frozen scipy distribution, by name (public attributes only)."""
    gen = dist.dist
    names = [s.strip() for s in gen.shapes.split(",")] if gen.shapes else []
    names += ["loc", "scale"]
    values = dict(zip(names, dist.args, strict=False))
    values.update(dist.kwds)
    values.setdefault("loc", 0.0)
    values.setdefault("scale", 1.0)
    return {k: float(v) for k, v in values.items()}


def check_step_dist(dist: Any, name: str = "dist") -> Any:
    """Check that ``dist`` is a step-time model and return it unchanged.

    Accepts a frozen ``scipy.stats`` continuous distribution with valid parameters and support in
    [0, inf), or a ``toolkit.models.Empirical`` trace with every value > 0. Raises ValueError
    whose message starts with ``name`` otherwise: step times cannot be negative, so e.g.
    ``scipy.stats.norm(4, 1)`` (support starting at -inf) is refused even though its draws are
    rarely negative; discrete families (``scipy.stats.poisson``) are refused too.
    """
    if isinstance(dist, Empirical):
        if dist.values[0] <= 0:
            raise ConfigError(
                name,
                f"{name}: step times must be > 0, but the Empirical trace holds {dist.values[0]}",
            )
        return dist
    if isinstance(dist, (stats.rv_continuous, stats.rv_discrete)):
        raise ConfigError(
            name,
            f"{name}: pass a frozen distribution such as scipy.stats.{dist.name}(...), "
            "not the distribution family",
        )
    gen = getattr(dist, "dist", None)
    if not isinstance(gen, stats.rv_continuous) or not hasattr(dist, "ppf"):
        raise ConfigError(
            name,
            f"{name} must be a frozen scipy.stats continuous distribution "
            f"(e.g. scipy.stats.expon(loc=1, scale=0.5)) or toolkit.models.Empirical, got {dist!r}",
        )
    if any(np.ndim(v) != 0 for v in (*dist.args, *dist.kwds.values())):
        raise ConfigError(
            name,
            f"{name}: {dist.dist.name} has array-valued parameters (a family of laws); step times "
            "need one law with scalar parameters",
        )
    lo, hi = (float(v) for v in dist.support())
    if math.isnan(lo) or math.isnan(hi):
        raise ConfigError(
            name, f"{name}: invalid parameters for scipy.stats.{gen.name}: {dist_params(dist)}"
        )
    if lo < 0:
        raise ConfigError(
            name,
            f"{name}: step times must be >= 0, but scipy.stats.{gen.name}{dist_params(dist)} has "
            f"support starting at {lo}",
        )
    return dist


def parse_call(text: str, what: str) -> tuple[str, list, dict]:
    """Split ``"name(arg, key=value, ...)"`` (or a bare ``"name"``) into (name, args, kwargs),
    with literal arguments only: parsed with ``ast``, never evaluated. Errors start with ``what``
    (the argument being parsed, e.g. ``"dist"`` or ``"comm"``)."""
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as e:
        raise ConfigError(what, f"{what}: cannot parse {text!r} ({e.msg})") from None
    if isinstance(node, ast.Name):
        return node.id, [], {}
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
        raise ConfigError(what, f"{what}: expected 'name(key=value, ...)', got {text!r}")
    if any(k.arg is None for k in node.keywords):
        raise ConfigError(what, f"{what}: **kwargs are not accepted in {text!r}")
    try:
        args = [ast.literal_eval(a) for a in node.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
    except ValueError:
        raise ConfigError(what, f"{what}: arguments of {text!r} must be literals") from None
    return node.func.id, args, kwargs


def check_numbers(what: str, text: str, values: list) -> None:
    """ConfigError about ``what`` unless every value is a real number (no lists, strings or
    booleans: scipy.stats would broadcast a list into a vector of distributions)."""
    for value in values:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ConfigError(
                what, f"{what}: the arguments of {text!r} must be numbers, got {value!r}"
            )


def is_dist(obj: object) -> bool:
    """Whether ``obj`` looks like a step-time distribution (``rvs`` and ``mean``): a frozen
    scipy.stats distribution or an Empirical, as opposed to a number or a compute model."""
    return hasattr(obj, "rvs") and hasattr(obj, "mean")


def dist_repr(dist: object) -> str:
    """``name(args, key=value)`` of a frozen scipy distribution (an Empirical's own repr)."""
    if isinstance(dist, Empirical):
        return repr(dist)
    name = getattr(getattr(dist, "dist", None), "name", type(dist).__name__)
    args = [repr(a) for a in getattr(dist, "args", ())]
    args += [f"{k}={v!r}" for k, v in getattr(dist, "kwds", {}).items()]
    return f"{name}({', '.join(args)})"


def parse_dist(text: str, column: str | None = None) -> object:
    """Parse ``"name(arg, kw=literal, ...)"`` into ``getattr(scipy.stats, name)(...)`` (frozen), or
    a ``.csv`` path into ``Empirical.from_csv(path, column)``. Uses ``ast`` (never ``eval``): only
    literal arguments are accepted. ``"expon"`` alone means ``expon()``."""
    text = str(text).strip()
    if Path(text).is_dir():
        raise ConfigError(
            "dist", f"dist: {text!r} is a directory, not a distribution or a .csv trace"
        )
    if text.lower().endswith(".csv"):
        if not Path(text).exists():
            raise ConfigError("dist", f"dist: trace file {text!r} does not exist")
        return Empirical.from_csv(text, column=column)
    if column is not None:
        raise ConfigError(
            "column", f"column: only for a .csv trace, not for the distribution {text!r}"
        )
    name, args, kwargs = parse_call(text, "dist")
    check_numbers("dist", text, [*args, *kwargs.values()])
    family = getattr(stats, name, None)
    if isinstance(family, stats.rv_discrete):
        raise ConfigError(
            "dist",
            f"dist: {name!r} is a discrete scipy.stats distribution; step times need a continuous "
            "one (or an Empirical trace from a .csv file)",
        )
    if not isinstance(family, stats.rv_continuous):
        raise ConfigError("dist", f"dist: {name!r} is not a scipy.stats distribution")
    try:
        frozen = family(*args, **kwargs)
        with np.errstate(all="ignore"):  # an overflowing mean is refused below, not warned of
            mean = frozen.mean()  # scipy checks the shape parameters lazily
    except TypeError as e:
        raise ConfigError("dist", f"dist: bad arguments for {name}: {e}") from None
    if np.ndim(mean) != 0:
        raise ConfigError(
            "dist", f"dist: {text!r} has array-valued parameters; step times need one law"
        )
    if not np.isfinite(mean):
        raise ConfigError(
            "dist", f"dist: {text!r} has no finite mean (invalid or heavy-tailed parameters)"
        )
    return frozen
