"""Session backends: the protocol the session store writes through, and two implementations.

The store actor only ever sees :class:`SessionBackend`: ``load()`` at every (re)start and
``save(snapshot)`` for every (coalesced) write. :class:`FileBackend` is the production one
(encrypted ``sessions.json`` plus ``credential-env-bindings.json`` in ``dataDir``); a SQLite or
Redis backend can replace it without touching the actor. :class:`MemoryBackend` keeps the last
snapshot in memory, for tests of code that needs a store but no disk.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol, final

import msgspec
import trio

from agent_identity.config import EnvSettings, PluginConfig
from agent_identity.storage._bindings import BINDINGS_FILE, encode_bindings, parse_bindings_file
from agent_identity.storage._envelope import (
    encode_sessions,
    parse_sessions_file,
    seal,
)
from agent_identity.storage._errors import StorageError, UnreadableFileError
from agent_identity.storage._files import (
    ensure_private_dir,
    keep_aside,
    read_data_file,
    remove_stale_temps,
    write_atomic,
)
from agent_identity.storage._keys import StoreKey, load_store_key
from agent_identity.storage._records import BindingMap, SessionRecord, Snapshot

__all__ = [
    "SESSIONS_FILE",
    "FileBackend",
    "FileBackendStatistics",
    "MemoryBackend",
    "SessionBackend",
]

logger = logging.getLogger("agent_identity.storage")

SESSIONS_FILE = "sessions.json"
"""The encrypted sessions file in ``dataDir``."""


class SessionBackend(Protocol):
    """Where the session store keeps its state. The store is its only user.

    Contract:

    * :meth:`load` is called at every start of the store (so a restart reloads), and before
      any :meth:`save`; it never fails because of unreadable data (it keeps what it cannot
      read aside, reports it, and returns what it could read), only because of the
      environment (permissions, key, I/O).
    * :meth:`save` is given the complete state and returns only once it is durable (it
      survives a crash of the process or of the machine). If it raises, the previous saved
      state is intact.
    * Calls are never concurrent: the store awaits each call before the next.
    * Both drop dead sessions (:meth:`SessionRecord.prunable`); expired ones that a refresh
      token may still renew are kept.
    """

    async def load(self) -> Snapshot:
        """Read the persisted state."""
        ...

    async def save(self, snapshot: Snapshot) -> None:
        """Persist ``snapshot`` durably, replacing the previous state."""
        ...


class FileBackendStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of a :class:`FileBackend` (over the instance's lifetime).

    Attributes:
        loads: Completed loads.
        session_writes: Writes of ``sessions.json``.
        binding_writes: Writes of ``credential-env-bindings.json``.
        unchanged_skips: File writes skipped because the content had not changed.
        migrated: Sessions migrated from the plaintext format.
        pruned: Dead sessions dropped (on load and on save).
        kept_aside: Unreadable files renamed to ``*.corrupt-<time>``.
    """

    loads: int = 0
    session_writes: int = 0
    binding_writes: int = 0
    unchanged_skips: int = 0
    migrated: int = 0
    pruned: int = 0
    kept_aside: int = 0


@final
class FileBackend:
    """Encrypted ``sessions.json`` and plain ``credential-env-bindings.json`` in ``dataDir``.

    File formats are described in :mod:`agent_identity.storage._envelope` and
    :mod:`agent_identity.storage._bindings`. Every write is atomic and durable
    (:func:`~agent_identity.storage._files.write_atomic`); a file whose content did not change
    is not rewritten. All file I/O runs in a worker thread.

    Args:
        data_dir: The data folder; created with mode 0700 if missing.
        key: The decoded ``AGENT_IDENTITY_STORE_KEY``; ``None`` to use (or create)
            ``store.key`` in the data folder.
        now: Wall-clock time in epoch seconds, for pruning (injectable for tests).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        key: bytes | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._dir = data_dir
        self._supplied_key = key
        self._now = now
        self._key: StoreKey | None = None
        # What each file holds now (the payload before encryption), to skip unchanged writes.
        self._sessions_on_disk: bytes | None = None
        self._bindings_on_disk: bytes | None = None
        self._stats = FileBackendStatistics()

    @classmethod
    def from_config(
        cls, config: PluginConfig, env: EnvSettings, *, now: Callable[[], float] = time.time
    ) -> FileBackend:
        """The backend of a plugin config: ``dataDir``, and the key from the environment."""
        return cls(config.data_path(), key=env.store_key, now=now)

    def __repr__(self) -> str:
        return f"<FileBackend {str(self._dir)!r}>"

    @property
    def data_dir(self) -> Path:
        """The data folder."""
        return self._dir

    @property
    def sessions_path(self) -> Path:
        """The path of ``sessions.json``."""
        return self._dir / SESSIONS_FILE

    @property
    def bindings_path(self) -> Path:
        """The path of ``credential-env-bindings.json``."""
        return self._dir / BINDINGS_FILE

    def statistics(self) -> FileBackendStatistics:
        """Return the backend's counters."""
        return self._stats

    async def load(self) -> Snapshot:
        """Read both files (see :class:`SessionBackend`).

        Creates or checks the data folder and the key, deletes temp files of interrupted
        writes, keeps unreadable files aside (logged as errors), migrates a plaintext
        ``sessions.json`` and drops dead sessions (rewriting the file in both cases).

        Raises:
            UnsafePermissionsError: The folder or ``store.key`` is not private to this user.
            StoreKeyError: The key is unusable.
            OSError: The file system failed.
        """
        return await trio.to_thread.run_sync(self._load_blocking)

    async def save(self, snapshot: Snapshot) -> None:
        """Write the files whose content changed, atomically and durably.

        Raises:
            StorageError: Called before :meth:`load`.
            OSError: The file system failed (the previous files are intact).
        """
        await trio.to_thread.run_sync(self._save_blocking, snapshot)

    # ------------------------------------------------------------------ blocking parts

    def _load_blocking(self) -> Snapshot:
        now = self._now()
        ensure_private_dir(self._dir)
        self._key = load_store_key(self._dir, self._supplied_key)
        remove_stale_temps(self._dir, (SESSIONS_FILE, BINDINGS_FILE))
        sessions, migrate = self._load_sessions(self._key, now)
        bindings = self._load_bindings(now)
        snapshot, pruned = Snapshot(sessions=sessions, bindings=bindings).pruned(now)
        self._count(loads=1, pruned=pruned)
        if migrate or pruned:
            # Rewrite now: the plaintext must not stay on disk, nor dead sessions' tokens.
            self._write_sessions(self._key, snapshot.sessions)
        return snapshot

    def _load_sessions(self, key: StoreKey, now: float) -> tuple[dict[str, SessionRecord], bool]:
        path = self.sessions_path
        self._sessions_on_disk = encode_sessions(())
        data = read_data_file(path)
        if data is None:
            return {}, False
        try:
            parsed = parse_sessions_file(data, key, now=now)
        except UnreadableFileError as exc:
            self._keep_aside(path, str(exc), now, what="sessions")
            return {}, False
        if parsed.legacy:
            self._sessions_on_disk = None  # whatever it holds, it must be rewritten
            self._count(migrated=len(parsed.sessions))
            logger.warning(
                "%s was in the plaintext format of older versions; encrypting its %d "
                "session(s) with AES-256-GCM",
                path,
                len(parsed.sessions),
            )
            return parsed.sessions, True
        self._sessions_on_disk = parsed.plaintext
        return parsed.sessions, False

    def _load_bindings(self, now: float) -> BindingMap:
        path = self.bindings_path
        self._bindings_on_disk = encode_bindings({})
        data = read_data_file(path)
        if data is None:
            return {}
        try:
            bindings = parse_bindings_file(data)
        except UnreadableFileError as exc:
            self._keep_aside(path, str(exc), now, what="env bindings")
            return {}
        self._bindings_on_disk = data
        return bindings

    def _keep_aside(self, path: Path, reason: str, now: float, *, what: str) -> None:
        kept = keep_aside(path, now)
        self._count(kept_aside=1)
        logger.error(
            "%s cannot be read: %s. It was kept as %s and the store starts with no %s. "
            "Restore it (with the right AGENT_IDENTITY_STORE_KEY or store.key) while the "
            "gateway is stopped, or delete it.",
            path,
            reason,
            kept,
            what,
        )

    def _save_blocking(self, snapshot: Snapshot) -> None:
        if self._key is None:
            raise StorageError("FileBackend.save() called before load()")
        snapshot, pruned = snapshot.pruned(self._now())
        self._count(pruned=pruned)
        # Bindings first: if a logout is cut short between the two writes, the session
        # survives without its bindings rather than the other way round.
        bindings = encode_bindings(snapshot.bindings)
        if bindings == self._bindings_on_disk:
            self._count(unchanged_skips=1)
        else:
            write_atomic(self.bindings_path, bindings)
            self._bindings_on_disk = bindings
            self._count(binding_writes=1)
        self._write_sessions(self._key, snapshot.sessions)

    def _write_sessions(self, key: StoreKey, sessions: Mapping[str, SessionRecord]) -> None:
        plaintext = encode_sessions(sessions.values())
        if plaintext == self._sessions_on_disk:
            self._count(unchanged_skips=1)
            return
        write_atomic(self.sessions_path, seal(plaintext, key))
        self._sessions_on_disk = plaintext
        self._count(session_writes=1)

    def _count(self, **increments: int) -> None:
        stats = self._stats
        self._stats = msgspec.structs.replace(
            stats, **{name: getattr(stats, name) + n for name, n in increments.items()}
        )


@final
class MemoryBackend:
    """A backend that keeps the last saved snapshot in memory (not durable; for tests).

    Args:
        initial: The state the first :meth:`load` returns.
        now: Wall-clock time in epoch seconds, for pruning.
    """

    def __init__(
        self, initial: Snapshot | None = None, *, now: Callable[[], float] = time.time
    ) -> None:
        self.snapshot = initial if initial is not None else Snapshot()
        self.saves = 0
        self._now = now

    def __repr__(self) -> str:
        return f"<MemoryBackend {self.snapshot!r}>"

    async def load(self) -> Snapshot:
        """Return the last saved snapshot, without dead sessions."""
        await trio.lowlevel.checkpoint()
        self.snapshot, _ = self.snapshot.pruned(self._now())
        return self.snapshot

    async def save(self, snapshot: Snapshot) -> None:
        """Keep ``snapshot`` (without dead sessions)."""
        await trio.lowlevel.checkpoint()
        self.snapshot, _ = snapshot.pruned(self._now())
        self.saves += 1
