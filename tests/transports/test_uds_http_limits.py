"""Timeouts and the connection limit of the Unix-socket HTTP server (Trio's autojump clock).

Unix-socket I/O completes inside the kernel call, so the autojump clock only jumps when every
task (server and client) is really waiting; the times asserted are the clock's.
"""

from __future__ import annotations

import logging
import os
import resource
import socket
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from agent_identity.transports.http_messages import HttpRequest, HttpResponse
from agent_identity.transports.uds_http import HttpLimits, UdsHttpServer, serve_uds_http
from agent_identity.transports.uds_socket import open_unix_listener

BIG = 8 << 20  # far more than a Unix socket buffers
LIMITS = HttpLimits(keep_alive_timeout=5.0, head_timeout=10.0, body_timeout=10.0, send_timeout=10.0)
# The watchdog looks every eighth of the shortest timeout.
SLACK = LIMITS.keep_alive_timeout / 8 + 0.01


async def handler(request: HttpRequest) -> HttpResponse:
    if request.path == "/big":
        return HttpResponse(200, b"x" * BIG)
    if request.path == "/sleep":
        await trio.sleep(60)  # much longer than every timeout
    return HttpResponse(200, b"ok")


class Connection:
    def __init__(self, sock: trio.socket.SocketType) -> None:
        self.sock = sock

    async def send(self, data: bytes) -> None:
        await self.sock.send(data)

    async def read_all(self) -> bytes:
        """Everything until the server closes."""
        data = b""
        while chunk := await self.sock.recv(1 << 16):
            data += chunk
        return data

    async def response_head(self) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await self.sock.recv(1)
            assert chunk, "closed before a response"
            data += chunk
        return data


@pytest.fixture
async def served(tmp_path: Path, nursery: trio.Nursery) -> tuple[Path, UdsHttpServer]:
    path = tmp_path / "run" / "http.sock"
    server = await nursery.start(_serve, path, LIMITS)
    return path, server


async def _serve(
    path: Path, limits: HttpLimits, task_status: trio.TaskStatus[UdsHttpServer]
) -> None:
    with open_unix_listener(path) as listener:
        async with trio.open_nursery() as nursery:
            serving = partial(serve_uds_http, listener, handler, limits=limits)
            task_status.started(await nursery.start(serving))


@pytest.fixture
async def connect(
    served: tuple[Path, UdsHttpServer],
) -> AsyncIterator[Any]:
    opened: list[trio.socket.SocketType] = []

    async def open_connection() -> Connection:
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        opened.append(sock)
        await sock.connect(os.fspath(served[0]))
        return Connection(sock)

    yield open_connection
    for sock in opened:
        sock.close()


async def test_an_idle_connection_is_closed_silently(
    autojump_clock: trio.testing.MockClock, connect: Any, served: tuple[Path, UdsHttpServer]
) -> None:
    conn = await connect()
    await conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await conn.response_head()).startswith(b"HTTP/1.1 200")
    assert await conn.sock.recv(2) == b"ok"
    start = trio.current_time()
    assert await conn.read_all() == b""  # no 408 for a client that is between requests
    assert (
        LIMITS.keep_alive_timeout
        <= trio.current_time() - start
        <= (LIMITS.keep_alive_timeout + SLACK)
    )
    assert served[1].statistics().timeouts == 0


async def test_a_connection_that_never_speaks_is_closed(
    autojump_clock: trio.testing.MockClock, connect: Any
) -> None:
    conn = await connect()
    start = trio.current_time()
    assert await conn.read_all() == b""
    assert trio.current_time() - start <= LIMITS.keep_alive_timeout + SLACK


async def test_a_trickled_head_gets_408_when_its_time_is_up(
    autojump_clock: trio.testing.MockClock, connect: Any, served: tuple[Path, UdsHttpServer]
) -> None:
    conn = await connect()
    start = trio.current_time()

    async def trickle() -> None:
        await conn.send(b"GET / HTTP/1.1\r\nX-Slow: ")
        while True:  # a byte a second: every read succeeds, the head never ends
            await trio.sleep(1)
            try:
                await conn.send(b"a")
            except OSError:
                return

    with trio.fail_after(LIMITS.head_timeout * 3):  # a per-read timer would never fire
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trickle)
            head = await conn.response_head()
            nursery.cancel_scope.cancel()
    assert head.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    elapsed = trio.current_time() - start
    assert LIMITS.head_timeout <= elapsed <= LIMITS.head_timeout + SLACK
    assert served[1].statistics().timeouts == 1


async def test_a_stream_of_empty_lines_is_a_head_that_never_ends(
    autojump_clock: trio.testing.MockClock, connect: Any
) -> None:
    conn = await connect()
    start = trio.current_time()

    async def empty_lines() -> None:
        while True:
            try:
                await conn.send(b"\r\n")
            except OSError:
                return
            await trio.sleep(1)

    with trio.fail_after(LIMITS.head_timeout * 3):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(empty_lines)
            head = await conn.response_head()
            nursery.cancel_scope.cancel()
    assert head.startswith(b"HTTP/1.1 408")  # not the silent close of an idle connection
    assert trio.current_time() - start <= LIMITS.head_timeout + SLACK


async def test_a_body_that_stops_coming_gets_408(
    autojump_clock: trio.testing.MockClock, connect: Any, served: tuple[Path, UdsHttpServer]
) -> None:
    conn = await connect()
    await conn.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhalf.")
    start = trio.current_time()
    head = await conn.response_head()
    assert head.startswith(b"HTTP/1.1 408")
    assert LIMITS.body_timeout <= trio.current_time() - start <= LIMITS.body_timeout + SLACK
    assert served[1].statistics().timeouts == 1


async def test_a_client_that_does_not_read_is_dropped(
    autojump_clock: trio.testing.MockClock, connect: Any, served: tuple[Path, UdsHttpServer]
) -> None:
    conn = await connect()
    await conn.send(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
    await trio.sleep(LIMITS.send_timeout + SLACK)  # clock time: the server's send is stuck
    await trio.testing.wait_all_tasks_blocked()
    stats = served[1].statistics()
    assert (stats.timeouts, stats.connections_open) == (1, 0)
    assert len(await conn.read_all()) < BIG  # cut off mid-response


async def test_a_slow_handler_is_not_timed_out(
    autojump_clock: trio.testing.MockClock, connect: Any
) -> None:
    conn = await connect()
    await conn.send(b"GET /sleep HTTP/1.1\r\nHost: x\r\n\r\n")
    start = trio.current_time()
    assert (await conn.response_head()).startswith(b"HTTP/1.1 200")
    assert trio.current_time() - start >= 60


async def test_connections_over_the_limit_get_503(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, nursery: trio.Nursery
) -> None:
    path = tmp_path / "run" / "http.sock"
    server = await nursery.start(_serve, path, HttpLimits(max_connections=2))
    socks = [trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(4)]
    try:
        first, second, third, fourth = (Connection(s) for s in socks)
        for conn in (first, second):
            await conn.sock.connect(os.fspath(path))
            await conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            await conn.response_head()
        await third.sock.connect(os.fspath(path))
        refused = await third.read_all()
        assert refused.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        assert refused.endswith(b'{"error": "busy", "message": "too many connections; try again"}')
        first.sock.close()
        await trio.testing.wait_all_tasks_blocked()  # the server sees the close
        await fourth.sock.connect(os.fspath(path))
        await fourth.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await fourth.response_head()).startswith(b"HTTP/1.1 200")
        stats = server.statistics()
        assert (stats.connections_over_limit, stats.connections_open) == (1, 2)
    finally:
        for sock in socks:
            sock.close()


def highest_descriptor() -> int:
    return max(int(fd.name) for fd in Path("/proc/self/fd").iterdir())


def fill_descriptor_table() -> list[int]:
    """Take every free descriptor number below the limit (closed ones leave holes)."""
    fds = []
    while True:
        try:
            fds.append(os.open("/dev/null", os.O_RDONLY))
        except OSError:
            return fds


async def test_running_out_of_descriptors_pauses_accepting(
    autojump_clock: trio.testing.MockClock,
    connect: Any,
    served: tuple[Path, UdsHttpServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = await connect()
    late = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # made before the limit drops
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (highest_descriptor() + 1, hard))
    fillers = fill_descriptor_table()
    try:
        with caplog.at_level(logging.WARNING):
            await late.connect(os.fspath(served[0]))  # the server cannot accept it: EMFILE
            await trio.testing.wait_all_tasks_blocked()
        assert "accept failed" in caplog.text
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    conn = Connection(late)
    try:
        await conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await conn.response_head()).startswith(b"HTTP/1.1 200")  # accepted after all
    finally:
        late.close()
    await client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await client.response_head()).startswith(b"HTTP/1.1 200")
