"""The Unix-socket HTTP server: the peer gate, and connections that cannot disturb others."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
import trio.testing

from .test_uds_http_support import TOKEN, Client, Gate, close_clients, serve


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "run" / "http.sock"


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    yield
    await close_clients()


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
