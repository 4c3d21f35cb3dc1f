"""Layer-wise overlap of communication with the backward pass (the wait-free backpropagation of
Poseidon, Zhang et al., USENIX ATC 2017; the gradient buckets of PyTorch DDP, Li et al., VLDB
2020): the exchange of a layer's gradient starts as soon as the backward
pass has produced it, while the backward pass goes on with the layers below.

Derived here: with the layers in the order the backward pass finishes them, backward times
b_1..b_L, exchange times c_1..c_L over one link that sends one layer at a time, and forward time
F, layer i's gradient is ready at R_i = F + b_1 + ... + b_i and its exchange ends at

    E_i = max(R_i, E_{i-1}) + c_i,  E_0 = 0,

a two-machine flow shop in a fixed order (Johnson 1954). The step ends at E_L. Without overlap
the step is F + sum b + sum c. With equal layers (b_i = B / L, c_i = C / L),
E_L = F + B / L + (L - 1) max(B, C) / L + C / L, so the gain tends to (F + B + C) /
(F + max(B, C)) as L grows: at most 2 when F = 0 and B = C.
"""

from __future__ import annotations

import numpy as np

from toolkit.checks import ConfigError, check_positive

__all__ = ["layerwise_step_time"]


def layerwise_step_time(backward, comm, forward: float = 0.0) -> float:
    """Step time E_L of the recursion in the module docstring: ``backward[i]`` and ``comm[i]``
    are layer i's backward and exchange times, in the order the backward pass produces them (the
    last layer first)."""
    b = np.asarray(backward, dtype=float)
    c = np.asarray(comm, dtype=float)
    if b.ndim != 1 or b.size == 0:
        raise ConfigError(
            "backward", f"backward: expected a non-empty 1-d sequence, got shape {b.shape}"
        )
    if c.shape != b.shape:
        raise ConfigError(
            "comm", f"comm: expected {b.size} per-layer times like backward, got {c.shape}"
        )
    if (b < 0).any() or not np.isfinite(b).all():
        raise ConfigError("backward", "backward: per-layer times must be finite and >= 0")
    if (c < 0).any() or not np.isfinite(c).all():
        raise ConfigError("comm", "comm: per-layer times must be finite and >= 0")
    ready = check_positive("forward", forward, allow_zero=True) + np.cumsum(b)
    end = 0.0
    for r, ci in zip(ready, c, strict=True):
        end = max(r, end) + ci
    return float(end)
