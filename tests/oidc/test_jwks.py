"""The JWKS cache: key parsing, alg pinning, single-flight and rate-limited refetch.

No sockets here: the fetcher is a fake and Trio's clock is a MockClock (``autojump_clock``).
"""

from __future__ import annotations

from typing import Any

import jwt
import pytest
import trio
import trio.testing
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from agent_identity.oidc import JwksCache, OidcError
from agent_identity.oidc.jwks import parse_jwks


def rsa_jwk(kid: str, **extra: Any) -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    return {**RSAAlgorithm.to_jwk(key, as_dict=True), "kid": kid, **extra}


def ec_jwk(kid: str, curve: ec.EllipticCurve | None = None, **extra: Any) -> dict[str, Any]:
    key = ec.generate_private_key(curve or ec.SECP256R1()).public_key()
    return {**ECAlgorithm.to_jwk(key, as_dict=True), "kid": kid, **extra}


class FakeJwks:
    """Serves a JWKS that tests change; counts fetches; optionally slow (trio time)."""

    def __init__(self, *keys: dict[str, Any], delay: float = 0.0) -> None:
        self.keys = list(keys)
        self.delay = delay
        self.fetches = 0

    async def __call__(self) -> object:
        self.fetches += 1
        await trio.sleep(self.delay)
        return {"keys": list(self.keys)}


def test_parse_jwks_pins_algorithms_and_skips_the_rest() -> None:
    keys = parse_jwks(
        {
            "keys": [
                rsa_jwk("r1"),
                rsa_jwk("r2", alg="RS256", use="sig"),
                ec_jwk("e1"),
                ec_jwk("e384", ec.SECP384R1()),
                rsa_jwk("ps", alg="PS256"),
                rsa_jwk("enc", use="enc"),
                {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac", "alg": "HS256"},
                {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
                "not a key",
                {"kty": "EC", "crv": "P-256", "kid": "lies", "alg": "RS256"},
            ]
        }
    )
    assert [(k.kid, k.alg) for k in keys] == [("r1", "RS256"), ("r2", "RS256"), ("e1", "ES256")]


@pytest.mark.parametrize("document", [None, [], {"keys": "x"}, {"nokeys": []}])
def test_parse_jwks_refuses_non_jwks(document: object) -> None:
    with pytest.raises(OidcError) as info:
        parse_jwks(document)
    assert info.value.reason_code == "jwks_failed"


async def test_unknown_kid_refetch_is_rate_limited(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeJwks(rsa_jwk("k1"))
    cache = JwksCache(fake, min_refetch_interval=30.0)
    assert (await cache.key_for("k1", "RS256")).kid == "k1"
    assert fake.fetches == 1
    # Rotation: k2 appears; the first unknown kid refetches at once (cold fetch not counted).
    fake.keys.append(rsa_jwk("k2"))
    assert (await cache.key_for("k2", "RS256")).kid == "k2"
    assert fake.fetches == 2
    # Another rotation 10 s later: refused until 30 s after the last refetch.
    fake.keys.append(ec_jwk("k3"))
    await trio.sleep(10)
    with pytest.raises(OidcError) as info:
        await cache.key_for("k3", "ES256")
    assert info.value.reason_code == "id_token_unknown_kid"
    assert fake.fetches == 2
    await trio.sleep(20)
    assert (await cache.key_for("k3", "ES256")).alg == "ES256"
    assert fake.fetches == 3
    stats = cache.statistics()
    assert (stats.fetches, stats.refetches, stats.refused_refetches) == (3, 2, 1)


async def test_concurrent_unknown_kids_share_one_refetch(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeJwks(rsa_jwk("k1"), delay=1.0)
    cache = JwksCache(fake)
    found: list[str | None] = []

    async def validate() -> None:
        found.append((await cache.key_for("k2", "RS256")).kid)

    await cache.key_for("k1", "RS256")
    fake.keys = [rsa_jwk("k2")]
    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(validate)
    assert found == ["k2"] * 10
    assert fake.fetches == 2
    assert cache.statistics().refused_refetches == 0


async def test_concurrent_cold_start_fetches_once(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeJwks(rsa_jwk("k1"), delay=1.0)
    cache = JwksCache(fake)
    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(cache.key_for, "k1", "RS256")
    assert fake.fetches == 1


async def test_tokens_without_kid() -> None:
    fake = FakeJwks(rsa_jwk("r1"), ec_jwk("e1"))
    cache = JwksCache(fake)
    assert (await cache.key_for(None, "ES256")).kid == "e1"
    fake.keys.append(ec_jwk("e2"))
    cache_two = JwksCache(fake)
    with pytest.raises(OidcError) as info:
        await cache_two.key_for(None, "ES256")
    assert info.value.reason_code == "id_token_unknown_kid"
    assert "several" in info.value.message


async def test_kid_with_the_wrong_key_type_is_not_refetched() -> None:
    fake = FakeJwks(rsa_jwk("k1"))
    cache = JwksCache(fake)
    with pytest.raises(OidcError) as info:
        await cache.key_for("k1", "ES256")
    assert info.value.reason_code == "id_token_alg_mismatch"
    assert fake.fetches == 1


async def test_long_kids_are_clipped_in_messages() -> None:
    cache = JwksCache(FakeJwks(rsa_jwk("k1")))
    with pytest.raises(OidcError) as info:
        await cache.key_for("x" * 500 + "\n", "RS256")
    assert "x" * 65 not in info.value.message
    assert "\n" not in info.value.message


def test_pyjwk_agrees_on_pinned_keys() -> None:
    # The pinned algorithm is what pyjwt itself infers for these key types.
    assert jwt.PyJWK(rsa_jwk("r")).algorithm_name == "RS256"
    assert jwt.PyJWK(ec_jwk("e")).algorithm_name == "ES256"
