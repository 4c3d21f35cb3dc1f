"""What theory and the clock both read: straggler models, measured traces, failures and
communication models, with their parsing and validation (numpy/scipy only, no torch)."""

from toolkit.models.comm import (
    COMM_MODELS,
    CommModel,
    Hierarchical,
    ParameterServer,
    RingAllReduce,
    ShardedServer,
    exchange_cost,
    parse_comm,
)
from toolkit.models.dists import check_step_dist, parse_dist
from toolkit.models.empirical import Empirical
from toolkit.models.failures import Failures
from toolkit.models.stragglers import (
    IID,
    ComputeModel,
    Markov,
    PerWorker,
    SlowMachines,
    Trace,
    as_compute,
    parse_compute,
)

__all__ = [
    "COMM_MODELS",
    "IID",
    "CommModel",
    "ComputeModel",
    "Empirical",
    "Failures",
    "Hierarchical",
    "Markov",
    "ParameterServer",
    "PerWorker",
    "RingAllReduce",
    "ShardedServer",
    "SlowMachines",
    "Trace",
    "as_compute",
    "check_step_dist",
    "exchange_cost",
    "parse_comm",
    "parse_compute",
    "parse_dist",
]
