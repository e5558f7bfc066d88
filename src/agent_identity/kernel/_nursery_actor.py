"""An actor that runs background tasks in a nursery of its own, beside its mailbox loop."""

from __future__ import annotations

from typing import TypeVar

import trio

from agent_identity.kernel._actor import Actor
from agent_identity.kernel._child import StatusRelay

__all__ = ["NurseryActor"]

Msg = TypeVar("Msg")


class NurseryActor(Actor[Msg]):
    """An :class:`Actor` whose handlers may start tasks that outlive one message.

    Network calls and long flows run in :attr:`_nursery` so the mailbox never waits on them;
    their replies are answered later. The nursery opens before :meth:`on_start` runs and is
    cancelled when the mailbox loop ends (the kernel has answered waiting callers by then).
    """

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve the mailbox with the actor's background tasks beside it.

        Raises:
            RuntimeError: The actor is already running.
        """
        if self.statistics().running:
            raise RuntimeError(f"actor {self.name!r} is already running")

        def ready(_value: object) -> None:
            task_status.started()

        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                await super().run(task_status=StatusRelay(ready))
            finally:
                self._nursery = None
                nursery.cancel_scope.cancel()
