"""The simulated cluster: the clock turns (scheme, straggler model, comm model) into a Schedule.

numpy/scipy only (no torch), so it imports in a blink. The models it reads are
:mod:`toolkit.models`.
"""

from toolkit.cluster.clock import simulate
from toolkit.cluster.schedule import COLUMNS, Schedule

__all__ = ["COLUMNS", "Schedule", "simulate"]
