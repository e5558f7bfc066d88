"""The decision cache of :class:`~agent_identity.authz.permission.PermissionChecker`.

Keyed by *(session key, user, delegation chain, resource type, resource id, action)*, so
two users, or one session that changed user, never share an entry. Entries live for a TTL on
the checker's clock and the table is bounded: when full, expired entries are swept and then
the oldest go first. Plain synchronous code: the checker runs in its callers' tasks and
touches the table only between checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

__all__ = ["DecisionCache", "DecisionKey"]

#: session key (or ""), sub, actors, resource type, resource id, action
DecisionKey = tuple[str, str, tuple[str, ...], str, str, str]

_D = TypeVar("_D")

_SESSION: Final = 0
_SUB: Final = 1


@dataclass(slots=True)
class _Entry(Generic[_D]):
    decision: _D
    expires_at: float


class DecisionCache(Generic[_D]):
    """Decisions by key, each until its expiry; at most ``max_entries`` of them.

    Args:
        max_entries: Decisions kept at most (at least 1).
        clock: The clock expiries are compared with.
    """

    def __init__(self, max_entries: int, clock: Callable[[], float]) -> None:
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[DecisionKey, _Entry[_D]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: DecisionKey) -> _D | None:
        """The unexpired decision stored under ``key`` (an expired one is dropped)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at > self._clock():
            return entry.decision
        del self._entries[key]
        return None

    def store(self, key: DecisionKey, decision: _D, ttl: float) -> None:
        """Keep ``decision`` for ``ttl`` seconds, evicting what the bound requires."""
        self._entries.pop(key, None)  # re-inserted last: the oldest stays first
        if len(self._entries) >= self._max_entries:
            now = self._clock()
            for stale in [k for k, e in self._entries.items() if e.expires_at <= now]:
                del self._entries[stale]
            while len(self._entries) >= self._max_entries:
                del self._entries[next(iter(self._entries))]
        self._entries[key] = _Entry(decision, self._clock() + ttl)

    def invalidate(self, *, session_key: str | None, sub: str | None) -> int:
        """Forget the decisions of a session key and/or a user; return how many."""
        doomed = [
            key
            for key in self._entries
            if (session_key is None or key[_SESSION] == session_key)
            and (sub is None or key[_SUB] == sub)
        ]
        for key in doomed:
            del self._entries[key]
        return len(doomed)

    def clear(self) -> int:
        """Forget every decision; return how many."""
        count = len(self._entries)
        self._entries.clear()
        return count
