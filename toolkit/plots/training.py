"""Figures for training runs: a metric against simulated wall-clock time (or updates)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from toolkit.plots.common import axes

__all__ = ["plot_curves"]


def plot_curves(
    curves: pd.DataFrame,
    *,
    x: str = "time",
    y: str = "test_accuracy",
    by: str = "scheme",
    budget: float | None = None,
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """``y`` against ``x`` for each value of ``by`` (rows of Results frames, e.g. their
    evaluations, with a ``by`` column). With several seeds (a ``seed`` column) the line is the
    mean over seeds at each update and the band spans best to worst; ``budget`` limits the x
    axis. Seeds evaluate at different times, so each seed's curve is first interpolated
    linearly onto a common grid of 64 points up to the shortest seed's last ``x``. Simulated
    time is in the step-time model's unit (seconds in the built-in defaults)."""
    fig, (ax,) = axes(ax, width=6.5)
    seeds = curves["seed"].nunique() if "seed" in curves else 1
    for name, g in curves.groupby(by, sort=False):
        if seeds > 1:
            grid, ys = _on_common_grid(g, x, y)
            ax.plot(grid, ys.mean(0), label=name)
            ax.fill_between(grid, ys.min(0), ys.max(0), alpha=0.2)
        else:
            ax.plot(g[x], g[y], marker=".", label=name)
    if budget is not None:
        ax.set_xlim(0, budget)
    what = "mean, band = best/worst over seeds" if seeds > 1 else None
    ax.set_xlabel("simulated wall-clock time (s)" if x == "time" else x)
    ax.set_ylabel(y.replace("_", " ") + (f" ({what})" if what else ""))
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return fig


def _on_common_grid(g: pd.DataFrame, x: str, y: str, points: int = 64):
    """(grid, values [runs, points]): each run's ``y`` interpolated at a common ``x`` grid (runs
    are the ``run_id`` values when present, else the seeds)."""
    key = "run_id" if "run_id" in g else "seed"
    runs = [r.sort_values(x) for _, r in g.groupby(key, sort=False)]
    lo = max(float(r[x].iloc[0]) for r in runs)
    hi = min(float(r[x].iloc[-1]) for r in runs)
    grid = np.linspace(lo, hi, points) if hi > lo else np.array([hi])
    ys = np.stack([np.interp(grid, r[x].to_numpy(float), r[y].to_numpy(float)) for r in runs])
    return grid, ys
