"""A sandbox on loopback, a callback server, and a plugin config pointing at both."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
import trio

from agent_identity.config import PluginConfig, parse_plugin_config
from agent_identity.sandbox import Sandbox, open_sandbox
from agent_identity.transports.callback import CALLBACK_PATH, serve_callback_app

POOL = "agent-identity-dev"
CLIENT_NAME = "openclaw-gateway"
MINT = "GetWorkloadAccessTokenForJWT"

Scope = dict[str, Any]


@dataclass
class LateApp:
    """An ASGI app served before the system exists; it forwards to ``ident.asgi_app``."""

    app: Any = None
    calls: list[str] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":  # hypercorn's startup/shutdown: accept and wait
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        assert self.app is not None, "no system is running"
        self.calls.append(scope.get("path", ""))
        await self.app(scope, receive, send)


class _FormReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {key: value or "" for key, value in attrs}
        if tag == "form":
            self.action = found.get("action", "")
        elif tag == "input" and found.get("type") == "hidden":
            self.fields[found["name"]] = found.get("value", "")


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
        page = await self.browser.get(authorize_url)
        assert page.status_code == 200, page.text
        reader = _FormReader()
        reader.feed(page.text)
        return await self.browser.post(
            urljoin(str(page.url), reader.action),
            data={**reader.fields, "username": username, "password": password},
            follow_redirects=True,
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
