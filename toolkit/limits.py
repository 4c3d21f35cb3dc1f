"""Limits checked before work starts: memory a computation would need, estimated from its
arguments, against a limit, so that a call too large fails at once with the estimate and the
argument to change instead of growing until the kernel kills it.

The limit is ``TOOLKIT_MEMORY_LIMIT`` (bytes, or a number with a unit: ``"8GB"``, ``"512MiB"``)
when set, else half of the machine's physical memory; :func:`set_memory_limit` changes it for
the running process.

Computations that take long declare their work, a rough count of elementary operations (the
same count decides whether they show a progress bar); :func:`check_work` refuses work above
``TOOLKIT_WORK_LIMIT`` (default :data:`WORK_LIMIT`, 1e11: a few minutes on one core of a 2-core
development machine, where the Delayed Monte Carlo ran at 4e8 to 1e9 units per second).
:func:`cores` counts the CPUs this process may run on, the measure of how
many processes (sweep workers, ranks of the real backend) the machine can host.
"""

from __future__ import annotations

import os
import re

from toolkit.checks import ConfigError, TooLargeError

__all__ = [
    "WORK_LIMIT",
    "check_memory",
    "check_work",
    "cores",
    "format_bytes",
    "memory_limit",
    "set_memory_limit",
]

WORK_LIMIT = 1e11

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1e3,
    "mb": 1e6,
    "gb": 1e9,
    "tb": 1e12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_limit: float | None = None


def _parse(text: str) -> float:
    m = re.fullmatch(r"\s*([0-9.]+(?:e[0-9]+)?)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise ConfigError(
            "TOOLKIT_MEMORY_LIMIT",
            f"TOOLKIT_MEMORY_LIMIT: expected bytes or a number with a unit (8GB, 512MiB), "
            f"got {text!r}",
        )
    return float(m.group(1)) * _UNITS[m.group(2).lower()]


def memory_limit() -> float:
    """Bytes one computation may use (module docstring)."""
    if _limit is not None:
        return _limit
    env = os.environ.get("TOOLKIT_MEMORY_LIMIT")
    if env:
        return _parse(env)
    return 0.5 * os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def set_memory_limit(limit: float | str | None) -> None:
    """Set the limit for this process (bytes or ``"8GB"``); None restores the default."""
    global _limit
    _limit = None if limit is None else _parse(str(limit))


def format_bytes(n: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} B"


def check_memory(argument: str, what: str, nbytes: float) -> None:
    """:class:`~toolkit.checks.TooLargeError` naming ``argument`` when ``what`` would need more
    than the limit."""
    limit = memory_limit()
    if nbytes > limit:
        raise TooLargeError(
            argument,
            f"{argument}: {what} needs about {format_bytes(nbytes)}, above the limit of "
            f"{format_bytes(limit)} (TOOLKIT_MEMORY_LIMIT, default half the machine's memory)",
        )


def check_work(argument: str, what: str, work: float) -> None:
    """:class:`~toolkit.checks.TooLargeError` naming ``argument`` when ``what`` is more than
    ``TOOLKIT_WORK_LIMIT`` elementary operations (module docstring)."""
    env = os.environ.get("TOOLKIT_WORK_LIMIT")
    if env:
        try:
            limit = float(env)
        except ValueError:
            raise ConfigError(
                "TOOLKIT_WORK_LIMIT",
                f"TOOLKIT_WORK_LIMIT: expected a number of operations (1e12), got {env!r}",
            ) from None
    else:
        limit = WORK_LIMIT
    if work > limit:
        raise TooLargeError(
            argument,
            f"{argument}: {what} is about {work:.2g} operations, above the limit of {limit:.2g} "
            "(minutes; TOOLKIT_WORK_LIMIT raises it)",
        )


def cores() -> int:
    """CPUs this process may run on (its affinity mask, which containers and ``taskset`` narrow),
    else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
