"""Harness of ``test_uds_http.py`` and ``test_uds_http_gate.py`` (this module holds no tests).

A raw HTTP/1.1 client over a real Unix socket, an application that remembers what it saw, a
scriptable peer gate, and :func:`serve`, which runs the server in the test's nursery.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import trio

from agent_identity.transports.http_messages import HttpRequest, HttpResponse, json_error
from agent_identity.transports.uds_http import HttpLimits, UdsHttpServer, serve_uds_http
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

    opened: ClassVar[list[Client]] = []  # closed by ``close_clients`` after each test

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


async def close_clients() -> None:
    """Close every client the test opened (trio sockets close inside the run)."""
    while Client.opened:
        Client.opened.pop().close()
