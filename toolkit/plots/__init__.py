"""Every figure function of the toolkit (matplotlib Figure objects, Agg-safe), shared by the
command line, the demo, the notebooks and the paper."""

from toolkit.plots.stability import (
    plot_delay_thresholds,
    plot_easgd_regions,
    plot_round_robin_comparison,
)
from toolkit.plots.sweeps import plot_heatmap, plot_sensitivity, plot_time_to_target, save_figure
from toolkit.plots.theory import (
    plot_backup_step_times,
    plot_backup_tradeoff,
    plot_server_throughput,
)
from toolkit.plots.training import plot_curves

__all__ = [
    "plot_backup_step_times",
    "plot_backup_tradeoff",
    "plot_curves",
    "plot_delay_thresholds",
    "plot_easgd_regions",
    "plot_heatmap",
    "plot_round_robin_comparison",
    "plot_sensitivity",
    "plot_server_throughput",
    "plot_time_to_target",
    "save_figure",
]
