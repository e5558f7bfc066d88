"""The provider's signing keys: parsed with the algorithm pinned, cached, refetched on rotation.

Each usable JWK becomes a :class:`VerificationKey` whose algorithm is fixed by the key itself:
an RSA key verifies RS256 only, a P-256 EC key ES256 only (a JWK's own ``alg``, when present,
must agree). Symmetric (``oct``) keys, other curves and encryption keys are ignored, so a
token can never be checked with HMAC over a public key.

A token whose ``kid`` is not in the cache triggers one refetch of the JWKS, to follow a key
rotation. Concurrent validations share that refetch (single flight), and refetches for unknown
kids happen at most once per ``min_refetch_interval`` seconds of Trio's clock, so a stream of
forged tokens with random kids cannot make us hammer the provider. The first fetch (cold cache)
does not count against that budget.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
import trio
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from agent_identity.oidc.errors import OidcError

__all__ = [
    "ALLOWED_ALGORITHMS",
    "JwksCache",
    "JwksFetcher",
    "JwksStatistics",
    "VerificationKey",
    "http_jwks_fetcher",
    "parse_jwks",
]

logger = logging.getLogger(__name__)

ALLOWED_ALGORITHMS = frozenset({"RS256", "ES256"})
"""The only ID-token algorithms accepted; ``none`` and every ``HS*`` are refused up front."""

_DEFAULT_MIN_REFETCH_INTERVAL = 30.0
_MAX_KID_SHOWN = 64

JwksFetcher = Callable[[], Awaitable[object]]
"""Returns the JWKS document, parsed from JSON (raises :class:`OidcError` on failure)."""


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A public key and the one algorithm it may verify.

    Attributes:
        kid: The key id, if the JWK had one.
        alg: ``RS256`` (RSA) or ``ES256`` (P-256).
        key: The public key object.
    """

    kid: str | None
    alg: str
    key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey


@dataclass(frozen=True, slots=True)
class JwksStatistics:
    """Counters: fetches (all), refetches for unknown kids, and refetches refused by the limit."""

    fetches: int
    refetches: int
    refused_refetches: int


def _show(kid: str | None) -> str:
    # A kid comes from an untrusted token: shown quoted (no control characters) and clipped.
    return repr(kid if kid is None or len(kid) <= _MAX_KID_SHOWN else f"{kid[:_MAX_KID_SHOWN]}...")


def _pinned_alg(jwk: Mapping[str, Any]) -> str | None:
    if jwk.get("use") not in (None, "sig"):
        return None
    kty, declared = jwk.get("kty"), jwk.get("alg")
    if kty == "RSA":
        pinned = "RS256"
    elif kty == "EC" and jwk.get("crv") == "P-256":
        pinned = "ES256"
    else:
        return None
    return pinned if declared in (None, pinned) else None


def parse_jwks(document: object) -> list[VerificationKey]:
    """The usable signature keys of a JWKS document (unusable ones are skipped).

    Raises:
        OidcError: ``jwks_failed`` when the document is not a JWKS.
    """
    # PyJWT (and cryptography.x509 with it) is imported on the first login, not at start
    # (import time of serve).
    import jwt  # noqa: PLC0415

    keys = document.get("keys") if isinstance(document, Mapping) else None
    if not isinstance(keys, list):
        raise OidcError("jwks_failed", "The provider's signing keys are not a JWKS document.")
    usable: list[VerificationKey] = []
    for jwk in keys:
        alg = _pinned_alg(jwk) if isinstance(jwk, Mapping) else None
        if alg is None:
            continue
        try:
            key = jwt.PyJWK(dict(jwk), algorithm=alg).key
        except (jwt.PyJWKError, jwt.InvalidKeyError):
            logger.debug("skipping a malformed %s key in the JWKS", alg)
            continue
        if isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            kid = jwk.get("kid")
            usable.append(VerificationKey(kid if isinstance(kid, str) else None, alg, key))
    return usable


def http_jwks_fetcher(http: httpx.AsyncClient, jwks_uri: str) -> JwksFetcher:
    """A :data:`JwksFetcher` that GETs ``jwks_uri`` with the shared client."""

    async def fetch() -> object:
        try:
            response = await http.get(jwks_uri, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise OidcError(
                "jwks_failed",
                f"Could not fetch the provider's signing keys ({type(exc).__name__}).",
            ) from exc
        if response.status_code != 200:
            raise OidcError(
                "jwks_failed",
                f"The provider's signing keys answered HTTP {response.status_code}.",
            )
        try:
            return msgspec.json.decode(response.content)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise OidcError("jwks_failed", "The provider's signing keys are not JSON.") from exc

    return fetch


class JwksCache:
    """The keys of one JWKS URI, refetched (rate-limited, single flight) on an unknown kid.

    Args:
        fetch: Returns the JWKS document.
        min_refetch_interval: Minimum seconds between two refetches for unknown kids.
        clock: Monotonic seconds; Trio's clock by default (a MockClock in tests).
    """

    def __init__(
        self,
        fetch: JwksFetcher,
        *,
        min_refetch_interval: float = _DEFAULT_MIN_REFETCH_INTERVAL,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self._fetch_document = fetch
        self._min_interval = min_refetch_interval
        self._clock = clock
        self._keys: list[VerificationKey] | None = None
        self._generation = 0
        self._last_refetch: float | None = None
        self._lock = trio.Lock()
        self._fetches = 0
        self._refetches = 0
        self._refused = 0

    def statistics(self) -> JwksStatistics:
        """Fetch counters."""
        return JwksStatistics(self._fetches, self._refetches, self._refused)

    async def _fetch(self) -> None:
        self._fetches += 1
        self._keys = parse_jwks(await self._fetch_document())
        self._generation += 1

    def _match(self, kid: str | None, alg: str) -> VerificationKey | None:
        keys = self._keys or []
        if kid is not None:
            named = [k for k in keys if k.kid == kid]
            found = next((k for k in named if k.alg == alg), None)
            if named and found is None:
                raise OidcError(
                    "id_token_alg_mismatch",
                    f"The ID token says {alg} but its key {_show(kid)} is a {named[0].alg} key.",
                )
            return found
        compatible = [k for k in keys if k.alg == alg]
        if len(compatible) > 1:
            raise OidcError(
                "id_token_unknown_kid",
                "The ID token names no key (kid) and the provider publishes several.",
            )
        return compatible[0] if compatible else None

    async def key_for(self, kid: str | None, alg: str) -> VerificationKey:
        """The key that must have signed a token with this header ``kid`` and ``alg``.

        Args:
            kid: The token header's ``kid`` (None when absent: only a lone key can match).
            alg: The token header's ``alg`` (already checked against the allowed set).

        Returns:
            The key.

        Raises:
            OidcError: ``id_token_unknown_kid`` (still unknown after the one allowed
                refetch), ``id_token_alg_mismatch``, or ``jwks_failed``.
        """
        if self._keys is None:
            async with self._lock:
                if self._keys is None:
                    await self._fetch()
        found = self._match(kid, alg)
        if found is not None:
            await trio.lowlevel.checkpoint()
            return found
        seen = self._generation
        async with self._lock:
            # If another task refetched while this one waited, its result is the answer.
            if self._generation == seen:
                now = self._clock()
                if self._last_refetch is None or now - self._last_refetch >= self._min_interval:
                    self._last_refetch = now
                    self._refetches += 1
                    logger.info("unknown signing key %s: fetching the JWKS again", _show(kid))
                    await self._fetch()
                else:
                    self._refused += 1
                    logger.info("unknown signing key %s: JWKS refetch rate-limited", _show(kid))
            found = self._match(kid, alg)
        if found is None:
            raise OidcError(
                "id_token_unknown_kid",
                f"The ID token is signed by a key the provider does not publish ({_show(kid)}).",
            )
        return found
