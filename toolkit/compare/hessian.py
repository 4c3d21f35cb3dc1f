"""Largest Hessian eigenvalue of a workload's training loss, from Hessian-vector products.

The loss is the mean training loss L(theta) over the whole training split (or its first
``samples`` points: a fixed large batch), as a function of the model's flat parameter vector
(replay's :class:`~toolkit.replay.FlatModel` order). A Hessian-vector product is the gradient of
the gradient's inner product with v, ``H v = d/dtheta <grad L(theta), v>`` (Pearlmutter 1994,
reverse-over-reverse: two ``torch.autograd.grad`` calls, the first with ``create_graph``; plain
autograd, so the first call does not import torch.func's compiler stack), accumulated over chunks
of at most ``chunk`` samples (L is a size-weighted mean of chunk means, and H v is linear in L).
The extreme eigenvalue comes from

* ``"lanczos"`` (default): ``iters`` Lanczos steps with full re-orthogonalisation (float64
  basis); returns the largest *algebraic* eigenvalue of the tridiagonal matrix (the one that sets
  the gradient-descent stability limit 2 / lambda_max);
* ``"power"``: power iteration with the Rayleigh quotient, stopped on the residual
  ||H v - lambda v|| (an eigenvalue lies within it; see the function); converges to the
  eigenvalue of largest *magnitude* (which may be negative away from a minimum).

The theory (toolkit.theory) is a quadratic model: eta_max = threshold / lambda_max
(docs/theory.md#divergence-theory-against-models).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from toolkit.checks import ConfigError, check_choice, check_int
from toolkit.replay.batched import FlatModel
from toolkit.workloads.base import Workload

__all__ = ["hessian_vector_product", "largest_hessian_eigenvalue"]


def hessian_vector_product(
    workload: Workload,
    params: torch.Tensor | dict | None = None,
    *,
    seed: int = 0,
    samples: int | None = None,
    chunk: int = 4096,
):
    """(hvp, theta): ``hvp(v)`` = Hessian of the mean training loss at ``theta`` times ``v``.

    ``params``: None (the model of ``workload.make_model(seed)``), a flat vector in
    FlatModel order (e.g. ``Results.params``) or a dict name -> tensor of all parameters.
    """
    if not isinstance(workload, Workload):
        raise ConfigError("workload", f"workload must be a Workload, got {type(workload).__name__}")
    chunk = check_int("chunk", chunk)
    model = workload.make_model(seed)
    fm = FlatModel(model, workload.loss)
    if params is None:
        theta = fm.flat()
    elif isinstance(params, dict):
        missing = [n for n in fm.names if n not in params]
        if missing:
            raise ConfigError("params", f"params: missing parameters {missing}")
        theta = torch.cat([params[n].detach().reshape(-1) for n in fm.names])
    else:
        theta = torch.as_tensor(params).detach().reshape(-1)
    if theta.numel() != fm.size:
        raise ConfigError("params", f"params: expected {fm.size} parameters, got {theta.numel()}")
    device = next(model.parameters()).device
    theta = theta.to(device=device, dtype=next(model.parameters()).dtype)
    n = workload.n_train if samples is None else check_int("samples", samples, 1, workload.n_train)
    x, y = workload.x_train[:n].to(device), workload.y_train[:n].to(device)
    pieces = [(x[i : i + chunk], y[i : i + chunk]) for i in range(0, n, chunk)]

    def hvp(v: torch.Tensor) -> torch.Tensor:
        v = v.to(device=device, dtype=theta.dtype)
        out = torch.zeros_like(theta)
        with torch.enable_grad():
            for xb, yb in pieces:
                t = theta.detach().requires_grad_(True)
                (g,) = torch.autograd.grad(fm.loss_at(t, xb, yb), t, create_graph=True)
                (hv,) = torch.autograd.grad(g, t, grad_outputs=v)
                out += hv * (len(xb) / n)
        return out

    return hvp, theta


def largest_hessian_eigenvalue(
    workload: Workload,
    params: torch.Tensor | dict | None = None,
    iters: int = 40,
    seed: int = 0,
    *,
    method: str = "lanczos",
    samples: int | None = None,
    chunk: int = 4096,
    tol: float = 1e-6,
) -> float:
    """Largest eigenvalue of the Hessian of the mean training loss at ``params`` (default: the
    initial model of ``seed``), by Lanczos (default) or power iteration on Hessian-vector
    products (module docstring). ``iters`` caps the iterations (Lanczos stops early on an
    invariant subspace; power iteration when the residual ||H v - lambda v|| of the unit
    vector v and its Rayleigh quotient lambda is <= ``tol`` |lambda|). The start vector is drawn
    from ``seed``.

    The residual gives an error bound for power iteration, but only a partial one: H is
    symmetric, so some eigenvalue lies within ||H v - lambda v|| of lambda (Weyl / Bauer-Fike);
    that it is the eigenvalue of largest magnitude is not guaranteed (a start vector nearly
    orthogonal to its eigenvector, or a small gap, converges slowly or to another one). When
    ``iters`` runs out first the last Rayleigh quotient is returned without any bound."""
    check_choice("method", method, ("lanczos", "power"))
    iters = check_int("iters", iters)
    hvp, theta = hessian_vector_product(workload, params, seed=seed, samples=samples, chunk=chunk)
    dim = theta.numel()
    gen = torch.Generator().manual_seed(int(seed))
    v = torch.randn(dim, generator=gen, dtype=torch.float64).to(theta.device)
    v /= v.norm()
    if method == "power":
        value = math.nan
        for _ in range(iters):
            hv = hvp(v).to(torch.float64)
            value = float(v @ hv)
            norm = hv.norm()
            if norm == 0:
                return 0.0
            residual = float((hv - value * v).norm())  # |lambda_i - value| <= this for some i
            if residual <= tol * max(abs(value), 1e-30):
                return value
            v = hv / norm
        return value
    steps = min(iters, dim)
    basis = torch.zeros(steps, dim, dtype=torch.float64, device=theta.device)
    alphas, betas = [], []
    basis[0] = v
    for j in range(steps):
        w = hvp(basis[j]).to(torch.float64)
        alpha = float(basis[j] @ w)
        alphas.append(alpha)
        w = w - basis[: j + 1].T @ (basis[: j + 1] @ w)  # full re-orthogonalisation (twice)
        w = w - basis[: j + 1].T @ (basis[: j + 1] @ w)
        beta = float(w.norm())
        if j + 1 == steps or beta <= 1e-10 * max(abs(alpha), 1.0):
            break
        betas.append(beta)
        basis[j + 1] = w / beta
    k = len(alphas)
    tri = np.diag(alphas) + np.diag(betas[: k - 1], 1) + np.diag(betas[: k - 1], -1)
    return float(np.linalg.eigvalsh(tri)[-1])
