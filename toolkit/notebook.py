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

``profile()`` is ``$TOOLKIT_PROFILE``: ``quick`` (the default; CI and ``make paper``) or ``full``
(more samples and seeds for the same questions).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from toolkit.checks import ConfigError, check_choice

__all__ = ["PROFILES", "Output", "paper_sweep", "profile", "repo_root"]

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


def paper_sweep(data: str | Path | None = None, spec: str | Path | None = None):
    """(evaluations, summary) of the paper sweep: :func:`toolkit.sweeps.load` of ``data``
    (default ``data/paper``) restricted to the points of ``spec`` (default
    ``sweeps/paper.toml``), with two columns added: ``machines`` (n + b) and ``score``, the final
    value of the main metric with a diverged run scored 0 (its last finite value is not a
    result). A point whose run was refused for its configuration (its ``error_field`` names the
    field, e.g. more workers x batch size than training samples; a TooLargeError, refused for
    this machine's memory, is not) is infeasible: it is left out, and listed with its error in
    ``summary.attrs["infeasible"]``. Raises ConfigError naming ``data`` when any other point of
    the spec has no complete run."""
    from toolkit.sweeps import SweepSpec, load

    data = Path(data) if data is not None else repo_root() / "data" / "paper"
    spec = Path(spec) if spec is not None else repo_root() / "sweeps" / "paper.toml"
    evaluations, summary = load(data)
    ids = {config.id() for config in SweepSpec.load(spec).points()}
    summary = summary[summary["run_id"].isin(ids)]
    error = summary.reindex(columns=["error_type", "error_field"])  # absent: no failures
    refused = summary["state"].eq("failed") & error["error_field"].notna()
    refused &= error["error_type"].ne("TooLargeError")
    infeasible = summary[refused].copy()
    done = set(summary.loc[summary["state"] == "complete", "run_id"]) | set(infeasible["run_id"])
    if not ids <= done:
        raise ConfigError(
            "data",
            f"data: {str(data)!r} lacks {len(ids - done)} of the {len(ids)} runs of {spec.name} "
            "(make paper FULL=1 runs them)",
        )
    summary = summary[summary["state"] == "complete"].reset_index(drop=True)
    evaluations = evaluations[evaluations["run_id"].isin(summary["run_id"])].reset_index(drop=True)
    for t in (evaluations, summary, infeasible):
        t["machines"] = (t["scheme.n"] + t["scheme.b"].fillna(0)).astype(int)
    if not (summary["metric"] == "test_accuracy").all():
        raise ConfigError(
            "data", f"data: {str(data)!r}: score expects test_accuracy as every main metric"
        )
    summary["score"] = summary["final"].where(summary["status"] == "ok", 0.0).fillna(0.0)
    summary.attrs["infeasible"] = infeasible.reset_index(drop=True)
    return evaluations, summary


class Output:
    """The output folder of notebook ``name``: ``$NOTEBOOK_OUT/name`` (default
    ``runs/notebooks/name`` under the repository root)."""

    def __init__(self, name: str):
        root = os.environ.get("NOTEBOOK_OUT") or repo_root() / "runs" / "notebooks"
        self.name = name
        self.dir = Path(root) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.numbers: dict = {}

    def table(self, name: str, frame: pd.DataFrame) -> pd.DataFrame:
        """Write ``frame`` to ``name.csv`` and return it (so a cell can end with it)."""
        frame.to_csv(self.dir / f"{name}.csv", index=False)
        return frame

    def figure(self, name: str, fig: Figure) -> Figure:
        """Write ``fig`` to ``name.svg`` and ``name.png`` and return it."""
        fig.savefig(self.dir / f"{name}.svg")
        fig.savefig(self.dir / f"{name}.png", dpi=110)
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
