"""Feishu target strings as the host hands them over, turned into ``(receive_id, type)``.

The same rules as OpenClaw's Feishu extension (``targets.ts``): any number of leading
``feishu:`` prefixes are dropped, then one ``user:``, ``chat:`` or ``open_id:`` label; the id's
own prefix then decides the ``receive_id_type`` — ``oc_`` is a chat, ``ou_`` an open id, and any
other plain id (letters, digits, ``_``, ``-``) a tenant ``user_id``. So ``user:ou_1``,
``ou_1``, ``feishu:ou_1`` and ``feishu:user:ou_1`` all reach the same person, and ``chat:oc_1``
or ``oc_1`` the same group chat.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from agent_identity.notify.feishu_wire import ReceiveIdType

__all__ = ["FeishuTarget", "parse_feishu_target"]

_PROVIDER_PREFIX: Final = "feishu:"
_LABELS: Final = ("chat:", "user:", "open_id:")
_CHAT_PREFIX: Final = "oc_"
_OPEN_ID_PREFIX: Final = "ou_"
_USER_ID: Final = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class FeishuTarget:
    """Where a message goes.

    Attributes:
        receive_id: The id sent as ``receive_id``.
        receive_id_type: The matching ``receive_id_type`` query value.
    """

    receive_id: str
    receive_id_type: ReceiveIdType


def parse_feishu_target(raw: str) -> FeishuTarget | None:
    """Parse a target string.

    Args:
        raw: ``user:ou_…``, ``chat:oc_…``, bare ``ou_…`` / ``oc_…``, optionally behind one or
            more ``feishu:`` prefixes, or a plain tenant user id.

    Returns:
        The target, or ``None`` when nothing usable is left.
    """
    remaining = raw.strip()
    while remaining.lower().startswith(_PROVIDER_PREFIX):
        remaining = remaining[len(_PROVIDER_PREFIX) :].strip()
    for label in _LABELS:
        if remaining.lower().startswith(label):
            remaining = remaining[len(label) :].strip()
            break
    if remaining.startswith(_CHAT_PREFIX):
        return FeishuTarget(remaining, "chat_id")
    if remaining.startswith(_OPEN_ID_PREFIX):
        return FeishuTarget(remaining, "open_id")
    if _USER_ID.fullmatch(remaining):
        return FeishuTarget(remaining, "user_id")
    return None
