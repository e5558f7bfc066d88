"""The user-pool OIDC provider's protocol details: PKCE required, identity_provider, the relay,
refresh-token rotation, client authentication, ES256 keys and key rotation."""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlsplit

import httpx
import jwt
import pytest

from agent_identity.sandbox import Sandbox, open_sandbox
from agent_identity.sandbox.state import Client, IdentityProvider
from agent_identity.sandbox.tokens import rotate_user_pool_key

from .helpers import Api, read_form

CALLBACK = "http://127.0.0.1:18789/identity/oauth/callback"
POOL = "agent-identity-dev"
POOL_UID = "up-dev-0001"
CLIENT_UID = "client-openclaw-0001"
CLIENT_SECRET = "openclaw-gateway-client-secret"


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def query(response: httpx.Response) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["location"]).query).items()}


def authorize_params(challenge: str, **extra: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": CLIENT_UID,
        "redirect_uri": CALLBACK,
        "scope": "openid profile",
        "state": "st",
        "nonce": "nn",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }


async def login(
    sb: Sandbox, http: httpx.AsyncClient, challenge: str, **extra: str
) -> httpx.Response:
    issuer = sb.user_pool_issuer(POOL)
    page = await http.get(f"{issuer}/authorize", params=authorize_params(challenge, **extra))
    assert page.status_code == 200, page.text
    form = read_form(page)
    return await http.post(
        form.action, data={**form.fields, "username": "alice", "password": "alice-password"}
    )


async def redeem(
    sb: Sandbox, http: httpx.AsyncClient, code: str, verifier: str, redirect_uri: str = CALLBACK
) -> httpx.Response:
    return await http.post(
        f"{sb.user_pool_issuer(POOL)}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
        auth=(CLIENT_UID, CLIENT_SECRET),
    )


async def tokens_for(sb: Sandbox, http: httpx.AsyncClient) -> dict[str, Any]:
    verifier, challenge = pkce()
    redirect = await login(sb, http, challenge)
    response = await redeem(sb, http, query(redirect)["code"], verifier)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_discovery_advertises_the_upgrades(sb: Sandbox, http: httpx.AsyncClient) -> None:
    document = (await http.get(sb.user_pool_discovery_url(POOL))).json()
    issuer = sb.user_pool_issuer(POOL)
    assert document["id_token_signing_alg_values_supported"] == ["RS256", "ES256"]
    assert document["authorization_response_iss_parameter_supported"] is True
    assert document["redirect_relay_endpoint"] == f"{issuer}/relay"
    assert document["code_challenge_methods_supported"] == ["S256"]


@pytest.mark.parametrize(
    "extra",
    [{"code_challenge": ""}, {"code_challenge_method": "plain"}, {"code_challenge_method": ""}],
)
async def test_pkce_is_required(
    sb: Sandbox, http: httpx.AsyncClient, extra: dict[str, str]
) -> None:
    params = {k: v for k, v in authorize_params(pkce()[1], **extra).items() if v}
    response = await http.get(f"{sb.user_pool_issuer(POOL)}/authorize", params=params)
    found = query(response)
    assert found["error"] == "invalid_request"
    assert "PKCE" in found["error_description"]
    assert found["state"] == "st"
    assert found["iss"] == sb.user_pool_issuer(POOL)


async def test_identity_provider_parameter(sb: Sandbox, http: httpx.AsyncClient) -> None:
    pool = sb.state.user_pools[POOL_UID]
    pool.identity_providers.append(IdentityProvider("idp-off", "off", "oidc", "oidc", False))
    authorize = f"{sb.user_pool_issuer(POOL)}/authorize"
    for known in ("userpool", "idp-local-0001"):
        page = await http.get(
            authorize, params=authorize_params(pkce()[1], identity_provider=known)
        )
        assert page.status_code == 200
    for unknown in ("nope", "off"):
        response = await http.get(
            authorize, params=authorize_params(pkce()[1], identity_provider=unknown)
        )
        assert response.status_code == 302
        assert query(response)["error"] == "invalid_request"
        assert "identity_provider" in query(response)["error_description"]


async def test_relay(sb: Sandbox, http: httpx.AsyncClient) -> None:
    issuer = sb.user_pool_issuer(POOL)
    relay = f"{issuer}/relay"
    verifier, challenge = pkce()
    redirect = await login(sb, http, challenge, redirect_uri=relay, redirect_relay_uri=CALLBACK)
    assert redirect.headers["location"].startswith(f"{relay}?")
    code = query(redirect)["code"]
    forwarded = await http.get(redirect.headers["location"])
    assert forwarded.status_code == 302
    assert forwarded.headers["location"].startswith(f"{CALLBACK}?")
    assert query(forwarded) == {"code": code, "state": "st", "iss": issuer}
    # The code belongs to the relay URI it was issued to.
    wrong = await redeem(sb, http, code, verifier)
    assert wrong.json()["error"] == "invalid_grant"
    redirect = await login(sb, http, challenge, redirect_uri=relay, redirect_relay_uri=CALLBACK)
    ok = await redeem(sb, http, query(redirect)["code"], verifier, relay)
    assert ok.status_code == 200, ok.text
    assert (await http.get(f"{relay}?code=unknown")).status_code == 400


async def test_relay_refusals(sb: Sandbox, http: httpx.AsyncClient) -> None:
    issuer = sb.user_pool_issuer(POOL)
    authorize = f"{issuer}/authorize"
    challenge = pkce()[1]
    not_allowed = await http.get(
        authorize,
        params=authorize_params(
            challenge, redirect_uri=f"{issuer}/relay", redirect_relay_uri="http://evil/cb"
        ),
    )
    assert not_allowed.status_code == 400
    not_relay = await http.get(
        authorize,
        params=authorize_params(challenge, redirect_uri=CALLBACK, redirect_relay_uri=CALLBACK),
    )
    assert not_relay.status_code == 400
    # After the checks, errors go straight to the relay target.
    error = await http.get(
        authorize,
        params=authorize_params(
            challenge, redirect_uri=f"{issuer}/relay", redirect_relay_uri=CALLBACK, scope="email"
        ),
    )
    assert error.headers["location"].startswith(f"{CALLBACK}?")
    assert query(error)["error"] == "invalid_scope"
    # A code issued without the relay cannot be bounced through it.
    redirect = await login(sb, http, challenge)
    plain_code = query(redirect)["code"]
    assert (await http.get(f"{issuer}/relay", params={"code": plain_code})).status_code == 400


async def test_refresh_token_rotation(sb: Sandbox, http: httpx.AsyncClient) -> None:
    tokens = await tokens_for(sb, http)
    token_url = f"{sb.user_pool_issuer(POOL)}/oauth/token"
    form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    first = await http.post(token_url, data=form, auth=(CLIENT_UID, CLIENT_SECRET))
    assert first.status_code == 200
    rotated = first.json()["refresh_token"]
    assert rotated != tokens["refresh_token"]
    assert "nonce" not in jwt.decode(first.json()["id_token"], options={"verify_signature": False})
    replay = await http.post(token_url, data=form, auth=(CLIENT_UID, CLIENT_SECRET))
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    second = await http.post(
        token_url,
        data={"grant_type": "refresh_token", "refresh_token": rotated},
        auth=(CLIENT_UID, CLIENT_SECRET),
    )
    assert second.status_code == 200


async def test_refresh_token_expiry() -> None:
    now = [1_800_000_000.0]
    async with open_sandbox(clock=lambda: now[0]) as sb, httpx.AsyncClient() as http:
        tokens = await tokens_for(sb, http)
        now[0] += 31 * 86400
        response = await http.post(
            f"{sb.user_pool_issuer(POOL)}/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            auth=(CLIENT_UID, CLIENT_SECRET),
        )
        assert response.json()["error"] == "invalid_grant"


async def test_client_authentication_methods(sb: Sandbox, http: httpx.AsyncClient) -> None:
    odd = Client(uid="odd client", name="odd", secret="p@ss:w+rd /x")
    sb.state.user_pools[POOL_UID].clients[odd.uid] = odd
    token_url = f"{sb.user_pool_issuer(POOL)}/oauth/token"
    grant = {"grant_type": "client_credentials"}
    basic = base64.b64encode(f"{quote_plus(odd.uid)}:{quote_plus(odd.secret)}".encode()).decode()
    ok = await http.post(token_url, data=grant, headers={"Authorization": f"Basic {basic}"})
    assert ok.status_code == 200, ok.text
    post = await http.post(
        token_url, data={**grant, "client_id": odd.uid, "client_secret": odd.secret}
    )
    assert post.status_code == 200, post.text
    both = await http.post(
        token_url,
        data={**grant, "client_secret": odd.secret},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert both.json()["error"] == "invalid_request"
    mismatch = await http.post(
        token_url,
        data={**grant, "client_id": CLIENT_UID},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert mismatch.json()["error"] == "invalid_request"
    malformed = await http.post(token_url, data=grant, headers={"Authorization": "Basic %%%"})
    assert malformed.status_code == 401


async def test_at_hash(sb: Sandbox, http: httpx.AsyncClient) -> None:
    tokens = await tokens_for(sb, http)
    claims = jwt.decode(tokens["id_token"], options={"verify_signature": False})
    digest = hashlib.sha256(tokens["access_token"].encode()).digest()[:16]
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def test_es256_and_key_rotation(sb: Sandbox, http: httpx.AsyncClient, api: Api) -> None:
    jwks_url = sb.user_pool_jwks_url(POOL)
    before = await tokens_for(sb, http)
    old_kid = jwt.get_unverified_header(before["id_token"])["kid"]
    new_kid = rotate_user_pool_key(sb.state, POOL, alg="ES256", grace_seconds=600)
    keys = (await http.get(jwks_url)).json()["keys"]
    assert [(k["kid"], k["kty"], k["alg"]) for k in keys] == [
        (new_kid, "EC", "ES256"),
        (old_kid, "RSA", "RS256"),
    ]
    after = await tokens_for(sb, http)
    header = jwt.get_unverified_header(after["id_token"])
    assert (header["alg"], header["kid"]) == ("ES256", new_kid)
    key = jwt.PyJWK(keys[0]).key
    claims = jwt.decode(after["id_token"], key, algorithms=["ES256"], audience=CLIENT_UID)
    assert claims["sub"] == "alice"
    # Both tokens are accepted as UserTokens while the old key is in its grace period.
    for token in (before["id_token"], after["id_token"]):
        await api.ok("GetWorkloadAccessTokenForJWT", {"UserToken": token, "Name": "openclaw-agent"})
    # The algorithm sticks; dropping the old key at once makes its tokens unverifiable.
    newest = rotate_user_pool_key(sb.state, POOL_UID, grace_seconds=None)
    keys = (await http.get(jwks_url)).json()["keys"]
    assert [(k["kid"], k["alg"]) for k in keys] == [(newest, "ES256"), (old_kid, "RS256")]
    error = await api.fail(
        "GetWorkloadAccessTokenForJWT",
        {"UserToken": after["id_token"], "Name": "openclaw-agent"},
        400,
    )
    assert "unknown or retired key" in error["Message"]


async def test_grace_period_ends() -> None:
    now = [1_800_000_000.0]
    async with open_sandbox(clock=lambda: now[0]) as sb, httpx.AsyncClient() as http:
        old = sb.state.keys.user_pool(POOL_UID).kid
        new = rotate_user_pool_key(sb.state, POOL, grace_seconds=60)
        jwks_url = sb.user_pool_jwks_url(POOL)
        assert [k["kid"] for k in (await http.get(jwks_url)).json()["keys"]] == [new, old]
        now[0] += 61
        assert [k["kid"] for k in (await http.get(jwks_url)).json()["keys"]] == [new]


async def test_rotation_errors(sb: Sandbox) -> None:
    with pytest.raises(KeyError):
        rotate_user_pool_key(sb.state, "no-such-pool")
    with pytest.raises(ValueError, match="HS256"):
        rotate_user_pool_key(sb.state, POOL, alg="HS256")


async def test_sandbox_rotate_user_pool_key_publishes_a_new_kid() -> None:
    import httpx

    from agent_identity.sandbox import open_sandbox

    async with open_sandbox() as sb, httpx.AsyncClient() as http:
        before = (await http.get(sb.user_pool_jwks_url("agent-identity-dev"))).json()["keys"]
        kid = sb.rotate_user_pool_key("agent-identity-dev", alg="ES256", grace_seconds=None)
        after = (await http.get(sb.user_pool_jwks_url("agent-identity-dev"))).json()["keys"]
    assert [k["kid"] for k in after] == [kid]
    assert after[0]["kty"] == "EC"
    assert kid not in {k["kid"] for k in before}
