"""The Unix-socket HTTP server, driven over a real socket by a raw client."""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import pytest
import trio
import trio.testing

from agent_identity.transports.uds_http import (
    HttpLimits,
    HttpRequest,
    HttpResponse,
    UdsHttpServer,
    json_error,
    serve_uds_http,
)
from agent_identity.transports.uds_socket import open_unix_listener

TOKEN = b'{"token":"t-1"}'


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """A raw HTTP/1.1 client: bytes out, responses parsed just enough to check them."""

    opened: ClassVar[list[Client]] = []  # closed after each test by the ``close_clients`` fixture

    def __init__(self, sock: trio.socket.SocketType) -> None:
        self.sock = sock
        self.buf = b""
        Client.opened.append(self)

    @classmethod
    async def open(cls, path: Path) -> Client:
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            await sock.connect(os.fspath(path))
        except OSError:
            sock.close()
            raise
        return cls(sock)

    async def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[await self.sock.send(view) :]

    async def _fill(self) -> None:
        data = await self.sock.recv(1 << 16)
        if not data:
            raise EOFError
        self.buf += data

    async def response(self, *, head_only: bool = False) -> Reply:
        while b"\r\n\r\n" not in self.buf:
            await self._fill()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.lower()] = value.strip()
        length = 0 if head_only or status == 100 else int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            await self._fill()
        body, self.buf = self.buf[:length], self.buf[length:]
        return Reply(status, headers, body)

    async def get(self, target: str = "/token", extra: str = "") -> Reply:
        await self.send(f"GET {target} HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n".encode())
        return await self.response()

    async def closed(self) -> bool:
        """Read until the server closes; True if nothing but EOF (or a reset) came."""
        try:
            data = await self.sock.recv(1 << 16)
        except ConnectionResetError:
            return True
        return data == b"" and self.buf == b""

    def close(self) -> None:
        self.sock.close()


class App:
    """Routes for the tests; remembers what the handler saw."""

    def __init__(self) -> None:
        self.requests: list[HttpRequest] = []
        self.release = trio.Event()

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        if request.path == "/token":
            return HttpResponse(200, TOKEN)
        if request.path == "/echo":
            return HttpResponse(200, request.body, "application/octet-stream")
        if request.path == "/boom":
            raise RuntimeError("secret-detail")
        if request.path == "/bad-header":
            return HttpResponse(200, b"", headers=(("X-A", "b\r\nSet-Cookie: c"),))
        if request.path == "/slow":
            await self.release.wait()
            return HttpResponse(200, b"slow")
        return json_error(404, "not_found", "no such endpoint")


@dataclass
class Decision:
    allowed: bool
    reason: str
    peer: object
    closed: int = 0

    def close(self) -> None:
        self.closed += 1


@dataclass
class Gate:
    admit_ok: bool = True
    confirm_ok: bool = True
    broken: bool = False
    admitted: list[int] = field(default_factory=list)
    confirmed: int = 0
    decisions: list[Decision] = field(default_factory=list)

    def admit(self, fd: int) -> Decision:
        if self.broken:
            raise RuntimeError("cannot read /proc")
        self.admitted.append(fd)
        reason = "allowlisted" if self.admit_ok else "process not allowlisted: pid=7"
        decision = Decision(self.admit_ok, reason, {"pid": 7})
        self.decisions.append(decision)
        return decision

    def confirm(self, decision: Decision) -> Decision:
        self.confirmed += 1
        return decision if self.confirm_ok else Decision(False, "connector exited", None)


@dataclass
class Served:
    path: Path
    app: App
    server: UdsHttpServer
    scope: trio.CancelScope


async def serve(
    nursery: trio.Nursery, path: Path, gate: Gate | None = None, **limits: Any
) -> Served:
    """Serve ``App`` at ``path`` until the test ends or ``Served.scope`` is cancelled."""
    app = App()
    scope = trio.CancelScope()
    serving = partial(serve_uds_http, handler=app, gate=gate, limits=HttpLimits(**limits))

    async def run(task_status: trio.TaskStatus[UdsHttpServer]) -> None:
        with scope, open_unix_listener(path) as listener:
            async with trio.open_nursery() as inner:
                task_status.started(await inner.start(serving, listener))

    server = await nursery.start(run)
    return Served(path, app, server, scope)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "run" / "http.sock"


@pytest.fixture(autouse=True)
async def close_clients() -> AsyncIterator[None]:
    yield
    while Client.opened:
        Client.opened.pop().close()


# --------------------------------------------------------------------------- requests


async def test_get_token(nursery: trio.Nursery, path: Path) -> None:
    served = await serve(nursery, path)
    client = await Client.open(path)
    reply = await client.get("/token?session=agent%3Amain", "X-Trace: 1\r\n")
    assert reply.status == 200
    assert reply.body == TOKEN
    assert reply.headers["content-type"] == "application/json"
    assert "connection" not in reply.headers
    (request,) = served.app.requests
    assert (request.method, request.path, request.body) == ("GET", "/token", b"")
    assert request.query == {"session": "agent:main"}
    assert request.headers == {"host": "localhost", "x-trace": "1"}
    assert request.peer is None


async def test_keep_alive_serves_many_requests_on_one_connection(
    nursery: trio.Nursery, path: Path
) -> None:
    served = await serve(nursery, path)
    client = await Client.open(path)
    for _ in range(3):
        assert (await client.get()).status == 200
    assert (await client.get("/missing")).json()["error"] == "not_found"
    stats = served.server.statistics()
    assert stats.connections_accepted == 1
    assert stats.connections_open == 1
    assert stats.requests == 4
    assert stats.responses == {200: 3, 404: 1}


async def test_pipelined_requests_are_answered_in_order(nursery: trio.Nursery, path: Path) -> None:
    await serve(nursery, path)
    client = await Client.open(path)
    bodies = [f"request {i}".encode() for i in range(20)]
    await client.send(
        b"".join(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(b), b)
            for b in bodies
        )
    )
    assert [(await client.response()).body for _ in bodies] == bodies


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /token HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /token HTTP/1.0\r\n\r\n",
    ],
)
async def test_close_requests_end_the_connection(
    nursery: trio.Nursery, path: Path, request_bytes: bytes
) -> None:
    await serve(nursery, path)
    client = await Client.open(path)
    await client.send(request_bytes)
    reply = await client.response()
    assert reply.status == 200
    assert reply.headers["connection"] == "close"
    assert await client.closed()


async def test_a_body_sent_in_pieces(nursery: trio.Nursery, path: Path) -> None:
    served = await serve(nursery, path)
    client = await Client.open(path)
    await client.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello")
    await trio.testing.wait_all_tasks_blocked()
    assert served.app.requests == []  # still waiting for the rest of the body
    await client.send(b" worl")
    await client.send(b"dGET /token HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await client.response()).body == b"hello world"
    assert (await client.response()).body == TOKEN  # the body ended where it said it would


async def test_expect_continue(nursery: trio.Nursery, path: Path) -> None:
    await serve(nursery, path)
    client = await Client.open(path)
    await client.send(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"
    )
    interim = await client.response()
    assert interim.status == 100
    await client.send(b"body")
    reply = await client.response()
    assert (reply.status, reply.body) == (200, b"body")


async def test_head_gets_the_length_but_no_body(nursery: trio.Nursery, path: Path) -> None:
    await serve(nursery, path)
    client = await Client.open(path)
    await client.send(b"HEAD /token HTTP/1.1\r\nHost: x\r\n\r\n")
    reply = await client.response(head_only=True)
    assert reply.headers["content-length"] == str(len(TOKEN))
    assert (await client.get()).body == TOKEN  # no stray body bytes came before it


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400, "bad_request"),
        (b"GET / HTTP/1.1\nHost: x\n\n", 400, "bad_request"),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, "version_not_supported"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411,
         "length_required"),
        (b"GET /" + b"a" * 200 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"A: b\r\n" * 10 + b"\r\n", 431, "headers_too_large"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n", 413, "payload_too_large"),
    ],
)  # fmt: skip
async def test_bad_requests_are_answered_then_closed(
    nursery: trio.Nursery, path: Path, raw: bytes, status: int, code: str
) -> None:
    served = await serve(
        nursery, path, max_request_line=100, max_header_count=8, max_body_bytes=100
    )
    client = await Client.open(path)
    await client.send(raw)
    reply = await client.response()
    assert reply.status == status
    assert reply.json()["error"] == code
    assert reply.headers["connection"] == "close"
    assert await client.closed()
    assert served.app.requests == []
    assert served.server.statistics().responses == {status: 1}


async def test_a_handler_exception_is_a_500_without_details(
    nursery: trio.Nursery, path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    served = await serve(nursery, path)
    client = await Client.open(path)
    with caplog.at_level(logging.ERROR):
        reply = await client.get("/boom")
    assert reply.status == 500
    assert reply.json() == {"error": "internal_error", "message": "the request failed"}
    assert b"secret" not in reply.body
    assert "secret-detail" in caplog.text  # logged for the operator
    assert (await client.get()).status == 200  # and the connection goes on
    assert served.server.statistics().handler_errors == 1


async def test_an_unsafe_response_is_a_500(nursery: trio.Nursery, path: Path) -> None:
    await serve(nursery, path)
    client = await Client.open(path)
    reply = await client.get("/bad-header")
    assert reply.status == 500
    assert "set-cookie" not in reply.headers


# --------------------------------------------------------------------------- the peer gate


async def test_a_refused_peer_gets_403_before_sending_anything(
    nursery: trio.Nursery, path: Path
) -> None:
    gate = Gate(admit_ok=False)
    served = await serve(nursery, path, gate)
    client = await Client.open(path)
    reply = await client.response()  # no request was sent
    assert reply.status == 403
    assert reply.json() == {"error": "forbidden", "message": "process not allowlisted: pid=7"}
    assert await client.closed()
    assert len(gate.admitted) == 1
    client.close()  # ends the server's lingering read
    await trio.testing.wait_all_tasks_blocked()
    assert gate.decisions[0].closed == 1
    assert served.app.requests == []
    assert served.server.statistics().connections_refused == 1


async def test_confirm_runs_for_each_request_and_its_peer_reaches_the_handler(
    nursery: trio.Nursery, path: Path
) -> None:
    gate = Gate()
    served = await serve(nursery, path, gate)
    client = await Client.open(path)
    assert (await client.get()).status == 200
    assert (await client.get()).status == 200
    assert gate.confirmed == 2
    assert [r.peer for r in served.app.requests] == [{"pid": 7}, {"pid": 7}]
    gate.confirm_ok = False  # the connector exited and its pid was reused
    reply = await client.get()
    assert (reply.status, reply.json()["message"]) == (403, "connector exited")
    assert await client.closed()
    assert len(served.app.requests) == 2
    client.close()
    await trio.testing.wait_all_tasks_blocked()
    assert gate.decisions[0].closed == 1
    assert served.server.statistics().connections_refused == 1


@pytest.fixture
def python_name() -> str:
    return Path(sys.executable).resolve().name


async def test_the_real_peer_gate_fits(nursery: trio.Nursery, path: Path, python_name: str) -> None:
    peer = pytest.importorskip("agent_identity.transports.peer")
    served = await serve(nursery, path, peer.PeerGate([python_name], fail_open=False))
    client = await Client.open(path)
    assert (await client.get()).status == 200
    assert getattr(served.app.requests[0].peer, "pid", None) == os.getpid()
    refusing = path.parent / "other.sock"
    await serve(nursery, refusing, peer.PeerGate([], fail_open=False))
    reply = await (await Client.open(refusing)).response()
    assert reply.status == 403
    assert "not allowlisted" in reply.json()["message"]


async def test_a_gate_that_fails_closes_the_connection_unanswered(
    nursery: trio.Nursery, path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gate = Gate(broken=True)
    served = await serve(nursery, path, gate)
    client = await Client.open(path)
    await client.send(b"GET /token HTTP/1.1\r\nHost: x\r\n\r\n")
    with caplog.at_level(logging.ERROR):
        assert await client.closed()  # fail closed: no answer at all
    assert "cannot read /proc" in caplog.text
    assert served.app.requests == []
    gate.broken = False
    assert (await (await Client.open(path)).get()).status == 200  # the server lives on


# --------------------------------------------------------------------------- isolation


@pytest.mark.parametrize(
    "sent",
    [
        b"GET /token HTTP/1.1\r\nHost: x\r\n\r\n",  # idle after an answer
        b"GET /token HTTP/1.1\r\nHo",  # mid-head
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhalf",  # mid-body
    ],
)
async def test_a_client_that_goes_away_is_forgotten(
    nursery: trio.Nursery, path: Path, caplog: pytest.LogCaptureFixture, sent: bytes
) -> None:
    served = await serve(nursery, path)
    client = await Client.open(path)
    await client.send(sent)
    await trio.testing.wait_all_tasks_blocked()
    assert served.server.statistics().connections_open == 1
    client.close()
    await trio.testing.wait_all_tasks_blocked()
    stats = served.server.statistics()
    assert stats.connections_open == 0
    assert stats.requests == (1 if sent.endswith(b"\r\n\r\n") else 0)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_broken_connection_does_not_disturb_another(
    nursery: trio.Nursery, path: Path
) -> None:
    served = await serve(nursery, path)
    good = await Client.open(path)
    await good.send(b"GET /token HTTP/1.1\r\nHo")
    bad = await Client.open(path)
    await bad.send(b"\x16\x03\x01 not http at all\r\n\r\n")
    assert (await bad.response()).status == 400
    await good.send(b"st: x\r\n\r\n")
    assert (await good.response()).body == TOKEN
    assert served.server.statistics().responses == {400: 1, 200: 1}


async def test_a_slow_handler_does_not_hold_up_other_connections(
    nursery: trio.Nursery, path: Path
) -> None:
    served = await serve(nursery, path)
    slow = await Client.open(path)
    await slow.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    await trio.testing.wait_all_tasks_blocked()
    fast = await Client.open(path)
    assert (await fast.get()).body == TOKEN
    served.app.release.set()
    assert (await slow.response()).body == b"slow"


async def test_cancelling_the_server_closes_connections_and_the_socket(
    nursery: trio.Nursery, path: Path
) -> None:
    served = await serve(nursery, path)
    client = await Client.open(path)
    assert (await client.get()).status == 200
    served.scope.cancel()
    assert await client.closed()
    await trio.testing.wait_all_tasks_blocked()  # the serving task has unwound
    assert not await trio.Path(path).exists()
