"""What every figure function shares: a Figure built without pyplot state (works under Agg, in
notebooks and in scripts), or the caller's axes."""

from __future__ import annotations

from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = ["axes"]


def axes(ax: Axes | None, ncols: int = 1, width: float = 4.5) -> tuple[Figure, list[Axes]]:
    """The caller's ``ax`` (and its figure), or a new Figure with ``ncols`` axes side by side."""
    if ax is not None:
        return ax.figure, [ax]
    fig = Figure(figsize=(width * ncols, 4.0), layout="constrained")
    return fig, [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
