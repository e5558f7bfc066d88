"""Blocking file primitives: a private folder, atomic writes, stale temp files, corrupt files.

Everything here blocks; callers run it in a worker thread (``trio.to_thread.run_sync``).

Atomic write protocol (:func:`write_atomic`): write a uniquely named temp file in the same
folder (created ``O_EXCL``, mode 0600), ``fsync`` it, ``rename`` it over the target, ``fsync``
the folder. ``rename`` within one file system replaces the name atomically, so after a crash at
any instant the target is either the complete old file or the complete new one. Until the
folder ``fsync`` the rename itself may be lost on power failure, which leaves the old file:
still whole. A crash before the rename leaves a temp file behind, which
:func:`remove_stale_temps` deletes on the next load.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
import time
from collections.abc import Iterable
from pathlib import Path

from agent_identity.storage._errors import UnsafePermissionsError

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "ensure_private_dir",
    "fsync_dir",
    "keep_aside",
    "read_data_file",
    "remove_stale_temps",
    "temp_name",
    "write_atomic",
]

logger = logging.getLogger("agent_identity.storage")

DIR_MODE = 0o700
"""Mode of the data folder: owner only."""
FILE_MODE = 0o600
"""Mode of every file the store writes: owner read/write only."""

_TEMP_SUFFIX = ".tmp"
_GROUP_OTHER = 0o077


def temp_name(target: str) -> str:
    """A fresh, unique temp file name for ``target`` (hidden, in the same folder)."""
    return f".{target}.{secrets.token_hex(6)}{_TEMP_SUFFIX}"


def ensure_private_dir(path: Path) -> None:
    """Create the data folder with mode 0700, or check and tighten an existing one.

    An existing folder must belong to the current user. If group or others have any access,
    the mode is set to 0700 and a warning is logged: files inside are 0600 anyway, and the
    folder's mode only hides their names.

    Args:
        path: The data folder (``dataDir``).

    Raises:
        UnsafePermissionsError: The folder is owned by another user.
        NotADirectoryError: The path exists and is not a folder.
    """
    # Parents are created with the default mode: they are the user's (e.g. ~/.openclaw).
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=DIR_MODE)
    info = path.stat()
    if not stat.S_ISDIR(info.st_mode):
        raise NotADirectoryError(f"data folder {path} is not a folder")
    if info.st_uid != os.getuid():
        raise UnsafePermissionsError(
            path,
            f"the data folder is owned by uid {info.st_uid}, not by the current user "
            f"(uid {os.getuid()})",
            "point dataDir at a folder of your own",
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode != DIR_MODE:
        # mkdir's mode is filtered by the umask, and an existing folder may be too open.
        path.chmod(DIR_MODE)
        if mode & _GROUP_OTHER:
            logger.warning(
                "data folder %s had mode %04o; set it to %04o (owner only)", path, mode, DIR_MODE
            )


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (renames, creations) to disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably (mode 0600).

    See the module docstring for the protocol and its crash guarantees.

    Args:
        path: The target file.
        data: The complete new content.

    Raises:
        OSError: Writing failed; the target is unchanged and the temp file removed.
    """
    temp = path.with_name(temp_name(path.name))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(temp, flags, FILE_MODE)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        temp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    fsync_dir(path.parent)


def remove_stale_temps(folder: Path, targets: Iterable[str]) -> int:
    """Delete temp files that a crash left behind for the given target names.

    Only call this while no write is in progress in ``folder`` (the store writes from one
    task, and loads before it writes).

    Args:
        folder: The data folder.
        targets: Target file names whose temp files to delete, e.g. ``["sessions.json"]``.

    Returns:
        How many temp files were deleted.
    """
    prefixes = tuple(f".{target}." for target in targets)
    removed = 0
    for entry in folder.iterdir():
        if entry.name.startswith(prefixes) and entry.name.endswith(_TEMP_SUFFIX):
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                removed += 1
    if removed:
        fsync_dir(folder)
        logger.info("removed %d temp file(s) left by an interrupted write in %s", removed, folder)
    return removed


def read_data_file(path: Path) -> bytes | None:
    """Read one of the store's data files, tightening its mode to 0600 if it is more open.

    Args:
        path: The file.

    Returns:
        The content, or ``None`` if the file does not exist.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as file:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        if mode & _GROUP_OTHER:
            # Older versions wrote with the default umask; the content is rewritten soon.
            os.fchmod(fd, FILE_MODE)
            logger.warning("%s had mode %04o; set it to %04o", path, mode, FILE_MODE)
        return file.read()


def keep_aside(path: Path, now: float) -> Path:
    """Rename an unreadable file to ``<name>.corrupt-<UTC time>`` so nothing is lost.

    Args:
        path: The file to move aside.
        now: Wall-clock time in epoch seconds, for the name.

    Returns:
        Where the file is now.
    """
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    base = path.with_name(f"{path.name}.corrupt-{stamp}")
    target = base
    counter = 0
    while target.exists():
        counter += 1
        target = base.with_name(f"{base.name}-{counter}")
    path.rename(target)
    fsync_dir(path.parent)
    return target
