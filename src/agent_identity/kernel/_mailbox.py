"""Mailboxes and addresses: how messages reach an actor, across restarts.

An actor's :class:`Mailbox` is created once, with the actor, and never replaced.
What it holds changes: each :meth:`Actor.run` opens a *fresh* bounded memory
channel in it, and the end of the run closes and drains that channel. An
:class:`Address` holds the mailbox, not a channel, and looks up the current send
end on every call. So an address handed out when the tree was built keeps working
after the actor is restarted, and a message can never land in a dead run's buffer:

* while the actor runs, sends go to the current channel (and block while it is full);
* between runs (crashed, stopped, not yet started), every send raises
  :class:`ActorStopped` at once. The kernel does not buffer for a restart that may
  never come; callers decide whether to retry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Concatenate, Generic, ParamSpec, TypeVar, final

import trio

from agent_identity.kernel._errors import ActorStopped, MailboxFull
from agent_identity.kernel._reply import Reply

__all__ = ["Address", "Mailbox"]

Msg = TypeVar("Msg")
T = TypeVar("T")
P = ParamSpec("P")


@final
class Mailbox(Generic[Msg]):
    """The stable home of an actor's message channel; one per actor, for its lifetime.

    Only the owning actor opens and closes it; everybody else uses an
    :class:`Address`. See the module docstring for the restart behaviour.

    Args:
        name: The owner's name, used in error messages.
    """

    __slots__ = ("_capacity", "_peak", "_receive", "_send", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._send: trio.MemorySendChannel[Msg] | None = None
        self._receive: trio.MemoryReceiveChannel[Msg] | None = None
        self._capacity = 0
        self._peak = 0

    @property
    def capacity(self) -> int:
        """The buffer size of the current (or last) channel."""
        return self._capacity

    @property
    def peak_depth(self) -> int:
        """The most messages ever seen queued at once, over all runs."""
        return self._peak

    @property
    def depth(self) -> int:
        """The number of messages queued right now (0 when closed)."""
        if self._send is None or self._receive is None:
            return 0
        return self._receive.statistics().current_buffer_used

    @property
    def senders_waiting(self) -> int:
        """The number of tasks blocked in :meth:`Address.tell` on a full mailbox."""
        if self._receive is None:
            return 0
        return self._receive.statistics().tasks_waiting_send

    @property
    def sender(self) -> trio.MemorySendChannel[Msg] | None:
        """The current send end, or ``None`` between runs."""
        return self._send

    def open(self, capacity: int) -> trio.MemoryReceiveChannel[Msg]:
        """Give a new run a fresh channel and return its receive end.

        Raises:
            RuntimeError: A run already owns the mailbox; an actor never runs twice
                at once.
        """
        if self._receive is not None:
            raise RuntimeError(f"actor {self.name!r} is already running")
        self._send, self._receive = trio.open_memory_channel[Msg](capacity)
        self._capacity = capacity
        return self._receive

    def close_intake(self) -> None:
        """Refuse new messages; the ones already queued are still delivered.

        Closing the only send end ends the actor's ``async for`` once the buffer is
        empty, which is the graceful stop (Trio's "closing the channel is the
        shutdown signal").
        """
        if self._send is not None:
            self._send.close()

    def close(self) -> list[Msg]:
        """Close the channel and return every message that was still undelivered.

        This includes the messages of senders blocked on a full buffer:
        ``receive_nowait`` moves a blocked sender's message into the buffer and lets
        that sender return. The drain comes *before* the close because closing the
        last receive end makes Trio discard the buffer; the two happen with no
        checkpoint in between, so nothing can be sent after the drain.
        """
        receive, send = self._receive, self._send
        self._receive = self._send = None
        if receive is None:
            return []
        undelivered: list[Msg] = []
        try:
            while True:
                undelivered.append(receive.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel):
            pass
        receive.close()
        if send is not None:
            send.close()
        return undelivered

    def note_depth(self) -> None:
        """Record the current depth in the peak (called after each send)."""
        self._peak = max(self._peak, self.depth)


@final
class Address(Generic[Msg]):
    """A typed handle for sending messages to one actor; survives its restarts.

    Domain actors wrap it in typed helper methods so callers never see envelopes::

        @dataclass(frozen=True, slots=True)
        class Get(Request[int | None]):
            key: str

        @dataclass(frozen=True, slots=True)
        class Put:
            key: str
            value: int

        CounterMsg = Get | Put

        class CounterClient:
            def __init__(self, address: Address[CounterMsg]) -> None:
                self._address = address

            async def get(self, key: str) -> int | None:
                return await self._address.ask(Get, key)

            async def put(self, key: str, value: int) -> None:
                await self._address.tell(Put(key, value))

    Args:
        mailbox: The actor's mailbox (use :attr:`Actor.address` instead).
    """

    __slots__ = ("_mailbox",)

    def __init__(self, mailbox: Mailbox[Msg]) -> None:
        self._mailbox = mailbox

    def __repr__(self) -> str:
        return f"<Address of {self._mailbox.name!r}>"

    @property
    def name(self) -> str:
        """The name of the actor this address points to."""
        return self._mailbox.name

    async def tell(self, message: Msg) -> None:
        """Send a message, waiting while the mailbox is full (backpressure).

        Returning means the message was queued, not handled: if the actor stops
        before handling it, a request learns that through :class:`ActorStopped`
        on its reply, a plain message is dropped.

        Raises:
            ActorStopped: The actor is not running, or stopped while we waited.
        """
        send = self._mailbox.sender
        if send is None:
            await trio.lowlevel.checkpoint()
            raise ActorStopped(self._mailbox.name)
        try:
            await send.send(message)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ActorStopped(self._mailbox.name) from exc
        self._mailbox.note_depth()

    def try_tell(self, message: Msg) -> None:
        """Send a message only if the mailbox has room right now.

        For notifications that must never block the sender, e.g. against the
        direction of the dependency tree.

        Raises:
            MailboxFull: The mailbox is full; the message was not sent.
            ActorStopped: The actor is not running.
        """
        send = self._mailbox.sender
        if send is None:
            raise ActorStopped(self._mailbox.name)
        try:
            send.send_nowait(message)
        except trio.WouldBlock:
            raise MailboxFull(self._mailbox.name, self._mailbox.capacity) from None
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ActorStopped(self._mailbox.name) from exc
        self._mailbox.note_depth()

    async def ask(
        self,
        make: Callable[Concatenate[Reply[T], P], Msg],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Send a request and wait for its answer.

        Builds a :class:`Reply` stamped with the caller's deadline
        (:func:`trio.current_effective_deadline`), builds the envelope with
        ``make(reply, *args, **kwargs)`` (usually a :class:`Request` subclass),
        sends it with backpressure and waits for the answer. There is no timeout
        parameter: wrap the call in :func:`trio.move_on_after` or
        :func:`trio.fail_after`, and the deadline travels with the request.

        If the caller is cancelled while waiting, the actor may still apply the
        request; its late answer is dropped. Treat that outcome as unknown.

        Returns:
            The value the actor answered with.

        Raises:
            ActorStopped: The actor was not running, or stopped before answering.
            DeadlineExceeded: The actor skipped the request because the deadline
                had passed, or cut its handling short at the deadline.
        """
        reply: Reply[T] = Reply(deadline=trio.current_effective_deadline())
        await self.tell(make(reply, *args, **kwargs))
        return await reply.wait()
