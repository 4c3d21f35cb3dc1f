"""The parameter server's rule, free of any transport: which gradients an update uses, which it
drops, and the update itself (the scheme's own update math, :mod:`toolkit.schemes.updates`).

Every gradient arrives tagged with the parameter version it was computed at. For a scheme with a
barrier (Sync, Backup, KBatchSync) the server takes the first ``quorum`` gradients computed at
the current version and drops every gradient computed at an older one: the accumulator of
TensorFlow's ``SyncReplicasOptimizer`` (Chen et al. 2016, Sec. 3; a worker's ``local_step``
older than the global step makes its gradient stale and dropped). Without a barrier (Async,
KAsync, KBatchAsync) every gradient is used by the update in progress, whatever its version,
and an update is applied once ``quorum`` gradients are in (Dutta et al. 2018, Sec. 2), weighed
by the staleness policy. The server's clock (when a worker pulls, who waits) is the engine's
business; this module holds only the arithmetic, so it is tested without processes against the
expected values of TensorFlow's own tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from toolkit.checks import ConfigError
from toolkit.schemes import Scheme
from toolkit.schemes.updates import Shared, Staleness

__all__ = ["Aggregator", "Arrival"]


@dataclass
class Arrival:
    """One gradient as the server saw it: who sent it, at which version, and what became of it
    (``used`` by update ``update``, or dropped from update ``update`` = its version, the one it
    was computed for)."""

    worker: int
    version: int
    update: int
    used: bool


@dataclass
class Aggregator:
    """The server side of a shared-parameter scheme. ``push(worker, version, grad)`` returns
    the :class:`Arrival`; :attr:`version` counts the updates applied to :attr:`params`."""

    scheme: Scheme
    params: torch.Tensor
    lr: float
    momentum: float = 0.0
    nesterov: bool = False
    staleness: Staleness = field(default_factory=Staleness)
    version: int = 0
    arrivals: list[Arrival] = field(default_factory=list)

    def __post_init__(self) -> None:
        rule = self.scheme.rule
        if rule.period:
            raise ConfigError(
                "scheme", f"scheme: {self.scheme} keeps replicas; it has no gradient server"
            )
        if rule.delay:
            raise ConfigError(
                "scheme", f"scheme: {self.scheme} is a collective scheme (all-reduce)"
            )
        rules = self.scheme.updates(
            self.lr, momentum=self.momentum, nesterov=self.nesterov, staleness=self.staleness
        )
        assert isinstance(rules, Shared)
        self._rules = rules
        self._state = rules.optimizer.init(self.params)
        self._pending: list[tuple[torch.Tensor, int]] = []  # (gradient, version)

    def state(self) -> dict:
        """Everything :meth:`restore` needs to go on from here (a checkpoint)."""
        return {
            "params": self.params.clone(),
            "optimizer": self._state,
            "pending": [(g.clone(), v) for g, v in self._pending],
            "version": self.version,
        }

    def restore(self, state: dict) -> None:
        self.params = state["params"]
        self._state = state["optimizer"]
        self._pending = list(state["pending"])
        self.version = int(state["version"])

    @property
    def quorum(self) -> int:
        return self.scheme.rule.quorum

    def push(self, worker: int, version: int, grad: torch.Tensor) -> Arrival:
        """Take one gradient; apply the update when the quorum is complete."""
        if version > self.version:
            raise ValueError(f"version: {version} is newer than the server's {self.version}")
        if self.scheme.rule.barrier and version < self.version:
            arrival = Arrival(worker, version, version, False)  # stale: drained and dropped
        else:
            arrival = Arrival(worker, version, self.version, True)
            self._pending.append((grad, version))
        self.arrivals.append(arrival)
        if len(self._pending) == self.quorum:
            self._apply()
        return arrival

    def _apply(self) -> None:
        """d = sum_i w_i g_i (weights of the staleness policy), then the optimizer's step."""
        stal = np.array([self.version - v for _, v in self._pending])
        keep, factor = self._rules.staleness.factors(stal)
        count = max(int(keep.sum()), 1)
        direction = torch.zeros_like(self.params)
        for (g, _), k, f in zip(self._pending, keep, factor, strict=True):
            if k:
                direction.add_(g, alpha=float(f) / count)
        step, self._state = self._rules.optimizer.update(direction, self._state)
        self.params = step.apply(self.params)
        self._pending = []
        self.version += 1
