"""What a notebook in notebooks/ leaves behind, in one folder per notebook: its tables (CSV), its
figures (SVG for the paper, PNG for a quick look) and the numbers its conclusion quotes
(``numbers.json``, read by the paper's text through ``paper/build.py``), plus the conclusion
itself (``conclusion.md``). ``tests/test_notebooks.py`` reads the tables to check each claim.

::

    out = Output("01_backup_workers")  # $NOTEBOOK_OUT/01_backup_workers (default runs/notebooks)
    out.table("step_times", frame)
    out.figure("step_times", fig)
    out.number(optimal_b=4)
    out.conclusion(f"... b = {out['optimal_b']} ...")

:func:`paper_sweep` reads the paper study (``sweeps/paper.toml`` under its comparison protocol,
exported to ``data/paper``) into a :class:`Study`: the protocol's searches and settings, and each
setting's runs on the evaluation seeds with their score.

A notebook that gathers other notebooks' results (notebook 09's table of published against
reproduced numbers) reads their outputs with :func:`read_table` and :func:`read_numbers`;
``paper/build.py`` runs it after them.

``profile()`` is ``$TOOLKIT_PROFILE``: ``quick`` (the default; CI and ``make paper``) or ``full``
(more samples and seeds for the same questions).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from toolkit.checks import ConfigError, check_choice

__all__ = [
    "PROFILES",
    "SCHEME_NAMES",
    "Output",
    "Study",
    "paper_sweep",
    "profile",
    "read_numbers",
    "read_table",
    "repo_root",
    "scheme_name",
    "setting_result",
    "status_words",
]

PROFILES = ("quick", "full")


def repo_root() -> Path:
    """The repository's root (the folder holding ``data/`` and ``notebooks/``)."""
    return Path(__file__).resolve().parents[1]


def profile() -> str:
    """``$TOOLKIT_PROFILE`` (default ``quick``), checked against :data:`PROFILES`."""
    return check_choice("TOOLKIT_PROFILE", os.environ.get("TOOLKIT_PROFILE", "quick"), PROFILES)


def _plain(value):
    """A JSON value for ``value`` (numpy scalars to Python; NaN to None)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


# Display names of the study's schemes (EASGD with its own local Nesterov momentum is EAMSGD,
# Zhang et al. 2015, Sec. 3.1).
SCHEME_NAMES = {
    "sync": "Sync",
    "backup": "Backup",
    "async": "Async",
    "kasync": "KAsync",
    "kbatchasync": "KBatchAsync",
    "delayed": "Delayed",
    "easgd": "EASGD",
    "localsgd": "LocalSGD",
}


def scheme_name(scheme: str, scheme_momentum: float | None = None) -> str:
    """The study's name of a scheme: ``SCHEME_NAMES``, and EAMSGD for EASGD with a momentum."""
    if scheme == "easgd" and (scheme_momentum or 0) > 0:  # NaN: no momentum of its own
        return "EAMSGD"
    return SCHEME_NAMES.get(scheme, scheme)


@dataclass(frozen=True)
class Study:
    """The paper study (``sweeps/paper.toml``) under its comparison protocol
    (:mod:`toolkit.sweeps.protocol`), read from its exported tables.

    ``summary``: every run (:func:`toolkit.sweeps.load`, with ``role``, ``protocols`` and
    ``lr_status``), plus ``machines`` and ``name`` (:func:`scheme_name`). ``searches``: one row
    per lr search and lr: the tuning seeds' mean ``objective`` (the protocol's: -inf where a seed
    diverged), the search's ``best_lr`` and ``lr_status``. ``settings``: per protocol and cell,
    the chosen ``lr`` (and ``momentum``), its ``lr_status`` and the ``rule`` that chose it.
    ``runs``: per setting, its runs on the evaluation seeds (a run that evaluates the settings of
    two protocols appears once per protocol) with ``score``: the final test accuracy, where the
    run stopped (at its plateau or at the budget), and 0 for a run that diverged (a diverged
    model has no accuracy to report; the run is a result, so it stays in the mean and its
    interval, and is counted in ``diverged``)."""

    spec: object
    plan: object
    evaluations: pd.DataFrame
    summary: pd.DataFrame
    searches: pd.DataFrame
    settings: pd.DataFrame
    runs: pd.DataFrame

    @property
    def budget(self) -> float:
        """The maximum simulated seconds of every run."""
        return float(self.spec.base["time_budget"])


def paper_sweep(data: str | Path | None = None, spec: str | Path | None = None) -> Study:
    """The paper study of ``data`` (default ``data/paper``, written by ``toolkit sweep export``
    with the spec it ran, ``data/spec.toml``), checked against ``spec`` (default
    ``sweeps/paper.toml``): ConfigError naming ``data`` when the two specs differ, when the
    protocol's decisions still call for runs the data lacks, or when an evaluation run raised
    (its setting has no result for that seed). A tuning run that raised scores -inf in its
    search, like a diverged one."""
    import tomllib

    from toolkit.sweeps import SweepSpec, load
    from toolkit.sweeps.protocol import outcomes_of, plan_protocol

    data = Path(data) if data is not None else repo_root() / "data" / "paper"
    spec = Path(spec) if spec is not None else repo_root() / "sweeps" / "paper.toml"
    ran = data / "spec.toml"
    if not ran.exists():
        raise ConfigError("data", f"data: {str(data)!r} has no spec.toml (toolkit sweep export)")
    if tomllib.loads(ran.read_text()) != tomllib.loads(spec.read_text()):
        raise ConfigError(
            "data",
            f"data: {str(data)!r} was made with a spec other than {spec.name} "
            "(make paper FULL=1 re-runs it)",
        )
    study = SweepSpec.load(spec)
    evaluations, summary = load(data)
    plan = plan_protocol(study, outcomes_of(summary, study.protocol.score))
    if not plan.done:
        raise ConfigError(
            "data",
            f"data: {str(data)!r} lacks {len(plan.needed)} run(s) that the protocol of "
            f"{spec.name} calls for (make paper FULL=1 runs them)",
        )
    if not (summary["metric"].dropna() == "test_accuracy").all():
        raise ConfigError("data", f"data: {str(data)!r}: the study scores test_accuracy only")
    summary = summary.assign(
        machines=(summary["scheme.n"] + _column(summary, "scheme.b").fillna(0)).astype(int),
        name=[
            scheme_name(s, m)
            for s, m in zip(
                summary["scheme"],
                _column(summary, "scheme.momentum"),
                strict=True,
            )
        ],
    )
    by_id = summary.set_index("run_id")

    def cell_columns(cell) -> dict:
        return {
            "workload": cell.workload,
            "machines": cell.scheme.rule.machines,
            "name": scheme_name(cell.scheme.name, getattr(cell.scheme, "momentum", None)),
            "label": str(cell.scheme),
            "momentum": cell.momentum,
        }

    rows = []
    for s in plan.searches:
        (cell,) = s.cells
        for lr, value in zip(s.lrs, s.objective, strict=True):
            rows.append(
                {
                    **cell_columns(cell),
                    "lr": lr,
                    "objective": value,
                    "best_lr": s.best,
                    "lr_status": s.status,
                    "below": s.below,
                    "above": s.above,
                }
            )
    searches = pd.DataFrame(rows)
    settings = pd.DataFrame(
        [
            {
                "setting": i,
                "protocol": s.protocol,
                **cell_columns(s.cell),
                "lr": s.lr,
                "lr_status": s.status,
                "rule": s.rule,
            }
            for i, s in enumerate(plan.settings)
        ]
    )
    parts = []
    for i, s in enumerate(plan.settings):
        ids = [c.id() for c in s.configs(study.protocol.evaluation_seeds)]
        parts.append(by_id.loc[ids].reset_index().assign(setting=i))
    runs = pd.concat(parts, ignore_index=True)
    failed = runs[runs["state"] != "complete"]
    if len(failed):
        raise ConfigError(
            "data",
            f"data: {str(data)!r}: {failed['run_id'].nunique()} evaluation run(s) did not "
            f"complete (e.g. {failed['run_id'].iloc[0]}: {failed.iloc[0].get('error', '')})",
        )
    setting_columns = ["name", "machines", "label", "momentum", "lr", "workload", "lr_status"]
    runs = runs.drop(columns=[*setting_columns, "protocols"], errors="ignore")
    runs = settings.merge(runs, on="setting")
    runs["diverged"] = runs["status"] == "diverged"
    runs["score"] = runs["final"].where(~runs["diverged"], 0.0)
    return Study(study, plan, evaluations, summary, searches, settings, runs)


# How a protocol search ended, in the words of the notebooks' conclusions
# (toolkit.sweeps.protocol: interior, wall, capped).
STATUS_WORDS = {
    "interior": "interior",
    "wall": "at a divergence wall (the next x3 larger rate diverged on both tuning seeds, so "
    "the optimum lies between the two)",
    "capped": "CAPPED (still at an end of the search after its last extension)",
}


def status_words(counts) -> str:
    """Tuned settings counted by the status of their lr search (``{status: n}``), in words."""
    if len(counts) == 1:
        ((status, n),) = counts.items()
        return f"all {n} {STATUS_WORDS[status]}"
    return ", ".join(f"{n} {STATUS_WORDS[k]}" for k, n in counts.items())


def setting_result(
    row, *, value="mean", low="ci_low", high="ci_high", missing="no finite accuracy"
) -> str:
    """A setting's evaluation mean (column ``value``, in %) with its Student-t interval, or the
    range when fewer than 5 seeds are finite, its diverged seeds, tuned lr and search status:
    a row of :func:`toolkit.sweeps.over_seeds` joined with the setting's ``lr``/``lr_status``."""

    def pct(x):
        return missing if x is None or not np.isfinite(x) else f"{100 * x:.1f} %"

    if str(row["interval"]).startswith("t "):
        spread = f"t 95 % interval {100 * row[low]:.1f} to {100 * row[high]:.1f} %"
    else:
        spread = f"range of {row['n_finite']} finite seeds, no interval"
    div = f", {row['diverged']} of {row['n']} seeds diverged" if row["diverged"] else ""
    return f"{pct(row[value])} ({spread}{div}; lr {row['lr']:g}, {row['lr_status']})"


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    """``frame[name]``, or NaN where the table has no such column (a field no run set)."""
    return frame[name] if name in frame else pd.Series(np.nan, frame.index)


def _output_root() -> Path:
    return Path(os.environ.get("NOTEBOOK_OUT") or repo_root() / "runs" / "notebooks")


def _written(name: str, file: str) -> Path:
    path = _output_root() / name / file
    if not path.exists():
        raise ValueError(
            f"{name}: {path} is missing; run notebook {name} first with the same NOTEBOOK_OUT "
            "(paper/build.py runs it before the notebooks that read it)"
        )
    return path


def read_table(name: str, table: str) -> pd.DataFrame:
    """Table ``table`` that notebook ``name`` wrote (``$NOTEBOOK_OUT/name/table.csv``);
    ValueError naming the notebook when it has not run."""
    return pd.read_csv(_written(name, f"{table}.csv"))


def read_numbers(name: str) -> dict:
    """The numbers notebook ``name`` recorded (its ``numbers.json``); ValueError naming the
    notebook when it has not run."""
    return json.loads(_written(name, "numbers.json").read_text())


class Output:
    """The output folder of notebook ``name``: ``$NOTEBOOK_OUT/name`` (default
    ``runs/notebooks/name`` under the repository root)."""

    def __init__(self, name: str):
        self.name = name
        self.dir = _output_root() / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.numbers: dict = {}

    def table(self, name: str, frame: pd.DataFrame) -> pd.DataFrame:
        """Write ``frame`` to ``name.csv`` and return it (so a cell can end with it)."""
        frame.to_csv(self.dir / f"{name}.csv", index=False)
        return frame

    def figure(self, name: str, fig: Figure) -> Figure:
        """Write ``fig`` to ``name.svg`` (what the paper embeds and a browser shows; its
        rasterized parts, e.g. the stability maps' meshes, at 200 dpi) and return it. One format:
        each ``savefig`` lays out and draws the whole figure again."""
        fig.savefig(self.dir / f"{name}.svg", dpi=200)
        return fig

    def number(self, **values) -> dict:
        """Record numbers the text quotes (``numbers.json``, rewritten at each call)."""
        self.numbers.update({k: _plain(v) for k, v in values.items()})
        (self.dir / "numbers.json").write_text(json.dumps(self.numbers, indent=1, sort_keys=True))
        return {k: self.numbers[k] for k in values}

    def __getitem__(self, key: str):
        return self.numbers[key]

    def conclusion(self, text: str):
        """Write the notebook's answer to ``conclusion.md`` and show it as Markdown."""
        (self.dir / "conclusion.md").write_text(text.strip() + "\n")
        try:
            from IPython.display import Markdown
        except ImportError:  # a plain script
            print(text)
            return None
        return Markdown(text)
