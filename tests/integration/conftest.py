"""A login stack on real sockets: sandbox user pool, broker, store, flow, hypercorn callback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
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
from agent_identity.sandbox.browser import submit_login_form
from agent_identity.storage import FileBackend, SessionRecord
from agent_identity.transports.callback import CALLBACK_PATH, CallbackApp, serve_callback_app

POOL = "agent-identity-dev"
CLIENT_ID = "client-openclaw-0001"
CLIENT_SECRET = "openclaw-gateway-client-secret"


class LateFlow:
    """The callback app's completer, bound to the flow once the callback URL is known."""

    def __init__(self) -> None:
        self.flow: LoginFlow | None = None
        self.outcomes: list[LoginOutcome] = []

    async def complete(self, params: Mapping[str, str]) -> LoginOutcome:
        assert self.flow is not None
        outcome = await self.flow.complete(params)
        self.outcomes.append(outcome)
        return outcome


@dataclass
class LoginStack:
    """Everything a login needs, running in one nursery."""

    sb: Sandbox
    http: httpx.AsyncClient
    data_dir: Path
    broker: LoginBroker
    store: SessionStore
    flow: LoginFlow
    callback_url: str
    late: LateFlow
    tips: list[SessionRecord] = field(default_factory=list)

    @property
    def sessions(self) -> SessionStoreClient:
        return SessionStoreClient(self.store.address)

    @property
    def logins(self) -> LoginBrokerClient:
        return LoginBrokerClient(self.broker.address)

    async def browse(
        self,
        authorize_url: str,
        *,
        username: str = "alice",
        password: str = "alice-password",  # noqa: S107 - the seed's demo password
    ) -> httpx.Response:
        """Do what a browser does: open the URL, fill in the form, follow the redirects."""
        return await submit_login_form(
            self.http, authorize_url, username=username, password=password
        )

    async def restart_store(self, nursery: trio.Nursery) -> SessionStore:
        """Stop the store and start a new one on the same files."""
        await self.store.stop()
        self.store = SessionStore(FileBackend(self.data_dir))
        await nursery.start(self.store.run)
        return self.store


def make_oidc(sb: Sandbox, http: httpx.AsyncClient, callback_url: str, **kw: str) -> OidcClient:
    settings = OidcSettings(
        discovery_url=sb.user_pool_discovery_url(POOL),
        client_id=CLIENT_ID,
        redirect_uri=callback_url,
        client_secret=kw.get("client_secret", CLIENT_SECRET),
    )
    return OidcClient(settings, http)


@pytest.fixture
def broker_ttl() -> float:
    return 300.0


@pytest.fixture
async def stack(tmp_path: Path, broker_ttl: float) -> AsyncIterator[LoginStack]:
    async with (
        open_sandbox() as sb,
        httpx.AsyncClient(timeout=10) as http,
        trio.open_nursery() as nursery,
    ):
        broker = LoginBroker(ttl=broker_ttl)
        await nursery.start(broker.run)
        data_dir = tmp_path / "identity"
        store = SessionStore(FileBackend(data_dir))
        await nursery.start(store.run)
        late = LateFlow()
        base = await nursery.start(serve_callback_app, CallbackApp(late), "127.0.0.1", 0)
        callback_url = f"{base}{CALLBACK_PATH}"
        pool = sb.state.user_pool(POOL)
        assert pool is not None
        pool.clients[CLIENT_ID].allowed_callback_urls.append(callback_url)
        tips: list[SessionRecord] = []

        async def acquire_tip(record: SessionRecord) -> None:
            await trio.lowlevel.checkpoint()
            tips.append(record)

        flow = LoginFlow(
            LoginBrokerClient(broker.address),
            make_oidc(sb, http, callback_url),
            SessionStoreClient(store.address),
            acquire_tip=acquire_tip,
        )
        late.flow = flow
        stack = LoginStack(sb, http, data_dir, broker, store, flow, callback_url, late, tips)
        yield stack
        await stack.store.stop()
        nursery.cancel_scope.cancel()
