"""What goes on the wire, and the signing failure paths, against the sandbox."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from agent_identity.sandbox import Sandbox
from agent_identity.volcengine import IdentityClient, SigningCredentials, StsClient
from agent_identity.volcengine.errors import VolcengineError
from agent_identity.volcengine.identity import ID_VERSION
from agent_identity.volcengine.models import GetUserPoolRequest, ListUserPoolsRequest
from agent_identity.volcengine.signer import sign_request
from agent_identity.volcengine.transport import SignedTransport, static_credentials

from .conftest import FAST_RETRY
from .helpers import LeakWatch, RequestRecorder, SleepRecorder

LIST = ListUserPoolsRequest(page_number=1, page_size=10)


def _client(
    sb: Sandbox, http: httpx.AsyncClient, creds: SigningCredentials, **kwargs: object
) -> IdentityClient:
    return IdentityClient(
        http,
        endpoint=sb.base_url,
        credentials=static_credentials(creds),
        retry=FAST_RETRY,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_request_shape(client: IdentityClient, recorder: RequestRecorder) -> None:
    await client.get_user_pool(GetUserPoolRequest(user_pool_uid="up-dev-0001"))
    (request,) = recorder.requests
    assert request.method == "POST"
    assert request.url.path == "/"
    assert request.url.query == b"Action=GetUserPool&Version=2025-10-30"
    assert request.content == b'{"UserPoolUid":"up-dev-0001"}'
    headers = request.headers
    assert headers["content-type"] == "application/json"
    assert headers["x-content-sha256"] == hashlib.sha256(request.content).hexdigest()
    assert headers["x-sdk-request"] == "attempt=1; max=4"
    assert len(headers["x-sdk-invocation-id"]) == 36
    assert "x-security-token" not in headers
    auth = headers["authorization"]
    assert auth.startswith("HMAC-SHA256 Credential=AKLTsandboxroot00000000000000001/")
    assert "/cn-beijing/id/request, " in auth
    assert (
        "SignedHeaders=content-type;host;x-content-sha256;x-date;x-sdk-invocation-id;x-sdk-request,"
        in auth
    )


async def test_temporary_credentials_send_the_token(
    sb: Sandbox, http: httpx.AsyncClient, recorder: RequestRecorder, leak_watch: LeakWatch
) -> None:
    sts = StsClient(
        http,
        credentials=static_credentials(SigningCredentials(sb.access_key_id, sb.secret_access_key)),
        endpoint=sb.base_url,
    )
    keys = await sts.assume_role(sb.state.role_trn("openclaw-agent"), "shape-test")
    client = _client(sb, http, keys.signing_credentials())
    await client.list_user_pools(LIST)
    request = recorder.for_action("ListUserPools")[0]
    assert request.headers["x-security-token"] == keys.session_token
    assert "x-security-token" in request.headers["authorization"]
    # Without the token the temporary key is refused.
    bare = SigningCredentials(keys.access_key_id, keys.secret_access_key)
    with pytest.raises(VolcengineError) as caught:
        await _client(sb, http, bare).list_user_pools(LIST)
    assert (caught.value.status, caught.value.code) == (401, "InvalidAccessKey")


async def test_wrong_secret(sb: Sandbox, http: httpx.AsyncClient, leak_watch: LeakWatch) -> None:
    leak_watch.secret("the-wrong-secret-000000")
    client = _client(sb, http, SigningCredentials(sb.access_key_id, "the-wrong-secret-000000"))
    with pytest.raises(VolcengineError) as caught:
        await client.list_user_pools(LIST)
    error = caught.value
    assert (error.status, error.code, error.code_n) == (401, "SignatureDoesNotMatch", 100010)
    assert error.request_id
    assert sb.requests.count("ListUserPools") == 1  # never retried


async def test_unknown_access_key(sb: Sandbox, http: httpx.AsyncClient) -> None:
    client = _client(sb, http, SigningCredentials("AKLTnobody", "some-secret-0000000"))
    with pytest.raises(VolcengineError) as caught:
        await client.list_user_pools(LIST)
    assert (caught.value.status, caught.value.code, caught.value.code_n) == (
        401,
        "InvalidAccessKey",
        100009,
    )


@pytest.mark.parametrize("skew", [timedelta(hours=-1), timedelta(minutes=20)])
async def test_stale_or_future_x_date(
    sb: Sandbox, http: httpx.AsyncClient, root: SigningCredentials, skew: timedelta
) -> None:
    client = _client(sb, http, root, now=lambda: datetime.now(UTC) + skew)
    with pytest.raises(VolcengineError) as caught:
        await client.list_user_pools(LIST)
    assert (caught.value.status, caught.value.code, caught.value.code_n) == (
        400,
        "InvalidTimestamp",
        100006,
    )
    assert sb.requests.count("ListUserPools") == 1


async def test_x_date_is_fresh_on_every_attempt(
    sb: Sandbox, http: httpx.AsyncClient, root: SigningCredentials, recorder: RequestRecorder
) -> None:
    ticks = iter(datetime.now(UTC) + timedelta(seconds=n) for n in range(100))
    client = _client(sb, http, root, now=lambda: next(ticks), sleep=SleepRecorder())
    sb.faults.add("ListUserPools", status=503, count=2)
    await client.list_user_pools(LIST)
    sent = recorder.for_action("ListUserPools")
    assert len({r.headers["x-date"] for r in sent}) == 3
    assert len({r.headers["authorization"] for r in sent}) == 3


async def test_altered_body_is_refused(
    sb: Sandbox, http: httpx.AsyncClient, root: SigningCredentials
) -> None:
    signed_body = b'{"PageNumber":1,"PageSize":10}'
    query = [("Action", "ListUserPools"), ("Version", ID_VERSION)]
    headers = sign_request(
        method="POST",
        host=sb.host,
        path="/",
        query=query,
        headers={"Content-Type": "application/json"},
        body=signed_body,
        credentials=root,
        region="cn-beijing",
        service="id",
        moment=datetime.now(UTC),
    )
    ok = await http.post(
        f"{sb.base_url}/", params=tuple(query), content=signed_body, headers=headers
    )
    assert ok.status_code == 200
    tampered = b'{"PageNumber":1,"PageSize":99}'
    refused = await http.post(
        f"{sb.base_url}/", params=tuple(query), content=tampered, headers=headers
    )
    assert refused.status_code == 401
    assert refused.json()["ResponseMetadata"]["Error"]["Code"] == "SignatureDoesNotMatch"


async def test_wrong_service_in_scope(
    sb: Sandbox, http: httpx.AsyncClient, root: SigningCredentials
) -> None:
    transport = SignedTransport(
        http,
        endpoint=sb.base_url,
        service="sts",
        version=ID_VERSION,
        region="cn-beijing",
        credentials=static_credentials(root),
    )
    with pytest.raises(VolcengineError) as caught:
        await transport.call_json("ListUserPools", LIST, dict)
    assert caught.value.code == "SignatureDoesNotMatch"


async def test_unknown_action(client: IdentityClient) -> None:
    with pytest.raises(VolcengineError) as caught:
        await client.transport.call_json("NoSuchAction", None, dict)
    assert (caught.value.status, caught.value.code) == (404, "InvalidActionOrVersion")


def test_endpoint_must_be_absolute() -> None:
    http = httpx.AsyncClient()  # never used to send, so never opened
    root = SigningCredentials("AK", "SK")
    with pytest.raises(ValueError, match="absolute http"):
        IdentityClient(
            http, endpoint="id.cn-beijing.volcengineapi.com", credentials=static_credentials(root)
        )
    client = IdentityClient(
        http,
        endpoint="https://id.cn-shanghai.volcengineapi.com:443/ignored",
        credentials=static_credentials(root),
    )
    assert client.transport.endpoint == "https://id.cn-shanghai.volcengineapi.com"
    assert client.transport.host == "id.cn-shanghai.volcengineapi.com"
    assert client.transport.region == "cn-shanghai"
