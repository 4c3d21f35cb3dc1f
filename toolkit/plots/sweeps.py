"""Figures for sweeps (tables of :mod:`toolkit.sweeps.analysis`): learning-rate sensitivity with
seed bands, time to target (Kaplan-Meier medians, censored runs shown), heatmaps over two axes,
and saving a figure as PDF and PNG."""

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
    """Write ``stem.pdf`` and ``stem.png``; returns the paths. The layout (constrained, or
    whatever engine the figure has) is computed once, for the PDF, and the PNG is drawn with it:
    a ``savefig`` with a layout engine draws the figure twice, once to lay it out."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".pdf"), stem.with_suffix(".png")]
    engine = fig.get_layout_engine()
    fig.savefig(paths[0], dpi=150)
    if engine is None:
        fig.savefig(paths[1], dpi=150)
        return paths
    try:
        fig.set_layout_engine("none")  # the axes keep the positions the PDF's layout gave them
        fig.savefig(paths[1], dpi=150)
    finally:
        fig.set_layout_engine(engine)
    return paths


def plot_sensitivity(
    table: pd.DataFrame,
    *,
    x: str = "lr",
    by: str = "label",
    ylabel: str = "",
    colors: dict | None = None,
    linestyles: dict | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Mean of a value against ``x`` (log axis) for each ``by``, the band from worst to best over
    seeds (:func:`toolkit.sweeps.analysis.sensitivity`). With a ``diverged_fraction`` column, a
    setting where a seed diverged is not joined to its neighbours nor banded: it is a marked
    point at its mean (a cross when every seed diverged, an open circle when some did), with a
    thin line from worst to best. ``colors`` and ``linestyles`` map values of ``by`` to a line's
    colour and style (default: seaborn's "deep" palette, solid). An empty table leaves a panel
    that says so."""
    fig, (ax,) = axes(ax, width=5.5)
    if table.empty:
        ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes)
        ax.set(xlabel=x, ylabel=ylabel or "mean over seeds (band: best to worst)")
        return fig
    groups = table.groupby(by, sort=True)
    any_diverged = False
    for colour, (name, g) in zip(sns.color_palette("deep", len(groups)), groups, strict=True):
        colour = (colors or {}).get(name, colour)
        g = g.sort_values(x)
        frac = g["diverged_fraction"] if "diverged_fraction" in g else pd.Series(0.0, g.index)
        ok = (frac == 0).to_numpy()
        ls = (linestyles or {}).get(name, "-")
        ax.plot(g[x], g["mean"].where(ok), marker="o", ls=ls, color=colour, label=name)
        lo, hi = np.fmin(g["best"], g["worst"]), np.fmax(g["best"], g["worst"])
        ax.fill_between(g[x], lo.where(ok), hi.where(ok), color=colour, alpha=0.2)
        bad = g[~ok]
        if len(bad):
            any_diverged = True
            ax.vlines(bad[x], lo[~ok], hi[~ok], color=colour, lw=0.8)
            every = (bad["diverged_fraction"] == 1).to_numpy()
            ax.plot(bad[x][every], bad["mean"][every], "x", ms=7, mew=2, color=colour)
            ax.plot(bad[x][~every], bad["mean"][~every], "o", mfc="none", color=colour)
    if any_diverged:
        ax.plot([], [], "x", c="gray", ms=7, mew=2, label="every seed diverged")
        ax.plot([], [], "o", c="gray", mfc="none", label="some seeds diverged")
    ax.set_xscale("log")
    ax.set(xlabel=x, ylabel=ylabel or "mean over seeds (band: best to worst)")
    ax.legend(fontsize=7)
    return fig


def plot_time_to_target(
    table: pd.DataFrame, *, by: str = "label", unit: str = "s", ax: Axes | None = None
) -> Figure:
    """Bars of the Kaplan-Meier median time to target per ``by``, each labelled with the runs
    that reached the target (:func:`toolkit.sweeps.analysis.survival`); where the median lies
    beyond the last time observed (fewer than half reached it) a hatched bar reaches the latest
    censoring time and reads "> t"."""
    fig, (ax,) = axes(ax, width=6.0)
    t = table.assign(_x=table["median"].fillna(np.inf)).sort_values("_x")
    pos = np.arange(len(t))
    known = t["median"].notna().to_numpy()
    width = np.where(known, t["median"], t["censored_max"].fillna(0.0))
    colour = sns.color_palette("deep")[0]
    bars = ax.barh(pos, width, color=colour)
    for bar, ok in zip(bars, known, strict=True):
        if not ok:
            bar.set(hatch="//", facecolor="none", edgecolor=colour)
    for p, w, ok, k, n in zip(pos, width, known, t["reached"], t["n"], strict=True):
        text = f"{k}/{n}" if ok else f"> {w:.3g}, {k}/{n}"
        ax.text(w, p, f" {text}", va="center", fontsize=7)
    ax.set_yticks(pos, t[by].astype(str), fontsize=7)
    ax.set(xlabel=f"simulated time to target ({unit}): Kaplan-Meier median; runs reaching it")
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
