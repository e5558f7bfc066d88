"""The one-shot reply slot and the request envelope base.

A :class:`Reply` is how an actor answers a caller. It is deliberately *not* a
channel the actor has to ``await``: setting it is synchronous, idempotent and can
never raise, so a caller that gave up (cancelled, deadline passed) can never take
the actor down with it. A late answer is stored and silently dropped, the way
Erlang drops late ``gen_server`` replies.

The reply also records the caller's deadline (``trio.current_effective_deadline()``
when :meth:`Address.ask` built it), which is how deadlines travel with requests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast, final

import outcome
import trio

__all__ = ["Reply", "Request", "reply_of"]

T = TypeVar("T")


@final
class Reply(Generic[T]):
    """A one-shot slot the actor fills and the caller waits on.

    Example:
        Actors answer with :meth:`set`; they never await anything to reply::

            case Get(reply=reply, key=key):
                reply.set(self._items.get(key))

    Args:
        deadline: The caller's deadline on Trio's clock; :data:`math.inf` for none.
    """

    __slots__ = ("_event", "_outcome", "deadline")

    def __init__(self, *, deadline: float = math.inf) -> None:
        self._event = trio.Event()
        self._outcome: outcome.Maybe[T] | None = None
        #: The caller's deadline; the actor skips the request once it has passed.
        self.deadline = deadline

    def __repr__(self) -> str:
        state = "pending" if self._outcome is None else repr(self._outcome)
        return f"<Reply {state} deadline={self.deadline}>"

    @property
    def done(self) -> bool:
        """Whether the reply has been set or failed (the first answer wins)."""
        return self._outcome is not None

    def set(self, value: T) -> None:
        """Answer with a value. Does nothing if the reply was already answered."""
        if self._outcome is None:
            self._outcome = outcome.Value(value)
            self._event.set()

    def fail(self, error: Exception) -> None:
        """Answer with an error the caller will see raised from :meth:`wait`.

        Use it for infrastructure failures (:class:`ActorStopped`,
        :class:`DeadlineExceeded`); expected domain outcomes are values. Does nothing
        if the reply was already answered.
        """
        if self._outcome is None:
            self._outcome = outcome.Error(error)
            self._event.set()

    async def wait(self) -> T:
        """Wait for the answer and return it, or raise the error it was failed with.

        Always a checkpoint. If the caller is cancelled here, the slot stays valid:
        the actor's later answer is stored and dropped.
        """
        await self._event.wait()
        # Not outcome.unwrap(): that may only run once, and waiting twice is harmless.
        result = self._outcome
        if isinstance(result, outcome.Error):
            raise result.error
        # The event is only ever set together with an outcome, so this is a Value.
        return cast("outcome.Value[T]", result).value


@dataclass(frozen=True, slots=True)
class Request(Generic[T]):
    """Base class of request envelopes: messages that carry a :class:`Reply`.

    The reply is the first field, so a subclass's constructor takes it first and
    :meth:`Address.ask` can build the envelope from the class and the remaining
    arguments, fully typed::

        @dataclass(frozen=True, slots=True)
        class Get(Request[int | None]):
            key: str

        value = await address.ask(Get, "some-key")  # value: int | None

    Envelopes are internal (never serialised). Any message with a ``reply``
    attribute holding a :class:`Reply` is treated as a request, so msgspec Structs
    with a leading ``reply`` field work too.
    """

    reply: Reply[T]

    @property
    def deadline(self) -> float:
        """The caller's deadline on Trio's clock (from the reply)."""
        return self.reply.deadline


def reply_of(message: object) -> Reply[Any] | None:
    """Return the reply slot a message carries, or ``None`` for a plain message."""
    reply = getattr(message, "reply", None)
    return reply if isinstance(reply, Reply) else None
