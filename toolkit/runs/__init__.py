"""Runs: one validated config (:class:`RunConfig`) that fully determines a run, its engine
(:mod:`toolkit.runs.engine`: the simulator or the real backend), and ``run(config, out)``, which
runs it in a directory that can be stopped and continued (:mod:`toolkit.runs.directory`)."""

from toolkit.runs.config import RunConfig
from toolkit.runs.directory import RunDirectory
from toolkit.runs.engine import ENGINES, Engine, EngineSpec, RunOutcome, get_engine, prepare
from toolkit.runs.run import Interrupted, ReplayEngine, run, schedule_for
from toolkit.runs.stopping import Plateau

__all__ = [
    "ENGINES",
    "Engine",
    "EngineSpec",
    "Interrupted",
    "Plateau",
    "ReplayEngine",
    "RunConfig",
    "RunDirectory",
    "RunOutcome",
    "get_engine",
    "prepare",
    "run",
    "schedule_for",
]
