"""Errors of the storage layer.

Messages name files, modes and owners so an operator can act on them; they never contain a
key, a token or any other stored value.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["StorageError", "StoreKeyError", "UnreadableFileError", "UnsafePermissionsError"]


class StorageError(Exception):
    """Base class of the storage layer's errors."""


class UnsafePermissionsError(StorageError):
    """A data folder or key file is owned by someone else or readable by group/others.

    The store refuses to use it rather than trusting (or silently "fixing") a key that other
    users may already have read.

    Args:
        path: The offending file or folder.
        problem: What is wrong, e.g. ``"mode 0640 lets group/others access it"``.
        fix: A suggested command or action for the operator.
    """

    def __init__(self, path: Path, problem: str, fix: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"refusing to use {path}: {problem}; {fix}")


class StoreKeyError(StorageError):
    """The store key (from the environment or ``store.key``) is unusable, e.g. the wrong size."""


class UnreadableFileError(StorageError):
    """A data file cannot be parsed, authenticated or decrypted. The message has no secrets."""
