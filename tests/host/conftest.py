"""A running identity system against the sandbox, for the host handler tests.

``stack`` starts the sandbox on loopback, a hypercorn callback server and ``open_identity``
with a config pointing at both; ``stack.login(key)`` logs the seeded user in through the
provider's real HTML form, like a person with a browser. Tests get the handler dependencies
from ``stack.deps`` (real actors, real HTTP, real Cedar).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from agent_identity.config import FeishuChannel, LoadedConfig, PluginConfig, parse_plugin_config
from agent_identity.host.deps import HostDeps
from agent_identity.sandbox import Sandbox, open_sandbox
from agent_identity.sandbox.browser import submit_login_form
from agent_identity.sandbox.devconfig import dev_plugin_config
from agent_identity.system import Identity, open_identity
from agent_identity.transports.callback import CALLBACK_PATH, DeferredApp, serve_callback_app

POOL = "agent-identity-dev"
CLIENT_NAME = "openclaw-gateway"
MAIN = "agent:main:main"


@dataclass
class Stack:
    """The sandbox, a browser, and a running system (see the module docstring)."""

    sb: Sandbox
    browser: httpx.AsyncClient
    ident: Identity
    data_dir: Path

    @property
    def deps(self) -> HostDeps:
        """The host handler dependencies of the running system."""
        return self.ident.deps

    async def login(
        self,
        session_key: str = MAIN,
        *,
        username: str = "alice",
        password: str = "alice-password",  # noqa: S107 - the seed's demo password
        context: dict[str, str] | None = None,
    ) -> None:
        """Log ``username`` in under the *effective* ``session_key`` through the real form."""
        assert self.ident.login_flow is not None
        url = await self.ident.login_flow.start_login(session_key, context=context)
        page = await submit_login_form(self.browser, url, username=username, password=password)
        assert page.status_code == 200, page.text
        assert await self.ident.sessions.get(session_key) is not None


def sandbox_config(sb: Sandbox, callback_url: str, data_dir: Path, **sections: Any) -> PluginConfig:
    """The ``agent-identity dev`` config for the sandbox; ``identity=``/``authz=``/… merged in."""
    return parse_plugin_config(
        dev_plugin_config(sb, callback_url=callback_url, data_dir=data_dir, overrides=sections)
    )


class StackOpener:
    """Opens running systems on one sandbox: ``async with open_stack(authz={...}) as stack:``."""

    def __init__(
        self,
        sb: Sandbox,
        browser: httpx.AsyncClient,
        late: DeferredApp,
        callback_url: str,
        tmp: Path,
    ) -> None:
        self.sb = sb
        self._browser = browser
        self._late = late
        self._callback_url = callback_url
        self._tmp = tmp
        self._count = 0

    @asynccontextmanager
    async def __call__(
        self,
        *,
        environ: dict[str, str] | None = None,
        feishu: FeishuChannel | None = None,
        **sections: Any,
    ) -> AsyncIterator[Stack]:
        """Run a system with the config sections merged in (``identity=``, ``authz=`` …).

        ``feishu`` is the ``channels.feishu`` notifications go to (none by default).
        """
        self._count += 1
        data_dir = self._tmp / f"identity-{self._count}"
        plugin = sandbox_config(self.sb, self._callback_url, data_dir, **sections)
        config = LoadedConfig(plugin=plugin, feishu=feishu)
        async with open_identity(config, environ={} if environ is None else environ) as ident:
            self._late.app = ident.asgi_app
            yield Stack(self.sb, self._browser, ident, data_dir)


@pytest.fixture
async def open_stack(tmp_path: Path) -> AsyncIterator[StackOpener]:
    """A sandbox, a browser and a callback server; call it to run systems against them."""
    async with (
        open_sandbox() as sb,
        httpx.AsyncClient(timeout=10) as browser,
        trio.open_nursery() as nursery,
    ):
        late = DeferredApp()
        base = await nursery.start(serve_callback_app, late, "127.0.0.1", 0)
        yield StackOpener(sb, browser, late, f"{base}{CALLBACK_PATH}", tmp_path)
        nursery.cancel_scope.cancel()


@pytest.fixture
async def stack(open_stack: StackOpener) -> AsyncIterator[Stack]:
    """A running system with the default config (no authz checks)."""
    async with open_stack() as running:
        yield running
