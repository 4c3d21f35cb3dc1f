"""A run's directory: the config that made it, its Schedule, checkpoints and final Results, never
mixed with another config's files.

Files (each written to a temporary name and renamed into place):

``config.toml``       the config, to rerun with ``toolkit run config.toml --out DIR --resume``.
``manifest.json``     written first when the run starts and rewritten last at every step:
                      ``{"run": {"id", "config", "complete", "rows", "schedule"}}`` and, once
                      complete, the Results manifest (``status``, ``message``, ``manifest``).
``schedule.parquet``  the simulated Schedule (+ ``schedule.parquet.json``, its meta).
``checkpoint.pt``     everything needed to continue (``toolkit.replay.train``'s snapshot).
``results.parquet``, ``params.pt``  the Results, written only when the run is complete.

An existing directory is refused unless ``resume`` (it must hold a run of the same config id)
or ``overwrite`` (it must be a run directory, which is deleted first); an empty directory is
used as it is.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from toolkit.checks import ConfigError
from toolkit.cluster.schedule import Schedule
from toolkit.files import atomic_write
from toolkit.replay.results import MANIFEST_FILE, Results
from toolkit.runs.config import RunConfig

__all__ = ["CHECKPOINT_FILE", "SCHEDULE_FILE", "RunDirectory"]

CONFIG_FILE = "config.toml"
SCHEDULE_FILE = "schedule.parquet"
CHECKPOINT_FILE = "checkpoint.pt"


def _read_manifest(path: Path) -> dict | None:
    try:
        return json.loads((path / MANIFEST_FILE).read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError:
        raise ConfigError(
            "out", f"out: {str(path)!r} holds an unreadable {MANIFEST_FILE}"
        ) from None


def _contents(path: Path) -> list[Path]:
    """Entries of ``path`` other than temporary files left by an interrupted write."""
    return [p for p in path.iterdir() if not (p.name.startswith(".") and p.name.endswith(".tmp"))]


class RunDirectory:
    """The directory of one run of ``config`` (module docstring)."""

    def __init__(
        self, path: str | Path, config: RunConfig, *, resume: bool = False, overwrite: bool = False
    ) -> None:
        if resume and overwrite:
            raise ConfigError("overwrite", "resume, overwrite: give one of them, not both")
        self.path, self.config, self.id = Path(path), config, config.id()
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError("out", f"out: {str(self.path)!r} exists and is not a directory")
        found = _read_manifest(self.path) if self.path.is_dir() else None
        used = self.path.is_dir() and bool(_contents(self.path))
        if used and overwrite:
            if found is None or "run" not in found:
                raise ConfigError(
                    "out",
                    f"out: {str(self.path)!r} is not a run directory (no run manifest); "
                    "refusing to delete it",
                )
            shutil.rmtree(self.path)
            found = None
        elif used and resume:
            if found is None or "run" not in found:
                raise ConfigError("out", f"out: {str(self.path)!r} holds no run to resume")
            if found["run"]["id"] != self.id:
                raise ConfigError(
                    "out",
                    f"out: {str(self.path)!r} holds run {found['run']['id']} of another config "
                    f"(this one is {self.id}); choose another directory or --overwrite",
                )
        elif used:
            raise ConfigError(
                "out",
                f"out: {str(self.path)!r} already exists; pass --resume to continue the run in "
                "it or --overwrite to replace it",
            )
        self.path.mkdir(parents=True, exist_ok=True)
        self.run = found["run"] if found else self._new()
        if not found:
            toml = config.to_toml()
            atomic_write(self.path / CONFIG_FILE, lambda tmp: tmp.write_text(toml))
            self._write_manifest()

    def _new(self) -> dict:
        config = self.config.to_dict()
        return {"id": self.id, "config": config, "complete": False, "rows": 0, "schedule": False}

    def _write_manifest(self, extra: dict | None = None) -> None:
        text = json.dumps({"run": self.run, **(extra or {})}, indent=2)
        atomic_write(self.path / MANIFEST_FILE, lambda tmp: tmp.write_text(text))

    @property
    def complete(self) -> bool:
        return bool(self.run.get("complete"))

    # ------------------------------------------------------------------ schedule
    def load_schedule(self) -> Schedule | None:
        """The Schedule written by an earlier attempt, or None."""
        if not self.run.get("schedule"):
            return None
        return Schedule.load(self.path / SCHEDULE_FILE)

    def save_schedule(self, schedule: Schedule) -> None:
        schedule.save(self.path / SCHEDULE_FILE)
        self.run["schedule"] = True
        self._write_manifest()

    # ------------------------------------------------------------------ checkpoints
    def load_checkpoint(self) -> dict | None:
        """The last checkpoint, or None when the run has none yet."""
        path = self.path / CHECKPOINT_FILE
        if not path.exists():
            return None
        return torch.load(path, weights_only=True)

    def save_checkpoint(self, state: dict, rows: int) -> None:
        atomic_write(self.path / CHECKPOINT_FILE, lambda tmp: torch.save(state, tmp))
        self.run["rows"] = int(rows)
        self._write_manifest()

    def finish(self, results: Results) -> None:
        """Write the Results, then the manifest marking the run complete."""
        self.run.update(complete=True, rows=len(results.frame))
        results.save(self.path, extra={"run": self.run})
        (self.path / CHECKPOINT_FILE).unlink(missing_ok=True)
