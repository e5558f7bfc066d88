"""Fixtures: a fresh sandbox, a recording HTTP client, fast retries, and the leak watch.

The leak watch runs for every test of this folder: it records every VolcengineError created
and every log record (DEBUG and up, STS debug logging included where a test turns it on), and
at teardown asserts that no known secret appears in any of them. Known secrets are whatever a
test registers plus everything secret in the sandbox's state (root and STS keys, session
tokens, client secrets, API keys, third-party access tokens, stored user credentials).
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from agent_identity.sandbox import Sandbox, open_sandbox
from agent_identity.volcengine import IdentityClient, RetryPolicy, SigningCredentials
from agent_identity.volcengine.errors import VolcengineError
from agent_identity.volcengine.transport import static_credentials

from .helpers import LeakWatch, RequestRecorder, SleepRecorder, sandbox_secrets

FAST_RETRY = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, max_retry_after=10.0)


@pytest.fixture(autouse=True)
def leak_watch(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LeakWatch]:
    watch = LeakWatch()
    original = VolcengineError.__init__

    def recording_init(self: VolcengineError, **kwargs: object) -> None:
        original(self, **kwargs)  # type: ignore[arg-type]
        watch.errors.append(self)

    monkeypatch.setattr(VolcengineError, "__init__", recording_init)
    caplog.set_level(logging.DEBUG)
    yield watch
    for sandbox in watch.sandboxes:
        watch.secret(*sandbox_secrets(sandbox))
    watch.assert_clean(caplog.records)


@pytest.fixture
async def sb(leak_watch: LeakWatch) -> AsyncIterator[Sandbox]:
    rng = random.Random(20261129)
    async with open_sandbox(rng=rng) as sandbox:
        leak_watch.sandboxes.append(sandbox)
        yield sandbox


@pytest.fixture
def recorder() -> RequestRecorder:
    return RequestRecorder()


@pytest.fixture
async def http(recorder: RequestRecorder) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10, event_hooks={"request": [recorder]}) as client:
        yield client


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def root(sb: Sandbox) -> SigningCredentials:
    return SigningCredentials(sb.access_key_id, sb.secret_access_key)


@pytest.fixture
def client(
    sb: Sandbox, http: httpx.AsyncClient, root: SigningCredentials, sleeps: SleepRecorder
) -> IdentityClient:
    return IdentityClient(
        http,
        endpoint=sb.base_url,
        credentials=static_credentials(root),
        retry=FAST_RETRY,
        rng=random.Random(7),
        sleep=sleeps,
    )
