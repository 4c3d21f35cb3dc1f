"""Batched gradient evaluation over flat parameter vectors, per-worker data streams, and the
store of the parameter versions still needed.

A model is viewed as a function of ONE flat parameter vector (``FlatModel``), so a parameter
version is a row of a 2-D tensor and many versions are a stacked ``[k, P]`` tensor. Gradients
at one version are one reverse pass on a concatenated batch; gradients at k distinct versions
are one ``torch.func.vmap`` of ``functional_call`` over the stacked rows, differentiated by one
reverse pass, instead of a Python loop over workers.

Versions live in a :class:`VersionStore`: a pool of ``capacity`` rows holding only the versions
some not-yet-computed gradient (or the update in progress) still reads, freed by the caller
after their last reader; ``capacity`` is the most versions live at once (:func:`max_live` over
their lifetimes), not max staleness + 1 (Async(n) pins about n versions, one per pending
gradient, while its staleness reaches several times n).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from toolkit.checks import ConfigError
from toolkit.workloads.base import evaluate_split

__all__ = [
    "DataStream",
    "FlatModel",
    "VersionStore",
    "batches",
    "max_live",
    "resolve_device",
]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> cuda when available, else cpu; anything else is passed to torch.device."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ConfigError("device", f"device: not a torch device: {device!r}") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        build = "a CPU build" if torch.version.cuda is None else "no visible GPU"
        raise ConfigError(
            "device",
            f"device: {device!r} needs CUDA, but this torch {torch.__version__} has {build}; "
            "install a CUDA build of torch (make demo TORCH=torch) or use --device cpu",
        )
    return dev


def batches(data: dict, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The training inputs and targets at sample indices ``idx`` (any shape)."""
    idx = idx.to(data["x"].device)
    return data["x"][idx], data["y"][idx]


class FlatModel:
    """``model`` as a function of one flat parameter vector (in ``model.parameters()`` order).

    ``loss_at(flat, x, y) = loss(functional_call(model, unflatten(flat) | buffers, (x,)), y)``.
    ``grad`` returns (gradient [P], loss) at one vector; ``grads`` returns ([k, P], [k]) for k
    vectors, each with its own batch, in one vmapped call.

    FlatModel takes over the module's storage: afterwards every parameter is a view of one flat
    tensor and its ``.grad`` a view of one flat gradient buffer (values unchanged), so ``grad``
    is a copy into the flat tensor, one ordinary backward pass and a clone of the flat gradient.
    Do not re-assign the module's parameters afterwards (a ``.grad`` reset to None, e.g. by
    ``model.zero_grad()``, is re-attached by the next ``grad``).
    """

    def __init__(self, model: nn.Module, loss) -> None:
        self.model = model
        named = list(model.named_parameters())
        if not named:
            raise ConfigError("model", "model: has no parameters")
        dtypes = {p.dtype for _, p in named}
        devices = {p.device for _, p in named}
        if len(dtypes) > 1 or len(devices) > 1:
            raise ConfigError(
                "model",
                f"model: parameters must share one dtype and device, got {dtypes} on {devices}",
            )
        self.names = [n for n, _ in named]
        self.shapes = [p.shape for _, p in named]
        self.numels = [p.numel() for _, p in named]
        self.size = sum(self.numels)
        self.buffers = {n: b.detach() for n, b in model.named_buffers()}
        self.loss = loss
        self._params = [p for _, p in named]
        first = self._params[0]
        self._pflat = torch.empty(self.size, dtype=first.dtype, device=first.device)
        self._gflat = torch.zeros_like(self._pflat)
        self._gviews = [
            g.view(s)
            for g, s in zip(torch.split(self._gflat, self.numels), self.shapes, strict=True)
        ]
        with torch.no_grad():
            for p, view in zip(self._params, torch.split(self._pflat, self.numels), strict=True):
                view.copy_(p.reshape(-1))
                p.data = view.view(p.shape)
        self._bind_grads()
        self._vloss = vmap(self.loss_at)

    def _bind_grads(self) -> None:
        """Point every parameter's ``.grad`` at its view of the flat gradient buffer."""
        for p, g in zip(self._params, self._gviews, strict=True):
            p.grad = g

    @property
    def dtype(self) -> torch.dtype:
        return self._pflat.dtype

    def flat(self) -> torch.Tensor:
        """The model's current parameters as one detached vector (a copy)."""
        return self._pflat.detach().clone()

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views of ``flat`` shaped like the model's parameters (no copy)."""
        parts = torch.split(flat, self.numels)
        out = {n: p.view(s) for n, p, s in zip(self.names, parts, self.shapes, strict=True)}
        out.update(self.buffers)
        return out

    def loss_at(self, flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.loss(functional_call(self.model, self.unflatten(flat), (x,)), y)

    def grad(
        self, flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Gradient and loss of the mean loss over batch (x, y) at ``flat``.

        One version needs no functorch: ``flat`` is copied into the module's flat parameter
        tensor, and one ordinary backward pass accumulates into the zeroed flat gradient buffer
        (parameters the loss does not use get 0), as in plain PyTorch.
        """
        if any(p.grad is not g for p, g in zip(self._params, self._gviews, strict=True)):
            self._bind_grads()  # someone reset .grad (e.g. model.zero_grad()): re-attach
        with torch.no_grad():
            self._pflat.copy_(flat)
            self._gflat.zero_()
        with torch.enable_grad():
            loss = self.loss(self.model(x), y)
            loss.backward()
        return self._gflat.clone(), loss.detach()

    def grads(
        self, flats: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Row-wise gradients: flats [k, P], xs [k, B, ...], ys [k, B] -> ([k, P], [k]).

        The k losses come from one ``vmap``-ed forward over the stacked versions; since loss k
        depends on row k only, one reverse pass of their sum gives every row's gradient (the
        same numbers as ``vmap(grad(loss))``, with less per-call overhead).
        """
        with torch.enable_grad():
            leaf = flats.detach().requires_grad_(True)
            losses = self._vloss(leaf, xs, ys)
            (g,) = torch.autograd.grad(losses.sum(), leaf)
        return g, losses.detach()

    def evaluate(
        self,
        flat: torch.Tensor,
        x: torch.Tensor,
        y: torch.Tensor,
        accuracy: bool,
        batch: int = 4096,
    ) -> dict[str, float]:
        """Test loss (and accuracy) on (x, y) at ``flat``: the workloads' one evaluation
        routine, :func:`toolkit.workloads.base.evaluate_split` (accuracy per target)."""
        params = self.unflatten(flat)
        return evaluate_split(
            lambda xb: functional_call(self.model, params, (xb,)), x, y, self.loss, accuracy, batch
        )


class VersionStore:
    """The parameter versions still needed, in a pool of slots: a 2-D tensor [capacity, P].

    Versions are written in order 0, 1, 2, ... (``push``) and each is held in some free slot
    (a version -> slot map) until ``release`` (or until the next version is pushed in its
    place); a released slot is reused by a later version.
    The caller releases a version once nothing will read it again, so ``capacity`` need only be
    the most versions live at once (:func:`max_live`), not the span of versions in between.
    Reading a version that is not held, pushing into a full pool, or releasing the newest
    version (the current parameters) is a bug and raises. ``peak`` is the most slots ever held.
    """

    def __init__(self, first: torch.Tensor, capacity: int) -> None:
        if capacity < 1:
            raise ConfigError("capacity", f"capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.data = torch.empty(
            (self.capacity, first.numel()), dtype=first.dtype, device=first.device
        )
        self.data[0] = first
        self.newest = 0
        self._slot = {0: 0}
        self._free = list(range(self.capacity - 1, 0, -1))  # a stack: slot 1 is used next
        self.peak = 1

    def __len__(self) -> int:
        """Number of versions held."""
        return len(self._slot)

    def __contains__(self, version: int) -> bool:
        return int(version) in self._slot

    def slot(self, version: int) -> int:
        s = self._slot.get(int(version))
        if s is None:
            raise RuntimeError(
                f"version {version} not retained (newest {self.newest}, holding "
                f"{len(self._slot)} of capacity {self.capacity})"
            )
        return s

    def __getitem__(self, version: int) -> torch.Tensor:
        return self.data[self.slot(version)]

    def gather(self, versions: np.ndarray) -> torch.Tensor:
        """Rows for an array of versions, stacked [k, P] (a copy)."""
        idx = [self.slot(v) for v in np.asarray(versions).tolist()]
        return self.data.index_select(0, torch.as_tensor(idx, device=self.data.device))

    def push(self, in_place: bool = False) -> torch.Tensor:
        """Hold version newest + 1 in a free slot and return its (uninitialised) row; with
        ``in_place`` it takes over the slot of the newest version, which is then no longer held
        (its row is returned, still holding the old values: an elementwise update may read it
        while writing it)."""
        if in_place:
            self.newest += 1
            s = self._slot.pop(self.newest - 1)
            self._slot[self.newest] = s
            return self.data[s]
        if not self._free:
            raise RuntimeError(
                f"version store full: all {self.capacity} slots hold versions still needed "
                f"({sorted(self._slot)[:8]}...), cannot add version {self.newest + 1}"
            )
        self.newest += 1
        s = self._free.pop()
        self._slot[self.newest] = s
        self.peak = max(self.peak, len(self._slot))
        return self.data[s]

    def state(self) -> dict:
        """The versions held (ids and rows, on the CPU) and the newest: a checkpoint's entry."""
        ids = sorted(self._slot)
        rows = self.data.index_select(
            0, torch.as_tensor([self._slot[v] for v in ids]).to(self.data.device)
        )
        return {
            "ids": torch.tensor(ids, dtype=torch.int64),
            "rows": rows.cpu(),
            "newest": self.newest,
        }

    def restore(self, state: dict) -> None:
        """Hold exactly the versions of :meth:`state` (in slots 0, 1, ...)."""
        ids = state["ids"].tolist()
        if len(ids) > self.capacity:
            raise ValueError(f"checkpoint: {len(ids)} versions for a store of {self.capacity}")
        self.data[: len(ids)] = state["rows"].to(device=self.data.device, dtype=self.data.dtype)
        self._slot = {int(v): i for i, v in enumerate(ids)}
        self._free = list(range(self.capacity - 1, len(ids) - 1, -1))
        self.newest = int(state["newest"])
        self.peak = max(self.peak, len(ids))

    def release(self, version: int) -> None:
        """Free the slot of ``version`` (no longer read); the newest version cannot be freed."""
        if int(version) == self.newest:
            raise RuntimeError(f"version {version} is the current version and cannot be released")
        self.slot(version)  # raises when not held
        self._free.append(self._slot.pop(int(version)))


def max_live(born: np.ndarray, last: np.ndarray) -> int:
    """Most intervals [born_i, last_i] (integer ticks, inclusive) covering one tick: the
    capacity a :class:`VersionStore` needs when version i is held from tick born_i through
    tick last_i. A +1/-1 sweep: max over t of #{i: born_i <= t} - #{i: last_i < t}."""
    born = np.asarray(born, dtype=np.int64)
    last = np.asarray(last, dtype=np.int64)
    if born.shape != last.shape or born.ndim != 1:
        raise ValueError("born and last must be 1-D arrays of the same length")
    if len(born) == 0:
        return 0
    if (last < born).any():
        raise ValueError("last: every interval needs last >= born")
    lo = int(born.min())
    delta = np.zeros(int(last.max()) - lo + 2, dtype=np.int64)
    np.add.at(delta, born - lo, 1)
    np.add.at(delta, last - lo + 1, -1)
    return int(np.cumsum(delta).max())


def _mix(*words: int) -> int:
    """A 63-bit seed from integers, via numpy's SeedSequence (well mixed, platform-independent)."""
    state = np.random.SeedSequence([int(w) for w in words]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (Steele, Lea, Flood, OOPSLA 2014), elementwise on uint64."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


class DataStream:
    """Deterministic per-worker mini-batches: batch j of worker w is a function of (seed, w, j).

    The training indices 0..n_train-1 are shuffled once (``torch.randperm`` with a generator
    seeded from ``seed``) and cut into ``machines`` equal shards of ``S = n_train // machines``
    samples (the remainder is unused). Worker w reads its shard in epochs of ``E = S //
    batch_size`` batches (a last partial batch is dropped, so every batch has exactly
    ``batch_size`` samples). Epoch e of worker w is the permutation of its shard that sorts the
    counter-based keys ``splitmix64(seed, w, e, i)``, i = 0..S-1, so any (w, e) is drawn directly
    and many at once (vectorised). Batch j is positions ``(j mod E) B .. + B`` of epoch ``j // E``.
    """

    def __init__(self, n_train: int, machines: int, batch_size: int, seed: int) -> None:
        if machines < 1:
            raise ConfigError("machines", f"machines must be >= 1, got {machines}")
        if batch_size < 1:
            raise ConfigError("batch_size", f"batch_size must be >= 1, got {batch_size}")
        if batch_size > n_train:
            raise ConfigError(
                "batch_size",
                f"batch_size: {batch_size} is larger than the training set ({n_train} samples)",
            )
        shard = n_train // machines
        if shard < batch_size:
            raise ConfigError(
                "schedule",
                f"schedule: {machines} workers cannot each get a shard of batch_size={batch_size} "
                f"samples from {n_train} training samples (at most {n_train // batch_size} "
                "workers at this batch size)",
            )
        self.n_train, self.machines, self.batch_size, self.seed = (
            n_train,
            machines,
            batch_size,
            seed,
        )
        self.shard = shard
        self.per_epoch = shard // batch_size
        gen = torch.Generator().manual_seed(_mix(seed, 0x5EED))
        order = torch.randperm(n_train, generator=gen)[: machines * shard]
        self.shards = order.view(machines, shard)
        self._shards_np = self.shards.numpy()
        self._base = np.uint64(_mix(seed, 0xDA7A))
        self._epochs: dict[int, np.ndarray] = {}
        # keep at most ~64 MiB of epoch tables (and at least 4 epochs)
        self._epoch_limit = max(4, (64 << 20) // (8 * machines * shard))

    def epoch(self, e: int) -> np.ndarray:
        """Epoch ``e`` of every worker, an int64 table [machines, shard]: row w is worker w's
        shard sorted by the keys ``splitmix64(seed, w, e, i)`` (one vectorised call; cached)."""
        table = self._epochs.get(e)
        if table is None:
            if len(self._epochs) >= self._epoch_limit:
                self._epochs.clear()
            w = np.arange(self.machines, dtype=np.uint64)[:, None]
            i = np.arange(self.shard, dtype=np.uint64)[None, :]
            keys = _splitmix64(_splitmix64(_splitmix64(self._base + w) + np.uint64(e)) + i)
            order = np.argsort(keys, axis=1, kind="stable")
            table = np.take_along_axis(self._shards_np, order, axis=1)
            self._epochs[e] = table
        return table

    def many(self, workers: np.ndarray, batches: np.ndarray) -> torch.Tensor:
        """Indices of several (worker, batch) pairs, stacked [k, batch_size] (LongTensor):
        fancy indexing into the epoch tables, one gather per distinct epoch."""
        w = np.asarray(workers, dtype=np.int64).ravel()
        j = np.asarray(batches, dtype=np.int64).ravel()
        if len(w) != len(j):
            raise ValueError("workers and batches must have the same length")
        if len(w) and (w.min() < 0 or w.max() >= self.machines):
            raise ValueError(f"worker must lie in [0, {self.machines}), got {w.min()}..{w.max()}")
        if len(j) and j.min() < 0:
            raise ValueError(f"batch must be >= 0, got {j.min()}")
        b = self.batch_size
        epoch, pos = np.divmod(j, self.per_epoch)
        cols = (pos * b)[:, None] + np.arange(b)
        if len(j) == 0:
            return torch.empty((0, b), dtype=torch.long)
        e0, e1 = int(epoch.min()), int(epoch.max())
        if e0 == e1:
            return torch.from_numpy(self.epoch(e0)[w[:, None], cols])
        out = np.empty((len(j), b), dtype=np.int64)
        for e in np.unique(epoch).tolist():
            sel = epoch == e
            out[sel] = self.epoch(e)[w[sel, None], cols[sel]]
        return torch.from_numpy(out)

    def indices(self, worker: int, batch: int) -> torch.Tensor:
        """Training-set indices (LongTensor [batch_size]) of batch ``batch`` of ``worker``."""
        return self.many(np.array([worker]), np.array([batch]))[0]
