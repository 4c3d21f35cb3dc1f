"""Empirical step-time distributions built from measured traces.

:class:`Empirical` puts mass 1/m on each of m measured step times (resampling with replacement),
and answers the same calls as a frozen ``scipy.stats`` distribution (``cdf``, ``ppf``, ``rvs``,
``mean``, ``var``, ``support``), so theory and the clock take it wherever they take scipy's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from toolkit.checks import ConfigError

__all__ = ["Empirical"]


class Empirical:
    """Discrete uniform distribution over measured step times (the empirical distribution).

    Build with ``Empirical(times)`` or ``Empirical.from_csv(path, column=...)``. The times must be
    finite and >= 0. ``ppf(u) = x_(ceil(u m))`` (the left-continuous inverse of the step cdf), so
    order statistics computed by the quantile formula are the exact finite-sample values.
    """

    def __init__(self, times: object, name: str = "trace") -> None:
        x = np.asarray(times, dtype=float).ravel()
        if x.size == 0:
            raise ConfigError("times", "times: an empirical trace needs at least one step time")
        if not np.all(np.isfinite(x)):
            raise ConfigError("times", "times: the trace holds NaN or infinite step times")
        if np.any(x < 0):
            raise ConfigError("times", f"times: step times must be >= 0, found {x.min()}")
        self.values = np.sort(x)
        self.name = name

    @classmethod
    def from_csv(cls, path: str | Path, column: str | None = None) -> Empirical:
        """Read a CSV of step times: ``column`` names the column (default: the only numeric one,
        or ``step_time``/``time`` when present)."""
        frame = pd.read_csv(path)
        if column is None:
            for guess in ("step_time", "compute_time", "time"):
                if guess in frame.columns:
                    column = guess
                    break
            else:
                numeric = frame.select_dtypes("number").columns
                if len(numeric) != 1:
                    raise ConfigError(
                        "column",
                        f"column: {path} has numeric columns {list(numeric)}; name one with "
                        "column=",
                    )
                column = numeric[0]
        if column not in frame.columns:
            raise ConfigError(
                "column", f"column: {column!r} not in {path} (columns: {list(frame.columns)})"
            )
        return cls(frame[column].to_numpy(), name=Path(path).stem)

    @property
    def size(self) -> int:
        return int(self.values.size)

    def __repr__(self) -> str:
        return f"Empirical({self.name}, m={self.size}, mean={self.mean():.4g})"

    def support(self) -> tuple[float, float]:
        return float(self.values[0]), float(self.values[-1])

    def mean(self) -> float:
        return float(self.values.mean())

    def var(self) -> float:
        return float(self.values.var())

    def std(self) -> float:
        return float(self.values.std())

    def cdf(self, x: object) -> np.ndarray:
        return np.searchsorted(self.values, np.asarray(x, dtype=float), side="right") / self.size

    def ppf(self, u: object) -> np.ndarray:
        u = np.asarray(u, dtype=float)
        idx = np.clip(np.ceil(u * self.size).astype(np.int64) - 1, 0, self.size - 1)
        return self.values[idx]

    def rvs(self, size: object = None, random_state: object = None) -> np.ndarray:
        rng = np.random.default_rng(random_state)
        return rng.choice(self.values, size=size, replace=True)
