"""A ticker: a sibling child that sends an actor a message every ``interval`` seconds."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Generic, TypeVar

import trio

from agent_identity.kernel._errors import ActorStopped, MailboxFull
from agent_identity.kernel._mailbox import Address
from agent_identity.kernel._spec import ChildSpec

__all__ = ["Ticker"]

Msg = TypeVar("Msg")


class Ticker(Generic[Msg]):
    """Sends ``make_message()`` to an actor every ``interval`` seconds; a :class:`Service`.

    Ticks follow Trio's clock on a fixed schedule (a late tick does not shift the next
    one). A full or stopped mailbox skips that tick with ``try_tell``; the ticker never
    blocks on the actor and never fails because of it.

    Args:
        address: The actor to tick.
        make_message: Builds the message of one tick.
        interval: Seconds between ticks, > 0.
        name: The default id of :meth:`child_spec`.

    Attributes:
        ticks: How many ticks were due (sent or skipped).
    """

    def __init__(
        self,
        address: Address[Msg],
        make_message: Callable[[], Msg],
        *,
        interval: float,
        name: str = "ticker",
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be > 0, got {interval}")
        self._address = address
        self._make_message = make_message
        self.interval = interval
        self.name = name
        self._stop = trio.Event()
        self.ticks = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Tick until :meth:`request_stop`."""
        self._stop = trio.Event()
        task_status.started()
        deadline = trio.current_time() + self.interval
        while True:
            with trio.move_on_at(deadline):
                await self._stop.wait()
                return
            deadline += self.interval
            self.ticks += 1
            with contextlib.suppress(MailboxFull, ActorStopped):
                self._address.try_tell(self._make_message())

    def request_stop(self) -> None:
        """Stop ticking (sync, idempotent)."""
        self._stop.set()

    def child_spec(self, id: str | None = None) -> ChildSpec:  # noqa: A002 - OTP name
        """A spec that runs the ticker under a supervisor (id: :attr:`name` by default)."""
        return ChildSpec.for_service(self.name if id is None else id, self, shutdown=1.0)
