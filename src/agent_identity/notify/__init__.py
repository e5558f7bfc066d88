"""Follow-up notifications: login success and credential messages pushed back to the chat.

Only Feishu can be pushed to, with the app credentials of ``channels.feishu``
(:class:`FeishuNotifier`); WebChat and TUI have no push, so :class:`Notifier` skips them. A
follow-up is never fatal: every outcome is a :class:`SendResult`, never an exception.
"""

from __future__ import annotations

from agent_identity.notify.feishu import (
    DEFAULT_TIMEOUT_SECONDS,
    FeishuNotifier,
    FeishuStatistics,
    SendResult,
    SendStatus,
)
from agent_identity.notify.feishu_wire import resolve_base_url
from agent_identity.notify.messages import credential_added_text, login_success_text
from agent_identity.notify.notifier import (
    NO_PUSH_CHANNELS,
    Notifier,
    NotifierStatistics,
    NotifyContext,
)
from agent_identity.notify.targets import FeishuTarget, parse_feishu_target

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "NO_PUSH_CHANNELS",
    "FeishuNotifier",
    "FeishuStatistics",
    "FeishuTarget",
    "Notifier",
    "NotifierStatistics",
    "NotifyContext",
    "SendResult",
    "SendStatus",
    "credential_added_text",
    "login_success_text",
    "parse_feishu_target",
    "resolve_base_url",
]
