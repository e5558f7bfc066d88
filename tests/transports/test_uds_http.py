"""The Unix-socket HTTP server, driven over a real socket by a raw client: requests."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
import trio.testing

from .test_uds_http_support import TOKEN, Client, close_clients, serve


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "run" / "http.sock"


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    yield
    await close_clients()


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
