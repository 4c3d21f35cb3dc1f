"""Straggler models: how long each worker's step takes.

A *compute model* gives every worker its own stream of step times: the j-th gradient worker w
computes takes ``stream_w[j]`` seconds. Any frozen ``scipy.stats`` distribution or
:class:`~toolkit.models.Empirical` is accepted directly (i.i.d. across workers and steps, see
:func:`as_compute`); beyond that:

* :class:`PerWorker`   a list of n distributions (heterogeneous machines);
* :class:`SlowMachines` a fraction of persistently slow machines (times multiplied by a slowdown);
* :class:`Markov`      time-correlated slowdowns: each worker is a two-state Markov chain over its
                       steps (normal -> slow with probability ``p_slow`` per step, slow -> normal
                       with ``p_recover``), so a slow spell lasts 1/p_recover steps on average and
                       the stationary slow fraction is p_slow / (p_slow + p_recover);
* :class:`Trace`       a measured 2-D trace (rows = steps, one column per worker), replayed per
                       worker and cycled when exhausted.

When workers stop altogether is :mod:`toolkit.models.failures`. Randomness: worker w draws
from its own ``numpy`` Generator seeded by the child ``SeedSequence(entropy, spawn_key=(..., w))``,
so a worker's stream does not depend on how many workers exist or in which order the clock asks
for draws (common random numbers across schemes).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from toolkit.checks import ConfigError, check_int, check_interval
from toolkit.models.dists import check_step_dist, dist_repr, is_dist, parse_call, parse_dist
from toolkit.models.empirical import Empirical
from toolkit.models.seeds import child_seed

__all__ = [
    "COMPUTE_MODELS",
    "IID",
    "ComputeModel",
    "Markov",
    "PerWorker",
    "SlowMachines",
    "Trace",
    "as_compute",
    "parse_compute",
]

Sampler = Callable[[int], np.ndarray]


def _iid_sampler(dist: object, ss: np.random.SeedSequence) -> Sampler:
    rng = np.random.default_rng(ss)

    def draw(m: int) -> np.ndarray:
        return np.asarray(dist.rvs(size=m, random_state=rng), dtype=float).reshape(m)

    return draw


class ComputeModel:
    """Base class of compute models: per-worker streams of step times.

    Subclasses implement ``sampler(worker, n, seed) -> draw`` where ``draw(m)`` returns the next m
    step times of that worker (stateful, so successive calls continue the stream), and may
    override ``check(n)`` to validate against the number of workers.
    """

    def check(self, n: int) -> None:
        """Raise ValueError if the model cannot serve n workers."""

    def sampler(self, worker: int, n: int, seed: np.random.SeedSequence) -> Sampler:
        raise NotImplementedError  # pragma: no cover

    def sample(self, n_workers: int, n_steps: int, seed: int | None = 0) -> np.ndarray:
        """Matrix (n_workers, n_steps): row w holds worker w's first n_steps step times."""
        n_steps = check_int("n_steps", n_steps, 0)
        streams = Streams(self, n_workers, child_seed(seed))
        streams.ensure(n_steps)
        return streams.matrix(n_steps)[:, :n_steps].copy()


class IID(ComputeModel):
    """Step times i.i.d. across workers and steps from one distribution."""

    def __init__(self, dist: object) -> None:
        check_step_dist(dist, "dist")
        self.dist = dist

    def __repr__(self) -> str:
        return f"IID({dist_repr(self.dist)})"

    def sampler(self, worker: int, n: int, seed: np.random.SeedSequence) -> Sampler:
        return _iid_sampler(self.dist, seed)


class PerWorker(ComputeModel):
    """Heterogeneous machines: worker w draws i.i.d. from ``dists[w]``."""

    def __init__(self, dists: Sequence[object]) -> None:
        self.dists = list(dists)
        if not self.dists:
            raise ConfigError("dists", "dists: a per-worker model needs at least one distribution")
        for i, d in enumerate(self.dists):
            check_step_dist(d, f"dists[{i}]")

    def __repr__(self) -> str:
        return f"PerWorker([{', '.join(dist_repr(d) for d in self.dists)}])"

    def check(self, n: int) -> None:
        if len(self.dists) != n:
            raise ConfigError(
                "dists",
                f"dists: per-worker model has {len(self.dists)} distributions for {n} workers",
            )

    def sampler(self, worker: int, n: int, seed: np.random.SeedSequence) -> Sampler:
        return _iid_sampler(self.dists[worker], seed)


class SlowMachines(ComputeModel):
    """A fraction of persistently slow machines: i.i.d. times from ``dist``, multiplied by
    ``slowdown`` on the slow ones. The slow machines are ``workers`` if given, else the first
    round(fraction n) worker ids (which ids does not matter for the symmetric schemes)."""

    def __init__(
        self,
        dist: object,
        fraction: float,
        slowdown: float,
        workers: Sequence[int] | None = None,
    ) -> None:
        check_step_dist(dist, "dist")
        self.dist = dist
        self.fraction = check_interval("fraction", fraction, 0.0, 1.0)
        self.slowdown = check_interval("slowdown", slowdown, 1.0, math.inf, "[)")
        self.workers = None if workers is None else sorted(set(int(w) for w in workers))

    def __repr__(self) -> str:
        return (
            f"SlowMachines({dist_repr(self.dist)}, fraction={self.fraction}, "
            f"slowdown={self.slowdown})"
        )

    def slow_workers(self, n: int) -> list[int]:
        """Ids of the slow machines among n workers."""
        if self.workers is not None:
            return [w for w in self.workers if w < n]
        return list(range(math.floor(self.fraction * n + 0.5)))

    def check(self, n: int) -> None:
        if self.workers is not None and any(w < 0 or w >= n for w in self.workers):
            raise ConfigError(
                "workers", f"workers: slow worker ids must lie in 0..{n - 1}, got {self.workers}"
            )

    def sampler(self, worker: int, n: int, seed: np.random.SeedSequence) -> Sampler:
        base = _iid_sampler(self.dist, seed)
        factor = self.slowdown if worker in self.slow_workers(n) else 1.0
        return lambda m: base(m) * factor


class Markov(ComputeModel):
    """Time-correlated slowdowns: a two-state Markov chain per worker over its steps.

    State "slow" multiplies the drawn time by ``slowdown``. After each step a normal worker turns
    slow with probability ``p_slow`` and a slow one recovers with ``p_recover``; sojourns are
    geometric (mean 1/p steps) and the chain starts from its stationary law, slow with probability
    pi = p_slow / (p_slow + p_recover). Mean step time: E[X] (1 + pi (slowdown - 1)).
    """

    def __init__(self, dist: object, slowdown: float, p_slow: float, p_recover: float) -> None:
        check_step_dist(dist, "dist")
        self.dist = dist
        self.slowdown = check_interval("slowdown", slowdown, 1.0, math.inf, "[)")
        self.p_slow = check_interval("p_slow", p_slow, 0.0, 1.0, "(]")
        self.p_recover = check_interval("p_recover", p_recover, 0.0, 1.0, "(]")

    def __repr__(self) -> str:
        return (
            f"Markov({dist_repr(self.dist)}, slowdown={self.slowdown}, p_slow={self.p_slow}, "
            f"p_recover={self.p_recover})"
        )

    @property
    def slow_probability(self) -> float:
        """Stationary probability of the slow state, p_slow / (p_slow + p_recover)."""
        return self.p_slow / (self.p_slow + self.p_recover)

    def states(self, m: int, rng: np.random.Generator, state: list) -> np.ndarray:
        """Next m states (True = slow) continuing ``state = [slow, steps_left]``."""
        out = np.empty(m, dtype=bool)
        pos = 0
        while pos < m:
            if state[1] == 0:
                state[0] = not state[0]
                state[1] = int(rng.geometric(self.p_recover if state[0] else self.p_slow))
            take = min(state[1], m - pos)
            out[pos : pos + take] = state[0]
            state[1] -= take
            pos += take
        return out

    def sampler(self, worker: int, n: int, seed: np.random.SeedSequence) -> Sampler:
        base = _iid_sampler(self.dist, child_seed(seed, 0))
        rng = np.random.default_rng(child_seed(seed, 1))
        slow0 = bool(rng.random() < self.slow_probability)
        # memoryless: the initial sojourn is geometric like any other
        state = [slow0, int(rng.geometric(self.p_recover if slow0 else self.p_slow))]

        def draw(m: int) -> np.ndarray:
            slow = self.states(m, rng, state)
            return base(m) * np.where(slow, self.slowdown, 1.0)

        return draw


class Trace(ComputeModel):
    """A measured trace replayed per worker: ``times[j, w]`` is the j-th step time of worker w
    (rows = steps, one column per worker); a worker that runs past the last row starts over at row
    0. Deterministic: the seed is not used."""

    def __init__(self, times: object, name: str = "trace") -> None:
        x = np.asarray(times, dtype=float)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
            raise ConfigError(
                "times", f"times: a trace is a non-empty 2-D array (steps, workers), got {x.shape}"
            )
        if not np.all(np.isfinite(x)):
            raise ConfigError("times", "times: the trace holds NaN or infinite step times")
        if np.any(x <= 0):
            raise ConfigError("times", f"times: step times must be > 0, found {x.min()}")
        self.times, self.name = x, name

    @classmethod
    def from_csv(cls, path: str | Path) -> Trace:
        """Read a CSV with one numeric column per worker (rows = steps)."""
        frame = pd.read_csv(path).select_dtypes("number")
        return cls(frame.to_numpy(), name=Path(path).stem)

    def __repr__(self) -> str:
        return f"Trace({self.name}, steps={self.times.shape[0]}, workers={self.times.shape[1]})"

    def check(self, n: int) -> None:
        if self.times.shape[1] != n:
            raise ConfigError(
                "times", f"times: trace has {self.times.shape[1]} worker columns for {n} workers"
            )

    def sampler(self, worker: int, n: int, seed: np.random.SeedSequence) -> Sampler:
        column = self.times[:, worker]
        pos = [0]

        def draw(m: int) -> np.ndarray:
            idx = (pos[0] + np.arange(m)) % column.size
            pos[0] += m
            return column[idx]

        return draw


def as_compute(obj: object) -> ComputeModel:
    """A ComputeModel from what the user passed: a model itself; a frozen scipy.stats
    distribution or Empirical (i.i.d.); a list of distributions (per worker); a 2-D trace."""
    if isinstance(obj, ComputeModel):
        return obj
    if is_dist(obj):
        check_step_dist(obj, "compute")
        return IID(obj)
    if isinstance(obj, (list, tuple)):
        return PerWorker(obj)
    if isinstance(obj, np.ndarray) and obj.ndim == 2:
        return Trace(obj)
    raise ConfigError(
        "compute",
        f"compute: expected a scipy.stats frozen distribution, Empirical, a list of them, a 2-D "
        f"trace or a ComputeModel, got {type(obj).__name__}",
    )


class Streams:
    """The step-time streams of n workers, drawn lazily from each worker's own sampler.

    Storage is ragged: ``rows[w]`` is worker w's drawn prefix (``length[w]`` values), grown per
    worker, so one fast worker that needs 100x more draws than the others costs memory for its own
    row only. ``matrix(m)`` gives the dense (n, >= m) block that barrier paths want (built once
    per growth, cached); ``value(w, j)`` reads one step time."""

    def __init__(self, model: ComputeModel, n: int, seed: np.random.SeedSequence) -> None:
        model.check(n)
        self.n = n
        self.samplers = [model.sampler(w, n, child_seed(seed, w)) for w in range(n)]
        self.rows: list[np.ndarray] = [np.empty(0) for _ in range(n)]
        self.length = np.zeros(n, dtype=np.int64)
        self._dense = np.empty((n, 0))

    def ensure_worker(self, w: int, m: int) -> None:
        """Draw until worker w has at least m step times (in chunks, to amortise calls)."""
        have = int(self.length[w])
        if have >= m:
            return
        want = max(m, 2 * have, 64)
        x = self.samplers[w](want - have)
        if not np.all(np.isfinite(x)) or np.any(x <= 0):
            raise ConfigError(
                "compute",
                f"compute: worker {w} drew a step time that is not finite and > 0 "
                f"(min {np.min(x)}); use a distribution with positive support",
            )
        row = np.empty(want)
        row[:have] = self.rows[w][:have]
        row[have:] = x
        self.rows[w] = row
        self.length[w] = want

    def ensure(self, m: int) -> None:
        """Draw until every worker has at least m step times."""
        for w in np.flatnonzero(self.length < m):
            self.ensure_worker(int(w), m)

    def value(self, w: int, j: int) -> float:
        """Worker w's j-th step time (drawn if needed)."""
        if j >= self.length[w]:
            self.ensure_worker(w, j + 1)
        return float(self.rows[w][j])

    def values(self, workers: np.ndarray, steps: np.ndarray) -> list[float]:
        """``[value(w, j) for w, j in zip(workers, steps)]``, drawing only where needed."""
        rows, out = self.rows, []
        for w, j in zip(workers.tolist(), steps.tolist(), strict=True):
            if j >= self.length[w]:
                self.ensure_worker(w, j + 1)
            out.append(rows[w][j])
        return out

    def matrix(self, m: int) -> np.ndarray:
        """Dense (n, c) block with c >= m: ``matrix(m)[w, j]`` is worker w's j-th step time for
        j < m. Cached; rebuilt when more columns are asked for (rows grow by doubling, so this
        happens O(log m) times)."""
        if self._dense.shape[1] < m:
            self.ensure(m)
            cols = int(self.length.min()) if self.n else m
            self._dense = np.stack([r[:cols] for r in self.rows]) if self.n else np.empty((0, m))
        return self._dense


def _dist_arg(name: str, value: object) -> object:
    if not isinstance(value, str):
        raise ConfigError(
            name, f"{name}: expected a distribution written as a string, got {value!r}"
        )
    return parse_dist(value)


def _build(name: str, args: list, kwargs: dict) -> ComputeModel | Empirical:
    if name == "PerWorker":
        (dists,) = args or [kwargs.pop("dists")]
        return PerWorker([_dist_arg(f"dists[{i}]", d) for i, d in enumerate(dists)])
    if name in ("SlowMachines", "Markov", "IID"):
        dist = args.pop(0) if args else kwargs.pop("dist")
        return COMPUTE_MODELS[name](_dist_arg("dist", dist), *args, **kwargs)
    if name == "Trace":
        (path,) = args or [kwargs.pop("path")]
        return Trace.from_csv(path)
    (path,) = args or [kwargs.pop("path")]  # Empirical
    return Empirical.from_csv(path, **kwargs)


COMPUTE_MODELS = {
    "IID": IID,
    "PerWorker": PerWorker,
    "SlowMachines": SlowMachines,
    "Markov": Markov,
    "Trace": Trace,
    "Empirical": Empirical,
}


def parse_compute(text: str) -> object:
    """A step-time model from its text: a scipy.stats call or a ``.csv`` trace
    (:func:`~toolkit.models.dists.parse_dist`, checked by
    :func:`~toolkit.models.dists.check_step_dist`: no negative step times), or one of
    :data:`COMPUTE_MODELS` written as a call whose distributions are strings, e.g.
    ``SlowMachines("lognorm(0.5)", fraction=0.1, slowdown=4)``, ``Markov("expon()", slowdown=4,
    p_slow=0.05, p_recover=0.5)``, ``PerWorker(["expon()", "expon(scale=2)"])``,
    ``Trace("times.csv")``, ``Empirical("times.csv", column="step_time")``. Literal arguments
    only (``ast``); errors are ConfigErrors about ``compute``."""
    text = str(text).strip()
    try:
        if text.lower().endswith(".csv"):
            model = parse_dist(text)
        else:
            name, args, kwargs = parse_call(text, "compute")
            if name not in COMPUTE_MODELS:
                model = parse_dist(text)
            else:
                try:
                    model = _build(name, list(args), dict(kwargs))
                except (TypeError, KeyError) as err:
                    raise ConfigError(
                        "compute", f"compute: bad arguments for {name}: {err}"
                    ) from None
        if is_dist(model):
            check_step_dist(model, "compute")
        return model
    except ConfigError as err:
        if err.field in ("compute", "dist"):  # about the whole text
            raise err.renamed("compute") from None
        raise ConfigError("compute", f"compute: {err}") from None
    except ValueError as err:  # e.g. a trace that pandas cannot read
        raise ConfigError("compute", f"compute: {err}") from None
