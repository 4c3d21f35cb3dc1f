"""The notebooks and the paper.

``paper/build.py`` (what ``make paper`` runs) executes every notebook with nbclient on the quick
profile into a temporary build folder and compiles the PDF, once per test session; a failing cell
fails the build. The tests then check the PDF (pages, and that every figure the manuscript
references was written by this build), that each notebook's jupytext ``.py`` and ``.ipynb`` hold the
same cells, and that each notebook's conclusion states what its tables say: every claim is
recomputed here from the CSV tables the notebook wrote, and the numbers the conclusion quotes are
checked against them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import jupytext
import nbformat
import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
BUILD_TIMEOUT = 1500  # seconds for the whole build; CI's budget is 30 minutes in all


def reads_the_build(test):
    """A test of the build: in the integration set, on the one xdist worker that runs the build
    (``--dist loadgroup``), and allowed the build's time (the first such test waits for it)."""
    test = pytest.mark.integration(test)
    test = pytest.mark.xdist_group("paper_build")(test)
    return pytest.mark.timeout(BUILD_TIMEOUT + 60)(test)


@pytest.fixture(scope="module")
def build(tmp_path_factory, testrun_uid):
    """(build folder, start time) of one ``paper/build.py`` run; the process group is killed if
    it outlives BUILD_TIMEOUT, so no kernel is left behind. One build per test run: a second
    one (the tests split between two xdist workers) fails rather than cost minutes unseen."""
    once = tmp_path_factory.getbasetemp().parent / f"paper-build-{testrun_uid}"
    if once.exists():
        pytest.fail(
            "the paper build already ran on another test worker: --dist loadgroup did not keep "
            "the xdist_group 'paper_build' on one worker (pytest-dev/pytest-xdist#1386)"
        )
    once.touch()
    out = tmp_path_factory.mktemp("paper")
    start = time.time()
    env = {**os.environ, "TOOLKIT_PROFILE": "quick"}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "paper" / "build.py"), "--out", str(out), "--jobs", "2"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        log, _ = proc.communicate(timeout=BUILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        log, _ = proc.communicate(timeout=60)
        pytest.fail(f"paper/build.py ran past {BUILD_TIMEOUT} s:\n{log[-4000:]}")
    finally:
        if proc.poll() is None:  # interrupted (pytest-timeout, Ctrl-C): no kernel outlives it
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert proc.returncode == 0, log[-6000:]
    return out, start


def nb_dir(build, name: str) -> Path:
    return build[0] / "notebooks" / name


def table(build, name: str, file: str) -> pd.DataFrame:
    return pd.read_csv(nb_dir(build, name) / f"{file}.csv")


def conclusion(build, name: str) -> str:
    return " ".join((nb_dir(build, name) / "conclusion.md").read_text().split())


def numbers(build, name: str) -> dict:
    return json.loads((nb_dir(build, name) / "numbers.json").read_text())


def test_there_are_eight_notebooks():
    assert [p.stem[:2] for p in SOURCES] == [f"{i:02d}" for i in range(1, 9)], SOURCES


@pytest.mark.parametrize("path", SOURCES, ids=[p.stem for p in SOURCES])
def test_pairs_hold_the_same_cells(path):
    """``jupytext --sync notebooks/*.py`` keeps the .ipynb in step with its .py."""
    paired = path.with_suffix(".ipynb")
    assert paired.exists(), f"{paired.name} missing: run jupytext --sync {path}"
    a, b = jupytext.read(path), nbformat.read(paired, as_version=4)
    cells = lambda nb: [(c.cell_type, c.source.strip()) for c in nb.cells]  # noqa: E731
    assert cells(a) == cells(b), f"{path.name} and {paired.name} differ: jupytext --sync {path}"


@reads_the_build
def test_every_notebook_ran_and_concluded(build):
    for path in SOURCES:
        folder = nb_dir(build, path.stem)
        assert (folder / "conclusion.md").read_text().startswith("**Answer.**"), path.stem
        assert json.loads((folder / "numbers.json").read_text()), path.stem
        assert (build[0] / "executed" / f"{path.stem}.ipynb").exists()


@reads_the_build
def test_pdf_pages_and_figures(build):
    from pypdf import PdfReader

    out, start = build
    pages = len(PdfReader(out / "paper.pdf").pages)
    assert 10 <= pages <= 30, pages
    text = (ROOT / "paper" / "paper.typ").read_text()
    figures = re.findall(r'#fig\("([^"]+)"', text)
    assert len(figures) >= 15, figures
    for rel in figures:
        path = out / "notebooks" / rel
        assert path.exists(), f"the paper references {rel}, which this build did not write"
        assert path.stat().st_mtime >= start - 1, f"{rel} is older than this build"
    # every numbers.json the text reads is there, merged by notebook
    merged = json.loads((out / "numbers.json").read_text())
    assert set(merged) == {p.stem for p in SOURCES}


# --- each notebook's claims, recomputed from its tables -------------------------------------


@reads_the_build
def test_01_backup_workers(build):
    name = "01_backup_workers"
    steps, best = table(build, name, "step_times"), table(build, name, "optimal_b")
    text, num = conclusion(build, name), numbers(build, name)
    # "matches the simulated clock": within 5 standard errors and 3 % everywhere
    assert (steps["z"].abs() < 5).all() and (steps["rel_err"].abs() < 0.03).all(), steps
    assert "matches the simulated clock" in text
    assert f"{100 * steps['rel_err'].abs().max():.1f} %" in text
    for _, r in best.iterrows():
        assert f"{r['best_b']} ({r['law']})" in text
    chen = table(build, name, "chen_choice").set_index("b")
    b_best = int(chen["hours"].idxmin())
    assert f"picks N = {100 - b_best}, b = {b_best} of 100" in text
    excess = chen.loc[4, "hours"] / chen["hours"].min() - 1
    assert ("The optimum is flat" in text) == (excess < 0.02)
    # the quoted residual of the fit, recomputed from its table (relative for the three means,
    # absolute for the two probabilities)
    fit = table(build, name, "chen_fit")
    res = np.concatenate(
        [
            fit["fitted"][:3] / fit["published"][:3] - 1,
            fit["fitted"][3:] - fit["published"][3:],
        ]
    )
    assert f"largest residual {np.abs(res).max():.3f}" in text
    assert num["chen_fit_err"] == pytest.approx(np.abs(res).max())


def _paper_summary():
    """The paper sweep's runs straight from data/paper (pandas only, not the notebooks' code)."""
    s = pd.read_csv(ROOT / "data" / "paper" / "summary.csv")
    s = s[s["state"] == "complete"]  # the failed runs are refused configurations (notebook 02)
    s["machines"] = (s["scheme.n"] + s["scheme.b"].fillna(0)).astype(int)
    s["score"] = np.where(s["status"] == "ok", s["final"].fillna(0.0), 0.0)
    return s


@reads_the_build
def test_02_sync_vs_async(build):
    name = "02_sync_vs_async"
    verdict, text = table(build, name, "verdict"), conclusion(build, name)
    s = _paper_summary()
    s = s[s["scheme"].isin(["sync", "backup", "async"])]
    mean = s.groupby(["workload", "machines", "scheme", "lr", "batch_size"])["score"].mean()
    tuned = mean.groupby(["workload", "machines", "scheme"]).max().unstack("scheme")
    assert len(tuned) == len(verdict) == 4  # 2 workloads x 2 cluster sizes
    wins = int((tuned[["sync", "backup"]].max(axis=1) >= tuned["async"]).sum())
    assert f"ends ahead of Async in {wins} of 4 cases" in text
    backup = int((tuned["backup"] > tuned["sync"]).sum())
    assert f"Backup(n - 1, 1) beats Sync(n) on the same machines in {backup} of 4" in text
    margin = (tuned[["sync", "backup"]].max(axis=1) - tuned["async"]).abs().max()
    assert f"largest margin is {100 * margin:.1f} accuracy points" in text


@reads_the_build
def test_03_sensitivity(build):
    name = "03_sensitivity"
    protocols, text = table(build, name, "protocols"), conclusion(build, name)
    s = _paper_summary()
    s = s[s["scheme"].isin(["sync", "backup", "async", "kasync", "kbatchasync"])]
    keys = ["workload", "machines"]
    mean = s.groupby([*keys, "scheme", "lr", "batch_size"])["score"].mean()
    tuned = mean.groupby([*keys, "scheme"]).max()
    shared = mean.groupby([*keys, "lr", "batch_size"]).mean()
    setting = shared.groupby(keys).idxmax()  # the one (lr, batch) best on average
    flips = pairs = 0
    for key, g in tuned.groupby(keys):
        w, m = key
        _, _, lr, bs = setting.loc[key]
        fixed = mean.xs((w, m), level=keys).xs((lr, bs), level=["lr", "batch_size"])
        g = g.droplevel(keys)
        fams = sorted(g.index)
        for i, a in enumerate(fams):
            for b in fams[i + 1 :]:
                pairs += 1
                flips += int(np.sign(g[a] - g[b]) != np.sign(fixed[a] - fixed[b]))
    assert pairs == 40  # 5 schemes: 10 pairs, 2 workloads x 2 cluster sizes
    assert f"Of {pairs} pairwise comparisons" in text and f"{flips} change sign" in text
    assert np.allclose(np.sort(protocols["tuned"]), np.sort(tuned.to_numpy()))


@reads_the_build
def test_04_staleness(build):
    name = "04_staleness"
    stale, thr = table(build, name, "staleness"), table(build, name, "thresholds")
    text = conclusion(build, name)
    # mean staleness M - 1 for any law (within 5 standard errors and 2 %)
    assert (((stale["mean"] - stale["theory_mean"]) / stale["se"]).abs() < 5).all(), stale
    assert (stale["rel_err"].abs() < 0.02).all()
    expo = stale[stale["law"] == "exponential"]
    assert (expo["tv_to_geometric"] < 0.05).all()
    assert (stale[stale["law"] != "exponential"]["tv_to_geometric"] > 0.2).all()
    quad = thr[thr["workload"] == "quadratic"]
    inside = (quad["predicted_lr"] >= 0.98 * quad["measured_lo"]) & (
        quad["predicted_lr"] <= 1.02 * quad["measured_hi"]
    )
    assert inside.all() and "inside the measured bracket" in text
    aware = table(build, name, "staleness_aware")
    const = aware.query("lr == 0.5 and policy == 'none'")
    div = int((const["status"] != "ok").sum())
    assert f"({div} of {len(const)} seeds diverged)" in text


@reads_the_build
def test_05_easgd(build):
    from toolkit.theory import admm_round_robin_spectral_radius, easgd_round_robin_spectral_radius

    name = "05_easgd"
    text, bound = conclusion(build, name), table(build, name, "boundary")
    admm = admm_round_robin_spectral_radius(eta=0.001, alpha=0.0025, p=3, h=1.0)
    easgd = easgd_round_robin_spectral_radius(eta=0.001, alpha=0.0025, p=3, h=1.0)
    assert admm > 1 > easgd and f"{admm:.4f} (unstable)" in text and f"{easgd:.4f} (stable)" in text
    assert ((bound["ratio"] - 1).abs() < 0.03).all() and "inside the measured bracket" in text
    runs = table(build, name, "tau_runs").dropna(subset=["tau"])
    best = runs.groupby(["family", "tau"])["final_accuracy"].mean().unstack("tau").idxmax(axis=1)
    for fam, tau in best.items():
        assert f"tau = {int(tau)} for {fam}" in text


@reads_the_build
def test_06_communication(build):
    name = "06_communication"
    text = conclusion(build, name)
    delayed = table(build, name, "delayed")
    assert (delayed["rel_err"].abs() < 0.03).all(), delayed
    d1 = delayed[delayed["delay"] == 1]
    assert f"{d1['speedup_clock'].max():.2f}x," in text
    hides = bool((delayed.query("delay > 0 and r > 0")["speedup_clock"] > 1).all())
    assert ("hides communication" in text) == hides
    tput = table(build, name, "async_throughput")
    assert (tput["simulated"] <= tput["upper_bound"] * 1.02).all()
    assert (tput["simulated"] >= tput["lower_bound"] * 0.98).all()
    assert ((tput["simulated"] / tput["theory"] - 1).abs() < 0.02).all()
    sync = table(build, name, "sync_comm")
    assert ((sync["clock"] / sync["theory"] - 1).abs() < 0.05).all(), sync


@reads_the_build
def test_07_simulator_vs_reality(build):
    name = "07_simulator_vs_reality"
    steps, text = table(build, name, "step_times"), conclusion(build, name)
    # the clock is the theory of the injected law; the ranks' per-gradient times are that law
    assert ((steps["clock_injected"] / steps["theory_injected"] - 1).abs() < 0.03).all()
    assert (
        (steps["mean_compute_measured"] / steps["mean_compute_injected"] - 1).abs() < 0.25
    ).all()
    # the staleness claim, recomputed from the samples: a two-sample KS test at the 1 % level
    from scipy import stats

    samples = table(build, name, "staleness_samples")
    ps = []
    for scheme, g in samples.groupby("scheme"):
        if scheme.startswith(("Sync", "Backup")):
            assert (g["staleness"] == 0).all()
            continue
        measured, clock = (g.loc[g["source"] == k, "staleness"] for k in ("measured", "clock"))
        ps.append(stats.ks_2samp(measured, clock).pvalue)
    consistent = min(ps) > 0.01
    assert consistent == ("is consistent with the clock's distribution" in text)
    a = steps.set_index("scheme").loc["Async(n=4)", "staleness_measured"]
    assert abs(a - 3) < 0.5  # M - 1
    # the conclusion's "additive overhead" is positive: real messages cost time
    assert (steps["overhead_ms"] > 0).all()
    assert f"{steps['ratio_injected'].min():.2f}x to" in text


@reads_the_build
def test_08_error_runtime(build):
    name = "08_error_runtime"
    rt, text = table(build, name, "runtime"), conclusion(build, name)
    assert (rt["rel_err"].abs() < 0.03).all(), rt[rt["rel_err"].abs() >= 0.03]
    exact = rt.dropna(subset=["closed_form"])
    assert len(exact) == 16 and np.allclose(exact["theory"], exact["closed_form"], rtol=1e-9)
    shifted = rt[rt["law"] != "exponential"].set_index(["variant", "K"])["clock"]
    ksync = rt[rt["law"] != "exponential"].set_index(["variant", "K"])["theory"]
    assert (shifted.loc["k-async"].to_numpy() <= 1.02 * ksync.loc["k-sync"].to_numpy()).all()
    err = table(build, name, "error_runtime").groupby(["variant", "K"])["final_error"].mean()
    variant, k = err.idxmin()
    assert f"{variant} with K = {k}" in text
