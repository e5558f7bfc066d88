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
import json
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import msgspec

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


class DelegationChain(msgspec.Struct, frozen=True, gc=False):
    """The agents acting for the user, outermost (current agent) first.

    Iterating, ``len()`` and indexing work on :attr:`actors`. Immutable, and never tracked
    by the garbage collector (see :class:`TipClaims`): :attr:`actors` must be a tuple of
    ``str`` (anything else raises :class:`TypeError`).
    """

    #: The ``act.sub`` values, from the top-level ``act`` down to the deepest one.
    actors: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _require_texts("DelegationChain", "actors", self.actors)

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


class TipClaims(msgspec.Struct, frozen=True, gc=False):
    """The claims of a TIP that this project uses.

    **Never tracked by the garbage collector.** The TIP refresher caches one per logged-in
    session, so every full collection would otherwise visit (with the raw claims dict and
    its ``aud`` list) several objects per session: 100k sessions made each full collection
    pause the process for hundreds of milliseconds. A ``gc=False`` object that ends up in a
    reference cycle is never freed, so the fields hold only what cannot refer back to
    anything: exact ``str``, ``int``, ``bytes``, ``None``, tuples of ``str`` and a
    :class:`DelegationChain` (itself the same). Construction checks it (:class:`TypeError`
    otherwise), and the object is frozen, so a ``TipClaims`` can never be part of a cycle.
    The raw claims are kept as the payload's JSON bytes and decoded on demand
    (:attr:`claims`).

    Equality, hashing and ``repr`` leave :attr:`payload` out: they go by the claims read
    into fields only.
    """

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
    #: The token's payload as signed: the JSON text of every claim (what :attr:`claims`
    #: decodes). Never secret, but not shown by ``repr`` and not compared.
    payload: bytes = b"{}"

    def __post_init__(self) -> None:
        _require("TipClaims", "sub", self.sub, str)
        _require("TipClaims", "chain", self.chain, DelegationChain)
        _require("TipClaims", "iss", self.iss, str, _NONE)
        _require_texts("TipClaims", "aud", self.aud)
        _require("TipClaims", "iat", self.iat, int, _NONE)
        _require("TipClaims", "exp", self.exp, int, _NONE)
        _require("TipClaims", "payload", self.payload, bytes)

    def __eq__(self, other: object) -> bool:
        if type(other) is not TipClaims:
            return NotImplemented
        return self._compared() == other._compared()

    def __hash__(self) -> int:
        return hash(self._compared())

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in self._shown())
        return f"TipClaims({shown})"

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        """What ``rich`` shows: the fields ``repr`` shows."""
        return self._shown()

    def _compared(self) -> tuple[object, ...]:
        return (self.sub, self.chain, self.iss, self.aud, self.iat, self.exp)

    def _shown(self) -> list[tuple[str, Any]]:
        return [
            ("sub", self.sub),
            ("chain", self.chain),
            ("iss", self.iss),
            ("aud", self.aud),
            ("iat", self.iat),
            ("exp", self.exp),
        ]

    @property
    def claims(self) -> Mapping[str, Any]:
        """Every claim as decoded (for diagnostics; never secret, but not shown by ``repr``).

        Decoded from :attr:`payload` on each access, into a new dict: kept decoded, the
        nested ``act`` dict would make the garbage collector track it.
        """
        claims: dict[str, Any] = json.loads(self.payload)
        return claims

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


_NONE = type(None)


def _require(owner: str, name: str, value: object, *kinds: type) -> None:
    """Refuse a field value an untracked object may not hold (see :class:`TipClaims`).

    Exact types only: an instance of a subclass (of ``str``, say) may carry attributes,
    which could refer back to the object and make a cycle the collector never sees.
    """
    if type(value) not in kinds:
        wanted = " or ".join("None" if kind is _NONE else kind.__name__ for kind in kinds)
        raise TypeError(f"{owner}.{name} must be {wanted}, not {type(value).__name__}")


def _require_texts(owner: str, name: str, value: object) -> None:
    """Refuse anything but a tuple of exact ``str`` (see :func:`_require`)."""
    if type(value) is not tuple or not all(type(item) is str for item in value):
        raise TypeError(f"{owner}.{name} must be a tuple of str")


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
    # PyJWT (and cryptography.x509 with it) is imported on the first TIP, not at the start
    # of serve (import time).
    import jwt  # noqa: PLC0415
    from jwt.utils import base64url_decode  # noqa: PLC0415

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
        # What PyJWT just parsed: a decoded token has a base64url payload segment (a b64=false
        # header needs a detached payload, which is never given), and the claims are its JSON.
        payload=base64url_decode(token.split(".", 2)[1]),
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
