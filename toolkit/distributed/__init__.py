"""The real backend: every scheme as separate processes on ``torch.distributed`` (gloo on CPU),
writing the same Schedule and Results tables as the simulator.

The server's arithmetic (:mod:`toolkit.distributed.aggregate`) is free of any transport and is
the schemes' own update math; :mod:`~toolkit.distributed.collective` holds the ``all_reduce``
paths and :mod:`~toolkit.distributed.server` the point-to-point ones.

The names below are imported when first used (PEP 562), so that the command line checks a run
against the machine (:mod:`toolkit.distributed.launch`) before it imports torch.
"""

import importlib

_HOMES = {
    "Aggregator": "toolkit.distributed.aggregate",
    "Arrival": "toolkit.distributed.aggregate",
    "RunFailed": "toolkit.distributed.launch",
    "collect": "toolkit.distributed.engine",
    "path_of": "toolkit.distributed.launch",
    "run_distributed": "toolkit.distributed.engine",
    "write_job": "toolkit.distributed.engine",
}

__all__ = [
    "Aggregator",
    "Arrival",
    "RunFailed",
    "collect",
    "path_of",
    "run_distributed",
    "write_job",
]


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
