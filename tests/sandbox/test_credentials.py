"""Credential providers, API keys, user credentials, M2M and the 3LO flows end to end."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from agent_identity.sandbox import Sandbox

from .helpers import Api, read_form


async def test_list_credential_providers(api: Api) -> None:
    page = await api.ok(
        "ListCredentialProviders", {"PageNumber": 1, "PageSize": 10, "PoolName": "default"}
    )
    assert page["TotalCount"] == 3
    names = {p["Name"]: p for p in page["CredentialProviders"]}
    assert names["demo-oauth"]["Type"] == "oauth2"
    assert names["demo-oauth"]["Flow"] == "USER_FEDERATION"
    assert names["demo-m2m"]["Flow"] == "M2M"
    assert names["openai"]["Type"] == "api_key"
    assert names["openai"]["CredentialProviderTrn"].endswith("credentialprovider/openai")


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({"Type": "api_key"}, ["openai"]),
        ({"Type": "oauth2", "Flow": "M2M"}, ["demo-m2m"]),
        ({"Name": "DEMO"}, ["demo-m2m", "demo-oauth"]),
        ({"PoolName": "other"}, []),
    ],
)
async def test_list_credential_providers_filters(
    api: Api, flt: dict[str, str], expected: list[str]
) -> None:
    body = {"PageNumber": 1, "PageSize": 10, "Filter": flt, "SortField": "Name"}
    page = await api.ok("ListCredentialProviders", body)
    assert [p["Name"] for p in page["CredentialProviders"]] == expected


async def test_list_credential_providers_paging(api: Api) -> None:
    body: dict[str, Any] = {"PageNumber": 2, "PageSize": 2, "SortField": "Name", "SortDesc": True}
    page = await api.ok("ListCredentialProviders", body)
    assert page["TotalCount"] == 3
    assert [p["Name"] for p in page["CredentialProviders"]] == ["demo-m2m"]
    error = await api.fail("ListCredentialProviders", {"PageSize": 2}, 400)
    assert error["Code"] == "MissingParameter"
    error = await api.fail("ListCredentialProviders", {"PageNumber": 0, "PageSize": 2}, 400)
    assert error["Code"] == "InvalidParameter.PageNumber"
    error = await api.fail("ListCredentialProviders", {"PageNumber": 1, "PageSize": 500}, 400)
    assert error["Code"] == "InvalidParameter.PageSize"
    error = await api.fail(
        "ListCredentialProviders", {"PageNumber": 1, "PageSize": 5, "SortField": "Vendor"}, 400
    )
    assert error["Code"] == "InvalidParameter.SortField"


async def test_list_role_credential_providers(api: Api) -> None:
    page = await api.ok(
        "ListRoleCredentialProviders", {"PageNumber": 1, "PageSize": 10, "Filter": {"Name": "demo"}}
    )
    assert page["TotalCount"] == 1
    provider = page["RoleCredentialProviders"][0]
    assert provider["Name"] == "demo-role"
    config = provider["Config"]
    assert config["RoleMapping"]["FromRole"]["RoleName"] == "demo-readonly"
    assert config["IdentityPool"]["UserPool"]["PoolName"] == "agent-identity-dev"
    assert config["IdentityPool"]["UserPool"]["ClientName"] == "openclaw-gateway"
    assert config["IdentityPool"]["AgentPool"]["PoolName"] == "default"
    empty = await api.ok(
        "ListRoleCredentialProviders", {"PageNumber": 1, "PageSize": 10, "Filter": {"Name": "zz"}}
    )
    assert empty["RoleCredentialProviders"] == []


async def test_get_resource_api_key(api: Api) -> None:
    tip = await api.user_tip()
    result = await api.ok("GetResourceApiKey", {"ProviderName": "openai", "IdentityToken": tip})
    assert result["ApiKey"] == "sk-sandbox-openai-0000000000000000"
    assert result["ApiKeyMetadata"] == [
        {"Location": "header", "ParameterName": "Authorization", "Prefix": "Bearer "}
    ]
    error = await api.fail(
        "GetResourceApiKey", {"ProviderName": "demo-m2m", "IdentityToken": tip}, 400
    )
    assert error["Code"] == "InvalidParameter.ProviderName"
    error = await api.fail("GetResourceApiKey", {"ProviderName": "x", "IdentityToken": tip}, 404)
    assert error["Code"] == "ResourceNotFound.CredentialProvider"
    error = await api.fail("GetResourceApiKey", {"ProviderName": "openai"}, 400)
    assert error["Code"] == "MissingParameter"


async def test_user_credentials_are_per_user(api: Api) -> None:
    alice, bob = await api.user_tip("alice"), await api.user_tip("bob")
    created = await api.ok(
        "CreateUserCredential",
        {"IdentityToken": alice, "CredentialData": "s3cret", "CredentialId": "github-pat"},
    )
    assert created == {"CredentialId": "github-pat"}
    fetched = await api.ok(
        "GetUserCredential", {"IdentityToken": alice, "CredentialId": "github-pat"}
    )
    assert fetched["CredentialData"] == "s3cret"
    assert fetched["CreatedAt"].endswith("Z")
    error = await api.fail(
        "GetUserCredential", {"IdentityToken": bob, "CredentialId": "github-pat"}, 404
    )
    assert error["Code"] == "ResourceNotFound.UserCredential"
    error = await api.fail(
        "CreateUserCredential",
        {"IdentityToken": alice, "CredentialData": "again", "CredentialId": "github-pat"},
        409,
    )
    assert error["Code"] == "ResourceAlreadyExists.UserCredential"
    generated = await api.ok("CreateUserCredential", {"IdentityToken": bob, "CredentialData": "x"})
    assert generated["CredentialId"].startswith("cred-")
    error = await api.fail(
        "CreateUserCredential",
        {"IdentityToken": bob, "CredentialData": "x", "CredentialId": "bad id"},
        400,
    )
    assert error["Code"] == "InvalidParameter.CredentialId"


async def test_m2m_returns_a_token_directly(api: Api, sb: Sandbox, http: httpx.AsyncClient) -> None:
    tip = await api.user_tip()
    result = await api.ok(
        "GetResourceOauth2Token", {"ProviderName": "demo-m2m", "IdentityToken": tip}
    )
    assert set(result) == {"AccessToken", "ExpiresIn"}
    assert result["ExpiresIn"] == 3600
    info = await http.get(
        f"{sb.base_url}/demo-oauth/userinfo",
        headers={"Authorization": f"Bearer {result['AccessToken']}"},
    )
    assert info.json()["client_id"] == "demo-m2m-client"


async def test_oauth2_token_errors(api: Api) -> None:
    tip = await api.user_tip()
    error = await api.fail(
        "GetResourceOauth2Token", {"ProviderName": "openai", "IdentityToken": tip}, 400
    )
    assert error["Code"] == "InvalidParameter.ProviderName"
    error = await api.fail(
        "GetResourceOauth2Token",
        {"ProviderName": "demo-oauth", "IdentityToken": tip, "Flow": "IMPLICIT"},
        400,
    )
    assert error["Code"] == "InvalidParameter.Flow"
    error = await api.fail(
        "GetResourceOauth2Token", {"ProviderName": "nope", "IdentityToken": tip}, 404
    )
    assert "NotFound" in error["Code"]


async def _authorize(api: Api, tip: str, **extra: Any) -> dict[str, Any]:
    body = {"ProviderName": "demo-oauth", "IdentityToken": tip, **extra}
    result: dict[str, Any] = await api.ok("GetResourceOauth2Token", body)
    assert "AccessToken" not in result
    return result


async def _consent(http: httpx.AsyncClient, url: str, decision: str) -> httpx.Response:
    page = await http.get(url)
    assert page.status_code == 200
    form = read_form(page)
    assert ("decision", decision) in form.buttons
    return await http.post(form.action, data={**form.fields, "decision": decision})


async def test_three_legged_end_to_end(api: Api, sb: Sandbox, http: httpx.AsyncClient) -> None:
    tip = await api.user_tip("alice")
    first = await _authorize(
        api, tip, CustomParameters={"Entries": [{"Key": "prompt", "Value": "consent"}]}
    )
    url = urlsplit(first["AuthorizationUrl"])
    query = parse_qs(url.query)
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{sb.base_url}/demo-oauth/authorize"
    assert query["client_id"] == ["demo-oauth-client"]
    assert query["redirect_uri"] == [f"{sb.base_url}/api/v1/oauth2callback"]
    assert query["scope"] == ["profile repo:read"]
    assert query["response_type"] == ["code"]
    assert query["prompt"] == ["consent"]
    assert first["SessionUri"].startswith("urn:ietf:params:oauth:request_uri:")
    # Polling before consent returns the same session, not a fresh state.
    again = await _authorize(
        api, tip, CustomParameters={"Entries": [{"Key": "prompt", "Value": "consent"}]}
    )
    assert again == first
    # The user consents; the demo provider redirects to the sandbox's callback.
    http.follow_redirects = True
    done = await _consent(http, first["AuthorizationUrl"], "approve")
    assert done.status_code == 200
    assert "Authorization complete" in done.text
    token = await api.ok(
        "GetResourceOauth2Token", {"ProviderName": "demo-oauth", "IdentityToken": tip}
    )
    assert token["AccessToken"].startswith("demo-at-")
    assert 3590 <= token["ExpiresIn"] <= 3600
    # The stored token is alice's: bob still gets an authorization URL.
    bob = await api.user_tip("bob")
    assert "AuthorizationUrl" in await _authorize(api, bob)
    # ForceAuthentication asks again even with a stored token.
    forced = await _authorize(api, tip, ForceAuthentication=True)
    assert forced["SessionUri"] != first["SessionUri"]
    # The callback cannot be replayed.
    replay = await http.get(
        f"{sb.base_url}/api/v1/oauth2callback", params={"state": query["state"][0], "code": "x"}
    )
    assert replay.status_code == 400


async def test_three_legged_deny(api: Api, sb: Sandbox, http: httpx.AsyncClient) -> None:
    tip = await api.user_tip("alice")
    first = await _authorize(api, tip)
    http.follow_redirects = True
    denied = await _consent(http, first["AuthorizationUrl"], "deny")
    assert "Authorization denied" in denied.text
    assert "access_denied" in denied.text
    session = next(iter(sb.state.oauth_sessions.values()))
    assert session.status == "failed"
    # No token: polling gets a new authorization to try again.
    retry = await _authorize(api, tip)
    assert retry["SessionUri"] != first["SessionUri"]


async def test_callback_with_unknown_state_or_bad_code(
    api: Api, sb: Sandbox, http: httpx.AsyncClient
) -> None:
    unknown = await http.get(f"{sb.base_url}/api/v1/oauth2callback", params={"state": "nope"})
    assert unknown.status_code == 400
    first = await _authorize(api, await api.user_tip())
    state = parse_qs(urlsplit(first["AuthorizationUrl"]).query)["state"][0]
    bad = await http.get(
        f"{sb.base_url}/api/v1/oauth2callback", params={"state": state, "code": "forged"}
    )
    assert bad.status_code == 400
    assert "unknown, used or expired" in bad.text


async def test_oauth2_callback_action(api: Api, http: httpx.AsyncClient) -> None:
    app_callback = "http://127.0.0.1:9/app/oauth-callback"
    tip = await api.user_tip("alice")
    first = await _authorize(api, tip, RedirectUrl=app_callback)
    assert parse_qs(urlsplit(first["AuthorizationUrl"]).query)["redirect_uri"] == [app_callback]
    redirect = await _consent(http, first["AuthorizationUrl"], "approve")
    assert redirect.status_code == 302
    location = urlsplit(redirect.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == app_callback
    params = {k: v[0] for k, v in parse_qs(location.query).items()}
    bob = await api.user_tip("bob")
    error = await api.fail(
        "Oauth2Callback",
        {"State": params["state"], "Code": params["code"], "IdentityToken": bob},
        400,
    )
    assert error["Code"] == "InvalidParameter.IdentityToken"
    result = await api.ok(
        "Oauth2Callback", {"State": params["state"], "Code": params["code"], "IdentityToken": tip}
    )
    assert result["AccessToken"].startswith("demo-at-")
    # Idempotent once completed, and the token is now stored for polling.
    again = await api.ok(
        "Oauth2Callback", {"State": params["state"], "Code": params["code"], "IdentityToken": tip}
    )
    assert again == result
    polled = await api.ok(
        "GetResourceOauth2Token",
        {"ProviderName": "demo-oauth", "IdentityToken": tip, "RedirectUrl": app_callback},
    )
    assert polled["AccessToken"] == result["AccessToken"]


async def test_oauth2_callback_error_and_bad_code(api: Api) -> None:
    tip = await api.user_tip("alice")
    first = await _authorize(api, tip, RedirectUrl="http://127.0.0.1:9/cb")
    state = parse_qs(urlsplit(first["AuthorizationUrl"]).query)["state"][0]
    error = await api.fail("Oauth2Callback", {"State": state, "IdentityToken": tip}, 400)
    assert error["Code"] == "MissingParameter"
    error = await api.fail(
        "Oauth2Callback", {"State": state, "IdentityToken": tip, "Error": "access_denied"}, 400
    )
    assert error["Code"] == "Oauth2AuthorizationDenied"
    error = await api.fail(
        "Oauth2Callback", {"State": state, "IdentityToken": tip, "Code": "x"}, 400
    )
    assert error["Code"] == "InvalidParameter.State"
    error = await api.fail(
        "Oauth2Callback", {"State": "gone", "IdentityToken": tip, "Code": "x"}, 404
    )
    assert error["Code"] == "ResourceNotFound.Oauth2Session"
    second = await _authorize(api, tip, RedirectUrl="http://127.0.0.1:9/cb2")
    state = parse_qs(urlsplit(second["AuthorizationUrl"]).query)["state"][0]
    error = await api.fail(
        "Oauth2Callback", {"State": state, "IdentityToken": tip, "Code": "forged"}, 400
    )
    assert error["Code"] == "InvalidParameter.Code"


async def test_return_url_and_complete_resource_token_auth(
    api: Api, sb: Sandbox, http: httpx.AsyncClient
) -> None:
    return_url = "http://127.0.0.1:9/credentials/return"
    await api.ok(
        "CreateWorkloadIdentity",
        {"Name": "strict-agent", "AllowedResourceOauth2ReturnUrls": [return_url]},
    )
    tip = await api.user_tip("alice", name="strict-agent")
    error = await api.fail(
        "GetResourceOauth2Token",
        {
            "ProviderName": "demo-oauth",
            "IdentityToken": tip,
            "ResourceOauth2ReturnUrl": "http://x/",
        },
        400,
    )
    assert error["Code"] == "InvalidParameter.ResourceOauth2ReturnUrl"
    first = await _authorize(api, tip, ResourceOauth2ReturnUrl=return_url, CustomState="mine")
    session_uri = first["SessionUri"]
    complete = {"SessionUri": session_uri, "UserIdentifier": {"IdentityToken": tip}}
    error = await api.fail("CompleteResourceTokenAuth", complete, 400)
    assert error["Code"] == "InvalidParameter.SessionUri"
    redirect = await _consent(http, first["AuthorizationUrl"], "approve")
    callback = await http.get(redirect.headers["location"])
    assert callback.status_code == 302
    back = urlsplit(callback.headers["location"])
    assert parse_qs(back.query) == {"session_id": [session_uri], "state": ["mine"]}
    # Consented but not bound: still no token.
    assert "AuthorizationUrl" in await api.ok(
        "GetResourceOauth2Token", {"ProviderName": "demo-oauth", "IdentityToken": tip}
    )
    bob = await api.user_tip("bob")
    error = await api.fail(
        "CompleteResourceTokenAuth",
        {"SessionUri": session_uri, "UserIdentifier": {"IdentityToken": bob}},
        400,
    )
    assert error["Code"] == "InvalidParameter.UserIdentifier"
    user_token = sb.issue_user_token("agent-identity-dev", "alice")
    bound = {"SessionUri": session_uri, "UserIdentifier": {"UserToken": user_token}}
    assert await api.ok("CompleteResourceTokenAuth", bound) == {}
    assert await api.ok("CompleteResourceTokenAuth", complete) == {}
    token = await api.ok(
        "GetResourceOauth2Token", {"ProviderName": "demo-oauth", "IdentityToken": tip}
    )
    assert token["AccessToken"].startswith("demo-at-")
    error = await api.fail(
        "CompleteResourceTokenAuth",
        {"SessionUri": "urn:nope", "UserIdentifier": {"UserID": "alice"}},
        404,
    )
    assert "NotFound" in error["Code"]


async def test_complete_after_denial(api: Api, http: httpx.AsyncClient) -> None:
    tip = await api.user_tip("alice")
    first = await _authorize(api, tip, ResourceOauth2ReturnUrl="http://127.0.0.1:9/r")
    http.follow_redirects = True
    await _consent(http, first["AuthorizationUrl"], "deny")
    error = await api.fail(
        "CompleteResourceTokenAuth",
        {"SessionUri": first["SessionUri"], "UserIdentifier": {"UserID": "alice"}},
        400,
    )
    assert error["Code"] == "Oauth2AuthorizationDenied"
    error = await api.fail(
        "CompleteResourceTokenAuth",
        {"SessionUri": first["SessionUri"], "UserIdentifier": {}},
        400,
    )
    assert error["Code"] == "MissingParameter"
    error = await api.fail(
        "CompleteResourceTokenAuth",
        {"SessionUri": first["SessionUri"], "UserIdentifier": {"UserToken": "junk"}},
        400,
    )
    assert error["Code"] == "InvalidParameter.UserIdentifier"
