"""Largest Hessian eigenvalue from Hessian-vector products (toolkit/compare/hessian.py).

Oracles: the quadratic workload's known spectrum (info["hessian_eigenvalues"]), and the dense
Hessian of a tiny MLP from torch.func.hessian.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, hessian

from toolkit.compare import hessian_vector_product, largest_hessian_eigenvalue
from toolkit.workloads import Workload, get_workload, seeded_model


def _tiny_mlp() -> Workload:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(80, 3, generator=g, dtype=torch.float64)
    y = (x[:, 0] * x[:, 1] > 0).long()

    def make_model(seed: int) -> nn.Module:
        return seeded_model(
            seed, lambda: nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
        )

    return Workload("tiny", make_model, x[:64], y[:64], x[64:], y[64:], loss=F.cross_entropy)


def _dense_hessian(workload: Workload, seed: int = 0) -> torch.Tensor:
    model = workload.make_model(seed)
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss(theta: torch.Tensor) -> torch.Tensor:
        parts = torch.split(theta, sizes)
        params = {n: t.view(s) for n, t, s in zip(names, parts, shapes, strict=True)}
        return workload.loss(functional_call(model, params, (workload.x_train,)), workload.y_train)

    with warnings.catch_warnings():  # torch.func's forward-mode setup calls torch.jit.script
        warnings.filterwarnings("ignore", "`torch.jit.script` is deprecated", DeprecationWarning)
        return hessian(loss)(flat)


def test_quadratic_spectrum_is_recovered() -> None:
    w = get_workload("quadratic", d=6, eigenvalues=[0.3, 0.5, 1.0, 1.7, 2.5, 4.2], noise_std=1.0)
    top = float(w.info["hessian_eigenvalues"].max())
    assert largest_hessian_eigenvalue(w, iters=10) == pytest.approx(top, rel=1e-5)
    assert largest_hessian_eigenvalue(w, iters=300, method="power") == pytest.approx(top, rel=1e-3)


def test_tiny_mlp_matches_dense_hessian() -> None:
    w = _tiny_mlp()
    dense = _dense_hessian(w)
    exact = float(torch.linalg.eigvalsh(dense)[-1])
    assert largest_hessian_eigenvalue(w, iters=dense.shape[0]) == pytest.approx(exact, rel=1e-8)
    hvp, theta = hessian_vector_product(w, chunk=10)  # chunked accumulation
    v = torch.randn(theta.numel(), dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(hvp(v), dense @ v, rtol=1e-9, atol=1e-12)


def test_power_iteration_stops_on_residual_bound() -> None:
    """Power iteration returns once ||H v - lambda v|| <= tol |lambda|, and for a symmetric H
    some eigenvalue lies within that residual of lambda (here the top one: dense oracle)."""
    w = _tiny_mlp()
    eigs = torch.linalg.eigvalsh(_dense_hessian(w)).numpy()
    for tol in (1e-3, 1e-8):
        value = largest_hessian_eigenvalue(w, iters=2000, method="power", tol=tol)
        assert np.abs(eigs - value).min() <= tol * abs(value)
        assert value == pytest.approx(eigs[np.abs(eigs).argmax()], rel=tol)


def test_params_as_flat_vector_or_dict_and_samples() -> None:
    w = _tiny_mlp()
    model = w.make_model(0)
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    named = {n: p.detach() for n, p in model.named_parameters()}
    base = largest_hessian_eigenvalue(w, iters=26)
    assert largest_hessian_eigenvalue(w, flat, iters=26) == pytest.approx(base, rel=1e-10)
    assert largest_hessian_eigenvalue(w, named, iters=26) == pytest.approx(base, rel=1e-10)
    other = largest_hessian_eigenvalue(w, 2 * flat, iters=26)
    assert not np.isclose(other, base)
    assert np.isfinite(largest_hessian_eigenvalue(w, iters=26, samples=16))


def test_bad_input() -> None:
    w = _tiny_mlp()
    with pytest.raises(ValueError, match="method"):
        largest_hessian_eigenvalue(w, method="arnoldi")
    with pytest.raises(ValueError, match="iters"):
        largest_hessian_eigenvalue(w, iters=0)
    with pytest.raises(ValueError, match="params"):
        largest_hessian_eigenvalue(w, torch.zeros(3))
    with pytest.raises(ValueError, match="samples"):
        largest_hessian_eigenvalue(w, samples=10**6)
    with pytest.raises(ValueError, match="workload"):
        largest_hessian_eigenvalue("quadratic")
