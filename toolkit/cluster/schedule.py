"""The Schedule: the timeline of a cluster run, one row per gradient (and per exchange).

Produced by the clock (``toolkit.cluster.simulate``) and, from measured times, by the real
backend (``toolkit.distributed``); read by replay, theory checks and notebooks. It holds no
tensors. ``Schedule.frame`` is a pandas DataFrame with these columns (``COLUMNS``):

``kind``          ``"grad"``: a gradient; ``"exchange"``: a replica meets the centre (replica
                  schemes only). A categorical of :data:`KINDS`, whose codes are
                  :class:`RowKind` (the clock's and the real backend's rows carry the code).
``update``        shared-parameter schemes: index u of the update that used the gradient (or would
                  have, for a dropped one); update u turns version u into version u + 1.
                  Replica schemes: for ``grad`` rows the worker's local step index (= version);
                  for ``exchange`` rows the index of the centre update it takes part in (the n
                  exchanges of one synchronous round share it).
``time``          wall-clock time of that update (of the local step's end, of the exchange).
``worker``        worker id, 0 .. machines - 1.
``version``       parameter version the gradient was computed at (shared schemes: number of
                  updates applied before it; replica schemes: the worker's local step count).
                  For an ``exchange`` row: the worker's local step count when it meets the centre.
``staleness``     update - version for used shared-scheme gradients (0 for replica schemes).
``used``          False for a dropped gradient (backup workers' late gradients, K-batch leftovers).
``batch``         the worker's mini-batch sequence number: the j-th gradient a worker computes
                  uses batch j of its own data stream (-1 on exchange rows).
``compute_time``  seconds the worker spent computing this gradient (0 on exchange rows).
``comm_time``     seconds of communication charged to this row.

Rows are sorted by (update, kind, worker, batch) for shared schemes and by time for replica
schemes. ``status`` is ``"ok"``, or ``"stalled"`` when failures stopped the cluster before the
requested number of updates (the message says why).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path

import numpy as np
import pandas as pd

from toolkit.checks import ConfigError
from toolkit.files import atomic_write

__all__ = ["COLUMNS", "KINDS", "RowKind", "Schedule", "make_frame", "sort_shared"]


class RowKind(IntEnum):
    """What a row is: a gradient, or a replica's exchange with the centre. The value is the
    code of the ``kind`` column's categorical; the name, lower-cased, its category."""

    GRAD = 0
    EXCHANGE = 1


KINDS = tuple(kind.name.lower() for kind in RowKind)  # ("grad", "exchange")

COLUMNS: dict[str, object] = {
    "kind": pd.CategoricalDtype(list(KINDS)),
    "update": "int64",
    "time": "float64",
    "worker": "int64",
    "version": "int64",
    "staleness": "int64",
    "used": "bool",
    "batch": "int64",
    "compute_time": "float64",
    "comm_time": "float64",
}


def make_frame(**cols: object) -> pd.DataFrame:
    """A Schedule frame from column arrays (scalars broadcast); ``kind`` as :class:`RowKind`
    codes."""
    n = len(cols["worker"])
    data = {}
    for name, dtype in COLUMNS.items():
        v = cols[name]
        if name == "kind":
            codes = np.broadcast_to(np.asarray(v, dtype=np.int8), (n,))
            data[name] = pd.Categorical.from_codes(codes, dtype=dtype)
            continue
        if np.ndim(v) == 0:
            v = np.full(n, v, dtype=dtype)
        data[name] = np.asarray(v, dtype=dtype)
    return pd.DataFrame(data)


def sort_shared(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of a shared-parameter schedule in (update, worker, batch) order."""
    order = np.lexsort(
        (frame["batch"].to_numpy(), frame["worker"].to_numpy(), frame["update"].to_numpy())
    )
    return frame.iloc[order].reset_index(drop=True)


@dataclass
class Schedule:
    """A table of events (``frame``) plus the scheme and run metadata (``meta``: plain values)."""

    frame: pd.DataFrame
    meta: dict = field(default_factory=dict)
    status: str = "ok"
    message: str = ""

    def __post_init__(self) -> None:
        missing = [c for c in COLUMNS if c not in self.frame.columns]
        if missing:
            raise ConfigError("frame", f"frame: Schedule is missing columns {missing}")
        self.frame = self.frame.astype(COLUMNS)
        if self.status not in ("ok", "stalled"):
            raise ConfigError("status", f"status must be 'ok' or 'stalled', got {self.status!r}")

    # ------------------------------------------------------------------ views
    @property
    def grads(self) -> pd.DataFrame:
        """Gradient rows only."""
        return self.frame[self.frame["kind"] == "grad"]

    @property
    def used(self) -> pd.DataFrame:
        """Gradient rows that an update applied."""
        g = self.grads
        return g[g["used"].to_numpy()]

    @property
    def updates(self) -> int:
        """1 + the largest ``update`` index among used gradients: the number of updates for
        shared-parameter schemes; for replica schemes the largest number of local steps any
        worker took (a max over workers: with asynchronous replicas they differ)."""
        g = self.used
        return int(g["update"].max()) + 1 if len(g) else 0

    @property
    def rows(self) -> int:
        """Rows a replay of this Schedule records: its updates for shared-parameter schemes, its
        centre updates (distinct ``update`` indices of exchange rows) for replica schemes."""
        ex = self.frame["kind"].to_numpy() == "exchange"
        if ex.any():
            return int(self.frame.loc[ex, "update"].nunique())
        return self.updates

    def until(self, time: float) -> Schedule:
        """The prefix of the run up to simulated ``time``: the updates (centre updates for
        replica schemes) applied by then, with the gradients they read; local steps are kept
        (replay computes none after a worker's last exchange)."""
        f = self.frame
        ex = f["kind"].to_numpy() == "exchange"
        t = f["time"].to_numpy()
        if ex.any():
            late = np.unique(f.loc[ex & (t > time), "update"].to_numpy())
            drop = ex & np.isin(f["update"].to_numpy(), late)
        else:
            u = f["update"].to_numpy()
            used = f["used"].to_numpy()
            late = u[used & (t > time)]
            drop = u >= (late.min() if len(late) else np.iinfo(np.int64).max)
        meta = dict(self.meta, time_budget=float(time))
        return Schedule(f[~drop].reset_index(drop=True), meta, self.status, self.message)

    def update_times(self) -> np.ndarray:
        """Wall-clock time of each update u = 0, 1, ... (shared-parameter schemes)."""
        g = self.used
        return g.groupby("update")["time"].max().to_numpy()

    def summary(self) -> dict:
        """Mean step time, staleness mean and quantiles, dropped fraction."""
        g, u = self.grads, self.used
        times = self.update_times()
        steps = np.diff(np.concatenate([[0.0], times])) if len(times) else np.array([np.nan])
        st = u["staleness"].to_numpy() if len(u) else np.array([0])
        return {
            "status": self.status,
            "updates": self.updates,
            "gradients": len(g),
            "mean_step_time": float(np.mean(steps)),
            "total_time": float(times[-1]) if len(times) else 0.0,
            "staleness_mean": float(np.mean(st)),
            "staleness_p50": float(np.quantile(st, 0.5)),
            "staleness_p90": float(np.quantile(st, 0.9)),
            "staleness_p99": float(np.quantile(st, 0.99)),
            "staleness_max": int(np.max(st)),
            "dropped_fraction": float(1.0 - len(u) / len(g)) if len(g) else 0.0,
        }

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> Path:
        """Write Parquet (``.parquet``) or CSV (``.csv``); meta and status travel in a sidecar
        ``<path>.json`` so both formats round-trip without loss."""
        path = Path(path)
        if path.suffix not in (".parquet", ".csv"):
            raise ConfigError("path", f"path: use a .parquet or .csv suffix, got {path.name!r}")
        if path.is_dir():
            raise ConfigError("path", f"path: {str(path)!r} is a directory; give a file name")
        path.parent.mkdir(parents=True, exist_ok=True)
        sidecar = json.dumps({"meta": self.meta, "status": self.status, "message": self.message})
        atomic_write(path.with_suffix(path.suffix + ".json"), lambda tmp: tmp.write_text(sidecar))
        if path.suffix == ".parquet":
            atomic_write(path, lambda tmp: self.frame.to_parquet(tmp, index=False))
        else:
            atomic_write(
                path, lambda tmp: self.frame.to_csv(tmp, index=False, float_format="%.17g")
            )
        return path

    @classmethod
    def load(cls, path: str | Path) -> Schedule:
        path = Path(path)
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
        elif path.suffix == ".csv":
            frame = pd.read_csv(path)
        else:
            raise ConfigError("path", f"path: use a .parquet or .csv suffix, got {path.name!r}")
        side = path.with_suffix(path.suffix + ".json")
        extra = json.loads(side.read_text()) if side.exists() else {}
        return cls(
            frame,
            meta=extra.get("meta", {}),
            status=extra.get("status", "ok"),
            message=extra.get("message", ""),
        )
