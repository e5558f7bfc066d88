"""Signing keys (RS256 or ES256), their JWKS, JWT minting and checking, and key rotation.

Keys are generated on first use: a sandbox that never mints a TIP or an id_token pays nothing
for key generation, which keeps a test suite that opens hundreds of sandboxes fast.

Each user pool signs with one *current* key and may still publish *retired* keys for a grace
period after a rotation, so tokens signed just before the rotation keep verifying while
relying parties learn the new ``kid``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

__all__ = [
    "SIGNING_ALGORITHMS",
    "KeyRing",
    "SigningAlgorithm",
    "SigningKey",
    "jwks",
    "unverified_claims",
    "unverified_header",
]

_KEY_SIZE = 2048

SigningAlgorithm = Literal["RS256", "ES256"]
SIGNING_ALGORITHMS: tuple[SigningAlgorithm, ...] = ("RS256", "ES256")


class SigningKey:
    """One key pair with a ``kid``, signing RS256 (RSA 2048) or ES256 (P-256) JWTs.

    Args:
        kid: The key id published in the JWKS and put in each token's header.
        alg: The signing algorithm.

    Raises:
        ValueError: ``alg`` is neither RS256 nor ES256.
    """

    def __init__(self, kid: str, alg: str = "RS256") -> None:
        self.kid = kid
        self.alg = alg
        self._private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
        if alg == "RS256":
            self._private = rsa.generate_private_key(public_exponent=65537, key_size=_KEY_SIZE)
        elif alg == "ES256":
            self._private = ec.generate_private_key(ec.SECP256R1())
        else:
            raise ValueError(f"unsupported signing algorithm {alg!r}; use RS256 or ES256")
        self._public = self._private.public_key()

    def public_jwk(self) -> dict[str, Any]:
        """Return the public key as a JWK with ``kid``, ``use`` and ``alg``."""
        if isinstance(self._public, rsa.RSAPublicKey):
            jwk: dict[str, Any] = RSAAlgorithm.to_jwk(self._public, as_dict=True)
        else:
            jwk = ECAlgorithm.to_jwk(self._public, as_dict=True)
        jwk.update({"kid": self.kid, "use": "sig", "alg": self.alg})
        return jwk

    def sign(self, claims: Mapping[str, Any]) -> str:
        """Return a compact JWS of the claims, with this key's ``kid`` in the header."""
        return jwt.encode(
            dict(claims), self._private, algorithm=self.alg, headers={"kid": self.kid}
        )

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
            algorithms=[self.alg],
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


@dataclass(slots=True)
class _Retired:
    key: SigningKey
    until: float


class KeyRing:
    """The sandbox's signing keys: one for TIPs, one (plus retired ones) per user pool.

    Keys are created on first use. A user pool's algorithm is RS256 unless a rotation chose
    another one; the choice sticks for later rotations.
    """

    def __init__(self) -> None:
        self._tip: SigningKey | None = None
        self._user_pools: dict[str, SigningKey] = {}
        self._algorithms: dict[str, str] = {}
        self._retired: dict[str, list[_Retired]] = {}

    @property
    def tip(self) -> SigningKey:
        """The key that signs every workload access token (TIP)."""
        if self._tip is None:
            self._tip = SigningKey(f"tip-{secrets.token_hex(4)}")
        return self._tip

    def user_pool(self, uid: str) -> SigningKey:
        """The key that currently signs a user pool's id_tokens."""
        key = self._user_pools.get(uid)
        if key is None:
            key = self._new_key(uid, self._algorithms.get(uid, "RS256"))
            self._user_pools[uid] = key
        return key

    def user_pool_keys(self, uid: str, now: float) -> list[SigningKey]:
        """The keys a user pool publishes: the current one first, then unexpired retired ones.

        Args:
            uid: The pool uid.
            now: The wall-clock time; retired keys past their grace period are dropped.
        """
        retired = [r for r in self._retired.get(uid, []) if r.until > now]
        self._retired[uid] = retired
        return [self.user_pool(uid), *(r.key for r in retired)]

    def user_pool_key(self, uid: str, kid: str | None, now: float) -> SigningKey | None:
        """The published key of a user pool with this ``kid`` (the current one when None)."""
        if kid is None:
            return self.user_pool(uid)
        return next((k for k in self.user_pool_keys(uid, now) if k.kid == kid), None)

    def rotate_user_pool(
        self, uid: str, *, alg: str | None = None, retire_until: float | None = None
    ) -> SigningKey:
        """Replace a user pool's signing key with a new one (a new ``kid``).

        Args:
            uid: The pool uid.
            alg: The new key's algorithm (RS256 or ES256); default: the pool's current one.
            retire_until: Keep publishing the old key until this wall-clock time; None drops
                it at once, so tokens it signed stop verifying.

        Returns:
            The new current key.

        Raises:
            ValueError: ``alg`` is not supported.
        """
        old = self._user_pools.get(uid)
        chosen = alg or self._algorithms.get(uid, "RS256")
        key = self._new_key(uid, chosen)
        self._algorithms[uid] = chosen
        self._user_pools[uid] = key
        if old is not None and retire_until is not None:
            self._retired.setdefault(uid, []).insert(0, _Retired(old, retire_until))
        return key

    @staticmethod
    def _new_key(uid: str, alg: str) -> SigningKey:
        return SigningKey(f"{uid}-{alg.lower()}-{secrets.token_hex(4)}", alg)
