"""The credential chain: ordering, AssumeRole per source, caching, single-flight refresh."""

from __future__ import annotations

import json
import logging
import random
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import trio

from agent_identity.sandbox import Sandbox, open_sandbox
from agent_identity.volcengine import CredentialChain, IdentityClient, SigningCredentials
from agent_identity.volcengine.errors import CredentialsError, VolcengineError
from agent_identity.volcengine.models import GetWorkloadAccessTokenForJWTRequest

from .conftest import FAST_RETRY
from .helpers import LeakWatch, SleepRecorder

EXPLICIT = ("AKLTexplicit", "explicit-secret-0000000000")
ENV = {"VOLCENGINE_ACCESS_KEY": "AKLTenv", "VOLCENGINE_SECRET_KEY": "env-secret-0000000000"}


def _write(path: Path, **fields: str) -> str:
    path.write_text(json.dumps(fields))
    return str(path)


def _role(sb: Sandbox, name: str = "openclaw-agent") -> str:
    return sb.state.role_trn(name)


def _chain(http: httpx.AsyncClient, **kwargs: object) -> CredentialChain:
    kwargs.setdefault("credentials_file", "/nonexistent/credential")
    return CredentialChain(http, retry=FAST_RETRY, **kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------- ordering (no network)


async def test_explicit_beats_env_and_file(http: httpx.AsyncClient, tmp_path: Path) -> None:
    file = _write(tmp_path / "c", access_key_id="AKLTfile", secret_access_key="file-secret-00")
    chain = _chain(
        http,
        access_key_id=EXPLICIT[0],
        secret_access_key=EXPLICIT[1],
        session_token="explicit-token-000000",
        env=ENV,
        credentials_file=file,
    )
    creds = await chain.get()
    assert (creds.access_key_id, creds.session_token) == ("AKLTexplicit", "explicit-token-000000")
    assert chain.statistics().source == "config"


async def test_env_beats_file(http: httpx.AsyncClient, tmp_path: Path) -> None:
    file = _write(tmp_path / "c", access_key_id="AKLTfile", secret_access_key="file-secret-00")
    env = {**ENV, "VOLCENGINE_SESSION_TOKEN": "env-token-0000000"}
    chain = _chain(http, env=env, credentials_file=file)
    creds = await chain.get()
    assert (creds.access_key_id, creds.session_token) == ("AKLTenv", "env-token-0000000")
    assert chain.statistics().source == "env"


async def test_file_last(http: httpx.AsyncClient, tmp_path: Path) -> None:
    file = _write(
        tmp_path / "c",
        access_key_id="AKLTfile",
        secret_access_key="file-secret-00",
        session_token="file-token-000000",
        role_trn="trn:iam::1:role/with-token-so-not-assumed",
    )
    chain = _chain(http, credentials_file=None, env={"VOLCENGINE_CREDENTIALS_FILE": file})
    creds = await chain.get()
    assert (creds.access_key_id, creds.session_token) == ("AKLTfile", "file-token-000000")
    assert chain.statistics().source == "file"
    assert chain.statistics().sts.calls == 0


async def test_metadata_needs_role_trn(sb: Sandbox, http: httpx.AsyncClient) -> None:
    chain = _chain(http, credentials_metadata_url=sb.credentials_url)
    with pytest.raises(CredentialsError) as caught:
        await chain.get()
    assert "not both configured" in str(caught.value)
    assert sb.requests.count("/latest/credentials") == 0


@pytest.mark.parametrize(
    ("kwargs", "where"),
    [
        ({"access_key_id": "AKLTonly"}, "explicit config"),
        ({"secret_access_key": "lonely-secret-0000"}, "explicit config"),
        ({"env": {"VOLCENGINE_ACCESS_KEY": "AKLTonly"}}, "the environment"),
    ],
)
async def test_incomplete_pairs_are_errors(
    http: httpx.AsyncClient, kwargs: dict[str, object], where: str, leak_watch: LeakWatch
) -> None:
    leak_watch.secret("lonely-secret-0000")
    with pytest.raises(CredentialsError) as caught:
        await _chain(http, **kwargs).get()
    assert caught.value.code == "IncompleteCredentials"
    assert where in str(caught.value)


async def test_no_credentials_lists_the_four_sources(http: httpx.AsyncClient) -> None:
    chain = _chain(http, credentials_file="/nope/credential")
    with pytest.raises(CredentialsError) as caught:
        await chain.get()
    text = str(caught.value)
    assert caught.value.code == "NoCredentials"
    for part in (
        "1) explicit config",
        "2) environment (VOLCENGINE_ACCESS_KEY/VOLCENGINE_SECRET_KEY",
        "3) remote metadata",
        "4) credentials file (/nope/credential not found)",
    ):
        assert part in text
    assert chain.statistics().failures == 1


async def test_static_keys_are_cached_for_good(http: httpx.AsyncClient) -> None:
    chain = _chain(http, access_key_id=EXPLICIT[0], secret_access_key=EXPLICIT[1])
    first = await chain.get()
    assert await chain.get() is first
    assert chain.statistics().resolutions == 1
    chain.invalidate()
    await chain.get()
    assert chain.statistics().resolutions == 2


@dataclass
class FakeClock:
    moment: datetime

    def now(self) -> datetime:
        return self.moment

    def time(self) -> float:
        return self.moment.timestamp()

    def advance(self, **delta: float) -> None:
        self.moment += timedelta(**delta)


async def test_file_is_reread_after_the_interval(http: httpx.AsyncClient, tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    path = tmp_path / "c"
    _write(path, access_key_id="AKLTone", secret_access_key="file-secret-one")
    chain = _chain(http, credentials_file=str(path), now=clock.now)
    assert (await chain.get()).access_key_id == "AKLTone"
    _write(path, access_key_id="AKLTtwo", secret_access_key="file-secret-two")
    clock.advance(minutes=4)
    assert (await chain.get()).access_key_id == "AKLTone"
    clock.advance(minutes=2)
    assert (await chain.get()).access_key_id == "AKLTtwo"


async def test_broken_file_keeps_the_previous_keys(
    http: httpx.AsyncClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    path = tmp_path / "c"
    _write(path, access_key_id="AKLTone", secret_access_key="file-secret-one")
    chain = _chain(http, credentials_file=str(path), now=clock.now)
    await chain.get()
    path.write_text("{garbage")
    clock.advance(minutes=6)
    assert (await chain.get()).access_key_id == "AKLTone"
    assert chain.statistics().failures == 1
    assert "keeping the current keys" in caplog.text


# ---------------------------------------------------------------- AssumeRole, end to end


async def _accepted(sb: Sandbox, http: httpx.AsyncClient, chain: CredentialChain) -> str:
    """Use the chain's keys for a call that needs an assumed role; returns the TIP's workload."""
    client = IdentityClient(http, endpoint=sb.base_url, credentials=chain.get, retry=FAST_RETRY)
    token = sb.issue_user_token("agent-identity-dev", "alice")
    # No Name: the sandbox uses the caller's role name, which only assumed keys have.
    tip = await client.get_workload_access_token_for_jwt(
        GetWorkloadAccessTokenForJWTRequest(user_token=token)
    )
    return tip.workload_access_token


async def test_explicit_with_role_assumes_it(
    sb: Sandbox, http: httpx.AsyncClient, leak_watch: LeakWatch
) -> None:
    chain = _chain(
        http,
        access_key_id=sb.access_key_id,
        secret_access_key=sb.secret_access_key,
        role_trn=_role(sb),
        sts_endpoint=sb.base_url,
        duration_seconds=900,
    )
    creds = await chain.get()
    assert creds.is_temporary
    assert creds.access_key_id in sb.state.temporary_keys
    key = sb.state.temporary_keys[creds.access_key_id]
    assert (key.role.name, key.session_name) == ("openclaw-agent", "agent-identity")
    assert key.expires_at - time.time() == pytest.approx(900, abs=5)
    stats = chain.statistics()
    assert (stats.source, stats.sts.calls) == ("config", 1)
    assert stats.expires_at is not None
    leak_watch.secret(await _accepted(sb, http, chain))


async def test_env_with_role_assumes_it(sb: Sandbox, http: httpx.AsyncClient) -> None:
    env = {"VOLCENGINE_ACCESS_KEY": sb.access_key_id, "VOLCENGINE_SECRET_KEY": sb.secret_access_key}
    chain = _chain(http, env=env, role_trn=_role(sb), sts_endpoint=sb.base_url)
    assert (await chain.get()).is_temporary
    assert chain.statistics().source == "env"


async def test_metadata_then_assume_role(
    sb: Sandbox, http: httpx.AsyncClient, leak_watch: LeakWatch
) -> None:
    chain = _chain(
        http,
        credentials_metadata_url=sb.credentials_url,
        role_trn=_role(sb),
        sts_endpoint=sb.base_url,
    )
    creds = await chain.get()
    assert sb.requests.count("/latest/credentials") == 1
    assert sb.requests.count("AssumeRole") == 1
    assert sb.state.temporary_keys[creds.access_key_id].session_name == "agent-identity"
    assert chain.statistics().source == "metadata"
    leak_watch.secret(await _accepted(sb, http, chain))


async def test_metadata_404_falls_through_to_file(
    sb: Sandbox, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    sb.metadata.credentials_status = 404
    file = _write(
        tmp_path / "c",
        access_key_id=sb.access_key_id,
        secret_access_key=sb.secret_access_key,
    )
    chain = _chain(
        http,
        credentials_metadata_url=sb.credentials_url,
        role_trn=_role(sb),
        credentials_file=file,
        sts_endpoint=sb.base_url,
    )
    creds = await chain.get()
    assert sb.requests.count("/latest/credentials") == 1
    # The file's long-term keys, with the configured role assumed.
    assert creds.is_temporary
    assert chain.statistics().source == "file"


async def test_metadata_404_and_no_file(sb: Sandbox, http: httpx.AsyncClient) -> None:
    sb.metadata.credentials_role = None  # the sandbox answers 404
    chain = _chain(http, credentials_metadata_url=sb.credentials_url, role_trn=_role(sb))
    with pytest.raises(CredentialsError, match="credentialsMetadataUrl answered 404"):
        await chain.get()


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ({"status": 500}, "answered HTTP 500"),
        ({"malformed": True}, "not the credentials JSON"),
    ],
)
async def test_metadata_failures_are_errors(
    sb: Sandbox, http: httpx.AsyncClient, fault: dict[str, object], message: str
) -> None:
    sb.faults.add("/latest/credentials", **fault)  # type: ignore[arg-type]
    chain = _chain(http, credentials_metadata_url=sb.credentials_url, role_trn=_role(sb))
    with pytest.raises(CredentialsError) as caught:
        await chain.get()
    assert caught.value.code == "CredentialsMetadataError"
    assert message in str(caught.value)


async def test_metadata_without_keys_is_an_error(sb: Sandbox, http: httpx.AsyncClient) -> None:
    sb.faults.add("/latest/credentials", malformed="envelope")
    chain = _chain(http, credentials_metadata_url=sb.credentials_url, role_trn=_role(sb))
    with pytest.raises(CredentialsError, match="no AccessKeyId"):
        await chain.get()


async def test_metadata_unreachable_or_slow(sb: Sandbox, http: httpx.AsyncClient) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/latest/credentials"
        chain = _chain(http, credentials_metadata_url=url, role_trn=_role(sb))
        with pytest.raises(CredentialsError, match="unreachable"):
            await chain.get()
    sb.faults.add("/latest/credentials", latency=5.0, count=1)
    slow = _chain(
        http,
        credentials_metadata_url=sb.credentials_url,
        role_trn=_role(sb),
        metadata_timeout=0.2,
    )
    with pytest.raises(CredentialsError, match="no answer within"):
        await slow.get()


async def test_file_with_role_trn(sb: Sandbox, http: httpx.AsyncClient, tmp_path: Path) -> None:
    file = _write(
        tmp_path / "c",
        access_key_id=sb.access_key_id,
        secret_access_key=sb.secret_access_key,
        role_trn=_role(sb),
    )
    chain = _chain(http, credentials_file=file, sts_endpoint=sb.base_url)
    creds = await chain.get()
    assert sb.state.temporary_keys[creds.access_key_id].role.name == "openclaw-agent"


async def test_file_with_runtime_role_env(
    sb: Sandbox, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    file = _write(
        tmp_path / "c", access_key_id=sb.access_key_id, secret_access_key=sb.secret_access_key
    )
    env = {"RUNTIME_IAM_ROLE_TRN": _role(sb, "demo-readonly"), "VOLCENGINE_CREDENTIALS_FILE": file}
    chain = _chain(http, credentials_file=None, env=env, sts_endpoint=sb.base_url)
    creds = await chain.get()
    assert sb.state.temporary_keys[creds.access_key_id].role.name == "demo-readonly"


async def test_assume_role_refused(sb: Sandbox, http: httpx.AsyncClient) -> None:
    chain = _chain(
        http,
        access_key_id=sb.access_key_id,
        secret_access_key=sb.secret_access_key,
        role_trn=_role(sb, "no-such-role"),
        sts_endpoint=sb.base_url,
    )
    with pytest.raises(VolcengineError) as caught:
        await chain.get()
    assert (caught.value.status, caught.value.action) == (404, "AssumeRole")


async def test_concurrent_callers_share_one_refresh(sb: Sandbox, http: httpx.AsyncClient) -> None:
    sb.faults.add("AssumeRole", latency=0.2, status=None)
    chain = _chain(
        http,
        access_key_id=sb.access_key_id,
        secret_access_key=sb.secret_access_key,
        role_trn=_role(sb),
        sts_endpoint=sb.base_url,
    )
    results: list[SigningCredentials] = []

    async def one() -> None:
        results.append(await chain.get())

    async with trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(one)
    assert sb.requests.count("AssumeRole") == 1
    assert len({creds.access_key_id for creds in results}) == 1
    assert chain.statistics().resolutions == 1


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
async def timed_sb(clock: FakeClock, leak_watch: LeakWatch) -> AsyncIterator[Sandbox]:
    # One clock for the sandbox (expiry, X-Date checks) and the chain (signing, refresh).
    async with open_sandbox(clock=clock.time, rng=random.Random(3)) as sandbox:
        leak_watch.sandboxes.append(sandbox)
        yield sandbox


def _timed_chain(
    sb: Sandbox, http: httpx.AsyncClient, clock: FakeClock, sleeps: SleepRecorder
) -> CredentialChain:
    return _chain(
        http,
        access_key_id=sb.access_key_id,
        secret_access_key=sb.secret_access_key,
        role_trn=_role(sb),
        sts_endpoint=sb.base_url,
        now=clock.now,
        sleep=sleeps,
    )


async def test_refresh_before_expiry(
    timed_sb: Sandbox, http: httpx.AsyncClient, clock: FakeClock, sleeps: SleepRecorder
) -> None:
    chain = _timed_chain(timed_sb, http, clock, sleeps)
    first = await chain.get()
    expires = chain.statistics().expires_at
    assert expires == clock.moment + timedelta(seconds=3600)
    clock.advance(minutes=54)
    assert await chain.get() is first
    clock.advance(minutes=2)  # inside the 5-minute margin
    second = await chain.get()
    assert second.access_key_id != first.access_key_id
    assert timed_sb.requests.count("AssumeRole") == 2


async def test_failed_refresh_keeps_valid_keys_then_retries(
    timed_sb: Sandbox,
    http: httpx.AsyncClient,
    clock: FakeClock,
    sleeps: SleepRecorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    chain = _timed_chain(timed_sb, http, clock, sleeps)
    first = await chain.get()
    clock.advance(minutes=56)
    timed_sb.faults.add("AssumeRole", status=400, count=1)
    with caplog.at_level(logging.WARNING):
        assert await chain.get() is first
    assert "credential refresh failed" in caplog.text
    assert chain.statistics().failures == 1
    clock.advance(seconds=10)
    assert await chain.get() is first  # no new attempt within the 30 s back-off
    assert timed_sb.requests.count("AssumeRole") == 2
    clock.advance(seconds=25)
    assert (await chain.get()).access_key_id != first.access_key_id
    assert timed_sb.requests.count("AssumeRole") == 3


async def test_failed_refresh_after_expiry_raises(
    timed_sb: Sandbox, http: httpx.AsyncClient, clock: FakeClock, sleeps: SleepRecorder
) -> None:
    chain = _timed_chain(timed_sb, http, clock, sleeps)
    await chain.get()
    clock.advance(minutes=61)
    timed_sb.faults.add("AssumeRole", status=403)
    with pytest.raises(VolcengineError) as caught:
        await chain.get()
    assert caught.value.status == 403
