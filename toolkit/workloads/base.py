"""What a workload must provide (one spec, as in AlgoPerf): model, data, loss, metrics, defaults.

Replay evaluates ``loss(functional_call(model, params, (x,)), y)`` for many parameter versions at
once with ``torch.func.vmap``, so ``model`` must be a plain ``torch.nn.Module`` without
batch-norm running statistics updates in training (use GroupNorm/LayerNorm or none), and ``loss``
must be a mean over the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from toolkit.checks import check_int, check_positive

__all__ = ["Workload", "evaluate_split", "seeded_model"]


def seeded_model(seed: int, build: Callable[[], nn.Module]) -> nn.Module:
    """``build()`` under ``torch.manual_seed(seed)`` without touching the caller's global RNG."""
    seed = check_int("seed", seed, 0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return build()


@dataclass
class Workload:
    """A model factory, train/test tensors, a mean loss, and defaults.

    ``make_model(seed)`` returns a freshly initialised module (same seed, same weights).
    ``loss(output, target)`` is the mean loss over the batch (a 0-d tensor).
    ``accuracy`` is True when ``output.argmax(-1) == target`` is meaningful (classification).
    ``info`` holds workload facts for theory (e.g. the quadratic's Hessian eigenvalues).
    """

    name: str
    make_model: Callable[[int], nn.Module]
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    batch_size: int = 32
    lr: float = 0.1
    accuracy: bool = True
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.x_train) != len(self.y_train):
            raise ValueError(
                f"x_train/y_train: lengths differ ({len(self.x_train)} vs {len(self.y_train)})"
            )
        if len(self.x_test) != len(self.y_test):
            raise ValueError(
                f"x_test/y_test: lengths differ ({len(self.x_test)} vs {len(self.y_test)})"
            )
        check_int("batch_size", self.batch_size)
        check_positive("lr", self.lr)

    @property
    def n_train(self) -> int:
        return len(self.x_train)

    def to(self, device: torch.device | str) -> Workload:
        """The same workload with its tensors on ``device``."""
        self.x_train, self.y_train = self.x_train.to(device), self.y_train.to(device)
        self.x_test, self.y_test = self.x_test.to(device), self.y_test.to(device)
        return self

    def evaluate(self, model: nn.Module, batch: int = 4096) -> dict[str, float]:
        """Test loss (and accuracy for classifiers) of ``model`` on the test split
        (:func:`evaluate_split`)."""
        return evaluate_split(model, self.x_test, self.y_test, self.loss, self.accuracy, batch)


@torch.no_grad()
def evaluate_split(
    forward: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    accuracy: bool,
    batch: int = 4096,
) -> dict[str, float]:
    """Mean loss (and accuracy) of ``forward`` on (x, y), in batches of ``batch`` samples.

    ``test_loss = sum_b len(x_b) loss(forward(x_b), y_b) / len(x)`` (``loss`` is a batch mean);
    ``test_accuracy = #(argmax(-1) == y) / y.numel()``: one target per sample for a classifier,
    one per position for a sequence model (charlm), so accuracy is per target either way. The one
    evaluation routine of the toolkit: :meth:`Workload.evaluate` passes the module, replay a
    ``functional_call`` at a flat parameter vector.
    """
    if len(x) == 0:
        raise ValueError("x: the evaluation split is empty")
    total, correct, count, targets = 0.0, 0, 0, 0
    for i in range(0, len(x), batch):
        xb, yb = x[i : i + batch], y[i : i + batch]
        out = forward(xb)
        total += float(loss(out, yb)) * len(xb)
        if accuracy:
            correct += int((out.argmax(-1) == yb).sum())
            targets += yb.numel()
        count += len(xb)
    result = {"test_loss": total / count}
    if accuracy:
        result["test_accuracy"] = correct / targets
    return result
