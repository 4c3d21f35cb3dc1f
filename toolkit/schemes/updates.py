"""The update math of the schemes, as small pure functions in the style of optax.

Replay, the divergence bisection and the real backend call these functions, so every engine
applies the same update. They work on any array type with arithmetic, ``.sum(0)`` and ``.mean(0)``
(torch tensors, numpy arrays); each returns new arrays and new state and changes nothing.

Shared parameters (``Rule.period == 0``). Update u combines its used gradients g_i (computed at
versions v_i) into a direction, d_u = sum_i w_i g_i, with w_i from a :class:`Staleness` policy
(the plain mean unless the policy weights or drops stale gradients), then an optimizer
:class:`Transform` turns d_u into a :class:`Step`: x_{u+1} = x_u + scale * direction.

* :func:`sgd` (lr, heavy-ball momentum mu, PyTorch's convention m <- mu m + d, step = -lr m;
  ``nesterov``: step = -lr (d + mu m), PyTorch's and DiLoCo's outer Nesterov).
* :class:`Staleness`: ``"none"``; ``"drop"`` (gradients with staleness > ``max_staleness`` are left
  out of the mean; an update left with none has d_u = 0, so without momentum the parameters do not
  move and with momentum they move by the decayed velocity); ``"lr"`` (Zhang, Gupta, Lian, Liu,
  "Staleness-aware Async-SGD", IJCAI 2016, Sec. 4.3: alpha = alpha_0 / tau; here
  lr / max(1, staleness), so a fresh gradient keeps lr).

Replicas (``Rule.period > 0``). Worker i holds x_i and a gradient point p_i (where its next local
gradient is taken); the centre is x_c. A :class:`Local` rule takes the local steps and an
:class:`Exchange` meets the centre with the replicas xs = [x_i] of the workers taking part:

* :func:`elastic` (Zhang, Choromanska, LeCun, "Deep learning with Elastic Averaging SGD",
  NIPS 2015, Algorithm 1 and Eqs. (5)-(6); alpha = eta rho): x_i <- x_i - alpha (x_i - x_c) and
  x_c <- x_c + alpha sum_i (x_i - x_c), all from the values before the exchange (the centre uses
  the old x_i). The gradient point stays at the pre-exchange x_i (Algorithm 1: x <- x^i, then the
  elastic move, then x^i <- x^i - eta g(x)).
* :func:`average` (local SGD / periodic averaging): x_c <- mean_i x_i, every x_i <- x_c.
* :func:`outer` (DiLoCo, Douillard et al. 2023, arXiv 2311.08105, Algorithm 1): the outer gradient
  Delta = x_c - mean_i x_i goes through an outer optimizer (Nesterov SGD in the paper),
  x_c <- x_c + step, every x_i <- x_c. With ``sgd(1.0)`` this is :func:`average` up to rounding.
* Local steps: :func:`local_sgd` (x_i <- x_i - eta g(p_i)) and :func:`local_nesterov` (EAMSGD,
  Zhang et al. 2015, Algorithm 2: v_i <- delta v_i - eta g(p_i + delta v_i), x_i <- x_i + v_i).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from toolkit.checks import ConfigError, check_choice, check_int, check_interval, check_positive

__all__ = [
    "STALENESS",
    "Exchange",
    "Local",
    "Replicated",
    "Shared",
    "Staleness",
    "Step",
    "Transform",
    "average",
    "axpy",
    "elastic",
    "local_nesterov",
    "local_sgd",
    "outer",
    "sgd",
]

STALENESS = ("none", "drop", "lr")


def _zeros_like(x: Any) -> Any:
    return x.new_zeros(x.shape) if hasattr(x, "new_zeros") else np.zeros_like(x)


def axpy(x: Any, a: float, y: Any) -> Any:
    """x + a y, as one fused ``torch.add`` for tensors (so every engine rounds alike)."""
    return x.add(y, alpha=a) if hasattr(x, "add") else x + a * y


def _broadcast(row: Any, like: Any) -> Any:
    """``row`` [P] repeated as ``like`` [k, P] (a copy, so that callers may write into it)."""
    if hasattr(row, "expand_as"):
        return row.expand_as(like).clone()
    return np.broadcast_to(row, like.shape).copy()


# --------------------------------------------------------------------------- optimizers
class Step(NamedTuple):
    """A parameter step x <- x + scale * direction, kept as its two factors so that a torch
    caller can apply it as one fused add (``torch.add(x, direction, alpha=scale, out=...)``)."""

    direction: Any
    scale: float

    def apply(self, x: Any) -> Any:
        """x + scale * direction."""
        return axpy(x, self.scale, self.direction)


class Transform(NamedTuple):
    """An optimizer as two pure functions (optax's GradientTransformation): ``init(params)`` ->
    state and ``update(direction, state)`` -> (:class:`Step`, state)."""

    init: Callable[[Any], Any]
    update: Callable[[Any, Any], tuple[Step, Any]]


def sgd(lr: float, momentum: float = 0.0, nesterov: bool = False) -> Transform:
    """SGD with optional heavy-ball momentum (PyTorch's convention): m <- mu m + d and
    step = -lr m, or step = -lr (d + mu m) with ``nesterov``; plain step = -lr d for mu = 0."""
    lr = check_positive("lr", lr)
    mu = check_interval("momentum", momentum, 0.0, 1.0, "[)")
    if mu == 0.0:
        return Transform(lambda params: None, lambda d, state: (Step(d, -lr), None))

    def update(d: Any, m: Any) -> tuple[Step, Any]:
        m = m * mu + d
        return Step(axpy(d, mu, m) if nesterov else m, -lr), m

    return Transform(_zeros_like, update)


@dataclass(frozen=True)
class Staleness:
    """How an update weighs its gradients by staleness (module docstring): ``policy`` is one of
    ``STALENESS``; ``max_staleness`` bounds ``"drop"`` (any other policy refuses a bound)."""

    policy: str = "none"
    max_staleness: int | None = None

    def __post_init__(self) -> None:
        check_choice("staleness", self.policy, STALENESS)
        if self.policy == "drop":
            if self.max_staleness is None:
                raise ConfigError(
                    "max_staleness", "max_staleness: staleness='drop' needs an integer bound >= 0"
                )
            check_int("max_staleness", self.max_staleness, 0)
        elif self.max_staleness is not None:
            raise ConfigError(
                "max_staleness",
                f"max_staleness: only staleness='drop' takes a bound; staleness is {self.policy!r}",
            )

    def factors(self, staleness: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(keep mask, learning-rate factor) per gradient of the given staleness."""
        s = np.asarray(staleness)
        keep = np.ones(s.shape, dtype=bool)
        factor = np.ones(s.shape, dtype=np.float64)
        if self.policy == "drop":
            keep = s <= self.max_staleness
        elif self.policy == "lr":
            factor = 1.0 / np.maximum(1, s).astype(np.float64)
        return keep, factor

    def weights(
        self, update: np.ndarray, staleness: np.ndarray, n_updates: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(keep, weight, count) for gradients of updates ``update`` with staleness ``staleness``:
        d_u = sum_i weight_i g_i over the kept gradients of update u, weight = factor / count_u,
        count_u the gradients update u keeps (``count`` over updates 0..n_updates-1)."""
        upd = np.asarray(update, dtype=np.int64)
        keep, factor = self.factors(staleness)
        n = int(upd.max(initial=-1)) + 1 if n_updates is None else int(n_updates)
        count = np.bincount(upd[keep], minlength=n)
        weight = np.where(keep, factor / np.maximum(count, 1)[upd], 0.0)
        return keep, weight, count


@dataclass(frozen=True)
class Shared:
    """The update rule of a shared-parameter scheme: gradients combined under a staleness
    policy, then an optimizer step."""

    staleness: Staleness
    optimizer: Transform


# --------------------------------------------------------------------------- replicas
class Local(NamedTuple):
    """A replica's local step: ``init(x)`` -> state, ``point(p, state)`` -> where the gradient is
    taken (p the gradient point), ``update(g, state)`` -> (:class:`Step`, state).
    ``momentum`` is the look-ahead coefficient delta (0 for plain SGD), for the theory."""

    init: Callable[[Any], Any]
    point: Callable[[Any, Any], Any]
    update: Callable[[Any, Any], tuple[Step, Any]]
    momentum: float = 0.0


def local_sgd(lr: float) -> Local:
    """x_i <- x_i - lr g(p_i)."""
    opt = sgd(lr)
    return Local(opt.init, lambda p, state: p, opt.update)


def local_nesterov(lr: float, delta: float) -> Local:
    """EAMSGD's local step (Zhang et al. 2015, Algorithm 2): the gradient at p_i + delta v_i,
    v_i <- delta v_i - lr g, x_i <- x_i + v_i."""
    lr = check_positive("lr", lr)
    delta = check_interval("momentum", delta, 0.0, 1.0, "[)")

    def update(g: Any, v: Any) -> tuple[Step, Any]:
        v = axpy(v * delta, -lr, g)
        return Step(v, 1.0), v

    return Local(_zeros_like, lambda p, v: axpy(p, delta, v), update, delta)


class Exchange(NamedTuple):
    """A meeting of replicas with the centre: ``init(centre)`` -> state and
    ``apply(xs, centre, state)`` -> (moved, points, centre, state), where xs [k, P] are the
    replicas taking part, ``moved`` their new values or a :class:`Step` to add to them (so an
    engine may apply it in place: ``Step.apply(xs)`` gives the values), and points their next
    gradient points. ``kind`` (``"elastic"``, ``"average"``, ``"outer"``) and ``alpha`` (the
    elastic coefficient) name the map for the theory.

    ``reduced(x, mean, k, centre, state)`` -> (x', point, centre', state') is the same map seen
    by one of the k replicas that knows only its own x [P] and the mean of all k: every exchange
    here reads the others only through sum_i x_i = k mean, which is what an ``all_reduce``
    delivers (the real backend's synchronous exchange; tested equal to ``apply``)."""

    init: Callable[[Any], Any]
    apply: Callable[[Any, Any, Any], tuple[Any, Any, Any, Any]]
    kind: str
    alpha: float = 0.0
    reduced: Callable[[Any, Any, int, Any, Any], tuple[Any, Any, Any, Any]] | None = None


def elastic(alpha: float) -> Exchange:
    """EASGD's elastic exchange (module docstring); the gradient points stay at the old xs."""
    alpha = check_interval("alpha", alpha, 0.0, 1.0, "()")

    def apply(xs: Any, centre: Any, state: Any) -> tuple[Any, Any, Any, Any]:
        diff = xs - centre
        return Step(diff, -alpha), xs, axpy(centre, alpha, diff.sum(0)), state

    def reduced(x: Any, mean: Any, k: int, centre: Any, state: Any) -> tuple[Any, Any, Any, Any]:
        # sum_i (x_i - x_c) = k (mean - x_c)
        return axpy(x, -alpha, x - centre), x, axpy(centre, alpha * k, mean - centre), state

    return Exchange(lambda centre: None, apply, "elastic", alpha, reduced)


def average() -> Exchange:
    """Periodic model averaging: x_c <- mean_i x_i and every x_i <- x_c."""

    def apply(xs: Any, centre: Any, state: Any) -> tuple[Any, Any, Any, Any]:
        centre = xs.mean(0)
        new = _broadcast(centre, xs)
        return new, new, centre, state

    def reduced(x: Any, mean: Any, k: int, centre: Any, state: Any) -> tuple[Any, Any, Any, Any]:
        return mean, mean, mean, state

    return Exchange(lambda centre: None, apply, "average", reduced=reduced)


def outer(optimizer: Transform) -> Exchange:
    """DiLoCo's outer step: Delta = x_c - mean_i x_i through ``optimizer``, then x_i <- x_c."""

    def apply(xs: Any, centre: Any, state: Any) -> tuple[Any, Any, Any, Any]:
        step, state = optimizer.update(centre - xs.mean(0), state)
        centre = step.apply(centre)
        new = _broadcast(centre, xs)
        return new, new, centre, state

    def reduced(x: Any, mean: Any, k: int, centre: Any, state: Any) -> tuple[Any, Any, Any, Any]:
        step, state = optimizer.update(centre - mean, state)
        centre = step.apply(centre)
        return centre, centre, centre, state

    return Exchange(optimizer.init, apply, "outer", reduced=reduced)


@dataclass(frozen=True)
class Replicated:
    """The update rule of a replica scheme: local steps, and an exchange with the centre."""

    local: Local
    exchange: Exchange
