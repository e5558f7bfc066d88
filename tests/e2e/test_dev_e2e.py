"""``agent-identity dev`` end to end, as a person uses it: a real process, its printed guide.

The first test follows the guide: it opens the printed login URL with httpx (the provider's
HTML form, filled in with the printed user and password), pastes the printed ``curl`` and
``ctl status`` commands, then stops the server with SIGTERM. The second runs ``--demo`` and
reads its transcript.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trio

from agent_identity.authz.tip_claims import decode_tip_claims
from agent_identity.sandbox.browser import submit_login_form

CLI = [sys.executable, "-m", "agent_identity.cli"]
#: Generous: a loaded 2-core machine; the stack itself is ready in about 0.1 s.
TIMEOUT = 60
GUIDE_END = b"Stop with Ctrl-C."
OPENAI_KEY = "sk-sandbox-openai-0000000000000000"


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A folder with a short path: socket paths are limited to about 100 bytes, which a
    folder under pytest's ``tmp_path`` can exceed (long test names, long user names)."""
    folder = Path(tempfile.mkdtemp(prefix="aid-dev-"))
    yield folder
    shutil.rmtree(folder)


def _environ(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCLAW_")}
    env["HOME"] = str(tmp_path / "home")
    return env


async def _read_until(stream: trio.abc.ReceiveStream, marker: bytes) -> str:
    buffer = b""
    while marker not in buffer:
        chunk = await stream.receive_some()
        assert chunk, f"the output ended before {marker!r}:\n{buffer.decode()}"
        buffer += chunk
    return buffer.decode()


@asynccontextmanager
async def _running(
    argv: list[str], env: dict[str, str], stderr: Path
) -> AsyncIterator[trio.Process]:
    """The process; killed (and reaped) if the test leaves before it exits."""
    with stderr.open("wb") as err:
        process = await trio.lowlevel.open_process(
            argv, stdout=subprocess.PIPE, stderr=err, env=env
        )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            with trio.move_on_after(5) as scope:
                scope.shield = True
                await process.wait()
        assert process.stdout is not None
        await process.stdout.aclose()


def _dev_folders(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if p.name.startswith("agent-identity-dev-")]


def _pasted(text: str, needle: str) -> list[str]:
    line = next(line for line in text.splitlines() if needle in line)
    argv = shlex.split(line)
    # The guide names the installed console script; the test runs the same code via -m.
    return CLI + argv[1:] if argv[0] == "agent-identity" else argv


async def test_dev_login_token_ctl_and_sigterm(tmp_path: Path, short_tmp: Path) -> None:
    data = short_tmp / "dev folder"  # a space: the pasted commands must quote it
    argv = [*CLI, "dev", "--data-dir", str(data), "--log-level", "warning"]
    with trio.fail_after(TIMEOUT):
        async with (
            _running(argv, _environ(tmp_path), tmp_path / "stderr.txt") as proc,
            httpx.AsyncClient(trust_env=False) as browser,
        ):
            assert proc.stdout is not None
            guide = await _read_until(proc.stdout, GUIDE_END)
            # The sockets are where the guide says, in the data folder.
            for name in ("identity.sock", "gateway.sock", "control.sock"):
                assert str(data / name) in guide
                assert (data / name).is_socket()
            assert "valid for 5 minutes" in guide
            assert "`/identity login` makes a new one" in guide

            # The browser: the printed URL, the provider's form, the printed credentials.
            url = next(line.strip() for line in guide.splitlines() if "/authorize?" in line)
            assert url.startswith("http://127.0.0.1:")
            credentials = next(line for line in guide.splitlines() if "password" in line)
            assert credentials.strip() == "user alice, password alice-password"
            page = await submit_login_form(
                browser, url, username="alice", password="alice-password"
            )
            assert page.status_code == 200
            assert "Logged in" in page.text

            # The pasted curl command reads the main session's TIP over identity.sock.
            curl = await trio.run_process(
                _pasted(guide, "http://localhost/token"), capture_stdout=True
            )
            claims = decode_tip_claims(json.loads(curl.stdout)["token"])
            assert claims.sub == "alice"
            assert claims.agent == "openclaw-agent"

            # The pasted ctl command sees the running server and its one session.
            ctl = await trio.run_process(
                _pasted(guide, "ctl status --data-dir"),
                capture_stdout=True,
                env=_environ(tmp_path),
            )
            status = ctl.stdout.decode()
            assert "sessions: 1" in status
            assert "session_store" in status

            proc.send_signal(signal.SIGTERM)
            assert await proc.wait() == 0
    assert b"Traceback" not in (tmp_path / "stderr.txt").read_bytes()
    # --data-dir is kept: config, key and the encrypted sessions stay; the sockets are gone.
    assert sorted(p.name for p in data.iterdir()) == [
        "openclaw.json",
        "sessions.json",
        "store.key",
    ]
    stored = (data / "sessions.json").read_text()
    envelope = json.loads(stored)
    assert envelope["alg"] == "A256GCM"
    assert envelope["ciphertext"]
    assert "alice" not in stored
    assert "eyJ" not in stored  # neither the id token nor the TIP in clear


async def test_dev_demo_transcript(short_tmp: Path) -> None:
    with trio.fail_after(TIMEOUT):
        done = await trio.run_process(
            [*CLI, "dev", "--demo"],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env={**_environ(short_tmp), "TMPDIR": str(short_tmp)},
        )
    out, err = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 0, out + err
    steps = [line for line in out.splitlines() if line.startswith(("✓", "✗"))]
    assert [line.split(":", 1)[0] for line in steps] == [
        "✓ gate",
        "✓ login",
        "✓ TIP claims",
        "✓ API key",
        "✓ 3LO",
        "✓ bindings",
        "✓ tool call",
        "✓ risky call",
        "✓ /token",
        "✓ logout",
    ]
    assert out.rstrip().endswith("demo: all 10 steps held")
    assert "filled in as alice" in out
    assert "sub=alice, agent=openclaw-agent" in out
    assert "OPENAI_API_KEY=***0000" in out
    assert "/identity approve → the identical retry runs once" in out
    assert "this Python process gets 403" in out
    # Secrets stay masked: neither the API key, nor any JWT (id token, TIP, 3LO token).
    assert OPENAI_KEY not in out + err
    assert "eyJ" not in out + err
    # The temporary folder (under TMPDIR) is gone once the demo has stopped the server.
    assert _dev_folders(short_tmp) == []
