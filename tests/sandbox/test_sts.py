"""STS AssumeRole, role credentials, and the metadata endpoints: the keys are really accepted."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlencode

import httpx
import pytest

from agent_identity.sandbox import Sandbox
from agent_identity.volcengine.signer import SigningCredentials

from .helpers import STS_VERSION, Api

ROLE_TRN = "trn:iam::2100000001:role/openclaw-agent"


async def _assume(api: Api, form: dict[str, str]) -> httpx.Response:
    return await api.send(
        "AssumeRole",
        raw=urlencode(form).encode(),
        version=STS_VERSION,
        content_type="application/x-www-form-urlencoded",
    )


async def test_assume_role_post_form(api: Api, sb: Sandbox) -> None:
    response = await _assume(
        api, {"RoleTrn": ROLE_TRN, "RoleSessionName": "agent-session", "DurationSeconds": "1800"}
    )
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["ResponseMetadata"]["Service"] == "sts"
    result = document["Result"]
    creds = result["Credentials"]
    assert creds["AccessKeyId"].startswith("AKTP")
    expired = datetime.fromisoformat(creds["ExpiredTime"])
    current = datetime.fromisoformat(creds["CurrentTime"])
    assert creds["ExpiredTime"].endswith("+08:00")
    assert 1799 <= (expired - current).total_seconds() <= 1801
    assert result["AssumedRoleUser"]["Trn"] == (
        "trn:sts::2100000001:assumed-role/openclaw-agent/agent-session"
    )
    assert result["AssumedRoleUser"]["AssumedRoleId"].endswith(":agent-session")
    key = sb.state.temporary_keys[creds["AccessKeyId"]]
    assert key.role.name == "openclaw-agent"


async def test_assume_role_get_query(api: Api) -> None:
    query = [("RoleTrn", ROLE_TRN), ("RoleSessionName", "via-get")]
    response = await api.send("AssumeRole", raw=b"", version=STS_VERSION, method="GET", query=query)
    assert response.status_code == 200, response.text
    assert response.json()["Result"]["Credentials"]["SessionToken"].startswith("STS2")


@pytest.mark.parametrize(
    ("requested", "expected"),
    [(None, 3600), ("100", 3600), ("900", 900), ("43200", 43200), ("90000", 43200)],
)
async def test_assume_role_duration_rules(
    api: Api, sb: Sandbox, requested: str | None, expected: int
) -> None:
    form = {"RoleTrn": ROLE_TRN, "RoleSessionName": "durations"}
    if requested is not None:
        form["DurationSeconds"] = requested
    response = await _assume(api, form)
    key = sb.state.temporary_keys[response.json()["Result"]["Credentials"]["AccessKeyId"]]
    assert abs(key.expires_at - sb.state.now() - expected) < 5


async def test_temporary_keys_work_on_control_plane_and_sts(api: Api) -> None:
    creds = await api.assume_role()
    as_role = api.with_credentials(creds)
    assert (await as_role.ok("GetWorkloadIdentity", {"Name": "openclaw-agent"}))["Name"]
    # Role chaining with the temporary keys is accepted too.
    chained = await as_role.assume_role("demo-readonly")
    assert chained.access_key_id != creds.access_key_id


@pytest.mark.parametrize(
    ("form", "status", "code"),
    [
        ({"RoleSessionName": "s"}, 400, "MissingParameter"),
        ({"RoleTrn": ROLE_TRN}, 400, "MissingParameter"),
        (
            {"RoleTrn": "arn:aws:iam::1:role/x", "RoleSessionName": "ok-name"},
            400,
            "InvalidParameter.RoleTrn",
        ),
        (
            {"RoleTrn": "trn:iam::2100000001:role/ghost", "RoleSessionName": "ok-name"},
            404,
            "ResourceNotFound.Role",
        ),
        (
            {"RoleTrn": "trn:iam::999:role/openclaw-agent", "RoleSessionName": "ok-name"},
            404,
            "ResourceNotFound.Role",
        ),
        (
            {"RoleTrn": ROLE_TRN, "RoleSessionName": "has space"},
            400,
            "InvalidParameter.RoleSessionName",
        ),
        (
            {"RoleTrn": ROLE_TRN, "RoleSessionName": "ok-name", "DurationSeconds": "soon"},
            400,
            "InvalidParameter.DurationSeconds",
        ),
    ],
)
async def test_assume_role_errors(api: Api, form: dict[str, str], status: int, code: str) -> None:
    response = await _assume(api, form)
    assert response.status_code == status, response.text
    assert response.json()["ResponseMetadata"]["Error"]["Code"] == code


async def test_sts_signed_for_id_is_refused(api: Api) -> None:
    response = await api.send(
        "AssumeRole",
        raw=urlencode({"RoleTrn": ROLE_TRN, "RoleSessionName": "x1"}).encode(),
        version=STS_VERSION,
        service="id",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 401


async def test_get_role_credentials_keys_are_usable(api: Api, sb: Sandbox) -> None:
    tip = await api.user_tip("alice")
    result = await api.ok(
        "GetRoleCredentials",
        {"ProviderName": "demo-role", "IdentityToken": tip, "WithOIDC": True},
    )
    response = result["VolcEngResponse"]
    creds = response["Credentials"]
    assert set(creds) == {
        "AccessKeyId",
        "SecretAccessKey",
        "SessionToken",
        "Expiration",
        "CurrentTime",
    }
    assert response["AssumedRoleUser"]["Trn"].endswith("assumed-role/demo-readonly/alice")
    assert response["OIDCTokenInfo"]["Subject"] == "alice"
    keys = SigningCredentials(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    assert (await api.with_credentials(keys).ok("GetWorkloadPool", {}))["WorkloadPoolName"]


async def test_get_role_credentials_errors(api: Api) -> None:
    tip = await api.user_tip("alice")
    error = await api.fail(
        "GetRoleCredentials", {"ProviderName": "nope", "IdentityToken": tip}, 404
    )
    assert error["Code"] == "ResourceNotFound.RoleCredentialProvider"
    error = await api.fail(
        "GetRoleCredentials",
        {"ProviderName": "demo-role", "IdentityToken": tip, "RequestedRoleTrn": ROLE_TRN},
        400,
    )
    assert error["Code"] == "InvalidParameter.RequestedRoleTrn"
    error = await api.fail(
        "GetRoleCredentials", {"ProviderName": "demo-role", "IdentityToken": "junk"}, 400
    )
    assert error["Code"] == "InvalidParameter.IdentityToken"
    user_token = api.sb.issue_user_token("agent-identity-dev", "alice")
    error = await api.fail(
        "GetRoleCredentials", {"ProviderName": "demo-role", "IdentityToken": user_token}, 400
    )
    assert "not a workload pool" in error["Message"]


async def test_region_metadata(sb: Sandbox, http: httpx.AsyncClient) -> None:
    response = await http.get(sb.region_url)
    assert response.status_code == 200
    assert response.text == "cn-beijing"
    assert response.headers["content-type"].startswith("text/plain")
    sb.metadata.region_body = "unknown"
    assert (await http.get(f"{sb.base_url}/latest/region_id")).text == "unknown"
    sb.metadata.region_status = 500
    assert (await http.get(sb.region_url)).status_code == 500


async def test_credentials_metadata(api: Api, sb: Sandbox, http: httpx.AsyncClient) -> None:
    response = await http.get(sb.credentials_url)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"AccessKeyId", "SecretAccessKey", "SessionToken", "ExpiredTime"}
    keys = SigningCredentials(body["AccessKeyId"], body["SecretAccessKey"], body["SessionToken"])
    # The plugin's flow: metadata keys, then AssumeRole with them.
    chained = await api.with_credentials(keys).assume_role("openclaw-agent")
    assert (await api.with_credentials(chained).ok("GetWorkloadPool", {}))["WorkloadPoolId"]
    sb.metadata.credentials_status = 404
    assert (await http.get(sb.credentials_url)).status_code == 404
    sb.metadata.credentials_status = 200
    sb.metadata.credentials_role = None
    assert (await http.get(sb.credentials_url)).status_code == 404


async def test_get_caller_identity(api: Api) -> None:
    root = await api.ok("GetCallerIdentity", {}, version=STS_VERSION)
    assert (root["IdentityType"], root["Trn"]) == ("Account", "trn:iam::2100000001:root")
    creds = await api.assume_role("openclaw-agent", RoleSessionName="who-am-i")
    me = await api.with_credentials(creds).ok("GetCallerIdentity", {}, version=STS_VERSION)
    assert me["IdentityType"] == "AssumedRole"
    assert me["Trn"] == "trn:sts::2100000001:assumed-role/openclaw-agent/who-am-i"
