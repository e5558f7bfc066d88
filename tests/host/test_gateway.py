"""``identity.session.put`` / ``.get``: a WebChat client stores and reads its user's session.

Id tokens are real RS256 tokens signed by the sandbox user pool for the configured client;
the handlers are called the way a host calls them (``opts`` with ``params``, ``client``,
``respond``), against a running system.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest

from agent_identity.actors.approval_types import ApprovalStatus
from agent_identity.actors.tip_messages import TipInfo
from agent_identity.host.gateway import METHOD_SCOPE, GatewayResponse, IdentityGatewayMethods

from .conftest import POOL, Stack, StackOpener

PUT = "identity.session.put"
GET = "identity.session.get"
CONTROL_UI_KEY = "agent:main:main:user:openclaw-control-ui"
REFRESH = "rt-SECRET-refresh-token-7c1e0b"
WEBCHAT = {"connect": {"client": {"id": "openclaw-control-ui", "mode": "webchat"}}, "connId": "c1"}


@pytest.fixture
async def stack(open_stack: StackOpener) -> AsyncIterator[Stack]:
    async with open_stack(identity={"webchatSessionExchange": True}) as running:
        yield running


def id_token(stack: Stack, sub: str = "alice", *, ttl: int = 3600) -> str:
    """A real id token of the configured user pool, for the configured client."""
    userpool = stack.deps.plugin.userpool
    assert userpool is not None
    return stack.sb.issue_user_token(POOL, sub, client_id=userpool.client_id, ttl=ttl)


async def approval_status(stack: Stack, approval_id: str) -> ApprovalStatus:
    known = await stack.deps.approvals.get(approval_id)
    assert known is not None
    return known.status


class Host:
    """Calls registered handlers the way the host does, recording every ``respond``."""

    def __init__(self, stack: Stack) -> None:
        self.methods = IdentityGatewayMethods(stack.deps)
        self.responses: list[tuple[bool, Any, Any]] = []

    def respond(self, ok: bool, payload: Any = None, error: Any = None) -> None:
        self.responses.append((ok, payload, error))

    async def call(self, method: str, params: Any, client: Any = WEBCHAT) -> GatewayResponse:
        handler = self.methods.handlers[method]
        opts = {"req": {"type": "req", "id": "1", "method": method}, "params": params}
        response = await handler({**opts, "client": client, "respond": self.respond})
        assert self.responses[-1] == response.respond_args()
        return response


def payload(response: GatewayResponse) -> dict[str, Any]:
    assert response.ok, response.error
    assert response.payload is not None
    return response.payload


async def test_put_verifies_stores_and_acquires_a_tip(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    host = Host(stack)
    token = id_token(stack)
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    put = payload(
        await host.call(PUT, {"sessionKey": "main", "idToken": token, "refreshToken": REFRESH})
    )
    assert put == {
        "sub": "alice",
        "expiresAt": exp * 1000,
        "effectiveSessionKey": CONTROL_UI_KEY,
        "hasTip": True,
    }
    assert len(host.responses) == 1  # answered exactly once
    view = await stack.deps.sessions.get(CONTROL_UI_KEY)
    assert view is not None
    assert (view.sub, view.user_token, view.expires_at) == ("alice", token, exp)
    assert (view.email, view.name) == ("alice@example.com", "Alice")
    # The refresh token is stored for silent renewal (encrypted at rest by the store).
    assert await stack.deps.sessions.get_refresh_token(CONTROL_UI_KEY) == REFRESH
    tip = await stack.deps.tips.peek(CONTROL_UI_KEY)
    assert isinstance(tip, TipInfo)
    assert tip.sub == "alice"
    # Neither token reaches the logs; the answer carries none.
    for secret in (token, REFRESH):
        assert secret not in caplog.text
        assert secret not in repr(put)


async def test_get_returns_the_user_token_but_never_the_refresh_token(stack: Stack) -> None:
    host = Host(stack)
    token = id_token(stack)
    params = {"sessionKey": "agent:main:main", "idToken": token, "refreshToken": REFRESH}
    await host.call(PUT, params)
    got = payload(await host.call(GET, {"sessionKey": "main"}))
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    assert got == {
        "userToken": token,
        "sub": "alice",
        "expiresAt": exp * 1000,
        "effectiveSessionKey": CONTROL_UI_KEY,
        "hasRefreshToken": True,
    }
    assert REFRESH not in repr(host.responses)
    # Without a refresh token the flag says so.
    await host.call(PUT, {"sessionKey": "main", "idToken": token, "senderId": "u-2"})
    other = payload(await host.call(GET, {"sessionKey": "main", "senderId": "u-2"}))
    assert other["hasRefreshToken"] is False
    assert other["effectiveSessionKey"] == "agent:main:main:user:u-2"


async def test_sender_and_channel_choose_the_effective_key(stack: Stack) -> None:
    host = Host(stack)
    token = id_token(stack)
    feishu = {"sessionKey": "main", "idToken": token, "senderId": "ou_ab12", "channel": "Feishu"}
    put = payload(await host.call(PUT, feishu))
    assert put["effectiveSessionKey"] == "agent:main:feishu:direct:ou_ab12"
    # A hostile sender id cannot reshape the key (it is percent-encoded).
    hostile = {"sessionKey": "main", "idToken": token, "senderId": "x:user:alice"}
    assert payload(await host.call(PUT, hostile))["effectiveSessionKey"] == (
        "agent:main:main:user:x%3auser%3aalice"
    )
    # Other sessions of the same client stay apart.
    assert (await host.call(GET, {"sessionKey": "main"})).ok is False


async def test_personal_mode_stores_everything_under_the_main_session(
    open_stack: StackOpener,
) -> None:
    identity = {"webchatSessionExchange": True, "personalSessionMode": True}
    async with open_stack(identity=identity) as stack:
        host = Host(stack)
        put = payload(await host.call(PUT, {"sessionKey": "main", "idToken": id_token(stack)}))
        assert put["effectiveSessionKey"] == "agent:main:main"
        assert await stack.deps.sessions.get("agent:main:main") is not None


async def test_a_put_for_another_user_drops_the_previous_users_state(stack: Stack) -> None:
    host = Host(stack)
    await host.call(PUT, {"sessionKey": "main", "idToken": id_token(stack, "alice")})
    approvals = stack.deps.approvals
    kept = await approvals.request(CONTROL_UI_KEY, "exec", {"c": 1}, risk="high", reason="r")
    # The same user again: nothing is dropped.
    await host.call(PUT, {"sessionKey": "main", "idToken": id_token(stack, "alice")})
    assert await approval_status(stack, kept.id) is ApprovalStatus.PENDING
    # Another user takes the shared default sender's session.
    put = payload(await host.call(PUT, {"sessionKey": "main", "idToken": id_token(stack, "bob")}))
    assert (put["sub"], put["hasTip"]) == ("bob", True)
    assert await approval_status(stack, kept.id) is ApprovalStatus.CANCELLED
    tip = await stack.deps.tips.peek(CONTROL_UI_KEY)
    assert isinstance(tip, TipInfo)
    assert tip.sub == "bob"


async def test_registration_surface(stack: Stack) -> None:
    methods = IdentityGatewayMethods(stack.deps)
    assert methods.methods == (PUT, GET)
    assert set(methods.handlers) == {PUT, GET}
    assert METHOD_SCOPE == "operator.write"


async def test_an_async_respond_is_awaited(stack: Stack) -> None:
    answered: list[bool] = []

    async def respond(ok: bool, payload: Any = None, error: Any = None) -> None:
        answered.append(ok)

    handler = IdentityGatewayMethods(stack.deps).handlers[GET]
    response = await handler(
        {"params": {"sessionKey": "main"}, "client": WEBCHAT, "respond": respond}
    )
    assert answered == [False]
    assert response.error is not None
    assert response.error.code == "NOT_LINKED"
