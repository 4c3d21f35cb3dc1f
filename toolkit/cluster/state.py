"""What every path of the clock reads: one simulation's rule, draws, costs and outcome."""

from __future__ import annotations

from dataclasses import dataclass, field

from toolkit.models.comm import CommModel, exchange_cost
from toolkit.models.failures import FailureTimeline
from toolkit.models.stragglers import Streams
from toolkit.schemes import Rule

__all__ = ["Run"]


@dataclass
class Run:
    """Inputs of one simulation (``rule``, the workers' step-time ``streams``, ``comm``,
    ``updates``, the failure ``timeline``), the costs they imply, and its ``status``.

    ``exchange``: the time one synchronous update spends exchanging
    (:func:`~toolkit.models.comm.exchange_cost`: quorum gradients in, the restarting workers'
    models out). ``message_time`` / ``server_time``: one asynchronous push + pull, and the part of
    it that holds the shared server link."""

    rule: Rule
    streams: Streams
    comm: CommModel | None
    updates: int
    timeline: FailureTimeline | None = None
    status: str = "ok"
    message: str = ""
    machines: int = field(init=False)
    exchange: float = field(init=False)
    message_time: float = field(init=False)
    server_time: float = field(init=False)

    def __post_init__(self) -> None:
        rule, comm = self.rule, self.comm
        self.machines = rule.machines
        self.exchange = self.message_time = self.server_time = 0.0
        if rule.barrier:
            self.exchange = exchange_cost(comm, rule.quorum, rule.machines)
        elif rule.kasync:  # k gradients in, k models out to the workers that pushed
            self.exchange = exchange_cost(comm, rule.quorum, rule.quorum)
        elif comm is not None:
            self.message_time = float(comm.message_time())
            self.server_time = float(comm.server_time())

    def stall(self, message: str) -> None:
        """End the run early: failures left too few workers."""
        self.status, self.message = "stalled", message
