"""RSA signing keys, their JWKS, and RS256 JWT minting and checking.

Keys are generated on first use: a sandbox that never mints a TIP or an id_token pays nothing
for RSA key generation, which keeps a test suite that opens hundreds of sandboxes fast.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

__all__ = ["KeyRing", "SigningKey", "jwks", "unverified_claims", "unverified_header"]

_KEY_SIZE = 2048


class SigningKey:
    """One RSA key pair with a ``kid``, signing RS256 JWTs.

    Args:
        kid: The key id published in the JWKS and put in each token's header.
    """

    def __init__(self, kid: str) -> None:
        self.kid = kid
        self._private = rsa.generate_private_key(public_exponent=65537, key_size=_KEY_SIZE)
        self._public = self._private.public_key()

    def public_jwk(self) -> dict[str, Any]:
        """Return the public key as a JWK with ``kid``, ``use`` and ``alg``."""
        jwk: dict[str, Any] = RSAAlgorithm.to_jwk(self._public, as_dict=True)
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return jwk

    def sign(self, claims: Mapping[str, Any]) -> str:
        """Return a compact RS256 JWS of the claims, with this key's ``kid`` in the header."""
        return jwt.encode(dict(claims), self._private, algorithm="RS256", headers={"kid": self.kid})

    def verify(
        self,
        token: str,
        *,
        issuer: str,
        audience: Sequence[str] | None = None,
        now: float | None = None,
    ) -> dict[str, Any]:
        """Check a token's signature, issuer, expiry and (optionally) audience.

        Args:
            token: The compact JWS.
            issuer: The exact ``iss`` required.
            audience: When given, ``aud`` must contain one of these.
            now: The wall-clock time to check ``exp`` against (default: now).

        Returns:
            The claims.

        Raises:
            jwt.PyJWTError: Any check failed; the subclass says which.
        """
        options: dict[str, Any] = {
            "require": ["iss", "sub", "exp", "iat"],
            "verify_aud": audience is not None,
            # Expiry is checked below against the injectable clock, not pyjwt's own.
            "verify_exp": False,
            "verify_iat": False,
        }
        claims: dict[str, Any] = jwt.decode(
            token,
            self._public,
            algorithms=["RS256"],
            issuer=issuer,
            audience=list(audience) if audience is not None else None,
            options=options,  # type: ignore[arg-type]
        )
        if now is not None and float(claims["exp"]) <= now:
            raise jwt.ExpiredSignatureError("Signature has expired")
        return claims


def jwks(keys: Iterable[SigningKey]) -> dict[str, Any]:
    """Return a JWKS document for the keys."""
    return {"keys": [key.public_jwk() for key in keys]}


def unverified_claims(token: str) -> dict[str, Any]:
    """Read a JWT's claims without checking anything (to route it to the right key).

    Raises:
        jwt.PyJWTError: The token is not a JWT.
    """
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def unverified_header(token: str) -> dict[str, Any]:
    """Read a JWT's header without checking anything."""
    return jwt.get_unverified_header(token)


class KeyRing:
    """The sandbox's signing keys: one for TIPs, one per user pool, created on first use."""

    def __init__(self) -> None:
        self._tip: SigningKey | None = None
        self._user_pools: dict[str, SigningKey] = {}

    @property
    def tip(self) -> SigningKey:
        """The key that signs every workload access token (TIP)."""
        if self._tip is None:
            self._tip = SigningKey(f"tip-{secrets.token_hex(4)}")
        return self._tip

    def user_pool(self, uid: str) -> SigningKey:
        """The key that signs a user pool's id_tokens."""
        key = self._user_pools.get(uid)
        if key is None:
            key = SigningKey(f"{uid}-{secrets.token_hex(4)}")
            self._user_pools[uid] = key
        return key
