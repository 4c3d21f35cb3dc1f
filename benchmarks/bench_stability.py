"""Time of a 200 x 200 spectral-radius grid for each stability map (target: < 1 s each).

Reproduce with:  .venv/bin/python benchmarks/bench_stability.py
"""

from __future__ import annotations

import time

import numpy as np

from toolkit.theory.stability import (
    admm_round_robin_spectral_radius,
    easgd_round_robin_spectral_radius,
    easgd_spectral_radius,
)


def _best_of(fn, repeats: int = 3) -> float:
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main(n: int = 200) -> None:
    a, b = np.meshgrid(np.linspace(0.0, 2.5, n), np.linspace(0.0, 2.5, n))
    cases = [
        ("EASGD sync, p=8 (closed form)", lambda: easgd_spectral_radius(eta=a, alpha=b / 8, p=8)),
        (
            "EAMSGD sync, p=8, delta=0.9",
            lambda: easgd_spectral_radius(eta=a, alpha=b / 8, p=8, momentum=0.9),
        ),
        (
            "EASGD round-robin, p=3",
            lambda: easgd_round_robin_spectral_radius(eta=a, alpha=b / 3, p=3),
        ),
        (
            "ADMM round-robin, p=3",
            lambda: admm_round_robin_spectral_radius(eta=a / 100, alpha=b, p=3),
        ),
    ]
    print(f"{n} x {n} grid, best of 3\n")
    print(f"{'map':<34} {'seconds':>8}")
    for name, fn in cases:
        print(f"{name:<34} {_best_of(fn):8.3f}")
    print("\ncommand: .venv/bin/python benchmarks/bench_stability.py")


if __name__ == "__main__":
    main()
