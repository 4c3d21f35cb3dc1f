"""Figures for sweeps (tables of :mod:`toolkit.sweeps.analysis`): learning-rate sensitivity with
seed bands, time to target with confidence intervals, heatmaps over two axes, and saving a
figure as PDF and PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from toolkit.plots.common import axes

__all__ = ["plot_heatmap", "plot_sensitivity", "plot_time_to_target", "save_figure"]


def save_figure(fig: Figure, stem: str | Path) -> list[Path]:
    """Write ``stem.pdf`` and ``stem.png``; returns the paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".pdf"), stem.with_suffix(".png")]
    for path in paths:
        fig.savefig(path, dpi=150)
    return paths


def plot_sensitivity(
    table: pd.DataFrame,
    *,
    x: str = "lr",
    by: str = "label",
    ylabel: str = "",
    ax: Axes | None = None,
) -> Figure:
    """Mean of a value against ``x`` (log axis) for each ``by``, the band from worst to best over
    seeds (:func:`toolkit.sweeps.analysis.sensitivity`)."""
    fig, (ax,) = axes(ax, width=5.5)
    for colour, (name, g) in zip(
        sns.color_palette("deep", table[by].nunique()), table.groupby(by, sort=True), strict=True
    ):
        g = g.sort_values(x)
        ax.plot(g[x], g["mean"], marker="o", color=colour, label=name)
        lo, hi = np.fmin(g["best"], g["worst"]), np.fmax(g["best"], g["worst"])
        ax.fill_between(g[x], lo, hi, color=colour, alpha=0.2)
    ax.set_xscale("log")
    ax.set(xlabel=x, ylabel=ylabel or "mean over seeds (band: best to worst)")
    ax.legend(fontsize=7)
    return fig


def plot_time_to_target(
    table: pd.DataFrame, *, by: str = "label", unit: str = "s", ax: Axes | None = None
) -> Figure:
    """Bars of the mean time to target per ``by`` with the bootstrap interval of the mean
    (:func:`toolkit.sweeps.analysis.over_seeds` of ``time_to_target``); a configuration that
    never reached the target has no bar."""
    fig, (ax,) = axes(ax, width=6.0)
    t = table.sort_values("mean")
    pos = np.arange(len(t))
    err = np.vstack([t["mean"] - t["ci_low"], t["ci_high"] - t["mean"]])
    ax.barh(pos, t["mean"], xerr=np.nan_to_num(err), color=sns.color_palette("deep")[0])
    ax.set_yticks(pos, t[by].astype(str), fontsize=7)
    ax.set(xlabel=f"simulated time to target ({unit}), mean and 95% bootstrap interval")
    return fig


def plot_heatmap(
    summary: pd.DataFrame, value: str, x: str, y: str, *, ax: Axes | None = None
) -> Figure:
    """The mean of ``value`` over the other columns (seeds) on a grid of ``x`` by ``y``."""
    fig, (ax,) = axes(ax, width=5.5)
    grid = summary.groupby([y, x])[value].mean().unstack(x)
    sns.heatmap(grid, annot=True, fmt=".3g", cmap="viridis", ax=ax, cbar_kws={"label": value})
    ax.set(xlabel=x, ylabel=y)
    return fig
