"""Engines: what turns a :class:`~toolkit.runs.config.RunConfig` into a Schedule and Results.

Two implementations share one interface (:class:`Engine`):

* ``"replay"`` (:class:`toolkit.runs.run.ReplayEngine`): the clock simulates the Schedule, then
  replay trains the workload's model along it; times are simulated.
* ``"distributed"`` (:class:`toolkit.distributed.run.DistributedEngine`): the scheme runs as one
  process per rank on torch.distributed, with delays injected from the same step-time model; the
  Schedule and its times are measured.

The engine and its settings are a field of the config (:class:`EngineSpec`, the TOML table
``[engine]``), so they are part of the run's id: runs of two engines never share a run directory
or a sweep's finished point. Options that bound a run without changing what it computes
(``timeout``, ``wait_timeout``) are passed to :func:`toolkit.runs.run` and are not in the id.

A sweep's *executor* (local process pool, Ray, Slurm) is another thing: where runs execute.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from toolkit.checks import ConfigError, check_choice, check_positive

if TYPE_CHECKING:  # pragma: no cover
    from toolkit.cluster import Schedule
    from toolkit.replay import Results
    from toolkit.runs.config import RunConfig
    from toolkit.runs.directory import RunDirectory
    from toolkit.workloads import Workload

__all__ = [
    "ENGINES",
    "Engine",
    "EngineSpec",
    "Prepared",
    "RunOutcome",
    "eval_every",
    "get_engine",
    "manifest",
    "prepare",
]

# name -> "module:attribute" of the engine, imported when first asked for (the distributed
# engine sits in a layer above this one).
ENGINES = {
    "replay": "toolkit.runs.run:ReplayEngine",
    "distributed": "toolkit.distributed.run:DistributedEngine",
}
DISTRIBUTED_DEFAULTS = {"time_scale": 0.01, "inject": True, "collective": True}


@dataclass(frozen=True)
class EngineSpec:
    """Which engine runs a config, with its settings (distributed only): ``time_scale``
    (seconds of injected delay per unit of the step-time model, default 0.01), ``inject``
    (False: no injected delays, a real cluster's own) and ``collective`` (False: Sync through
    the server instead of ``all_reduce``). Unset settings of the distributed engine take those
    defaults when the spec is built, so a config file states every setting it ran with."""

    name: str = "replay"
    time_scale: float | None = None
    inject: bool | None = None
    collective: bool | None = None

    def __post_init__(self) -> None:
        check_choice("engine.name", self.name, tuple(ENGINES))
        settings = {k: getattr(self, k) for k in DISTRIBUTED_DEFAULTS}
        if self.name != "distributed":
            given = [k for k, v in settings.items() if v is not None]
            if given:
                raise ConfigError(
                    f"engine.{given[0]}",
                    f"engine.{given[0]}: only the distributed engine takes it "
                    f"(this config's engine is {self.name!r})",
                )
            return
        for key, default in DISTRIBUTED_DEFAULTS.items():
            if settings[key] is None:
                object.__setattr__(self, key, default)
        scale = check_positive("engine.time_scale", self.time_scale, allow_zero=True)
        object.__setattr__(self, "time_scale", scale)
        for key in ("inject", "collective"):
            if not isinstance(getattr(self, key), bool):
                value = getattr(self, key)
                raise ConfigError(
                    f"engine.{key}", f"engine.{key}: expected true or false, got {value!r}"
                )

    @classmethod
    def from_dict(cls, data: Any) -> EngineSpec:
        """An engine table (``{"name": ..., settings}``) or a bare name."""
        if isinstance(data, EngineSpec):
            return data
        if isinstance(data, str):
            return cls(data)
        if not isinstance(data, dict):
            raise ConfigError("engine", f"engine: expected a table with a name, got {data!r}")
        known = {"name", *DISTRIBUTED_DEFAULTS}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"engine.{unknown[0]}",
                f"engine.{unknown[0]}: unknown key in [engine]; valid: {', '.join(sorted(known))}",
            )
        return cls(**data)

    def to_dict(self) -> dict:
        """The table as a config file writes it: the name and the settings that are set."""
        out: dict[str, Any] = {"name": self.name}
        for key in DISTRIBUTED_DEFAULTS:
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    @property
    def default(self) -> bool:
        """True for the default engine (replay), which a config's id leaves out."""
        return self == EngineSpec()


class RunOutcome(NamedTuple):
    """What an engine returns: the run's Schedule (simulated or measured) and its Results."""

    schedule: Schedule
    results: Results


class Engine(Protocol):
    """Turns a config into a Schedule and Results, in ``directory`` when given (the engine
    saves what it needs to continue there; :func:`toolkit.runs.run` writes the final Results
    and marks the directory complete). ``schedule``: a simulated Schedule the caller already
    has (a sweep's cache), for engines that simulate one."""

    name: str

    def check(self, config: RunConfig, **options: Any) -> None:
        """Refuse (a ConfigError naming the field) what this engine cannot run, before any run
        directory or process is made."""

    def run(
        self,
        config: RunConfig,
        directory: RunDirectory | None,
        *,
        progress: bool = False,
        schedule: Schedule | None = None,
        **options: Any,
    ) -> RunOutcome: ...


def get_engine(name: str) -> Engine:
    """The engine called ``name`` (:data:`ENGINES`)."""
    check_choice("engine.name", name, tuple(ENGINES))
    module, attribute = ENGINES[name].split(":")
    return getattr(importlib.import_module(module), attribute)()


class Prepared(NamedTuple):
    """A config's workload (built, in the config's dtype) and the values it leaves to the
    workload's defaults: learning rate, per-worker batch size and the step budget (updates, or
    local steps for replica schemes) when the config gives neither updates nor a time budget."""

    workload: Workload
    lr: float
    batch_size: int
    updates: int | None


def prepare(config: RunConfig) -> Prepared:
    """:class:`Prepared` values of ``config``: the one place where both engines derive them."""
    from toolkit.workloads import get_workload

    workload = get_workload(config.workload, **config.workload_args).with_dtype(config.dtype)
    lr = workload.lr if config.lr is None else config.lr
    batch = workload.batch_size if config.batch_size is None else config.batch_size
    updates = config.updates
    if updates is None and config.time_budget is None:
        updates = workload.steps
    return Prepared(workload, float(lr), int(batch), updates)


EVALUATIONS = 20  # evaluations spread over a run's rows when the config sets no cadence


def eval_every(config: RunConfig, rows: int) -> int:
    """Rows between two evaluations of the test split: ``config.eval_every``, else the rows
    divided into ``config.evaluations`` (default :data:`EVALUATIONS`) equal parts, so that
    evaluations fall at the same fractions of every scheme's budget (for a time budget: at the
    same simulated times, whatever the scheme's rows per second)."""
    if config.eval_every is not None:
        return config.eval_every
    return max(1, math.ceil(rows / (config.evaluations or EVALUATIONS)))


def manifest(config: RunConfig, prepared: Prepared) -> dict:
    """The manifest entries every engine's Results carry: the run's science as it ran (config
    values with the workload's defaults filled in), its main metric and target."""
    wl = prepared.workload
    return {
        "scheme": config.scheme.to_dict(),
        "workload": wl.name,
        "lr": prepared.lr,
        "batch_size": prepared.batch_size,
        "momentum": config.momentum,
        "nesterov": config.nesterov,
        "seed": int(config.seed),
        "staleness": config.staleness,
        "max_staleness": config.max_staleness,
        "machines": int(config.scheme.rule.machines),
        "metric": wl.metric,
        "target": wl.target if config.target is None else config.target,
        "engine": config.engine.to_dict(),
    }
