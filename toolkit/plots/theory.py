"""Figures for the step-time theory: backup workers and the parameter server's link."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from toolkit.plots.common import axes
from toolkit.theory.queueing import ps_bounds, saturation_point

__all__ = ["plot_backup_step_times", "plot_backup_tradeoff", "plot_server_throughput"]


def plot_backup_step_times(
    tables: Mapping[str, pd.DataFrame],
    machines: int,
    ax: Axes | None = None,
    *,
    unit: str = "units of the step-time model",
) -> Figure:
    """Expected step time of Backup(m - b, b) against b, one line per table of
    :func:`toolkit.theory.optimal_backups` (e.g. with and without communication); ``unit`` is
    that of the step-time model (e.g. ``"s"``)."""
    fig, (ax,) = axes(ax)
    for label, table in tables.items():
        ax.plot(table["b"], table["step_time"], label=label)
    ax.set(xlabel="backup workers b", ylabel=f"expected step time ({unit})")
    ax.set_title(f"Backup(m - b, b), m = {machines}")
    ax.legend()
    return fig


def plot_backup_tradeoff(
    tables: Mapping[str, tuple[pd.DataFrame, int]], machines: int, ax: Axes | None = None
) -> Figure:
    """Time to target relative to b = 0 against b, one line per (table, best b) of
    :func:`toolkit.theory.optimal_backups` (e.g. one per progress model); below 1 where backups
    help."""
    fig, (ax,) = axes(ax)
    colours = sns.color_palette("deep", len(tables))
    for colour, (label, (table, best)) in zip(colours, tables.items(), strict=True):
        rel = table["time_to_target"] / table["time_to_target"].iloc[0]
        ax.plot(table["b"], rel, color=colour, label=f"{label} (best b = {best})")
        ax.axvline(best, color=colour, ls=":", lw=0.8)
    ax.set(xlabel=f"backup workers b (of m = {machines})", ylabel="time to target / with b = 0")
    ax.legend(fontsize=8)
    return fig


def plot_server_throughput(
    n: Sequence[int],
    series: Mapping[str, Sequence[float]],
    think: float,
    service: float,
    *,
    points: Sequence[str] = (),
    ax: Axes | None = None,
) -> Figure:
    """Updates per second of n asynchronous workers on one parameter server's link (the
    communication models' times are in seconds): each of
    ``series`` (label -> values over ``n``; those named in ``points`` as markers, e.g. measured
    rates), the operational bounds min(n / (Z + s), 1 / s) and n / (Z + n s)
    (:func:`~toolkit.theory.queueing.ps_bounds`) and the knee n* = (Z + s) / s."""
    fig, (ax,) = axes(ax, width=5.5)
    n = np.asarray(n)
    for label, values in series.items():
        ax.plot(n, values, "o" if label in points else "-", label=label)
    lower, upper = ps_bounds(n, think, service)
    ax.plot(n, upper, "k--", lw=1, label="min(n / (Z + s), 1 / s)")
    ax.plot(n, lower, "k:", lw=1, label="n / (Z + n s)")
    ax.axvline(saturation_point(think, service), color="grey", lw=0.8)
    ax.set(xlabel="workers n", ylabel="updates per second")
    ax.set_title(f"Async on one parameter server: Z = {think:.4g} s, s = {service:.3g} s")
    ax.legend(fontsize=8)
    return fig
