"""The cold start of ``agent-identity serve``: only what it needs is loaded before it is ready.

Most of a cold start is imports (``scripts/bench/cold_start.py``), so the command line, the
composition root and the services defer what the start does not use: the other commands'
modules, the host handlers (built on the first gateway call), the Feishu sender (only with
``channels.feishu``) and the HTTP transport (first request). These tests fail when one of
those comes back onto the start path. What is imported is checked in a new interpreter, since
this one has imported everything already. The store's file, read on every start, is parsed by
a faster path: the last tests check that it reaches the same verdicts as the general one.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from agent_identity.cli.main import COMMANDS, build_parser
from agent_identity.storage import SessionRecord
from agent_identity.storage._envelope import (
    ParsedSessions,
    _unb64,
    encode_sessions,
    parse_sessions_file,
    parse_sessions_file_general,
    seal,
)
from agent_identity.storage._errors import UnreadableFileError
from agent_identity.storage._keys import StoreKey
from agent_identity.system.services import DeferredTransport, open_http_client

#: Starts the server as ``agent-identity serve --config FILE`` does (the parser of the command
#: line, then ``run_server``), prints every module imported once it is ready, and stops it.
START_AND_LIST = """
import sys
from functools import partial

import trio

from agent_identity.cli.main import build_parser

args = build_parser(sys.argv[1:]).parse_args(sys.argv[1:])

from agent_identity.config import load_config
from agent_identity.system.serve import run_server


async def start() -> None:
    async with trio.open_nursery() as nursery:
        start = partial(run_server, load_config(args.config), handle_signals=False)
        info = await nursery.start(start)
        print("\\n".join(sorted(sys.modules)))
        info.stop()


trio.run(start)
"""

#: Imported on first use, never before ``serve`` is ready (a package counts with its modules).
NOT_AT_START = (
    # The other commands.
    "agent_identity.cli.ctl",
    "agent_identity.cli.demo",
    "agent_identity.cli.dev",
    "agent_identity.cli.token",
    "agent_identity.sandbox",
    "cedarpy",
    # The host handlers: Identity.host builds them on the first gateway call.
    "agent_identity.host.api",
    "agent_identity.host.commands",
    "agent_identity.host.gateway",
    "agent_identity.host.hooks",
    "agent_identity.host.tools",
    # The Feishu sender: only with channels.feishu.
    "agent_identity.notify.feishu",
    # The HTTP transport (and its CA bundle): on the first request.
    "httpcore",
    # PyJWT (with cryptography.x509): on the first TIP or login.
    "jwt",
    # The host operations: the system's follow-ups live in agent_identity.system.
    "agent_identity.host.ops_credentials",
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _config(folder: Path) -> Path:
    closed = "http://127.0.0.1:9"  # never contacted at start
    port = _free_port()
    document = {
        "identity": {"endpoint": closed, "accessKeyId": "AKLTtest", "localServer": True,
                     "secretAccessKey": "test-secret-access-key"},
        "userpool": {"discoveryUrl": f"{closed}/.well-known/openid-configuration",
                     "clientId": "test-client", "clientSecret": "test-client-secret",
                     "scope": "openid",
                     "callbackUrl": f"http://127.0.0.1:{port}/identity/oauth/callback"},
        "dataDir": os.fspath(folder / "data"),
    }  # fmt: skip
    path = folder / "openclaw.json"
    path.write_text(json.dumps(document))
    return path


def _imported(code: str, *argv: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return set(result.stdout.split())


def _loaded(modules: set[str], name: str) -> bool:
    return any(module == name or module.startswith(f"{name}.") for module in modules)


@pytest.mark.slow
def test_serve_is_ready_without_what_it_needs_only_later(tmp_path: Path) -> None:
    modules = _imported(START_AND_LIST, "serve", "--config", os.fspath(_config(tmp_path)))
    assert {"agent_identity.system.serve", "hypercorn", "agent_identity.actors.session_store"} <= (
        modules
    )
    assert [name for name in NOT_AT_START if _loaded(modules, name)] == []


def test_a_command_line_imports_only_its_command() -> None:
    code = "import sys\nfrom agent_identity.cli.main import build_parser\n"
    code += "build_parser(sys.argv[1:])\nprint('\\n'.join(sorted(sys.modules)))"
    modules = _imported(code, "ctl", "status", "--json")
    assert "agent_identity.cli.ctl" in modules
    assert not _loaded(modules, "agent_identity.system")
    assert not _loaded(modules, "agent_identity.cli.serve")


@pytest.mark.parametrize(
    "argv", [[], ["--help"], ["--version"], ["nope"], ["-h", "serve"], ["--version", "ctl"]]
)
def test_help_and_unknown_commands_see_every_command(argv: list[str]) -> None:
    text = build_parser(argv).format_help()
    assert all(f"    {name} " in text for name in COMMANDS), text


def test_a_named_command_parses_as_before() -> None:
    args = build_parser(["ctl", "status"]).parse_args(["ctl", "status"])
    assert args.ctl_command == "status"
    assert args.handler is not None
    with pytest.raises(SystemExit):
        build_parser(["serve"]).parse_args(["serve", "ctl"])


async def _answer_once(listeners: list[trio.SocketListener]) -> None:
    async with await listeners[0].accept() as stream:
        request = b""
        while b"\r\n\r\n" not in request:
            request += await stream.receive_some(4096)
        await stream.send_all(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
        )


def _built(client: httpx.AsyncClient) -> httpx.AsyncBaseTransport | None:
    transport = client._transport
    assert isinstance(transport, DeferredTransport)
    return transport._transport


async def test_the_shared_client_builds_its_transport_on_the_first_request() -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as nursery, open_http_client() as client:
        assert _built(client) is None
        nursery.start_soon(_answer_once, listeners)
        response = await client.get(f"http://127.0.0.1:{port}/")
        assert (response.status_code, response.text) == (200, "ok")
        assert isinstance(_built(client), httpx.AsyncHTTPTransport)
    await listeners[0].aclose()


async def test_an_unused_shared_client_closes() -> None:
    async with open_http_client() as client:
        assert isinstance(client._transport, DeferredTransport)
    assert client.is_closed


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "http_proxy", "ALL_PROXY"])
async def test_a_proxy_in_the_environment_gets_httpx_own_transports(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "http://127.0.0.1:9")
    async with open_http_client() as client:
        assert not isinstance(client._transport, DeferredTransport)
        assert any(mount is not None for mount in client._mounts.values())


def _b64decode(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _unb64_or_none(text: str) -> bytes | None:
    try:
        return _unb64(text, "ciphertext")
    except UnreadableFileError:
        return None


@given(st.text(alphabet="QUJDab+/=\n -_0", max_size=12) | st.binary(max_size=12).map(
    lambda raw: base64.b64encode(raw).decode("ascii")
))  # fmt: skip
def test_the_store_decodes_base64_exactly_as_b64decode_validate(text: str) -> None:
    # The store reads its ciphertext with msgspec's decoder (faster at every start), falling
    # back to b64decode(validate=True) for whatever msgspec refuses: same verdict, same bytes.
    assert _unb64_or_none(text) == _b64decode(text)


def _verdict(parse: Callable[[], ParsedSessions]) -> object:
    try:
        parsed = parse()
    except UnreadableFileError as exc:
        return str(exc)
    return (parsed.sessions, parsed.plaintext, parsed.nonce)


_SEALED_KEY = StoreKey(bytes(range(32)), source="test")
_RECORD = SessionRecord(
    session_key="agent:main:main", sub="u-1", user_token="t", expires_at=2e9, login_at=1e9
)
_SEALED = json.loads(seal(encode_sessions([_RECORD]), _SEALED_KEY))
_CHANGES: list[tuple[str, object]] = [
    ("version", 1.0), ("version", True), ("version", 2), ("alg", "A128GCM"), ("kid", "x"),
    ("nonce", "!!"), ("nonce", "QUJD"), ("ciphertext", 7), ("ciphertext", "QUJD===="),
    ("ciphertext", "QUJD\n"), ("ciphertext", _SEALED["ciphertext"] + "===="), ("extra", 1),
]  # fmt: skip


@pytest.mark.parametrize(("field", "value"), [(None, None), *_CHANGES, ("ciphertext", None)])
def test_the_one_pass_read_of_the_store_gives_the_general_paths_verdict(
    field: str | None, value: object
) -> None:
    document = dict(_SEALED)
    if field is not None:
        if value is None:
            del document[field]
        else:
            document[field] = value
    data = json.dumps(document).encode()
    expected = _verdict(lambda: parse_sessions_file_general(data, _SEALED_KEY, now=0.0))
    assert _verdict(lambda: parse_sessions_file(data, _SEALED_KEY, now=0.0)) == expected
    if field is None:
        assert isinstance(expected, tuple)


def test_a_duplicated_field_of_the_store_counts_once_either_way() -> None:
    first = json.dumps({**_SEALED, "ciphertext": "QUJD"})[:-1]
    data = f'{first}, "ciphertext": "{_SEALED["ciphertext"]}"}}'.encode()
    parsed = _verdict(lambda: parse_sessions_file(data, _SEALED_KEY, now=0.0))
    assert parsed == _verdict(lambda: parse_sessions_file_general(data, _SEALED_KEY, now=0.0))
    assert isinstance(parsed, tuple)
