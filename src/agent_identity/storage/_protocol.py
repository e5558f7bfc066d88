"""The backend protocol the session store writes through, and the in-memory backend.

The store actor only ever sees :class:`SessionBackend`: ``load()`` at every (re)start and
``save(snapshot)`` for every (coalesced) write. :class:`MemoryBackend` keeps the last snapshot
in memory, for tests of code that needs a store but no disk; the production backend is
:class:`~agent_identity.storage.FileBackend`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, final

import trio

from agent_identity.storage._records import Snapshot

__all__ = ["MemoryBackend", "SessionBackend"]


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
