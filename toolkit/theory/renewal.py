"""Sums of step times and superposed renewal processes: the gamma family, whose j-fold sums stay
in the family, and K-batch-sync's k-th event among n workers that restart on every finish
(Dutta et al., AISTATS 2018, Sec. 4.1; docs/theory.md#k-batch-sync-superposed-renewal-processes)."""

from __future__ import annotations

import math

import numpy as np
from scipy import integrate, signal, special, stats

from toolkit.checks import check_int
from toolkit.limits import check_memory
from toolkit.models.dists import check_step_dist
from toolkit.theory.estimate import StepTime, mean_se, progress_bar

__all__ = ["gamma_family", "kbatch_sync_time", "sum_dist"]

_CHUNK = 2_000_000  # random draws per Monte Carlo chunk (memory bound)


def gamma_family(dist: object) -> tuple[float, float, float] | None:
    """(shape a, loc, scale) when ``dist`` is a frozen scipy ``expon``/``gamma``/``erlang``, whose
    j-fold sums are again gamma: ``gamma(j a, loc=j loc, scale)``; None otherwise.

    Recovered from public moments: loc = lower support end, scale = var / (mean - loc),
    a = (mean - loc) / scale (a = 1 for expon)."""
    name = getattr(getattr(dist, "dist", None), "name", None)
    if name not in ("expon", "gamma", "erlang"):
        return None
    loc = float(dist.support()[0])
    excess = float(dist.mean()) - loc
    if name == "expon":
        return 1.0, loc, excess
    scale = float(dist.var()) / excess
    return excess / scale, loc, scale


def sum_dist(dist: object, j: int) -> object | None:
    """Frozen distribution of a sum of j i.i.d. draws of ``dist`` when closed (gamma family)."""
    fam = gamma_family(dist)
    if fam is None:
        return None
    a, loc, scale = fam
    return stats.gamma(j * a, loc=j * loc, scale=scale)


def _kbatch_quadrature(dist: object, n: int, k: int) -> float:
    """E[T_k] = ∫_0^∞ P(N(t) < k) dt for gamma-family step times (see :func:`kbatch_sync_time`)."""
    a, loc, scale = gamma_family(dist)
    # measured (tracemalloc): a tail evaluation peaks at 120-280 bytes per term of the series
    check_memory("k", f"the K-batch-sync quadrature's series of k={k} terms", 300 * k)
    j = np.arange(1, k + 1)
    # (pmf)^n by repeated squaring: log2(n) products of length k; FFT products for long series
    convolve = np.convolve if k <= 512 else signal.fftconvolve
    work = 200 * math.log2(n + 1) * (k * k if k <= 512 else 2 * k * math.log2(k))
    bar = progress_bar(None, work, f"K-batch-sync quadrature, k={k}", "k")

    def tail(t: float) -> float:
        bar.update(1)
        # G_j(t) = P(S_j <= t) = P(N_1(t) >= j), S_j ~ gamma(j a, loc=j loc, scale)
        z = np.maximum(t - j * loc, 0.0) / scale
        g = special.gammainc(j * a, z)
        pmf = -np.diff(np.concatenate(([1.0], g)))  # P(N_1(t) = i), i = 0..k-1
        pmf = np.maximum(pmf, 0.0)
        acc = np.zeros(k)
        acc[0] = 1.0
        base, e = pmf, n
        while e:  # (pmf)^n as a power series truncated at degree k - 1
            if e & 1:
                acc = convolve(acc, base)[:k]
            e >>= 1
            if e:
                base = convolve(base, base)[:k]
        return float(min(max(acc.sum(), 0.0), 1.0))

    t0 = math.ceil(k / n) * loc  # N(t) <= n floor(t / loc): T_k >= ceil(k/n) loc surely
    hi = t0 + (k / n + 1.0) * a * scale
    while tail(hi) > 1e-14:
        hi = t0 + 2.0 * (hi - t0)
    points = None
    if loc > 0:
        points = [t for t in loc * np.arange(1, 60) if t0 < t < hi] or None
    with bar:
        val, _ = integrate.quad(tail, t0, hi, points=points, limit=400, epsabs=1e-11, epsrel=1e-10)
    return t0 + val


def _kbatch_mc(dist: object, n: int, k: int, samples: int, rng: np.random.Generator) -> np.ndarray:
    """Samples of T_k: each worker's arrival times are cumulative sums of its own draws; T_k is the
    k-th smallest of all arrivals. Each worker first gets ``cap`` draws; where some worker's last
    drawn arrival precedes the candidate T_k (it might arrive again before it), that same
    realisation is extended with more draws (never redrawn, which would bias the sample)."""
    out = np.empty(samples)
    cap0 = min(k, math.ceil(k / n) + 3)
    what = f"one K-batch-sync Monte Carlo sample with n={n} workers"
    check_memory("n", what, 4 * 8 * n * max(cap0, min(k, 2 * cap0)))
    chunk = max(1, _CHUNK // (n * cap0))
    bar = progress_bar(samples, samples * n * cap0 * 10, "K-batch-sync Monte Carlo", "n")
    for start in range(0, samples, chunk):
        bar.update(min(chunk, samples - start))
        size = min(chunk, samples - start)
        idx = np.arange(start, start + size)
        x = np.cumsum(np.asarray(dist.rvs(size=(size, n, cap0), random_state=rng), float), axis=2)
        while True:
            cap = x.shape[2]
            t = np.partition(x.reshape(idx.size, n * cap), k - 1, axis=1)[:, k - 1]
            ok = np.full(idx.size, True) if cap >= k else np.all(x[:, :, -1] > t[:, None], axis=1)
            out[idx[ok]] = t[ok]
            if ok.all():
                break
            x, idx = x[~ok], idx[~ok]
            extra = min(k, 2 * cap) - cap
            more = np.asarray(dist.rvs(size=(idx.size, n, extra), random_state=rng), float)
            x = np.concatenate([x, x[:, :, -1:] + np.cumsum(more, axis=2)], axis=2)
    bar.close()
    return out


def kbatch_sync_time(
    n: int, k: int, compute: object, *, samples: int = 20_000, seed: int = 0
) -> StepTime:
    """Expected time of one K-batch-sync iteration (Dutta et al., AISTATS 2018, sec. 3): all n
    workers start together, each restarts on a new mini-batch as soon as it finishes, and the
    iteration ends at the k-th finished mini-batch: T_k = inf{t : N(t) >= k}, N(t) = sum_i N_i(t)
    of n i.i.d. renewal counting processes, so E[T_k] = ∫_0^∞ P(N(t) < k) dt.

    * Exponential, loc = 0: the superposition is Poisson with rate n / scale, E[T_k] = k scale / n
      (Dutta et al.: K / (P mu)).
    * Shifted exponential and gamma (``expon``/``gamma``/``erlang``, any loc): not memoryless, no
      simple closed form (it is *not* loc + k scale / n). Computed by quadrature, exactly up to
      ~1e-10: P(N_1(t) >= j) = P(S_j <= t) with S_j ~ gamma(j a, loc=j loc, scale), the law of
      min(N_1(t), k) is raised to the n-th power as a power series truncated at degree k - 1,
      and P(N(t) < k) is integrated over t >= ceil(k/n) loc (below that, N(t) < k surely).
      For k <= n and loc >> scale it tends to loc + scale (H_n - H_{n-k}).
    * Any other distribution (including ``Empirical``): seeded Monte Carlo over ``samples``
      iterations; ``se`` is its standard error.
    """
    n = check_int("n", n, 1)
    k = check_int("k", k, 1)
    check_step_dist(compute, "compute")
    if gamma_family(compute) is not None:
        return StepTime(_kbatch_quadrature(compute, n, k), 0.0, "quadrature")
    samples = check_int("samples", samples, 2)
    t = _kbatch_mc(compute, n, k, samples, np.random.default_rng(check_int("seed", seed, 0)))
    return StepTime(*mean_se(t), "monte-carlo")
