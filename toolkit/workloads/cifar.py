"""ResNet-18 for 32x32 images (CIFAR-10), with GroupNorm instead of BatchNorm so that it runs
under ``torch.func.vmap`` (no running statistics).

Architecture: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, Table 1
(18 layers: BasicBlocks [2, 2, 2, 2] at widths 64, 128, 256, 512), adapted to 32x32 inputs as is
customary for CIFAR: a 3x3 stride-1 stem and no max-pool, so the feature maps are 32, 16, 8, 4.
GroupNorm: Wu and He, "Group Normalization", ECCV 2018 (32 groups).

Data: the CIFAR-10 python batches (``cifar-10-batches-py``, format documented at
https://www.cs.toronto.edu/~kriz/cifar.html) read from a folder the user gives; nothing is
downloaded. ``synthetic=True`` gives random tensors of the right shape for tests and timing.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from toolkit.checks import ConfigError, check_int
from toolkit.limits import check_memory
from toolkit.workloads.base import Workload, seeded_model

__all__ = ["ResNet18", "cifar10_resnet", "load_cifar10"]

N_CLASSES = 10
HOW_TO_GET = (
    "pass root= a folder containing cifar-10-batches-py (the CIFAR-10 python version); "
    "torchvision.datasets.CIFAR10(root, download=True) fetches it, or download "
    "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz and extract it into root"
)


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(groups, channels), channels)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (1x1 projection when the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int, groups: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.norm1 = _norm(c_out, groups)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.norm2 = _norm(c_out, groups)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), _norm(c_out, groups)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.norm1(self.conv1(x)))
        h = self.norm2(self.conv2(h))
        return F.relu(h + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 for [B, 3, 32, 32] inputs; ``width`` is the first stage's channel count (64 in
    the paper; smaller values give a cheaper network with the same depth)."""

    def __init__(self, n_classes: int = N_CLASSES, width: int = 64, groups: int = 32) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, stride=1, padding=1, bias=False)
        self.norm = _norm(width, groups)
        blocks, c_in = [], width
        for stage, c_out in enumerate([width, 2 * width, 4 * width, 8 * width]):
            for i in range(2):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(c_in, c_out, stride, groups))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.linear = nn.Linear(c_in, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.norm(self.stem(x)))
        h = self.blocks(h)
        return self.linear(h.mean(dim=(-2, -1)))  # global average pool


def load_cifar10(root: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train uint8 [50000, 3, 32, 32], y_train, x_test uint8 [10000, 3, 32, 32], y_test)
    from ``root/cifar-10-batches-py`` (pickled batches: Krizhevsky's python format)."""
    folder = Path(root) / "cifar-10-batches-py"
    if not folder.is_dir():
        raise FileNotFoundError(f"CIFAR-10 not found at {folder}: {HOW_TO_GET}")

    def read(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for name in names:
            path = folder / name
            if not path.is_file():
                raise FileNotFoundError(f"CIFAR-10 batch missing: {path}: {HOW_TO_GET}")
            with open(path, "rb") as f:
                batch = pickle.load(f, encoding="bytes")
            xs.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(batch[b"labels"], dtype=np.int64))
        return np.concatenate(xs), np.concatenate(ys)

    x_train, y_train = read([f"data_batch_{i}" for i in range(1, 6)])
    x_test, y_test = read(["test_batch"])
    return x_train, y_train, x_test, y_test


def cifar10_resnet(
    root: str | Path | None = None,
    *,
    synthetic: bool = False,
    n_train: int | None = None,
    n_test: int | None = None,
    data_seed: int = 0,
    width: int = 64,
    batch_size: int = 128,
    lr: float = 0.1,
) -> Workload:
    """ResNet-18 (GroupNorm) on CIFAR-10 from ``root``, or on random tensors if ``synthetic``.

    Real data: pixels scaled to [0, 1] and standardised per channel with the training set's mean
    and std; no augmentation. ``n_train``/``n_test`` keep the first images of each split
    (synthetic defaults: 256 and 64). Defaults ``batch_size=128, lr=0.1`` are the conventional
    CIFAR ResNet settings; they were not tuned here for plain SGD.
    """
    batch_size = check_int("batch_size", batch_size)
    width = check_int("width", width)
    if n_train is not None:
        n_train = check_int("n_train", n_train)
    if n_test is not None:
        n_test = check_int("n_test", n_test)
    if synthetic and root is not None:
        raise ConfigError(
            "root", "root: give either root= (real CIFAR-10) or synthetic=True, not both"
        )
    if synthetic:
        gen = torch.Generator().manual_seed(data_seed)
        n_train, n_test = n_train or 256, n_test or 64
        what = f"{n_train + n_test} synthetic 3x32x32 float32 images"
        check_memory("n_train", what, 4 * 3 * 32 * 32 * (n_train + n_test))
        x_train = torch.randn(n_train, 3, 32, 32, generator=gen)
        y_train = torch.randint(0, N_CLASSES, (n_train,), generator=gen)
        x_test = torch.randn(n_test, 3, 32, 32, generator=gen)
        y_test = torch.randint(0, N_CLASSES, (n_test,), generator=gen)
        info = {
            "dataset": "synthetic",
            "synthetic": True,
            "note": "random N(0,1) images with uniform random labels: for shape and speed checks "
            "only; accuracy is meaningless. " + HOW_TO_GET,
        }
    else:
        if root is None:
            raise ConfigError(
                "root", f"root: CIFAR-10 needs data; {HOW_TO_GET} (or synthetic=True)"
            )
        xtr, ytr, xte, yte = load_cifar10(root)
        xtr, ytr = xtr[:n_train], ytr[:n_train]
        xte, yte = xte[:n_test], yte[:n_test]
        xtr = xtr.astype(np.float32) / 255.0
        xte = xte.astype(np.float32) / 255.0
        mean = xtr.mean(axis=(0, 2, 3), keepdims=True)
        std = xtr.std(axis=(0, 2, 3), keepdims=True)
        x_train = torch.from_numpy((xtr - mean) / std)
        x_test = torch.from_numpy((xte - mean) / std)
        y_train, y_test = torch.from_numpy(ytr), torch.from_numpy(yte)
        info = {"dataset": "cifar10", "synthetic": False, "root": str(root)}
    info["n_classes"] = N_CLASSES
    return Workload(
        name="cifar10_resnet",
        make_model=lambda seed: seeded_model(seed, lambda: ResNet18(N_CLASSES, width)),
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        loss=F.cross_entropy,
        batch_size=batch_size,
        lr=float(lr),
        accuracy=True,
        info=info,
        steps=2000,
    )
