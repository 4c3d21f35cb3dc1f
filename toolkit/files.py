"""Writing files so that an interrupted write never leaves a half-written file behind, and
output folders that a command never shares with another's files."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

__all__ = ["MARK", "atomic_write", "claim_folder"]

# One line naming the command whose outputs a folder holds (:func:`claim_folder`).
MARK = ".toolkit"


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


def claim_folder(
    folder: str | Path,
    command: str,
    outputs: tuple[str, ...],
    field: str,
    *,
    own: tuple[str, ...] = (),
    overwrite: bool = False,
    hint: str = "choose another folder, or pass --overwrite to replace them",
) -> Path:
    """Make ``folder`` the output folder of ``command`` (e.g. ``"demo"``): created if missing,
    its :data:`MARK` file written naming ``command``. Refused with a
    :class:`~toolkit.checks.ConfigError` naming ``field`` when the folder holds one of
    ``outputs`` (names that ``command`` writes there) and is not ``command``'s: its mark names
    another command, or there is no mark and neither all of ``outputs`` nor one of ``own``
    (entries that only ``command`` makes) are there; ``hint`` ends the message.
    ``overwrite`` claims it anyway. A folder
    that is ``command``'s is reused: a command re-run replaces its own outputs."""
    from toolkit.checks import ConfigError

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(field, f"{field}: {str(folder)!r} is a file, not a folder")
    mark = folder / MARK
    if folder.is_dir() and not overwrite:
        held = [name for name in outputs if (folder / name).exists()]
        owner = mark.read_text().strip() if mark.is_file() else None
        ours = owner == command or (
            owner is None and (len(held) == len(outputs) or any((folder / n).exists() for n in own))
        )
        if held and not ours:
            whose = f"{owner}'s outputs" if owner else "files this command did not write"
            raise ConfigError(
                field,
                f"{field}: {str(folder)!r} holds {whose} ({', '.join(held[:3])}"
                f"{', ...' if len(held) > 3 else ''}); {hint}",
            )
    folder.mkdir(parents=True, exist_ok=True)
    if not (mark.is_file() and mark.read_text().strip() == command):
        atomic_write(mark, lambda tmp: tmp.write_text(command + "\n"))
    return folder
