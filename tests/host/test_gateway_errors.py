"""``identity.session.*`` error paths: who may call, malformed params, bad tokens, outages.

Every refusal is checked to store nothing and to carry no token, in the answer or the logs.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from agent_identity.actors.session_store import SessionStore
from agent_identity.host.gateway import MAX_TOKEN_LENGTH, GatewayResponse, IdentityGatewayMethods
from agent_identity.storage import MemoryBackend
from agent_identity.system.login import LazyOidc

from .conftest import POOL, Stack, StackOpener
from .test_gateway import CONTROL_UI_KEY, GET, PUT, WEBCHAT, Host, id_token

TUI = {"connect": {"client": {"id": "openclaw-tui", "mode": "ui"}}}


@pytest.fixture
async def stack(open_stack: StackOpener) -> AsyncIterator[Stack]:
    async with open_stack(identity={"webchatSessionExchange": True}) as running:
        yield running


def error_of(response: GatewayResponse) -> tuple[str, str]:
    assert not response.ok
    assert response.payload is None
    assert response.error is not None
    return response.error.code, response.error.message


async def nothing_stored(stack: Stack) -> None:
    assert await stack.deps.sessions.list() == []


# ------------------------------------------------------------------ who may call


@pytest.mark.parametrize(
    "client",
    [
        TUI,
        None,
        {},
        {"connect": {"client": {"id": "cli", "mode": "cli"}}},
        {"connect": {"client": "webchat"}},  # malformed: refused, not crashed
    ],
)
async def test_only_webchat_connections_may_call(stack: Stack, client: Any) -> None:
    host = Host(stack)
    for method, params in ((PUT, {"sessionKey": "main", "idToken": id_token(stack)}), (GET, {})):
        code, message = error_of(await host.call(method, params, client))
        assert code == "FORBIDDEN"
        assert "WebChat" in message
    await nothing_stored(stack)


async def test_the_client_id_webchat_ui_counts_as_webchat(stack: Stack) -> None:
    host = Host(stack)
    client = {"connect": {"client": {"id": "webchat-ui", "mode": "backend"}}}
    params = {"sessionKey": "main", "idToken": id_token(stack)}
    assert (await host.call(PUT, params, client)).ok


async def test_the_hosts_predicate_decides_when_it_is_given(stack: Stack) -> None:
    handler = IdentityGatewayMethods(stack.deps).handlers[PUT]
    params = {"sessionKey": "main", "idToken": id_token(stack)}
    # In-process dispatch paths pass a predicate that always says no.
    refused = await handler(
        {"params": params, "client": WEBCHAT, "isWebchatConnect": lambda _connect: False}
    )
    assert error_of(refused)[0] == "FORBIDDEN"

    def broken(_connect: object) -> bool:
        raise RuntimeError("host bug")

    failed = await handler({"params": params, "client": WEBCHAT, "isWebchatConnect": broken})
    assert error_of(failed)[0] == "FORBIDDEN"
    await nothing_stored(stack)
    seen: list[object] = []

    def says_yes(connect: object) -> bool:
        seen.append(connect)
        return True

    admitted = await handler({"params": params, "client": TUI, "isWebchatConnect": says_yes})
    assert admitted.ok
    assert seen == [TUI["connect"]]  # it gets the connect params as the host holds them


async def test_with_the_feature_off_nothing_is_registered(open_stack: StackOpener) -> None:
    async with open_stack() as stack:
        methods = IdentityGatewayMethods(stack.deps)
        assert methods.methods == ()
        assert methods.handlers == {}
        params = {"sessionKey": "main", "idToken": id_token(stack)}
        code, message = error_of(await methods.call(PUT, params, WEBCHAT))
        assert (code, message) == ("INVALID_REQUEST", "unknown method: identity.session.put")
        assert await stack.deps.sessions.list() == []


async def test_an_unknown_method_is_an_invalid_request(stack: Stack) -> None:
    methods = IdentityGatewayMethods(stack.deps)
    code, message = error_of(await methods.call("identity.session.drop", {}, WEBCHAT))
    assert (code, message) == ("INVALID_REQUEST", "unknown method: identity.session.drop")


# ------------------------------------------------------------------ malformed params


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"sessionKey": "main"}, "`idToken`"),
        ({"idToken": "eyJ-SECRET"}, "`sessionKey`"),
        ({"sessionKey": "main", "idToken": 5}, "`$.idToken`"),
        ({"sessionKey": "main", "idToken": ""}, "`$.idToken`"),
        ({"sessionKey": "main", "idToken": "eyJ-SECRET", "senderId": "s" * 257}, "`$.senderId`"),
        ({"sessionKey": "main", "idToken": "eyJ-SECRET", "refreshToken": 7}, "`$.refreshToken`"),
        ({"sessionKey": "main", "idToken": "x" * (MAX_TOKEN_LENGTH + 1)}, "`$.idToken`"),
        ([], "`object`"),
        (None, "`object`"),
    ],
)
async def test_malformed_put_params_name_the_field(stack: Stack, params: Any, field: str) -> None:
    code, message = error_of(await Host(stack).call(PUT, params))
    assert code == "INVALID_REQUEST"
    assert message.startswith("invalid params: ")
    assert field in message
    assert "SECRET" not in message
    await nothing_stored(stack)


async def test_malformed_get_params_name_the_field(stack: Stack) -> None:
    host = Host(stack)
    code, message = error_of(await host.call(GET, {"senderId": "u"}))
    assert code == "INVALID_REQUEST"
    assert "`sessionKey`" in message
    code, message = error_of(await host.call(GET, {"sessionKey": "main", "channel": 3}))
    assert "`$.channel`" in message


# ------------------------------------------------------------------ bad tokens


def forged(token: str, **claims: Any) -> str:
    """The token with its payload changed and the original signature kept."""
    header, body, signature = token.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    decoded.update(claims)
    raw = base64.urlsafe_b64encode(json.dumps(decoded).encode()).rstrip(b"=").decode()
    return f"{header}.{raw}.{signature}"


async def test_invalid_id_tokens_are_refused_with_a_reason_and_nothing_is_stored(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    host = Host(stack)
    cases = {
        "id_token_expired": id_token(stack, ttl=-120),
        "id_token_bad_signature": forged(id_token(stack, "bob"), sub="alice"),
        "id_token_wrong_audience": stack.sb.issue_user_token(
            POOL, "alice", client_id="someone-elses-client"
        ),
        "id_token_malformed": "not-a-jwt-SECRET",
    }
    for reason, token in cases.items():
        response = await host.call(PUT, {"sessionKey": "main", "idToken": token})
        code, message = error_of(response)
        assert code == "INVALID_REQUEST", reason
        assert message.startswith("idToken: ")
        assert response.error is not None
        assert response.error.details == {"reason": reason}
        assert token not in message
        assert token not in caplog.text
        assert reason in caplog.text
    await nothing_stored(stack)
    assert await stack.deps.tips.list_tips() == []


async def test_a_token_of_another_issuer_is_refused(stack: Stack) -> None:
    userpool = stack.deps.plugin.userpool
    assert userpool is not None
    token = stack.sb.issue_user_token(
        POOL, "alice", client_id=userpool.client_id, extra_claims={"iss": "https://evil.example"}
    )
    response = await Host(stack).call(PUT, {"sessionKey": "main", "idToken": token})
    assert error_of(response)[0] == "INVALID_REQUEST"
    assert response.error is not None
    assert response.error.details == {"reason": "id_token_wrong_issuer"}
    await nothing_stored(stack)


async def test_an_unreachable_provider_is_unavailable_not_the_clients_fault(
    stack: Stack,
) -> None:
    userpool = stack.deps.plugin.userpool
    assert userpool is not None
    # The real verifier, pointed at a discovery URL nothing listens on.
    dead = msgspec.structs.replace(userpool, discovery_url="http://127.0.0.1:9/pool")
    verifier = LazyOidc(dead, stack.ident.http, stack.ident.identity_client)
    methods = IdentityGatewayMethods(dataclasses.replace(stack.deps, id_tokens=verifier))
    token = id_token(stack)
    response = await methods.call(PUT, {"sessionKey": "main", "idToken": token}, WEBCHAT)
    code, message = error_of(response)
    assert code == "UNAVAILABLE"
    assert response.error is not None
    assert response.error.retryable is True
    assert response.error.details == {"reason": "discovery_failed"}
    assert token not in message
    await nothing_stored(stack)


# ------------------------------------------------------------------ no session, outages


async def test_get_without_a_session_is_not_linked(stack: Stack) -> None:
    response = await Host(stack).call(GET, {"sessionKey": "main"})
    code, message = error_of(response)
    assert code == "NOT_LINKED"
    assert "identity.session.put" in message
    assert response.error is not None
    assert response.error.details == {"effectiveSessionKey": CONTROL_UI_KEY}


async def test_without_a_userpool_put_is_unavailable(stack: Stack) -> None:
    deps = dataclasses.replace(stack.deps, id_tokens=None)
    methods = IdentityGatewayMethods(deps)
    params = {"sessionKey": "main", "idToken": id_token(stack)}
    code, message = error_of(await methods.call(PUT, params, WEBCHAT))
    assert code == "UNAVAILABLE"
    assert "userpool" in message
    await nothing_stored(stack)


async def test_a_store_that_is_not_running_is_unavailable_and_retryable(stack: Stack) -> None:
    # A real store that was never started (a stopped one would be restarted at once).
    idle = SessionStore(MemoryBackend())
    deps = dataclasses.replace(stack.deps, sessions=idle.client)
    methods = IdentityGatewayMethods(deps)
    for method, params in (
        (PUT, {"sessionKey": "main", "idToken": id_token(stack)}),
        (GET, {"sessionKey": "main"}),
    ):
        response = await methods.call(method, params, WEBCHAT)
        assert error_of(response)[0] == "UNAVAILABLE"
        assert response.error is not None
        assert response.error.retryable is True
