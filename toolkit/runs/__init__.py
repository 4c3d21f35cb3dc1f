"""Runs: one validated config (:class:`RunConfig`) that fully determines a run, and
``run(config, out)``, which simulates and trains it in a directory that can be stopped and
continued (:mod:`toolkit.runs.directory`)."""

from toolkit.runs.config import RunConfig
from toolkit.runs.directory import RunDirectory
from toolkit.runs.run import Interrupted, run, schedule_for

__all__ = ["Interrupted", "RunConfig", "RunDirectory", "run", "schedule_for"]
