"""Statistics of a comparison over seeds: intervals, pairwise tests, time to target as survival.

* :func:`interval`: a confidence interval of the mean of i.i.d. values. Student-t by default,
  mean +- t_{(1+c)/2, n-1} s / sqrt(n) (exact for normal values); the percentile bootstrap only
  from :data:`MIN_BOOTSTRAP` values up (with n = 3 its interval is the range: each of the 27
  resamples' means lies in [min, max], and P(all resamples draw the minimum) = 1/27 > 2.5 %).
  Below :data:`MIN_INTERVAL` values no interval is drawn and the label says ``"range"``.
* :func:`welch`: Welch's unequal-variance t test of two samples (Welch, Biometrika 34, 1947),
  through ``scipy.stats.ttest_ind(equal_var=False)``.
* :func:`holm`: Holm's step-down adjustment of m p-values (Holm, Scand. J. Statist. 6, 1979):
  p~_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)) for the ascending p_(1) <= ... <= p_(m); it
  controls the family-wise error rate of the m tests at the level it is compared with.
* :func:`kaplan_meier`: the Kaplan-Meier estimate (Kaplan & Meier, JASA 53, 1958) of the time to
  target when some runs never reach it: a run that stops first is right-censored at its own end
  time (``scipy.stats.ecdf`` of ``scipy.stats.CensoredData``). Its median is the smallest time
  at which the estimated survival S(t) (the fraction not yet at the target) is <= 1/2, NaN when
  S stays above 1/2 (the median is then beyond the last observed time).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

from toolkit.checks import ConfigError

__all__ = ["MIN_BOOTSTRAP", "MIN_INTERVAL", "holm", "interval", "kaplan_meier", "welch"]

MIN_INTERVAL = 5  # fewer values: the range, no interval
MIN_BOOTSTRAP = 10  # fewer values: no bootstrap


def interval(
    values: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
    *,
    method: str = "t",
    seed: int = 0,
) -> tuple[float, float, str]:
    """``(low, high, label)``: an interval of the mean of the finite ``values``.

    ``method="t"``: Student-t (label ``"t 95%"``); ``"bootstrap"``: the percentile bootstrap,
    2000 resamples seeded by ``seed`` (label ``"bootstrap 95%"``), refused below
    :data:`MIN_BOOTSTRAP` values. Below :data:`MIN_INTERVAL` finite values: ``(nan, nan,
    "range")``, whatever the method."""
    if method not in ("t", "bootstrap"):
        raise ConfigError("method", f"method must be one of t, bootstrap; got {method!r}")
    if not 0 < confidence < 1:
        raise ConfigError("confidence", f"confidence must lie in (0, 1), got {confidence!r}")
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    n = len(v)
    if n < MIN_INTERVAL:
        return float("nan"), float("nan"), "range"
    level = f"{100 * confidence:g}%"
    if method == "bootstrap":
        if n < MIN_BOOTSTRAP:
            raise ConfigError(
                "method", f"method: the bootstrap needs >= {MIN_BOOTSTRAP} values, got {n}; use 't'"
            )
        if np.all(v == v[0]):
            return float(v[0]), float(v[0]), f"bootstrap {level}"
        res = stats.bootstrap(
            (v,),
            np.mean,
            confidence_level=confidence,
            method="percentile",
            n_resamples=2000,
            random_state=np.random.default_rng(seed),
        )
        ci = res.confidence_interval
        return float(ci.low), float(ci.high), f"bootstrap {level}"
    mean, half = v.mean(), 0.0
    sd = v.std(ddof=1)
    if sd > 0:
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / np.sqrt(n))
    return float(mean - half), float(mean + half), f"t {level}"


def welch(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    """``(t, df, p)`` of Welch's two-sided t test of equal means on the finite values of ``a``
    and ``b``; NaNs where it is undefined (fewer than 2 values in a sample, or no spread in
    either)."""
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    nan = float("nan")
    if len(x) < 2 or len(y) < 2:
        return nan, nan, nan
    vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    if vx + vy == 0:
        return nan, nan, nan
    res = stats.ttest_ind(x, y, equal_var=False)
    df = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))  # Welch-Satterthwaite
    return float(res.statistic), float(df), float(res.pvalue)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values, in the order given (NaN p-values stay NaN and do not count in
    m); reject test i at family-wise level alpha when the adjusted p_i <= alpha."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if not m:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    scaled = (m - np.arange(m)) * p[order]
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out


def kaplan_meier(times: Sequence[float], reached: Sequence[bool]) -> dict:
    """The Kaplan-Meier summary of times to target: ``times[i]`` is when run i reached the
    target (``reached[i]``) or, censored, when it stopped without reaching it.

    Returns ``n``, ``reached`` (how many did), ``fraction`` (reached / n), ``median`` (module
    docstring; NaN when the estimated fraction still short of the target stays above 1/2) and
    ``censored_at`` (the sorted censoring times)."""
    t = np.asarray(times, dtype=float)
    hit = np.asarray(reached, dtype=bool)
    if t.shape != hit.shape:
        raise ConfigError("times", "times, reached: lengths differ")
    if np.any(~np.isfinite(t)):
        raise ConfigError(
            "times", "times: every run needs a finite time (its end time when censored)"
        )
    n, k = len(t), int(hit.sum())
    out = {
        "n": n,
        "reached": k,
        "fraction": k / n if n else float("nan"),
        "median": float("nan"),
        "censored_at": sorted(float(x) for x in t[~hit]),
    }
    if not k:
        return out
    data = stats.CensoredData(uncensored=t[hit], right=t[~hit])
    sf = stats.ecdf(data).sf
    below = np.flatnonzero(sf.probabilities <= 0.5 + 1e-12)
    if len(below):
        out["median"] = float(sf.quantiles[below[0]])
    return out
