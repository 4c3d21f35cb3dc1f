"""Figures for the stability theory: EASGD regions, round-robin EASGD vs ADMM, delay thresholds.

Every function builds a ``matplotlib.figure.Figure`` directly (no pyplot state), so it works
under the Agg backend, in notebooks and in scripts alike; pass ``ax`` to draw into an existing
axes instead. Colours come from seaborn's palette.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from toolkit.plots.common import axes
from toolkit.theory.delay import delayed_gd_threshold, delayed_gd_threshold_numeric
from toolkit.theory.stability import (
    admm_round_robin_spectral_radius,
    easgd_round_robin_simple_condition,
    easgd_round_robin_spectral_radius,
    easgd_spectral_radius,
)

__all__ = ["plot_delay_thresholds", "plot_easgd_regions", "plot_round_robin_comparison"]


def plot_easgd_regions(
    ps: Sequence[int] = (1, 4, 16),
    momentum: float = 0.0,
    eta_h_max: float = 2.5,
    beta_max: float = 2.5,
    n: int = 200,
    ax: Axes | None = None,
) -> Figure:
    """Stability regions of synchronous EASGD (EAMSGD with ``momentum``) in (eta h, beta = p
    alpha): the contour spectral radius = 1 for each p, over a shaded map of the radius for the
    last p."""
    fig, (ax,) = axes(ax)
    a, b = np.meshgrid(
        np.linspace(eta_h_max / n, eta_h_max, n), np.linspace(beta_max / n, beta_max, n)
    )
    colours = sns.color_palette("deep", len(ps))
    r = None
    for p, colour in zip(ps, colours, strict=True):
        r = easgd_spectral_radius(eta=a, alpha=b / p, p=p, momentum=momentum)
        ax.contour(a, b, r, levels=[1.0], colors=[colour], linewidths=1.8)
        ax.plot([], [], color=colour, label=f"p = {p}")
    if r is not None:
        mesh = ax.pcolormesh(  # rasterized: an SVG of one path per cell is slow and large
            a, b, np.minimum(r, 1.5), cmap="viridis", shading="auto", alpha=0.6, rasterized=True
        )
        fig.colorbar(mesh, ax=ax, label=f"spectral radius (p = {ps[-1]}, clipped at 1.5)")
    ax.set_xlabel(r"$\eta h$")
    ax.set_ylabel(r"$\beta = p \alpha = p \eta \rho$")
    title = "EASGD" if momentum == 0 else f"EAMSGD, $\\delta$ = {momentum:g}"
    ax.set_title(f"{title}: stable inside the contours")
    ax.legend(loc="upper right")
    return fig


def plot_round_robin_comparison(
    p: int = 3,
    h: float = 1.0,
    eta_max: float = 0.01,
    rho_max: float = 10.0,
    n: int = 120,
    mark: tuple[float, float] | None = (0.001, 2.5),
) -> Figure:
    """Round-robin ADMM vs EASGD (alpha = eta rho) in (eta, rho): spectral radius of one round,
    with the contour at 1 and (for EASGD) the simple sufficient condition; ``mark`` highlights
    the (eta, rho) of the paper's example (Zhang et al. 2015, Sec. 4, Fig. 1)."""
    fig, panels_axes = axes(None, ncols=2)
    eta, rho = np.meshgrid(
        np.linspace(eta_max / n, eta_max, n), np.linspace(rho_max / n, rho_max, n)
    )
    panels = [
        ("ADMM", admm_round_robin_spectral_radius(eta=eta, alpha=eta * rho, p=p, h=h)),
        ("EASGD", easgd_round_robin_spectral_radius(eta=eta, alpha=eta * rho, p=p, h=h)),
    ]
    for ax, (name, r) in zip(panels_axes, panels, strict=True):
        norm = TwoSlopeNorm(vcenter=1.0, vmin=min(r.min(), 1 - 1e-9), vmax=max(r.max(), 1 + 1e-9))
        mesh = ax.pcolormesh(
            eta, rho, r, cmap="coolwarm", norm=norm, shading="auto", rasterized=True
        )
        if r.min() < 1 < r.max():
            ax.contour(eta, rho, r, levels=[1.0], colors="k", linewidths=1.5)
        if name == "EASGD":
            cond = easgd_round_robin_simple_condition(eta=eta, alpha=eta * rho, h=h).astype(float)
            if 0 < cond.mean() < 1:
                ax.contour(eta, rho, cond, levels=[0.5], colors="k", linestyles="--")
        if mark is not None:
            ax.plot(*mark, marker="*", color="gold", markersize=12, markeredgecolor="k")
        fig.colorbar(mesh, ax=ax, label="spectral radius of one round")
        ax.set_xlabel(r"$\eta$")
        ax.set_ylabel(r"$\rho$")
        ax.set_title(f"round-robin {name}, p = {p}, h = {h:g}")
    return fig


def plot_delay_thresholds(taus: Sequence[int] = tuple(range(21)), ax: Axes | None = None) -> Figure:
    """Largest stable eta h against the delay tau: the closed form 2 sin(pi / (2 (2 tau + 1)))
    (line), companion-matrix bisection (points) and the 1 / (tau + 1) scaling for reference."""
    fig, (ax,) = axes(ax)
    t = np.asarray(taus)
    c0, c1, c2 = sns.color_palette("deep", 3)
    ax.plot(t, [delayed_gd_threshold(int(k)) for k in t], color=c0, label="closed form")
    ax.plot(
        t,
        [delayed_gd_threshold_numeric(int(k), tol=1e-6, grid=100) for k in t],
        "o",
        color=c1,
        markersize=4,
        label="companion matrix",
    )
    ax.plot(t, 1.0 / (t + 1), ":", color=c2, label=r"$1/(\tau+1)$")
    ax.set_yscale("log")
    ax.set_xlabel(r"delay $\tau$")
    ax.set_ylabel(r"largest stable $\eta h$")
    ax.legend()
    return fig
