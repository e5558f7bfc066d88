"""The production session backend: encrypted files in ``dataDir``.

:class:`FileBackend` implements :class:`~agent_identity.storage.SessionBackend` with an
encrypted ``sessions.json``, its journal, and ``credential-env-bindings.json``; a SQLite or
Redis backend can replace it without touching the actor.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import final

import msgspec
import trio

from agent_identity.config import EnvSettings, PluginConfig
from agent_identity.storage._bindings import BINDINGS_FILE, encode_bindings, parse_bindings_file
from agent_identity.storage._envelope import (
    encode_sessions,
    parse_sessions_file,
    seal_with_nonce,
)
from agent_identity.storage._errors import StorageError, UnreadableFileError
from agent_identity.storage._files import (
    ensure_private_dir,
    keep_aside,
    read_data_file,
    remove_stale_temps,
    write_atomic,
)
from agent_identity.storage._journal import (
    JOURNAL_FILE,
    Journal,
    diff_sessions,
    read_journal,
    remove,
    replay,
    truncate,
)
from agent_identity.storage._keys import StoreKey, load_store_key
from agent_identity.storage._records import BindingMap, SessionRecord, Snapshot

__all__ = [
    "DEFAULT_COMPACT_MIN_BYTES",
    "SESSIONS_FILE",
    "FileBackend",
    "FileBackendStatistics",
]

logger = logging.getLogger("agent_identity.storage")

SESSIONS_FILE = "sessions.json"
"""The encrypted sessions file in ``dataDir``."""
DEFAULT_COMPACT_MIN_BYTES = 1 << 20
"""A journal is never compacted into ``sessions.json`` before it holds this many bytes."""


class FileBackendStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of a :class:`FileBackend` over the instance's lifetime.

    Attributes:
        loads: Completed loads.
        session_writes: Whole writes of ``sessions.json`` (in journal mode: compactions).
        binding_writes: Writes of ``credential-env-bindings.json``.
        unchanged_skips: File writes skipped because the content had not changed.
        migrated: Sessions migrated from the plaintext format.
        pruned: Dead sessions dropped (on load and on save).
        kept_aside: Unreadable files renamed to ``*.corrupt-<time>``.
        journal_appends: Frames appended to ``sessions.journal``.
        journal_replayed: Frames replayed from ``sessions.journal`` on load.
        torn_tails: Journal tails cut off on load (a crash cut a write short).
        stale_journals: Journals removed on load, already in ``sessions.json`` (a crash cut
            a compaction short).
    """

    loads: int = 0
    session_writes: int = 0
    binding_writes: int = 0
    unchanged_skips: int = 0
    migrated: int = 0
    pruned: int = 0
    kept_aside: int = 0
    journal_appends: int = 0
    journal_replayed: int = 0
    torn_tails: int = 0
    stale_journals: int = 0


@final
class FileBackend:
    """Encrypted ``sessions.json`` and plain ``credential-env-bindings.json`` in ``dataDir``.

    File formats are described in :mod:`agent_identity.storage._envelope`,
    :mod:`agent_identity.storage._journal` and :mod:`agent_identity.storage._bindings`.

    Two ways to persist sessions:

    * **whole file** (``journal=False``): every save that changes a session rewrites
      ``sessions.json`` atomically (:func:`~agent_identity.storage._files.write_atomic`). Its
      cost grows with the number of sessions (~80 ms for 10k on an SSD).
    * **journal** (``journal=True``, what :meth:`from_config` builds): ``sessions.json`` is a
      base snapshot and a save appends only what changed to ``sessions.journal`` (one sealed
      frame, ``fdatasync``); once the journal is as large as the snapshot (and at least
      ``compact_min_bytes``), a save rewrites ``sessions.json`` with everything and removes
      the journal (compaction).

    Either mode loads what the other wrote (a whole-file backend folds a journal it finds into
    ``sessions.json``). Unchanged files are not rewritten. File I/O runs in a worker thread.

    Args:
        data_dir: The data folder; created with mode 0700 if missing.
        key: The decoded ``AGENT_IDENTITY_STORE_KEY``; ``None`` to use (or create)
            ``store.key`` in the data folder.
        now: Wall-clock time in epoch seconds, for pruning (injectable for tests).
        journal: Append changes to ``sessions.journal`` instead of rewriting
            ``sessions.json`` for each save.
        compact_min_bytes: The smallest journal that is compacted.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        key: bytes | None = None,
        now: Callable[[], float] = time.time,
        journal: bool = False,
        compact_min_bytes: int = DEFAULT_COMPACT_MIN_BYTES,
    ) -> None:
        self._dir = data_dir
        self._supplied_key = key
        self._now = now
        self._journaling = journal
        self._compact_min_bytes = compact_min_bytes
        self._key: StoreKey | None = None
        # What each file holds now (the payload before encryption), to skip unchanged writes.
        # Journal mode keeps no copy of the sessions' plaintext (it diffs records instead).
        self._sessions_on_disk: bytes | None = None
        self._bindings_on_disk: bytes | None = None
        # Journal mode: the sessions on disk (snapshot + journal), the snapshot's nonce and
        # size, and the journal appended to (None: no journal on disk).
        self._persisted: dict[str, SessionRecord] = {}
        self._snapshot_nonce: str | None = None
        self._snapshot_size = 0
        self._journal: Journal | None = None
        self._stats = FileBackendStatistics()

    @classmethod
    def from_config(
        cls, config: PluginConfig, env: EnvSettings, *, now: Callable[[], float] = time.time
    ) -> FileBackend:
        """The production backend of a plugin config.

        ``dataDir``, the key from the environment, and the journal (a login costs one
        append, however many sessions are stored).
        """
        return cls(config.data_path(), key=env.store_key, now=now, journal=True)

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
    def journal_path(self) -> Path:
        """The path of ``sessions.journal``."""
        return self._dir / JOURNAL_FILE

    @property
    def journaling(self) -> bool:
        """Whether saves append to the journal (else they rewrite ``sessions.json``)."""
        return self._journaling

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
        writes, replays the journal (cutting off a torn tail, removing a stale journal),
        keeps unreadable files aside (logged as errors), migrates a plaintext
        ``sessions.json`` and drops dead sessions (persisting the result in both cases).

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
        self._key = key = load_store_key(self._dir, self._supplied_key)
        remove_stale_temps(self._dir, (SESSIONS_FILE, BINDINGS_FILE))
        sessions, migrate = self._load_sessions(key, now)
        replayed = self._load_journal(key, now, sessions)
        bindings = self._load_bindings(now)
        self._persisted = sessions.copy() if self._journaling else {}
        snapshot, pruned = Snapshot(sessions=sessions, bindings=bindings).pruned(now)
        self._count(loads=1, pruned=pruned)
        if migrate or (not self._journaling and (pruned or replayed or self._journal)):
            # Rewrite now: the plaintext must not stay on disk, nor dead sessions' tokens;
            # a whole-file backend folds a journal into the file.
            self._write_sessions(key, snapshot.sessions)
        elif pruned:
            self._persist_sessions(key, snapshot.sessions)
        return snapshot

    def _load_sessions(self, key: StoreKey, now: float) -> tuple[dict[str, SessionRecord], bool]:
        path = self.sessions_path
        self._sessions_on_disk = None if self._journaling else encode_sessions(())
        self._snapshot_nonce, self._snapshot_size, self._journal = None, 0, None
        data = read_data_file(path)
        if data is None:
            return {}, False
        try:
            parsed = parse_sessions_file(data, key, now=now)
        except UnreadableFileError as exc:
            self._keep_aside(path, str(exc), now, what="sessions")
            return {}, False
        self._snapshot_nonce, self._snapshot_size = parsed.nonce, len(data)
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
        if not self._journaling:
            self._sessions_on_disk = parsed.plaintext
        return parsed.sessions, False

    def _load_journal(self, key: StoreKey, now: float, sessions: dict[str, SessionRecord]) -> int:
        """Replay ``sessions.journal`` into ``sessions``; returns how many frames it held."""
        path = self.journal_path
        data = read_data_file(path)
        if data is None:
            return 0
        base = self._snapshot_nonce
        try:
            contents = read_journal(data, key, base)
        except UnreadableFileError as exc:
            self._lose_journal(path, str(exc), now, sessions)
            return 0
        if contents.stale:
            if base is None:
                # It extends a sessions.json that is gone or unreadable: not ours to drop.
                reason = "it extends a sessions.json that is missing or could not be read"
                self._lose_journal(path, reason, now, sessions)
                return 0
            remove(path)  # a compaction was cut short: sessions.json holds all of it
            self._count(stale_journals=1)
            logger.info("%s was older than %s and was removed", path, self.sessions_path)
            return 0
        if contents.torn:
            # A write cut short by a crash; it was never acknowledged (fdatasync came after).
            self._count(torn_tails=1)
            logger.warning("%s ended with an interrupted write; it was cut off", path)
            if contents.end:
                truncate(path, contents.end)
            else:
                remove(path)
        if base is not None and contents.end:
            self._journal = Journal(path, key, base, contents)
        self._count(journal_replayed=len(contents.changes))
        return replay(sessions, contents.changes)

    def _lose_journal(
        self, path: Path, reason: str, now: float, sessions: dict[str, SessionRecord]
    ) -> None:
        """Keep an unusable journal aside, and the snapshot with it: start with no sessions.

        The snapshot without its journal could bring back sessions that were logged out.
        """
        self._keep_aside(path, reason, now, what="sessions")
        if self.sessions_path.exists():
            why = f"its journal {path.name} could not be used"
            self._keep_aside(self.sessions_path, why, now, what="sessions")
        sessions.clear()
        self._snapshot_nonce, self._snapshot_size = None, 0

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
        self._persist_sessions(self._key, snapshot.sessions)

    def _persist_sessions(self, key: StoreKey, sessions: Mapping[str, SessionRecord]) -> None:
        """Make ``sessions`` durable: append what changed to the journal, or rewrite."""
        if not self._journaling or self._snapshot_nonce is None:
            self._write_sessions(key, sessions)
            return
        change = diff_sessions(self._persisted, sessions)
        if not change:
            self._count(unchanged_skips=1)
            return
        journal = self._journal
        limit = max(self._compact_min_bytes, self._snapshot_size)
        if journal is not None and journal.size >= limit:
            self._write_sessions(key, sessions)  # compaction: includes this change
            return
        if journal is None:
            journal = self._journal = Journal(self.journal_path, key, self._snapshot_nonce)
        journal.append(change)
        change.apply(self._persisted)
        self._count(journal_appends=1)

    def _write_sessions(self, key: StoreKey, sessions: Mapping[str, SessionRecord]) -> None:
        """Rewrite ``sessions.json`` with all of ``sessions`` and drop the journal."""
        plaintext = encode_sessions(sessions.values())
        if plaintext == self._sessions_on_disk:
            self._count(unchanged_skips=1)
        else:
            data, nonce = seal_with_nonce(plaintext, key)
            write_atomic(self.sessions_path, data)
            self._snapshot_nonce, self._snapshot_size = nonce, len(data)
            self._sessions_on_disk = None if self._journaling else plaintext
            self._count(session_writes=1)
        if self._journal is not None:
            # After the new snapshot: a crash in between leaves a stale journal (removed on
            # load, since it names the previous snapshot), never a lost change.
            remove(self.journal_path)
            self._journal = None
        if self._journaling:
            self._persisted = dict(sessions)

    def _count(self, **increments: int) -> None:
        stats = self._stats
        self._stats = msgspec.structs.replace(
            stats, **{name: getattr(stats, name) + n for name, n in increments.items()}
        )
