"""How many of m machines should be backup workers: the straggler / gradient-quality trade-off.

With m = n + b machines, Backup(n, b) waits for the first n gradients (Chen et al. 2016,
arXiv 1604.00981). More backups shorten the step (E[X_(n:m)] falls as n falls) but each update
averages fewer gradients, so it makes less progress. Given a model ``progress(n)`` of the progress
one update makes when it averages n gradients, the expected time to a fixed target is
proportional to ``step_time(Backup(m - b, b)) / progress(m - b)`` (updates needed ∝ 1/progress,
each taking one step time), and :func:`optimal_backups` minimises it over b
(docs/theory.md#optimal-backups).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from toolkit.checks import ConfigError, check_choice, check_int, check_positive
from toolkit.limits import check_memory
from toolkit.models.comm import CommModel, exchange_cost
from toolkit.models.dists import check_step_dist
from toolkit.theory.estimate import progress_bar
from toolkit.theory.order_stats import expected_order_statistic

__all__ = ["Progress", "optimal_backups"]


@dataclass(frozen=True)
class Progress:
    """Progress per update as a function of the number n of gradients averaged (in units of one
    gradient's progress).

    * ``critical=None`` (with the default ``kind="hard"``): linear, ``progress(n) = n`` (perfect
      scaling, the small-batch regime); ``kind="smooth"`` without ``critical`` is a ValueError.
    * ``kind="hard"``: linear up to the critical batch, then flat: ``min(n, critical)``.
    * ``kind="smooth"``: ``n / (1 + n / critical)``, the empirical model of McCandlish et al. 2018
      (arXiv 1812.06162: steps to target S = S_min (1 + B_noise / B), so progress per step
      ∝ B / (B + B_noise)) with ``critical`` = B_noise measured in gradients; linear for
      n << critical, saturating at ``critical``.
    """

    critical: float | None = None
    kind: str = "hard"

    def __post_init__(self) -> None:
        check_choice("kind", self.kind, ("hard", "smooth"))
        if self.kind == "smooth" and self.critical is None:
            raise ConfigError(
                "critical",
                "critical: kind='smooth' needs a critical batch (B_noise, in gradients); "
                "use Progress() for linear progress",
            )
        if self.critical is not None:
            check_positive("critical", self.critical)

    def __call__(self, n: object) -> np.ndarray | float:
        x = np.asarray(n, dtype=float)
        if self.critical is None:
            out = x
        elif self.kind == "hard":
            out = np.minimum(x, float(self.critical))
        else:
            out = x / (1.0 + x / float(self.critical))
        return float(out) if out.ndim == 0 else out


def _progress_values(progress: Progress | Callable, ns: np.ndarray) -> np.ndarray:
    if not callable(progress):
        raise ConfigError(
            "progress", f"progress must be a Progress or a callable n -> progress, got {progress!r}"
        )
    if isinstance(progress, Progress):  # vectorised
        vals = np.asarray(progress(ns), dtype=float)
    else:
        vals = np.array([float(progress(int(n))) for n in ns])
    bad = ~np.isfinite(vals) | (vals <= 0)
    if np.any(bad):
        raise ConfigError(
            "progress",
            f"progress must be finite and > 0 for every n; n={ns[bad][0]} gave {vals[bad][0]}",
        )
    return vals


def optimal_backups(
    m: int,
    compute: object,
    comm: CommModel | None = None,
    progress: Progress | Callable[[int], float] | None = None,
    *,
    b_max: int | None = None,
) -> tuple[int, pd.DataFrame]:
    """The number of backups b in 0..b_max (default m - 1) that minimises the expected time to a
    target with m = n + b machines.

    ``time_to_target(b) = step_time(Backup(m - b, b), compute, comm) / progress(m - b)``, with
    step_time = E[X_(n:m)] + exchange_cost(comm, n, m) (``toolkit.theory.step_time``). The
    default ``progress`` is linear (``Progress()``), under which backups only pay when the tail of
    the step-time distribution is heavy enough. Returns ``(best_b, table)``: the smallest b among
    the minimisers, and a DataFrame with columns ``b, n, step_time, progress, time_to_target``.
    """
    m = check_int("m", m)
    b_max = check_int("b_max", m - 1 if b_max is None else b_max, 0, m - 1)
    check_step_dist(compute, "compute")
    if comm is not None and not isinstance(comm, CommModel):
        raise ConfigError(
            "comm", f"comm: expected a toolkit.models.comm model or None, got {comm!r}"
        )
    if progress is None:
        progress = Progress()
    check_memory("m", f"the table of optimal_backups over b = 0..{b_max}", 400 * (b_max + 1))
    b = np.arange(0, int(b_max) + 1)
    n = int(m) - b
    step = np.empty(b.size)
    chunk = 100_000
    with progress_bar(b.size, 1e3 * b.size, f"optimal backups on m={m}", "m") as bar:
        for lo in range(0, b.size, chunk):
            ns = n[lo : lo + chunk]
            t = np.asarray(expected_order_statistic(compute, ns, int(m)), dtype=float)
            step[lo : lo + chunk] = t + [exchange_cost(comm, int(k), int(m)) for k in ns]
            bar.update(ns.size)
    prog = _progress_values(progress, n)
    table = pd.DataFrame(
        {"b": b, "n": n, "step_time": step, "progress": prog, "time_to_target": step / prog}
    )
    best = int(table["b"].iloc[int(np.argmin(table["time_to_target"].to_numpy()))])
    return best, table
