"""The local identity server as a socket: the peer gate, broken clients, metrics, the cache.

Refused processes get a 403 with the reason; a client sending garbage or stalling mid-request
costs only its own connection; ``/metrics`` counts what was answered, by endpoint and status;
the encoded ``/token`` body follows the TIP when the refresher replaces it.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator

import pytest
import trio

from agent_identity.actors.tip_messages import TipInfo, TipRefresherClient

from .conftest import World
from .test_local_server_support import MAIN, PYTHON, Served, open_served, read_all

CURL = shutil.which("curl")
BODY = b'{"params": {}, "session": ""}'
_SAMPLE = re.compile(
    r'^(agent_identity_local_requests_total\{endpoint="(\w+)",status="(\d+)"\}) (\d+)$'
)


@pytest.fixture
async def served(world: World) -> AsyncIterator[Served]:
    async with open_served(world) as running:
        yield running


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


async def curl(served: Served, path: str) -> tuple[int, str]:
    assert CURL is not None
    done = await trio.run_process(
        [CURL, "-q", "-s", "-w", "\n%{http_code}", "--unix-socket", str(served.path),
         f"http://localhost{path}"],
        capture_stdout=True,
    )  # fmt: skip
    body, _, code = done.stdout.decode().rpartition("\n")
    return int(code), body


async def test_a_process_that_is_not_allowlisted_gets_403_with_the_reason(
    world: World,
) -> None:
    async with open_served(world, allowlist=()) as served:
        async with served.client() as client:
            refused = await client.get("/status")
        assert refused.status_code == 403
        body = refused.json()
        assert body["error"] == "forbidden"
        assert "not allowlisted" in body["message"]
        assert PYTHON in body["message"]
        # The refusal happens before the app: nothing was counted or served.
        assert served.server.statistics().requests == 0
        assert served.gate.statistics().refused
        if CURL is not None:  # curl is always allowed, on the very same server
            code, text = await curl(served, "/status")
            assert code == 200
            assert '"status":"ok"' in text


async def test_an_exact_interpreter_path_is_allowed(world: World) -> None:
    async with open_served(world, allowlist=(PYTHON,)) as served, served.client() as client:
        response = await client.get("/status")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_a_malformed_request_costs_only_its_own_connection(served: Served) -> None:
    await served.login(MAIN)
    # Connections that stall mid-head and mid-body stay open throughout.
    stalled_head = await served.connect()
    await stalled_head.send_all(b"GET /token HTTP/1.1\r\nHost: localhost\r\n")
    stalled_body = await served.connect()
    await stalled_body.send_all(
        b"POST /tool/identity_whoami HTTP/1.1\r\nHost: localhost\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY[:9])
    )
    # Broken requests on their own connections: answered with 400, then closed.
    garbage = await served.connect()
    await garbage.send_all(b"\x16\x03\x01 not http at all\r\n\r\n")
    smuggle = await served.connect()
    await smuggle.send_all(
        b"POST /tool/identity_whoami HTTP/1.1\r\nHost: localhost\r\n"
        b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}"
    )
    tokens: list[int] = []

    async def keep_asking() -> None:
        async with served.client() as client:
            for _ in range(20):
                response = await client.get("/token")
                tokens.append(response.status_code)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(keep_asking)
        nursery.start_soon(keep_asking)
        async with garbage, smuggle:
            garbage_answer = await read_all(garbage)
            smuggle_answer = await read_all(smuggle)
    assert tokens == [200] * 40
    assert status_of(garbage_answer) == 400
    assert status_of(smuggle_answer) == 400
    assert b'"error"' in garbage_answer
    # The stalled clients were never blocked out, nor blocking: they finish normally now.
    async with stalled_head, stalled_body:
        await stalled_head.send_all(b"Connection: close\r\n\r\n")
        await stalled_body.send_all(BODY[9:])
        head_answer = await read_all(stalled_head)
        assert status_of(head_answer) == 200
        assert b'"sub":"alice"' in head_answer
        await stalled_body.send_eof()
        # Keep-alive: the server answers, then waits for more; the EOF ends it.
        assert status_of(await read_all(stalled_body)) == 200


async def test_metrics_count_requests_by_endpoint_and_status(served: Served) -> None:
    async with served.client() as client:
        await client.get("/token")  # 404: not logged in yet
        await served.login(MAIN)
        await client.get("/token")
        await client.get("/token")
        await client.get("/session")
        await client.get("/status")
        await client.get("/tools")
        await client.post("/tool/identity_whoami", json={"params": {}})
        await client.post("/tool/identity_nope", json={"params": {}})
        await client.post("/tool/identity_whoami", content=b"{")
        await client.get("/tool/identity_whoami")
        await client.post("/token")
        await client.get("/nowhere")
        await client.get("/secret-path/agent:main:main")
        response = await client.get("/metrics")
        again = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    counts = {
        (m.group(2), int(m.group(3))): int(m.group(4))
        for m in map(_SAMPLE.match, response.text.splitlines())
        if m is not None
    }
    assert counts == {
        ("token", 404): 1,
        ("token", 200): 2,
        ("token", 405): 1,
        ("session", 200): 1,
        ("status", 200): 1,
        ("tools", 200): 1,
        ("tool", 200): 1,
        ("tool", 404): 1,
        ("tool", 400): 1,
        ("tool", 405): 1,
        ("other", 404): 2,
    }
    assert "agent_identity_local_request_seconds_count 13" in response.text
    # Raw paths never become labels (they may carry session keys).
    assert "secret-path" not in response.text
    assert "agent:main:main" not in response.text
    # The system's own figures are there too; the first scrape is counted by the second.
    assert "agent_identity_sessions 1" in response.text
    assert 'agent_identity_local_requests_total{endpoint="metrics",status="200"} 1' in again.text
    tip = await served.ident.tips.peek(MAIN)
    assert isinstance(tip, TipInfo)
    assert tip.token not in response.text


async def test_the_token_body_follows_a_refreshed_tip(served: Served) -> None:
    await served.login(MAIN)
    async with served.client() as client:
        first = await client.get("/token")
        second = await client.get("/token")
        assert first.content == second.content  # same TIP, same (cached) body
        refreshed = await served.ident.tips.refresh(MAIN)
        assert isinstance(refreshed, TipInfo)
        assert refreshed.token != first.json()["token"]
        third = await client.get("/token")
    assert third.status_code == 200
    assert third.json()["token"] == refreshed.token
    assert third.json()["expiresAt"] == int(refreshed.expires_at)
    assert third.content != first.content


async def test_a_failing_handler_is_a_500_that_metrics_count(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    await served.login(MAIN)

    async def broken(*_: object, **__: object) -> TipInfo:
        await trio.lowlevel.checkpoint()
        raise RuntimeError("the TIP cache at /internal/path is gone")

    async with served.client() as client:
        with monkeypatch.context() as patch:
            patch.setattr(TipRefresherClient, "token_body_nowait", lambda *_: None)  # a miss
            patch.setattr(TipRefresherClient, "get_tip", broken)
            failed = await client.get("/token")
        recovered = await client.get("/token")
        metrics = await client.get("/metrics")
    assert failed.status_code == 500
    assert failed.json()["error"] == "internal_error"
    assert "/internal/path" not in failed.text  # no details of the failure go out
    assert recovered.status_code == 200
    # The failure is visible where operators look for failures.
    assert 'agent_identity_local_requests_total{endpoint="token",status="500"} 1' in metrics.text
    assert 'agent_identity_local_requests_total{endpoint="token",status="200"} 1' in metrics.text


async def test_a_cached_token_is_served_without_a_mailbox_round_trip(served: Served) -> None:
    await served.login(MAIN)
    tips = served.ident.tips
    async with served.client() as client:
        first = await client.get("/token")  # may mint: through the refresher's mailbox
        handled = (await tips.statistics()).actor.handled
        for _ in range(5):
            again = await client.get("/token")
            assert again.content == first.content
        # Only the two statistics asks reached the refresher.
        assert (await tips.statistics()).actor.handled == handled + 1


async def test_the_token_body_is_kept_with_its_tip_and_goes_with_it(served: Served) -> None:
    await served.login(MAIN)
    async with served.client() as client:
        first = await client.get("/token")
        tip = served.ident.tips.get_tip_nowait(MAIN)
        assert tip is not None
        encoded: list[str] = []

        def spy(info: TipInfo) -> bytes:
            encoded.append(info.token)
            return b"not used: the body is already made"

        # Made once per TIP: the cached body is what was served, the encoder is not called.
        assert served.ident.tips.token_body_nowait(MAIN, spy) == first.content
        assert encoded == []
        assert await served.ident.sessions.delete(MAIN)
        assert await served.ident.tips.forget(MAIN)
        assert (await client.get("/token")).status_code == 404
        assert served.ident.tips.token_body_nowait(MAIN, spy) is None  # gone with the TIP
        assert encoded == []
