"""Communication cost models: latency + bytes / bandwidth, per topology.

Every model answers two questions:

* ``exchange_time(n)``: wall-clock time of one synchronous exchange among n workers (each sends
  its gradient and receives the new parameters), the term a synchronous step adds to compute;
* ``server_time()``: how long one asynchronous push + pull occupies the shared server link
  (0 for peer-to-peer topologies), the service time of the queue that makes a parameter server
  the bottleneck as n grows; ``message_time()`` is one worker's own push + pull time.

Costs follow the alpha-beta (latency-bandwidth) model of Hockney (1994) and, for the ring, the
bandwidth-optimal all-reduce of Patarasuk & Yuan (2009): 2(n-1) latency + 2 (n-1)/n bytes/bw.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from toolkit.checks import ConfigError, check_int, check_positive
from toolkit.models.dists import check_numbers, parse_call

__all__ = [
    "COMM_MODELS",
    "CommModel",
    "Hierarchical",
    "ParameterServer",
    "RingAllReduce",
    "ShardedServer",
    "exchange_cost",
    "parse_comm",
]


@dataclass(frozen=True)
class CommModel:
    """Base: a link of ``latency`` seconds per message and ``bandwidth`` bytes/s, moving a model
    (or gradient) of ``nbytes`` bytes."""

    nbytes: float
    bandwidth: float
    latency: float = 0.0

    def __post_init__(self) -> None:
        check_positive("nbytes", self.nbytes, allow_zero=True)
        check_positive("bandwidth", self.bandwidth)
        check_positive("latency", self.latency, allow_zero=True)
        if not math.isfinite(self.latency + self.transfer):
            raise ConfigError(
                "comm",
                f"comm: a message of {self.nbytes:g} bytes at {self.bandwidth:g} bytes/s takes "
                "an infinite time",
            )

    def to_dict(self) -> dict:
        """Plain values for manifests: ``{"model": class name, **fields}``."""
        return {"model": type(self).__name__, **dataclasses.asdict(self)}

    @property
    def transfer(self) -> float:
        """Time to move one model over one link: nbytes / bandwidth."""
        return self.nbytes / self.bandwidth

    def message_time(self) -> float:
        """One worker's push + pull with no contention: 2 (latency + nbytes / bandwidth)."""
        return 2.0 * (self.latency + self.transfer)

    def server_time(self) -> float:
        """Time one push + pull holds the shared link (0 when there is none)."""
        return 0.0

    def exchange_time(self, n: int) -> float:  # pragma: no cover - overridden
        raise NotImplementedError


def _check_n(n: int) -> None:
    check_int("n", n)


@dataclass(frozen=True)
class ParameterServer(CommModel):
    """One server whose link all workers share: a synchronous exchange moves n gradients in and n
    models out over that one link, 2 latency + 2 n nbytes / bandwidth, so it grows linearly in n."""

    def server_time(self) -> float:
        return 2.0 * self.transfer

    def exchange_time(self, n: int) -> float:
        _check_n(n)
        return 2.0 * self.latency + 2.0 * n * self.transfer


@dataclass(frozen=True)
class ShardedServer(CommModel):
    """``shards`` servers, each holding 1/shards of the parameters on its own link:
    2 latency + 2 n nbytes / (shards bandwidth)."""

    shards: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("shards", self.shards)

    def server_time(self) -> float:
        return 2.0 * self.transfer / self.shards

    def exchange_time(self, n: int) -> float:
        _check_n(n)
        return 2.0 * self.latency + 2.0 * n * self.transfer / self.shards


@dataclass(frozen=True)
class RingAllReduce(CommModel):
    """Bandwidth-optimal ring all-reduce (Patarasuk & Yuan 2009):
    2 (n-1) latency + 2 (n-1)/n nbytes / bandwidth; nearly flat in n. Peer-to-peer, so it has no
    server: asynchronous schemes cannot use it."""

    def message_time(self) -> float:
        raise ConfigError(
            "comm", "comm: ring all-reduce has no server; asynchronous schemes need one"
        )

    def exchange_time(self, n: int) -> float:
        _check_n(n)
        return 2.0 * (n - 1) * self.latency + 2.0 * (n - 1) / n * self.transfer


@dataclass(frozen=True)
class Hierarchical(CommModel):
    """Two levels: groups of ``group`` workers all-reduce over a fast local ring
    (``local_bandwidth``, ``local_latency``), then the ceil(n / group) group leaders exchange with
    one parameter server over the slow link (``bandwidth``, ``latency``)."""

    group: int = 8
    local_bandwidth: float = 1e10
    local_latency: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("group", self.group)
        check_positive("local_bandwidth", self.local_bandwidth)
        check_positive("local_latency", self.local_latency, allow_zero=True)

    def server_time(self) -> float:
        return 2.0 * self.transfer

    def exchange_time(self, n: int) -> float:
        _check_n(n)
        g = min(self.group, n)
        local = RingAllReduce(self.nbytes, self.local_bandwidth, self.local_latency)
        leaders = ParameterServer(self.nbytes, self.bandwidth, self.latency)
        return local.exchange_time(g) + leaders.exchange_time(math.ceil(n / g))


def exchange_cost(comm: CommModel | None, quorum: int, machines: int) -> float:
    """Time one synchronous update spends exchanging: 0 without a comm model, otherwise
    ``(exchange_time(q) + exchange_time(m)) / 2`` with q = min(quorum, machines).

    For a parameter server this is exactly q gradients in and m models out over the shared link,
    ``2 latency + (q + m) nbytes / bandwidth`` (Backup(n, b): n gradients in, a broadcast to n + b);
    for Sync (q = m) it is ``exchange_time(n)``. For peer-to-peer topologies (ring, hierarchical),
    where backups have no natural meaning, it is the mean of the exchange among q and among m
    workers, a stated approximation. K-batch-sync with k > n sends at most n messages (a worker
    that contributes several mini-batches sums them), hence the min."""
    if comm is None:
        return 0.0
    q = min(int(quorum), int(machines))
    return 0.5 * (comm.exchange_time(q) + comm.exchange_time(int(machines)))


COMM_MODELS: dict[str, type[CommModel]] = {
    cls.__name__: cls for cls in (ParameterServer, ShardedServer, RingAllReduce, Hierarchical)
}


def parse_comm(text: str | None) -> CommModel | None:
    """``"ParameterServer(nbytes=4e6, bandwidth=1.25e9, latency=1e-4)"`` -> that comm model (any
    of ``COMM_MODELS``, literal arguments only, parsed with ``ast``, never evaluated); None or
    ``"none"`` -> None (no communication cost)."""
    if text is not None and not isinstance(text, str):
        raise ConfigError("comm", f"comm: expected a model's text or None, got {text!r}")
    if text is None or text.strip().lower() == "none":
        return None
    name, args, kwargs = parse_call(text, "comm")
    if name not in COMM_MODELS:
        raise ConfigError("comm", f"comm: unknown model {name!r}; valid: {', '.join(COMM_MODELS)}")
    check_numbers("comm", text, [*args, *kwargs.values()])
    try:
        return COMM_MODELS[name](*args, **kwargs)
    except TypeError as e:
        raise ConfigError("comm", f"comm: bad arguments for {name}: {e}") from None
    except ConfigError as e:  # a field of the model: bandwidth must be > 0 ...
        if e.field == "comm":
            raise
        raise ConfigError("comm", f"comm: {e}") from None
