"""The clients in ``examples/local-server/`` talk to a real local identity server.

Each test starts the standalone server (``run_server``) against the sandbox, logs alice in
through the provider's form, and runs one client as its own process with the socket path as
its argument. The server is fail-closed and allowlists exactly that client's executable (curl
needs no entry), so a client only passes if the peer gate really identified it. A client
whose toolchain is missing is skipped with the reason; the Rust client is built once per run
in a temporary folder (a copy of the crate, so no ``Cargo.lock`` lands in the repository).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio

from agent_identity.actors.tip_messages import TipInfo
from agent_identity.config import LoadedConfig, parse_plugin_config
from agent_identity.sandbox import open_sandbox
from agent_identity.sandbox.browser import submit_login_form
from agent_identity.sandbox.devconfig import dev_plugin_config
from agent_identity.system.serve import ServerInfo, run_server
from agent_identity.transports.callback import CALLBACK_PATH

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "local-server"
MAIN = "agent:main:main"
SUB = re.compile(r'"sub":\s*"alice"')
WHOAMI = "Logged in as alice"
#: Seconds a client may take (``java Client.java`` compiles in memory first).
CLIENT_TIMEOUT = 120
BUILD_TIMEOUT = 600


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed: the {name} example client is not run")
    return found


def _name_of(exe: str) -> str:
    """The allowlist entry of an executable: its real basename (``/proc/<pid>/exe``'s)."""
    return Path(exe).resolve().name


def _build(argv: Sequence[str], env: dict[str, str], what: str) -> None:
    done = subprocess.run(
        list(argv), env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False
    )
    assert done.returncode == 0, f"{what} failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="session")
def rust_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Rust client, built once (``cargo build --release --offline``; no dependencies)."""
    cargo = _tool("cargo")
    root = tmp_path_factory.mktemp("rust-client")
    crate = root / "crate"
    shutil.copytree(EXAMPLES / "rust", crate)
    env = {**os.environ, "CARGO_TARGET_DIR": str(root / "target")}
    manifest = str(crate / "Cargo.toml")
    _build([cargo, "build", "--release", "--offline", "--quiet", "--manifest-path", manifest],
           env, "cargo build")  # fmt: skip
    binary = root / "target" / "release" / "identity-local-client"
    assert binary.is_file()
    return binary


@pytest.fixture(scope="session")
def go_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go client, built once (standard library only, no module download)."""
    go = _tool("go")
    root = tmp_path_factory.mktemp("go-client")
    env = {
        **os.environ,
        "GOCACHE": str(root / "cache"),
        "GOPATH": str(root / "path"),
        "GOTOOLCHAIN": "local",
        "GOFLAGS": "-mod=mod",
        "GOPROXY": "off",
    }
    binary = root / "identity-local-client"
    _build([go, "build", "-o", str(binary), str(EXAMPLES / "main.go")], env, "go build")
    return binary


@dataclass
class Running:
    """A server with alice logged in on the main session."""

    info: ServerInfo
    tip: TipInfo

    @property
    def socket(self) -> str:
        assert self.info.identity_socket is not None
        return str(self.info.identity_socket)


@asynccontextmanager
async def serving(tmp_path: Path, allowlist: Sequence[str]) -> AsyncIterator[Running]:
    callback = f"http://127.0.0.1:{_free_port()}{CALLBACK_PATH}"
    overrides = {
        "localServer": True,
        "localServerAllowlist": list(allowlist),
        "localServerFailOpen": False,
    }
    async with (
        open_sandbox() as sb,
        httpx.AsyncClient(timeout=10) as browser,
        trio.open_nursery() as nursery,
    ):
        plugin = dev_plugin_config(
            sb, callback_url=callback, data_dir=tmp_path / "identity", overrides=overrides
        )
        loaded = LoadedConfig(plugin=parse_plugin_config(plugin))
        run = partial(run_server, loaded, environ={}, handle_signals=False)
        info: ServerInfo = await nursery.start(run)
        assert info.identity.login_flow is not None
        url = await info.identity.login_flow.start_login(MAIN)
        page = await submit_login_form(browser, url, username="alice", password="alice-password")
        assert page.status_code == 200
        tip = await info.identity.tips.get_tip(MAIN)
        assert isinstance(tip, TipInfo)
        yield Running(info, tip)
        info.stop()


async def run_client(
    tmp_path: Path, argv: Sequence[str], allowlist: Sequence[str] = ()
) -> tuple[Running, subprocess.CompletedProcess[bytes]]:
    """Serve, run ``argv + [socket]`` to completion, return what it printed."""
    async with serving(tmp_path, allowlist) as running:
        with trio.fail_after(CLIENT_TIMEOUT):
            done = await trio.run_process(
                [*argv, running.socket],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
                env={**os.environ, "HOME": str(tmp_path)},
            )
    return running, done


def assert_worked(running: Running, done: subprocess.CompletedProcess[bytes]) -> None:
    out = done.stdout.decode()
    assert done.returncode == 0, f"exit {done.returncode}\n{out}\n{done.stderr.decode()}"
    assert running.tip.token in out  # the very TIP the server holds for alice
    assert SUB.search(out), out
    assert WHOAMI in out


async def test_curl_sh(tmp_path: Path) -> None:
    _tool("curl")
    sh = _tool("sh")
    running, done = await run_client(tmp_path, [sh, str(EXAMPLES / "curl.sh")])
    assert_worked(running, done)


async def test_client_py(tmp_path: Path) -> None:
    argv = [sys.executable, str(EXAMPLES / "client.py")]
    running, done = await run_client(tmp_path, argv, ["python*"])
    assert_worked(running, done)
    assert b"GET /token 200" in done.stdout


async def test_client_py_is_refused_without_an_allowlist_entry(tmp_path: Path) -> None:
    # The negative control: the same client, with its interpreter not allowlisted.
    running, done = await run_client(tmp_path, [sys.executable, str(EXAMPLES / "client.py")])
    assert done.returncode == 1
    out = done.stdout.decode()
    assert "GET /token 403" in out
    assert "not allowlisted" in out
    assert running.tip.token not in out


async def test_client_mjs(tmp_path: Path) -> None:
    node = _tool("node")
    allow = _name_of(node)
    running, done = await run_client(tmp_path, [node, str(EXAMPLES / "client.mjs")], [allow])
    assert_worked(running, done)


async def test_client_java(tmp_path: Path) -> None:
    java = _tool("java")
    allow = _name_of(java)
    running, done = await run_client(tmp_path, [java, str(EXAMPLES / "Client.java")], [allow])
    assert_worked(running, done)


async def test_rust_client(tmp_path: Path, rust_client: Path) -> None:
    running, done = await run_client(tmp_path, [str(rust_client)], [str(rust_client)])
    assert_worked(running, done)


async def test_go_client(tmp_path: Path, go_client: Path) -> None:
    running, done = await run_client(tmp_path, [str(go_client)], [str(go_client)])
    assert_worked(running, done)
