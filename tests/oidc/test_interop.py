"""The relying party against a certified OpenID provider: panva's oidc-provider under node.

Login and consent go through oidc-provider's own pages (devInteractions). The client uses
``client_secret_basic`` with a secret that needs form-encoding, PKCE is required, refresh
tokens rotate, and the callback carries ``iss`` (RFC 9207).
"""

from __future__ import annotations

import httpx
import jwt
import pytest

from agent_identity.oidc import OidcClient, OidcError, OidcSettings

from .browser import Browser
from .conftest import InteropProvider
from .test_flow_sandbox import log_in


def interop_client(provider: InteropProvider, http: httpx.AsyncClient) -> OidcClient:
    settings = OidcSettings(
        discovery_url=provider.issuer,
        client_id=provider.client_id,
        client_secret=provider.client_secret,
        redirect_uri=provider.redirect_uri,
        scope="openid profile email offline_access",
        # oidc-provider issues refresh tokens for offline_access only with explicit consent.
        extra_authorize_params=(("prompt", "consent"),),
    )
    return OidcClient(settings, http)


@pytest.mark.parametrize("interop", ["RS256", "ES256"], indirect=True)
async def test_code_flow(
    interop: InteropProvider, http: httpx.AsyncClient, browser: Browser
) -> None:
    rp = interop_client(interop, http)
    metadata = await rp.metadata()
    assert metadata.authorization_response_iss_parameter_supported
    secrets, tokens = await log_in(rp, browser)
    assert tokens.id_token is not None
    assert jwt.get_unverified_header(tokens.id_token)["alg"] == interop.alg
    assert tokens.claims is not None
    assert tokens.claims.sub == "alice"
    assert tokens.claims.email == "alice@example.com"
    assert tokens.claims.nonce == secrets.nonce
    assert tokens.claims.iss == interop.issuer
    assert tokens.refresh_token
    # The login and consent pages were really shown.
    assert any("/interaction/" in url for url in browser.visited)


async def test_key_rotation_unknown_kid_refetch(
    interop: InteropProvider, http: httpx.AsyncClient, browser: Browser
) -> None:
    rp = interop_client(interop, http)
    _, first = await log_in(rp, browser)
    assert first.id_token is not None
    new_kid = await interop.rotate(keep=False)
    _, second = await log_in(rp, browser)
    assert second.id_token is not None
    assert jwt.get_unverified_header(second.id_token)["kid"] == new_kid
    assert second.claims is not None
    assert second.claims.sub == "alice"
    stats = rp.jwks_statistics()
    assert stats is not None
    assert (stats.fetches, stats.refetches) == (2, 1)
    # The old key was dropped; the one refetch for this window is spent.
    with pytest.raises(OidcError) as info:
        await rp.validate_id_token(first.id_token)
    assert info.value.reason_code == "id_token_unknown_kid"


async def test_key_rotation_to_es256_keeping_the_old_key(
    interop: InteropProvider, http: httpx.AsyncClient, browser: Browser
) -> None:
    rp = interop_client(interop, http)
    _, first = await log_in(rp, browser)
    await interop.rotate(keep=True, alg="ES256")
    _, second = await log_in(rp, browser)
    assert second.id_token is not None
    assert jwt.get_unverified_header(second.id_token)["alg"] == "ES256"
    assert first.id_token is not None
    assert (await rp.validate_id_token(first.id_token)).sub == "alice"


async def test_refresh_rotation(
    interop: InteropProvider, http: httpx.AsyncClient, browser: Browser
) -> None:
    rp = interop_client(interop, http)
    _, tokens = await log_in(rp, browser)
    assert tokens.refresh_token is not None
    refreshed = await rp.refresh(tokens.refresh_token, expected_sub="alice")
    assert refreshed.refresh_token not in {None, tokens.refresh_token}
    assert refreshed.claims is not None
    assert refreshed.claims.sub == "alice"
    with pytest.raises(OidcError) as info:
        await rp.refresh(tokens.refresh_token)
    assert info.value.reason_code == "invalid_grant"
    assert tokens.refresh_token not in info.value.message


async def test_callback_issuer_mismatch(
    interop: InteropProvider, http: httpx.AsyncClient, browser: Browser
) -> None:
    from agent_identity.oidc import new_login_secrets, parse_authorization_response

    rp = interop_client(interop, http)
    secrets = new_login_secrets()
    response = parse_authorization_response(
        await browser.login(await rp.authorization_url(secrets))
    )
    assert response.iss == interop.issuer
    with pytest.raises(OidcError) as info:
        await rp.exchange_code(
            response.code,
            code_verifier=secrets.code_verifier,
            nonce=secrets.nonce,
            iss="https://attacker.example",
        )
    assert info.value.reason_code == "callback_issuer_mismatch"
