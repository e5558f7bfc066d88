"""``Notifier``: deliver a follow-up to wherever ``/identity`` was run from, if it can be pushed.

The command layer remembers a :class:`NotifyContext` (the command context's ``channel``,
``senderId``, ``to`` and ``accountId``) when it starts something that finishes later — a login,
an OAuth credential fetch — and hands it back here with the text.

* **Feishu** (``channel == "feishu"``): sent with :class:`~.feishu.FeishuNotifier` to ``to``
  (``user:ou_…`` or ``chat:oc_…``), else to the sender's open id (``ou_…``).
* **WebChat / TUI: no push.** The host offers a plugin no way to push to them (``webchat`` is not
  a configurable outbound channel), so the follow-up is skipped; the user checks with
  ``/identity status``.
* **Any other channel**: skipped the same way; agent-identity only talks to Feishu itself.

Like the notifier below it, :meth:`Notifier.notify` never raises: a follow-up is never fatal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import httpx
import msgspec
import trio

from agent_identity.config import FeishuChannel
from agent_identity.notify.messages import credential_added_text, login_success_text
from agent_identity.notify.results import (
    DEFAULT_TIMEOUT_SECONDS,
    FeishuStatistics,
    SendResult,
    SendStatus,
)

if TYPE_CHECKING:
    from agent_identity.notify.feishu import FeishuNotifier

__all__ = ["FEISHU", "NO_PUSH_CHANNELS", "Notifier", "NotifierStatistics", "NotifyContext"]

FEISHU: Final = "feishu"
NO_PUSH_CHANNELS: Final = frozenset({"webchat", "tui"})
"""Channels the host gives plugins no push API for."""


@dataclass(frozen=True, slots=True)
class NotifyContext:
    """Where a command came from, as far as a later follow-up needs it.

    Attributes:
        channel: The host's lower-case surface name (``feishu``, ``webchat``, ``tui``, ...).
        sender_id: The sender's id on that channel (for Feishu an open id, ``ou_…``).
        to: The channel-scoped route the command came in on (``user:ou_…``, ``chat:oc_…``).
        account_id: The channel account the message arrived on (``None``: the default).
    """

    channel: str | None
    sender_id: str | None = None
    to: str | None = None
    account_id: str | None = None

    @classmethod
    def from_command(cls, context: Mapping[str, Any]) -> NotifyContext:
        """Pick the fields out of a host command context (camelCase keys).

        Args:
            context: The ``/identity`` handler's context (``channel``, ``senderId``, ``to``,
                ``accountId``); missing or non-string values become ``None``.

        Returns:
            The context to remember.
        """

        def text(key: str) -> str | None:
            value = context.get(key)
            return value if isinstance(value, str) and value.strip() else None

        return cls(text("channel"), text("senderId"), text("to"), text("accountId"))

    def to_context(self) -> dict[str, str]:
        """The reverse of :meth:`from_command`: the set fields as camelCase strings."""
        fields = {
            "channel": self.channel,
            "senderId": self.sender_id,
            "to": self.to,
            "accountId": self.account_id,
        }
        return {key: value for key, value in fields.items() if value}


class NotifierStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of the facade.

    Attributes:
        skipped: Follow-ups not sent because their channel has no push (or no Feishu config).
        feishu: The Feishu notifier's counters, when one is configured.
    """

    skipped: int
    feishu: FeishuStatistics | None


class Notifier:
    """Routes follow-ups by the channel the command came from.

    Args:
        feishu: The Feishu sender; ``None`` when ``channels.feishu`` has no credentials, in
            which case Feishu follow-ups are skipped too.
    """

    def __init__(self, feishu: FeishuNotifier | None = None) -> None:
        self._feishu = feishu
        self._skipped = 0

    @classmethod
    def for_channel(
        cls,
        http: httpx.AsyncClient,
        channel: FeishuChannel | None,
        *,
        clock: Callable[[], float] = trio.current_time,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> Notifier:
        """A notifier for the loaded ``channels.feishu`` (or its absence).

        Args:
            http: The shared HTTP client.
            channel: ``channels.feishu``, or ``None`` when the host config has none.
            clock: Monotonic seconds for token lifetimes.
            timeout: Seconds one Feishu send may take in all.

        Returns:
            The notifier.
        """
        if channel is None:
            return cls(None)
        # Imported only with a Feishu config (import time of serve).
        from agent_identity.notify.feishu import FeishuNotifier  # noqa: PLC0415

        return cls(FeishuNotifier(http, channel, clock=clock, timeout=timeout))

    def statistics(self) -> NotifierStatistics:
        """A snapshot of the counters."""
        feishu = self._feishu.statistics() if self._feishu is not None else None
        return NotifierStatistics(skipped=self._skipped, feishu=feishu)

    def can_push(self, context: NotifyContext | None) -> bool:
        """Whether a follow-up to ``context`` would be sent (not skipped) by :meth:`notify`."""
        if context is None or (context.channel or "").strip().lower() != FEISHU:
            return False
        return self._feishu is not None and (context.to or context.sender_id) is not None

    async def notify(self, context: NotifyContext, text: str) -> SendResult:
        """Deliver ``text`` to where the command came from, when that channel can be pushed to.

        Args:
            context: The remembered command context.
            text: The follow-up message.

        Returns:
            The outcome; ``SKIPPED`` for channels without push. Never raises.
        """
        channel = (context.channel or "").strip().lower()
        if channel != FEISHU:
            reason = (
                "WebChat / TUI: no push"
                if channel in NO_PUSH_CHANNELS
                else f"no push to channel {channel or '(unknown)'!r}"
            )
            return await self._skip(reason)
        if self._feishu is None:
            return await self._skip("channels.feishu is not configured")
        target = context.to or context.sender_id
        if target is None:
            return await self._skip("the Feishu context has neither a route nor a sender")
        return await self._feishu.send_text(target, text, account_id=context.account_id)

    async def login_succeeded(self, context: NotifyContext, sub: str | None) -> SendResult:
        """Send the login-success follow-up (``✓ Logged in as <sub>.``)."""
        return await self.notify(context, login_success_text(sub))

    async def credential_added(self, context: NotifyContext, provider: str) -> SendResult:
        """Send the credential follow-up (``✓ Credential for <provider> added.``)."""
        return await self.notify(context, credential_added_text(provider))

    async def _skip(self, reason: str) -> SendResult:
        # A checkpoint keeps notify() a real await on every path, as Trio code expects.
        await trio.lowlevel.checkpoint()
        self._skipped += 1
        return SendResult(SendStatus.SKIPPED, reason)
