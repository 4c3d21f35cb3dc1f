"""The timing description every scheme reduces to: which gradients an update waits for, and when.

The clock (``toolkit.cluster``), the theory (``toolkit.theory``), replay and the real backend read
a scheme's :class:`Rule`, never its class. Fields:

``machines``  workers launched (n + b for backup workers).
``quorum``    gradients one update waits for (n for Sync, n of n+b for Backup, k for the K-schemes,
              1 for Async).
``barrier``   True: the synchronous family. An update waits for ``quorum`` gradients of one step;
              Sync / Backup / KBatchSync workers then all restart from the new parameters and
              gradients still in flight are dropped (Delayed: workers wait only for update
              t - delay - 1, nothing is dropped). False: gradients still in flight are applied when
              they arrive, stale (the asynchronous family).
``repeat``    a worker may contribute several gradients to one update: K-batch-sync (with a
              barrier) and K-batch-async (without); a worker that finishes starts another
              mini-batch at once. Without a barrier and without ``repeat``, an update waits for the
              first ``quorum`` *distinct* workers, which are then idle until it is applied
              (Dutta et al.'s K-async); with quorum 1 both readings are Async.
``delay``     an update is applied ``delay`` steps after its gradients' version, so a gradient of
              step t is computed at version t - delay (delayed / overlapped synchronous SGD).
``period``    workers hold their own replicas and meet a centre every ``period`` local steps
              (EASGD, local SGD, DiLoCo); 0 means one shared parameter vector.

The combinations that no path implements are refused when the Rule is built (``__post_init__``),
so the clock and the theory never meet them.
"""

from __future__ import annotations

from dataclasses import dataclass

from toolkit.checks import ConfigError, check_int

__all__ = ["Rule"]


@dataclass(frozen=True)
class Rule:
    """The shared description every scheme reduces to (see the module docstring)."""

    machines: int
    quorum: int
    barrier: bool
    repeat: bool = False
    delay: int = 0
    period: int = 0

    def __post_init__(self) -> None:
        check_int("machines", self.machines, 1)
        check_int("quorum", self.quorum, 1)
        check_int("delay", self.delay, 0)
        check_int("period", self.period, 0)
        for name in ("barrier", "repeat"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(
                    name, f"{name} must be True or False, got {getattr(self, name)!r}"
                )
        if self.quorum > self.machines and not (self.barrier and self.repeat):
            raise ConfigError(
                "quorum",
                f"quorum: {self.quorum} gradients from {self.machines} machines needs repeat=True "
                "and a barrier (K-batch-sync)",
            )
        if self.delay and (self.repeat or self.period or not self.barrier):
            raise ConfigError(
                "delay", "delay: only a plain barrier rule (Delayed) may delay its updates"
            )
        if self.delay and self.quorum != self.machines:
            raise ConfigError(
                "delay", "delay: a delayed update waits for all machines (quorum = machines)"
            )
        if self.period:
            if self.repeat:
                raise ConfigError(
                    "period", "period: replica schemes take one gradient per local step"
                )
            want = self.machines if self.barrier else 1
            if self.quorum != want:
                raise ConfigError(
                    "quorum",
                    f"quorum: a {'synchronous' if self.barrier else 'asynchronous'} replica rule "
                    f"meets the centre with {want} worker(s) at a time, got quorum={self.quorum}",
                )

    @property
    def replicas(self) -> bool:
        """Whether workers keep local replicas that meet a centre (EASGD, LocalSGD, DiLoCo)."""
        return self.period > 0

    @property
    def kasync(self) -> bool:
        """Dutta et al.'s K-async: no barrier, k > 1 distinct workers per update."""
        return not self.barrier and not self.repeat and not self.period and self.quorum > 1
