"""scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes; UCI "Optical
Recognition of Handwritten Digits", test part) with a small 2-D CNN. Offline: the data ship with
scikit-learn (``sklearn.datasets.load_digits``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from toolkit.checks import ConfigError, check_int
from toolkit.workloads.base import Workload, seeded_model

__all__ = ["DigitsCNN", "digits_cnn"]

N_CLASSES = 10


class DigitsCNN(nn.Module):
    """conv3x3(1->16) -> ReLU -> conv3x3 stride 2 (16->32) -> ReLU -> linear(32*4*4 -> 10).

    Input [B, 1, 8, 8] with pixels scaled to [0, 1]; no normalisation layer (vmap-friendly).
    """

    def __init__(self, channels: int = 16) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1)
        self.linear = nn.Linear(2 * channels * 4 * 4, N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.conv1(x))
        h = F.relu(self.conv2(h))
        return self.linear(h.flatten(-3))


def digits_cnn(
    *,
    test_fraction: float = 0.25,
    data_seed: int = 0,
    n_train: int | None = None,
    batch_size: int = 32,
    lr: float = 0.1,
) -> Workload:
    """The digits CNN workload. The train/test split is a permutation drawn from ``data_seed``
    (``test_fraction`` of the 1,797 images are test); ``n_train`` optionally keeps only the first
    ``n_train`` training images."""
    from sklearn.datasets import load_digits

    batch_size = check_int("batch_size", batch_size)
    if not 0 < test_fraction < 1:
        raise ConfigError("test_fraction", f"test_fraction must be in (0, 1), got {test_fraction}")
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    order = np.random.default_rng(data_seed).permutation(len(y))
    n_test = max(1, round(test_fraction * len(y)))
    test, train = order[:n_test], order[n_test:]
    if n_train is not None:
        n_train = check_int("n_train", n_train)
        if n_train > len(train):
            raise ConfigError(
                "n_train", f"n_train must be <= {len(train)} (available), got {n_train}"
            )
        train = train[:n_train]
    return Workload(
        name="digits_cnn",
        make_model=lambda seed: seeded_model(seed, DigitsCNN),
        x_train=torch.tensor(x[train]),
        y_train=torch.tensor(y[train], dtype=torch.int64),
        x_test=torch.tensor(x[test]),
        y_test=torch.tensor(y[test], dtype=torch.int64),
        loss=F.cross_entropy,
        batch_size=batch_size,
        lr=float(lr),
        accuracy=True,
        info={"dataset": "sklearn digits 8x8", "data_seed": int(data_seed), "n_classes": 10},
        # Sync(8) at lr 0.1, batch 32, expon(loc=1, scale=0.5), seed 0: 0.953 by update 200
        target=0.95 if n_train is None and test_fraction == 0.25 else None,
        steps=500,
    )
