"""A sweep's directory and its tables.

::

    DIR/spec.toml               the spec last run in it
    DIR/runs/<config id>/       one run directory per point (toolkit.runs.directory)
    DIR/runs/<config id>/error.txt   the traceback of a run that raised, error.json its
                                     exception's type, field (a ConfigError's, else null) and
                                     message (and failed-config.json, its config, if it raised
                                     before its run directory was made)
    DIR/schedules/<key>.parquet      Schedules shared by points that differ only in training
    DIR/log.jsonl               one line per run started and ended (append-only)

The index is rebuilt from what is on disk (:func:`load`), so a changed spec reuses every run it
still contains and a killed sweep loses nothing that had finished.

:func:`export` writes the two tables of :func:`load` to a small folder (``evaluations.parquet``,
``summary.csv``; no schedules, no parameters), which :func:`load` reads back the same: the form in
which a sweep's results are committed to ``data/``.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from pathlib import Path

import numpy as np
import pandas as pd

from toolkit.checks import ConfigError
from toolkit.files import atomic_write
from toolkit.replay import Results
from toolkit.runs.config import RunConfig
from toolkit.runs.directory import MANIFEST_FILE

__all__ = [
    "EXPORT_FILES",
    "FAILURE_FILES",
    "export",
    "load",
    "log",
    "record_failure",
    "run_dir",
    "run_state",
    "status",
]

FAILURE_FILES = ("error.txt", "error.json", "failed-config.json")
EXPORT_FILES = ("evaluations.parquet", "summary.csv")


def run_dir(out: str | Path, config: RunConfig) -> Path:
    return Path(out) / "runs" / config.id()


def run_state(path: Path) -> str:
    """``"complete"``, ``"failed"`` (its last attempt raised), ``"partial"`` or ``"new"``."""
    try:
        run = json.loads((path / MANIFEST_FILE).read_text()).get("run", {})
    except (FileNotFoundError, json.JSONDecodeError):
        return "failed" if (path / "error.txt").exists() else "new"
    if run.get("complete"):
        return "complete"
    return "failed" if (path / "error.txt").exists() else "partial"


def record_failure(path: Path, config: RunConfig, error: BaseException | str) -> None:
    """Record a run that raised ``error`` (or ended without an exception: ``error`` then says
    why, e.g. its process died): its traceback or that line (``error.txt``), the exception's
    type, field (a ConfigError's ``field``, else null) and message (``error.json``), and its
    config where the run directory has no manifest to hold it."""
    path.mkdir(parents=True, exist_ok=True)
    if not (path / MANIFEST_FILE).exists():
        text = config.to_json()
        atomic_write(path / "failed-config.json", lambda tmp: tmp.write_text(text))
    raised = isinstance(error, BaseException)
    record = {
        "type": type(error).__name__ if raised else None,
        "field": getattr(error, "field", None),
        "message": str(error),
    }
    atomic_write(path / "error.json", lambda tmp: tmp.write_text(json.dumps(record, indent=1)))
    text = "".join(traceback.format_exception(error)) if raised else f"{error}\n"
    atomic_write(path / "error.txt", lambda tmp: tmp.write_text(text))


def log(out: str | Path, event: str, config_id: str, **extra) -> None:
    """Append one line to DIR/log.jsonl (O_APPEND writes of one line do not interleave)."""
    line = json.dumps({"t": time.time(), "event": event, "id": config_id, **extra}) + "\n"
    fd = os.open(Path(out) / "log.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _flat(config: dict) -> dict:
    """Config fields as columns: scheme and workload tables flattened (``scheme``,
    ``scheme.n``, ``workload``, ``workload.n_train``, ...)."""
    row = {k: v for k, v in config.items() if k not in ("scheme", "workload")}
    for table in ("scheme", "workload"):
        fields = dict(config[table])
        row[table] = fields.pop("name")
        row.update({f"{table}.{k}": v for k, v in fields.items()})
    return row


def _runs(out: Path):
    root = out / "runs"
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []


def load(out: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(evaluations, summary) of the sweep in ``out``.

    ``evaluations``: one row per evaluation of every complete run (``update``, ``time``,
    ``test_loss``, ``test_accuracy``, ...) with its config's fields as columns and ``run_id``.
    ``summary``: one row per run directory: ``run_id``, ``state``, ``status``, the config's
    fields, ``updates``, ``final_<metric>``, ``best_<metric>``, ``time_to_target`` (simulated
    time when the workload's main metric first reached its target, NaN if never),
    ``label`` (the scheme's label) and, for a failed run, ``error`` (the last line of its
    traceback), ``error_type`` (the exception's class name, e.g. ``ConfigError``) and
    ``error_field`` (the field a ConfigError names, e.g. ``lr``; empty for other errors).

    ``out`` may also be a folder written by :func:`export`. ConfigError naming ``out`` when it
    is neither."""
    from toolkit.schemes import make_scheme
    from toolkit.workloads import get_workload

    out = Path(out)
    if not (out / "runs").is_dir() and all((out / f).exists() for f in EXPORT_FILES):
        return pd.read_parquet(out / EXPORT_FILES[0]), pd.read_csv(out / EXPORT_FILES[1])
    _check_sweep(out)
    evals, rows = [], []
    for path in _runs(out):
        state = run_state(path)
        try:
            config = json.loads((path / MANIFEST_FILE).read_text())["run"]["config"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            try:
                config = json.loads((path / "failed-config.json").read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                rows.append({"run_id": path.name, "state": state})
                continue
        flat = _flat(config)
        row = {"run_id": path.name, "state": state, **flat}
        if state == "failed":
            row.update(error=_last_line(path / "error.txt"), **_failure(path))
        fields = dict(config["scheme"])
        row["label"] = str(make_scheme(fields.pop("name"), **fields))
        if state == "complete":
            res = Results.load(path)
            if "metric" in res.manifest:
                metric, target = res.manifest["metric"], res.manifest["target"]
            else:  # a run directory written before the manifest carried them
                wl = get_workload(config["workload"]["name"], **_args(config["workload"]))
                metric, target = wl.metric, wl.target
            ev = res.evaluations.assign(run_id=path.name, **flat)
            evals.append(ev)
            values = ev[metric].to_numpy()
            if target is None:
                hit = ev.iloc[:0]
            else:  # Workload.reached: >= for accuracy, <= for a loss
                hit = ev[values >= target if metric == "test_accuracy" else values <= target]
            finite = values[np.isfinite(values)]
            if not len(finite):
                best = float("nan")
            else:
                best = finite.max() if metric == "test_accuracy" else finite.min()
            row.update(
                status=res.status,
                updates=len(res.frame),
                metric=metric,
                target=target,
                final=float(values[-1]) if len(values) else float("nan"),
                best=float(best),
                time_to_target=float(hit["time"].iloc[0]) if len(hit) else float("nan"),
                wall_seconds=res.manifest.get("wall_seconds"),
            )
        rows.append(row)
    evaluations = pd.concat(evals, ignore_index=True) if evals else pd.DataFrame()
    return evaluations, pd.DataFrame(rows)


def export(out: str | Path, dest: str | Path) -> tuple[Path, Path]:
    """Write :func:`load`'s tables of the sweep in ``out`` to ``dest/evaluations.parquet`` and
    ``dest/summary.csv`` (each written atomically); returns their paths. Where ``out/spec.toml``
    is there, only the runs of its points are exported (a directory may also hold runs of an
    earlier version of the spec)."""
    from toolkit.sweeps.spec import SweepSpec

    evaluations, summary = load(out)
    if summary.empty:
        raise ConfigError("out", f"out: the sweep directory {str(out)!r} holds no runs")
    spec = Path(out) / "spec.toml"
    if spec.exists():
        ids = {config.id() for config in SweepSpec.load(spec).points()}
        summary = summary[summary["run_id"].isin(ids)].reset_index(drop=True)
        if not evaluations.empty:
            evaluations = evaluations[evaluations["run_id"].isin(ids)].reset_index(drop=True)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    ev = atomic_write(
        dest / EXPORT_FILES[0], lambda p: evaluations.to_parquet(p, index=False, compression="zstd")
    )
    su = atomic_write(dest / EXPORT_FILES[1], lambda p: summary.to_csv(p, index=False))
    return ev, su


def _check_sweep(out: Path) -> None:
    """ConfigError naming ``out`` unless it is a sweep directory (``spec.toml`` or ``runs/``)."""
    if not out.is_dir():
        raise ConfigError("out", f"out: no sweep directory {str(out)!r}")
    if not (out / "spec.toml").exists() and not (out / "runs").is_dir():
        raise ConfigError(
            "out", f"out: {str(out)!r} is not a sweep directory (no spec.toml, no runs/)"
        )


def _failure(path: Path) -> dict:
    """``error_type`` and ``error_field`` of a failed run, from its ``error.json`` (a failure
    recorded without one gives neither)."""
    try:
        record = json.loads((path / "error.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return {"error_type": record.get("type"), "error_field": record.get("field")}


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return ""
    return lines[-1].strip() if lines else ""


def _args(table: dict) -> dict:
    return {k: v for k, v in table.items() if k != "name"}


def status(out: str | Path) -> pd.Series:
    """How many runs of the sweep in ``out`` are complete, partial, failed, and (when
    ``out/spec.toml`` is there) how many of its points have not started (``new``)."""
    from toolkit.sweeps.spec import SweepSpec

    out = Path(out)
    _check_sweep(out)
    states = {p.name: run_state(p) for p in _runs(out)}
    if (out / "spec.toml").exists():
        for config in SweepSpec.load(out / "spec.toml").points():
            states.setdefault(config.id(), "new")
    counts = pd.Series(list(states.values()), dtype="object").value_counts()
    order = ["complete", "partial", "failed", "new"]
    return counts.reindex(order, fill_value=0).rename("runs").rename_axis("state")
