"""Schemes: what an update waits for (:class:`Rule`), the update math
(:mod:`toolkit.schemes.updates`), and the scheme values that combine the two.

The lowest layer of the toolkit: the clock, theory, replay and the real backend read a scheme's
``rule`` and call its ``updates``, and nothing outside this package asks which class a scheme is.
"""

from toolkit.schemes.rule import Rule
from toolkit.schemes.updates import STALENESS, Replicated, Shared, Staleness
from toolkit.schemes.values import (
    EASGD,
    SCHEMES,
    Async,
    Backup,
    Delayed,
    DiLoCo,
    KAsync,
    KBatchAsync,
    KBatchSync,
    LocalSGD,
    Scheme,
    Sync,
    make_scheme,
)

__all__ = [
    "EASGD",
    "SCHEMES",
    "STALENESS",
    "Async",
    "Backup",
    "Delayed",
    "DiLoCo",
    "KAsync",
    "KBatchAsync",
    "KBatchSync",
    "LocalSGD",
    "Replicated",
    "Rule",
    "Scheme",
    "Shared",
    "Staleness",
    "Sync",
    "make_scheme",
]
