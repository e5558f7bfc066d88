"""Follow-up messages for credentials that arrive after the command that asked for them.

A 3LO flow started by ``/identity fetch`` ends later, in the vault, which publishes
:class:`~agent_identity.actors.vault_events.CredentialAdded` with the command's notify
context. The system runs :class:`CredentialFollowups` on the vault's events, beside the
actors (as it runs the login listener), and pushes "✓ Credential for X added." to the chat
the command came from.
"""

from __future__ import annotations

import trio

from agent_identity.actors.vault_events import CredentialAdded, VaultEvent
from agent_identity.notify import Notifier, NotifyContext, SendResult

__all__ = ["CredentialFollowups"]


class CredentialFollowups:
    """Sends "✓ Credential for X added." when a 3LO flow a command started completes.

    The system subscribes it to the vault's events (``vault.events.subscribe()``) and runs
    :meth:`run` beside the actors, as it runs the login listener. Events whose fetch came from
    a tool (empty ``context``) and failed flows are ignored.

    Args:
        notifier: The notifier (never raises).
    """

    def __init__(self, notifier: Notifier) -> None:
        self._notifier = notifier
        self.sent = 0
        self.not_sent = 0
        self._waiters: list[trio.Event] = []

    async def wait_handled(self, count: int) -> None:
        """Wait until ``count`` follow-ups have been sent or skipped (lifetime total)."""
        await trio.lowlevel.checkpoint()
        while self.sent + self.not_sent < count:
            waiter = trio.Event()
            self._waiters.append(waiter)
            await waiter.wait()

    async def handle(self, event: VaultEvent) -> SendResult | None:
        """Send the follow-up of one event; None when the event needs none."""
        if not isinstance(event, CredentialAdded) or not event.context:
            await trio.lowlevel.checkpoint()
            return None
        context = NotifyContext.from_command(event.context)
        result = await self._notifier.credential_added(context, event.provider)
        if result.ok:
            self.sent += 1
        else:
            self.not_sent += 1
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.set()
        return result

    async def run(self, events: trio.MemoryReceiveChannel[VaultEvent]) -> None:
        """Handle every event until the channel is closed (or the task is cancelled)."""
        async with events:
            async for event in events:
                await self.handle(event)
