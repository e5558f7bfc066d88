"""The login flow's state checks on a mock clock (no sockets: the IdP is never reached)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import trio
import trio.testing

from agent_identity.actors.login_broker import LoginBroker
from agent_identity.actors.login_flow import (
    LoginEvents,
    LoginFailure,
    LoginFlow,
    LoginSucceeded,
)
from agent_identity.actors.login_messages import LoginBrokerClient
from agent_identity.actors.session_store import SessionStore, SessionStoreClient
from agent_identity.oidc import OidcClient, OidcSettings
from agent_identity.storage import MemoryBackend

KEY = "agent:main:main:user:openclaw-control-ui"


@dataclass
class Offline:
    flow: LoginFlow
    logins: LoginBrokerClient
    sessions: SessionStoreClient


@pytest.fixture
async def offline(nursery: trio.Nursery) -> AsyncIterator[Offline]:
    broker = LoginBroker(max_per_session=2)
    await nursery.start(broker.run)
    store = SessionStore(MemoryBackend())
    await nursery.start(store.run)
    async with httpx.AsyncClient() as http:  # never used: no test gets past the state check
        oidc = OidcClient(
            OidcSettings(
                discovery_url="http://127.0.0.1:9/unreachable",
                client_id="client",
                redirect_uri="http://127.0.0.1:9/identity/oauth/callback",
            ),
            http,
        )
        logins = LoginBrokerClient(broker.address)
        sessions = SessionStoreClient(store.address)
        yield Offline(LoginFlow(logins, oidc, sessions), logins, sessions)


async def begin(offline: Offline) -> str:
    return await offline.logins.begin(KEY, nonce="n", code_verifier="v")


async def test_state_checks_come_first(
    offline: Offline, autojump_clock: trio.testing.MockClock
) -> None:
    missing = await offline.flow.complete({"code": "c"})
    assert (missing.ok, missing.failure) == (False, LoginFailure.STATE_MISSING)
    assert missing.session_key is None
    empty = await offline.flow.complete({"code": "c", "state": ""})
    assert empty.failure is LoginFailure.STATE_MISSING
    unknown = await offline.flow.complete({"code": "c", "state": "never-issued"})
    assert unknown.failure is LoginFailure.STATE_UNKNOWN
    assert "not valid" in unknown.message
    assert unknown.detail == "state_unknown"


async def test_expired_state_on_the_mock_clock(
    offline: Offline, autojump_clock: trio.testing.MockClock
) -> None:
    state = await begin(offline)
    await trio.sleep(300)
    outcome = await offline.flow.complete(
        {"code": "c", "state": state, "error": "access_denied", "error_description": "x"}
    )
    assert outcome.failure is LoginFailure.STATE_EXPIRED
    assert "expired" in outcome.message
    assert "access_denied" not in outcome.message
    assert await offline.sessions.get(KEY) is None


async def test_superseded_and_used_states(
    offline: Offline, autojump_clock: trio.testing.MockClock
) -> None:
    first, second, third = [await begin(offline) for _ in range(3)]
    assert (await offline.flow.complete({"state": first})).failure is (
        LoginFailure.STATE_SUPERSEDED
    )
    # An IdP error consumes the login; the same state is then "used".
    denied = await offline.flow.complete(
        {"state": second, "error": "access_denied", "error_description": "User cancelled"}
    )
    assert denied.failure is LoginFailure.IDP_ERROR
    assert denied.session_key == KEY
    assert denied.detail == "authorization_denied"
    assert "access_denied" in denied.message
    assert "User cancelled" in denied.message
    assert (await offline.flow.complete({"state": second})).failure is LoginFailure.STATE_USED
    no_code = await offline.flow.complete({"state": third})
    assert no_code.failure is LoginFailure.CALLBACK_INVALID
    assert await offline.sessions.get(KEY) is None


async def test_events_fan_out_without_blocking() -> None:
    events = LoginEvents()
    fast = events.subscribe()
    small = events.subscribe(buffer=1)
    gone = events.subscribe()
    gone.close()
    assert events.subscribers == 3
    first = LoginSucceeded(KEY, "alice")
    second = LoginSucceeded(KEY, "alice", name="Alice", email="alice@example.com")
    events.publish(first)
    events.publish(second)  # "small" is full now: dropped for it only
    assert events.subscribers == 2
    assert events.dropped == 1
    assert [fast.receive_nowait(), fast.receive_nowait()] == [first, second]
    assert small.receive_nowait() == first
    with pytest.raises(trio.WouldBlock):
        small.receive_nowait()
    await trio.lowlevel.checkpoint()
