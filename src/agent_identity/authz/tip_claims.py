"""Reading a TIP's claims and its delegation chain, without verifying the token.

A TIP (workload access token, spec section 5) is a compact RS256 JWS whose claims say who the
user is (``sub``) and which agents act for them (``act``, RFC 8693 nesting)::

    {"sub": "alice", "act": {"sub": "openclaw-agent", "act": {"sub": "upstream-agent"}}}

The top-level ``act.sub`` is the current agent; deeper levels are earlier callers. The
:class:`DelegationChain` lists them outermost first: ``("openclaw-agent", "upstream-agent")``.

**Why no signature check.** This module only *reads* a TIP this process obtained itself:
``GetWorkloadAccessTokenForJWT`` returned it over TLS from the Identity control plane, signed
with our AK/SK, and the session store kept it since. Its claims are used to display identity
(whoami, status, list-tips) and to *name* the principal and resources of a CheckPermission
call, which the control plane decides. Nothing here grants access on the strength of the
token alone, so verifying the signature against the workload pool's JWKS would add a network
dependency without adding trust. Never use :func:`decode_tip_claims` on a token received from
an untrusted party (e.g. an incoming ``X-Ve-TIP-Token`` header); verify those first.

Malformed input raises :class:`TipClaimsError`, whose message never contains token text.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt

__all__ = [
    "MAX_CHAIN_DEPTH",
    "MAX_TIP_LENGTH",
    "DelegationChain",
    "TipClaims",
    "TipClaimsError",
    "decode_tip_claims",
    "delegation_chain",
]

#: The longest token accepted, in characters (a TIP is a few hundred bytes to a few KiB).
MAX_TIP_LENGTH = 64 * 1024
#: The most ``act`` levels accepted.
MAX_CHAIN_DEPTH = 32


class TipClaimsError(ValueError):
    """A token whose claims cannot be read. The message never contains token text."""


@dataclass(frozen=True, slots=True)
class DelegationChain:
    """The agents acting for the user, outermost (current agent) first.

    Iterating, ``len()`` and indexing work on :attr:`actors`.
    """

    #: The ``act.sub`` values, from the top-level ``act`` down to the deepest one.
    actors: tuple[str, ...] = ()

    @property
    def current(self) -> str | None:
        """The current agent (the top-level ``act.sub``), or ``None`` for an empty chain."""
        return self.actors[0] if self.actors else None

    @property
    def callers(self) -> tuple[str, ...]:
        """The earlier agents (deeper ``act`` levels): CheckPermission's ``OriginalCallers``."""
        return self.actors[1:]

    def __len__(self) -> int:
        return len(self.actors)

    def __iter__(self) -> Iterator[str]:
        return iter(self.actors)

    def __getitem__(self, index: int) -> str:
        return self.actors[index]

    def __str__(self) -> str:
        return " <- ".join(self.actors)

    def to_list(self) -> list[str]:
        """The actors as a JSON-friendly list (``tipChain`` in whoami/status)."""
        return list(self.actors)


@dataclass(frozen=True, slots=True)
class TipClaims:
    """The claims of a TIP that this project uses."""

    #: The end user (the user pool ``sub``).
    sub: str
    #: The agents acting for the user, outermost first.
    chain: DelegationChain
    #: The issuer (the workload pool's), or ``None`` when absent.
    iss: str | None = None
    #: The audience, normalised to a tuple (a string ``aud`` becomes one element).
    aud: tuple[str, ...] = ()
    #: Issued-at, seconds since the epoch.
    iat: int | None = None
    #: Expiry, seconds since the epoch.
    exp: int | None = None
    #: Every claim as decoded (for diagnostics; never secret, but not shown by ``repr``).
    claims: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def agent(self) -> str | None:
        """The current agent (the outermost actor), or ``None`` when the TIP has no ``act``."""
        return self.chain.current

    @property
    def issued_at(self) -> dt.datetime | None:
        """``iat`` as an aware UTC datetime."""
        return _datetime(self.iat)

    @property
    def expires_at(self) -> dt.datetime | None:
        """``exp`` as an aware UTC datetime."""
        return _datetime(self.exp)

    def expires_in(self, now: float) -> float | None:
        """Seconds until expiry at wall-clock ``now`` (negative once expired), or ``None``."""
        return None if self.exp is None else self.exp - now

    def is_expired(self, now: float) -> bool:
        """Whether the TIP has expired at wall-clock ``now`` (a TIP with no ``exp`` has not)."""
        return self.exp is not None and self.exp <= now


def _datetime(seconds: int | None) -> dt.datetime | None:
    if seconds is None:
        return None
    try:
        return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    except (OverflowError, OSError, ValueError):
        return None


def decode_tip_claims(token: str) -> TipClaims:
    """Decode a TIP's claims without verifying its signature (see the module docstring).

    Args:
        token: The compact JWS.

    Returns:
        The claims.

    Raises:
        TipClaimsError: The token is not a JWT, its payload is not a JSON object, or a claim
            this project relies on (``sub``, ``act``, ``aud``, ``iat``, ``exp``) has the wrong
            shape. The message names the problem, never the token.
    """
    if not isinstance(token, str):
        raise TipClaimsError("a TIP must be a string")
    token = token.strip()
    if not token:
        raise TipClaimsError("the TIP is empty")
    if len(token) > MAX_TIP_LENGTH:
        raise TipClaimsError(f"the TIP is longer than {MAX_TIP_LENGTH} characters")
    # A compact JWS is ASCII; PyJWT would fail to encode a lone surrogate with a UnicodeError.
    if token.count(".") != 2 or not token.isascii():
        raise TipClaimsError("the TIP is not a compact JWT (header.payload.signature)")
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        # PyJWT's messages are generic, but the token's own pieces must never leak; say why
        # in our words only.
        raise TipClaimsError("the TIP's header or payload is not valid base64url JSON") from None
    if not isinstance(claims, dict):  # pragma: no cover - PyJWT only returns objects
        raise TipClaimsError("the TIP's payload is not a JSON object")
    return TipClaims(
        sub=_subject(claims),
        chain=delegation_chain(claims),
        iss=_optional_text(claims, "iss"),
        aud=_audience(claims),
        iat=_timestamp(claims, "iat"),
        exp=_timestamp(claims, "exp"),
        claims=claims,
    )


def delegation_chain(claims: Mapping[str, Any]) -> DelegationChain:
    """Return the ``act`` nesting of decoded claims as a chain, outermost first.

    Raises:
        TipClaimsError: An ``act`` level is not an object with a non-empty string ``sub``, or
            the nesting is deeper than :data:`MAX_CHAIN_DEPTH`.
    """
    actors: list[str] = []
    act = claims.get("act")
    while act is not None:
        if len(actors) >= MAX_CHAIN_DEPTH:
            raise TipClaimsError(f"the TIP's delegation chain is deeper than {MAX_CHAIN_DEPTH}")
        if not isinstance(act, Mapping):
            raise TipClaimsError(f"the TIP's act claim at depth {len(actors) + 1} is not an object")
        sub = act.get("sub")
        if not isinstance(sub, str) or not sub:
            raise TipClaimsError(
                f"the TIP's act claim at depth {len(actors) + 1} has no string sub"
            )
        actors.append(sub)
        act = act.get("act")
    return DelegationChain(tuple(actors))


def _subject(claims: Mapping[str, Any]) -> str:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise TipClaimsError("the TIP has no string sub claim")
    return sub


def _optional_text(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise TipClaimsError(f"the TIP's {name} claim is not a string")
    return value


def _audience(claims: Mapping[str, Any]) -> tuple[str, ...]:
    aud = claims.get("aud")
    if aud is None:
        return ()
    if isinstance(aud, str):
        return (aud,)
    if isinstance(aud, list) and all(isinstance(item, str) for item in aud):
        return tuple(aud)
    raise TipClaimsError("the TIP's aud claim is not a string or a list of strings")


def _timestamp(claims: Mapping[str, Any], name: str) -> int | None:
    value = claims.get(name)
    if value is None:
        return None
    # bool is an int subclass; a JSON true is no timestamp.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TipClaimsError(f"the TIP's {name} claim is not a number")
    # Python's json accepts NaN, Infinity and integers of any size; a time must fit a float
    # (expires_in subtracts one). NaN fails every comparison, so it fails this one too.
    if not -sys.float_info.max <= value <= sys.float_info.max:
        raise TipClaimsError(f"the TIP's {name} claim is not a finite number")
    return int(value)
