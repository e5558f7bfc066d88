"""The sandbox's connection-reset fault, and how the Identity client meets it.

``reset=True`` answers nothing usable: the head goes out promising a body and the connection
is closed without it, which the client sees as the peer hanging up mid-answer (httpx's
``RemoteProtocolError``, a transport error like a TCP reset). The other fault kinds (status,
``Retry-After``, latency, malformed bodies) are covered in ``tests/sandbox/test_faults.py``.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import httpx
import pytest
import trio
import trio.testing

from agent_identity.sandbox import Sandbox, open_sandbox
from agent_identity.volcengine import IdentityClient, SigningCredentials, VolcengineError
from agent_identity.volcengine.errors import VolcengineTransportError
from agent_identity.volcengine.models import GetWorkloadIdentityRequest
from agent_identity.volcengine.transport import static_credentials

WHO = GetWorkloadIdentityRequest(name="openclaw-agent")
ACTION = "GetWorkloadIdentity"


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with open_sandbox(rng=random.Random(11)) as sandbox:
        yield sandbox


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


def client_of(sb: Sandbox, http: httpx.AsyncClient) -> IdentityClient:
    keys = SigningCredentials(sb.access_key_id, sb.secret_access_key)
    return IdentityClient(
        http, endpoint=sb.base_url, credentials=static_credentials(keys), rng=random.Random(3)
    )


async def test_a_reset_hangs_up_mid_answer_and_the_next_request_is_served(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    rule = sb.faults.add("/latest/", reset=True, count=1)
    with pytest.raises(httpx.RemoteProtocolError, match="peer closed connection"):
        await http.get(sb.region_url)
    assert (rule.hits, rule in sb.faults.rules) == (1, False)
    answer = await http.get(sb.region_url)
    assert (answer.status_code, answer.text) == (200, sb.region)
    assert sb.requests.count("/latest/region_id") == 2


async def test_a_reset_comes_after_the_rules_latency(
    sb: Sandbox, http: httpx.AsyncClient, autojump_clock: trio.testing.MockClock
) -> None:
    del autojump_clock
    sb.faults.add(None, reset=True, latency=2.0)
    start = trio.current_time()
    with pytest.raises(VolcengineTransportError) as failed:
        await client_of(sb, http).get_workload_identity(WHO)
    # Four attempts, each hung up on after its 2 s.
    assert trio.current_time() - start >= 4 * 2.0
    assert sb.requests.count(ACTION) == 4
    assert failed.value.code == "TransportError"


async def test_the_identity_client_retries_resets_within_its_budget(
    sb: Sandbox, http: httpx.AsyncClient, autojump_clock: trio.testing.MockClock
) -> None:
    del autojump_clock
    client = client_of(sb, http)
    sb.faults.add(ACTION, reset=True, count=3)
    found = await client.get_workload_identity(WHO)
    assert found.name == "openclaw-agent"
    stats = client.statistics()
    assert (stats.calls, stats.attempts, stats.retries, stats.failures) == (1, 4, 3, 0)
    assert stats.errors_by_code == {"TransportError": 3}

    # One more reset than the budget: the call fails with the transport error, after 4.
    sb.faults.add(ACTION, reset=True, count=4)
    with pytest.raises(VolcengineError) as failed:
        await client.get_workload_identity(WHO)
    assert failed.value.status is None
    assert "peer closed connection" in str(failed.value)
    stats = client.statistics()
    assert (stats.calls, stats.attempts, stats.retries, stats.failures) == (2, 8, 6, 1)
    assert sb.requests.count(ACTION) == 8
