"""Retries under injected faults: bounded, backed off, deadline-aware, never on plain 4xx."""

from __future__ import annotations

import random
import socket

import httpx
import pytest
import trio

from agent_identity.sandbox import Sandbox
from agent_identity.volcengine import IdentityClient, RetryPolicy, SigningCredentials
from agent_identity.volcengine.errors import VolcengineError, VolcengineTransportError
from agent_identity.volcengine.models import ListUserPoolsRequest
from agent_identity.volcengine.transport import CredentialsSource

from .conftest import FAST_RETRY
from .helpers import RequestRecorder, SleepRecorder

LIST = ListUserPoolsRequest(page_number=1, page_size=10)
ACTION = "ListUserPools"


class _High(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b


async def test_recovers_after_transient_503s(
    client: IdentityClient, sb: Sandbox, sleeps: SleepRecorder, recorder: RequestRecorder
) -> None:
    sb.faults.add(ACTION, status=503, count=2)
    page = await client.list_user_pools(LIST)
    assert page.total_count == 1
    assert sb.requests.count(ACTION) == 3
    assert len(sleeps.delays) == 2
    for retry, delay in enumerate(sleeps.delays, start=1):
        assert 0.0 <= delay <= FAST_RETRY.backoff_bound(retry)
    sent = recorder.for_action(ACTION)
    assert [r.headers["x-sdk-request"] for r in sent] == [
        "attempt=1; max=4",
        "attempt=2; max=4",
        "attempt=3; max=4",
    ]
    assert len({r.headers["x-sdk-invocation-id"] for r in sent}) == 1
    stats = client.statistics()
    assert (stats.calls, stats.attempts, stats.retries, stats.successes) == (1, 3, 2, 1)
    assert stats.errors_by_code == {"ServiceUnavailable": 2}


async def test_gives_up_after_four_attempts(
    client: IdentityClient, sb: Sandbox, sleeps: SleepRecorder
) -> None:
    sb.faults.add(ACTION, status=503)
    with pytest.raises(VolcengineError) as caught:
        await client.list_user_pools(LIST)
    assert (caught.value.status, caught.value.code) == (503, "ServiceUnavailable")
    assert sb.requests.count(ACTION) == 4
    assert len(sleeps.delays) == 3
    stats = client.statistics()
    assert (stats.attempts, stats.failures) == (4, 1)
    assert stats.errors_by_code == {"ServiceUnavailable": 4}


async def test_backoff_schedule_is_exponential_with_a_cap(
    sb: Sandbox, http: httpx.AsyncClient, root: SigningCredentials, sleeps: SleepRecorder
) -> None:
    policy = RetryPolicy(max_attempts=4, base_delay=0.1, max_delay=0.25)
    calls: list[int] = []
    client = IdentityClient(
        http,
        endpoint=sb.base_url,
        credentials=_counting(root, calls),
        retry=policy,
        rng=_High(),
        sleep=sleeps,
    )
    sb.faults.add(ACTION, status=500)
    with pytest.raises(VolcengineError):
        await client.list_user_pools(LIST)
    assert sleeps.delays == [0.1, 0.2, 0.25]
    # Credentials are fetched for every attempt, so a refreshed key is picked up mid-call.
    assert len(calls) == 4


def _counting(creds: SigningCredentials, calls: list[int]) -> CredentialsSource:
    async def source() -> SigningCredentials:
        calls.append(1)
        await trio.lowlevel.checkpoint()
        return creds

    return source


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
async def test_retryable_statuses(
    client: IdentityClient, sb: Sandbox, sleeps: SleepRecorder, status: int
) -> None:
    sb.faults.add(ACTION, status=status, count=1)
    await client.list_user_pools(LIST)
    assert sb.requests.count(ACTION) == 2
    assert len(sleeps.delays) == 1


async def test_retry_after_is_honoured(
    client: IdentityClient, sb: Sandbox, sleeps: SleepRecorder
) -> None:
    sb.faults.add(ACTION, status=429, retry_after=2, count=1)
    await client.list_user_pools(LIST)
    assert sleeps.delays == [2.0]
    assert sb.requests.count(ACTION) == 2


async def test_retry_after_is_capped(
    client: IdentityClient, sb: Sandbox, sleeps: SleepRecorder
) -> None:
    sb.faults.add(ACTION, status=429, retry_after=3600, count=1)
    await client.list_user_pools(LIST)
    assert sleeps.delays == [FAST_RETRY.max_retry_after]


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "InvalidRequest"),
        (401, "InvalidAccessKey"),
        (403, "AccessDenied"),
        (404, "ResourceNotFound"),
        (409, "ResourceAlreadyExists"),
        (501, "NotImplemented"),
    ],
)
async def test_no_retry_on_other_statuses(
    client: IdentityClient, sb: Sandbox, sleeps: SleepRecorder, status: int, code: str
) -> None:
    sb.faults.add(ACTION, status=status, code=code)
    with pytest.raises(VolcengineError) as caught:
        await client.list_user_pools(LIST)
    assert (caught.value.status, caught.value.code) == (status, code)
    assert sb.requests.count(ACTION) == 1
    assert sleeps.delays == []


@pytest.mark.parametrize("malformed", [True, "envelope"])
async def test_no_retry_on_malformed_success(
    client: IdentityClient, sb: Sandbox, sleeps: SleepRecorder, malformed: bool | str
) -> None:
    sb.faults.add(ACTION, malformed=malformed)  # type: ignore[arg-type]
    with pytest.raises(VolcengineError) as caught:
        await client.list_user_pools(LIST)
    assert (caught.value.status, caught.value.code) == (200, "InvalidResponse")
    assert sb.requests.count(ACTION) == 1


async def test_connection_errors_are_retried(
    http: httpx.AsyncClient, root: SigningCredentials, sleeps: SleepRecorder
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        client = IdentityClient(
            http,
            endpoint=f"http://127.0.0.1:{sock.getsockname()[1]}",
            credentials=_counting(root, []),
            retry=FAST_RETRY,
            sleep=sleeps,
        )
        with pytest.raises(VolcengineTransportError) as caught:
            await client.list_user_pools(LIST)
    assert caught.value.code == "ConnectionError"
    assert caught.value.status is None
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert len(sleeps.delays) == 3
    assert client.statistics().errors_by_code == {"ConnectionError": 4}


async def test_read_timeouts_are_retried(
    sb: Sandbox, root: SigningCredentials, sleeps: SleepRecorder
) -> None:
    sb.faults.add(ACTION, latency=1.0, count=1)
    async with httpx.AsyncClient(timeout=0.2) as http:
        client = IdentityClient(
            http,
            endpoint=sb.base_url,
            credentials=_counting(root, []),
            retry=FAST_RETRY,
            sleep=sleeps,
        )
        page = await client.list_user_pools(LIST)
    assert page.total_count == 1
    assert client.statistics().errors_by_code == {"Timeout": 1}


async def test_deadline_too_close_for_retry_after(
    sb: Sandbox, http: httpx.AsyncClient, root: SigningCredentials
) -> None:
    # Real trio.sleep here: the point is that it is never called.
    client = IdentityClient(
        http, endpoint=sb.base_url, credentials=_counting(root, []), retry=FAST_RETRY
    )
    sb.faults.add(ACTION, status=429, retry_after=5)
    start = trio.current_time()
    with trio.fail_after(2):
        with pytest.raises(VolcengineError) as caught:
            await client.list_user_pools(LIST)
    assert caught.value.status == 429
    assert trio.current_time() - start < 1.0
    assert sb.requests.count(ACTION) == 1


async def test_deadline_cuts_the_backoff_short(
    sb: Sandbox, http: httpx.AsyncClient, root: SigningCredentials
) -> None:
    policy = RetryPolicy(max_attempts=10, base_delay=0.3, max_delay=0.3)
    client = IdentityClient(
        http, endpoint=sb.base_url, credentials=_counting(root, []), retry=policy, rng=_High()
    )
    sb.faults.add(ACTION, status=503)
    # Attempts at ~0 s and ~0.3 s and ~0.6 s; a fourth would start at ~0.9 s, past 0.75 s.
    with trio.move_on_after(0.75) as scope:
        with pytest.raises(VolcengineError) as caught:
            await client.list_user_pools(LIST)
    assert not scope.cancelled_caught
    assert caught.value.status == 503
    assert sb.requests.count(ACTION) == 3
