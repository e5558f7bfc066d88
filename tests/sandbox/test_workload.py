"""Workload identities and TIPs: claims checked against the published JWKS."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt

from agent_identity.sandbox import Sandbox

from .helpers import Api


async def decode_tip(http: httpx.AsyncClient, sb: Sandbox, token: str, **kwargs: Any) -> Any:
    """Verify a TIP exactly like a relying party: discovery → jwks_uri → key by kid."""
    discovery = (await http.get(f"{sb.tip_issuer()}/.well-known/openid-configuration")).json()
    assert discovery["issuer"] == sb.tip_issuer()
    assert discovery["jwks_uri"] == sb.tip_jwks_url()
    keys = jwt.PyJWKSet.from_dict((await http.get(discovery["jwks_uri"])).json())
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in keys.keys if k.key_id == kid)
    kwargs.setdefault("options", {"verify_aud": False})
    return jwt.decode(token, key.key, algorithms=["RS256"], issuer=sb.tip_issuer(), **kwargs)


async def test_tip_claims(api: Api, sb: Sandbox, http: httpx.AsyncClient) -> None:
    user_token = sb.issue_user_token("agent-identity-dev", "alice")
    result = await api.ok(
        "GetWorkloadAccessTokenForJWT",
        {
            "UserToken": user_token,
            "Name": "openclaw-agent",
            "WorkloadPoolName": "default",
            "Audience": ["https://tools.example"],
            "DurationSeconds": 600,
        },
    )
    claims = await decode_tip(
        http, sb, result["WorkloadAccessToken"], audience="https://tools.example"
    )
    assert claims["iss"] == f"{sb.base_url}/workloadpool/wp-default-0001"
    assert claims["sub"] == "alice"
    assert claims["aud"] == ["https://tools.example"]
    assert claims["act"] == {"sub": "openclaw-agent"}
    assert claims["exp"] - claims["iat"] == 600
    expires = datetime.strptime(result["ExpiresAt"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert int(expires.timestamp()) == claims["exp"]


async def test_default_audience_and_duration(
    api: Api, sb: Sandbox, http: httpx.AsyncClient
) -> None:
    # A user token that outlives the default TIP lifetime, so the cap does not apply.
    user_token = sb.issue_user_token("agent-identity-dev", "alice", ttl=7200)
    result = await api.ok(
        "GetWorkloadAccessTokenForJWT", {"UserToken": user_token, "Name": "openclaw-agent"}
    )
    claims = await decode_tip(http, sb, result["WorkloadAccessToken"])
    assert claims["aud"] == [sb.tip_issuer()]
    assert claims["exp"] - claims["iat"] == 3600


async def test_act_nests_one_level_per_exchange(
    api: Api, sb: Sandbox, http: httpx.AsyncClient
) -> None:
    await api.ok("CreateWorkloadIdentity", {"Name": "research-agent"})
    await api.ok("CreateWorkloadIdentity", {"Name": "search-tool"})
    first = await api.user_tip("alice")
    second = (
        await api.ok("GetWorkloadAccessTokenForJWT", {"UserToken": first, "Name": "research-agent"})
    )["WorkloadAccessToken"]
    third = (
        await api.ok("GetWorkloadAccessTokenForJWT", {"UserToken": second, "Name": "search-tool"})
    )["WorkloadAccessToken"]
    claims = await decode_tip(http, sb, third)
    assert claims["sub"] == "alice"
    assert claims["act"] == {
        "sub": "search-tool",
        "act": {"sub": "research-agent", "act": {"sub": "openclaw-agent"}},
    }


async def test_exp_capped_at_user_token_lifetime(
    api: Api, sb: Sandbox, http: httpx.AsyncClient
) -> None:
    short = sb.issue_user_token("agent-identity-dev", "alice", ttl=120)
    result = await api.ok(
        "GetWorkloadAccessTokenForJWT",
        {"UserToken": short, "Name": "openclaw-agent", "DurationSeconds": 3600},
    )
    claims = await decode_tip(http, sb, result["WorkloadAccessToken"])
    assert claims["exp"] == jwt.decode(short, options={"verify_signature": False})["exp"]
    assert claims["exp"] - time.time() <= 121


async def test_unknown_workload_is_404(api: Api, sb: Sandbox) -> None:
    error = await api.fail(
        "GetWorkloadAccessTokenForJWT",
        {"UserToken": sb.issue_user_token("agent-identity-dev", "alice"), "Name": "ghost"},
        404,
    )
    assert error["Code"] == "ResourceNotFound.WorkloadIdentity"


async def test_unknown_pool_is_404(api: Api) -> None:
    error = await api.fail("GetWorkloadIdentity", {"Name": "x", "WorkloadPoolName": "nope"}, 404)
    assert error["Code"] == "ResourceNotFound.WorkloadPool"


async def test_bad_user_tokens(api: Api, sb: Sandbox) -> None:
    cases = {
        "not-a-jwt": "not a JWT",
        sb.issue_user_token("agent-identity-dev", "alice", ttl=-10): "expired",
        sb.issue_user_token("agent-identity-dev", "alice", client_id="someone-else"): "audience",
        jwt.encode(
            {"iss": "https://evil.example", "sub": "x", "exp": 2**31}, "k" * 32, algorithm="HS256"
        ): "not a workload pool",
    }
    for token, reason in cases.items():
        error = await api.fail(
            "GetWorkloadAccessTokenForJWT", {"UserToken": token, "Name": "openclaw-agent"}, 400
        )
        assert error["Code"] == "InvalidParameter.UserToken"
        assert reason.lower() in error["Message"].lower()


async def test_forged_tip_signature_is_refused(api: Api, sb: Sandbox) -> None:
    tip = await api.user_tip()
    header, payload, _ = tip.split(".")
    forged = f"{header}.{payload}.{'A' * 342}"
    error = await api.fail(
        "GetWorkloadAccessTokenForJWT", {"UserToken": forged, "Name": "openclaw-agent"}, 400
    )
    assert "does not verify" in error["Message"]


async def test_name_omitted_uses_the_sts_role(
    api: Api, sb: Sandbox, http: httpx.AsyncClient
) -> None:
    creds = await api.assume_role("openclaw-agent")
    as_role = api.with_credentials(creds)
    result = await as_role.ok(
        "GetWorkloadAccessTokenForJWT",
        {"UserToken": sb.issue_user_token("agent-identity-dev", "bob")},
    )
    claims = await decode_tip(http, sb, result["WorkloadAccessToken"])
    assert claims["act"]["sub"] == "openclaw-agent"
    assert claims["sub"] == "bob"


async def test_name_omitted_with_role_without_workload_is_404(api: Api, sb: Sandbox) -> None:
    creds = await api.assume_role("demo-readonly")
    error = await api.with_credentials(creds).fail(
        "GetWorkloadAccessTokenForJWT",
        {"UserToken": sb.issue_user_token("agent-identity-dev", "bob")},
        404,
    )
    assert "demo-readonly" in error["Message"]


async def test_name_omitted_without_role_is_400(api: Api, sb: Sandbox) -> None:
    error = await api.fail(
        "GetWorkloadAccessTokenForJWT",
        {"UserToken": sb.issue_user_token("agent-identity-dev", "bob")},
        400,
    )
    assert error["Code"] == "MissingParameter"


async def test_duration_bounds(api: Api, sb: Sandbox) -> None:
    body = {
        "UserToken": sb.issue_user_token("agent-identity-dev", "bob"),
        "Name": "openclaw-agent",
        "DurationSeconds": 0,
    }
    error = await api.fail("GetWorkloadAccessTokenForJWT", body, 400)
    assert error["Code"] == "InvalidParameter.DurationSeconds"


async def test_for_user_id(api: Api, sb: Sandbox, http: httpx.AsyncClient) -> None:
    result = await api.ok(
        "GetWorkloadAccessTokenForUserId", {"UserId": "carol", "Name": "openclaw-agent"}
    )
    claims = await decode_tip(http, sb, result["WorkloadAccessToken"])
    assert (claims["sub"], claims["act"]) == ("carol", {"sub": "openclaw-agent"})


async def test_create_get_delete_workload(api: Api) -> None:
    created = await api.ok(
        "CreateWorkloadIdentity",
        {
            "Name": "helper-agent",
            "Category": "Agent",
            "Description": "helps",
            "AllowedResourceOauth2ReturnUrls": ["http://127.0.0.1:9/return"],
            "MetaData": [{"Key": "team", "Values": ["a", "b"]}],
        },
    )
    assert created["Trn"].endswith("workloadpool/default/workload/helper-agent")
    fetched = await api.ok("GetWorkloadIdentity", {"Name": "helper-agent"})
    assert fetched == created
    assert fetched["MetaData"] == [{"Key": "team", "Values": ["a", "b"]}]
    error = await api.fail("CreateWorkloadIdentity", {"Name": "helper-agent"}, 409)
    assert error["Code"] == "ResourceAlreadyExists.WorkloadIdentity"
    assert await api.ok("DeleteWorkloadIdentity", {"Name": "helper-agent"}) == {}
    await api.fail("GetWorkloadIdentity", {"Name": "helper-agent"}, 404)
    await api.fail("DeleteWorkloadIdentity", {"Name": "helper-agent"}, 404)


async def test_create_workload_validates_name(api: Api) -> None:
    error = await api.fail("CreateWorkloadIdentity", {"Name": "no spaces please"}, 400)
    assert error["Code"] == "InvalidParameter.Name"


async def test_get_workload_pool_discovery(api: Api, sb: Sandbox) -> None:
    pool = await api.ok("GetWorkloadPool", {"WorkloadPoolName": "default"})
    assert pool["WorkloadPoolId"] == "wp-default-0001"
    assert pool["DiscoveryUrl"] == f"{sb.tip_issuer()}/.well-known/openid-configuration"
    assert pool["TotalWorkloads"] == 1
