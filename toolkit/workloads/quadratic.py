"""A noisy quadratic: exact curvature, noisy gradients, deterministic given the seed.

    f(x) = 1/2 (x - x*)^T H (x - x*),   H = diag(h_1, ..., h_d).

Gradient noise is stored as data, so replay treats it like any other workload: sample i is a
noise vector xi_i ~ N(0, sigma^2 I) and its loss is

    l_i(x) = 1/2 (x - x*)^T H (x - x*) - xi_i^T (x - x*),

so the mean gradient over a batch B is H (x - x*) - mean_{i in B} xi_i (an unbiased estimate of
grad f with covariance sigma^2 / |B| I when samples are drawn without reuse). The test split is
one zero-noise sample, so the test loss is exactly f(x). This is the noisy quadratic model used
to study batch size and staleness (e.g. Zhang et al., "Which algorithmic choices matter at which
batch sizes?", NeurIPS 2019, Sec. 2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from toolkit.checks import ConfigError, check_array, check_int, check_interval, check_positive
from toolkit.limits import check_memory
from toolkit.workloads.base import Workload, seeded_model

__all__ = ["QuadraticModel", "quadratic"]


class QuadraticModel(nn.Module):
    """One parameter ``x`` (shape [d]); ``forward(xi)`` returns per-sample losses (shape [B]).

    ``h`` (the Hessian diagonal) and ``optimum`` are buffers, not parameters.
    """

    def __init__(self, x0: torch.Tensor, h: torch.Tensor, optimum: torch.Tensor) -> None:
        super().__init__()
        self.x = nn.Parameter(x0.clone())
        self.register_buffer("h", h.clone())
        self.register_buffer("optimum", optimum.clone())

    def forward(self, xi: torch.Tensor) -> torch.Tensor:
        delta = self.x - self.optimum
        return 0.5 * (self.h * delta * delta).sum() - xi @ delta


def _mean_output(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The model already returns per-sample losses; the target is unused (zeros)."""
    return output.mean()


def quadratic(
    d: int = 10,
    *,
    eigenvalues: Sequence[float] | np.ndarray | None = None,
    h_max: float = 1.0,
    condition_number: float = 10.0,
    noise_std: float = 1.0,
    optimum: Sequence[float] | np.ndarray | None = None,
    x0: Sequence[float] | np.ndarray | None = None,
    n_train: int = 4096,
    data_seed: int = 0,
    batch_size: int = 32,
    lr: float | None = None,
    dtype: torch.dtype = torch.float32,
) -> Workload:
    """The noisy quadratic workload (see the module docstring for the loss).

    Spectrum: ``eigenvalues`` if given (length d, all > 0), else
    ``geomspace(h_max / condition_number, h_max, d)``. ``optimum`` defaults to zeros; the model's
    initial ``x`` is ``x0`` if given, else N(0, I) drawn from the model seed. ``noise_std`` is
    sigma (0 gives exact gradients). Default ``lr`` is 1 / max(h), half the gradient-descent
    stability limit 2 / max(h).
    """
    d = check_int("d", d)
    n_train = check_int("n_train", n_train)
    batch_size = check_int("batch_size", batch_size)
    if eigenvalues is None:
        h_max = check_positive("h_max", h_max)
        condition_number = check_interval("condition_number", condition_number, 1, math.inf, "[)")
        h = np.geomspace(h_max / condition_number, h_max, d)
    else:
        h = check_array("eigenvalues", eigenvalues)
        if h.shape != (d,):
            raise ConfigError(
                "eigenvalues", f"eigenvalues must have length d={d}, got shape {h.shape}"
            )
        if not np.all(h > 0):
            raise ConfigError(
                "eigenvalues", "eigenvalues must be > 0 (H must be positive definite)"
            )
    noise_std = check_positive("noise_std", noise_std, allow_zero=True)
    x_star = np.zeros(d) if optimum is None else np.asarray(optimum, dtype=float)
    if x_star.shape != (d,):
        raise ConfigError("optimum", f"optimum must have length d={d}, got shape {x_star.shape}")
    start = None if x0 is None else np.asarray(x0, dtype=float)
    if start is not None and start.shape != (d,):
        raise ConfigError("x0", f"x0 must have length d={d}, got shape {start.shape}")
    if lr is None:
        lr = 1.0 / float(h.max())

    check_memory("n_train", f"{n_train} noise vectors of d={d}", 8.0 * n_train * d)
    rng = np.random.default_rng(data_seed)
    xi = noise_std * rng.standard_normal((n_train, d))
    h_t = torch.as_tensor(h, dtype=dtype)
    star_t = torch.as_tensor(x_star, dtype=dtype)

    def make_model(seed: int) -> nn.Module:
        def build() -> nn.Module:
            if start is not None:
                init = torch.as_tensor(start, dtype=dtype)
            else:
                init = torch.randn(d, dtype=dtype)
            return QuadraticModel(init, h_t, star_t)

        return seeded_model(seed, build)

    return Workload(
        name="quadratic",
        make_model=make_model,
        x_train=torch.as_tensor(xi, dtype=dtype),
        y_train=torch.zeros(n_train, dtype=dtype),
        x_test=torch.zeros(1, d, dtype=dtype),
        y_test=torch.zeros(1, dtype=dtype),
        loss=_mean_output,
        batch_size=batch_size,
        lr=float(lr),
        accuracy=False,
        info={
            "hessian_eigenvalues": h.copy(),
            "optimum": x_star.copy(),
            "noise_std": float(noise_std),
            "d": d,
            "note": "x_train are gradient-noise vectors xi ~ N(0, noise_std^2 I); y is unused. "
            "Test split: one zero-noise sample, so test_loss = f(x).",
        },
        steps=300,
    )
