"""Durable storage of the session store: records, snapshots and backends.

The session store actor (:mod:`agent_identity.actors.session_store`) owns a
:class:`SessionBackend` and is its only user. :class:`FileBackend` keeps, in ``dataDir``
(mode 0700):

* ``sessions.json``: the sessions, encrypted with AES-256-GCM (an authenticated header with
  format version, algorithm, key id and nonce; a fresh random nonce per write). Plaintext
  files of older versions are migrated on first load.
* ``sessions.journal`` (production, ``FileBackend.from_config``): the changes since
  ``sessions.json`` was written, one AES-256-GCM frame per save, appended and
  ``fdatasync``-ed; folded into ``sessions.json`` once it is as large (compaction). A login
  costs one append, not a rewrite of every session.
* ``credential-env-bindings.json``: ``{sessionKey: {provider: envVar}}`` as plain JSON.
* ``store.key``: 32 random bytes, mode 0600, created on first run, unless the key comes from
  ``AGENT_IDENTITY_STORE_KEY``.

Every write is atomic (temp file, ``fsync``, rename, ``fsync`` of the folder; for the journal,
a frame cut short by a crash is cut off on load: it was never acknowledged). A file that
cannot be read is renamed to ``<name>.corrupt-<UTC time>`` and reported as an error, never
deleted. Dead sessions (expired, and without a refresh token that may still renew them:
:meth:`SessionRecord.prunable`) are dropped on load and on save. Blocking I/O runs in worker
threads.
"""

from agent_identity.storage._backend import (
    DEFAULT_COMPACT_MIN_BYTES,
    SESSIONS_FILE,
    FileBackend,
    FileBackendStatistics,
)
from agent_identity.storage._bindings import BINDINGS_FILE
from agent_identity.storage._errors import StorageError, StoreKeyError, UnsafePermissionsError
from agent_identity.storage._journal import JOURNAL_FILE
from agent_identity.storage._keys import KEY_FILE, StoreKey
from agent_identity.storage._protocol import MemoryBackend, SessionBackend
from agent_identity.storage._records import (
    RENEWAL_WINDOW_SECONDS,
    BindingMap,
    SessionRecord,
    SessionView,
    Snapshot,
)

__all__ = [
    "BINDINGS_FILE",
    "DEFAULT_COMPACT_MIN_BYTES",
    "JOURNAL_FILE",
    "KEY_FILE",
    "RENEWAL_WINDOW_SECONDS",
    "SESSIONS_FILE",
    "BindingMap",
    "FileBackend",
    "FileBackendStatistics",
    "MemoryBackend",
    "SessionBackend",
    "SessionRecord",
    "SessionView",
    "Snapshot",
    "StorageError",
    "StoreKey",
    "StoreKeyError",
    "UnsafePermissionsError",
]
