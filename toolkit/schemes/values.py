"""Scheme values: small frozen dataclasses that say which gradients an update combines, when, and
with which update math.

A scheme holds no tensors. Its ``rule`` (:class:`~toolkit.schemes.rule.Rule`) is what the clock
and the theory read; its ``updates(lr, ...)`` (:mod:`toolkit.schemes.updates`) is what replay and
the real backend apply; ``str(scheme)`` is its label in every table, plot and command line.

Dutta, Joshi, Ghosh, Dube, Nagpurkar ("Slow and Stale Gradients Can Win the Race", AISTATS 2018,
Sec. 2.3) name four variants with P learners and a parameter K; here they are:

==================  ============================  =============================================
Dutta et al.        scheme                        rule
==================  ============================  =============================================
K-sync              ``Backup(K, P - K)``          first K of P learners; the rest are cancelled
K-batch-sync        ``KBatchSync(P, K)``          first K mini-batches at one version
K-async             ``KAsync(P, K)``              first K learners; no cancelling, stale arrivals
K-batch-async       ``KBatchAsync(P, K)``         next K mini-batches from anyone (n-softsync)
==================  ============================  =============================================

K = P gives synchronous SGD and K = 1 asynchronous SGD for the async pair. Identities that
follow (and are tested): Backup(n, 0), Delayed(n, 0) and KAsync(n, n) equal Sync(n);
KAsync(n, 1) and KBatchAsync(n, 1) equal Async(n); DiLoCo(n, 1, 1.0, 0.0) averages like Sync(n).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from toolkit.checks import ConfigError, check_int, check_interval, check_positive
from toolkit.schemes.rule import Rule
from toolkit.schemes.updates import (
    Replicated,
    Shared,
    Staleness,
    average,
    elastic,
    local_nesterov,
    local_sgd,
    outer,
    sgd,
)

__all__ = [
    "EASGD",
    "SCHEMES",
    "Async",
    "Backup",
    "Delayed",
    "DiLoCo",
    "KAsync",
    "KBatchAsync",
    "KBatchSync",
    "LocalSGD",
    "Scheme",
    "Sync",
    "make_scheme",
]


class Scheme:
    """Base class: a scheme is a frozen dataclass with a field ``n``, a ``rule`` and ``updates``."""

    name: ClassVar[str] = ""
    n: int

    @property
    def rule(self) -> Rule:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    def updates(
        self,
        lr: float,
        *,
        momentum: float = 0.0,
        nesterov: bool = False,
        staleness: Staleness | None = None,
    ) -> Shared | Replicated:
        """The update math at learning rate ``lr`` (the local rate eta for replica schemes):
        gradients combined under the ``staleness`` policy, then SGD with ``momentum``, heavy
        ball or ``nesterov`` (:func:`toolkit.schemes.updates.sgd`). Replica schemes override
        this."""
        return Shared(staleness or Staleness(), sgd(lr, momentum, nesterov))

    def to_dict(self) -> dict:
        """Plain values, the one spelling of a scheme in configs, manifests and Schedule metas:
        ``{"name": name, **fields}``; :meth:`from_dict` reads it back."""
        return {"name": self.name, **dataclasses.asdict(self)}

    @staticmethod
    def from_dict(data: dict) -> Scheme:
        """The scheme of a :meth:`to_dict` table."""
        if not isinstance(data, dict) or "name" not in data:
            raise ConfigError("name", f"scheme: expected a table with a name, got {data!r}")
        fields = dict(data)
        return make_scheme(str(fields.pop("name")), **fields)

    def __str__(self) -> str:
        """The label of every table, plot and command line: class name and fields, floats
        with %g; EASGD's ``synchronous=False`` reads ``asynchronous``."""
        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool):
                if not value:
                    parts.append(f"a{f.name}")
            elif isinstance(value, float):
                parts.append(f"{f.name}={value:g}")
            else:
                parts.append(f"{f.name}={value}")
        return f"{type(self).__name__}({', '.join(parts)})"


def _replica_updates(
    local, exchange, momentum: float, staleness: Staleness | None, name: str, nesterov=False
) -> Replicated:
    if momentum or nesterov:
        what = "nesterov" if nesterov and not momentum else "momentum"
        raise ConfigError(what, f"{what}: {name} takes plain local SGD steps (EAMSGD has its own)")
    if staleness is not None and staleness.policy != "none":
        raise ConfigError("staleness", f"staleness: {name} has no stale gradients to weigh")
    return Replicated(local, exchange)


@dataclass(frozen=True)
class Sync(Scheme):
    """Fully synchronous SGD: each update averages one gradient from each of n workers."""

    n: int
    name: ClassVar[str] = "sync"

    def __post_init__(self) -> None:
        check_int("n", self.n, 1)

    @property
    def rule(self) -> Rule:
        return Rule(machines=self.n, quorum=self.n, barrier=True)


@dataclass(frozen=True)
class Backup(Scheme):
    """Synchronous SGD with b backup workers (Chen, Pan, Monga, Bengio, Jozefowicz, "Revisiting
    Distributed Synchronous SGD", arXiv 1604.00981, Sec. 3, Algorithm 4): n + b workers compute;
    an update averages the first n gradients to arrive; the last b are dropped and their workers
    restart from the new parameters. Dutta et al.'s K-sync is Backup(K, P - K)."""

    n: int
    b: int
    name: ClassVar[str] = "backup"

    def __post_init__(self) -> None:
        check_int("n", self.n, 1)
        check_int("b", self.b, 0)

    @property
    def rule(self) -> Rule:
        return Rule(machines=self.n + self.b, quorum=self.n, barrier=True)


@dataclass(frozen=True)
class KBatchSync(Scheme):
    """K-batch-sync SGD (Dutta et al., AISTATS 2018, Sec. 2.3): all n workers start at the same
    version; the server averages the first k mini-batch gradients to finish, a worker that
    finishes starts another mini-batch at the same version; then all restart from the new
    parameters (k may exceed n)."""

    n: int
    k: int
    name: ClassVar[str] = "kbatchsync"

    def __post_init__(self) -> None:
        check_int("n", self.n, 1)
        check_int("k", self.k, 1)

    @property
    def rule(self) -> Rule:
        return Rule(machines=self.n, quorum=self.k, barrier=True, repeat=True)


@dataclass(frozen=True)
class Async(Scheme):
    """Asynchronous parameter-server SGD: every gradient is applied on arrival, stale or not; the
    worker then fetches the new parameters and starts again."""

    n: int
    name: ClassVar[str] = "async"

    def __post_init__(self) -> None:
        check_int("n", self.n, 1)

    @property
    def rule(self) -> Rule:
        return Rule(machines=self.n, quorum=1, barrier=False)


@dataclass(frozen=True)
class KAsync(Scheme):
    """K-async SGD (Dutta et al., AISTATS 2018, Sec. 2.3): the server waits for the first k
    learners to push a gradient, averages them and sends the new parameters to those k; they are
    idle until then. The other n - k keep computing on their older versions, and their gradients
    count, stale, towards the next update. k = n is Sync(n); k = 1 is Async(n)."""

    n: int
    k: int
    name: ClassVar[str] = "kasync"

    def __post_init__(self) -> None:
        check_int("n", self.n, 1)
        check_int("k", self.k, 1, self.n)

    @property
    def rule(self) -> Rule:
        return Rule(machines=self.n, quorum=self.k, barrier=False)


@dataclass(frozen=True)
class KBatchAsync(Scheme):
    """K-batch-async SGD (Dutta et al., AISTATS 2018, Sec. 2.3; the n-softsync of Zhang, Gupta,
    Lian, Liu, IJCAI 2016): the server applies the average of the next k gradients to arrive,
    whatever their versions; a worker fetches the newest parameters right after each push, never
    waits, and may contribute several of the k. k = 1 is Async(n)."""

    n: int
    k: int
    name: ClassVar[str] = "kbatchasync"

    def __post_init__(self) -> None:
        check_int("n", self.n, 1)
        check_int("k", self.k, 1, self.n)

    @property
    def rule(self) -> Rule:
        return Rule(machines=self.n, quorum=self.k, barrier=False, repeat=self.k > 1)


@dataclass(frozen=True)
class Delayed(Scheme):
    """Delayed synchronous SGD: the gradients of step t are computed at version t - delay, so a
    worker starts step t once its own step t - 1 is done and update t - delay - 1 is applied; the
    exchange of step t overlaps the computation of the next ``delay`` steps, and workers do not
    wait for each other between updates (timeline: :mod:`toolkit.cluster.clock`)."""

    n: int
    delay: int = 1
    name: ClassVar[str] = "delayed"

    def __post_init__(self) -> None:
        check_int("n", self.n, 1)
        check_int("delay", self.delay, 0)

    @property
    def rule(self) -> Rule:
        return Rule(machines=self.n, quorum=self.n, barrier=True, delay=self.delay)


@dataclass(frozen=True)
class EASGD(Scheme):
    """Elastic Averaging SGD (Zhang, Choromanska, LeCun, NIPS 2015, arXiv 1412.6651).

    The paper's symbols: p = n workers, local learning rate eta, elastic coefficient rho,
    ``alpha = eta * rho`` (the moving rate of a local variable towards the centre) and
    ``beta = p * alpha`` (the moving rate of the centre). Every ``tau`` local steps worker i meets
    the centre (:func:`toolkit.schemes.updates.elastic`): synchronously all at once (Sec. 3,
    Eqs. (5)-(6)), or each worker on its own clock (Algorithm 1). ``momentum`` > 0 is EAMSGD
    (Algorithm 2: Nesterov momentum delta on the local steps)."""

    n: int
    tau: int
    alpha: float
    momentum: float = 0.0
    synchronous: bool = True
    name: ClassVar[str] = "easgd"

    def __post_init__(self) -> None:
        check_int("n", self.n, 1)
        check_int("tau", self.tau, 1)
        check_interval("alpha", self.alpha, 0.0, 1.0, "()")
        check_interval("momentum", self.momentum, 0.0, 1.0, "[)")

    @property
    def beta(self) -> float:
        """Moving rate of the centre variable, beta = p * alpha (the paper's notation)."""
        return self.n * self.alpha

    @property
    def rule(self) -> Rule:
        return Rule(
            machines=self.n,
            quorum=self.n if self.synchronous else 1,
            barrier=self.synchronous,
            period=self.tau,
        )

    def updates(self, lr, *, momentum=0.0, nesterov=False, staleness=None) -> Replicated:
        local = local_nesterov(lr, self.momentum) if self.momentum else local_sgd(lr)
        return _replica_updates(local, elastic(self.alpha), momentum, staleness, "EASGD", nesterov)


@dataclass(frozen=True)
class LocalSGD(Scheme):
    """Local SGD / periodic model averaging: n replicas take tau local steps, then average."""

    n: int
    tau: int
    name: ClassVar[str] = "localsgd"

    def __post_init__(self) -> None:
        check_int("n", self.n, 1)
        check_int("tau", self.tau, 1)

    @property
    def rule(self) -> Rule:
        return Rule(machines=self.n, quorum=self.n, barrier=True, period=self.tau)

    def updates(self, lr, *, momentum=0.0, nesterov=False, staleness=None) -> Replicated:
        return _replica_updates(local_sgd(lr), average(), momentum, staleness, "LocalSGD", nesterov)


@dataclass(frozen=True)
class DiLoCo(Scheme):
    """DiLoCo (Douillard et al. 2023, arXiv 2311.08105, Algorithm 1): n replicas take h inner
    steps; the mean of (centre - replica) is an outer gradient applied by an outer SGD with
    Nesterov momentum (outer_lr, outer_momentum). h = 1, outer_lr = 1, outer_momentum = 0 averages
    like Sync(n). The inner optimizer is plain SGD here (the paper uses AdamW)."""

    n: int
    h: int
    outer_lr: float = 0.7
    outer_momentum: float = 0.9
    name: ClassVar[str] = "diloco"

    def __post_init__(self) -> None:
        check_int("n", self.n, 1)
        check_int("h", self.h, 1)
        check_positive("outer_lr", self.outer_lr)
        check_interval("outer_momentum", self.outer_momentum, 0.0, 1.0, "[)")

    @property
    def rule(self) -> Rule:
        return Rule(machines=self.n, quorum=self.n, barrier=True, period=self.h)

    def updates(self, lr, *, momentum=0.0, nesterov=False, staleness=None) -> Replicated:
        opt = sgd(self.outer_lr, self.outer_momentum, nesterov=True)
        return _replica_updates(local_sgd(lr), outer(opt), momentum, staleness, "DiLoCo", nesterov)


SCHEMES: dict[str, type[Scheme]] = {
    cls.name: cls
    for cls in (
        Sync,
        Backup,
        KBatchSync,
        Async,
        KAsync,
        KBatchAsync,
        Delayed,
        EASGD,
        LocalSGD,
        DiLoCo,
    )
}


def make_scheme(name: str, **fields: object) -> Scheme:
    """Build a scheme from its name (``"backup"``) and fields; unknown names list the valid ones.

    Fields the scheme does not take are ignored when they are None, so a CLI can pass all flags.
    """
    try:
        cls = SCHEMES[name.lower()]
    except KeyError:
        raise ConfigError(
            "name", f"unknown scheme {name!r}; valid: {', '.join(sorted(SCHEMES))}"
        ) from None
    names = {f.name for f in dataclasses.fields(cls)}
    extra = {k for k, v in fields.items() if k not in names and v is not None}
    if extra:
        raise ConfigError(
            sorted(extra)[0], f"scheme {name!r} takes {sorted(names)}, not {sorted(extra)}"
        )
    kwargs = {k: v for k, v in fields.items() if k in names and v is not None}
    missing = {
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.name not in kwargs
    }
    if missing:
        raise ConfigError(sorted(missing)[0], f"scheme {name!r} needs {sorted(missing)}")
    return cls(**kwargs)
