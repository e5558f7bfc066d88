"""A sandbox on loopback, a callback server, and a plugin config pointing at both."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trio

from agent_identity.config import PluginConfig, parse_plugin_config
from agent_identity.sandbox import Sandbox, open_sandbox
from agent_identity.sandbox.browser import submit_login_form
from agent_identity.transports.callback import (
    CALLBACK_PATH,
    DeferredApp,
    Receive,
    Scope,
    Send,
    serve_callback_app,
)

POOL = "agent-identity-dev"
CLIENT_NAME = "openclaw-gateway"
MINT = "GetWorkloadAccessTokenForJWT"


class LateApp(DeferredApp):
    """The callback server's app, forwarding to ``ident.asgi_app`` once it is set.

    It keeps the paths it forwarded (:attr:`calls`), to show a request went through.
    """

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan" and self.app is not None:
            self.calls.append(scope.get("path", ""))
        await super().__call__(scope, receive, send)


@dataclass
class World:
    """The sandbox, a browser, the callback server and the config of the system."""

    sb: Sandbox
    browser: httpx.AsyncClient
    late: LateApp
    callback_url: str
    data_dir: Path

    def config(self, **identity: object) -> PluginConfig:
        client = self.sb.state.user_pool(POOL)
        assert client is not None
        secret = next(c.secret for c in client.clients.values() if c.name == CLIENT_NAME)
        client_id = next(uid for uid, c in client.clients.items() if c.name == CLIENT_NAME)
        return parse_plugin_config(
            {
                "identity": {
                    "endpoint": self.sb.base_url,
                    "accessKeyId": self.sb.access_key_id,
                    "secretAccessKey": self.sb.secret_access_key,
                    **identity,
                },
                "userpool": {
                    "discoveryUrl": self.sb.user_pool_discovery_url(POOL),
                    "clientId": client_id,
                    "clientSecret": secret,
                    "callbackUrl": self.callback_url,
                    "scope": "openid profile email",
                },
                "dataDir": str(self.data_dir),
            }
        )

    async def browse(
        self,
        authorize_url: str,
        *,
        username: str = "alice",
        password: str = "alice-password",  # noqa: S107 - the seed's demo password
    ) -> httpx.Response:
        """Do what a browser does: open the URL, fill in the form, follow the redirects."""
        return await submit_login_form(
            self.browser, authorize_url, username=username, password=password
        )


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with (
        open_sandbox() as sb,
        httpx.AsyncClient(timeout=10) as browser,
        trio.open_nursery() as nursery,
    ):
        late = LateApp()
        base = await nursery.start(serve_callback_app, late, "127.0.0.1", 0)
        callback_url = f"{base}{CALLBACK_PATH}"
        pool = sb.state.user_pool(POOL)
        assert pool is not None
        for client in pool.clients.values():
            if client.name == CLIENT_NAME:
                client.allowed_callback_urls.append(callback_url)
        yield World(sb, browser, late, callback_url, tmp_path / "identity")
        nursery.cancel_scope.cancel()
