"""What a workload must provide (one spec, as in AlgoPerf): model, data, loss, metrics, defaults.

Replay evaluates ``loss(functional_call(model, params, (x,)), y)`` for many parameter versions at
once with ``torch.func.vmap``, so ``model`` must be a plain ``torch.nn.Module`` without
batch-norm running statistics updates in training (use GroupNorm/LayerNorm or none), and ``loss``
must be a mean over the batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from toolkit.checks import ConfigError, check_int, check_positive

__all__ = ["Workload", "evaluate_split", "seeded_model"]


def seeded_model(seed: int, build: Callable[[], nn.Module]) -> nn.Module:
    """``build()`` under ``torch.manual_seed(seed)`` without touching the caller's global RNG."""
    seed = check_int("seed", seed, 0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return build()


@dataclass
class Workload:
    """A model factory, train/test tensors, a mean loss, and what a fair comparison needs.

    ``make_model(seed)`` returns a freshly initialised module (same seed, same weights).
    ``loss(output, target)`` is the mean loss over the batch (a 0-d tensor).
    ``accuracy`` is True when ``output.argmax(-1) == target`` is meaningful (classification).
    ``info`` holds workload facts for theory (e.g. the quadratic's Hessian eigenvalues).

    As AlgoPerf's workloads do, each carries its main ``metric`` (test accuracy for classifiers,
    test loss otherwise), a ``target`` value of it (reached, in the built-in workloads, by
    Sync(8) at the default learning rate well within ``steps``; None where none was measured),
    a default step budget ``steps`` and a learning-rate grid ``lr_grid`` (default: ``lr`` times
    0.1, 0.3, 1 and 3), so that "time to target" needs no number typed elsewhere.
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
    target: float | None = None
    steps: int = 1000
    lr_grid: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if len(self.x_train) != len(self.y_train):
            raise ConfigError(
                "x_train",
                f"x_train/y_train: lengths differ ({len(self.x_train)} vs {len(self.y_train)})",
            )
        if len(self.x_test) != len(self.y_test):
            raise ConfigError(
                "x_test",
                f"x_test/y_test: lengths differ ({len(self.x_test)} vs {len(self.y_test)})",
            )
        check_int("batch_size", self.batch_size)
        check_positive("lr", self.lr)
        check_int("steps", self.steps)
        if not self.lr_grid:
            self.lr_grid = tuple(self.lr * f for f in (0.1, 0.3, 1.0, 3.0))
        self.lr_grid = tuple(check_positive("lr_grid", v) for v in self.lr_grid)

    @property
    def metric(self) -> str:
        """The main metric: ``test_accuracy`` for classifiers, else ``test_loss``."""
        return "test_accuracy" if self.accuracy else "test_loss"

    def reached(self, value: float) -> bool:
        """Whether a value of :attr:`metric` reaches :attr:`target` (>= for accuracy, <= for a
        loss); False without a target."""
        if self.target is None:
            return False
        return value >= self.target if self.accuracy else value <= self.target

    def with_dtype(self, dtype: str) -> Workload:
        """The same workload in ``"float32"`` or ``"float64"``: floating inputs cast, models
        built in that dtype (integer targets stay as they are)."""
        want = {"float32": torch.float32, "float64": torch.float64}.get(dtype)
        if want is None:
            raise ConfigError("dtype", f"dtype must be float32 or float64, got {dtype!r}")
        if self.x_train.dtype == want:
            return self

        def cast(x: torch.Tensor) -> torch.Tensor:
            return x.to(want) if x.is_floating_point() else x

        build = self.make_model
        return dataclasses.replace(
            self,
            make_model=lambda seed: build(seed).to(want),
            x_train=cast(self.x_train),
            y_train=cast(self.y_train),
            x_test=cast(self.x_test),
            y_test=cast(self.y_test),
        )

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
        raise ConfigError("x", "x: the evaluation split is empty")
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
