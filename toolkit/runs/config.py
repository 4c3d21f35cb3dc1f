"""RunConfig: one frozen value that fully determines a run (simulate a Schedule, then train).

Round trips to a plain dict, JSON and TOML (the file a user writes by hand)::

    seed = 0
    compute = "expon(loc=1, scale=0.5)"    # step times (toolkit.models.parse_compute)
    comm = "ParameterServer(nbytes=4e6, bandwidth=1.25e9, latency=1e-4)"
    updates = 500                          # or time_budget = 300.0 (simulated time)
    lr = 0.1
    momentum = 0.9                         # heavy ball; nesterov = true for Nesterov
    staleness = "lr"

    [scheme]
    name = "backup"
    n = 16
    b = 2

    [workload]
    name = "mnist1d_mlp"
    n_train = 4000                         # the workload's own keyword arguments

    [plateau]                              # optional: stop once the main metric plateaus
    window = 5                             # (toolkit.runs.stopping); updates / time_budget
    delta = 0.002                          # stay the maximum budget

    [engine]                               # optional: the default is the simulator
    name = "distributed"                   # ("replay"); toolkit.runs.engine
    time_scale = 0.01

:meth:`RunConfig.id` is a stable hash of the canonical form (sorted JSON), the name sweeps and
run directories use; the default engine (replay) is left out of it, any other engine and its
settings are in it. Unset values (None) take the workload's defaults when the run starts
(:func:`toolkit.runs.engine.prepare`): ``lr``, ``batch_size`` and, without ``updates`` or
``time_budget``, its step budget. A config file must name its scheme and its workload.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.checks import (
    ConfigError,
    check_choice,
    check_int,
    check_interval,
    check_path,
    check_positive,
)
from toolkit.models.comm import parse_comm
from toolkit.models.stragglers import parse_compute
from toolkit.runs.engine import EngineSpec
from toolkit.runs.stopping import Plateau
from toolkit.schemes import STALENESS, Scheme, Staleness
from toolkit.workloads import WORKLOADS

__all__ = ["DTYPES", "RunConfig"]

DTYPES = ("float32", "float64")


@functools.lru_cache(maxsize=1024)
def _parsed_once(parse, text: str) -> None:
    parse(text)


def _check_model_text(parse, text) -> None:
    """``parse(text)`` (``parse_compute`` or ``parse_comm``), raising its ConfigError; a text
    that parsed once is not parsed again (sweeps re-make thousands of configs from a few texts,
    and building a frozen scipy distribution costs more than every other check of a config),
    except one naming a ``.csv`` trace, which is read again as the file may have changed."""
    if isinstance(text, str) and ".csv" not in text.lower():
        _parsed_once(parse, text)
    else:
        parse(text)


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run (module docstring); validated when built."""

    scheme: Scheme
    workload: str = "mnist1d_mlp"
    workload_args: dict = field(default_factory=dict)
    compute: str = "expon(loc=1, scale=0.5)"
    comm: str | None = None
    lr: float | None = None
    momentum: float = 0.0
    nesterov: bool = False
    batch_size: int | None = None
    staleness: str = "none"
    max_staleness: int | None = None
    updates: int | None = None
    time_budget: float | None = None
    target: float | None = None
    plateau: Plateau | None = None
    eval_every: int | None = None
    evaluations: int | None = None
    seed: int = 0
    device: str = "auto"
    dtype: str = "float32"
    engine: EngineSpec = field(default_factory=EngineSpec)

    def __post_init__(self) -> None:
        if not isinstance(self.scheme, Scheme):
            raise ConfigError(
                "scheme", f"scheme: expected a toolkit.schemes scheme, got {self.scheme!r}"
            )
        if self.workload not in WORKLOADS:
            valid = ", ".join(sorted(WORKLOADS))
            raise ConfigError(
                "workload", f"workload: unknown workload {self.workload!r}; valid: {valid}"
            )
        if not isinstance(self.workload_args, dict):
            raise ConfigError(
                "workload_args", "workload_args: expected a table of keyword arguments"
            )
        for key, value in self.workload_args.items():
            _check_plain(f"workload.{key}", value)
        _check_workload_args(self.workload, self.workload_args)
        _check_model_text(parse_compute, self.compute)  # errors name "compute"
        if self.comm is not None:
            _check_model_text(parse_comm, self.comm)
        if self.lr is not None:
            check_positive("lr", self.lr)
        check_interval("momentum", self.momentum, 0.0, 1.0, "[)")
        if not isinstance(self.nesterov, bool):
            raise ConfigError("nesterov", f"nesterov must be true or false, got {self.nesterov!r}")
        if self.momentum == 0.0:  # Nesterov without momentum is plain SGD: one config, one id
            object.__setattr__(self, "nesterov", False)
        if self.batch_size is not None:
            check_int("batch_size", self.batch_size)
        check_choice("staleness", self.staleness, STALENESS)
        staleness = Staleness(self.staleness, self.max_staleness)
        # the scheme's update rule takes these (replica schemes refuse momentum, staleness)
        self.scheme.updates(
            1.0, momentum=float(self.momentum), nesterov=self.nesterov, staleness=staleness
        )
        if self.updates is not None and self.time_budget is not None:
            raise ConfigError(
                "time_budget", "updates, time_budget: give one stopping rule, not both"
            )
        if self.updates is not None:
            check_int("updates", self.updates, 1, 2**63 - 1)  # an int64 column
        if self.time_budget is not None:
            check_positive("time_budget", self.time_budget)
        if self.target is not None:
            check_interval("target", self.target, -math.inf, math.inf, "()")
        if self.plateau is not None:
            object.__setattr__(self, "plateau", Plateau.from_dict(self.plateau))
        object.__setattr__(self, "engine", EngineSpec.from_dict(self.engine))
        if self.eval_every is not None:
            check_int("eval_every", self.eval_every)
        if self.evaluations is not None:
            check_int("evaluations", self.evaluations)
            if self.eval_every is not None:
                raise ConfigError(
                    "evaluations", "evaluations, eval_every: give one evaluation cadence, not both"
                )
        check_int("seed", self.seed, 0)
        for name in ("lr", "momentum", "time_budget", "target"):  # 1 and 1.0: one config, one id
            if getattr(self, name) is not None:
                object.__setattr__(self, name, float(getattr(self, name)))
        if not isinstance(self.device, str):
            raise ConfigError("device", f"device: expected a device name, got {self.device!r}")
        check_choice("dtype", self.dtype, DTYPES)

    # ------------------------------------------------------------------ plain values
    def to_dict(self) -> dict:
        """Plain values: the scheme and the workload as tables, unset values left out."""
        out: dict[str, Any] = {}
        tables = ("scheme", "workload", "workload_args", "plateau", "engine")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in tables or value is None:
                continue
            if f.name == "nesterov" and not value:  # configs before the field had no key
                continue
            out[f.name] = value
        out["scheme"] = self.scheme.to_dict()
        out["workload"] = {"name": self.workload, **self.workload_args}
        if self.plateau is not None:
            out["plateau"] = self.plateau.to_dict()
        if not self.engine.default:
            out["engine"] = self.engine.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict) -> RunConfig:
        """The inverse of :meth:`to_dict`; an unknown key is an error naming it."""
        if not isinstance(data, dict):
            raise ConfigError("config", f"config: expected a table, got {type(data).__name__}")
        data = dict(data)
        scheme = data.pop("scheme", None)
        if not isinstance(scheme, dict) or "name" not in scheme:
            raise ConfigError("scheme", "scheme: a [scheme] table with a name is required")
        workload = data.pop("workload", None)
        if isinstance(workload, str):
            workload = {"name": workload}
        if not isinstance(workload, dict) or "name" not in workload:
            raise ConfigError("workload", "workload: a [workload] table with a name is required")
        workload = dict(workload)
        known = {f.name for f in dataclasses.fields(cls)} - {"scheme", "workload", "workload_args"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                unknown[0], f"{unknown[0]}: unknown key; valid: {', '.join(sorted(known))}"
            )
        if "plateau" in data:
            data["plateau"] = Plateau.from_dict(data["plateau"])
        if "engine" in data:
            data["engine"] = EngineSpec.from_dict(data["engine"])
        try:
            built = Scheme.from_dict(scheme)
        except ConfigError as err:  # the scheme's n is the config's scheme.n
            raise err.within("scheme") from None
        return cls(
            scheme=built,
            workload=workload.pop("name"),
            workload_args=workload,
            **data,
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError("config", f"config: not JSON ({err})") from None
        return cls.from_dict(data)

    def to_toml(self) -> str:
        """TOML text that :meth:`from_toml` reads back to an equal config."""
        d = self.to_dict()
        tables = {k: d.pop(k) for k in ("scheme", "workload", "plateau", "engine") if k in d}
        lines = [f"{k} = {_toml_value(v)}" for k, v in sorted(d.items())]
        for name, table in tables.items():
            lines += ["", f"[{name}]"] + [f"{k} = {_toml_value(v)}" for k, v in table.items()]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_toml(cls, text: str) -> RunConfig:
        if not isinstance(text, str):
            raise ConfigError("config", f"config: expected TOML text, got {type(text).__name__}")
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ConfigError("config", f"config: not TOML ({err})") from None
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        """A config from a ``.toml`` or ``.json`` file."""
        path = check_path("path", path)
        if path.suffix not in (".toml", ".json"):
            raise ConfigError("path", f"path: {str(path)!r} is not a .toml or .json config file")
        text = path.read_text()
        return cls.from_json(text) if path.suffix == ".json" else cls.from_toml(text)

    def id(self) -> str:
        """Stable id: the first 16 hex digits of sha256 of the sorted JSON form."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def replace(self, **changes) -> RunConfig:
        """A copy with ``changes`` (validated again)."""
        return dataclasses.replace(self, **changes)


def _check_workload_args(name: str, args: dict) -> None:
    """Each key of ``args`` must be a keyword argument of the workload's factory."""
    params = inspect.signature(WORKLOADS[name]).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    valid = [k for k, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL]
    for key in args:
        if key not in valid:
            raise ConfigError(
                f"workload.{key}",
                f"workload.{key}: not an argument of workload {name!r}; valid: {', '.join(valid)}",
            )


def _check_plain(name: str, value: object) -> None:
    if isinstance(value, (bool, int, float, str)):
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_plain(f"{name}[{i}]", v)
        return
    raise ConfigError(name, f"{name}: expected a number, string, boolean or list, got {value!r}")


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string is a JSON string
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ConfigError("config", f"config: cannot write {value!r} to TOML")
