"""Writing files so that an interrupted write never leaves a half-written file behind."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write"]


def atomic_write(target: str | Path, write: Callable[[Path], object]) -> Path:
    """``write(tmp)`` to a temporary file next to ``target``, then ``os.replace`` it onto
    ``target`` (atomic on POSIX): readers see the old file or the new one, never part of one.
    The temporary file is named by process and thread, so writers of one target at once (two
    processes building one cache) never share it: the last rename wins, whole. It is removed if
    ``write`` fails or is interrupted."""
    target = Path(target)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target
