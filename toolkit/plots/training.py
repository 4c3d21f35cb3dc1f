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
    hold: bool = False,
    colors: dict | None = None,
    linestyle: str = "-",
    ax: Axes | None = None,
) -> Figure:
    """``y`` against ``x`` for each value of ``by`` (rows of Results frames, e.g. their
    evaluations, with a ``by`` column). With several seeds (a ``seed`` or ``run_id`` column) the
    line is the mean over seeds and the band spans best to worst; ``budget`` limits the x axis.
    Seeds evaluate at different times, so each seed's curve is first interpolated linearly onto
    a common grid of 64 points up to the shortest seed's last ``x``, or with ``hold`` up to the
    longest one's, a seed that stopped earlier (at a plateau) holding its last value.

    A run whose ``status`` column says ``diverged`` is not part of the mean and band: it is drawn
    on its own, thin, up to its last finite value, which is marked with a cross (never drawn at
    0 nor joined to the others). ``colors`` maps values of ``by`` to colours, ``linestyle`` is
    that of the mean lines. Simulated time is in the step-time model's unit (seconds in the
    built-in defaults)."""
    fig, (ax,) = axes(ax, width=6.5)
    key = "run_id" if "run_id" in curves else "seed"
    seeds = curves[key].nunique() if key in curves else 1
    any_diverged = False
    for name, g in curves.groupby(by, sort=False):
        colour = (colors or {}).get(name)
        bad = g["status"].eq("diverged") if "status" in g else pd.Series(False, g.index)
        ok = g[~bad].dropna(subset=[y])
        line = None
        if len(ok) and seeds > 1:
            grid, ys = _on_common_grid(ok, x, y, hold=hold)
            (line,) = ax.plot(grid, ys.mean(0), ls=linestyle, color=colour, label=name)
            ax.fill_between(grid, ys.min(0), ys.max(0), alpha=0.2, color=line.get_color())
        elif len(ok):
            (line,) = ax.plot(ok[x], ok[y], ls=linestyle, marker=".", color=colour, label=name)
        diverged = g[bad]
        one_run = key not in diverged  # no seed or run column: the rows are one run
        for _, r in [(None, diverged)] if one_run else diverged.groupby(key, sort=False):
            r = r.dropna(subset=[y]).sort_values(x)
            if r.empty:
                continue
            any_diverged = True
            c = line.get_color() if line is not None else colour
            drawn = ax.plot(r[x], r[y], lw=0.7, alpha=0.7, color=c)[0]
            if line is None:
                drawn.set_label(f"{name} (every seed diverged)")
                line = drawn
            ax.plot(r[x].iloc[-1], r[y].iloc[-1], "x", ms=6, mew=1.5, color=drawn.get_color())
    if any_diverged:
        ax.plot([], [], "x", c="gray", ms=6, mew=1.5, label="a run diverged here (thin line)")
    if budget is not None:
        ax.set_xlim(0, budget)
    what = "mean, band = best/worst over seeds" if seeds > 1 else None
    ax.set_xlabel("simulated wall-clock time (s)" if x == "time" else x)
    ax.set_ylabel(y.replace("_", " ") + (f" ({what})" if what else ""))
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return fig


def _on_common_grid(g: pd.DataFrame, x: str, y: str, points: int = 64, hold: bool = False):
    """(grid, values [runs, points]): each run's ``y`` interpolated at a common ``x`` grid (runs
    are the ``run_id`` values when present, else the seeds), up to the shortest run's last ``x``
    or, with ``hold``, the longest one's (``np.interp`` holds a run's last value beyond it)."""
    key = "run_id" if "run_id" in g else "seed"
    runs = [r.sort_values(x) for _, r in g.groupby(key, sort=False)]
    lo = max(float(r[x].iloc[0]) for r in runs)
    ends = [float(r[x].iloc[-1]) for r in runs]
    hi = max(ends) if hold else min(ends)
    grid = np.linspace(lo, hi, points) if hi > lo else np.array([hi])
    ys = np.stack([np.interp(grid, r[x].to_numpy(float), r[y].to_numpy(float)) for r in runs])
    return grid, ys
