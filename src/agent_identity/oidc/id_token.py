"""ID-token validation (OpenID Connect Core 1.0 section 3.1.3.7) and the claims it yields.

The order matters: the header's ``alg`` is checked against the allow-list (RS256, ES256)
before any key is looked up, so ``none`` and ``HS*`` tokens never reach a verifier; the key is
chosen by ``kid`` and must be of the kind its algorithm needs (see :mod:`.jwks`); only a token
whose signature verifies has its claims read. Then: ``iss`` exactly the provider's issuer,
``aud`` contains our client id (``azp`` must be our client id when there are several
audiences), ``exp`` within a small leeway of the wall clock and ``iat`` no more than a few
minutes ahead of it (an IdP's clock may run ahead), the login's ``nonce``, and ``at_hash``
when the provider sent one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent_identity.oidc.errors import OidcError
from agent_identity.oidc.jwks import ALLOWED_ALGORITHMS, JwksCache

__all__ = ["DEFAULT_LEEWAY", "FUTURE_LEEWAY", "IdTokenClaims", "IdTokenValidator"]

DEFAULT_LEEWAY = 60.0
"""Seconds of clock skew tolerated on ``exp``, ``iat`` and ``nbf`` (see :data:`FUTURE_LEEWAY`)."""

FUTURE_LEEWAY = 300.0
"""Seconds ``iat`` and ``nbf`` may lie ahead of our clock, at least (the leeway, if larger).

An IdP whose clock runs a minute or two ahead issues every token "from the future". Such a
token is fresh, not stale, and refusing one after a refresh is costly: the provider has
already spent the rotating refresh token, so the session is lost. ``exp`` keeps the tighter
leeway: accepting expired tokens is what a leeway must not widen.
"""

_MAX_SHOWN = 120
# The last second of year 9999 (UTC): later "times" cannot be shown, stored as epoch
# milliseconds or added to, so a claim beyond it is refused rather than carried along.
_MAX_TIME = 253_402_300_799


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else f"{text[: _MAX_SHOWN - 3]}..."


@dataclass(frozen=True, slots=True)
class IdTokenClaims:
    """The claims of a validated ID token.

    Attributes:
        sub: The user's subject at the provider.
        iss: The issuer.
        aud: The audiences (always a tuple, even when the token had one string).
        exp: Expiry, seconds since the epoch.
        iat: Issue time, seconds since the epoch.
        nonce: The nonce, if the token carried one.
        email: The ``email`` claim, if present.
        name: The ``name`` claim, if present.
        raw: Every claim as decoded.
    """

    sub: str
    iss: str
    aud: tuple[str, ...]
    exp: int
    iat: int
    nonce: str | None = field(default=None, repr=False)
    email: str | None = None
    name: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


def _number(claims: Mapping[str, Any], name: str) -> int:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise OidcError("id_token_missing_claim", f"The ID token lacks a numeric {name!r} claim.")
    # Python's json accepts NaN, Infinity and integers of any size; int() or arithmetic on
    # those raises. NaN fails every comparison, so it fails this one too.
    if not -_MAX_TIME <= value <= _MAX_TIME:
        raise OidcError("id_token_missing_claim", f"The ID token's {name!r} is not a valid time.")
    return int(value)


def _text(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    return value if isinstance(value, str) else None


def _audiences(claims: Mapping[str, Any]) -> tuple[str, ...]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return (aud,)
    if isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud):
        return tuple(aud)
    raise OidcError("id_token_missing_claim", "The ID token lacks a valid 'aud' claim.")


def _token_hash(value: str) -> str:
    # RS256 and ES256 both use SHA-256: the hash is the left half of its digest.
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode("ascii")


class IdTokenValidator:
    """Validates the ID tokens of one provider for one client.

    Args:
        issuer: The provider's exact issuer (from discovery).
        client_id: Our client id.
        keys: The provider's JWKS cache.
        leeway: Tolerated clock skew in seconds.
        now: Wall-clock seconds since the epoch (``exp``/``iat`` are wall-clock by nature).
    """

    def __init__(
        self,
        *,
        issuer: str,
        client_id: str,
        keys: JwksCache,
        leeway: float = DEFAULT_LEEWAY,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer
        self.client_id = client_id
        self.keys = keys
        self._leeway = leeway
        self._now = now

    async def _verified_claims(self, token: str) -> dict[str, Any]:
        # PyJWT (and cryptography.x509 with it) is imported on the first login, not at start
        # (import time of serve).
        import jwt  # noqa: PLC0415

        if not token.isascii():  # PyJWT would fail to encode a lone surrogate (UnicodeError)
            raise OidcError("id_token_malformed", "The ID token is not a well-formed JWT.")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise OidcError("id_token_malformed", "The ID token is not a well-formed JWT.") from exc
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:
            raise OidcError(
                "id_token_alg_not_allowed",
                f"The ID token uses the algorithm {_show(alg)}; only RS256 and ES256 "
                "signatures are accepted.",
            )
        kid = header.get("kid")
        key = await self.keys.key_for(kid if isinstance(kid, str) else None, alg)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[key.alg],
                # Only the signature is pyjwt's job; every claim is checked below, with our
                # clock and messages.
                options={
                    "verify_signature": True,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "verify_iss": False,
                    "require": [],
                },
            )
        except jwt.InvalidSignatureError as exc:
            raise OidcError(
                "id_token_bad_signature", "The ID token's signature does not verify."
            ) from exc
        except jwt.PyJWTError as exc:
            raise OidcError("id_token_malformed", "The ID token could not be decoded.") from exc
        return claims

    async def validate(
        self, token: str, *, nonce: str | None = None, access_token: str | None = None
    ) -> IdTokenClaims:
        """Check a token completely and return its claims.

        Args:
            token: The compact JWT.
            nonce: The login's nonce; required to match when given (None after a refresh).
            access_token: The access token issued with it, to check ``at_hash`` if present.

        Returns:
            The claims.

        Raises:
            OidcError: One of the ``id_token_*`` reasons, or ``jwks_failed``.
        """
        claims = await self._verified_claims(token)
        iss, sub = _text(claims, "iss"), _text(claims, "sub")
        if iss is None or not sub:
            raise OidcError("id_token_missing_claim", "The ID token lacks its 'iss' or 'sub'.")
        if iss != self.issuer:
            raise OidcError(
                "id_token_wrong_issuer",
                f"The ID token was issued by {_show(iss)}, not by {_show(self.issuer)}.",
            )
        audiences = _audiences(claims)
        if self.client_id not in audiences:
            raise OidcError("id_token_wrong_audience", "The ID token was issued to another client.")
        azp = claims.get("azp")
        if (len(audiences) > 1 or azp is not None) and azp != self.client_id:
            raise OidcError(
                "id_token_wrong_azp", "The ID token's authorized party (azp) is another client."
            )
        exp, iat = _number(claims, "exp"), _number(claims, "iat")
        now = self._now()
        if now > exp + self._leeway:
            raise OidcError("id_token_expired", "The ID token has expired.")
        nbf = claims.get("nbf")
        future = now + max(self._leeway, FUTURE_LEEWAY)
        if iat > future or (
            isinstance(nbf, int | float) and not isinstance(nbf, bool) and nbf > future
        ):
            raise OidcError(
                "id_token_issued_in_future",
                "The ID token is not valid yet (is this machine's clock right?).",
            )
        token_nonce = _text(claims, "nonce")
        if nonce is not None and (
            token_nonce is None or not hmac.compare_digest(token_nonce, nonce)
        ):
            raise OidcError(
                "id_token_nonce_mismatch",
                "The ID token does not belong to this login (nonce mismatch).",
            )
        at_hash = _text(claims, "at_hash")
        if (
            access_token is not None
            and at_hash is not None
            and not hmac.compare_digest(at_hash, _token_hash(access_token))
        ):
            raise OidcError(
                "id_token_at_hash_mismatch",
                "The ID token does not match the access token issued with it (at_hash).",
            )
        return IdTokenClaims(
            sub=sub,
            iss=iss,
            aud=audiences,
            exp=exp,
            iat=iat,
            nonce=token_nonce,
            email=_text(claims, "email"),
            name=_text(claims, "name"),
            raw=claims,
        )
