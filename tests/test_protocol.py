"""The comparison protocol (toolkit.sweeps.protocol) and its statistics (toolkit.sweeps.stats).

The search runs on synthetic landscapes with known optima (no training): the extension reaches
an interior optimum from a grid wholly below or above it, stops at a divergence wall, stops at
its cap with a warning. Selection reads tuning seeds only (adversarial evaluation values leave it
unchanged); the scaled protocol's rates are N (or sqrt N) times the tuned asynchronous rate.
Intervals, tests and the Kaplan-Meier summary are checked against hand-computed values and a
Monte Carlo coverage. Real runs (the noisy quadratic, a few hundred updates) check the driver:
kill -9 mid-extension, then the same command ends as an uninterrupted run; the report and load().
Bad specs are refused with the key and its line before anything starts.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import warm_cli

from toolkit.cli import main
from toolkit.schemes import Rule, make_scheme
from toolkit.sweeps import SweepSpec, export, load, report, run_sweep, status
from toolkit.sweeps.analysis import over_seeds, pairwise, survival
from toolkit.sweeps.protocol import (
    STATUSES,
    Outcome,
    Protocol,
    asynchronous_reference,
    cells_of,
    plan_protocol,
    resolve,
    scale_of,
    synchronous_family,
)
from toolkit.sweeps.stats import holm, interval, kaplan_meier, welch
from toolkit.sweeps.store import run_state

ROOT = Path(__file__).resolve().parents[1]


def _spec(lrs, schemes=("sync", "async"), names=("tuned",), protocol="", grid="") -> SweepSpec:
    tables = {
        "sync": '{name = "sync", n = 4}',
        "async": '{name = "async", n = 4}',
        "backup": '{name = "backup", n = 3, b = 1}',
        "kbatchsync": '{name = "kbatchsync", n = 4, k = 6}',
        "delayed": '{name = "delayed", n = 4}',
        "kasync": '{name = "kasync", n = 4, k = 2}',
        "easgd": '{name = "easgd", n = 4, tau = 2, alpha = 0.1}',
    }
    return SweepSpec.from_toml(
        f"""name = "synthetic"
[base]
updates = 10
[base.scheme]
name = "sync"
n = 4
[base.workload]
name = "quadratic"
[grid]
lr = {list(lrs)}
scheme = [{", ".join(tables[s] for s in schemes)}]
{grid}[protocol]
names = {json.dumps(list(names))}
{protocol}
"""
    )


def _landscape(optimum, wall=None, diverge_seeds=None):
    """A measure function: score -(ln(lr / optimum[scheme]))^2 + 0.001 seed, i.e. the best lr
    is the one nearest the optimum in log; lr > wall[scheme] diverges (on ``diverge_seeds``,
    default every seed)."""
    wall = wall or {}
    calls = []

    def outcome(c):
        name = c.scheme.name
        if name in wall and c.lr > wall[name]:
            if diverge_seeds is None or c.seed in diverge_seeds:
                return Outcome(float("nan"), diverged=True)
        return Outcome(-(math.log(c.lr / optimum[name]) ** 2) + 0.001 * c.seed)

    def measure(configs):
        calls.append(list(configs))
        return {c.id(): outcome(c) for c in configs}

    measure.calls = calls
    return measure


def _search(plan, scheme):
    return next(s for s in plan.searches if s.kind == "cell" and s.cells[0].scheme.name == scheme)


def _setting(plan, protocol, scheme):
    return next(s for s in plan.settings if s.protocol == protocol and s.cell.scheme.name == scheme)


# ------------------------------------------------------------------ the search
@pytest.mark.parametrize(
    ("grid", "best", "lrs"),
    [
        # below: 0.001 * 3^j; 0.243 is nearest 0.3 in log (0.21 vs 0.89 for 0.729)
        ([0.001, 0.003], 0.243, [0.001, 0.003, 0.009, 0.027, 0.081, 0.243, 0.729]),
        # above: 30 / 3^j; 0.370 (0.21) beats 0.123 (0.89)
        ([30.0, 100.0], 30 / 81, [30 / 243, 30 / 81, 30 / 27, 30 / 9, 30 / 3, 30.0, 100.0]),
    ],
)
def test_the_extension_reaches_an_interior_optimum_from_a_grid_below_or_above_it(grid, best, lrs):
    spec = _spec(grid, schemes=("sync",), protocol="max_extensions = 8")
    plan, steps = resolve(spec, _landscape({"sync": 0.3}))
    s = _search(plan, "sync")
    assert s.status == "interior" and s.best == pytest.approx(best)
    np.testing.assert_allclose(s.lrs, lrs)
    assert steps == 5 + 1 + 1  # the grid, 5 extension steps, then the evaluation seeds
    i = s.lrs.index(s.best)  # both neighbours ran and are worse
    assert 0 < i < len(s.lrs) - 1 and s.objective[i] > max(s.objective[i - 1], s.objective[i + 1])
    assert (s.below, s.above) == ((0, 5) if grid[0] < 1 else (5, 0))


def test_a_one_point_grid_extends_both_ways():
    plan, _ = resolve(_spec([0.3], schemes=("sync",)), _landscape({"sync": 0.3}))
    s = _search(plan, "sync")
    assert s.lrs == (0.1, 0.3, 0.9) and s.best == 0.3 and s.status == "interior"


def test_a_landscape_that_diverges_above_some_lr_ends_at_a_wall():
    # the score rises with lr up to the optimum 10, but every lr above 1 diverges
    spec = _spec([0.01, 0.03], schemes=("sync",))
    plan, _ = resolve(spec, _landscape({"sync": 10.0}, wall={"sync": 1.0}))
    s = _search(plan, "sync")
    assert s.lrs == (0.01, 0.03, 0.09, 0.27, 0.81, 2.43)
    assert s.best == 0.81 and s.status == "wall"
    assert s.objective[-1] == -math.inf
    # divergence on one seed only is no wall: the lr above is worse, the best is interior
    plan, _ = resolve(spec, _landscape({"sync": 10.0}, wall={"sync": 1.0}, diverge_seeds={1}))
    assert _search(plan, "sync").status == "interior"


def test_a_cap_ends_as_capped_with_a_warning():
    spec = _spec([0.01, 0.03], schemes=("sync", "async"), protocol="max_extensions = 2")
    plan, _ = resolve(spec, _landscape({"sync": 10.0, "async": 0.01}))
    sync, asyn = _search(plan, "sync"), _search(plan, "async")
    assert sync.lrs == (0.01, 0.03, 0.09, 0.27) and sync.best == 0.27
    assert sync.status == "capped" and (sync.below, sync.above) == (0, 2)
    assert asyn.status == "interior" and asyn.best == 0.01  # 0.00333 ran below it
    (warning,) = plan.warnings()
    assert warning.startswith("tuned: Sync(n=4) on workload quadratic, 4 machines is capped")
    assert "best lr 0.27 is an end of the search after 2 extension steps" in warning
    # every lr diverges: the search goes down to its cap and nothing is evaluated
    plan, _ = resolve(spec, _landscape({"sync": 1.0, "async": 0.01}, wall={"sync": 0.0}))
    sync = _search(plan, "sync")
    np.testing.assert_allclose(sync.lrs, [0.01 / 9, 0.01 / 3, 0.01, 0.03])
    assert sync.best is None
    assert _setting(plan, "tuned", "sync").lr is None
    assert any("no lr gave a finite score" in w for w in plan.warnings())
    assert all(c.scheme.name == "async" for c in plan.evaluation_configs())


def test_shared_search_optimises_the_mean_over_schemes_and_stops_at_any_schemes_wall():
    spec = _spec([0.01, 0.03], names=("shared",))
    # optima 0.09 and 0.81: at 0.27 each is ln 3 away (mean -1.21) against -2.41 at 0.09
    plan, _ = resolve(spec, _landscape({"sync": 0.81, "async": 0.09}))
    (s,) = plan.searches
    assert s.kind == "shared" and s.best == 0.27 and s.status == "interior"
    assert {x.lr for x in plan.settings} == {0.27} and len(plan.settings) == 2
    # Async diverges on every seed above 0.5: 0.81 is a wall of the shared search
    plan, _ = resolve(spec, _landscape({"sync": 0.81, "async": 0.09}, wall={"async": 0.5}))
    (s,) = plan.searches
    assert s.best == 0.27 and s.status == "wall"


def test_tuned_axes_momentum_and_nesterov_are_chosen_on_tuning_seeds():
    spec = _spec(
        [0.01, 0.03],
        names=("tuned", "scaled", "shared"),
        protocol='tune = ["momentum", "nesterov"]',
        grid="momentum = [0.0, 0.9]\nnesterov = [false, true]\n",
    )
    # nesterov without momentum is plain SGD: three cells per scheme, not four
    assert len(cells_of(spec)) == 2 * 3
    base = _landscape({"sync": 0.3, "async": 0.1})

    def measure(configs):  # Sync gains from Nesterov momentum, Async from none
        out = base(configs)
        for c in configs:
            good = (c.momentum, c.nesterov) == ((0.9, True) if c.scheme.name == "sync" else (0, 0))
            out[c.id()] = Outcome(out[c.id()].value + (1.0 if good else 0.0))
        return out

    plan, _ = resolve(spec, measure)
    sync, asyn = _setting(plan, "tuned", "sync"), _setting(plan, "tuned", "async")
    assert (sync.cell.momentum, sync.cell.nesterov, sync.lr) == (0.9, True, 0.27)
    assert (asyn.cell.momentum, asyn.cell.nesterov, asyn.lr) == (0.0, False, 0.09)
    scaled = _setting(plan, "scaled", "sync")  # the reference's optimizer, 4 x its lr
    assert (scaled.cell.momentum, scaled.cell.nesterov) == (0.0, False)
    assert scaled.lr == pytest.approx(4 * 0.09)
    shared = [s for s in plan.settings if s.protocol == "shared"]
    assert len({(s.cell.momentum, s.cell.nesterov, s.lr) for s in shared}) == 1


# ------------------------------------------------------------------ seeds
def test_default_evaluation_seeds_are_five_disjoint_from_the_tuning_seeds():
    assert Protocol().tuning_seeds == (0, 1)
    assert Protocol().evaluation_seeds == (2, 3, 4, 5, 6)
    assert Protocol(tuning_seeds=(2, 3)).evaluation_seeds == (0, 1, 4, 5, 6)


def test_evaluation_seeds_never_feed_selection():
    spec = _spec([0.01, 0.03], schemes=("sync", "async"), names=("tuned", "shared", "scaled"))
    measure = _landscape({"sync": 0.3, "async": 0.1})
    plan, _ = resolve(spec, measure)
    tuning, evaluation = set(spec.protocol.tuning_seeds), set(spec.protocol.evaluation_seeds)
    assert tuning.isdisjoint(evaluation)
    roles = plan.roles()
    seeds = {c.id(): c.seed for batch in measure.calls for c in batch}
    assert set(roles) == set(seeds)  # every run measured has a role, and only those
    for run_id, role in roles.items():
        assert seeds[run_id] in (tuning if role["role"] == "tuning" else evaluation)
    # every tuning-seed config of every run so far, its real outcome; every evaluation-seed
    # config at every lr visited, an adversarial one: the worst lr of each search the best
    outcomes = {}
    for batch in list(measure.calls):
        outcomes.update(measure(batch))
    for s in plan.searches:
        for cell in s.cells:
            for lr, value in zip(s.lrs, s.objective, strict=True):
                for seed in evaluation:
                    outcomes[cell.replace(lr=lr, seed=seed).id()] = Outcome(-1e6 * value)
    again = plan_protocol(spec, outcomes)
    assert again.settings == plan.settings and again.searches == plan.searches
    assert again.done


# ------------------------------------------------------------------ the scaled protocol
def test_scaled_rates_are_n_or_sqrt_n_times_the_tuned_asynchronous_rate():
    schemes = ("sync", "backup", "kbatchsync", "delayed", "async", "kasync", "easgd")
    spec = _spec([0.01, 0.03], schemes=schemes, names=("tuned", "scaled", "scaled_sqrt"))
    optimum = {name: 0.1 for name in schemes}
    optimum["async"], optimum["kasync"], optimum["easgd"] = 0.03, 0.3, 0.9
    plan, _ = resolve(spec, _landscape(optimum))
    a = _setting(plan, "tuned", "async").lr
    assert a == 0.03
    # N = rule.quorum, the gradients one update averages (Chen et al., App. A.3)
    n = {"sync": 4, "backup": 3, "kbatchsync": 6, "delayed": 4}
    for name, quorum in n.items():
        assert _setting(plan, "scaled", name).lr == pytest.approx(quorum * a)
        assert _setting(plan, "scaled_sqrt", name).lr == pytest.approx(math.sqrt(quorum) * a)
        assert _setting(plan, "scaled", name).rule.startswith(f"{quorum} x the tuned lr of Async")
    for name in ("async", "kasync", "easgd"):  # outside the synchronous family: tuned
        for protocol in ("scaled", "scaled_sqrt"):
            assert _setting(plan, protocol, name).lr == _setting(plan, "tuned", name).lr
    # the synchronous family's searches are not needed by scaled alone
    only = _spec([0.01, 0.03], schemes=("sync", "async"), names=("scaled",))
    plan, _ = resolve(only, _landscape({"sync": 0.1, "async": 0.03}))
    assert [s.cells[0].scheme.name for s in plan.searches] == ["async"]


def test_the_synchronous_family_and_the_reference_come_from_the_rule():
    family = SimpleNamespace(rule=Rule(machines=5, quorum=5, barrier=True))
    assert synchronous_family(family) and scale_of(family, "scaled") == 5.0
    assert scale_of(family, "scaled_sqrt") == pytest.approx(math.sqrt(5))
    assert asynchronous_reference(SimpleNamespace(rule=Rule(machines=5, quorum=1, barrier=False)))
    replicas = SimpleNamespace(rule=Rule(machines=5, quorum=5, barrier=True, period=2))
    assert not synchronous_family(replicas)
    assert asynchronous_reference(make_scheme("kbatchasync", n=4, k=1))  # k = 1 is Async
    assert not asynchronous_reference(make_scheme("kasync", n=4, k=2))


# ------------------------------------------------------------------ statistics
def test_student_t_intervals_cover_at_their_level_and_fewer_than_five_seeds_give_the_range():
    rng = np.random.default_rng(7)
    samples = rng.normal(3.0, 2.0, size=(500, 5))
    hits = 0
    for x in samples:
        low, high, label = interval(x)
        hits += low <= 3.0 <= high
    assert label == "t 95%"
    assert abs(hits / 500 - 0.95) < 4 * math.sqrt(0.95 * 0.05 / 500)
    low, high, label = interval([1.0, 2.0, 4.0, 8.0])
    assert label == "range" and math.isnan(low) and math.isnan(high)
    with pytest.raises(ValueError, match="bootstrap needs >= 10 values"):
        interval(np.arange(9.0), method="bootstrap")
    assert interval(np.arange(10.0), method="bootstrap")[2] == "bootstrap 95%"
    table = over_seeds(pd.DataFrame({"g": [1] * 4, "v": [1.0, 2, 3, 4]}), "v", ["g"])
    assert table["interval"].iloc[0] == "range" and table["ci_low"].isna().all()


def test_welch_and_holm_against_hand_computed_values():
    # a: mean 3, var 2.5; b: mean 6, var 10; se^2 = 0.5 + 2 = 2.5
    t, df, p = welch([1, 2, 3, 4, 5], [2, 4, 6, 8, 10])
    assert t == pytest.approx(-3 / math.sqrt(2.5))
    assert df == pytest.approx(2.5**2 / (0.5**2 / 4 + 2**2 / 4))  # 5.882
    assert 0.05 < p < 0.2
    assert all(math.isnan(v) for v in welch([1.0], [2.0, 3.0]))
    # Holm: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> 0.02, 0.03, 0.06, 0.04 -> running
    # max 0.02, 0.03, 0.06, 0.06; back in the order given
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    # 0.5 x 2 = 1; 0.9 x 1 = 0.9, raised to the running maximum 1 (monotone in p)
    np.testing.assert_allclose(holm([0.5, 0.9]), [1.0, 1.0])
    adjusted = holm([0.02, float("nan"), 0.04])  # NaN: not a test, m = 2
    assert adjusted[0] == pytest.approx(0.04) and math.isnan(adjusted[1])


def test_pairwise_says_separated_only_where_holm_rejects():
    a = [10.0, 10.4, 9.6, 10.2, 9.8]
    b = [10.6, 11.0, 10.2, 10.8, 10.4]  # vs a: Welch p = 0.0171
    c = [10.2, 10.6, 9.8, 10.4, 10.0]  # vs a: 0.347; vs b: 0.0805

    def frame(third):
        return pd.DataFrame(
            {"label": ["A"] * 5 + ["B"] * 5 + ["C"] * 5, "v": a + b + third, "protocol": "tuned"}
        )

    table = pairwise(frame(c), "v", "label", table=["protocol"]).set_index(["a", "b"])
    p = table["p"]
    assert p["A", "B"] == pytest.approx(0.01707, abs=1e-5)
    # Holm: 0.0171 x 3 = 0.0512 > 0.05: A and B are not separated, though p < 0.05 alone
    np.testing.assert_allclose(table["p_holm"], holm(p.to_numpy()))
    assert table.loc[("A", "B"), "p_holm"] == pytest.approx(3 * p["A", "B"])
    assert not table["separated"].any() and table["leader"].eq("").all()
    assert table["test"].iloc[0] == "Welch t, Holm over 3 comparisons, alpha 0.05"
    # with C far from both, A-B is the largest p, multiplied by 1: separated, B leads
    far = pairwise(frame([20.0, 20.5, 19.5, 20.2, 19.8]), "v", "label").set_index(["a", "b"])
    assert far["separated"].all() and far.loc[("A", "B"), "leader"] == "B"
    assert far.loc[("A", "B"), "p_holm"] == pytest.approx(far.loc[("A", "B"), "p"])
    assert far.loc[("A", "C"), "leader"] == "C"
    # lower is better (a loss): the leader is the smaller mean
    low = pairwise(frame([20.0, 20.5, 19.5, 20.2, 19.8]), "v", "label", higher_is_better=False)
    assert low.set_index(["a", "b"]).loc[("A", "B"), "leader"] == "A"


def test_kaplan_meier_against_a_hand_computed_censored_sample():
    # reached at 2, 4, 5, 8; censored at 3 and 6. S(2) = 5/6, S(4) = 5/6 * 3/4 = 0.625,
    # S(5) = 0.625 * 2/3 = 0.417 <= 1/2: the median is 5; S(8) = 0
    km = kaplan_meier([2, 3, 4, 5, 6, 8], [True, False, True, True, False, True])
    assert km["median"] == 5.0 and km["reached"] == 4 and km["fraction"] == pytest.approx(4 / 6)
    assert km["censored_at"] == [3.0, 6.0]
    # S(1) = 3/4, S(2) = 3/4 * 2/3 = 1/2: the median is 2 (the first t with S <= 1/2)
    assert kaplan_meier([1, 2, 3, 4], [True, True, False, False])["median"] == 2.0
    # one of four reached: S stays at 3/4, the median lies beyond the data
    km = kaplan_meier([1, 2, 3, 4], [True, False, False, False])
    assert math.isnan(km["median"]) and km["fraction"] == 0.25
    assert math.isnan(kaplan_meier([5.0, 6.0], [False, False])["median"])


def test_survival_censors_runs_that_never_reach_the_target_at_their_own_end():
    # accuracy per run over time; target 0.5. a: 0.6 at t=2; b: 0.5 at t=4; c never (ends 3);
    # d never (ends 10). KM: S(2) = 3/4, S(4) = 3/4 * 1/2 (c censored at 3) = 3/8: median 4
    ev = pd.DataFrame(
        {
            "run_id": list("aaabbbcccddd"),
            "time": [0, 1, 2, 0, 2, 4, 0, 1, 3, 0, 5, 10.0],
            "test_accuracy": [0.1, 0.3, 0.6, 0.1, 0.4, 0.5, 0.1, 0.2, 0.3, 0.1, 0.2, 0.45],
        }
    )
    runs = pd.DataFrame({"run_id": list("abcde"), "cell": ["x"] * 5})  # e: raised, no rows
    (row,) = survival(ev, runs, 0.5, "test_accuracy", ["cell"]).to_dict("records")
    assert (row["n"], row["reached"], row["censored"], row["missing"]) == (4, 2, 2, 1)
    assert row["median"] == 4.0 and row["fraction"] == 0.5 and row["censored_max"] == 10.0
    # against scipy's Kaplan-Meier on the same censored sample
    assert kaplan_meier([2, 4, 3, 10], [True, True, False, False])["median"] == 4.0


# ------------------------------------------------------------------ bad input
PROTOCOL_SPEC = """\
name = "bad"
[base]
updates = 10
[base.scheme]
name = "sync"
n = 2
[base.workload]
name = "quadratic"

[grid]
lr = [0.1, 0.3]
scheme = [{name = "sync", n = 2}, {name = "async", n = 2}]

[protocol]
names = ["tuned", "scaled"]
tuning_seeds = [0, 1]
max_extensions = 3
factor = 3.0
"""


@pytest.mark.parametrize(
    ("old", "new", "message", "line"),
    [
        ('"tuned", "scaled"', '"tuned", "best"', "protocol.names: unknown protocol 'best'", 15),
        ("max_extensions = 3", "max_extensions = 0", "protocol.max_extensions must be", 17),
        ("factor = 3.0", "factor = -3.0", "protocol.factor must be a number > 1", 18),
        ("max_extensions = 3", "evaluation_seeds = [1, 5]",
         "protocol.evaluation_seeds: 1 also", 17),
        ("factor = 3.0", "factor = 3.0\n[protocol.targets.quadratic]\ntest_accuracy = 0.5",
         "protocol.targets.quadratic.test_accuracy: workload 'quadratic' has no metric", 20),
        ("factor = 3.0", "factr = 3.0", "protocol.factr: unknown key in [protocol]", 18),
        ('{name = "async", n = 2}', '{name = "kasync", n = 2, k = 2}',
         "protocol.names: 'scaled' scales the tuned rate of one asynchronous reference", 15),
        ("lr = [0.1, 0.3]", "lr = [0.1, 0.3]\nseed = [0, 1]", "grid.seed: a [protocol] spec", 12),
        ("lr = [0.1, 0.3]\n", "", "grid.lr: a [protocol] spec searches lr from a grid", 10),
        ('"quadratic"\n', '"quadratic"\n[base.plateau]\nwindow = 0\ndelta = 0.01\n',
         "plateau.window must be an integer >= 1", 10),
        ('"quadratic"\n', '"quadratic"\n[base.plateau]\nwindow = 5\ndelta = -0.01\n',
         "plateau.delta must be >= 0", 11),
    ],
)  # fmt: skip
def test_bad_protocol_input_is_one_line_naming_the_key_and_its_line_and_nothing_starts(
    tmp_path, capsys, old, new, message, line
):
    spec = tmp_path / "bad.toml"
    assert old in PROTOCOL_SPEC
    spec.write_text(PROTOCOL_SPEC.replace(old, new))
    out = tmp_path / "out"
    code = main(["sweep", "run", str(spec), "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err, err
    assert message in err and err.endswith(f"(line {line})"), err
    assert not out.exists()  # nothing started


# ------------------------------------------------------------------ real runs
REAL = """\
name = "real"
[base]
updates = 200
eval_every = 50
[base.scheme]
name = "sync"
n = 2
[base.workload]
name = "quadratic"
[grid]
lr = [0.003, 0.01]
scheme = [{name = "sync", n = 2}, {name = "async", n = 2}]
[protocol]
names = ["tuned", "scaled"]
max_extensions = 3
"""


def _log(out: Path) -> list[dict]:
    path = out / "log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """The REAL spec's protocol run uninterrupted, in this process (2 workers)."""
    root = tmp_path_factory.mktemp("protocol")
    (root / "spec.toml").write_text(REAL)
    summary = run_sweep(root / "spec.toml", root / "out", jobs=2, progress=False)
    return root / "out", summary


@pytest.mark.integration
def test_sigkill_during_an_extension_then_the_same_command_ends_as_an_uninterrupted_run(
    tmp_path, real
):
    reference, _ = real
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text(REAL)
    spec = SweepSpec.from_toml(REAL)
    grid_ids = {
        c.replace(lr=lr, seed=s).id()
        for c in cells_of(spec)
        for lr in (0.003, 0.01)
        for s in spec.protocol.tuning_seeds
    }
    out = tmp_path / "out"
    command = ["sweep", "run", str(spec_path), "--out", str(out), "--jobs", "2", "--no-progress"]
    proc = warm_cli.start(command, new_session=True)
    try:  # kill as soon as a run outside the grid (an extension step) has started
        deadline = time.monotonic() + 180
        while not any(e["event"] == "start" and e["id"] not in grid_ids for e in _log(out)):
            assert proc.poll() is None, proc.output()[1]
            assert time.monotonic() < deadline, "no extension step within 180 s"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its pool, at once
        proc.wait(timeout=30)
    done_before = {p.name for p in (out / "runs").iterdir() if run_state(p) == "complete"}
    assert grid_ids <= done_before  # the grid had finished: the kill came in an extension
    before = len(_log(out))
    done = warm_cli.run(command, timeout=300)
    assert done.returncode == 0, done.stderr
    started = {e["id"] for e in _log(out)[before:] if e["event"] == "start"}
    assert started and started.isdisjoint(done_before)  # nothing finished ran again
    # the same runs, decisions and numbers as the uninterrupted run
    got, want = load(out)[1], load(reference)[1]
    cols = ["run_id", "role", "protocols", "lr_status", "final"]
    pd.testing.assert_frame_equal(
        got[cols].sort_values("run_id").reset_index(drop=True),
        want[cols].sort_values("run_id").reset_index(drop=True),
    )
    assert status(out).to_dict() == {"complete": len(want), "partial": 0, "failed": 0, "new": 0}


@pytest.mark.integration  # runs a sweep: a process per run
def test_report_and_load_carry_the_protocol_and_only_evaluation_seeds_are_reported(
    real, tmp_path, capsys
):
    out, summary = real
    spec = SweepSpec.from_toml(REAL)
    tuning, evaluation = spec.protocol.tuning_seeds, spec.protocol.evaluation_seeds
    assert set(summary["role"]) == {"tuning", "evaluation"}
    assert summary.loc[summary["role"] == "tuning", "seed"].isin(tuning).all()
    assert summary.loc[summary["role"] == "evaluation", "seed"].isin(evaluation).all()
    assert set(summary["lr_status"]) <= set(STATUSES)
    tables = report(out, tmp_path / "report")
    settings = tables["settings"]
    assert set(settings["protocol"]) == {"tuned", "scaled"}
    assert settings["lr_status"].isin(STATUSES).all()
    tuned = settings.set_index(["protocol", "label"])["lr"]
    assert tuned["scaled", "Sync(n=2)"] == pytest.approx(2 * tuned["tuned", "Async(n=2)"])
    # each setting's reported mean is the mean of its evaluation-seed runs, and only theirs
    ev = tables["evaluation"]
    for row in ev.itertuples():
        runs = summary[
            (summary["label"] == row.label)
            & (summary["lr"] == row.lr)
            & summary["seed"].isin(evaluation)
        ]
        assert row.n == len(evaluation) == len(runs) and row.interval == "t 95%"
        assert row.mean == pytest.approx(runs["final"].mean())
    # time to target, with the target stated, and a pairwise table per protocol
    (target,) = tables["targets"].to_dict("records")
    best = ev["mean"].min()  # a loss: the best is the smallest, the target best / 0.95
    assert target["target"] == pytest.approx(best / 0.95) and "/ 0.95" in target["how"]
    ttt = tables["time_to_target"]
    assert (ttt["reached"] + ttt["censored"] == ttt["n"]).all()
    pairs = tables["pairwise"]
    assert sorted(pairs["protocol"]) == ["scaled", "tuned"]
    assert pairs["test"].str.startswith("Welch t, Holm over 1 comparisons").all()
    for name in ("settings", "evaluation", "time_to_target", "pairwise", "searches"):
        assert (tmp_path / "report" / f"{name}.csv").exists()
    assert (tmp_path / "report" / "quadratic_lr_search.png").stat().st_size > 1000
    # the CLI prints the tables; export keeps the columns and the spec, and reports the same
    assert main(["sweep", "report", str(out), "--dest", str(tmp_path / "cli")]) == 0
    printed = capsys.readouterr().out
    assert "settings:" in printed and "pairwise:" in printed and "t 95%" in printed
    export(out, tmp_path / "exported")
    again = load(tmp_path / "exported")[1]
    assert {"role", "protocols", "lr_status"} <= set(again.columns)
    exported = report(tmp_path / "exported", tmp_path / "report2")
    pd.testing.assert_frame_equal(exported["evaluation"], tables["evaluation"], check_dtype=False)
    # figures=False (a notebook that draws its own): the same tables, no figure
    from toolkit.sweeps.report import protocol_report

    evaluations, _ = load(out)
    bare = protocol_report(spec, evaluations, summary, tmp_path / "bare", figures=False)
    for name in ("settings", "evaluation", "time_to_target", "pairwise"):
        pd.testing.assert_frame_equal(bare[name], tables[name])
    written = {p.suffix for p in (tmp_path / "bare").iterdir()}
    assert ".csv" in written and not written & {".png", ".pdf"}


@pytest.mark.integration  # runs a sweep: a process per run
def test_an_unfinished_protocol_reports_what_it_has_and_counts_what_is_missing(real, tmp_path):
    import shutil

    out = tmp_path / "partial"
    shutil.copytree(real[0], out)
    shutil.rmtree(out / "report", ignore_errors=True)
    summary = real[1]
    gone = summary[(summary["role"] == "evaluation") & (summary["label"] == "Sync(n=2)")]
    for run_id in gone["run_id"]:
        shutil.rmtree(out / "runs" / run_id)
    assert status(out)["new"] == len(gone)
    tables = report(out)
    ev = tables["evaluation"].set_index(["protocol", "label"])
    assert ev.loc[("tuned", "Sync(n=2)"), "n"] == 0 and math.isnan(
        ev.loc[("tuned", "Sync(n=2)"), "mean"]
    )
    assert ev.loc[("tuned", "Async(n=2)"), "n"] == 5
    (warning,) = tables["warnings"]["warning"]
    assert warning.startswith(f"the protocol is not finished: {len(gone)} run(s)")


@pytest.mark.integration  # runs a sweep: a process per run
def test_a_capped_cell_warns_in_the_report(tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text(
        REAL.replace("updates = 200", "updates = 30")
        .replace("max_extensions = 3", "max_extensions = 1")
        .replace('names = ["tuned", "scaled"]', 'names = ["tuned"]\nevaluation_seeds = [7]')
    )
    out = tmp_path / "out"
    assert main(["sweep", "run", str(spec), "--out", str(out), "--no-progress"]) == 0
    assert main(["sweep", "report", str(out)]) == 0
    printed = capsys.readouterr().out
    tables = report(out)
    capped = tables["settings"].query("lr_status == 'capped'")
    assert len(capped) >= 1  # 30 updates: the largest lr of a small grid wins
    for label in capped["label"]:
        assert f"warning: tuned: {label} on workload quadratic, 2 machines is capped" in printed
    assert (tables["evaluation"]["interval"] == "range").all()  # one evaluation seed


# ------------------------------------------------------------------ the shipped quick spec
@pytest.mark.integration
@pytest.mark.timeout(600)  # 45 s on an idle 2-core machine, over 120 s at load 3
def test_protocol_quick_spec_end_to_end(tmp_path):
    out = tmp_path / "quick"
    command = ["sweep", "run", "sweeps/protocol-quick.toml"]
    command += ["--out", str(out), "--jobs", "2", "--no-progress"]
    done = warm_cli.run(command, timeout=900)
    assert done.returncode == 0, done.stderr
    rep = warm_cli.run(["sweep", "report", str(out)], timeout=300)
    assert rep.returncode == 0, rep.stderr
    spec = SweepSpec.load(ROOT / "sweeps/protocol-quick.toml")
    names, schemes = set(spec.protocol.names), {"Sync(n=4)", "Backup(n=3, b=1)", "Async(n=4)"}
    dest = out / "report"
    settings = pd.read_csv(dest / "settings.csv")
    # every protocol named chose one setting (lr and momentum) per scheme, with its status
    assert set(settings["protocol"]) == names and len(settings) == len(names) * len(schemes)
    assert settings.groupby("protocol")["label"].apply(set).eq(schemes).all()
    assert settings["lr_status"].isin(STATUSES).all() and settings["lr"].notna().all()
    assert settings["momentum"].isin([0.0, 0.9]).all()
    shared = settings[settings["protocol"] == "shared"]
    assert shared["lr"].nunique() == 1 and shared["momentum"].nunique() == 1
    evaluation = pd.read_csv(dest / "evaluation.csv")
    assert evaluation["n"].eq(5).all() and evaluation["interval"].eq("t 95%").all()
    ttt = pd.read_csv(dest / "time_to_target.csv")
    assert (ttt["reached"] + ttt["censored"]).eq(ttt["n"]).all()
    assert len(pd.read_csv(dest / "pairwise.csv")) == 3 * len(names)
    for warning in pd.read_csv(dest / "warnings.csv")["warning"]:
        assert f"warning: {warning}" in rep.stdout
    # the runs made: the searches on 2 seeds, then 5 seeds per distinct chosen setting
    summary = load(out)[1]
    assert summary["state"].eq("complete").all()
    chosen = {(r.label, r.momentum, r.lr) for r in settings.itertuples()}
    assert (summary["role"] == "evaluation").sum() == 5 * len(chosen)
