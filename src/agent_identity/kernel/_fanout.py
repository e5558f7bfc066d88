"""A non-blocking fan-out of events to memory-channel subscribers."""

from __future__ import annotations

import logging
from typing import Generic, TypeVar

import trio

__all__ = ["DEFAULT_EVENT_BUFFER", "EventFanout"]

#: The default buffer of a subscriber's channel.
DEFAULT_EVENT_BUFFER = 64

_logger = logging.getLogger("agent_identity.kernel")

Event = TypeVar("Event")


class EventFanout(Generic[Event]):
    """Fan-out of events to subscribers, never blocking the publisher.

    Each subscriber gets its own bounded memory channel; when it is full the event is
    dropped for that subscriber (counted in :attr:`dropped` and logged), and a closed
    subscriber is removed, so a slow or gone listener cannot stall the publisher.

    Args:
        label: What the events are, for the log line (``"a <label> event subscriber is
            full"``).
        logger: Where that line goes; the kernel's logger by default.

    Attributes:
        dropped: Events a full subscriber missed (lifetime).
    """

    def __init__(self, label: str = "", *, logger: logging.Logger | None = None) -> None:
        self._subscribers: list[trio.MemorySendChannel[Event]] = []
        self._what = f"a {label} event" if label else "an event"
        self._logger = logger if logger is not None else _logger
        self.dropped = 0

    def subscribe(self, buffer: int = DEFAULT_EVENT_BUFFER) -> trio.MemoryReceiveChannel[Event]:
        """A new receive channel that gets every later event; close it to unsubscribe."""
        send, receive = trio.open_memory_channel[Event](buffer)
        self._subscribers.append(send)
        return receive

    def publish(self, event: Event) -> None:
        """Offer the event to every subscriber (sync; drops for full or gone ones)."""
        alive: list[trio.MemorySendChannel[Event]] = []
        for send in self._subscribers:
            try:
                send.send_nowait(event)
            except trio.WouldBlock:
                self.dropped += 1
                self._logger.warning("%s subscriber is full; event dropped", self._what)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                send.close()
                continue
            alive.append(send)
        self._subscribers = alive

    @property
    def subscribers(self) -> int:
        """How many subscribers are attached."""
        return len(self._subscribers)
