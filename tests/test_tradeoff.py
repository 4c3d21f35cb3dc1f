"""Error-runtime trade-off of Dutta, Joshi, Ghosh, Dube, Nagpurkar, AISTATS 2018
(PMLR v84:803-812), toolkit.theory.tradeoff, and the four K-variants' runtimes.

Oracles: the paper's exponential closed forms (K-sync: E[X_(K:P)] = scale (H_P - H_{P-K}) + loc,
Lemma 3 and its remark; K-batch-sync: K scale / P, Sec. 4.1; K-batch-async: K E[X] / P, Lemma 4;
K-async: equal to K-sync for exponential times, Supp. 7.3.1), Lemma 5's bound for
new-longer-than-used times, and Lemma 2 / Theorem 3's error floors as printed in the paper.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from toolkit.schemes import Async, Backup, KAsync, KBatchAsync, KBatchSync, Sync
from toolkit.theory.estimate import clock_estimate
from toolkit.theory.step_time import kasync_bound, step_time, step_time_estimate
from toolkit.theory.tradeoff import (
    VARIANTS,
    error_bound,
    kasync_error_floor,
    ksync_error_floor,
    runtime,
    tradeoff,
    variant_scheme,
)


def harmonic(n: int) -> float:
    return float(np.sum(1.0 / np.arange(1, n + 1))) if n > 0 else 0.0


P = 8
EXP = stats.expon(scale=2.0)  # rate mu = 1/2
SHIFTED = stats.expon(loc=1.0, scale=0.5)


def test_variants_are_the_toolkit_schemes():
    assert variant_scheme("k-sync", 8, 3) == Backup(3, 5)
    assert variant_scheme("k-batch-sync", 8, 3) == KBatchSync(8, 3)
    assert variant_scheme("k-async", 8, 3) == KAsync(8, 3)
    assert variant_scheme("K-batch-async", 8, 3) == KBatchAsync(8, 3)


@pytest.mark.parametrize("k", [1, 4, 8])
def test_exponential_runtimes_closed_forms(k):
    ksync = 2.0 * (harmonic(P) - harmonic(P - k))
    assert runtime("k-sync", P, k, EXP).value == pytest.approx(ksync)
    assert runtime("k-sync", P, k, SHIFTED).value == pytest.approx(
        1.0 + 0.5 * (harmonic(P) - harmonic(P - k))
    )
    assert runtime("k-batch-sync", P, k, EXP).value == pytest.approx(k * 2.0 / P, rel=1e-8)
    assert runtime("k-batch-async", P, k, EXP).value == pytest.approx(k * 2.0 / P)
    assert runtime("k-batch-async", P, k, SHIFTED).value == pytest.approx(k * 1.5 / P)
    # memoryless: K-async iterations are K-sync iterations (Supp. 7.3.1), exactly
    est = runtime("k-async", P, k, EXP)
    assert est.method in ("exact", "renewal")
    assert est.value == pytest.approx(ksync)


@pytest.mark.parametrize("k", [2, 6])
def test_kasync_clock_reproduces_the_memoryless_value(k):
    """gamma(1) is the exponential law but takes the Monte Carlo path (the clock)."""
    est = step_time_estimate(KAsync(P, k), stats.gamma(1.0, scale=2.0), samples=20_000, seed=1)
    assert est.method == "monte-carlo"
    assert abs(est.value - 2.0 * (harmonic(P) - harmonic(P - k))) < 5 * est.se


def test_kasync_k_equals_p_is_sync_and_k_1_is_async():
    d = stats.lognorm(0.6)
    est = clock_estimate(KAsync(5, 5), d, None, samples=20_000, seed=2)
    assert abs(est.value - step_time(Sync(5), d)) < 5 * est.se
    assert step_time_estimate(KAsync(5, 5), d).value == pytest.approx(step_time(Sync(5), d))
    assert step_time(KAsync(5, 1), d) == step_time(Async(5), d)


def test_kasync_shifted_exponential_lies_strictly_below_the_lemma5_bound():
    """The shifted exponential is new-longer-than-used: K-async beats the bound E[X_(K:P)]
    (= the K-sync time) for 1 < K < P."""
    est = runtime("k-async", P, 4, SHIFTED, samples=20_000, seed=2)
    assert est.method == "monte-carlo"
    bound = kasync_bound(P, 4, SHIFTED)
    assert bound == pytest.approx(runtime("k-sync", P, 4, SHIFTED).value)
    assert est.value + 5 * est.se < bound


def test_error_floors_are_the_papers():
    """Lemma 2: eta L sigma^2 / (2 c K m), contraction (1 - eta c)^J; Theorem 3 divides by
    gamma' = 1 - gamma + p0 / 2."""
    floor = ksync_error_floor(eta=0.1, lipschitz=2.0, convexity=0.5, sigma2=3.0, k=4, m=8)
    assert floor == pytest.approx(0.1 * 2.0 * 3.0 / (2 * 0.5 * 4 * 8))
    assert ksync_error_floor(0.1, 2.0, 0.5, 3.0, 8, 8) == pytest.approx(floor / 2)
    assert error_bound(0, floor, 0.1, 0.5, gap0=1.0) == pytest.approx(1.0)
    assert error_bound(10_000, floor, 0.1, 0.5, gap0=1.0) == pytest.approx(floor)
    j = np.arange(5)
    np.testing.assert_allclose(
        error_bound(j, floor, 0.1, 0.5, gap0=1.0), floor + 0.95**j * (1.0 - floor)
    )
    assert kasync_error_floor(0.1, 2.0, 0.5, 3.0, 4, 8, gamma=0.5, p0=0.2) == pytest.approx(
        floor / 0.6
    )
    # Lemma 2's learning-rate condition eta <= 1 / (2 L (M_G / (K m) + 1)) when M_G is given
    ksync_error_floor(0.1, 2.0, 0.5, 3.0, 4, 8, m_g=32.0)  # limit 1 / (4 * 2) = 0.125
    with pytest.raises(ValueError, match="eta: Lemma 2"):
        ksync_error_floor(0.2, 2.0, 0.5, 3.0, 4, 8, m_g=32.0)


def test_tradeoff_table():
    df = tradeoff(P, SHIFTED, eta=0.1, lipschitz=1.0, convexity=1.0, sigma2=1.0, m=4, seed=0)
    cols = ["K", "variant", "scheme", "runtime", "runtime_se", "error_floor", "method"]
    assert list(df.columns) == cols
    assert len(df) == len(VARIANTS) * P
    ks = df[df["variant"] == "k-sync"]
    assert np.all(np.diff(ks["runtime"]) > 0)  # waiting for more learners takes longer
    assert np.all(np.diff(ks["error_floor"]) < 0)  # and averages the noise down
    assert df.loc[df["variant"] == "k-async", "error_floor"].isna().all()
    assert ks["scheme"].iloc[2] == "Backup(n=3, b=5)"
    df2 = tradeoff(
        P,
        EXP,
        eta=0.1,
        lipschitz=1.0,
        convexity=1.0,
        sigma2=1.0,
        m=4,
        ks=[2, 4],
        variants=["k-batch-async"],
        gamma=0.5,
        p0=0.5,
    )
    assert df2["error_floor"].notna().all()
    np.testing.assert_allclose(df2["runtime"], [2 * 2.0 / P, 4 * 2.0 / P])


def test_bad_input_names_the_field():
    with pytest.raises(ValueError, match=r"K must be an integer in \[1, 4\]"):
        runtime("k-sync", 4, 5, EXP)
    with pytest.raises(ValueError, match="P must"):
        runtime("k-batch-async", 0, 1, EXP)
    with pytest.raises(ValueError, match="variant"):
        runtime("k-nope", 4, 2, EXP)
    with pytest.raises(ValueError, match="eta"):
        ksync_error_floor(-0.1, 1.0, 1.0, 1.0, 2, 2)
    with pytest.raises(ValueError, match="eta \\* convexity"):
        ksync_error_floor(3.0, 1.0, 1.0, 1.0, 2, 2)
    with pytest.raises(ValueError, match="m must"):
        ksync_error_floor(0.1, 1.0, 1.0, 1.0, 2, 0)
    with pytest.raises(ValueError, match="p0"):
        kasync_error_floor(0.1, 1.0, 1.0, 1.0, 2, 2, gamma=0.1, p0=2.0)
    with pytest.raises(ValueError, match="compute"):
        runtime("k-async", 4, 2, stats.norm())
    with pytest.raises(ValueError, match="seed"):
        runtime("k-async", 4, 2, stats.lognorm(0.5), seed=-1)
    with pytest.raises(ValueError, match="samples"):
        runtime("k-async", 4, 2, stats.lognorm(0.5), samples=1)
