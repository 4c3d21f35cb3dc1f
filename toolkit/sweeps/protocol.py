"""The comparison protocol: a spec's ``[protocol]`` table, the learning-rate search with automatic
extension, the named protocols' choices on tuning seeds, and the driver that runs them.

::

    [protocol]
    names = ["tuned", "scaled", "shared"]   # the protocols to evaluate (NAMES)
    tuning_seeds = [0, 1]                    # selection uses these seeds only
    evaluation_seeds = [2, 3, 4, 5, 6]       # disjoint; the only seeds reported
    factor = 3.0                             # an extension step multiplies (divides) lr by it
    max_extensions = 4                       # at most this many steps beyond each end of grid.lr
    score = "final"                          # or "best": the main metric's value selected on
    tune = ["momentum"]                      # grid axes chosen on tuning seeds besides lr
    target_fraction = 0.95                   # a workload's target when none is given (below)
    alpha = 0.05                             # family-wise level of each pairwise table (Holm)
    [protocol.targets.logreg]
    test_accuracy = 0.3                      # a given target: workload, metric, value

A **cell** is every config field except ``lr`` and ``seed`` (workload, scheme and its cluster,
step-time model, batch size, momentum, ...). Each cell's lr is searched on the log grid of
``grid.lr`` with the tuning seeds; the objective of an lr is the mean over tuning seeds of the
score (a loss negated, so higher is better; a diverged or failed run counts as -inf, so an lr with
one diverged seed cannot win). While the best lr lies at an end of the range run so far, the range
grows on that side by one point (lr / factor or lr * factor) until the best is inside it. The
search then ends with a status:

* ``interior``: the best lr has run neighbours on both sides, neither diverged on every seed;
* ``wall``: the neighbour above the best diverged on every tuning seed, so the optimum lies
  against the divergence limit, between the best and that neighbour;
* ``capped``: the best is still at an end after ``max_extensions`` steps on that side (or no lr
  gave a finite objective): the optimum may lie beyond; the report warns.

Protocols (each chooses, per cell, one lr on the tuning seeds; a spec may name several):

* ``tuned``: each scheme its own best (with ``tune``, also its best value of those axes).
* ``shared``: one setting for every scheme of a comparison: the lr (and ``tune`` values) whose
  mean objective over the schemes is best, searched and extended as one (a wall: some scheme
  diverged on every seed there).
* ``scaled`` / ``scaled_sqrt``: Chen, Pan, Monga, Bengio, Jozefowicz, "Revisiting Distributed
  Synchronous SGD" (arXiv 1604.00981v3, App. A.2/A.3), rule of thumb: the asynchronous learning
  rate gamma_0 = 0.045, the synchronous gamma_0 = 0.045 N, N the gradients averaged per update.
  Here the asynchronous rate is tuned (the ``tuned`` choice of the comparison's asynchronous
  reference: a scheme whose rule has no barrier, quorum 1 and no replicas, i.e. Async) and every
  scheme of the **synchronous family** (rule: a barrier and no replicas: Sync, Backup,
  KBatchSync, Delayed) gets that rate times ``rule.quorum`` (N: Backup(n, b) averages n of its
  n + b gradients), or times sqrt(quorum) for ``scaled_sqrt``, with the reference's ``tune``
  values; other schemes (K-async, K-batch-async, replica schemes) keep their ``tuned`` choice.
  Its status is the reference's.

A **comparison** (one pairwise table) holds the schemes whose cells agree on every field but the
scheme and the ``tune`` axes, on the same number of machines.

The chosen setting of each cell then runs on the evaluation seeds, and only those runs are
reported (:mod:`toolkit.sweeps.report`). Time to target uses, per workload, the given target or
``target_fraction`` times the best evaluation-seed mean final value any chosen setting reaches (a
loss: that best divided by the fraction).

The driver (:func:`run_protocol`) is stateless: every decision is recomputed from the finished
run directories (:func:`plan_protocol` is a pure function of the spec and the runs' outcomes),
each step runs only what the decisions need and is not complete
(:func:`toolkit.sweeps.runner.run_configs`), so after ``kill -9`` the same command starts only
what is missing and ends with the result of an uninterrupted run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from toolkit.checks import ConfigError, check_choice, check_int, check_interval, check_real
from toolkit.runs.config import RunConfig

if TYPE_CHECKING:
    from toolkit.sweeps.spec import SweepSpec

__all__ = [
    "NAMES",
    "STATUSES",
    "Outcome",
    "Plan",
    "Protocol",
    "Search",
    "Setting",
    "annotate",
    "asynchronous_reference",
    "cells_of",
    "outcomes_of",
    "plan_protocol",
    "resolve",
    "run_protocol",
    "scale_of",
    "search",
    "synchronous_family",
]

NAMES = ("shared", "tuned", "scaled", "scaled_sqrt")
STATUSES = ("interior", "wall", "capped")
SCORES = ("final", "best")
METRICS = ("test_accuracy", "test_loss")
_KEYS = (
    "names",
    "tuning_seeds",
    "evaluation_seeds",
    "factor",
    "max_extensions",
    "score",
    "tune",
    "target_fraction",
    "targets",
    "alpha",
)
_NOT_TUNABLE = ("lr", "seed", "scheme", "workload", "workload_args")


# ------------------------------------------------------------------ the [protocol] table
@dataclass(frozen=True)
class Protocol:
    """The ``[protocol]`` table (module docstring). ``evaluation_seeds`` defaults to the five
    smallest seeds that are not tuning seeds."""

    names: tuple[str, ...] = ("tuned",)
    tuning_seeds: tuple[int, ...] = (0, 1)
    evaluation_seeds: tuple[int, ...] | None = None
    factor: float = 3.0
    max_extensions: int = 4
    score: str = "final"
    tune: tuple[str, ...] = ()
    target_fraction: float = 0.95
    targets: dict = field(default_factory=dict)
    alpha: float = 0.05

    def __post_init__(self) -> None:
        names = _strings("protocol.names", self.names)
        if not names:
            raise ConfigError("protocol.names", "protocol.names: name at least one protocol")
        for name in names:
            if name not in NAMES:
                raise ConfigError(
                    "protocol.names",
                    f"protocol.names: unknown protocol {name!r}; valid: {', '.join(NAMES)}",
                )
        tuning = _seeds("protocol.tuning_seeds", self.tuning_seeds)
        if self.evaluation_seeds is None:
            free = (s for s in range(len(tuning) + 5) if s not in tuning)
            evaluation = tuple(next(free) for _ in range(5))
        else:
            evaluation = _seeds("protocol.evaluation_seeds", self.evaluation_seeds)
        both = sorted(set(tuning) & set(evaluation))
        if both:
            raise ConfigError(
                "protocol.evaluation_seeds",
                f"protocol.evaluation_seeds: {', '.join(map(str, both))} also in "
                "protocol.tuning_seeds; tuning and evaluation seeds must be disjoint",
            )
        factor = check_real("protocol.factor", self.factor)
        if not (math.isfinite(factor) and factor > 1):
            raise ConfigError(
                "protocol.factor", f"protocol.factor must be a number > 1, got {self.factor!r}"
            )
        check_int("protocol.max_extensions", self.max_extensions, 1)
        check_choice("protocol.score", self.score, SCORES)
        tune = _strings("protocol.tune", self.tune)
        for axis in tune:
            if axis in _NOT_TUNABLE or "." in axis:
                raise ConfigError(
                    "protocol.tune",
                    f"protocol.tune: {axis!r} cannot be tuned; tune config fields other than "
                    f"{', '.join(_NOT_TUNABLE)} (lr is always searched)",
                )
        check_interval("protocol.target_fraction", self.target_fraction, 0, 1, "(]")
        check_interval("protocol.alpha", self.alpha, 0, 1, "()")
        if not isinstance(self.targets, dict):
            raise ConfigError(
                "protocol.targets", "protocol.targets: expected tables [protocol.targets.WORKLOAD]"
            )
        for workload, table in self.targets.items():
            section = f"protocol.targets.{workload}"
            if not isinstance(table, dict) or not table:
                raise ConfigError(
                    section,
                    f"{section}: expected a table of metric = value (test_accuracy or test_loss)",
                )
            if len(table) > 1:
                raise ConfigError(section, f"{section}: give one metric's target, not {len(table)}")
            for metric, value in table.items():
                if metric not in METRICS:
                    raise ConfigError(
                        f"{section}.{metric}",
                        f"{section}.{metric}: unknown metric; valid: {', '.join(METRICS)}",
                    )
                v = check_real(f"{section}.{metric}", value)
                if not math.isfinite(v):
                    raise ConfigError(
                        f"{section}.{metric}", f"{section}.{metric} must be finite, got {v}"
                    )
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "tuning_seeds", tuning)
        object.__setattr__(self, "evaluation_seeds", evaluation)
        object.__setattr__(self, "factor", factor)
        object.__setattr__(self, "tune", tune)

    @classmethod
    def from_dict(cls, table: object) -> Protocol:
        """The protocol of a ``[protocol]`` table; an unknown key is an error naming it."""
        if not isinstance(table, dict):
            raise ConfigError("protocol", "protocol: expected a [protocol] table")
        unknown = sorted(set(table) - set(_KEYS))
        if unknown:
            raise ConfigError(
                f"protocol.{unknown[0]}",
                f"protocol.{unknown[0]}: unknown key in [protocol]; valid: {', '.join(_KEYS)}",
            )
        data = dict(table)
        for key in ("names", "tuning_seeds", "evaluation_seeds", "tune"):
            if key in data and isinstance(data[key], list):
                data[key] = tuple(data[key])
        return cls(**data)

    def check(self, spec: SweepSpec) -> None:
        """What the protocol needs of the rest of the spec: an lr grid to start from, no seed
        axis (the protocol owns the seeds), ``tune`` axes that the grid varies, targets for
        workloads of the spec and metrics they have, an asynchronous reference for ``scaled``."""
        grid = spec.grid
        if "lr" not in grid:
            raise ConfigError(
                "grid.lr", "grid.lr: a [protocol] spec searches lr from a grid; give grid.lr"
            )
        if "seed" in grid:
            raise ConfigError(
                "grid.seed",
                "grid.seed: a [protocol] spec takes its seeds from protocol.tuning_seeds and "
                "protocol.evaluation_seeds",
            )
        if any(a.field in ("lr", "seed") for a in spec.axes):
            raise ConfigError(
                "random.axes", "random.axes: lr and seed are the protocol's, not random axes"
            )
        for axis in self.tune:
            if axis not in grid and axis not in {a.field for a in spec.axes}:
                raise ConfigError(
                    "protocol.tune", f"protocol.tune: {axis!r} is not an axis of [grid] or [random]"
                )
        cells = cells_of(spec)
        workloads = {c.workload: c for c in cells}
        for workload, table in self.targets.items():
            section = f"protocol.targets.{workload}"
            if workload not in workloads:
                valid = ", ".join(sorted(workloads))
                raise ConfigError(
                    section,
                    f"{section}: no workload {workload!r} in the spec; its workloads: {valid}",
                )
            (metric,) = table
            have = _metrics(workloads[workload])
            if metric not in have:
                raise ConfigError(
                    f"{section}.{metric}",
                    f"{section}.{metric}: workload {workload!r} has no metric {metric}; its "
                    f"metrics: {', '.join(have)}",
                )
        if any(n.startswith("scaled") for n in self.names):
            for members in _by(cells, lambda c: _comparison_key(c, self.tune)).values():
                refs = {str(c.scheme) for c in members if asynchronous_reference(c.scheme)}
                if len(refs) != 1:
                    found = f"found {len(refs)}: {', '.join(sorted(refs))}" if refs else "none"
                    raise ConfigError(
                        "protocol.names",
                        "protocol.names: 'scaled' scales the tuned rate of one asynchronous "
                        "reference (a scheme whose rule has no barrier, quorum 1, no replicas: "
                        f"Async) per comparison; {found} in {_describe(members[0])}",
                    )


def _strings(name: str, value: object) -> tuple[str, ...]:
    values = (value,) if isinstance(value, str) else value
    if not isinstance(values, (list, tuple)) or not all(isinstance(v, str) for v in values):
        raise ConfigError(name, f"{name}: expected a list of names, got {value!r}")
    if len(set(values)) != len(values):
        raise ConfigError(name, f"{name}: a name is listed twice in {list(values)!r}")
    return tuple(values)


def _seeds(name: str, value: object) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(name, f"{name}: expected a non-empty list of seeds, got {value!r}")
    seeds = tuple(check_int(name, s, 0) for s in value)
    if len(set(seeds)) != len(seeds):
        raise ConfigError(name, f"{name}: a seed is listed twice in {list(seeds)!r}")
    return seeds


def _metrics(cell: RunConfig) -> tuple[str, ...]:
    """The metrics a cell's workload reports (test accuracy only for a classifier)."""
    from toolkit.workloads import get_workload

    workload = get_workload(cell.workload, **cell.workload_args)
    return ("test_accuracy", "test_loss") if workload.accuracy else ("test_loss",)


# ------------------------------------------------------------------ scheme roles
def synchronous_family(scheme) -> bool:
    """Chen et al.'s synchronous family, from the scheme's rule: a barrier, no replicas."""
    rule = scheme.rule
    return rule.barrier and not rule.replicas


def asynchronous_reference(scheme) -> bool:
    """Whether the scheme is plain asynchronous SGD by its rule: no barrier, quorum 1, no
    replicas (every gradient applied alone, on arrival)."""
    rule = scheme.rule
    return not rule.barrier and rule.quorum == 1 and not rule.replicas


def scale_of(scheme, name: str) -> float:
    """The ``scaled`` factor of a synchronous-family scheme: N = ``rule.quorum`` (gradients
    averaged per update, Chen et al. App. A.3), or sqrt(N) for ``scaled_sqrt``."""
    n = scheme.rule.quorum
    return float(n) if name == "scaled" else math.sqrt(n)


# ------------------------------------------------------------------ cells and keys
def cells_of(spec: SweepSpec) -> list[RunConfig]:
    """The spec's cells (module docstring), in the order of its points, each with lr unset
    and seed 0."""
    cells = {}
    for point in spec.points():
        cell = point.replace(lr=None, seed=0)
        cells.setdefault(cell.id(), cell)
    return list(cells.values())


def lr_grid(spec: SweepSpec) -> tuple[float, ...]:
    return tuple(sorted({float(v) for v in spec.grid["lr"]}))


def _lattice(grid: Sequence[float], factor: float, j: int) -> float:
    """The j-th lr of the search: grid[j] inside the grid, grid[0] / factor^-j below it,
    grid[-1] * factor^(j - k + 1) above it (12 significant digits, one float per point)."""
    k = len(grid)
    if 0 <= j < k:
        return float(grid[j])
    v = grid[0] * factor**j if j < 0 else grid[-1] * factor ** (j - k + 1)
    return _round(v)


def _round(v: float) -> float:
    return float(f"{v:.12g}")


def _fields(cell: RunConfig, drop: Sequence[str]) -> dict:
    d = cell.to_dict()
    d.pop("seed", None)
    d.pop("lr", None)
    for name in drop:
        d.pop(name, None)
    return d


def _comparison_key(cell: RunConfig, tune: Sequence[str]) -> str:
    """Cells compared in one table: all fields but scheme, lr, seed and ``tune``; same machines."""
    d = _fields(cell, ["scheme", *tune])
    d["machines"] = cell.scheme.rule.machines
    return json.dumps(d, sort_keys=True)


def _scheme_key(cell: RunConfig, tune: Sequence[str]) -> str:
    """The cells among which ``tuned`` picks one scheme's setting (its ``tune`` values)."""
    return json.dumps(_fields(cell, tune), sort_keys=True)


def _shared_key(cell: RunConfig) -> str:
    """The cells one ``shared`` search spans: all fields but scheme, lr, seed; same machines."""
    d = _fields(cell, ["scheme"])
    d["machines"] = cell.scheme.rule.machines
    return json.dumps(d, sort_keys=True)


def _by(items, key: Callable) -> dict:
    out: dict = {}
    for item in items:
        out.setdefault(key(item), []).append(item)
    return out


def _describe(cell: RunConfig) -> str:
    """A comparison in words: its workload and machines."""
    return f"workload {cell.workload}, {cell.scheme.rule.machines} machines"


# ------------------------------------------------------------------ outcomes
@dataclass(frozen=True)
class Outcome:
    """What selection reads of a finished run: its score oriented so that higher is better (a
    loss negated; -inf for a run that raised) and whether it diverged."""

    value: float
    diverged: bool = False

    @property
    def utility(self) -> float:
        """-inf unless a finite value of a run that did not diverge."""
        return self.value if (not self.diverged and math.isfinite(self.value)) else -math.inf


def outcomes_of(summary: pd.DataFrame, score: str = "final") -> dict[str, Outcome]:
    """The outcome of every finished run (complete or failed) of a :func:`toolkit.sweeps.load`
    summary."""
    out = {}
    if summary.empty or "state" not in summary:
        return out
    for row in summary.itertuples(index=False):
        state = row.state
        if state == "failed":
            out[row.run_id] = Outcome(-math.inf)
        elif state == "complete":
            value = float(getattr(row, score))
            if getattr(row, "metric", "test_accuracy") != "test_accuracy":
                value = -value
            out[row.run_id] = Outcome(value, getattr(row, "status", "ok") == "diverged")
    return out


# ------------------------------------------------------------------ the search
@dataclass(frozen=True)
class Search:
    """One lr search: over one cell, or over several (a ``shared`` search, whose objective is the
    mean over them). ``objective`` maps each lr run to its mean over cells of the mean over
    tuning seeds of the oriented score; ``status`` is ``"running"`` until it is settled."""

    kind: str  # "cell" or "shared"
    cells: tuple[RunConfig, ...]
    lrs: tuple[float, ...]
    objective: tuple[float, ...]
    best: float | None
    status: str
    below: int  # extension steps taken below the grid
    above: int  # and above it

    @property
    def settled(self) -> bool:
        return self.status != "running"

    @property
    def best_objective(self) -> float:
        if self.best is None:
            return -math.inf
        return self.objective[self.lrs.index(self.best)]

    def configs(self, seeds: Sequence[int]) -> list[RunConfig]:
        return [c.replace(lr=lr, seed=s) for c in self.cells for lr in self.lrs for s in seeds]


def search(
    cells: Sequence[RunConfig],
    grid: Sequence[float],
    protocol: Protocol,
    outcomes: Mapping[str, Outcome],
    kind: str = "cell",
) -> tuple[Search, list[RunConfig]]:
    """Replay the search over ``cells`` from ``grid`` on the outcomes known: returns where it
    stands and the tuning runs its next step needs (none once it is settled).

    Each step runs one more lr at the end where the best lies (both ends for a one-point
    range); a point's objective is the mean over cells of the mean of
    :attr:`Outcome.utility` over the tuning seeds."""
    seeds = protocol.tuning_seeds
    k, cap = len(grid), protocol.max_extensions
    lo, hi = 0, k - 1

    def point(j: int) -> list[RunConfig]:
        lr = _lattice(grid, protocol.factor, j)
        return [c.replace(lr=lr, seed=s) for c in cells for s in seeds]

    def result(status: str, best: int | None, values: dict) -> Search:
        js = range(lo, hi + 1)
        return Search(
            kind,
            tuple(cells),
            tuple(_lattice(grid, protocol.factor, j) for j in js),
            tuple(values.get(j, math.nan) for j in js),
            None if best is None else _lattice(grid, protocol.factor, best),
            status,
            -lo,
            hi - (k - 1),
        )

    while True:
        missing = [c for j in range(lo, hi + 1) for c in point(j) if c.id() not in outcomes]
        if missing:
            return result("running", None, {}), missing
        values, walls = {}, {}
        for j in range(lo, hi + 1):
            lr = _lattice(grid, protocol.factor, j)
            runs = [[outcomes[c.replace(lr=lr, seed=s).id()] for s in seeds] for c in cells]
            means = [np.mean([o.utility for o in seed_runs]) for seed_runs in runs]
            values[j] = float(np.mean(means)) if all(np.isfinite(means)) else -math.inf
            walls[j] = any(all(o.diverged for o in seed_runs) for seed_runs in runs)
        finite = [j for j in values if math.isfinite(values[j])]
        if not finite:
            if lo > -cap:
                lo -= 1
                continue
            return result("capped", None, values), []
        best = max(finite, key=lambda j: (values[j], -j))  # ties: the smaller lr
        grew = capped = False
        if best == lo:
            if lo > -cap:
                lo, grew = lo - 1, True
            else:
                capped = True
        if best == hi:
            if hi < k - 1 + cap:
                hi, grew = hi + 1, True
            else:
                capped = True
        if grew:
            continue
        if capped:
            status = "capped"
        elif best + 1 <= hi and walls[best + 1]:
            status = "wall"
        else:
            status = "interior"
        return result(status, best, values), []


# ------------------------------------------------------------------ settings and the plan
@dataclass(frozen=True)
class Setting:
    """A protocol's choice for one cell: ``lr`` (None where no lr gave a finite objective), the
    status of the search it came from, and how it was chosen (``rule``)."""

    protocol: str
    cell: RunConfig
    lr: float | None
    status: str
    rule: str
    comparison: str  # the key of the comparison (pairwise table) it belongs to

    def configs(self, seeds: Sequence[int]) -> list[RunConfig]:
        if self.lr is None:
            return []
        return [self.cell.replace(lr=self.lr, seed=s) for s in seeds]


@dataclass(frozen=True)
class Plan:
    """Where the protocol stands on the outcomes known: every search, every settled setting, and
    the runs still needed (tuning runs of the searches' next steps, evaluation runs of the
    settled settings). ``done`` once nothing is needed."""

    protocol: Protocol
    searches: tuple[Search, ...]
    settings: tuple[Setting, ...]
    needed: tuple[RunConfig, ...]

    @property
    def done(self) -> bool:
        return not self.needed

    def tuning_configs(self) -> list[RunConfig]:
        """Every tuning run of every search (the lrs visited so far)."""
        out = {}
        for s in self.searches:
            for c in s.configs(self.protocol.tuning_seeds):
                out.setdefault(c.id(), c)
        return list(out.values())

    def evaluation_configs(self) -> list[RunConfig]:
        out = {}
        for s in self.settings:
            for c in s.configs(self.protocol.evaluation_seeds):
                out.setdefault(c.id(), c)
        return list(out.values())

    def roles(self) -> dict[str, dict]:
        """Per run id: ``role`` (``tuning`` or ``evaluation``), ``protocols`` (the protocols
        whose decisions use it, comma-separated) and ``lr_status`` (its search's status, or the
        status of the settings it evaluates; ``name=status`` pairs where protocols differ)."""
        seeds = self.protocol.tuning_seeds
        uses: dict[str, dict] = {}
        for s in self.searches:
            names = _search_users(s, self.protocol.names)
            for c in s.configs(seeds):
                entry = uses.setdefault(c.id(), {"role": "tuning", "by": {}})
                for name in names:
                    entry["by"][name] = s.status
        for setting in self.settings:
            for c in setting.configs(self.protocol.evaluation_seeds):
                entry = uses.setdefault(c.id(), {"role": "evaluation", "by": {}})
                entry["by"][setting.protocol] = setting.status
        out = {}
        for run_id, entry in uses.items():
            by = dict(sorted(entry["by"].items()))
            statuses = set(by.values())
            status = (
                statuses.pop()
                if len(statuses) == 1
                else ",".join(f"{k}={v}" for k, v in by.items())
            )
            out[run_id] = {
                "role": entry["role"],
                "protocols": ",".join(by),
                "lr_status": status,
            }
        return out

    def warnings(self) -> list[str]:
        """One line for every capped setting: its best lr is an end of the search after the
        stated cap (the optimum may lie beyond), or no lr gave a finite score."""
        cap = self.protocol.max_extensions
        out = []
        for s in self.settings:
            if s.status != "capped":
                continue
            what = (
                f"its best lr {s.lr:g} is an end of the search after {cap} extension steps; "
                "the optimum may lie beyond"
                if s.lr is not None
                else "no lr gave a finite score; nothing to evaluate"
            )
            out.append(f"{s.protocol}: {s.cell.scheme} on {_describe(s.cell)} is capped: {what}")
        return out


def _search_users(s: Search, names: Sequence[str]) -> list[str]:
    if s.kind == "shared":
        return [n for n in names if n == "shared"]
    users = [n for n in names if n == "tuned"]
    scheme = s.cells[0].scheme
    if not synchronous_family(scheme):  # scaled reads the reference's and the others' searches
        users += [n for n in names if n.startswith("scaled")]
    return users


def plan_protocol(spec: SweepSpec, outcomes: Mapping[str, Outcome]) -> Plan:
    """The protocol's decisions on ``outcomes`` (run id -> Outcome): a pure function, so the
    same outcomes give the same plan, and outcomes of evaluation seeds are never read."""
    protocol: Protocol = spec.protocol
    tuning = set(protocol.tuning_seeds)
    grid = lr_grid(spec)
    cells = cells_of(spec)
    tune = protocol.tune
    names = protocol.names
    needed: dict[str, RunConfig] = {}

    def add(configs):
        for c in configs:
            if c.id() not in outcomes:
                needed.setdefault(c.id(), c)

    # the cell searches each protocol reads
    wants_cell = set()
    if "tuned" in names:
        wants_cell = {c.id() for c in cells}
    if any(n.startswith("scaled") for n in names):
        wants_cell |= {c.id() for c in cells if not synchronous_family(c.scheme)}
    cell_search: dict[str, Search] = {}
    for cell in cells:
        if cell.id() in wants_cell:
            s, missing = search([cell], grid, protocol, outcomes)
            assert all(c.seed in tuning for c in missing)
            cell_search[cell.id()] = s
            add(missing)
    shared_search: dict[str, Search] = {}
    if "shared" in names:
        for key, members in _by(cells, _shared_key).items():
            s, missing = search(members, grid, protocol, outcomes, kind="shared")
            shared_search[key] = s
            add(missing)

    settings: list[Setting] = []
    comparisons = _by(cells, lambda c: _comparison_key(c, tune))

    def tuned_choice(members: list[RunConfig]) -> Setting | None:
        """The best of one scheme's cells (its ``tune`` values) by their searches."""
        found = [cell_search[c.id()] for c in members]
        if not all(s.settled for s in found):
            return None
        best = max(range(len(found)), key=lambda i: found[i].best_objective)
        s = found[best]
        rule = "own lr search" + (f" and best {', '.join(tune)}" if tune else "")
        return Setting("tuned", members[best], s.best, s.status, rule, "")

    for comparison, members in comparisons.items():
        schemes = _by(members, lambda c: _scheme_key(c, tune))
        tuned = {}
        if "tuned" in names or any(n.startswith("scaled") for n in names):
            for key, own in schemes.items():
                if all(c.id() in cell_search for c in own):
                    tuned[key] = tuned_choice(own)
        if "tuned" in names:
            for choice in tuned.values():
                if choice is not None:
                    settings.append(_with(choice, comparison=comparison))
        if "shared" in names:
            by_values = _by(members, _shared_key)
            found = [shared_search[k] for k in by_values]
            if all(s.settled for s in found):
                best = max(range(len(found)), key=lambda i: found[i].best_objective)
                s = found[best]
                rule = f"one lr for {len(s.cells)} schemes" + (
                    f", best {', '.join(tune)}" if tune else ""
                )
                for cell in s.cells:
                    settings.append(Setting("shared", cell, s.best, s.status, rule, comparison))
        for name in (n for n in names if n.startswith("scaled")):
            refs = [c for c in members if asynchronous_reference(c.scheme)]
            ref = tuned.get(_scheme_key(refs[0], tune)) if refs else None
            if ref is None:
                continue
            ready = True
            chosen = []
            for key, own in schemes.items():
                scheme = own[0].scheme
                if synchronous_family(scheme):
                    want = _tune_values(ref.cell, tune)
                    cell = next((c for c in own if _tune_values(c, tune) == want), None)
                    if cell is None:  # the grid lacks the reference's tune values here
                        continue
                    m = scale_of(scheme, name)
                    lr = None if ref.lr is None else _round(ref.lr * m)
                    factor = f"{m:g}" if name == "scaled" else f"sqrt({scheme.rule.quorum})"
                    rule = f"{factor} x the tuned lr of {ref.cell.scheme}"
                    if ref.lr is not None:
                        rule += f" ({ref.lr:g})"
                    chosen.append(Setting(name, cell, lr, ref.status, rule, comparison))
                else:
                    choice = tuned.get(key)
                    if choice is None:
                        ready = False
                        break
                    chosen.append(_with(choice, protocol=name, comparison=comparison))
            if ready:
                settings.extend(chosen)

    for setting in settings:
        add(setting.configs(protocol.evaluation_seeds))
    searches = (*cell_search.values(), *shared_search.values())
    return Plan(protocol, searches, tuple(settings), tuple(needed.values()))


def _tune_values(cell: RunConfig, tune: Sequence[str]) -> tuple:
    return tuple(getattr(cell, t) for t in tune)


def _with(setting: Setting, **changes) -> Setting:
    from dataclasses import replace

    return replace(setting, **changes)


# ------------------------------------------------------------------ the driver
def resolve(
    spec: SweepSpec, measure: Callable[[list[RunConfig]], Mapping[str, Outcome]]
) -> tuple[Plan, int]:
    """Run the protocol to its end with ``measure`` (runs -> their outcomes): plan, measure
    what is needed, plan again, until nothing is needed. Returns the final plan and the number
    of steps. ``measure`` must give an outcome for every run it is handed."""
    outcomes: dict[str, Outcome] = {}
    steps = 0
    while True:
        plan = plan_protocol(spec, outcomes)
        if plan.done:
            return plan, steps
        got = measure(list(plan.needed))
        lost = [c.id() for c in plan.needed if c.id() not in got]
        if lost:
            raise RuntimeError(f"runs without an outcome after running them: {', '.join(lost)}")
        outcomes.update(got)
        steps += 1


def run_protocol(
    spec: SweepSpec,
    out: str | Path,
    *,
    jobs: int = 1,
    executor: str = "local",
    address: str | None = None,
    cluster: str = "auto",
    parameters: dict | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Run ``spec``'s protocol in the sweep directory ``out`` (its runs are sweep points there:
    resumable, Schedules cached; the executor arguments are
    :func:`toolkit.sweeps.runner.run_configs`'s); returns :func:`toolkit.sweeps.load`'s summary,
    which carries each run's role, protocols and lr status."""
    from toolkit.sweeps import store
    from toolkit.sweeps.runner import run_configs

    out = Path(out)
    step = 0

    def measure(configs: list[RunConfig]) -> dict[str, Outcome]:
        nonlocal step
        step += 1
        run_configs(
            configs,
            out,
            jobs=jobs,
            executor=executor,
            address=address,
            cluster=cluster,
            parameters=parameters,
            progress=progress,
            label=f"{spec.name} step {step}",
        )
        summary = store.load(out, ids=[c.id() for c in configs])[1]
        return outcomes_of(summary, spec.protocol.score)

    resolve(spec, measure)
    return store.load(out)[1]


def annotate(summary: pd.DataFrame, spec: SweepSpec) -> pd.DataFrame:
    """``summary`` with the columns ``role``, ``protocols`` and ``lr_status`` of
    :meth:`Plan.roles` (empty for runs the protocol does not use)."""
    if summary.empty:
        return summary
    plan = plan_protocol(spec, outcomes_of(summary, spec.protocol.score))
    roles = plan.roles()
    cols = {
        name: [roles.get(r, {}).get(name) for r in summary["run_id"]]
        for name in ("role", "protocols", "lr_status")
    }
    return summary.assign(**cols)
