"""Theory: closed forms and numerics for the quantities the clock and replay measure.

numpy/scipy/sympy only (no torch). Each public function's docstring gives its formula and source;
the derivations and measured agreement are in docs/theory.md.
"""

from toolkit.theory.backups import Progress, optimal_backups
from toolkit.theory.delay import (
    delay_companion,
    delayed_gd_radius,
    delayed_gd_threshold,
    delayed_gd_threshold_numeric,
    schedule_growth,
    schedule_threshold,
    staleness_moments,
    staleness_pmf,
    staleness_threshold,
    staleness_threshold_ms,
)
from toolkit.theory.estimate import StepTime
from toolkit.theory.extremes import (
    expected_max_asymptotic,
    extreme_value_domain,
    extreme_value_table,
    tail_exponent,
)
from toolkit.theory.order_derive import derive_closed_forms
from toolkit.theory.order_stats import (
    expected_max,
    expected_order_statistic,
    harmonic_difference,
    has_closed_form,
    order_statistic_moments,
    order_statistic_variance,
)
from toolkit.theory.overlap import layerwise_step_time
from toolkit.theory.queueing import mva, ps_bounds, saturation_point
from toolkit.theory.renewal import kbatch_sync_time
from toolkit.theory.stability import (
    admm_round_robin_spectral_radius,
    easgd_center_variance,
    easgd_max_eta,
    easgd_round_robin_simple_condition,
    easgd_round_robin_spectral_radius,
    easgd_spectral_radius,
    easgd_stable_region,
)
from toolkit.theory.staleness import (
    delayed_lr_necessary,
    implicit_momentum,
    lian_max_staleness,
    lian_stepsize_bound,
    staleness_aware_lr,
)
from toolkit.theory.step_time import (
    gradients_per_update,
    kasync_bound,
    step_time,
    step_time_estimate,
    throughput,
)
from toolkit.theory.tradeoff import runtime, tradeoff

__all__ = [
    "Progress",
    "StepTime",
    "admm_round_robin_spectral_radius",
    "delay_companion",
    "delayed_gd_radius",
    "delayed_gd_threshold",
    "delayed_gd_threshold_numeric",
    "delayed_lr_necessary",
    "derive_closed_forms",
    "easgd_center_variance",
    "easgd_max_eta",
    "easgd_round_robin_simple_condition",
    "easgd_round_robin_spectral_radius",
    "easgd_spectral_radius",
    "easgd_stable_region",
    "expected_max",
    "expected_max_asymptotic",
    "expected_order_statistic",
    "extreme_value_domain",
    "extreme_value_table",
    "gradients_per_update",
    "harmonic_difference",
    "has_closed_form",
    "implicit_momentum",
    "kasync_bound",
    "kbatch_sync_time",
    "layerwise_step_time",
    "lian_max_staleness",
    "lian_stepsize_bound",
    "mva",
    "optimal_backups",
    "order_statistic_moments",
    "order_statistic_variance",
    "ps_bounds",
    "runtime",
    "saturation_point",
    "schedule_growth",
    "schedule_threshold",
    "staleness_aware_lr",
    "staleness_moments",
    "staleness_pmf",
    "staleness_threshold",
    "staleness_threshold_ms",
    "step_time",
    "step_time_estimate",
    "tail_exponent",
    "throughput",
    "tradeoff",
]
