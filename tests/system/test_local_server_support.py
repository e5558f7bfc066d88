"""Harness of ``test_local_server*.py`` and ``test_bridge*.py`` (this module holds no tests).

:func:`open_served` runs a system against the sandbox (``World`` from the conftest: the
sandbox, a browser and the callback server) and serves one app — the local identity server
or the gateway bridge — over a real Unix socket behind a real :class:`PeerGate`, exactly as
``run_server`` wires them. Requests come from this very process (a Python the gate has to
allowlist) through httpx's Unix-socket transport, or as raw bytes.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import httpx
import trio

from agent_identity.config import parse_plugin_config
from agent_identity.sandbox.devconfig import dev_plugin_config
from agent_identity.system import Identity, open_identity
from agent_identity.system.bridge import BridgeApp
from agent_identity.system.local_server import LocalServerApp
from agent_identity.system.serve import BRIDGE_SOCKET, IDENTITY_SOCKET
from agent_identity.transports.http_messages import Handler
from agent_identity.transports.peer import PeerGate
from agent_identity.transports.uds_http import UdsHttpServer, serve_uds_http
from agent_identity.transports.uds_socket import open_unix_listener

from .conftest import World

MAIN = "agent:main:main"
ALICE_DM = "agent:main:telegram:direct:42"  # sender 42 on telegram, in the main host session
BOB_DM = "agent:main:telegram:direct:77"
#: What ``/proc/<pid>/exe`` of this process reads: the gate matches it, not the venv symlink.
PYTHON = str(Path("/proc/self/exe").readlink())
SANDBOX_OPENAI_KEY = "sk-sandbox-openai-0000000000000000"  # the seed's openai API key


@dataclass
class Served:
    """A running system and one app on a Unix socket (see the module docstring)."""

    world: World
    ident: Identity
    path: Path
    app: Handler
    server: UdsHttpServer
    gate: PeerGate

    def client(self) -> httpx.AsyncClient:
        """An HTTP client whose every connection goes to the socket (from this process)."""
        transport = httpx.AsyncHTTPTransport(uds=str(self.path))
        return httpx.AsyncClient(transport=transport, base_url="http://localhost", timeout=10)

    async def login(
        self,
        key: str = MAIN,
        *,
        username: str = "alice",
        password: str = "alice-password",  # noqa: S107 - the seed's demo password
    ) -> None:
        """Log ``username`` in under the effective ``key`` through the provider's form."""
        assert self.ident.login_flow is not None
        url = await self.ident.login_flow.start_login(key)
        page = await self.world.browse(url, username=username, password=password)
        assert page.status_code == 200, page.text
        assert await self.ident.sessions.get(key) is not None

    async def raw(self, data: bytes) -> bytes:
        """Send ``data`` on a fresh connection and read until the server closes it."""
        async with await self.connect() as stream:
            await stream.send_all(data)
            return await read_all(stream)

    async def connect(self) -> trio.SocketStream:
        """A bare connection to the socket."""
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        await sock.connect(str(self.path))
        return trio.SocketStream(sock)


async def read_all(stream: trio.SocketStream) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    with trio.fail_after(10):
        while chunk := await stream.receive_some():
            chunks.append(chunk)
    return b"".join(chunks)


@asynccontextmanager
async def open_served(
    world: World,
    kind: Literal["local", "bridge"] = "local",
    *,
    allowlist: tuple[str, ...] = ("python*",),
    fail_open: bool = False,
    **sections: Any,
) -> AsyncIterator[Served]:
    """Run a system and serve ``kind`` on ``<dataDir>/<its socket name>``.

    Args:
        world: The sandbox, browser and callback server.
        kind: ``local`` (the identity server) or ``bridge`` (the gateway bridge).
        allowlist: ``localServerAllowlist`` of the gate (curl is always added).
        fail_open: ``localServerFailOpen``; off by default so a refusal is never masked.
        **sections: Plugin config sections (``identity={...}``, ``authz={...}``).
    """
    config = parse_plugin_config(
        dev_plugin_config(
            world.sb, callback_url=world.callback_url, data_dir=world.data_dir, overrides=sections
        )
    )
    name = IDENTITY_SOCKET if kind == "local" else BRIDGE_SOCKET
    async with open_identity(config, environ={}) as ident:
        world.late.app = ident.asgi_app
        app: Handler = LocalServerApp(ident) if kind == "local" else BridgeApp(ident)
        gate = PeerGate(allowlist, fail_open=fail_open)
        path = world.data_dir / name
        with open_unix_listener(path) as listener:
            async with trio.open_nursery() as nursery:
                server = await nursery.start(partial(serve_uds_http, listener, app, gate=gate))
                yield Served(world, ident, path, app, server, gate)
                nursery.cancel_scope.cancel()
