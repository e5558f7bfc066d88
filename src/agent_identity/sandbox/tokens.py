"""TIPs (workload access tokens) and user-pool id_tokens: minting, checking, discovery.

A TIP is an RS256 JWT from ``<base>/workloadpool/<pool id>`` whose ``sub`` is the end user and
whose ``act`` chain (RFC 8693) gains one level per exchange: the top-level ``act.sub`` is the
workload that asked, the incoming token's ``act`` nests under it. Every pool publishes an OIDC
discovery document and a JWKS so clients can verify TIPs exactly as in production.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jwt

from agent_identity.sandbox.keys import SigningKey, jwks, unverified_claims, unverified_header
from agent_identity.sandbox.secrets import record_secret
from agent_identity.sandbox.state import SandboxState, UserPool, WorkloadPool

__all__ = [
    "MintedToken",
    "TokenError",
    "VerifiedToken",
    "issue_id_token",
    "mint_tip",
    "rotate_user_pool_key",
    "verify_tip",
    "verify_user_token",
    "workload_pool_document",
]


class TokenError(ValueError):
    """A token the sandbox does not accept; the message says why (expired, signature, ...)."""


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """A checked incoming token: its claims, and whether it is a TIP or a user id_token."""

    claims: dict[str, Any]
    kind: str
    user_pool: UserPool | None = None

    @property
    def sub(self) -> str:
        """The end user."""
        return str(self.claims["sub"])


@dataclass(frozen=True, slots=True)
class MintedToken:
    """A freshly minted token and its expiry (wall-clock seconds)."""

    token: str
    expires_at: float


def _check(
    key: SigningKey, token: str, issuer: str, audience: Sequence[str] | None, now: float
) -> dict[str, Any]:
    try:
        claims = key.verify(token, issuer=issuer, audience=audience, now=now)
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("the token has expired") from exc
    except jwt.InvalidAudienceError as exc:
        raise TokenError("the token's audience is not a client of its user pool") from exc
    except jwt.PyJWTError as exc:
        raise TokenError(f"the token does not verify: {exc}") from exc
    return claims


def _issuer_of(token: str) -> str:
    try:
        iss = unverified_claims(token).get("iss")
    except jwt.PyJWTError as exc:
        raise TokenError(f"not a JWT: {exc}") from exc
    if not isinstance(iss, str):
        raise TokenError("the token has no issuer")
    return iss


def verify_tip(state: SandboxState, token: str) -> VerifiedToken:
    """Check that a token is a live TIP minted by this sandbox.

    Raises:
        TokenError: It is not.
    """
    iss = _issuer_of(token)
    pool = next((p for p in state.workload_pools.values() if state.tip_issuer(p) == iss), None)
    if pool is None:
        raise TokenError(f"the issuer {iss!r} is not a workload pool of this service")
    claims = _check(state.keys.tip, token, iss, None, state.now())
    return VerifiedToken(claims, "tip")


def verify_user_token(state: SandboxState, token: str) -> VerifiedToken:
    """Check a ``UserToken``: a user pool id_token, or a TIP of this sandbox.

    An id_token must be signed by its user pool's key, carry the pool's exact issuer, be
    unexpired, and have an ``aud`` that is one of the pool's clients.

    Raises:
        TokenError: The token is neither.
    """
    iss = _issuer_of(token)
    for pool in state.user_pools.values():
        if state.user_pool_issuer(pool) == iss:
            kid = unverified_header(token).get("kid")
            key = state.keys.user_pool_key(
                pool.uid, kid if isinstance(kid, str) else None, state.now()
            )
            if key is None:
                raise TokenError("the token is signed by an unknown or retired key")
            claims = _check(key, token, iss, list(pool.clients), state.now())
            return VerifiedToken(claims, "id_token", pool)
    return verify_tip(state, token)


def mint_tip(
    state: SandboxState,
    pool: WorkloadPool,
    workload: str,
    incoming: VerifiedToken,
    *,
    audience: Sequence[str] | None,
    duration: int,
) -> MintedToken:
    """Mint a TIP for ``workload`` acting for the incoming token's user.

    Args:
        state: The sandbox state.
        pool: The workload pool (names the issuer).
        workload: The workload name; becomes the top-level ``act.sub``.
        incoming: The checked user token; its ``sub`` is kept, its ``act`` nested.
        audience: The requested audiences; default: the issuer itself.
        duration: The requested lifetime; capped at the incoming token's remaining lifetime.

    Returns:
        The token and its expiry.
    """
    now = int(state.now())
    issuer = state.tip_issuer(pool)
    expires = min(now + duration, int(incoming.claims["exp"]))
    act: dict[str, Any] = {"sub": workload}
    previous = incoming.claims.get("act")
    if isinstance(previous, Mapping):
        act["act"] = dict(previous)
    claims = {
        "iss": issuer,
        "sub": incoming.sub,
        "aud": list(audience) if audience else [issuer],
        "iat": now,
        "exp": expires,
        "act": act,
        "jti": secrets.token_hex(8),
    }
    token = state.keys.tip.sign(claims)
    record_secret(token)
    return MintedToken(token, float(expires))


def issue_id_token(
    state: SandboxState,
    pool: UserPool,
    sub: str,
    *,
    client_id: str | None = None,
    ttl: int = 3600,
    extra_claims: Mapping[str, Any] | None = None,
) -> str:
    """Issue an OIDC id_token as the user pool would.

    Args:
        state: The sandbox state.
        pool: The user pool whose key signs.
        sub: The user's subject.
        client_id: The ``aud``; default: the pool's first client.
        ttl: Lifetime in seconds (negative for an already expired token).
        extra_claims: More claims, merged last (they may override).

    Returns:
        The compact JWT.

    Raises:
        ValueError: The pool has no client and none was named.
    """
    if client_id is None:
        if not pool.clients:
            raise ValueError(f"user pool {pool.name!r} has no client to be the audience")
        client_id = next(iter(pool.clients))
    now = int(state.now())
    claims: dict[str, Any] = {
        "iss": state.user_pool_issuer(pool),
        "sub": sub,
        "aud": client_id,
        "iat": now,
        "auth_time": now,
        "exp": now + ttl,
    }
    user = next((u for u in pool.users.values() if u.sub == sub), None)
    if user is not None:
        claims["preferred_username"] = user.username
        if user.email:
            claims["email"] = user.email
            claims["email_verified"] = True
        if user.name:
            claims["name"] = user.name
    claims.update(extra_claims or {})
    token = state.keys.user_pool(pool.uid).sign(claims)
    record_secret(token)
    return token


def rotate_user_pool_key(
    state: SandboxState,
    user_pool: str,
    *,
    alg: str | None = None,
    grace_seconds: float | None = 3600.0,
) -> str:
    """Give a user pool a new signing key (a new ``kid``), optionally switching algorithm.

    Args:
        state: The sandbox state.
        user_pool: The pool's name or uid.
        alg: ``RS256`` or ``ES256``; default: keep the pool's algorithm.
        grace_seconds: How long the old key stays in the JWKS (and keeps verifying); None or
            0 drops it at once, so a relying party that cached it sees only the new ``kid``.

    Returns:
        The new key's ``kid``.

    Raises:
        KeyError: No such user pool.
        ValueError: ``alg`` is not supported.
    """
    pool = state.user_pool(user_pool)
    if pool is None:
        raise KeyError(f"no user pool named or with uid {user_pool!r}")
    until = state.now() + grace_seconds if grace_seconds else None
    return state.keys.rotate_user_pool(pool.uid, alg=alg, retire_until=until).kid


def workload_pool_document(state: SandboxState, pool_id: str, tail: str) -> dict[str, Any] | None:
    """Serve ``/workloadpool/<id>/.well-known/openid-configuration`` and ``.../keys``.

    Returns:
        The JSON document, or None when the pool or path is unknown.
    """
    pool = state.pool_by_id(pool_id)
    if pool is None:
        return None
    issuer = state.tip_issuer(pool)
    if tail == ".well-known/openid-configuration":
        return {
            "issuer": issuer,
            "jwks_uri": f"{issuer}/keys",
            "id_token_signing_alg_values_supported": ["RS256"],
            "subject_types_supported": ["public"],
            "response_types_supported": ["token"],
            "claims_supported": ["iss", "sub", "aud", "iat", "exp", "act", "jti"],
        }
    if tail == "keys":
        return jwks([state.keys.tip])
    return None
