"""Stopping rules asked after every evaluation of a run: a target value of the workload's main
metric, and a plateau of it. A run also stops at its budget (``updates`` or ``time_budget``,
else the workload's step budget) and when it diverges.

Plateau: with evaluations m_1, ..., m_k of the main metric (higher is better for accuracy,
lower for a loss), the run stops at evaluation k >= window + 1 when the best of the last
``window`` evaluations improves on the best before them by no more than ``delta``:

    max(m_{k-w+1}, ..., m_k) - max(m_1, ..., m_{k-w}) <= delta     (accuracy; min and the
                                                                     other sign for a loss)

the rule of early stopping with patience (Prechelt, "Early Stopping - But When?", 1998, the
"no improvement in a number of evaluations" family), here on the test metric the study reports.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from toolkit.checks import ConfigError, check_int, check_positive

__all__ = ["Plateau", "stopping_rule"]


@dataclass(frozen=True)
class Plateau:
    """Stop when the main metric has not improved by more than ``delta`` over the last
    ``window`` evaluations (module docstring); the run's ``updates`` or ``time_budget`` is the
    maximum budget."""

    window: int = 5
    delta: float = 0.0

    def __post_init__(self) -> None:
        check_int("plateau.window", self.window, 1)
        object.__setattr__(
            self, "delta", check_positive("plateau.delta", self.delta, allow_zero=True)
        )

    @classmethod
    def from_dict(cls, data: object) -> Plateau:
        if isinstance(data, Plateau):
            return data
        if not isinstance(data, dict):
            raise ConfigError(
                "plateau", f"plateau: expected a table with window and delta, got {data!r}"
            )
        unknown = sorted(set(data) - {"window", "delta"})
        if unknown:
            raise ConfigError(
                f"plateau.{unknown[0]}", f"plateau.{unknown[0]}: unknown key; valid: delta, window"
            )
        return cls(**data)

    def to_dict(self) -> dict:
        return {"window": self.window, "delta": self.delta}

    def reached(self, values: list[float], higher_is_better: bool) -> bool:
        """True when ``values`` (the metric at each evaluation, oldest first) has plateaued."""
        w = self.window
        if len(values) <= w:
            return False
        sign = 1.0 if higher_is_better else -1.0
        before = max(sign * v for v in values[:-w])
        recent = max(sign * v for v in values[-w:])
        return recent - before <= self.delta


def stopping_rule(
    metric: str, target: float | None, plateau: Plateau | None
) -> Callable[[list[dict]], str | None] | None:
    """The rule for ``toolkit.replay.train(stop=...)``: given the evaluations so far (dicts of
    test metrics, oldest first), ``"target reached"`` once ``metric`` reaches ``target`` (>= for
    accuracy, <= for a loss), ``"plateau ..."`` once it plateaus, else None."""
    if target is None and plateau is None:
        return None
    higher = metric == "test_accuracy"

    def rule(evaluations: list[dict]) -> str | None:
        values = [e.get(metric, math.nan) for e in evaluations]
        last = values[-1]
        if target is not None and (last >= target if higher else last <= target):
            return "target reached"
        if plateau is not None and plateau.reached(values, higher):
            w, d = plateau.window, plateau.delta
            return f"plateau: {metric} improved by <= {d:g} over the last {w} evaluations"
        return None

    return rule
