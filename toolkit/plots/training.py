"""Figures for training runs: a metric against simulated wall-clock time (or updates)."""

from __future__ import annotations

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
    axis. Simulated time is in the step-time model's unit (seconds in the built-in defaults)."""
    fig, (ax,) = axes(ax, width=6.5)
    seeds = curves["seed"].nunique() if "seed" in curves else 1
    for name, g in curves.groupby(by, sort=False):
        if seeds > 1:
            band = g.groupby("update").agg(
                x=(x, "mean"), lo=(y, "min"), hi=(y, "max"), mid=(y, "mean")
            )
            ax.plot(band["x"], band["mid"], label=name)
            ax.fill_between(band["x"], band["lo"], band["hi"], alpha=0.2)
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
