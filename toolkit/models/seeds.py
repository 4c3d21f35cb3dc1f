"""Seeding: deterministic child seeds, so a worker's random stream does not depend on how many
workers exist or in which order they are asked for draws (common random numbers across schemes)."""

from __future__ import annotations

import numpy as np

__all__ = ["child_seed"]


def child_seed(seed: int | np.random.SeedSequence | None, *keys: int) -> np.random.SeedSequence:
    """The child ``SeedSequence(entropy, spawn_key=parent_key + keys)``: deterministic, unlike
    ``SeedSequence.spawn`` whose result depends on how often it was called before."""
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, *keys))
