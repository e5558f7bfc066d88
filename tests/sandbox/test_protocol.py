"""The wire protocol: envelope, signature checks, routing, params, internal errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from agent_identity.sandbox import Sandbox, open_sandbox
from agent_identity.sandbox.context import ActionContext
from agent_identity.volcengine.signer import SigningCredentials

from .helpers import ID_VERSION, Api


async def test_success_envelope_shape(api: Api, sb: Sandbox) -> None:
    response = await api.send("GetWorkloadIdentity", {"Name": "openclaw-agent"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    document = response.json()
    assert set(document) == {"ResponseMetadata", "Result"}
    meta = document["ResponseMetadata"]
    assert meta["Action"] == "GetWorkloadIdentity"
    assert meta["Version"] == ID_VERSION
    assert meta["Service"] == "id"
    assert meta["Region"] == "cn-beijing"
    assert len(meta["RequestId"]) >= 20
    assert "Error" not in meta
    assert document["Result"]["Name"] == "openclaw-agent"
    assert sb.requests.count("GetWorkloadIdentity") == 1


async def test_error_envelope_shape(api: Api) -> None:
    response = await api.send("GetWorkloadIdentity", {"Name": "nobody"})
    assert response.status_code == 404
    document = response.json()
    assert set(document) == {"ResponseMetadata"}
    error = document["ResponseMetadata"]["Error"]
    assert error["Code"] == "ResourceNotFound.WorkloadIdentity"
    assert "NotFound" in error["Code"]
    assert "nobody" in error["Message"]


async def test_wrong_secret_is_signature_does_not_match(api: Api, sb: Sandbox) -> None:
    bad = SigningCredentials(sb.access_key_id, "not-the-secret")
    error = await api.fail("GetWorkloadIdentity", {"Name": "x"}, 401, credentials=bad)
    assert error["Code"] == "SignatureDoesNotMatch"
    assert error["CodeN"] == 100010


async def test_altered_body_is_rejected(api: Api, sb: Sandbox) -> None:
    body = json.dumps({"Name": "openclaw-agent"}).encode()
    params, headers = api.signed("GetWorkloadIdentity", body)
    response = await api.client.post(
        f"{sb.base_url}/",
        params=tuple(params),
        headers=headers,
        content=body.replace(b"open", b"OPEN"),
    )
    assert response.status_code == 401
    assert response.json()["ResponseMetadata"]["Error"]["CodeN"] == 100010


async def test_altered_query_is_rejected(api: Api, sb: Sandbox) -> None:
    body = b"{}"
    params, headers = api.signed("GetWorkloadIdentity", body)
    response = await api.client.post(
        f"{sb.base_url}/",
        params=(*params, ("Extra", "1")),
        headers=headers,
        content=body,
    )
    assert response.status_code == 401
    assert response.json()["ResponseMetadata"]["Error"]["Code"] == "SignatureDoesNotMatch"


async def test_stale_x_date_is_invalid_timestamp(api: Api) -> None:
    stale = datetime.now(UTC) - timedelta(minutes=20)
    error = await api.fail("GetWorkloadIdentity", {"Name": "x"}, 400, moment=stale)
    assert error["Code"] == "InvalidTimestamp"
    assert error["CodeN"] == 100006


async def test_skew_limit_is_configurable(http: httpx.AsyncClient) -> None:
    async with open_sandbox(max_skew_seconds=30) as sb:
        api = Api(http, sb)
        stale = datetime.now(UTC) - timedelta(minutes=2)
        error = await api.fail("GetWorkloadIdentity", {"Name": "x"}, 400, moment=stale)
        assert error["Code"] == "InvalidTimestamp"


async def test_unknown_access_key(api: Api) -> None:
    stranger = SigningCredentials("AKLTstranger", "whatever")
    error = await api.fail("GetWorkloadIdentity", {"Name": "x"}, 401, credentials=stranger)
    assert error["Code"] == "InvalidAccessKey"
    assert error["CodeN"] == 100009


async def test_unsigned_request_is_missing_authentication_token(api: Api, sb: Sandbox) -> None:
    response = await api.client.post(
        f"{sb.base_url}/",
        params={"Action": "GetWorkloadIdentity", "Version": ID_VERSION},
        json={"Name": "x"},
    )
    assert response.status_code == 401
    error = response.json()["ResponseMetadata"]["Error"]
    assert error == {
        "Code": "MissingAuthenticationToken",
        "CodeN": 100003,
        "Message": error["Message"],
    }


async def test_scope_service_must_match_version(api: Api) -> None:
    error = await api.fail("GetWorkloadIdentity", {"Name": "x"}, 401, service="sts")
    assert error["Code"] == "SignatureDoesNotMatch"
    assert "service" in error["Message"]


async def test_unknown_action_and_version(api: Api) -> None:
    error = await api.fail("NoSuchAction", {}, 404)
    assert error["Code"] == "InvalidActionOrVersion"
    assert error["CodeN"] == 100008
    error = await api.fail("GetWorkloadIdentity", {}, 404, version="2099-01-01", service="id")
    assert error["Code"] == "InvalidActionOrVersion"


async def test_missing_action(api: Api, sb: Sandbox) -> None:
    response = await api.client.post(f"{sb.base_url}/", params={"Version": ID_VERSION})
    assert response.status_code == 400
    assert response.json()["ResponseMetadata"]["Error"]["Code"] == "MissingAction"


async def test_missing_parameter(api: Api) -> None:
    error = await api.fail("GetWorkloadIdentity", {}, 400)
    assert error["Code"] == "MissingParameter"
    assert error["CodeN"] == 100002
    assert "Name" in error["Message"]


async def test_wrongly_typed_parameter(api: Api) -> None:
    error = await api.fail("GetWorkloadIdentity", {"Name": 7}, 400)
    assert error["Code"] == "InvalidParameter.Name"


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]"])
async def test_malformed_json_is_invalid_request(api: Api, body: bytes) -> None:
    response = await api.send("GetWorkloadIdentity", raw=body)
    assert response.status_code == 400
    assert response.json()["ResponseMetadata"]["Error"]["Code"] == "InvalidRequest"


async def test_expired_temporary_key(api: Api, sb: Sandbox) -> None:
    creds = await api.assume_role()
    sb.state.temporary_keys[creds.access_key_id].expires_at = sb.state.now() - 1
    error = await api.fail("GetWorkloadIdentity", {"Name": "x"}, 401, credentials=creds)
    assert error["Code"] == "InvalidAccessKey"
    assert "expired" in error["Message"]


async def test_temporary_key_needs_its_security_token(api: Api) -> None:
    creds = await api.assume_role()
    tokenless = SigningCredentials(creds.access_key_id, creds.secret_access_key)
    error = await api.fail("GetWorkloadIdentity", {"Name": "x"}, 401, credentials=tokenless)
    assert error["Code"] == "InvalidAccessKey"


async def test_handler_crash_is_a_500_envelope_and_serving_goes_on(api: Api, sb: Sandbox) -> None:
    def boom(ctx: ActionContext) -> dict[str, object]:
        raise RuntimeError("kaboom")

    sb.app.handlers[(ID_VERSION, "Boom")] = boom
    error = await api.fail("Boom", {}, 500)
    assert error["Code"] == "InternalError"
    assert "kaboom" not in error["Message"]
    assert (await api.ok("GetWorkloadIdentity", {"Name": "openclaw-agent"}))["Name"]


async def test_index_and_unknown_pages(sb: Sandbox, http: httpx.AsyncClient) -> None:
    index = (await http.get(f"{sb.base_url}/")).json()
    assert index["Endpoint"] == sb.base_url
    assert "GetWorkloadAccessTokenForJWT (2025-10-30)" in index["Actions"]
    assert (await http.get(f"{sb.base_url}/nothing/here")).status_code == 404
    assert (await http.get(f"{sb.base_url}/workloadpool/nope/keys")).status_code == 404


async def test_oversized_body_is_413(api: Api) -> None:
    response = await api.send("GetWorkloadIdentity", raw=b" " * (2 << 20))
    assert response.status_code == 413
    assert response.json()["ResponseMetadata"]["Error"]["Code"] == "RequestEntityTooLarge"
