"""Who sent the last message of a host session, remembered for the hooks that are not told.

Before host 2026.8.1 a tool-hook context carries no sender (host contract 2.6), so the
effective session key of a tool call cannot be derived from the call alone. ``before_dispatch``
sees every inbound message with its sender; it records ``sessionKey → sender`` here and the
later hooks, commands and tools of that host session look it up.

The directory is bounded (least recently used entries are dropped first) so a gateway with
many short conversations cannot grow it without limit; a dropped entry only means a tool
call falls back to the host key, which is the conservative choice (the shared host session,
never another user's).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["DEFAULT_SENDER_CAPACITY", "Sender", "SenderDirectory"]

#: Host sessions remembered at once.
DEFAULT_SENDER_CAPACITY = 100_000


@dataclass(frozen=True, slots=True)
class Sender:
    """The sender of a host session's latest message.

    Attributes:
        sender_id: The channel-scoped sender id.
        channel: The lower-case channel id (``telegram``, ``feishu``, ``webchat`` …).
    """

    sender_id: str
    channel: str | None = None


class SenderDirectory:
    """A bounded LRU map of host session key → :class:`Sender`.

    Args:
        capacity: Entries kept; the least recently used are dropped beyond it.
    """

    def __init__(self, capacity: int = DEFAULT_SENDER_CAPACITY) -> None:
        if capacity < 1:
            msg = f"capacity must be at least 1, got {capacity}"
            raise ValueError(msg)
        self._capacity = capacity
        self._entries: OrderedDict[str, Sender] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def record(self, session_key: str, sender: Sender) -> None:
        """Remember ``sender`` as the sender of ``session_key`` (most recent wins)."""
        self._entries[session_key] = sender
        self._entries.move_to_end(session_key)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def lookup(self, session_key: str) -> Sender | None:
        """The remembered sender of ``session_key``, or None."""
        sender = self._entries.get(session_key)
        if sender is not None:
            self._entries.move_to_end(session_key)
        return sender

    def forget(self, session_key: str) -> bool:
        """Drop ``session_key``; True when it was known."""
        return self._entries.pop(session_key, None) is not None
