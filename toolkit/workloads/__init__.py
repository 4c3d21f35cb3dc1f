"""Workloads: a model factory, train/test tensors, a mean loss, metrics and defaults
(:class:`~toolkit.workloads.base.Workload`), looked up by name.

Built in: ``quadratic`` (noisy quadratic with a known spectrum), ``logreg``, ``mnist1d_mlp``,
``mnist1d_cnn`` (MNIST-1D, generated offline), ``digits_cnn`` (scikit-learn's 8x8 digits),
``cifar10_resnet`` (ResNet-18 with GroupNorm; needs ``root=`` or ``synthetic=True``) and
``charlm`` (character-level transformer; needs ``path=`` or ``synthetic=True``).

Register your own in a few lines::

    import torch
    from torch import nn
    import torch.nn.functional as F
    from toolkit.workloads import Workload, get_workload, register_workload, seeded_model

    def xor_blobs(n_train: int = 512, data_seed: int = 0) -> Workload:
        g = torch.Generator().manual_seed(data_seed)
        x = torch.randn(n_train + 128, 2, generator=g)
        y = (x[:, 0] * x[:, 1] > 0).long()  # XOR of the signs

        def make_model(seed: int) -> nn.Module:  # same seed -> same weights
            return seeded_model(seed, lambda: nn.Sequential(
                nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 2)))

        return Workload("xor_blobs", make_model, x[:n_train], y[:n_train],
                        x[n_train:], y[n_train:], loss=F.cross_entropy,
                        batch_size=32, lr=0.1)

    register_workload("xor_blobs", xor_blobs)
    workload = get_workload("xor_blobs", n_train=1024)

A model must be vmap-friendly (replay evaluates it under ``torch.func.vmap`` over stacked
parameter versions): no BatchNorm running statistics (use GroupNorm/LayerNorm or none), no
in-place changes to inputs, no Python control flow that depends on tensor values, no dropout.
"""

from __future__ import annotations

from collections.abc import Callable

from toolkit.checks import ConfigError
from toolkit.workloads.base import Workload, seeded_model
from toolkit.workloads.charlm import charlm
from toolkit.workloads.cifar import cifar10_resnet
from toolkit.workloads.digits import digits_cnn
from toolkit.workloads.mnist1d import logreg, mnist1d_cnn, mnist1d_mlp
from toolkit.workloads.quadratic import quadratic

__all__ = ["WORKLOADS", "Workload", "get_workload", "register_workload", "seeded_model"]

WorkloadFactory = Callable[..., Workload]

WORKLOADS: dict[str, WorkloadFactory] = {
    "quadratic": quadratic,
    "logreg": logreg,
    "mnist1d_mlp": mnist1d_mlp,
    "mnist1d_cnn": mnist1d_cnn,
    "digits_cnn": digits_cnn,
    "cifar10_resnet": cifar10_resnet,
    "charlm": charlm,
}


def get_workload(name: str, **kwargs) -> Workload:
    """Build the workload registered as ``name`` with keyword arguments ``kwargs``."""
    if name not in WORKLOADS:
        raise ConfigError(
            "name", f"name: unknown workload {name!r}; valid: {', '.join(sorted(WORKLOADS))}"
        )
    workload = WORKLOADS[name](**kwargs)
    if not isinstance(workload, Workload):
        kind = type(workload).__name__
        raise TypeError(f"workload factory {name!r} returned {kind}, not a Workload")
    return workload


def register_workload(name: str, factory: WorkloadFactory, *, overwrite: bool = False) -> None:
    """Register ``factory(**kwargs) -> Workload`` under ``name`` (see the module docstring).

    Re-registering an existing name raises ValueError unless ``overwrite=True``.
    """
    if not isinstance(name, str) or not name:
        raise ConfigError("name", f"name must be a non-empty string, got {name!r}")
    if not callable(factory):
        raise ConfigError("factory", f"factory must be callable, got {factory!r}")
    if name in WORKLOADS and not overwrite:
        raise ConfigError(
            "name", f"name: workload {name!r} is already registered (pass overwrite=True)"
        )
    WORKLOADS[name] = factory
