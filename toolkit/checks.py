"""Argument checks shared by every layer, and the error they raise: a :class:`ConfigError`
names the field or argument it is about (``err.field``), so that readers (the CLI's flags, a sweep
spec's lines, a sweep's table of failed runs) use the attribute, never the message text."""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

__all__ = [
    "ConfigError",
    "TooLargeError",
    "check_array",
    "check_choice",
    "check_int",
    "check_interval",
    "check_path",
    "check_positive",
    "check_real",
]


class ConfigError(ValueError):
    """Bad input: ``field`` is what it is about, a dotted config path (``lr``, ``scheme.n``,
    ``workload.n_train``, ``compute``, ``random.axes.lr.low``) or an argument's name (``out``);
    ``str(err)`` is the one-line message, which starts with the field where it names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field

    def __reduce__(self):  # pickled across processes (sweep workers) with its field
        return type(self), (self.field, str(self))

    def _names_field(self) -> bool:
        """Whether the message starts with the field (``lr must ...``, ``lr: ...``)."""
        text, n = str(self), len(self.field)
        after = text[n : n + 1]
        return text.startswith(self.field) and not (after.isalnum() or after in ("_", "."))

    def _about(self, field: str, prefix: bool) -> ConfigError:
        text = str(self)
        if self._names_field():
            text = field + text[len(self.field) :]
        elif prefix:
            text = f"{field}: {text}"
        return type(self)(field, text)

    def renamed(self, field: str) -> ConfigError:
        """The same error about ``field`` (e.g. a flag, ``n`` -> ``--n``): a message that starts
        with the old field starts with the new one instead, any other gets ``field: `` before it."""
        return self._about(field, prefix=True)

    def within(self, table: str) -> ConfigError:
        """The same error re-rooted in ``table``: a scheme's ``n`` becomes ``scheme.n`` inside a
        RunConfig (and so does the start of the message; another message is kept as it is)."""
        return self._about(f"{table}.{self.field}", prefix=False)


class TooLargeError(ConfigError):
    """Input that is valid but asks for more memory than this machine allows
    (:func:`toolkit.limits.check_memory`): refused before the work starts."""


def check_int(name: str, value: object, low: int = 1, high: int | None = None) -> int:
    """``value`` as an int if it is an integer (not a bool) in [low, high], else ConfigError."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < low
        or (high is not None and value > high)
    ):
        want = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ConfigError(name, f"{name} must be an integer {want}, got {value!r}")
    return int(value)


def check_real(name: str, value: object) -> float:
    """``value`` as a float if it is a real number (not a bool, a string or None)."""
    if isinstance(value, (bool, str, bytes)) or value is None:
        raise ConfigError(name, f"{name} must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(name, f"{name} must be a number, got {value!r}") from None


def check_path(name: str, value: object) -> Path:
    """``value`` as a Path: a ``str`` or ``os.PathLike`` naming a file or folder."""
    if isinstance(value, (str, os.PathLike)) and not isinstance(value, bytes):
        return Path(value)
    raise ConfigError(name, f"{name}: expected a path (str or pathlib.Path), got {value!r}")


def check_positive(name: str, value: object, allow_zero: bool = False) -> float:
    """``value`` as a float if it is a finite number > 0 (>= 0 with ``allow_zero``)."""
    v = check_real(name, value)
    if not math.isfinite(v) or (v < 0 if allow_zero else v <= 0):
        want = ">= 0" if allow_zero else "> 0"
        raise ConfigError(name, f"{name} must be {want} and finite, got {v}")
    return v


def check_interval(name: str, value: object, low: float, high: float, bounds: str = "[]") -> float:
    """``value`` as a float if it lies in the interval from ``low`` to ``high``; ``bounds`` says
    which ends are closed: ``"[]"``, ``"[)"``, ``"(]"`` or ``"()"``."""
    v = check_real(name, value)
    lo_ok = v >= low if bounds[0] == "[" else v > low
    hi_ok = v <= high if bounds[1] == "]" else v < high
    if not (lo_ok and hi_ok):
        raise ConfigError(
            name, f"{name} must lie in {bounds[0]}{low:g}, {high:g}{bounds[1]}, got {value!r}"
        )
    return v


def check_choice(name: str, value: object, choices: Iterable[object]) -> object:
    """``value`` unchanged if it is one of ``choices``, else ConfigError listing them."""
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(
            name, f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}"
        )
    return value


def check_array(
    name: str, value: object, *, low: float | None = None, integer: bool = False
) -> np.ndarray:
    """``value`` as a finite float numpy array (of whole numbers with ``integer``) whose entries
    are >= ``low`` when given; ConfigError naming ``name`` otherwise (booleans are refused)."""
    raw = np.asarray(value)
    if raw.dtype == bool or not (
        np.issubdtype(raw.dtype, np.integer) or np.issubdtype(raw.dtype, np.floating)
    ):
        raise ConfigError(name, f"{name} must be numeric, got {value!r}")
    arr = raw.astype(float)
    if not np.all(np.isfinite(arr)):
        raise ConfigError(name, f"{name} must be finite")
    if integer:
        if np.any(arr != np.round(arr)):
            raise ConfigError(name, f"{name} must hold integers, got {value!r}")
    if low is not None and arr.size and np.any(arr < low):
        raise ConfigError(name, f"{name} must be >= {low:g}, got {value!r}")
    return arr
