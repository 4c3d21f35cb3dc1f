"""Sweep specs: a base RunConfig and the axes that vary it, declared once in TOML or Python.

::

    name = "lr-by-seed"
    skip_invalid = ["momentum"]  # optional: points refused for these fields are left out (e.g.
                                 # momentum x replica schemes) instead of being errors

    [base]                       # a RunConfig table (toolkit.runs.config)
    updates = 300
    compute = "expon(loc=1, scale=0.5)"
    [base.scheme]
    name = "sync"
    n = 8
    [base.workload]
    name = "mnist1d_mlp"

    [grid]                       # every combination of these values
    lr = [0.03, 0.1, 0.3]
    seed = [0, 1, 2]
    "scheme.n" = [8, 16]         # a field inside a table, by its dotted path
    scheme = [{name = "sync", n = 8}, {name = "backup", n = 7, b = 1}]   # whole tables

    [random]                     # and, for each grid point, `count` quasi-random points
    count = 8
    sequence = "sobol"           # or "halton" (scipy.stats.qmc, scrambled with `seed`)
    seed = 0
    [random.axes.lr]
    low = 0.01
    high = 1.0
    log = true

    [base.engine]                # optional: every point on the real backend (the engine is
    name = "distributed"         # a config field, toolkit.runs.engine; default "replay":
    time_scale = 0.01            # simulate, then train along the Schedule); a grid may vary it

    [protocol]                   # optional: the comparison protocol (toolkit.sweeps.protocol)
    names = ["tuned", "scaled"]  # lr searched per cell from grid.lr, chosen on tuning seeds,
                                 # reported on evaluation seeds

Point i of the quasi-random sequence is the i-th of the scrambled sequence of the spec's seed, so
every point is reproducible from the spec and its index (as AlgoPerf samples tuning trials). Axes
apply in order of their paths' depth (``scheme`` before ``scheme.n``). The spec is validated
before anything runs: an unknown key or a wrong type is an error naming it and its line, and every
point must make a valid RunConfig. With a ``[protocol]`` table the grid's points are the cells and
the starting lr grid of the protocol, which owns the seeds (:mod:`toolkit.sweeps.protocol`).

A spec holds at most :data:`MAX_POINTS` points, counted from its lists without building them
(:attr:`SweepSpec.size`). Reading a spec builds each distinct value once (each value of each grid
axis with the other axes at their first values, and each quasi-random point), not every point of
the product; :meth:`SweepSpec.points` builds the points as they are read, so a combination of
valid values that makes no valid RunConfig (KAsync's ``scheme.k`` above its ``scheme.n``, say) is
an error naming the point when the points are read, which the runner does before any run starts.
With ``skip_invalid`` the points are built at once, the refused ones left out.
"""

from __future__ import annotations

import copy
import itertools
import math
import operator
import re
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from scipy.stats import qmc

from toolkit.checks import ConfigError, check_choice, check_int, check_real
from toolkit.runs.config import RunConfig
from toolkit.sweeps.protocol import Protocol

__all__ = ["MAX_POINTS", "Axis", "Points", "SweepSpec"]

# The most points a spec may hold: at a second per run, more than a day on one core; the runner
# and the store build every point to read its id (1-2 ms each, measured on 2 cores).
MAX_POINTS = 100_000
SEQUENCES = ("sobol", "halton")
_TOP = ("name", "base", "grid", "random", "protocol", "skip_invalid")


@dataclass(frozen=True)
class Axis:
    """A quasi-random axis: ``field`` from ``low`` to ``high`` (log-uniform with ``log``,
    rounded with ``integer``)."""

    field: str
    low: float
    high: float
    log: bool = False
    integer: bool = False

    def __post_init__(self) -> None:
        check_real(f"random.axes.{self.field}.low", self.low)
        check_real(f"random.axes.{self.field}.high", self.high)
        if not self.low < self.high:
            raise ConfigError(
                f"random.axes.{self.field}", f"random.axes.{self.field}: low must be < high"
            )
        if self.log and self.low <= 0:
            raise ConfigError(
                f"random.axes.{self.field}", f"random.axes.{self.field}: log needs low > 0"
            )

    def value(self, u: float) -> float | int:
        """The axis value at u in [0, 1)."""
        if self.log:
            v = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        else:
            v = self.low + u * (self.high - self.low)
        return round(v) if self.integer else float(v)


@dataclass(frozen=True)
class SweepSpec:
    """A base RunConfig (a ``RunConfig`` or its plain table), grid axes (``{path: values}``) and
    quasi-random axes (module docstring)."""

    base: dict | RunConfig
    grid: dict = field(default_factory=dict)
    axes: tuple[Axis, ...] = ()
    count: int = 0
    sequence: str = "sobol"
    seed: int = 0
    name: str = "sweep"
    protocol: Protocol | None = None
    skip_invalid: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.base, RunConfig):
            object.__setattr__(self, "base", self.base.to_dict())
        if self.protocol is not None and not isinstance(self.protocol, Protocol):
            object.__setattr__(self, "protocol", Protocol.from_dict(self.protocol))
        if not isinstance(self.base, dict):
            raise ConfigError("base", "base: expected a RunConfig table")
        for path, values in self.grid.items():
            if not isinstance(values, list) or not values:
                raise ConfigError(
                    f"grid.{path}", f"grid.{path}: expected a non-empty list of values"
                )
        check_choice("random.sequence", self.sequence, SEQUENCES)
        check_int("random.count", self.count, 0)
        if self.axes and not self.count:
            raise ConfigError("random.count", "random.count: quasi-random axes need count >= 1")
        check_int("random.seed", self.seed, 0)
        skip = self.skip_invalid
        if not isinstance(skip, (list, tuple)) or not all(isinstance(f, str) for f in skip):
            raise ConfigError(
                "skip_invalid", f"skip_invalid: expected a list of config fields, got {skip!r}"
            )
        object.__setattr__(self, "skip_invalid", tuple(skip))
        if self.size > MAX_POINTS:
            axes = [f"{path} ({len(values)})" for path, values in self.grid.items()]
            if self.axes:
                axes.append(f"random.count ({self.count})")
            field_ = "grid" if self.grid else "random.count"
            raise ConfigError(
                field_,
                f"{field_}: {' x '.join(axes)} = {self.size:,} points, above the limit of "
                f"{MAX_POINTS:,} a sweep may hold; split it into smaller sweeps",
            )

    @property
    def size(self) -> int:
        """The number of points, counted without building them: the product of the grid's list
        lengths times ``random.count`` (1 without quasi-random axes)."""
        grid = math.prod(len(values) for values in self.grid.values())
        return grid * (self.count if self.axes else 1)

    # ------------------------------------------------------------------ reading
    @classmethod
    def from_toml(cls, text: str) -> SweepSpec:
        """The spec of a TOML text; errors name the key and its line."""
        if not isinstance(text, str):
            raise ConfigError("spec", f"spec: expected TOML text, got {type(text).__name__}")
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ConfigError("spec", f"spec: not TOML ({err})") from None
        try:
            spec = cls._from_dict(data)
            spec.points()  # each distinct value must make a valid RunConfig (Points.check)
            spec._check_replaced_base()
            if spec.protocol is not None:
                spec.protocol.check(spec)
        except ConfigError as err:
            line = _locate(text, getattr(err, "where", err.field))
            if line is None:
                raise
            raise ConfigError(err.field, f"{err} (line {line})") from None
        return spec

    @classmethod
    def load(cls, path: str | Path) -> SweepSpec:
        return cls.from_toml(Path(path).read_text())

    @classmethod
    def _from_dict(cls, data: dict) -> SweepSpec:
        if "engine" in data:
            raise ConfigError(
                "engine",
                "engine: the engine is a field of the run config: write it as [base.engine] "
                "(or vary it in [grid])",
            )
        unknown = sorted(set(data) - set(_TOP))
        if unknown:
            raise ConfigError(
                unknown[0], f"{unknown[0]}: unknown key; a spec has {', '.join(_TOP)}"
            )
        grid = data.get("grid", {})
        if not isinstance(grid, dict):
            raise ConfigError("grid", "grid: expected a table of field = [values]")
        random = data.get("random", {})
        if not isinstance(random, dict):
            raise ConfigError("random", "random: expected a table (count, sequence, seed, axes)")
        random = dict(random)
        known = {"count", "sequence", "seed", "axes"}
        extra = sorted(set(random) - known)
        if extra:
            raise ConfigError(
                f"random.{extra[0]}",
                f"{extra[0]}: unknown key in [random]; valid: {', '.join(sorted(known))}",
            )
        axes, tables = [], random.pop("axes", {})
        if not isinstance(tables, dict):
            raise ConfigError("random.axes", "random.axes: expected a table of [random.axes.FIELD]")
        for name, table in tables.items():
            if not isinstance(table, dict):
                raise ConfigError(
                    f"random.axes.{name}",
                    f"{name}: expected a table with low, high (and log, integer)",
                )
            bad = sorted(set(table) - {"low", "high", "log", "integer"})
            missing = sorted({"low", "high"} - set(table))
            if missing:
                raise ConfigError(
                    f"random.axes.{name}.{missing[0]}",
                    f"random.axes.{name}: {missing[0]} is required",
                )
            if bad:
                raise ConfigError(
                    f"random.axes.{name}.{bad[0]}", f"{bad[0]}: unknown key in [random.axes.{name}]"
                )
            axes.append(Axis(name, **table))
        return cls(
            base=data.get("base", {}),
            grid=dict(grid),
            axes=tuple(axes),
            name=_name(data.get("name", "sweep")),
            protocol=Protocol.from_dict(data["protocol"]) if "protocol" in data else None,
            skip_invalid=data.get("skip_invalid", ()),
            **random,
        )

    def _check_replaced_base(self) -> None:
        """A ``[base]`` value that the grid or a random axis replaces must be valid too: a
        typo there (``lr = -1``) would otherwise be silent until the axis is removed."""
        varied = set(self.grid) | {a.field for a in self.axes}
        points = self.points()
        if not len(points):
            return
        for key, value in self.base.items():
            if key in varied and "." not in key and not isinstance(value, dict):
                try:
                    points[0].replace(**{key: value})
                except (ConfigError, TypeError) as err:
                    raise ConfigError(
                        f"base.{key}",
                        f"base.{key}: the grid replaces it, but it must be valid too ({err})",
                    ) from None

    # ------------------------------------------------------------------ points
    def random_points(self) -> list[dict]:
        """The quasi-random points, one {field: value} per index 0..count-1."""
        if not self.axes:
            return [{}]
        d = len(self.axes)
        if self.sequence == "sobol":
            engine = qmc.Sobol(d, scramble=True, seed=self.seed)
        else:
            engine = qmc.Halton(d, scramble=True, seed=self.seed)
        u = engine.random(self.count)
        return [
            {a.field: a.value(float(u[i, j])) for j, a in enumerate(self.axes)}
            for i in range(self.count)
        ]

    def points(self) -> Sequence[RunConfig]:
        """Every point of the sweep as a RunConfig, the grid's product times the random points:
        a sequence that builds each point as it is read (module docstring). The points that
        hold each distinct value are built here once, so a bad value is an error at once. With
        ``skip_invalid``, a list of the points less those whose config is refused for one of its
        fields (e.g. ``momentum`` crossed with replica schemes, which take no momentum on shared
        parameters); any other invalid point is an error."""
        return self._points

    @cached_property
    def _points(self) -> Sequence[RunConfig]:
        points = Points(self)
        if not self.skip_invalid:
            points.check()
            return points
        kept = [c for c in points.built() if c is not None]
        if not kept:
            raise ConfigError("skip_invalid", "skip_invalid: every point of the grid was skipped")
        return kept


def _name(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError("name", f"name: expected the sweep's name as text, got {value!r}")
    return value


class Points(Sequence):
    """The points of a :class:`SweepSpec`, built as they are read: point i is grid point
    ``i // R`` (``itertools.product`` order over the grid's paths by depth) with random point
    ``i % R``, R the random points (1 without quasi-random axes)."""

    def __init__(self, spec: SweepSpec) -> None:
        self.spec = spec
        self.paths = sorted(spec.grid, key=lambda p: p.count("."))
        self.randoms = spec.random_points()

    def __len__(self) -> int:
        return self.spec.size

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = operator.index(i)
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"point {i} of a sweep of {n}")
        g, r = divmod(i % n, len(self.randoms))
        values = []
        for path in reversed(self.paths):
            g, d = divmod(g, len(self.spec.grid[path]))
            values.append(self.spec.grid[path][d])
        return self._build(values[::-1], self.randoms[r])

    def __iter__(self) -> Iterator[RunConfig]:
        for values in itertools.product(*(self.spec.grid[p] for p in self.paths)):
            for extra in self.randoms:
                yield self._build(values, extra)

    def built(self) -> Iterator[RunConfig | None]:
        """Every point in order, None for one refused for a field in ``skip_invalid``."""
        for values in itertools.product(*(self.spec.grid[p] for p in self.paths)):
            for extra in self.randoms:
                try:
                    yield self._build(values, extra)
                except ConfigError as err:
                    if err.field not in self.spec.skip_invalid:
                        raise
                    yield None

    def check(self) -> None:
        """Build the points that hold each distinct value once: the first value of every axis,
        then each further value of each grid axis with the others at their first values, and
        each further random point; an error names the point."""
        first = [self.spec.grid[p][0] for p in self.paths]
        self._build(first, self.randoms[0])
        for k, path in enumerate(self.paths):
            for value in self.spec.grid[path][1:]:
                self._build([*first[:k], value, *first[k + 1 :]], self.randoms[0])
        for extra in self.randoms[1:]:
            self._build(first, extra)

    def _build(self, values: Sequence, extra: dict) -> RunConfig:
        """The RunConfig of the base with the grid ``values`` (in :attr:`paths` order) and the
        random point ``extra`` applied."""
        table = copy.deepcopy(self.spec.base)
        assigned = [*zip(self.paths, values, strict=True), *extra.items()]
        for path, value in assigned:
            _set(table, path, value)
        try:
            return RunConfig.from_dict(table)
        except ConfigError as err:
            point = ", ".join(f"{p} = {v!r}" for p, v in assigned)
            raise _PointError(
                err.field,
                f"{err}" + (f" (at the point {point})" if point else ""),
                _where(err.field, self.paths, extra),
            ) from None


class _PointError(ConfigError):
    """A point that is not a valid RunConfig; ``where`` is the spec path where its bad value was
    set (``base.<field>``, ``grid.<path>`` or ``random.axes.<path>``)."""

    def __init__(self, field: str, message: str, where: str) -> None:
        super().__init__(field, message)
        self.where = where

    def __reduce__(self):
        return type(self), (self.field, str(self), self.where)


def _where(field: str, grid: list[str], axes: dict) -> str:
    """The spec path that set the config ``field``: the last axis whose path is the field, a
    table holding it (``scheme`` for ``scheme.n``) or a field of it; else the base table."""
    for table, paths in (("random.axes", list(axes)), ("grid", grid)):
        for path in reversed(paths):
            if field == path or field.startswith(path + ".") or path.startswith(field + "."):
                return f"{table}.{path}"
    return f"base.{field}"


def _set(table: dict, path: str, value: object) -> None:
    """table[a][b] = value for path "a.b" (a workload name given as a string stays a name)."""
    keys = path.split(".")
    for key in keys[:-1]:
        sub = table.get(key)
        if isinstance(sub, str) and key == "workload":
            sub = {"name": sub}
        if not isinstance(sub, dict):
            sub = {}
        table[key] = sub
        table = sub
    table[keys[-1]] = copy.deepcopy(value)


def _locate(text: str, path: str) -> int | None:
    """The line of the spec path ``path`` (``grid.lr``, ``base.scheme.n``,
    ``random.axes.lr.low``): its key inside the deepest table ``[...]`` that the text opens
    along the path (else the line opening that table), or a top-level key."""
    parts = path.split(".")
    for i in range(len(parts) - 1, 0, -1):
        section, key = ".".join(parts[:i]), ".".join(parts[i:])
        line = _line_of(text, key, section)
        if line is not None:
            return line
    return _line_of(text, path)


def _line_of(text: str, key: str, section: str | None = None) -> int | None:
    """The first line (1-based) where ``key`` (or its last dotted part) is assigned or opens a
    table; with ``section``, the first such line inside the table ``[section]`` (or its
    sub-tables), else the line that opens it."""
    lines = text.splitlines()
    start, stop = 0, len(lines)
    if section is not None:
        head = re.compile(rf"^\s*\[\s*{re.escape(section)}\s*[\].]")
        opened = [i for i, line in enumerate(lines) if head.search(line)]
        if not opened:
            return None
        start = opened[0]
        later = [
            i
            for i in range(start + 1, len(lines))
            if re.match(r"^\s*\[", lines[i]) and not head.search(lines[i])
        ]
        stop = later[0] if later else len(lines)
    names = [key, key.rsplit(".", 1)[-1]] if key else []
    for name in names:
        pat = re.compile(
            rf'^\s*(\[+\s*[\w.]*?"?{re.escape(name)}"?\s*\]+|"?{re.escape(name)}"?\s*=)'
        )
        for i in range(start, stop):
            if pat.search(lines[i]):
                return i + 1
    return start + 1 if section is not None else None
