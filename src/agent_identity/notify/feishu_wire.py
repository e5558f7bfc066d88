"""The two Feishu / Lark Open Platform calls a follow-up needs, as bytes and Structs.

* ``POST {base}/open-apis/auth/v3/tenant_access_token/internal`` with ``{"app_id",
  "app_secret"}`` answers ``{"code": 0, "msg", "tenant_access_token": "t-...", "expire":
  <seconds>}``. A refused exchange is still HTTP 200 with a non-zero ``code`` (``10003``
  invalid param, ``10014`` app secret invalid), so only ``code`` tells.
* ``POST {base}/open-apis/im/v1/messages?receive_id_type=open_id|chat_id|...`` with
  ``Authorization: Bearer <tenant token>`` and ``{"receive_id", "msg_type": "text",
  "content": "<JSON text>"}`` — ``content`` is a JSON *string* such as ``{"text":"hi"}``
  encoded once more, not an object — answers ``{"code": 0, "msg", "data": {"message_id":
  "om_...", ...}}``. A missing token is HTTP 400 ``99991661``, an invalid or expired one
  HTTP 400 ``99991663``; request errors are ``2300xx`` (``230001`` invalid parameter, e.g.
  ``ext=invalid receive_id``; ``230002`` the bot is not in the chat).

The base URL follows OpenClaw's Feishu extension (``client.ts`` ``resolveDomain``): ``feishu``
or unset is ``https://open.feishu.cn``, ``lark`` is ``https://open.larksuite.com``, anything
else is a private deployment's URL (trailing slashes dropped).
"""

from __future__ import annotations

from typing import Final, Literal
from urllib.parse import urlsplit

import msgspec

__all__ = [
    "ACCESS_TOKEN_INVALID",
    "APP_ACCESS_TOKEN_INVALID",
    "APP_SECRET_INVALID",
    "BOT_NOT_IN_CHAT",
    "FEISHU_BASE_URL",
    "FIELD_VALIDATION_FAILED",
    "INVALID_PARAM",
    "INVALID_REQUEST_PARAMETER",
    "LARK_BASE_URL",
    "MESSAGES_PATH",
    "MISSING_ACCESS_TOKEN",
    "OK",
    "RETRY_WITH_NEW_TOKEN",
    "TENANT_ACCESS_TOKEN_INVALID",
    "TOKEN_PATH",
    "ReceiveIdType",
    "SendAnswer",
    "SendData",
    "TokenAnswer",
    "resolve_base_url",
    "send_body",
    "token_body",
]

TOKEN_PATH: Final = "/open-apis/auth/v3/tenant_access_token/internal"  # noqa: S105 - a path
MESSAGES_PATH: Final = "/open-apis/im/v1/messages"
FEISHU_BASE_URL: Final = "https://open.feishu.cn"
LARK_BASE_URL: Final = "https://open.larksuite.com"

ReceiveIdType = Literal["open_id", "chat_id", "user_id", "union_id", "email"]
"""The ``receive_id_type`` query values the send API accepts."""

OK: Final = 0
INVALID_PARAM: Final = 10003
APP_SECRET_INVALID: Final = 10014
MISSING_ACCESS_TOKEN: Final = 99991661
TENANT_ACCESS_TOKEN_INVALID: Final = 99991663
APP_ACCESS_TOKEN_INVALID: Final = 99991664
ACCESS_TOKEN_INVALID: Final = 99991671
FIELD_VALIDATION_FAILED: Final = 99992402
INVALID_REQUEST_PARAMETER: Final = 230001
BOT_NOT_IN_CHAT: Final = 230002

RETRY_WITH_NEW_TOKEN: Final = frozenset(
    {TENANT_ACCESS_TOKEN_INVALID, APP_ACCESS_TOKEN_INVALID, ACCESS_TOKEN_INVALID}
)
"""Codes after which a fresh token and one more try may succeed (the official SDKs' set)."""


class TokenAnswer(msgspec.Struct, frozen=True):
    """The token endpoint's answer (unknown keys ignored)."""

    code: int
    msg: str = ""
    tenant_access_token: str | None = None
    expire: int | None = None


class SendData(msgspec.Struct, frozen=True):
    """The part of a sent message's ``data`` the notifier reads."""

    message_id: str | None = None


class SendAnswer(msgspec.Struct, frozen=True):
    """The send endpoint's answer (unknown keys, ``error`` included, ignored)."""

    code: int
    msg: str = ""
    data: SendData | None = None


def resolve_base_url(domain: str | None) -> str | None:
    """The Open Platform base URL for a configured ``domain``.

    Args:
        domain: ``feishu``, ``lark``, a custom ``http(s)://`` base URL, or ``None``.

    Returns:
        The base URL without a trailing slash, or ``None`` when ``domain`` is neither a known
        name nor an http(s) URL with a host.
    """
    name = (domain or "feishu").strip()
    if name.lower() == "feishu":
        return FEISHU_BASE_URL
    if name.lower() == "lark":
        return LARK_BASE_URL
    parts = urlsplit(name)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        return None
    return name.rstrip("/")


def token_body(app_id: str, app_secret: str) -> bytes:
    """The JSON body of a tenant token request."""
    return msgspec.json.encode({"app_id": app_id, "app_secret": app_secret})


def send_body(receive_id: str, text: str) -> bytes:
    """The JSON body of a text message: ``content`` is itself JSON, sent as a string."""
    content = msgspec.json.encode({"text": text}).decode()
    return msgspec.json.encode({"receive_id": receive_id, "msg_type": "text", "content": content})
