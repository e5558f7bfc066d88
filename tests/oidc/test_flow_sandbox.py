"""The whole authorization-code + PKCE flow against the sandbox's user-pool provider."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from agent_identity.config import UserPoolConfig
from agent_identity.oidc import (
    LoginSecrets,
    OidcClient,
    OidcError,
    RefreshNotValidatedError,
    TokenSet,
    new_login_secrets,
    open_oidc_client,
    parse_authorization_response,
)
from agent_identity.sandbox import Sandbox
from agent_identity.sandbox.state import IdentityProvider
from agent_identity.volcengine import IdentityClient

from .browser import Browser
from .conftest import CALLBACK, CLIENT_SECRET, CLIENT_UID, POOL, POOL_UID, sandbox_settings


async def log_in(rp: OidcClient, browser: Browser) -> tuple[LoginSecrets, TokenSet]:
    secrets = new_login_secrets()
    query = await browser.login(await rp.authorization_url(secrets))
    response = parse_authorization_response(query)
    assert response.state == secrets.state
    tokens = await rp.exchange_code(
        response.code,
        code_verifier=secrets.code_verifier,
        nonce=secrets.nonce,
        iss=response.iss,
    )
    return secrets, tokens


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


async def test_explicit_mode_full_flow(sb: Sandbox, rp: OidcClient, browser: Browser) -> None:
    secrets, tokens = await log_in(rp, browser)
    assert tokens.claims is not None
    assert tokens.claims.sub == "alice"
    assert tokens.claims.email == "alice@example.com"
    assert tokens.claims.name == "Alice"
    assert tokens.claims.nonce == secrets.nonce
    assert tokens.claims.iss == sb.user_pool_issuer(POOL)
    assert tokens.claims.aud == (CLIENT_UID,)
    assert tokens.refresh_token
    assert tokens.expires_in == 3600
    # The id_token is also a valid UserToken for the control plane (same issuer and keys).
    assert sb.state.user_pool(POOL) is not None
    # Without an Identity client there is nothing to look the identity provider up with.
    assert await rp.identity_provider() is None


async def test_authorization_url_parameters(sb: Sandbox, rp: OidcClient) -> None:
    secrets = new_login_secrets()
    url = await rp.authorization_url(secrets)
    assert url.startswith(f"{sb.user_pool_issuer(POOL)}/authorize?")
    query = query_of(url)
    assert query == {
        "response_type": ["code"],
        "client_id": [CLIENT_UID],
        "redirect_uri": [CALLBACK],
        "scope": ["openid profile email"],
        "state": [secrets.state],
        "nonce": [secrets.nonce],
        "code_challenge": [secrets.code_challenge],
        "code_challenge_method": ["S256"],
    }
    assert secrets.code_verifier not in url


async def test_explicit_mode_from_config_looks_up_identity_provider(
    sb: Sandbox, http: httpx.AsyncClient, identity: IdentityClient, browser: Browser
) -> None:
    config = UserPoolConfig(
        discovery_url=sb.user_pool_discovery_url(POOL),
        client_id=CLIENT_UID,
        client_secret=CLIENT_SECRET,
        callback_url=CALLBACK,
        scope="openid email",
    )
    rp = await open_oidc_client(config, http, identity)
    assert rp.settings.user_pool_uid == POOL_UID
    url = await rp.authorization_url(new_login_secrets())
    # The first (enabled) entry of ListIdentityProviders, looked up once and cached.
    assert query_of(url)["identity_provider"] == ["userpool"]
    assert query_of(url)["scope"] == ["openid email"]
    await rp.authorization_url(new_login_secrets())
    assert sb.requests.count("ListIdentityProviders") == 1
    _, tokens = await log_in(rp, browser)
    assert tokens.claims is not None
    assert tokens.claims.sub == "alice"


async def test_identity_provider_config_override(
    sb: Sandbox, http: httpx.AsyncClient, identity: IdentityClient, browser: Browser
) -> None:
    pool = sb.state.user_pools[POOL_UID]
    pool.identity_providers.insert(
        0, IdentityProvider("idp-off", "disabled-sso", "oidc", "oidc", enabled=False)
    )
    pool.identity_providers.append(IdentityProvider("idp-corp", "corp-sso", "oidc", "oidc"))
    rp = OidcClient(sandbox_settings(sb), http, identity_client=identity)
    # A disabled connection is skipped by the lookup.
    assert await rp.identity_provider() == "userpool"
    override = OidcClient(
        sandbox_settings(sb, identity_provider="corp-sso"), http, identity_client=identity
    )
    url = await override.authorization_url(new_login_secrets())
    assert query_of(url)["identity_provider"] == ["corp-sso"]
    _, tokens = await log_in(override, browser)
    assert tokens.claims is not None
    unknown = OidcClient(sandbox_settings(sb, identity_provider="nope"), http)
    query = await browser.login(await unknown.authorization_url(new_login_secrets()))
    with pytest.raises(OidcError) as info:
        parse_authorization_response(query)
    assert info.value.reason_code == "authorization_denied"
    assert "identity_provider" in info.value.message


async def test_identity_provider_lookup_failure_is_retried(
    sb: Sandbox, http: httpx.AsyncClient, identity: IdentityClient
) -> None:
    rp = OidcClient(
        sandbox_settings(sb, user_pool_uid="up-missing"), http, identity_client=identity
    )
    url = await rp.authorization_url(new_login_secrets())
    assert "identity_provider" not in query_of(url)
    await rp.authorization_url(new_login_secrets())
    assert sb.requests.count("ListIdentityProviders") == 2


async def test_relay_callback(sb: Sandbox, http: httpx.AsyncClient, browser: Browser) -> None:
    rp = OidcClient(sandbox_settings(sb, use_relay_callback=True), http)
    url = await rp.authorization_url(new_login_secrets())
    issuer = sb.user_pool_issuer(POOL)
    assert query_of(url)["redirect_uri"] == [f"{issuer}/relay"]
    assert query_of(url)["redirect_relay_uri"] == [CALLBACK]
    _, tokens = await log_in(rp, browser)
    assert tokens.claims is not None
    assert tokens.claims.sub == "alice"
    # The browser went through the provider's relay before reaching the callback.
    assert any(u.startswith(f"{issuer}/relay?") for u in browser.visited)


async def test_refresh_with_rotation(rp: OidcClient, browser: Browser) -> None:
    _, tokens = await log_in(rp, browser)
    assert tokens.refresh_token is not None
    refreshed = await rp.refresh(tokens.refresh_token, expected_sub="alice")
    assert refreshed.claims is not None
    assert refreshed.claims.sub == "alice"
    assert refreshed.claims.nonce is None
    assert refreshed.refresh_token not in {None, tokens.refresh_token}
    with pytest.raises(OidcError) as info:
        await rp.refresh(tokens.refresh_token)
    assert info.value.reason_code == "invalid_grant"
    assert "refresh_token request (invalid_grant)" in info.value.message
    assert tokens.refresh_token not in info.value.message
    assert refreshed.refresh_token is not None
    with pytest.raises(OidcError) as info:
        await rp.refresh(refreshed.refresh_token, expected_sub="bob")
    assert info.value.reason_code == "id_token_subject_changed"


async def test_a_refresh_whose_id_token_cannot_be_checked_yet_keeps_the_rotated_token(
    sb: Sandbox, http: httpx.AsyncClient, browser: Browser
) -> None:
    rp = OidcClient(sandbox_settings(sb), http, jwks_min_refetch_interval=0.0)
    _, tokens = await log_in(rp, browser)  # the JWKS is cached now
    assert tokens.refresh_token is not None
    # A key rotation while the JWKS endpoint fails: the provider answers the refresh (and
    # spends the refresh token), the new ID token's key cannot be fetched.
    sb.rotate_user_pool_key(POOL, grace_seconds=None)
    down = sb.faults.add(urlsplit(sb.user_pool_jwks_url(POOL)).path, status=503)
    with pytest.raises(RefreshNotValidatedError) as info:
        await rp.refresh(tokens.refresh_token, expected_sub="alice")
    error = info.value
    assert isinstance(error, OidcError)
    assert error.reason_code == "jwks_failed"
    assert error.rotated
    kept = error.tokens.refresh_token
    assert kept is not None
    assert kept != tokens.refresh_token
    assert error.tokens.claims is None
    assert error.tokens.id_token is not None
    # None of it shows in the error's text, args or repr.
    shown = [str(error), repr(error), repr(error.args), repr(error.tokens), error.message]
    for value in (kept, error.tokens.id_token, error.tokens.access_token, tokens.refresh_token):
        assert all(value not in text for text in shown)
    assert repr(error) == (
        f"RefreshNotValidatedError('jwks_failed', {error.message!r}, rotated=True)"
    )
    # The old token is spent; the kept one works once the keys can be fetched.
    sb.faults.remove(down)
    with pytest.raises(OidcError) as spent:
        await rp.refresh(tokens.refresh_token)
    assert spent.value.reason_code == "invalid_grant"
    refreshed = await rp.refresh(kept, expected_sub="alice")
    assert refreshed.claims is not None
    assert refreshed.claims.sub == "alice"


async def test_code_is_single_use_and_pkce_bound(rp: OidcClient, browser: Browser) -> None:
    secrets = new_login_secrets()
    response = parse_authorization_response(
        await browser.login(await rp.authorization_url(secrets))
    )
    with pytest.raises(OidcError) as info:
        await rp.exchange_code(
            response.code, code_verifier="wrong" * 10, nonce=secrets.nonce, iss=response.iss
        )
    assert info.value.reason_code == "invalid_grant"
    assert "PKCE" in info.value.message
    with pytest.raises(OidcError) as info:
        await rp.exchange_code(
            response.code,
            code_verifier=secrets.code_verifier,
            nonce=secrets.nonce,
            iss=response.iss,
        )
    assert info.value.reason_code == "invalid_grant"
    assert response.code not in info.value.message


async def test_wrong_nonce_in_exchange(rp: OidcClient, browser: Browser) -> None:
    secrets = new_login_secrets()
    response = parse_authorization_response(
        await browser.login(await rp.authorization_url(secrets))
    )
    with pytest.raises(OidcError) as info:
        await rp.exchange_code(
            response.code,
            code_verifier=secrets.code_verifier,
            nonce=new_login_secrets().nonce,
            iss=response.iss,
        )
    assert info.value.reason_code == "id_token_nonce_mismatch"


@pytest.mark.parametrize(
    ("iss", "reason"),
    [("https://evil.example", "callback_issuer_mismatch"), (None, "callback_issuer_missing")],
)
async def test_callback_issuer_check(
    rp: OidcClient, browser: Browser, iss: str | None, reason: str
) -> None:
    secrets = new_login_secrets()
    response = parse_authorization_response(
        await browser.login(await rp.authorization_url(secrets))
    )
    with pytest.raises(OidcError) as info:
        await rp.exchange_code(
            response.code, code_verifier=secrets.code_verifier, nonce=secrets.nonce, iss=iss
        )
    assert info.value.reason_code == reason
    assert "RFC 9207" in info.value.message


async def test_client_secret_post_when_basic_is_not_offered(
    sb: Sandbox, browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent_identity.sandbox import userpool_oidc

    original = userpool_oidc._discovery

    def post_only(issuer: str) -> dict[str, object]:
        document = original(issuer)
        document["token_endpoint_auth_methods_supported"] = ["client_secret_post"]
        return document

    monkeypatch.setattr(userpool_oidc, "_discovery", post_only)
    seen: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        seen.append(request)

    async with httpx.AsyncClient(timeout=10, event_hooks={"request": [record]}) as http:
        _, tokens = await log_in(OidcClient(sandbox_settings(sb), http), browser)
    assert tokens.claims is not None
    token_requests = [r for r in seen if r.url.path.endswith("/oauth/token")]
    assert len(token_requests) == 1
    assert "authorization" not in token_requests[0].headers
    assert b"client_secret=" in token_requests[0].content


async def test_no_secrets_in_logs(
    sb: Sandbox, rp: OidcClient, browser: Browser, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="agent_identity")
    secrets, tokens = await log_in(rp, browser)
    assert tokens.refresh_token is not None
    refreshed = await rp.refresh(tokens.refresh_token)
    with pytest.raises(OidcError) as info:
        await rp.refresh(tokens.refresh_token)
    shown = [r.getMessage() for r in caplog.records if r.name.startswith("agent_identity")]
    shown += [str(info.value), repr(tokens), repr(refreshed), repr(secrets), repr(rp)]
    secret_values = [
        CLIENT_SECRET,
        secrets.state,
        secrets.nonce,
        secrets.code_verifier,
        tokens.access_token,
        tokens.id_token,
        tokens.refresh_token,
        refreshed.refresh_token,
    ]
    for text in shown:
        for value in secret_values:
            assert value is not None
            assert value not in text
