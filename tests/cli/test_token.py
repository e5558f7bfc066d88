"""``agent-identity token`` against a real daemon: the token, ``--json``, failures, exit codes.

The daemon is ``run_server`` (the whole standalone server) in the test's Trio loop, against
the sandbox, with a user logged in through the provider's form. The command runs either
in-process (``main([...])`` in a worker thread, since it blocks) or as a real process. Either
way the peer the local server sees is a Python interpreter, so the daemon allowlists it,
exactly as the command's documentation tells operators to.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from agent_identity.actors.tip_messages import TipInfo
from agent_identity.cli.main import main
from agent_identity.config import load_config
from agent_identity.sandbox import Sandbox, open_sandbox
from agent_identity.sandbox.browser import submit_login_form
from agent_identity.sandbox.devconfig import dev_plugin_config
from agent_identity.system.serve import CONTROL_SOCKET, IDENTITY_SOCKET, ServerInfo, run_server
from agent_identity.transports.callback import CALLBACK_PATH

MAIN = "agent:main:main"
BOB = "agent:main:telegram:direct:77"
#: The interpreter as the peer gate sees it (``/proc/<pid>/exe``).
PYTHON = str(Path("/proc/self/exe").readlink())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Daemon:
    """A running ``run_server`` and what the tests need around it."""

    sb: Sandbox
    browser: httpx.AsyncClient
    info: ServerInfo
    config: Path

    @property
    def data_dir(self) -> Path:
        return self.info.data_dir

    async def login(self, key: str = MAIN, user: str = "alice") -> TipInfo:
        flow = self.info.identity.login_flow
        assert flow is not None
        url = await flow.start_login(key)
        page = await submit_login_form(
            self.browser, url, username=user, password=f"{user}-password"
        )
        assert page.status_code == 200
        tip = await self.info.identity.tips.get_tip(key)
        assert isinstance(tip, TipInfo)
        return tip


class Opener:
    """Starts daemons on one sandbox: ``daemon = await opener(localServerAllowlist=[...])``."""

    def __init__(self, sb: Sandbox, browser: httpx.AsyncClient, nursery: trio.Nursery, tmp: Path):
        self._sb = sb
        self._browser = browser
        self._nursery = nursery
        self._tmp = tmp
        self._count = 0

    async def __call__(self, **overrides: Any) -> Daemon:
        self._count += 1
        base = self._tmp / f"d{self._count}"
        base.mkdir()
        callback = f"http://127.0.0.1:{_free_port()}{CALLBACK_PATH}"
        plugin = dev_plugin_config(
            self._sb, callback_url=callback, data_dir=base / "data", overrides=overrides
        )
        config = base / "plugin.json"
        config.write_text(json.dumps(plugin))
        loaded = load_config(config)
        run = partial(run_server, loaded, environ={}, handle_signals=False)
        info: ServerInfo = await self._nursery.start(run)
        return Daemon(self._sb, self._browser, info, config)


@pytest.fixture(autouse=True)
def _no_ambient_openclaw_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("OPENCLAW_CONFIG_PATH", raising=False)
    monkeypatch.delenv("OPENCLAW_STATE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture
async def opener(tmp_path: Path) -> AsyncIterator[Opener]:
    async with (
        open_sandbox() as sb,
        httpx.AsyncClient(timeout=10) as browser,
        trio.open_nursery() as nursery,
    ):
        yield Opener(sb, browser, nursery, tmp_path)
        nursery.cancel_scope.cancel()


@pytest.fixture
async def daemon(opener: Opener) -> Daemon:
    return await opener(localServer=True, localServerAllowlist=["python*"])


async def token(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``agent-identity token ARGV`` in a worker thread (it blocks on the socket)."""
    code = await trio.to_thread.run_sync(main, ["token", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def test_prints_the_main_sessions_token_on_one_line(
    daemon: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    tip = await daemon.login()
    code, out, err = await token(capsys, "--data-dir", str(daemon.data_dir))
    assert (code, out, err) == (0, tip.token + "\n", "")


async def test_json_and_another_session(daemon: Daemon, capsys: pytest.CaptureFixture[str]) -> None:
    alice = await daemon.login()
    bob = await daemon.login(BOB, "bob")
    code, out, err = await token(capsys, "--json", "--data-dir", str(daemon.data_dir))
    assert (code, err) == (0, "")
    body = json.loads(out)
    assert body == {
        "token": alice.token,
        "sessionKey": MAIN,
        "sub": "alice",
        "expiresAt": int(alice.expires_at),
        "delegationChain": list(alice.chain.actors),
    }
    code, out, err = await token(
        capsys, "--session", BOB, "--socket", str(daemon.info.identity_socket)
    )
    assert (code, out, err) == (0, bob.token + "\n", "")


async def test_the_socket_is_found_from_the_config_file(
    daemon: Daemon, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    tip = await daemon.login()
    assert (await token(capsys, "--config", str(daemon.config)))[:2] == (0, tip.token + "\n")
    # Without any option: the default config file ($OPENCLAW_CONFIG_PATH here).
    monkeypatch.setenv("OPENCLAW_CONFIG_PATH", str(daemon.config))
    assert (await token(capsys))[:2] == (0, tip.token + "\n")


async def test_a_session_that_is_not_logged_in_prints_the_servers_message(
    daemon: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await token(capsys, "--session", BOB, "--data-dir", str(daemon.data_dir))
    assert (code, out) == (1, "")
    assert err == (
        f"error: Session '{BOB}' is not logged in. Run /identity login in that chat first.\n"
    )


async def test_a_process_that_is_not_allowlisted_is_told_how_to_allow_it(
    opener: Opener, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon = await opener(localServer=True, localServerFailOpen=False)
    tip = await daemon.login()
    code, out, err = await token(capsys, "--data-dir", str(daemon.data_dir))
    assert (code, out) == (1, "")
    first, *hint = err.splitlines()
    assert first.startswith("error: process not allowlisted: ")
    assert PYTHON in first
    assert f'"localServerAllowlist": ["{PYTHON}"]' in err
    assert "agent-identity ctl reload" in err
    assert hint
    # The hint is honest: no curl fallback fetched the token anyway.
    assert tip.token not in out + err


async def test_following_the_hint_makes_it_work(
    opener: Opener, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon = await opener(localServer=True, localServerFailOpen=False)
    tip = await daemon.login()
    assert (await token(capsys, "--data-dir", str(daemon.data_dir)))[0] == 1
    # What the hint says: list the interpreter, then ``agent-identity ctl reload``.
    plugin = json.loads(daemon.config.read_text())
    plugin["localServerAllowlist"] = [PYTHON]
    daemon.config.write_text(json.dumps(plugin))
    reload = await trio.to_thread.run_sync(
        main, ["ctl", "reload", "--data-dir", str(daemon.data_dir)]
    )
    capsys.readouterr()
    assert reload == 0
    assert await token(capsys, "--data-dir", str(daemon.data_dir)) == (0, tip.token + "\n", "")


async def test_no_daemon_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "nothing-here"
    code, out, err = await token(capsys, "--data-dir", str(empty))
    assert (code, out) == (1, "")
    assert err == (
        f"error: agent-identity is not running (no socket at {empty / IDENTITY_SOCKET}); "
        "start it: agent-identity serve\n"
    )
    # A socket file left behind by a dead daemon: nothing listens.
    stale = tmp_path / "stale"
    stale.mkdir()
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(stale / IDENTITY_SOCKET))
    code, out, err = await token(capsys, "--data-dir", str(stale))
    assert (code, out) == (1, "")
    assert err == (
        f"error: agent-identity is not running: nothing listens on {stale / IDENTITY_SOCKET}\n"
    )


async def test_a_daemon_without_the_local_server_says_so(
    opener: Opener, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon = await opener()  # localServer is off by default
    assert (daemon.data_dir / CONTROL_SOCKET).exists()
    code, out, err = await token(capsys, "--data-dir", str(daemon.data_dir))
    assert (code, out) == (1, "")
    assert "runs without the local identity server" in err
    assert "localServer: true" in err
    assert err.count("\n") == 1


async def test_a_server_that_never_answers_times_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Listening, never accepting: the connect succeeds (backlog), the answer never comes.
    with socket.socket(socket.AF_UNIX) as mute:
        mute.bind(str(tmp_path / IDENTITY_SOCKET))
        mute.listen()
        code, out, err = await token(
            capsys, "--timeout", "0.2", "--socket", str(tmp_path / IDENTITY_SOCKET)
        )
    assert (code, out) == (1, "")
    assert err == "error: the local identity server did not answer within 0.2s\n"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            "error: the local identity server sent an unexpected answer\n",
        ),
        (
            b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 4\r\n\r\noops",
            "error: the local identity server answered 502\n",
        ),
        (b"", "error: the local identity server broke off its answer ("),
    ],
)
async def test_something_else_on_the_socket_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], answer: bytes, expected: str
) -> None:
    path = tmp_path / IDENTITY_SOCKET
    listener = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with listener:
        await listener.bind(str(path))
        listener.listen()

        async def answer_once() -> None:
            conn, _ = await listener.accept()
            with conn:
                await conn.recv(65536)
                if answer:
                    await conn.send(answer)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(answer_once)
            code, out, err = await token(capsys, "--socket", str(path))
    assert (code, out) == (1, "")
    assert err.startswith(expected)
    assert err.count("\n") == 1


async def test_a_bad_config_file_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"identity": {"endpoint": 5}}')
    code, out, err = await token(capsys, "--config", str(bad))
    assert (code, out) == (2, "")
    assert err.startswith(f"error: {bad}")


async def test_as_a_real_process(daemon: Daemon) -> None:
    tip = await daemon.login()
    argv = [sys.executable, "-m", "agent_identity.cli", "token", "--data-dir", str(daemon.data_dir)]
    env = {**os.environ, "HOME": str(daemon.data_dir.parent)}
    done = await trio.run_process(argv, capture_stdout=True, capture_stderr=True, env=env)
    assert done.stdout.decode() == tip.token + "\n"
    assert done.stderr == b""
    missing = [*argv[:-1], str(daemon.data_dir.parent / "elsewhere")]
    failed = await trio.run_process(
        missing, capture_stdout=True, capture_stderr=True, env=env, check=False
    )
    assert failed.returncode == 1
    assert failed.stdout == b""
    assert b"not running" in failed.stderr
