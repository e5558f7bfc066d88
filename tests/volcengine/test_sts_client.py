"""StsClient.assume_role against the sandbox, the form body, and redacted debug logging."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from agent_identity.sandbox import Sandbox
from agent_identity.volcengine import SigningCredentials, StsClient
from agent_identity.volcengine.errors import VolcengineError
from agent_identity.volcengine.models import AssumeRoleResult, StsCredentials
from agent_identity.volcengine.sts import _credentials_of, mask_access_key_id
from agent_identity.volcengine.transport import static_credentials

from .conftest import FAST_RETRY
from .helpers import RequestRecorder, SleepRecorder


def _sts(sb: Sandbox, http: httpx.AsyncClient, *, debug: bool = False) -> StsClient:
    root = SigningCredentials(sb.access_key_id, sb.secret_access_key)
    return StsClient(
        http,
        credentials=static_credentials(root),
        endpoint=sb.base_url,
        debug=debug,
        retry=FAST_RETRY,
        sleep=SleepRecorder(),
    )


async def test_assume_role(sb: Sandbox, http: httpx.AsyncClient, recorder: RequestRecorder) -> None:
    role = sb.state.role_trn("openclaw-agent")
    assumed = await _sts(sb, http).assume_role(role, "agent-session", duration_seconds=1800)
    (request,) = recorder.for_action("AssumeRole")
    assert request.url.query == b"Action=AssumeRole&Version=2018-01-01"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert "/sts/request, " in request.headers["authorization"]
    assert request.content == (
        b"DurationSeconds=1800&RoleSessionName=agent-session&RoleTrn="
        + role.replace(":", "%3A").replace("/", "%2F").encode()
    )
    key = sb.state.temporary_keys[assumed.access_key_id]
    assert (assumed.secret_access_key, assumed.session_token) == (
        key.secret_access_key,
        key.session_token,
    )
    assert assumed.expired_time.tzinfo is not None
    assert assumed.expired_time.timestamp() == int(key.expires_at)
    assert assumed.expired_time - datetime.now(UTC) == pytest.approx(
        timedelta(seconds=1800), abs=timedelta(seconds=5)
    )
    assert assumed.current_time is not None
    assert assumed.assumed_role_user is not None
    assert assumed.assumed_role_user.trn.endswith("assumed-role/openclaw-agent/agent-session")
    assert assumed.secret_access_key not in repr(assumed)
    assert assumed.session_token not in repr(assumed)
    assert assumed.signing_credentials().session_token == key.session_token


async def test_the_form_body_matches_vector_v3(
    sb: Sandbox, http: httpx.AsyncClient, recorder: RequestRecorder
) -> None:
    with pytest.raises(VolcengineError):
        await _sts(sb, http).assume_role("trn:iam::2100000000:role/agent-role", "agent-session")
    assert recorder.requests[0].content == (
        b"RoleSessionName=agent-session&RoleTrn=trn%3Aiam%3A%3A2100000000%3Arole%2Fagent-role"
    )


async def test_assume_role_errors(sb: Sandbox, http: httpx.AsyncClient) -> None:
    sts = _sts(sb, http)
    with pytest.raises(VolcengineError) as bad:
        await sts.assume_role("not-a-trn", "s1")
    assert (bad.value.status, bad.value.code) == (400, "InvalidParameter.RoleTrn")
    with pytest.raises(VolcengineError) as missing:
        await sts.assume_role(sb.state.role_trn("ghost"), "s1")
    assert missing.value.status == 404
    with pytest.raises(VolcengineError) as session:
        await sts.assume_role(sb.state.role_trn("openclaw-agent"), "a b")
    assert session.value.code == "InvalidParameter.RoleSessionName"
    assert sts.statistics().failures == 3


async def test_debug_logging_is_redacted(
    sb: Sandbox, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="agent_identity.volcengine.sts")
    assumed = await _sts(sb, http, debug=True).assume_role(
        sb.state.role_trn("openclaw-agent"), "debug-session"
    )
    lines = [r.getMessage() for r in caplog.records if r.name == "agent_identity.volcengine.sts"]
    assert len(lines) == 2
    assert "RoleSessionName" in lines[0]
    assert "debug-session" in lines[0]
    assert "<redacted>" in lines[1]
    assert mask_access_key_id(assumed.access_key_id) in lines[1]
    for line in lines:
        assert assumed.secret_access_key not in line
        assert assumed.session_token not in line
        assert assumed.access_key_id not in line
    caplog.clear()
    with pytest.raises(VolcengineError):
        await _sts(sb, http, debug=True).assume_role("bad", "debug-session")
    assert any("AssumeRole failed" in r.getMessage() for r in caplog.records)


async def test_no_debug_logging_by_default(
    sb: Sandbox, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="agent_identity.volcengine.sts")
    await _sts(sb, http).assume_role(sb.state.role_trn("openclaw-agent"), "quiet")
    assert not [r for r in caplog.records if r.name == "agent_identity.volcengine.sts"]


def test_mask_access_key_id() -> None:
    assert mask_access_key_id("AKTPabcdef0123456789") == "AKTPab***"
    assert mask_access_key_id("short") == "***"


@pytest.mark.parametrize(
    "credentials",
    [
        None,
        StsCredentials(access_key_id="AK", secret_access_key="sk-000000000"),
        StsCredentials(
            access_key_id="AK",
            secret_access_key="sk-000000000",
            session_token="st-000000000",
            expired_time="tomorrow",
        ),
        StsCredentials(
            access_key_id="AK",
            secret_access_key="sk-000000000",
            session_token="st-000000000",
            expired_time="2021-04-12T11:57:09+08:00",
            current_time="now",
        ),
    ],
)
def test_unusable_answers(credentials: StsCredentials | None) -> None:
    with pytest.raises(VolcengineError) as caught:
        _credentials_of(AssumeRoleResult(credentials=credentials))
    assert caught.value.code == "InvalidResponse"
    assert "000000000" not in str(caught.value)


def test_rfc3339_with_offset() -> None:
    assumed = _credentials_of(
        AssumeRoleResult(
            credentials=StsCredentials(
                access_key_id="AK",
                secret_access_key="sk",
                session_token="st",
                expired_time="2021-04-12T11:57:09+08:00",
            )
        )
    )
    assert assumed.expired_time == datetime(2021, 4, 12, 3, 57, 9, tzinfo=UTC)
    assert assumed.current_time is None
    assert time.time() > assumed.expired_time.timestamp()
