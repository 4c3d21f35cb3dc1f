"""Results of a replay: a table with one row per update plus a manifest.

``Results.frame`` columns (``COLUMNS``):

``update``         shared-parameter schemes: update index u (row u describes version u+1);
                   replica schemes: centre-update index k (one row per centre update: per
                   synchronous round, or per single exchange for asynchronous EASGD).
``time``           simulated wall-clock time of the update, from the Schedule.
``train_loss``     mean loss of the used mini-batches at the versions they were computed at
                   (replica schemes: of the local steps the participating workers took since
                   their previous exchange).
``staleness``      mean staleness of the gradients the update used (0 for replica schemes).
``bytes``          bytes communicated up to this update when the Schedule's meta carries the
                   model size nbytes (its comm model); else NaN. Shared schemes: 2 nbytes per
                   used gradient of the Schedule (one push, one pull); replica schemes:
                   2 nbytes per exchange row.
``test_loss``      test loss at evaluation points, NaN elsewhere.
``test_accuracy``  test accuracy at evaluation points (classifiers), NaN elsewhere.

``status`` is ``"ok"`` or ``"diverged"`` (the loss became NaN or inf; the table stops there).
``params`` is the final flat parameter vector (CPU tensor) or None.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from toolkit.checks import ConfigError
from toolkit.files import atomic_write

__all__ = ["COLUMNS", "Results"]

COLUMNS: dict[str, str] = {
    "update": "int64",
    "time": "float64",
    "train_loss": "float64",
    "staleness": "float64",
    "bytes": "float64",
    "test_loss": "float64",
    "test_accuracy": "float64",
}

FRAME_FILE = {"parquet": "results.parquet", "csv": "results.csv"}
MANIFEST_FILE = "manifest.json"
PARAMS_FILE = "params.pt"


def _plain(value: object) -> object:
    """JSON-safe plain values (numpy scalars and arrays to Python)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


@dataclass
class Results:
    """A replay's table (``frame``), ``manifest`` (plain values), ``status`` and final params."""

    frame: pd.DataFrame
    manifest: dict = field(default_factory=dict)
    status: str = "ok"
    message: str = ""
    params: torch.Tensor | None = None

    def __post_init__(self) -> None:
        missing = [c for c in COLUMNS if c not in self.frame.columns]
        if missing:
            raise ConfigError("frame", f"frame: Results is missing columns {missing}")
        if all(self.frame[c].dtype == t for c, t in COLUMNS.items()):
            self.frame = self.frame.copy()  # what astype gives, without its per-column work
        else:
            self.frame = self.frame.astype(COLUMNS)
        if self.status not in ("ok", "diverged"):
            raise ConfigError("status", f"status must be 'ok' or 'diverged', got {self.status!r}")

    @property
    def evaluations(self) -> pd.DataFrame:
        """Rows where the test split was evaluated."""
        return self.frame[self.frame["test_loss"].notna().to_numpy()]

    def save(self, path: str | Path, fmt: str = "parquet", extra: dict | None = None) -> Path:
        """Write ``path/results.parquet`` (or ``.csv``), ``path/manifest.json`` and, when
        present, ``path/params.pt``; :meth:`load` reads them back without loss.

        Every file is written to a temporary name and moved into place with ``os.replace``
        (atomic on POSIX), so a run killed mid-checkpoint leaves the previous checkpoint's
        files loadable. The results file of the other format is removed only after the new one
        is in place. (A kill between two of the replaces can leave files of two consecutive
        checkpoints side by side, each one complete.)
        """
        if fmt not in FRAME_FILE:
            raise ConfigError("fmt", f"fmt must be one of {sorted(FRAME_FILE)}, got {fmt!r}")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        target = path / FRAME_FILE[fmt]
        if fmt == "parquet":
            atomic_write(target, lambda tmp: self.frame.to_parquet(tmp, index=False))
        else:
            atomic_write(
                target, lambda tmp: self.frame.to_csv(tmp, index=False, float_format="%.17g")
            )
        for other in FRAME_FILE.values():
            if other != target.name:
                (path / other).unlink(missing_ok=True)
        if self.params is not None:
            params = self.params.detach().cpu()
            atomic_write(path / PARAMS_FILE, lambda tmp: torch.save(params, tmp))
        else:
            (path / PARAMS_FILE).unlink(missing_ok=True)
        meta = {"status": self.status, "message": self.message, "manifest": _plain(self.manifest)}
        meta.update(_plain(extra or {}))
        text = json.dumps(meta, indent=2)
        atomic_write(path / MANIFEST_FILE, lambda tmp: tmp.write_text(text))
        return path

    @classmethod
    def load(cls, path: str | Path, *, params: bool = True) -> Results:
        """The results :meth:`save` wrote in ``path``; ``params=False`` leaves the final
        parameters unread (``params`` None), for tables of many runs."""
        path = Path(path)
        manifest = path / MANIFEST_FILE
        meta = json.loads(manifest.read_text()) if manifest.exists() else {}
        run = meta.get("run", {})
        if run and not run.get("complete"):
            raise ConfigError(
                "path",
                f"path: the run in {str(path)!r} is not complete (its last checkpoint is at row "
                f"{run.get('rows', 0)}); continue it with `toolkit run --resume`",
            )
        if (path / FRAME_FILE["parquet"]).exists():
            frame = pd.read_parquet(path / FRAME_FILE["parquet"])
        elif (path / FRAME_FILE["csv"]).exists():
            frame = pd.read_csv(path / FRAME_FILE["csv"])
        else:
            raise ConfigError("path", f"path: no results.parquet or results.csv in {str(path)!r}")
        if not meta:
            raise ConfigError("path", f"path: no manifest.json in {str(path)!r}")
        final = None
        if params and (path / PARAMS_FILE).exists():
            final = torch.load(path / PARAMS_FILE, weights_only=True)
        return cls(
            frame,
            manifest=meta.get("manifest", {}),
            status=meta.get("status", "ok"),
            message=meta.get("message", ""),
            params=final,
        )
