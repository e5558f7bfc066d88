"""The demo OAuth2 provider's own endpoints, as a third-party client would use them."""

from __future__ import annotations

import httpx

from agent_identity.sandbox import Sandbox

from .helpers import read_form

REDIRECT = "http://127.0.0.1:9/cb"


async def _code(sb: Sandbox, http: httpx.AsyncClient) -> str:
    page = await http.get(
        f"{sb.base_url}/demo-oauth/authorize",
        params={
            "response_type": "code",
            "client_id": "demo-oauth-client",
            "redirect_uri": REDIRECT,
            "scope": "profile",
            "state": "s",
        },
    )
    form = read_form(page)
    assert "demo-oauth asks for access" in page.text
    approved = await http.post(form.action, data={**form.fields, "decision": "approve"})
    query = httpx.URL(approved.headers["location"]).params
    assert query["state"] == "s"
    return query["code"]


async def test_authorization_code_grant_over_http(sb: Sandbox, http: httpx.AsyncClient) -> None:
    code = await _code(sb, http)
    token = await http.post(
        f"{sb.base_url}/demo-oauth/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
        auth=("demo-oauth-client", "demo-oauth-client-secret"),
    )
    assert token.status_code == 200
    body = token.json()
    assert (body["token_type"], body["scope"]) == ("Bearer", "profile")
    info = await http.get(
        f"{sb.base_url}/demo-oauth/userinfo",
        headers={"Authorization": f"Bearer {body['access_token']}"},
    )
    assert info.json()["sub"] == "demo-user"


async def test_token_endpoint_errors(sb: Sandbox, http: httpx.AsyncClient) -> None:
    url = f"{sb.base_url}/demo-oauth/token"
    code = await _code(sb, http)
    wrong_uri = await http.post(
        url,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": "http://other/",
            "client_id": "demo-oauth-client",
            "client_secret": "demo-oauth-client-secret",
        },
    )
    assert wrong_uri.json()["error"] == "invalid_grant"
    bad_secret = await http.post(
        url, data={"grant_type": "client_credentials"}, auth=("demo-oauth-client", "nope")
    )
    assert (bad_secret.status_code, bad_secret.json()["error"]) == (401, "invalid_client")
    garbled = await http.post(
        url, data={"grant_type": "client_credentials"}, headers={"Authorization": "Basic !!!"}
    )
    assert garbled.status_code == 401
    unsupported = await http.post(
        url, data={"grant_type": "password"}, auth=("demo-m2m-client", "demo-m2m-client-secret")
    )
    assert unsupported.json()["error"] == "unsupported_grant_type"
    assert (await http.get(f"{sb.base_url}/demo-oauth/userinfo")).status_code == 401


async def test_consent_page_errors(sb: Sandbox, http: httpx.AsyncClient) -> None:
    authorize = f"{sb.base_url}/demo-oauth/authorize"
    unknown = await http.get(authorize, params={"client_id": "nope", "redirect_uri": REDIRECT})
    assert unknown.status_code == 400
    token_flow = await http.get(
        authorize,
        params={
            "client_id": "demo-oauth-client",
            "redirect_uri": REDIRECT,
            "response_type": "token",
            "state": "z",
        },
    )
    assert "error=unsupported_response_type" in token_flow.headers["location"]
    bad_post = await http.post(authorize, data={"client_id": "nope"})
    assert bad_post.status_code == 400
    assert (await http.get(f"{sb.base_url}/demo-oauth/elsewhere")).status_code == 404
