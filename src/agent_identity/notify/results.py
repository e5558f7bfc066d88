"""What a follow-up send comes back as, and the Feishu sender's counters.

Apart from :mod:`.feishu` so that the :class:`~.notifier.Notifier` facade (built at every
start) does not import the Feishu sender, which only a configured ``channels.feishu`` needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import msgspec

__all__ = ["DEFAULT_TIMEOUT_SECONDS", "FeishuStatistics", "SendResult", "SendStatus"]

DEFAULT_TIMEOUT_SECONDS: Final = 10.0
"""Seconds one Feishu send may take in all (token fetch and retry included)."""


class SendStatus(StrEnum):
    """What became of a follow-up."""

    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class SendResult:
    """The outcome of one follow-up.

    Attributes:
        status: Sent, failed, or skipped (a channel without push, or nothing configured).
        detail: A short human-readable reason; never a secret or token.
        message_id: Feishu's ``om_…`` id of the delivered message.
        code: Feishu's ``code`` when the platform answered one.
    """

    status: SendStatus
    detail: str = ""
    message_id: str | None = None
    code: int | None = None

    @property
    def ok(self) -> bool:
        """Whether the message was delivered."""
        return self.status is SendStatus.SENT


class FeishuStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of one notifier.

    Attributes:
        sends: ``send_text`` calls.
        sent: Messages Feishu accepted.
        failures: Sends that ended in a failure.
        token_fetches: Token requests made (refused ones included).
        token_invalidations: Cached tokens dropped because the send API rejected them.
        cached_tokens: Tokens in the cache now.
    """

    sends: int
    sent: int
    failures: int
    token_fetches: int
    token_invalidations: int
    cached_tokens: int
