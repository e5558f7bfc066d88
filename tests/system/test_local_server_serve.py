"""The local identity server as ``run_server`` wires it: file modes, the config's allowlist.

The whole standalone server runs in the test's Trio loop against the sandbox, with its own
callback route on a loopback port; a user logs in through the provider's form and the
socket then serves that user's TIP to an allowlisted Python.
"""

from __future__ import annotations

import socket
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import trio

from agent_identity.config import LoadedConfig, parse_plugin_config
from agent_identity.sandbox import Sandbox, open_sandbox
from agent_identity.sandbox.browser import submit_login_form
from agent_identity.sandbox.devconfig import dev_plugin_config
from agent_identity.system.serve import (
    BRIDGE_SOCKET,
    CONTROL_SOCKET,
    IDENTITY_SOCKET,
    ServerInfo,
    run_server,
)
from agent_identity.transports.callback import CALLBACK_PATH

from .test_local_server_support import MAIN, PYTHON


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@asynccontextmanager
async def serving(sb: Sandbox, data_dir: Path, **overrides: Any) -> AsyncIterator[ServerInfo]:
    callback = f"http://127.0.0.1:{_free_port()}{CALLBACK_PATH}"
    plugin = dev_plugin_config(sb, callback_url=callback, data_dir=data_dir, overrides=overrides)
    loaded = LoadedConfig(plugin=parse_plugin_config(plugin))
    async with trio.open_nursery() as nursery:
        info: ServerInfo = await nursery.start(
            partial(run_server, loaded, environ={}, handle_signals=False)
        )
        yield info
        info.stop()


def client(path: Path) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(uds=str(path))
    return httpx.AsyncClient(transport=transport, base_url="http://localhost", timeout=10)


async def test_sockets_are_owner_only_and_the_allowlist_comes_from_the_config(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "identity"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)  # whatever the umask: a folder others can read, to be tightened
    async with (
        open_sandbox() as sb,
        httpx.AsyncClient(timeout=10) as browser,
        serving(sb, data_dir, localServer=True, localServerAllowlist=[PYTHON]) as info,
    ):
        assert info.identity_socket == data_dir / IDENTITY_SOCKET
        assert mode(data_dir) == 0o700
        for name in (IDENTITY_SOCKET, BRIDGE_SOCKET, CONTROL_SOCKET):
            path = data_dir / name
            assert stat.S_ISSOCK(path.stat().st_mode), name
            assert mode(path) == 0o600, name
        ident = info.identity
        assert ident.login_flow is not None
        url = await ident.login_flow.start_login(MAIN)
        page = await submit_login_form(browser, url, username="alice", password="alice-password")
        assert page.status_code == 200
        async with client(info.identity_socket) as local:
            token = await local.get("/token")
        assert token.status_code == 200, token.text
        assert token.json()["sub"] == "alice"
    # A graceful stop removes the socket files.
    assert not (data_dir / IDENTITY_SOCKET).exists()
    assert not (data_dir / BRIDGE_SOCKET).exists()


async def test_without_an_allowlist_entry_python_is_refused(tmp_path: Path) -> None:
    async with (
        open_sandbox() as sb,
        serving(sb, tmp_path / "identity", localServer=True, localServerFailOpen=False) as info,
    ):
        assert info.identity_socket is not None
        async with client(info.identity_socket) as local:
            refused = await local.get("/status")
    assert refused.status_code == 403
    assert "not allowlisted" in refused.json()["message"]


async def test_the_local_server_is_off_by_default(tmp_path: Path) -> None:
    async with open_sandbox() as sb, serving(sb, tmp_path / "identity") as info:
        assert info.identity_socket is None
        assert not (tmp_path / "identity" / IDENTITY_SOCKET).exists()
        assert (tmp_path / "identity" / BRIDGE_SOCKET).exists()
