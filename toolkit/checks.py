"""Argument checks shared by every layer: each error names the argument it is about."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

import numpy as np

__all__ = [
    "check_array",
    "check_choice",
    "check_int",
    "check_interval",
    "check_positive",
    "check_real",
]


def check_int(name: str, value: object, low: int = 1, high: int | None = None) -> int:
    """``value`` as an int if it is an integer (not a bool) in [low, high], else ValueError."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < low
        or (high is not None and value > high)
    ):
        want = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be an integer {want}, got {value!r}")
    return int(value)


def check_real(name: str, value: object) -> float:
    """``value`` as a float if it is a real number (not a bool, a string or None)."""
    if isinstance(value, (bool, str, bytes)) or value is None:
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None


def check_positive(name: str, value: object, allow_zero: bool = False) -> float:
    """``value`` as a float if it is a finite number > 0 (>= 0 with ``allow_zero``)."""
    v = check_real(name, value)
    if not math.isfinite(v) or (v < 0 if allow_zero else v <= 0):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'} and finite, got {v}")
    return v


def check_interval(name: str, value: object, low: float, high: float, bounds: str = "[]") -> float:
    """``value`` as a float if it lies in the interval from ``low`` to ``high``; ``bounds`` says
    which ends are closed: ``"[]"``, ``"[)"``, ``"(]"`` or ``"()"``."""
    v = check_real(name, value)
    lo_ok = v >= low if bounds[0] == "[" else v > low
    hi_ok = v <= high if bounds[1] == "]" else v < high
    if not (lo_ok and hi_ok):
        raise ValueError(
            f"{name} must lie in {bounds[0]}{low:g}, {high:g}{bounds[1]}, got {value!r}"
        )
    return v


def check_choice(name: str, value: object, choices: Iterable[object]) -> object:
    """``value`` unchanged if it is one of ``choices``, else ValueError listing them."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}")
    return value


def check_array(
    name: str, value: object, *, low: float | None = None, integer: bool = False
) -> np.ndarray:
    """``value`` as a finite float numpy array (of whole numbers with ``integer``) whose entries
    are >= ``low`` when given; ValueError naming ``name`` otherwise (booleans are refused)."""
    raw = np.asarray(value)
    if raw.dtype == bool or not (
        np.issubdtype(raw.dtype, np.integer) or np.issubdtype(raw.dtype, np.floating)
    ):
        raise ValueError(f"{name} must be numeric, got {value!r}")
    arr = raw.astype(float)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    if integer:
        if np.any(arr != np.round(arr)):
            raise ValueError(f"{name} must hold integers, got {value!r}")
    if low is not None and arr.size and np.any(arr < low):
        raise ValueError(f"{name} must be >= {low:g}, got {value!r}")
    return arr
