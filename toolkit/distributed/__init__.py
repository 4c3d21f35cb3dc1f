"""The real backend: every scheme as separate processes on ``torch.distributed`` (gloo on CPU),
writing the same Schedule and Results tables as the simulator.

The server's arithmetic (:mod:`toolkit.distributed.aggregate`) is free of any transport and is
the schemes' own update math.
"""

from toolkit.distributed.aggregate import Aggregator, Arrival
from toolkit.distributed.engine import SERVER_SCHEMES, run_distributed

__all__ = ["SERVER_SCHEMES", "Aggregator", "Arrival", "run_distributed"]
