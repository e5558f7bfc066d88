"""ID-token validation: every refusal has its own reason and a message without the token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from agent_identity.oidc import IdTokenValidator, JwksCache, OidcClient, OidcError
from agent_identity.oidc.jwks import http_jwks_fetcher
from agent_identity.sandbox import Sandbox
from agent_identity.sandbox.tokens import rotate_user_pool_key

from .browser import Browser
from .conftest import CLIENT_UID, POOL, POOL_UID
from .test_flow_sandbox import log_in


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims_for(sb: Sandbox, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": sb.user_pool_issuer(POOL),
        "sub": "alice",
        "aud": CLIENT_UID,
        "iat": now,
        "exp": now + 600,
        "nonce": "n-1",
        **overrides,
    }


def pool_kid(sb: Sandbox) -> str:
    return sb.state.keys.user_pool(POOL_UID).kid


async def refused(rp: OidcClient, token: str, reason: str, *, nonce: str | None = "n-1") -> str:
    with pytest.raises(OidcError) as info:
        await rp.validate_id_token(token, nonce=nonce)
    assert info.value.reason_code == reason, info.value.message
    assert token not in info.value.message
    assert token not in str(info.value)
    return info.value.message


async def test_valid_token_and_leeway(sb: Sandbox, rp: OidcClient) -> None:
    token = sb.issue_user_token(POOL, "alice", extra_claims={"nonce": "n-1"})
    claims = await rp.validate_id_token(token, nonce="n-1")
    assert (claims.sub, claims.email, claims.nonce) == ("alice", "alice@example.com", "n-1")
    assert claims.raw["preferred_username"] == "alice"
    assert "n-1" not in repr(claims)
    # Expired 30 s ago: inside the 60 s leeway.
    recent = sb.issue_user_token(POOL, "alice", ttl=-30)
    assert (await rp.validate_id_token(recent)).sub == "alice"


async def test_wrong_nonce(sb: Sandbox, rp: OidcClient) -> None:
    token = sb.issue_user_token(POOL, "alice", extra_claims={"nonce": "n-1"})
    message = await refused(rp, token, "id_token_nonce_mismatch", nonce="n-2")
    assert "nonce" in message
    no_nonce = sb.issue_user_token(POOL, "alice")
    await refused(rp, no_nonce, "id_token_nonce_mismatch")


async def test_wrong_audience(sb: Sandbox, rp: OidcClient) -> None:
    token = sb.issue_user_token(POOL, "alice", client_id="another-client")
    await refused(rp, token, "id_token_wrong_audience", nonce=None)


async def test_several_audiences_need_azp(sb: Sandbox, rp: OidcClient) -> None:
    both = [CLIENT_UID, "another-client"]
    without = sb.issue_user_token(POOL, "alice", extra_claims={"aud": both})
    await refused(rp, without, "id_token_wrong_azp", nonce=None)
    other = sb.issue_user_token(POOL, "alice", extra_claims={"aud": both, "azp": "x"})
    await refused(rp, other, "id_token_wrong_azp", nonce=None)
    ok = sb.issue_user_token(POOL, "alice", extra_claims={"aud": both, "azp": CLIENT_UID})
    assert (await rp.validate_id_token(ok)).aud == tuple(both)


async def test_wrong_issuer(sb: Sandbox, rp: OidcClient) -> None:
    token = sb.issue_user_token(POOL, "alice", extra_claims={"iss": "https://evil.example"})
    message = await refused(rp, token, "id_token_wrong_issuer", nonce=None)
    assert "https://evil.example" in message


async def test_expired(sb: Sandbox, rp: OidcClient) -> None:
    token = sb.issue_user_token(POOL, "alice", ttl=-3600)
    assert await refused(rp, token, "id_token_expired", nonce=None) == "The ID token has expired."


async def test_issued_in_the_future(sb: Sandbox, rp: OidcClient) -> None:
    later = int(time.time()) + 3600
    token = sb.issue_user_token(POOL, "alice", extra_claims={"iat": later, "exp": later + 600})
    await refused(rp, token, "id_token_issued_in_future", nonce=None)
    not_before = sb.issue_user_token(POOL, "alice", extra_claims={"nbf": later})
    await refused(rp, not_before, "id_token_issued_in_future", nonce=None)


async def test_alg_none(sb: Sandbox, rp: OidcClient) -> None:
    token = jwt.encode(claims_for(sb), "", algorithm="none", headers={"kid": pool_kid(sb)})
    message = await refused(rp, token, "id_token_alg_not_allowed")
    assert "'none'" in message


async def test_hs256_signed_with_the_public_key(
    sb: Sandbox, rp: OidcClient, http: httpx.AsyncClient
) -> None:
    """The classic confusion attack: HMAC keyed with the provider's public key bytes."""
    document = (await http.get(sb.user_pool_jwks_url(POOL))).json()
    public = jwt.PyJWK(document["keys"][0]).key
    assert isinstance(public, rsa.RSAPublicKey)
    header = {"alg": "HS256", "typ": "JWT", "kid": document["keys"][0]["kid"]}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims_for(sb)).encode())}"
    for encoding in (serialization.Encoding.PEM, serialization.Encoding.DER):
        secret = public.public_bytes(encoding, serialization.PublicFormat.SubjectPublicKeyInfo)
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        token = f"{signing_input}.{b64(mac)}"
        message = await refused(rp, token, "id_token_alg_not_allowed")
        assert "HS256" in message


async def test_tampered_signature_and_payload(sb: Sandbox, rp: OidcClient) -> None:
    token = sb.issue_user_token(POOL, "alice", extra_claims={"nonce": "n-1"})
    head, body, signature = token.split(".")
    middle = len(signature) // 2
    flipped = (
        signature[:middle] + ("A" if signature[middle] != "A" else "B") + signature[middle + 1 :]
    )
    await refused(rp, f"{head}.{body}.{flipped}", "id_token_bad_signature")
    forged_body = b64(json.dumps(claims_for(sb, sub="mallory")).encode())
    await refused(rp, f"{head}.{forged_body}.{signature}", "id_token_bad_signature")


async def test_malformed_and_missing_claims(sb: Sandbox, rp: OidcClient) -> None:
    await refused(rp, "not-a-jwt", "id_token_malformed", nonce=None)
    key = sb.state.keys.user_pool(POOL_UID)
    no_sub = key.sign({k: v for k, v in claims_for(sb).items() if k != "sub"})
    await refused(rp, no_sub, "id_token_missing_claim")
    no_exp = key.sign({k: v for k, v in claims_for(sb).items() if k != "exp"})
    await refused(rp, no_exp, "id_token_missing_claim")
    bad_aud = key.sign(claims_for(sb, aud=[1, 2]))
    await refused(rp, bad_aud, "id_token_missing_claim")


async def test_unknown_kid_after_one_refetch(sb: Sandbox, rp: OidcClient) -> None:
    good = sb.issue_user_token(POOL, "alice")
    await rp.validate_id_token(good)
    rogue = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims_for(sb), rogue, algorithm="RS256", headers={"kid": "rogue-1"})
    message = await refused(rp, token, "id_token_unknown_kid")
    assert "'rogue-1'" in message
    stats = rp.jwks_statistics()
    assert stats is not None
    assert (stats.fetches, stats.refetches) == (2, 1)
    # Within the rate limit a second unknown kid does not fetch again.
    await refused(rp, token, "id_token_unknown_kid")
    stats = rp.jwks_statistics()
    assert stats is not None
    assert (stats.fetches, stats.refused_refetches) == (2, 1)


async def test_alg_must_match_the_key(sb: Sandbox, rp: OidcClient) -> None:
    """An ES256 token naming the pool's RSA key is refused before any verification."""
    other = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(claims_for(sb), other, algorithm="ES256", headers={"kid": pool_kid(sb)})
    message = await refused(rp, token, "id_token_alg_mismatch")
    assert "RS256" in message


async def test_at_hash(sb: Sandbox, rp: OidcClient, http: httpx.AsyncClient) -> None:
    metadata = await rp.metadata()
    validator = IdTokenValidator(
        issuer=metadata.issuer,
        client_id=CLIENT_UID,
        keys=JwksCache(http_jwks_fetcher(http, metadata.jwks_uri)),
    )
    at_hash = b64(hashlib.sha256(b"the-access-token").digest()[:16])
    token = sb.issue_user_token(POOL, "alice", extra_claims={"at_hash": at_hash})
    assert (await validator.validate(token, access_token="the-access-token")).sub == "alice"
    with pytest.raises(OidcError) as info:
        await validator.validate(token, access_token="another-access-token")
    assert info.value.reason_code == "id_token_at_hash_mismatch"


async def test_es256_pool_and_rotation(sb: Sandbox, rp: OidcClient, browser: Browser) -> None:
    _, first = await log_in(rp, browser)
    assert jwt.get_unverified_header(first.id_token or "")["alg"] == "RS256"
    # Switch the pool to ES256 and drop the old key at once.
    kid = rotate_user_pool_key(sb.state, POOL, alg="ES256", grace_seconds=None)
    _, second = await log_in(rp, browser)
    header = jwt.get_unverified_header(second.id_token or "")
    assert (header["alg"], header["kid"]) == ("ES256", kid)
    assert second.claims is not None
    assert second.claims.sub == "alice"
    stats = rp.jwks_statistics()
    assert stats is not None
    assert (stats.fetches, stats.refetches) == (2, 1)
    # The first token's key is gone from the JWKS and the refetch budget is spent.
    assert first.id_token is not None
    await refused(rp, first.id_token, "id_token_unknown_kid", nonce=None)


async def test_rotation_with_grace_keeps_old_tokens_valid(
    sb: Sandbox, rp: OidcClient, http: httpx.AsyncClient
) -> None:
    old = sb.issue_user_token(POOL, "alice")
    old_kid = pool_kid(sb)
    new_kid = rotate_user_pool_key(sb.state, POOL, grace_seconds=600)
    jwks = (await http.get(sb.user_pool_jwks_url(POOL))).json()
    assert [k["kid"] for k in jwks["keys"]] == [new_kid, old_kid]
    new = sb.issue_user_token(POOL, "alice")
    assert (await rp.validate_id_token(new)).sub == "alice"
    assert (await rp.validate_id_token(old)).sub == "alice"
    stats = rp.jwks_statistics()
    assert stats is not None
    assert stats.fetches == 1
