"""Replay: train a real PyTorch model by following a Schedule, with batched gradient evaluation.

``train(schedule, workload, ...) -> Results``; see :mod:`toolkit.replay.train` for the
arguments, :mod:`toolkit.replay.shared` and :mod:`toolkit.replay.replicas` for how the scheme's
update rule (:mod:`toolkit.schemes.updates`) is applied, and :mod:`toolkit.replay.results` for
the table.
"""

from toolkit.replay.batched import DataStream, FlatModel, VersionStore, resolve_device
from toolkit.replay.replicas import ReplicaState
from toolkit.replay.results import Results
from toolkit.replay.train import Continuation, Memory, Runtime, scheme_from_meta, train

__all__ = [
    "Continuation",
    "DataStream",
    "FlatModel",
    "Memory",
    "ReplicaState",
    "Results",
    "Runtime",
    "VersionStore",
    "resolve_device",
    "scheme_from_meta",
    "train",
]
