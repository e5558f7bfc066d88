"""A Feishu Open Platform stand-in: the tenant token exchange and sending a message.

Both under ``/open-apis/``, as on ``https://open.feishu.cn``, so a ``channels.feishu.domain`` of
the sandbox's base URL points agent-identity's notifier here:

* ``POST /open-apis/auth/v3/tenant_access_token/internal`` with ``{"app_id", "app_secret"}``
  answers ``{"code": 0, "msg": "ok", "tenant_access_token": "t-…", "expire": <seconds>}``.
  Like Feishu, a refusal is still HTTP 200: ``10003 invalid param`` (missing fields, or an app
  id that is not ``cli_…``), ``10014 app id not exists`` or ``10014 app secret invalid``. Like
  Feishu, asking again while the current token has at least 30 minutes left returns that same
  token with its remaining ``expire``; otherwise a new one is issued (the old stays valid
  until it expires).
* ``POST /open-apis/im/v1/messages?receive_id_type=…`` with ``Authorization: Bearer <token>``
  and ``{"receive_id", "msg_type": "text", "content": <{"text": …} as a JSON string>}``. The
  token is checked first: missing (or not ``Bearer``) is HTTP 400 ``99991661``, unknown or
  expired HTTP 400 ``99991663``, each with an ``error.log_id``. Then the fields: a missing or
  unknown ``receive_id_type``, or a missing body field, is 400 ``99992402 field validation
  failed``; a ``receive_id`` of the wrong shape (``ou_`` for ``open_id``, ``oc_`` for
  ``chat_id``, ``on_`` for ``union_id``) or a ``content`` that is not ``{"text": "…"}`` JSON is
  400 ``230001``. Only ``msg_type: text`` is implemented. A delivered message is recorded in
  :attr:`FeishuSandbox.sent_messages` and answered with ``data.message_id`` (``om_…``).

Any other path or method under ``/open-apis/`` is a plain-text ``404 page not found``, as the
real gateway answers.

Apps: ``cli_sandbox_app`` / ``sandbox-app-secret`` unless a test changes :attr:`apps`. Run-time
switches: ``token_ttl`` (the ``expire`` of new tokens), ``token_expired`` (one shot: every token
issued so far stops working), ``fail_next_send`` (that many coming sends answer
``send_failure``), ``send_delay`` (seconds each send waits first) and ``clock`` (monotonic
seconds for token lifetimes).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
import trio

from agent_identity.sandbox.asgi import Request, Response, json_response, text_response
from agent_identity.sandbox.secrets import record_secret

__all__ = [
    "DEV_APP_ID",
    "DEV_APP_SECRET",
    "MESSAGES_PATH",
    "PREFIX",
    "TOKEN_PATH",
    "FeishuSandbox",
    "SendFailure",
    "SentMessage",
]

PREFIX: Final = "/open-apis/"
TOKEN_PATH: Final = "/open-apis/auth/v3/tenant_access_token/internal"  # noqa: S105 - a path
MESSAGES_PATH: Final = "/open-apis/im/v1/messages"
DEV_APP_ID: Final = "cli_sandbox_app"
DEV_APP_SECRET: Final = "sandbox-app-secret"  # noqa: S105 - the published dev app's secret
DEFAULT_TOKEN_TTL: Final = 7200
# Feishu hands out the same token again while it has at least this long to live.
_REUSE_ABOVE: Final = 1800
_TENANT_KEY: Final = "sandbox-tenant"
_TROUBLESHOOTER: Final = "https://open.feishu.cn/search?log_id="
_RECEIVE_ID_PREFIXES: Final = {"open_id": "ou_", "chat_id": "oc_", "union_id": "on_"}
_RECEIVE_ID_TYPES: Final = frozenset({"open_id", "chat_id", "user_id", "union_id", "email"})
_APP_ID: Final = re.compile(r"cli_[A-Za-z0-9_]+")
_MSG_MISSING_AUTH: Final = (
    "Missing access token for authorization. Please make a request with token attached."
)
_MSG_INVALID_AUTH: Final = (
    "Invalid access token for authorization. Please make a request with token attached."
)


@dataclass(frozen=True, slots=True)
class SendFailure:
    """What an injected send failure answers.

    Attributes:
        status: The HTTP status.
        code: Feishu's ``code``.
        msg: Feishu's ``msg``.
    """

    status: int = 400
    code: int = 230001
    msg: str = "Your request contains an invalid request parameter, ext=sandbox: injected failure."


@dataclass(frozen=True, slots=True)
class SentMessage:
    """A message the sandbox accepted.

    Attributes:
        app_id: The app whose token sent it.
        receive_id: The ``receive_id``.
        receive_id_type: The ``receive_id_type`` query value.
        text: The decoded ``text`` of the content.
        message_id: The ``om_…`` id answered.
    """

    app_id: str
    receive_id: str
    receive_id_type: str
    text: str
    message_id: str


@dataclass(slots=True)
class _Issued:
    app_id: str
    expires_at: float


class _RefusalError(Exception):
    def __init__(self, status: int, code: int, msg: str, **extra: object) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg, self.extra = status, code, msg, extra


@dataclass
class FeishuSandbox:
    """Serves the two Feishu endpoints and keeps what a test asserts on.

    Attributes:
        apps: App id to app secret accepted by the token endpoint.
        token_ttl: The ``expire`` (seconds) of newly issued tokens.
        token_expired: Set to make every token issued so far invalid (one shot).
        fail_next_send: How many coming sends answer :attr:`send_failure` (after the token and
            field checks pass).
        send_failure: The injected failure.
        send_delay: Seconds each send waits before answering.
        clock: Monotonic seconds for token lifetimes.
        sent_messages: Delivered messages, oldest first.
        token_requests: Requests to the token endpoint (refused ones included).
        send_requests: Requests to the send endpoint (refused ones included).
    """

    apps: dict[str, str] = field(default_factory=lambda: {DEV_APP_ID: DEV_APP_SECRET})
    token_ttl: int = DEFAULT_TOKEN_TTL
    token_expired: bool = False
    fail_next_send: int = 0
    send_failure: SendFailure = field(default_factory=SendFailure)
    send_delay: float = 0.0
    clock: Callable[[], float] = time.monotonic
    sent_messages: list[SentMessage] = field(default_factory=list)
    token_requests: int = 0
    send_requests: int = 0
    _tokens: dict[str, _Issued] = field(default_factory=dict, init=False, repr=False)
    _serial: int = field(default=0, init=False, repr=False)

    def texts_to(self, receive_id: str) -> list[str]:
        """The texts delivered to one ``receive_id``, oldest first."""
        return [m.text for m in self.sent_messages if m.receive_id == receive_id]

    def expire_tokens(self) -> None:
        """Make every token issued so far invalid at once."""
        self._tokens.clear()

    def is_valid_token(self, token: str) -> bool:
        """Whether a tenant token would be accepted now."""
        issued = self._tokens.get(token)
        return issued is not None and self.clock() < issued.expires_at

    async def handle(self, request: Request) -> Response:
        """Answer one request under :data:`PREFIX`."""
        # Every path checkpoints, so a hot client loop cannot starve the other requests.
        await trio.lowlevel.checkpoint()
        if self.token_expired:
            self.token_expired = False
            self.expire_tokens()
        path = request.path.rstrip("/")
        try:
            if path == TOKEN_PATH and request.method == "POST":
                self.token_requests += 1
                return json_response(200, self._exchange(request))
            if path == MESSAGES_PATH and request.method == "POST":
                self.send_requests += 1
                return await self._send(request)
        except _RefusalError as refusal:
            return self._refusal(refusal)
        return text_response(404, "404 page not found")

    def _exchange(self, request: Request) -> dict[str, Any]:
        body = _json_object(request.body) or {}
        app_id, app_secret = body.get("app_id"), body.get("app_secret")
        if not isinstance(app_id, str) or not isinstance(app_secret, str) or not app_secret:
            return {"code": 10003, "msg": "invalid param", "data": {}}
        if not _APP_ID.fullmatch(app_id):
            return {"code": 10003, "msg": "invalid param", "data": {}}
        expected = self.apps.get(app_id)
        if expected is None:
            return {"code": 10014, "msg": "app id not exists", "data": {}}
        record_secret(expected)
        if not secrets.compare_digest(expected, app_secret):
            return {"code": 10014, "msg": "app secret invalid", "data": {}}
        now = self.clock()
        for token, issued in self._tokens.items():
            remaining = int(issued.expires_at - now)
            if issued.app_id == app_id and remaining >= _REUSE_ABOVE:
                return {"code": 0, "msg": "ok", "tenant_access_token": token, "expire": remaining}
        token = f"t-{secrets.token_hex(20)}"
        record_secret(token)
        self._tokens = {t: i for t, i in self._tokens.items() if i.expires_at > now}
        self._tokens[token] = _Issued(app_id, now + self.token_ttl)
        return {"code": 0, "msg": "ok", "tenant_access_token": token, "expire": self.token_ttl}

    async def _send(self, request: Request) -> Response:
        app_id = self._authorize(request)
        receive_id_type = request.query_value("receive_id_type")
        if receive_id_type not in _RECEIVE_ID_TYPES:
            raise _field_violation("receive_id_type", "receive_id_type is required and valid")
        body = _json_object(request.body)
        if body is None:
            raise _RefusalError(400, 99992402, "field validation failed")
        for name in ("receive_id", "msg_type", "content"):
            if not isinstance(body.get(name), str) or not body[name]:
                raise _field_violation(name, f"{name} is required")
        receive_id, content = body["receive_id"], body["content"]
        prefix = _RECEIVE_ID_PREFIXES.get(receive_id_type)
        if (prefix is not None and not receive_id.startswith(prefix)) or (
            receive_id_type == "email" and "@" not in receive_id
        ):
            raise _invalid_parameter("invalid receive_id")
        if body["msg_type"] != "text":
            raise _invalid_parameter("the sandbox implements msg_type text only")
        decoded = _json_object(content.encode())
        if decoded is None or not isinstance(decoded.get("text"), str):
            raise _invalid_parameter("invalid message content")
        # Also the checkpoint of this path when there is no delay.
        await trio.sleep(max(self.send_delay, 0.0))
        if self.fail_next_send > 0:
            self.fail_next_send -= 1
            failure = self.send_failure
            raise _RefusalError(failure.status, failure.code, failure.msg)
        self._serial += 1
        message_id = f"om_sandbox_{self._serial:06d}"
        self.sent_messages.append(
            SentMessage(app_id, receive_id, receive_id_type, decoded["text"], message_id)
        )
        return json_response(200, self._message(message_id, app_id, receive_id_type, body))

    def _authorize(self, request: Request) -> str:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme != "Bearer" or not token:
            raise _RefusalError(400, 99991661, _MSG_MISSING_AUTH)
        issued = self._tokens.get(token)
        if issued is None or self.clock() >= issued.expires_at:
            raise _RefusalError(400, 99991663, _MSG_INVALID_AUTH)
        return issued.app_id

    def _message(
        self, message_id: str, app_id: str, receive_id_type: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        millis = str(int(time.time() * 1000))
        receive_id = body["receive_id"]
        chat_id = receive_id if receive_id_type == "chat_id" else f"oc_sandbox_p2p_{receive_id}"
        return {
            "code": 0,
            "msg": "success",
            "data": {
                "message_id": message_id,
                "root_id": "",
                "parent_id": "",
                "msg_type": body["msg_type"],
                "create_time": millis,
                "update_time": millis,
                "deleted": False,
                "updated": False,
                "chat_id": chat_id,
                "sender": {
                    "id": app_id,
                    "id_type": "app_id",
                    "sender_type": "app",
                    "tenant_key": _TENANT_KEY,
                },
                "body": {"content": body["content"]},
            },
        }

    def _refusal(self, refusal: _RefusalError) -> Response:
        self._serial += 1
        log_id = f"{self._serial:08d}SANDBOX{secrets.token_hex(6).upper()}"
        error: dict[str, Any] = {"log_id": log_id, "troubleshooter": _TROUBLESHOOTER + log_id}
        error.update(refusal.extra)
        return json_response(
            refusal.status, {"code": refusal.code, "msg": refusal.msg, "error": error}
        )


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        decoded = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None
    return decoded if isinstance(decoded, dict) else None


def _field_violation(name: str, description: str) -> _RefusalError:
    violations = [{"field": name, "description": description}]
    return _RefusalError(400, 99992402, "field validation failed", field_violations=violations)


def _invalid_parameter(ext: str) -> _RefusalError:
    return _RefusalError(
        400, 230001, f"Your request contains an invalid request parameter, ext={ext}."
    )
