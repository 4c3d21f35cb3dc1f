"""The real backend: every scheme as separate processes on ``torch.distributed`` (gloo on CPU),
writing the same Schedule and Results tables as the simulator.

The server's arithmetic (:mod:`toolkit.distributed.aggregate`) is free of any transport and is
the schemes' own update math; :mod:`~toolkit.distributed.collective` holds the ``all_reduce``
paths and :mod:`~toolkit.distributed.server` the point-to-point ones.
"""

from toolkit.distributed.aggregate import Aggregator, Arrival
from toolkit.distributed.engine import collect, path_of, run_distributed, write_job

__all__ = ["Aggregator", "Arrival", "collect", "path_of", "run_distributed", "write_job"]
