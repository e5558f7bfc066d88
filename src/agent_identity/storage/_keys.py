"""The store key: from ``AGENT_IDENTITY_STORE_KEY`` or ``store.key`` in the data folder.

``store.key`` holds 32 random bytes. It is created on first run with ``O_CREAT | O_EXCL`` and
mode 0600 (so two processes racing to create it cannot both win, and it is never readable by
others, not even for an instant), written and ``fsync``-ed before anything is encrypted with it.
On every load the file must be a regular file owned by the current user with no group/other
access; otherwise the store refuses to start rather than use a key others may have read.

A zero-length ``store.key`` can only be left by a crash between its creation and the write of
its 32 bytes, before anything was encrypted with it; it is replaced by a fresh key.

Blocking; run in a worker thread.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import secrets
import stat
from pathlib import Path
from typing import final

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from agent_identity.storage._errors import StoreKeyError, UnsafePermissionsError
from agent_identity.storage._files import FILE_MODE, fsync_dir

__all__ = ["KEY_BYTES", "KEY_FILE", "StoreKey", "load_store_key"]

logger = logging.getLogger("agent_identity.storage")

KEY_BYTES = 32
"""AES-256 key length."""
KEY_FILE = "store.key"
"""Name of the key file in the data folder."""

_KID_CONTEXT = b"agent-identity store key id\x00"
_KID_HEX_CHARS = 16


@final
class StoreKey:
    """A 32-byte AES-256-GCM key and its key id. Never shows the key.

    The key id is a short hash of the key, written into every encrypted file so a file
    encrypted with another key is recognised as such (instead of a bare "decryption failed").

    Args:
        key: The raw key.
        source: Where it came from (for messages), e.g. the key file's path.

    Raises:
        StoreKeyError: The key is not 32 bytes long.
    """

    __slots__ = ("_aead", "kid", "source")

    def __init__(self, key: bytes, *, source: str) -> None:
        if len(key) != KEY_BYTES:
            raise StoreKeyError(f"the store key from {source} is {len(key)} bytes, not {KEY_BYTES}")
        self._aead = AESGCM(key)
        #: Short hash of the key (16 hex characters).
        self.kid = hashlib.sha256(_KID_CONTEXT + key).hexdigest()[:_KID_HEX_CHARS]
        #: Where the key came from.
        self.source = source

    def __repr__(self) -> str:
        return f"<StoreKey kid={self.kid} from {self.source}>"

    @property
    def aead(self) -> AESGCM:
        """The AES-GCM cipher of this key."""
        return self._aead


def load_store_key(data_dir: Path, supplied: bytes | None) -> StoreKey:
    """Return the key given by the environment, or read (or create) ``store.key``.

    Args:
        data_dir: The data folder (must exist).
        supplied: The decoded ``AGENT_IDENTITY_STORE_KEY``, or ``None``.

    Returns:
        The key.

    Raises:
        UnsafePermissionsError: ``store.key`` is not a regular file, is owned by another user,
            or is accessible by group/others.
        StoreKeyError: A key of the wrong length.
    """
    if supplied is not None:
        return StoreKey(supplied, source="AGENT_IDENTITY_STORE_KEY")
    path = data_dir / KEY_FILE
    key = _read_key_file(path)
    if key is None:
        key = _create_key_file(path)
    return StoreKey(key, source=str(path))


def _read_key_file(path: Path, *, replace_empty: bool = True) -> bytes | None:
    """Read and check the key file; ``None`` if it does not exist (or was an empty leftover)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePermissionsError(
                path, "the key file is a symbolic link", "replace it with a regular file"
            ) from None
        raise
    try:
        _check_key_file(path, os.fstat(fd))
        key = b""
        while len(key) <= KEY_BYTES and (chunk := os.read(fd, KEY_BYTES + 1 - len(key))):
            key += chunk
    finally:
        os.close(fd)
    if not key and replace_empty:
        logger.warning("%s is empty (its creation was interrupted); creating a new key", path)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return None
    if len(key) != KEY_BYTES:
        size = f"more than {KEY_BYTES}" if len(key) > KEY_BYTES else str(len(key))
        raise StoreKeyError(f"{path} is {size} bytes long, not {KEY_BYTES}: not a store key")
    return key


def _check_key_file(path: Path, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise UnsafePermissionsError(
            path, "the key file is not a regular file", "replace it with a regular file"
        )
    if info.st_uid != os.getuid():
        raise UnsafePermissionsError(
            path,
            f"the key file is owned by uid {info.st_uid}, not by the current user "
            f"(uid {os.getuid()})",
            "the key may be known to that user: use a new data folder or chown it",
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise UnsafePermissionsError(
            path,
            f"the key file has mode {mode:04o}, which lets group/others access it",
            f"if nobody else could have read it, run: chmod 600 {path}",
        )


def _create_key_file(path: Path) -> bytes:
    """Create ``store.key`` exclusively, or read it if another process just created it."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, FILE_MODE)
    except FileExistsError:
        return _read_after_race(path)
    key = secrets.token_bytes(KEY_BYTES)
    try:
        if os.write(fd, key) != KEY_BYTES:
            raise OSError(errno.EIO, f"short write to {path}")
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(path.parent)
    logger.info("created a new store key at %s", path)
    return key


def _read_after_race(path: Path) -> bytes:
    """Read the key file another process created between our read and our create."""
    # It may still be writing its key: an empty file here is not a leftover to replace.
    key = _read_key_file(path, replace_empty=False)
    if key is None:
        raise StoreKeyError(f"{path} vanished while another process was creating it")
    return key
