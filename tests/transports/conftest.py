"""The callback app served by hypercorn on a loopback port, with a real login flow behind it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trio

from agent_identity.actors.login_broker import LoginBroker
from agent_identity.actors.login_flow import LoginFlow, LoginOutcome
from agent_identity.actors.login_messages import LoginBrokerClient
from agent_identity.actors.session_store import SessionStore, SessionStoreClient
from agent_identity.oidc import OidcClient, OidcSettings
from agent_identity.sandbox import Sandbox, open_sandbox
from agent_identity.storage import FileBackend
from agent_identity.transports.callback import CALLBACK_PATH, CallbackApp, serve_callback_app

POOL = "agent-identity-dev"
CLIENT_ID = "client-openclaw-0001"
CLIENT_SECRET = "openclaw-gateway-client-secret"


class Recorder:
    """Sits between the app and the flow: the flow is bound late, outcomes are kept."""

    def __init__(self) -> None:
        self.flow: LoginFlow | None = None
        self.outcomes: list[LoginOutcome] = []

    async def complete(self, params: Mapping[str, str]) -> LoginOutcome:
        assert self.flow is not None
        outcome = await self.flow.complete(params)
        self.outcomes.append(outcome)
        return outcome


@dataclass
class Served:
    sb: Sandbox
    http: httpx.AsyncClient
    base_url: str
    callback_url: str
    broker: LoginBroker
    sessions: SessionStoreClient
    flow: LoginFlow
    recorder: Recorder
    nursery: trio.Nursery


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    async with (
        open_sandbox() as sb,
        httpx.AsyncClient(timeout=10) as http,
        trio.open_nursery() as nursery,
    ):
        broker = LoginBroker()
        await nursery.start(broker.run)
        store = SessionStore(FileBackend(tmp_path / "identity"))
        await nursery.start(store.run)
        recorder = Recorder()
        base = await nursery.start(serve_callback_app, CallbackApp(recorder), "127.0.0.1", 0)
        callback_url = f"{base}{CALLBACK_PATH}"
        pool = sb.state.user_pool(POOL)
        assert pool is not None
        pool.clients[CLIENT_ID].allowed_callback_urls.append(callback_url)
        oidc = OidcClient(
            OidcSettings(
                discovery_url=sb.user_pool_discovery_url(POOL),
                client_id=CLIENT_ID,
                redirect_uri=callback_url,
                client_secret=CLIENT_SECRET,
            ),
            http,
        )
        sessions = SessionStoreClient(store.address)
        flow = LoginFlow(LoginBrokerClient(broker.address), oidc, sessions)
        recorder.flow = flow
        yield Served(sb, http, base, callback_url, broker, sessions, flow, recorder, nursery)
        await store.stop()
        nursery.cancel_scope.cancel()
