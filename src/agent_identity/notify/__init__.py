"""Follow-up notifications: login success and credential messages pushed back to the chat.

Only Feishu can be pushed to, with the app credentials of ``channels.feishu``
(:class:`FeishuNotifier`); WebChat and TUI have no push, so :class:`Notifier` skips them. A
follow-up is never fatal: every outcome is a :class:`SendResult`, never an exception.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from agent_identity.notify.messages import credential_added_text, login_success_text
from agent_identity.notify.notifier import (
    NO_PUSH_CHANNELS,
    Notifier,
    NotifierStatistics,
    NotifyContext,
)
from agent_identity.notify.results import (
    DEFAULT_TIMEOUT_SECONDS,
    FeishuStatistics,
    SendResult,
    SendStatus,
)

if TYPE_CHECKING:
    from agent_identity.notify.feishu import FeishuNotifier
    from agent_identity.notify.feishu_wire import resolve_base_url
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

# The Feishu sender is imported on first use: only a configured channels.feishu needs it
# (import time of serve).
_FEISHU = {
    "FeishuNotifier": "agent_identity.notify.feishu",
    "resolve_base_url": "agent_identity.notify.feishu_wire",
    "FeishuTarget": "agent_identity.notify.targets",
    "parse_feishu_target": "agent_identity.notify.targets",
}


def __getattr__(name: str) -> Any:  # noqa: ANN401 - module __getattr__ returns any attribute
    if name in _FEISHU:
        return getattr(importlib.import_module(_FEISHU[name]), name)
    msg = f"module 'agent_identity.notify' has no attribute {name!r}"
    raise AttributeError(msg)
