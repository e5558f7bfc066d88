"""``examples/embedded_gateway.py`` runs as a real process against the sandbox and works."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import trio

from agent_identity.sandbox import open_sandbox
from agent_identity.sandbox.browser import submit_login_form
from agent_identity.sandbox.devconfig import dev_openclaw_json

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "embedded_gateway.py"
_URL = re.compile(r"https?://\S+")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Lines:
    """Reads the example's stdout line by line."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buffer = b""
        self.seen: list[str] = []

    async def until(self, fragment: str) -> str:
        with trio.fail_after(30):
            while True:
                while b"\n" in self._buffer:
                    raw, self._buffer = self._buffer.split(b"\n", 1)
                    line = raw.decode()
                    self.seen.append(line)
                    if fragment in line:
                        return line
                chunk = await self._stream.receive_some()
                assert chunk, f"the example ended; it printed: {self.seen}"
                self._buffer += chunk


@asynccontextmanager
async def _running(config: Path) -> AsyncIterator[tuple[trio.Process, Lines]]:
    process = await trio.lowlevel.open_process(
        [sys.executable, str(EXAMPLE), "--config", str(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        yield process, Lines(process.stdout)
    finally:
        if process.returncode is None:
            process.kill()
            with trio.move_on_after(5) as scope:
                scope.shield = True
                await process.wait()


async def test_the_embedded_gateway_example(tmp_path: Path) -> None:
    async with open_sandbox() as sb, httpx.AsyncClient(timeout=10) as browser:
        callback = f"http://127.0.0.1:{_free_port()}/identity/oauth/callback"
        document = dev_openclaw_json(sb, callback_url=callback, data_dir=tmp_path / "data")
        config = tmp_path / "openclaw.json"
        config.write_text(json.dumps(document))
        async with _running(config) as (process, out):
            assert process.stdin is not None
            stdin = process.stdin
            await out.until("gateway ready")
            await stdin.send_all(b"1001 hello\n")
            gate = await out.until("[to 1001]")
            url = _URL.search(gate)
            assert url is not None, gate
            page = await submit_login_form(
                browser, url.group(0), username="alice", password="alice-password"
            )
            assert page.status_code == 200
            await stdin.send_all(b"1001 /identity whoami\n")
            assert "alice" in await out.until("[to 1001]")
            await stdin.send_all(b"1001 /identity fetch openai\n")
            await out.until("[to 1001]")
            await stdin.send_all(b"1001 /identity set openai OPENAI_API_KEY\n")
            await out.until("[to 1001]")
            await stdin.send_all(b"1001 !exec env\n")
            assert "exec runs with env: OPENAI_API_KEY" in await out.until("[to 1001]")
            await stdin.send_all(b"2002 !exec env\n")  # Bob never logged in: the gate stops him
            assert "sign in" in await out.until("[to 2002]")
            await stdin.aclose()
            with trio.fail_after(30):
                assert await process.wait() == 0
            assert not any("sk-sandbox" in line for line in out.seen)
