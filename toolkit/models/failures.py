"""Failures: when workers stop computing, and whether they come back.

:class:`Failures` is the user's description (fixed times or a rate, optional repair);
:meth:`Failures.timeline` draws the down intervals of n workers (:class:`FailureTimeline`), which
the clock asks when a computation that starts at some time finishes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from toolkit.checks import ConfigError, check_int, check_positive
from toolkit.models.dists import dist_repr, is_dist
from toolkit.models.seeds import child_seed

__all__ = ["FailureTimeline", "Failures"]


class Failures:
    """When workers stop computing.

    ``at={worker: time}``: that worker fails at that time. ``rate``: every worker fails after an
    exponential up time of mean 1/rate (a Poisson process of failures while up). ``repair``: None
    (failures are permanent), a time in seconds, or a distribution of repair times; after it the
    worker comes back. A gradient being computed when its worker fails is lost; after the repair
    the worker computes the same mini-batch again, from the start. ``at`` and ``rate`` exclude
    each other.
    """

    def __init__(
        self,
        at: Mapping[int, float] | None = None,
        rate: float = 0.0,
        repair: float | object | None = None,
    ) -> None:
        if at is not None and not isinstance(at, Mapping):
            raise ConfigError("at", f"at: expected a mapping {{worker: failure time}}, got {at!r}")
        self.at = {}
        for w, t in (at or {}).items():
            check_int("at: worker id", w, 0)
            self.at[int(w)] = check_positive(f"at: failure time of worker {w}", t, allow_zero=True)
        rate = check_positive("rate", rate, allow_zero=True)
        if self.at and rate > 0:
            raise ConfigError("rate", "at, rate: give failure times or a failure rate, not both")
        if repair is not None and not is_dist(repair):
            repair = check_positive("repair", repair)
        self.rate, self.repair = float(rate), repair

    def __repr__(self) -> str:
        rep = self.repair if not is_dist(self.repair) else dist_repr(self.repair)
        return f"Failures(at={self.at}, rate={self.rate}, repair={rep})"

    def timeline(self, n: int, seed: np.random.SeedSequence) -> FailureTimeline:
        bad = [w for w in self.at if w >= n]
        if bad:
            raise ConfigError("at", f"at: workers {bad} do not exist among {n} workers")
        return FailureTimeline(self, n, seed)


class FailureTimeline:
    """Down intervals [start, end) of each worker, generated lazily (end = inf: never back)."""

    def __init__(self, failures: Failures, n: int, seed: np.random.SeedSequence) -> None:
        self.f = failures
        self.rngs = [np.random.default_rng(child_seed(seed, w)) for w in range(n)]
        self.intervals: list[list[tuple[float, float]]] = [[] for _ in range(n)]
        self.done = [False] * n  # no further intervals will be generated
        self.up_since = [0.0] * n
        for w in range(n):
            if failures.rate == 0.0:
                if w in failures.at:
                    t = failures.at[w]
                    self.intervals[w].append((t, t + self._repair(w)))
                self.done[w] = True

    def _repair(self, w: int) -> float:
        r = self.f.repair
        if r is None:
            return math.inf
        if isinstance(r, float):
            return r
        x = float(np.asarray(r.rvs(random_state=self.rngs[w])).ravel()[0])
        if not x > 0:
            raise ConfigError("repair", f"repair: drew a repair time <= 0 ({x})")
        return x

    def _extend(self, w: int, t: float) -> None:
        """Generate worker w's intervals until one starts after t (or none will follow)."""
        iv = self.intervals[w]
        while not self.done[w] and (not iv or iv[-1][0] <= t):
            start = self.up_since[w] + float(self.rngs[w].exponential(1.0 / self.f.rate))
            end = start + self._repair(w)
            iv.append((start, end))
            self.up_since[w] = end
            if math.isinf(end):
                self.done[w] = True

    def finish(self, w: int, start: float, duration: float) -> tuple[float, float]:
        """(start of the successful attempt, its end) for a computation of ``duration`` seconds
        that worker w begins at ``start``; (inf, inf) if the worker never comes back."""
        s = start
        for a, b in self._iter(w, s):
            if b <= s:
                continue
            if a >= s + duration:
                break
            s = b  # down at s, or fails before finishing: restart after the repair
            if math.isinf(s):
                return math.inf, math.inf
        return s, s + duration

    def _iter(self, w: int, t: float):
        i = 0
        while True:
            self._extend(w, t)
            iv = self.intervals[w]
            if i >= len(iv):
                return
            a, b = iv[i]
            yield a, b
            t = max(t, b)
            i += 1

    def attempt_at(self, w: int, start: float, t: float) -> float | None:
        """Start of the attempt in progress at time t of a computation begun at ``start``
        (restarted after each repair), or None if worker w is down at t."""
        s = start
        for a, b in self._iter(w, s):
            if b <= s:
                continue
            if a >= t:
                break
            s = b
            if s >= t:
                return None
        return s

    def dead_since(self, w: int) -> float | None:
        """Time worker w fails for good (None if it always comes back); call only when it is
        known to be dead, else rate failures with repairs would be generated without end."""
        for a, b in self._iter(w, 0.0):
            if math.isinf(b):
                return a
        return None
