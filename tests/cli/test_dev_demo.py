"""The ``dev`` pieces in-process: the walkthrough, the guide, the sandbox thread.

The walkthrough runs against a real stack in the test's own Trio loop: the sandbox, the
config ``dev`` writes, and ``run_server`` with every socket. So the test can also break the
sandbox on purpose and see the transcript say so.
"""

from __future__ import annotations

import io
import json
import shlex
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio

from agent_identity.cli.demo import run_walkthrough
from agent_identity.cli.dev import (
    CONFIG_NAME,
    DevStack,
    SandboxThread,
    build_stack,
    guide_lines,
    stack_lines,
    start_main_login,
)
from agent_identity.config import LoadedConfig, load_config
from agent_identity.sandbox import Sandbox, load_seed, open_sandbox
from agent_identity.sandbox.browser import submit_login_form
from agent_identity.system.serve import ServerInfo, run_server

OPENAI_KEY = "sk-sandbox-openai-0000000000000000"


def _write_config(folder: Path, stack: DevStack) -> LoadedConfig:
    folder.mkdir(mode=0o700, exist_ok=True)
    (folder / CONFIG_NAME).write_text(json.dumps(stack.config))
    return load_config(folder / CONFIG_NAME)


@asynccontextmanager
async def _dev_stack(folder: Path) -> AsyncIterator[tuple[Sandbox, DevStack, ServerInfo]]:
    """What ``dev`` runs, in this loop: the sandbox, its config, the server."""
    async with open_sandbox() as sb, trio.open_nursery() as nursery:
        stack = build_stack(sb, folder=folder)
        loaded = _write_config(folder, stack)
        info: ServerInfo = await nursery.start(
            partial(run_server, loaded, environ={}, handle_signals=False)
        )
        try:
            yield sb, stack, info
        finally:
            info.stop()


async def test_the_walkthrough_holds_against_a_real_stack(tmp_path: Path) -> None:
    out = io.StringIO()
    async with _dev_stack(tmp_path / "dev") as (_, stack, info):
        assert stack.account.name == "alice"
        assert await run_walkthrough(info, stack.account, out)
        # The demo logged out: no session is left behind.
        assert info.identity.plugin.local_server_settings.enabled
        assert await info.identity.sessions.get("agent:main:telegram:direct:1001") is None
    transcript = out.getvalue()
    assert transcript.count("\n✓ ") == 10
    assert "✗" not in transcript
    assert "sub=alice, agent=openclaw-agent" in transcript
    assert OPENAI_KEY not in transcript
    assert "OPENAI_API_KEY=***0000" in transcript
    assert transcript.endswith("demo: all 10 steps held\n")


async def test_a_broken_provider_stops_the_walkthrough_with_the_reason(tmp_path: Path) -> None:
    out = io.StringIO()
    async with _dev_stack(tmp_path / "dev") as (sb, stack, info):
        # The 3LO provider disappears from the control plane: fetching it must fail.
        for key in [key for key in sb.state.providers if key[1] == "demo-oauth"]:
            del sb.state.providers[key]
        assert not await run_walkthrough(info, stack.account, out)
    lines = out.getvalue().splitlines()
    marks = [line[:1] for line in lines if line.startswith(("✓", "✗"))]
    assert marks == ["✓", "✓", "✓", "✓", "✗"]
    assert next(line for line in lines if line.startswith("✗")).startswith("✗ 3LO (")
    assert lines[-1] == "demo: step 5 of 10 failed; the rest were skipped"


async def test_the_guide_url_logs_the_main_session_in(tmp_path: Path) -> None:
    async with (
        _dev_stack(tmp_path / "dev") as (_, stack, info),
        httpx.AsyncClient(trust_env=False) as browser,
    ):
        url = await start_main_login(info, io.StringIO())
        assert url is not None
        assert f"  {url}" in guide_lines(info, stack, url)
        account = stack.account
        page = await submit_login_form(
            browser, url, username=account.name, password=account.password
        )
        assert page.status_code == 200
        session = await info.identity.sessions.get("agent:main:main")
        assert session is not None


async def test_the_guide_has_pastable_commands_with_real_paths(tmp_path: Path) -> None:
    folder = tmp_path / "a folder"  # a space: the commands must quote it
    async with _dev_stack(folder) as (sb, stack, info):
        lines = guide_lines(info, stack, "http://login.example/authorize?x=1")
    assert lines[:2] == stack_lines(info, stack)
    assert sb.base_url in lines[0]
    assert "demo-oauth" in lines[0]
    assert "openai" in lines[0]
    assert "valid for 5 minutes" in " ".join(lines)
    assert "  http://login.example/authorize?x=1" in lines
    assert "  user alice, password alice-password" in lines
    commands = [shlex.split(line) for line in lines if line.startswith(("  curl", "  agent-"))]
    assert commands[0] == [
        "curl",
        "--unix-socket",
        str(folder / "identity.sock"),
        "http://localhost/token",
    ]
    assert commands[1] == ["agent-identity", "ctl", "status", "--data-dir", str(folder)]
    assert commands[2][:3] == ["curl", "--unix-socket", str(folder / "gateway.sock")]
    assert json.loads(commands[2][4]) == {
        "commandBody": "/identity login",
        "sessionKey": "agent:main:main",
    }


def test_the_sandbox_thread_serves_until_stopped(tmp_path: Path) -> None:
    thread = SandboxThread(load_seed(), partial(build_stack, folder=tmp_path))
    stack = thread.start()
    host, port = stack.sandbox_url.removeprefix("http://").split(":")
    socket.create_connection((host, int(port)), timeout=10).close()  # it serves
    callback = stack.config["plugins"]["entries"]["agent-identity"]["config"]["userpool"]
    assert callback["callbackUrl"].startswith("http://127.0.0.1:")
    thread.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, int(port)), timeout=10)
