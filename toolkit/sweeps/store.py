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
which a sweep's results are committed to ``data/`` (with ``spec.toml``, where the sweep had one).
"""

from __future__ import annotations

import json
import os
import time
import traceback
from pathlib import Path

import numpy as np
import pandas as pd

from toolkit.checks import ConfigError, check_path
from toolkit.files import atomic_write, claim_folder
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


def load(out: str | Path, ids: list[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(evaluations, summary) of the sweep in ``out`` (of the runs ``ids`` only, when given).

    ``evaluations``: one row per evaluation of every complete run (``update``, ``time``,
    ``test_loss``, ``test_accuracy``, ...) with its config's fields as columns and ``run_id``.
    ``summary``: one row per run directory: ``run_id``, ``state``, ``status``, the config's
    fields, ``updates``, ``final_<metric>``, ``best_<metric>``, ``time_to_target`` (simulated
    time when the workload's main metric first reached its target, NaN if never),
    ``label`` (the scheme's label), ``stopped`` (why it ended: ``"budget"``, ``"plateau"``,
    ``"target"`` or ``"diverged"``; empty for runs written before the manifest said) and, for a
    failed run, ``error`` (the last line of its traceback), ``error_type`` (the exception's class
    name, e.g. ``ConfigError``) and ``error_field`` (the field a ConfigError names, e.g. ``lr``;
    empty for other errors).

    For a spec with a ``[protocol]`` table (``out/spec.toml``), the summary also has each run's
    ``role`` (``tuning`` or ``evaluation``), ``protocols`` and ``lr_status`` (``interior``,
    ``wall`` or ``capped``; ``running`` while its search is unfinished;
    :func:`toolkit.sweeps.protocol.annotate`).

    ``out`` may also be a folder written by :func:`export`. ConfigError naming ``out`` when it
    is neither."""
    from toolkit.schemes import make_scheme
    from toolkit.workloads import get_workload

    out = check_path("out", out)
    if not (out / "runs").is_dir() and all((out / f).exists() for f in EXPORT_FILES):
        return _read_export(out)
    _check_sweep(out)
    evals, tags, rows = [], [], []
    if ids is None:
        paths = _runs(out)
    else:
        paths = [out / "runs" / str(i) for i in sorted(set(ids))]
        unknown = [p.name for p in paths if not p.is_dir()]
        if unknown:
            raise ConfigError("ids", f"ids: no run {unknown[0]!r} in {str(out)!r}")
    for path in paths:
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
            res = Results.load(path, params=False)
            if "metric" in res.manifest:
                metric, target = res.manifest["metric"], res.manifest["target"]
            else:  # a run directory written before the manifest carried them
                wl = get_workload(config["workload"]["name"], **_args(config["workload"]))
                metric, target = wl.metric, wl.target
            ev = res.evaluations
            evals.append(ev)
            tags.append(_tag(path.name, flat))
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
                stopped=res.manifest.get("stopped"),
            )
        rows.append(row)
    evaluations = _tagged(evals, tags) if evals else pd.DataFrame()
    summary = pd.DataFrame(rows)
    spec = _spec(out)
    if ids is None and spec is not None and spec.protocol is not None:
        from toolkit.sweeps.protocol import annotate

        summary = annotate(summary, spec)
    return evaluations, summary


def _tag(run_id: str, flat: dict) -> pd.DataFrame:
    """A run's one-row tag for its evaluation rows: its id and config fields, a table-valued
    field (``plateau``, ``engine``) as NaN (a column of the summary only)."""
    values = {k: [np.nan if isinstance(v, dict) else v] for k, v in flat.items()}
    return pd.DataFrame({"run_id": [run_id], **values})


def _tagged(evals: list[pd.DataFrame], tags: list[pd.DataFrame]) -> pd.DataFrame:
    """The runs' evaluation rows, each with its run's one-row ``tags`` (run id and config
    fields) repeated beside it: the table of ``concat(ev.assign(**tag) for each run)``, the same
    columns in the same order and dtypes, in three concatenations instead of a column insertion
    per field and run. A config field named like an evaluation column (``staleness``, the
    policy) takes its place, as ``assign`` would."""
    tag = pd.concat(tags, ignore_index=True)
    body = pd.concat(evals, ignore_index=True)
    body = body.drop(columns=[c for c in tag.columns if c in body.columns])  # the tag wins
    tag = tag.iloc[np.repeat(np.arange(len(tags)), [len(ev) for ev in evals])]
    table = pd.concat([body, tag.reset_index(drop=True)], axis=1)
    order = {}  # the columns in the order a concatenation of the tagged frames has them
    for ev, t in zip(evals, tags, strict=True):
        order.update(dict.fromkeys([*ev.columns, *t.columns]))
    return table[list(order)]


def _spec(out: Path):
    """The spec last run in ``out`` (``out/spec.toml``), or None."""
    from toolkit.sweeps.spec import SweepSpec

    path = out / "spec.toml"
    return SweepSpec.load(path) if path.exists() else None


def _ids(spec, summary: pd.DataFrame) -> set[str]:
    """The run ids a spec uses: its points, or every run its protocol's decisions use so far
    (what has run and what its next steps need)."""
    if spec.protocol is None:
        return {config.id() for config in spec.points()}
    from toolkit.sweeps.protocol import outcomes_of, plan_protocol

    plan = plan_protocol(spec, outcomes_of(summary, spec.protocol.score))
    configs = [*plan.tuning_configs(), *plan.evaluation_configs(), *plan.needed]
    return {c.id() for c in configs}


def export(out: str | Path, dest: str | Path, *, overwrite: bool = False) -> tuple[Path, Path]:
    """Write :func:`load`'s tables of the sweep in ``out`` to ``dest/evaluations.parquet`` and
    ``dest/summary.csv`` (each written atomically); returns their paths. Where ``out/spec.toml``
    is there, only the runs of its points (under a ``[protocol]``: the runs its decisions use)
    are exported (a directory may also hold runs of an earlier version of the spec), and the
    spec is copied beside them, so that a protocol's report can be made from the export.
    ``dest`` is refused when it holds files of those names that an export did not write (the
    sweep directory itself included; :func:`toolkit.files.claim_folder`), unless
    ``overwrite``."""

    evaluations, summary = load(out)
    if summary.empty:
        raise ConfigError("out", f"out: the sweep directory {str(out)!r} holds no runs")
    spec = _spec(Path(out))
    if spec is not None:
        ids = _ids(spec, summary)
        summary = summary[summary["run_id"].isin(ids)].reset_index(drop=True)
        if not evaluations.empty:
            evaluations = evaluations[evaluations["run_id"].isin(ids)].reset_index(drop=True)
    dest = claim_folder(
        dest,
        "sweep export",
        (*EXPORT_FILES, "spec.toml"),
        "dest",
        own=(EXPORT_FILES[0],),
        overwrite=overwrite,
    )
    ev = atomic_write(
        dest / EXPORT_FILES[0], lambda p: evaluations.to_parquet(p, index=False, compression="zstd")
    )
    su = atomic_write(dest / EXPORT_FILES[1], lambda p: summary.to_csv(p, index=False))
    if (Path(out) / "spec.toml").exists():  # a protocol's report recomputes its decisions
        text = (Path(out) / "spec.toml").read_text()
        atomic_write(dest / "spec.toml", lambda p: p.write_text(text))
    return ev, su


def _read_export(out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The two tables of an export; a ConfigError naming ``out`` when one cannot be read."""
    import pyarrow

    try:
        return pd.read_parquet(out / EXPORT_FILES[0]), pd.read_csv(out / EXPORT_FILES[1])
    except (OSError, pyarrow.ArrowException, pd.errors.ParserError, UnicodeDecodeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        why = f"out: the export in {str(out)!r} cannot be read ({first})"
        raise ConfigError("out", why) from None


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
    ``out/spec.toml`` is there) how many of its points have not started (``new``; under a
    ``[protocol]``, the runs its decisions so far call for: later extension steps are not known
    yet)."""
    out = Path(out)
    _check_sweep(out)
    states = {p.name: run_state(p) for p in _runs(out)}
    spec = _spec(out)
    if spec is not None:
        summary = load(out, ids=list(states))[1] if spec.protocol is not None else None
        for run_id in _ids(spec, summary):
            states.setdefault(run_id, "new")
    counts = pd.Series(list(states.values()), dtype="object").value_counts()
    order = ["complete", "partial", "failed", "new"]
    return counts.reindex(order, fill_value=0).rename("runs").rename_axis("state")
