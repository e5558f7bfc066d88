"""No secret in any log record (DEBUG, STS debug on) or any error text a busy session produces.

The autouse leak watch (conftest) already checks every test of this folder; this test drives
one session through every path that logs or fails, with IDENTITY_STS_DEBUG on, and checks the
same property explicitly, after proving that the check would catch a leak.
"""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from agent_identity.sandbox import Sandbox
from agent_identity.volcengine import CredentialChain, IdentityClient, SigningCredentials
from agent_identity.volcengine.errors import VolcengineError
from agent_identity.volcengine.models import (
    CreateUserCredentialRequest,
    GetResourceApiKeyRequest,
    GetResourceOauth2TokenRequest,
    GetRoleCredentialsRequest,
    GetUserPoolClientRequest,
    GetWorkloadAccessTokenForJWTRequest,
    ListUserPoolsRequest,
)
from agent_identity.volcengine.transport import static_credentials

from .conftest import FAST_RETRY
from .helpers import LeakWatch, RequestRecorder, SleepRecorder, sandbox_secrets

LIST = ListUserPoolsRequest(page_number=1, page_size=10)


def test_the_watch_catches_a_leak() -> None:
    watch = LeakWatch()
    watch.secret("canary-secret-value-123")
    record = logging.LogRecord(
        "x", logging.DEBUG, __file__, 1, "got %s", ("canary-secret-value-123",), None
    )
    assert watch.leaks([record])
    watch.errors.append(RuntimeError("wrapped", ValueError("canary-secret-value-123")))
    assert watch.leaks([])
    with pytest.raises(AssertionError, match="secrets leaked"):
        watch.assert_clean([record])


async def _expect_failure(coro: object) -> VolcengineError:
    with pytest.raises(VolcengineError) as caught:
        await coro  # type: ignore[misc]
    return caught.value


async def test_a_busy_session_leaks_nothing(
    sb: Sandbox,
    http: httpx.AsyncClient,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    leak_watch: LeakWatch,
    recorder: RequestRecorder,
) -> None:
    caplog.set_level(logging.DEBUG)
    sleeps = SleepRecorder()
    chain = CredentialChain(
        http,
        credentials_metadata_url=sb.credentials_url,
        role_trn=sb.state.role_trn("openclaw-agent"),
        sts_endpoint=sb.base_url,
        sts_debug=True,
        retry=FAST_RETRY,
        sleep=sleeps,
    )
    client = IdentityClient(
        http, endpoint=sb.base_url, credentials=chain.get, retry=FAST_RETRY, sleep=sleeps
    )
    user_token = sb.issue_user_token("agent-identity-dev", "alice")
    expired_token = sb.issue_user_token("agent-identity-dev", "alice", ttl=-60)
    tip = (
        await client.get_workload_access_token_for_jwt(
            GetWorkloadAccessTokenForJWTRequest(user_token=user_token)
        )
    ).workload_access_token
    secrets = [user_token, expired_token, tip]

    # Successes that return secrets.
    role = await client.get_role_credentials(
        GetRoleCredentialsRequest(provider_name="demo-role", identity_token=tip)
    )
    api_key = await client.get_resource_api_key(
        GetResourceApiKeyRequest(provider_name="openai", identity_token=tip)
    )
    m2m = await client.get_resource_oauth2_token(
        GetResourceOauth2TokenRequest(provider_name="demo-m2m", identity_token=tip)
    )
    await client.create_user_credential(
        CreateUserCredentialRequest(credential_data="stored-secret-data-1", identity_token=tip)
    )
    client_info = await client.get_user_pool_client(
        GetUserPoolClientRequest(user_pool_uid="up-dev-0001", client_uid="client-openclaw-0001")
    )
    assert role.volc_eng_response is not None
    assert role.volc_eng_response.credentials is not None
    secrets += [
        role.volc_eng_response.credentials.secret_access_key,
        role.volc_eng_response.credentials.session_token,
        api_key.api_key,
        m2m.access_token or "",
        client_info.client_secret or "",
        "stored-secret-data-1",
    ]
    # Reprs of everything returned are fair game for logs too.
    texts = [repr(role), repr(api_key), repr(m2m), repr(client_info)]

    # Failures whose requests carried secrets.
    errors = [
        await _expect_failure(
            client.get_workload_access_token_for_jwt(
                GetWorkloadAccessTokenForJWTRequest(user_token=expired_token)
            )
        ),
        await _expect_failure(
            client.get_resource_api_key(
                GetResourceApiKeyRequest(provider_name="ghost", identity_token=tip)
            )
        ),
    ]
    sb.faults.add("ListUserPools", status=503)
    errors.append(await _expect_failure(client.list_user_pools(LIST)))
    sb.faults.clear()
    sb.faults.add("ListUserPools", malformed=True, count=1)
    errors.append(await _expect_failure(client.list_user_pools(LIST)))
    wrong = IdentityClient(
        http,
        endpoint=sb.base_url,
        credentials=static_credentials(
            SigningCredentials(sb.access_key_id, "wrong-secret-for-leak-test")
        ),
        retry=FAST_RETRY,
    )
    errors.append(await _expect_failure(wrong.list_user_pools(LIST)))
    secrets.append("wrong-secret-for-leak-test")
    bad_file = tmp_path / "credential"
    bad_file.write_text('{"access_key_id": 5, "secret_access_key": "file-secret-in-bad-file"}')
    errors.append(
        await _expect_failure(CredentialChain(http, credentials_file=str(bad_file)).get())
    )
    secrets.append("file-secret-in-bad-file")
    sb.faults.add("AssumeRole", status=500)
    chain.invalidate()
    errors.append(await _expect_failure(chain.get()))

    # The session did exercise the noisy paths.
    sts_lines = [r for r in caplog.records if r.name == "agent_identity.volcengine.sts"]
    assert any("<redacted>" in r.getMessage() for r in sts_lines)
    assert any("AssumeRole failed" in r.getMessage() for r in sts_lines)
    assert any("retrying in" in r.getMessage() for r in caplog.records)
    assert {e.code for e in errors} >= {
        "InvalidParameter.UserToken",
        "ServiceUnavailable",
        "InvalidResponse",
        "SignatureDoesNotMatch",
        "InvalidCredentialsFile",
        "InternalError",
    }

    everything = [*sandbox_secrets(sb), *secrets]
    leak_watch.secret(*everything)
    leak_watch.text(*texts)
    leak_watch.assert_clean(caplog.records)
    watched = leak_watch.texts(caplog.records)
    assert len(watched) > 50
    for secret in everything:
        assert all(secret not in text for text in watched)
    # The secrets really travelled in the requests that failed, so the check is meaningful.
    assert any(tip.encode() in r.content for r in recorder.for_action("GetResourceApiKey"))
    assert any(expired_token.encode() in r.content for r in recorder.requests)
