"""User pools and clients (management API), and a user pool as an OIDC provider."""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest

from agent_identity.sandbox import Sandbox

from .helpers import Api, read_form

CALLBACK = "http://127.0.0.1:18789/identity/oauth/callback"
POOL_UID = "up-dev-0001"
CLIENT_UID = "client-openclaw-0001"
CLIENT_SECRET = "openclaw-gateway-client-secret"


async def test_list_and_get_user_pool(api: Api, sb: Sandbox) -> None:
    page = await api.ok(
        "ListUserPools", {"PageNumber": 1, "PageSize": 1, "Filter": {"Name": "agent-identity-dev"}}
    )
    assert page["TotalCount"] == 1
    pool = page["Data"][0]
    assert pool["Uid"] == POOL_UID
    assert pool["DiscoveryUrl"] == sb.user_pool_discovery_url("agent-identity-dev")
    assert pool["Domain"] == f"{sb.host}/userpool/{POOL_UID}"
    fetched = await api.ok("GetUserPool", {"UserPoolUid": POOL_UID})
    assert fetched["TotalUsers"] == 2
    assert fetched["TotalClients"] == 1
    assert fetched["PasswordSignInEnabled"] is True
    missing = await api.ok(
        "ListUserPools", {"PageNumber": 1, "PageSize": 1, "Filter": {"Name": "agent-identity"}}
    )
    assert missing["TotalCount"] == 0
    error = await api.fail("GetUserPool", {"UserPoolUid": "up-nope"}, 404)
    assert error["Code"] == "ResourceNotFound.UserPool"


async def test_create_user_pool_and_client_flow(api: Api) -> None:
    """The plugin's dynamic mode: find-or-create pool and client, then add a callback."""
    pool = await api.ok(
        "CreateUserPool",
        {
            "Name": "veadk-studio-demo",
            "SelfSignUpEnabled": False,
            "SelfAccountRecoveryEnabled": True,
        },
    )
    assert pool["SelfSignUpEnabled"] is False
    assert pool["SelfAccountRecoveryEnabled"] is True
    error = await api.fail("CreateUserPool", {"Name": "veadk-studio-demo"}, 409)
    assert error["Code"] == "ResourceAlreadyExists.UserPool"
    uid = pool["Uid"]
    client = await api.ok(
        "CreateUserPoolClient",
        {"UserPoolUid": uid, "Name": "veadk-studio-demo-web", "ClientType": "WEB_APPLICATION"},
    )
    assert client["ClientSecret"]
    error = await api.fail(
        "CreateUserPoolClient",
        {"UserPoolUid": uid, "Name": "veadk-studio-demo-web", "ClientType": "WEB_APPLICATION"},
        409,
    )
    assert error["Code"] == "ResourceAlreadyExists.UserPoolClient"
    listed = await api.ok(
        "ListUserPoolClients",
        {
            "UserPoolUid": uid,
            "PageNumber": 1,
            "PageSize": 1,
            "Filter": {"Name": "veadk-studio-demo-web"},
        },
    )
    assert listed["TotalCount"] == 1
    assert "ClientSecret" not in listed["Data"][0]
    fetched = await api.ok("GetUserPoolClient", {"UserPoolUid": uid, "ClientUid": client["Uid"]})
    assert fetched["ClientSecret"] == client["ClientSecret"]
    updated = await api.ok(
        "UpdateUserPoolClient",
        {
            "UserPoolUid": uid,
            "ClientUid": client["Uid"],
            "AllowedCallbackUrls": [*fetched["AllowedCallbackUrls"], CALLBACK],
            "AllowedWebOrigins": ["http://127.0.0.1:18789"],
            "IdToken": {"LifeTimeSeconds": 900},
            "RefreshToken": {"Rotation": True},
            "SkipConsentEnabled": True,
            "Description": "web",
        },
    )
    assert updated["AllowedCallbackUrls"] == [CALLBACK]
    assert updated["IdToken"] == {"LifetimeSeconds": 900}
    assert updated["RefreshToken"]["Rotation"] is True
    assert updated["SkipConsentEnabled"] is True
    assert updated["Name"] == "veadk-studio-demo-web"
    assert updated["ClientSecret"] == client["ClientSecret"]


async def test_client_errors(api: Api) -> None:
    error = await api.fail("GetUserPoolClient", {"UserPoolUid": POOL_UID, "ClientUid": "nope"}, 404)
    assert error["Code"] == "ResourceNotFound.UserPoolClient"
    error = await api.fail("GetUserPoolClient", {"UserPoolUid": POOL_UID}, 400)
    assert error["Code"] == "MissingParameter"
    error = await api.fail(
        "CreateUserPoolClient", {"UserPoolUid": POOL_UID, "Name": "x", "ClientType": "TOASTER"}, 400
    )
    assert error["Code"] == "InvalidParameter.ClientType"
    error = await api.fail(
        "UpdateUserPoolClient",
        {"UserPoolUid": POOL_UID, "ClientUid": CLIENT_UID, "IdToken": {"LifeTimeSeconds": 0}},
        400,
    )
    assert error["Code"] == "InvalidParameter.IdToken.LifeTimeSeconds"
    error = await api.fail("CreateUserPool", {"Name": "x" * 200}, 400)
    assert error["Code"] == "InvalidParameter.Name"


async def test_list_clients_never_shows_secrets(api: Api) -> None:
    listed = await api.ok(
        "ListUserPoolClients",
        {
            "UserPoolUid": POOL_UID,
            "PageNumber": 1,
            "PageSize": 10,
            "Filter": {"ClientTypes": ["WEB_APPLICATION"]},
        },
    )
    assert [c["Name"] for c in listed["Data"]] == ["openclaw-gateway"]
    assert all("ClientSecret" not in c for c in listed["Data"])


async def test_list_identity_providers_uses_uid_in_caps(api: Api) -> None:
    page = await api.ok(
        "ListIdentityProviders", {"UserPoolUID": POOL_UID, "PageNumber": 1, "PageSize": 10}
    )
    assert [idp["Name"] for idp in page["Data"]] == ["userpool"]
    assert page["Data"][0]["Enabled"] is True
    excluded = await api.ok(
        "ListIdentityProviders",
        {
            "UserPoolUID": POOL_UID,
            "PageNumber": 1,
            "PageSize": 10,
            "Filter": {"ExcludeConnectionType": "local"},
        },
    )
    assert excluded["TotalCount"] == 0
    error = await api.fail(
        "ListIdentityProviders", {"UserPoolUid": POOL_UID, "PageNumber": 1, "PageSize": 10}, 400
    )
    assert error["Code"] == "MissingParameter"


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def _login(
    sb: Sandbox,
    http: httpx.AsyncClient,
    password: str = "alice-password",  # noqa: S107 - the seed's demo password
    **extra: str,
) -> httpx.Response:
    discovery = (await http.get(sb.user_pool_discovery_url("agent-identity-dev"))).json()
    params = {
        "response_type": "code",
        "client_id": CLIENT_UID,
        "redirect_uri": CALLBACK,
        "scope": "openid profile email",
        "state": "st-1",
        "nonce": "n-1",
        # PKCE is required; tests that redeem the code pass their own challenge.
        "code_challenge": _pkce()[1],
        "code_challenge_method": "S256",
        **extra,
    }
    page = await http.get(discovery["authorization_endpoint"], params=params)
    assert page.status_code == 200, page.text
    form = read_form(page)
    return await http.post(
        form.action, data={**form.fields, "username": "alice", "password": password}
    )


async def test_oidc_login_with_pkce_refresh_and_userinfo(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    verifier, challenge = _pkce()
    redirect = await _login(sb, http, code_challenge=challenge, code_challenge_method="S256")
    assert redirect.status_code == 302
    location = urlsplit(redirect.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert query["state"] == "st-1"
    discovery = (await http.get(sb.user_pool_discovery_url("agent-identity-dev"))).json()
    token_form = {
        "grant_type": "authorization_code",
        "code": query["code"],
        "redirect_uri": CALLBACK,
        "code_verifier": verifier,
    }
    tokens = (
        await http.post(
            discovery["token_endpoint"], data=token_form, auth=(CLIENT_UID, CLIENT_SECRET)
        )
    ).json()
    keys = jwt.PyJWKSet.from_dict((await http.get(discovery["jwks_uri"])).json())
    claims = jwt.decode(
        tokens["id_token"],
        keys.keys[0].key,
        algorithms=["RS256"],
        audience=CLIENT_UID,
        issuer=discovery["issuer"],
    )
    assert (claims["sub"], claims["nonce"], claims["email"]) == (
        "alice",
        "n-1",
        "alice@example.com",
    )
    info = await http.get(
        discovery["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    assert info.json()["preferred_username"] == "alice"
    refreshed = await http.post(
        discovery["token_endpoint"],
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": CLIENT_UID,
            "client_secret": CLIENT_SECRET,
        },
    )
    assert (
        jwt.decode(refreshed.json()["id_token"], options={"verify_signature": False})["sub"]
        == "alice"
    )
    replay = await http.post(
        discovery["token_endpoint"], data=token_form, auth=(CLIENT_UID, CLIENT_SECRET)
    )
    assert replay.json()["error"] == "invalid_grant"


async def test_oidc_id_token_is_a_valid_user_token(
    api: Api, sb: Sandbox, http: httpx.AsyncClient
) -> None:
    verifier, challenge = _pkce()
    redirect = await _login(sb, http, code_challenge=challenge, code_challenge_method="S256")
    code = parse_qs(urlsplit(redirect.headers["location"]).query)["code"][0]
    tokens = (
        await http.post(
            f"{sb.user_pool_issuer(POOL_UID)}/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": CALLBACK,
                "code_verifier": verifier,
            },
            auth=(CLIENT_UID, CLIENT_SECRET),
        )
    ).json()
    result = await api.ok(
        "GetWorkloadAccessTokenForJWT", {"UserToken": tokens["id_token"], "Name": "openclaw-agent"}
    )
    assert result["WorkloadAccessToken"]


async def test_oidc_wrong_password_and_bad_requests(sb: Sandbox, http: httpx.AsyncClient) -> None:
    wrong = await _login(sb, http, password="nope")
    assert wrong.status_code == 401
    assert "Wrong username or password" in wrong.text
    authorize = f"{sb.user_pool_issuer(POOL_UID)}/authorize"
    bad_redirect = await http.get(
        authorize,
        params={"client_id": CLIENT_UID, "redirect_uri": "http://evil/", "response_type": "code"},
    )
    assert bad_redirect.status_code == 400
    no_openid = await http.get(
        authorize,
        params={
            "client_id": CLIENT_UID,
            "redirect_uri": CALLBACK,
            "response_type": "code",
            "scope": "email",
            "state": "s",
        },
    )
    no_openid_query = parse_qs(urlsplit(no_openid.headers["location"]).query)
    assert no_openid_query["error"] == ["invalid_scope"]
    assert no_openid_query["state"] == ["s"]
    assert no_openid_query["iss"] == [sb.user_pool_issuer(POOL_UID)]
    plain = await http.get(
        authorize,
        params={
            "client_id": CLIENT_UID,
            "redirect_uri": CALLBACK,
            "response_type": "code",
            "scope": "openid",
            "code_challenge": "x",
            "code_challenge_method": "plain",
        },
    )
    assert "error=invalid_request" in plain.headers["location"]
    token_response = await http.post(
        f"{sb.user_pool_issuer(POOL_UID)}/oauth/token",
        data={"grant_type": "password"},
        auth=(CLIENT_UID, CLIENT_SECRET),
    )
    assert token_response.json()["error"] == "unsupported_grant_type"
    bad_client = await http.post(
        f"{sb.user_pool_issuer(POOL_UID)}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(CLIENT_UID, "wrong"),
    )
    assert bad_client.status_code == 401
    expired_login = await http.post(
        f"{sb.user_pool_issuer(POOL_UID)}/login", data={"authRequestId": "nope"}
    )
    assert expired_login.status_code == 400


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/userpool/nope/keys", 404),
        (f"/userpool/{POOL_UID}/nothing", 404),
        (f"/userpool/{POOL_UID}/logout", 200),
    ],
)
async def test_oidc_misc_pages(
    sb: Sandbox, http: httpx.AsyncClient, path: str, status: int
) -> None:
    assert (await http.get(f"{sb.base_url}{path}")).status_code == status


async def test_oidc_pkce_mismatch_and_client_credentials(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    _, challenge = _pkce()
    redirect = await _login(sb, http, code_challenge=challenge, code_challenge_method="S256")
    code = parse_qs(urlsplit(redirect.headers["location"]).query)["code"][0]
    token_url = f"{sb.user_pool_issuer(POOL_UID)}/oauth/token"
    mismatch = await http.post(
        token_url,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": CALLBACK,
            "code_verifier": "x",
        },
        auth=(CLIENT_UID, CLIENT_SECRET),
    )
    assert "PKCE" in mismatch.json()["error_description"]
    m2m: dict[str, Any] = (
        await http.post(
            token_url,
            data={"grant_type": "client_credentials", "scope": "api"},
            auth=(CLIENT_UID, CLIENT_SECRET),
        )
    ).json()
    assert m2m["token_type"] == "Bearer"
    userinfo = await http.get(f"{sb.user_pool_issuer(POOL_UID)}/userinfo")
    assert userinfo.status_code == 401


async def test_issue_user_token_helper(sb: Sandbox) -> None:
    token = sb.issue_user_token(POOL_UID, "dave", extra_claims={"groups": ["ops"]})
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["aud"] == CLIENT_UID
    assert claims["groups"] == ["ops"]
    assert "email" not in claims
    assert sb.user_pool_jwks_url("agent-identity-dev").endswith(f"/userpool/{POOL_UID}/keys")
    with pytest.raises(KeyError):
        sb.issue_user_token("no-such-pool", "x")
