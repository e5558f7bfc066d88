"""The login broker's values, messages, and the typed client callers use.

Callers never build these envelopes: they hold a :class:`LoginBrokerClient`
(``LoginBrokerClient(broker.address)``) and call its methods. What they get back are values:
a :class:`PendingLogin`, or a :class:`LoginRefused` saying why a ``state`` cannot complete a
login (:class:`RefusalReason`). The envelopes are internal to the process and never
serialised; secrets (``nonce``, ``code_verifier``) never appear in a ``repr``. The actor and
its rules are :mod:`agent_identity.actors.login_broker`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from agent_identity.kernel import Address, Request

__all__ = [
    "Begin",
    "Discard",
    "GetStatistics",
    "LoginBrokerClient",
    "LoginBrokerMsg",
    "LoginBrokerStatistics",
    "LoginRefused",
    "PendingLogin",
    "RefusalReason",
    "Sweep",
    "Take",
]


class RefusalReason(enum.Enum):
    """Why :meth:`LoginBrokerClient.take` refused a ``state``."""

    #: Never issued by this broker, malformed, or forgotten long ago.
    UNKNOWN = "unknown"
    #: Issued, but older than the TTL.
    EXPIRED = "expired"
    #: Already taken once: a replayed callback.
    USED = "used"
    #: Evicted by newer logins (the per-session or the overall bound).
    SUPERSEDED = "superseded"


_REFUSAL_MESSAGES: Mapping[RefusalReason, str] = {
    RefusalReason.UNKNOWN: "This login link is not valid. Start a new login with /identity login.",
    RefusalReason.EXPIRED: "This login link has expired. Start a new login with /identity login.",
    RefusalReason.USED: "This login link was already used. Start a new login with /identity login.",
    RefusalReason.SUPERSEDED: (
        "This login link was replaced by a newer one. Use the latest link, or start a new "
        "login with /identity login."
    ),
}


@dataclass(frozen=True, slots=True)
class LoginRefused:
    """A ``state`` that cannot complete a login, and why."""

    reason: RefusalReason

    @property
    def message(self) -> str:
        """A sentence safe to show the user."""
        return _REFUSAL_MESSAGES[self.reason]


@dataclass(frozen=True, slots=True)
class PendingLogin:
    """A login waiting for its callback."""

    #: The OAuth ``state`` (the key of the login).
    state: str
    #: The effective session key the login is for.
    session_key: str
    #: The ``nonce`` sent in the authorize URL; the id_token must carry it.
    nonce: str = field(repr=False)
    #: The PKCE ``code_verifier`` for the token request.
    code_verifier: str = field(repr=False)
    #: When it was begun (Trio's clock).
    created_at: float
    #: When it expires (Trio's clock).
    expires_at: float
    #: Opaque values the caller wants back on completion (e.g. where to send a notice).
    context: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LoginBrokerStatistics:
    """Counters of a :class:`~agent_identity.actors.login_broker.LoginBroker` run."""

    #: Pending logins right now.
    pending: int
    #: Session keys with at least one pending login.
    sessions: int
    #: Finished logins whose reason is remembered (for refusals).
    remembered: int
    #: Logins begun.
    begun: int
    #: Logins taken successfully.
    taken: int
    #: Takes refused, by reason value.
    refused: Mapping[str, int]
    #: Logins dropped because they expired (by a sweep or a late take).
    expired: int
    #: Logins evicted by the bounds.
    evicted: int


# --------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class Begin(Request[str]):
    """Record a pending login; answers its ``state``."""

    session_key: str
    nonce: str = field(repr=False)
    code_verifier: str = field(repr=False)
    state: str | None = None
    context: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Take(Request[PendingLogin | LoginRefused]):
    """Remove and answer the pending login of ``state``, or why it cannot be had."""

    state: str


@dataclass(frozen=True, slots=True)
class Discard(Request[int]):
    """Drop every pending login of a session key (logout); answers how many."""

    session_key: str


@dataclass(frozen=True, slots=True)
class GetStatistics(Request[LoginBrokerStatistics]):
    """Answer the broker's counters."""


@dataclass(frozen=True, slots=True)
class Sweep:
    """Drop expired logins and forgotten refusals.

    Sent by :class:`~agent_identity.actors.login_broker.LoginSweeper`.
    """


LoginBrokerMsg = Begin | Take | Discard | GetStatistics | Sweep


# ---------------------------------------------------------------------------- client


class LoginBrokerClient:
    """Typed access to a :class:`~agent_identity.actors.login_broker.LoginBroker`.

    Callers never see envelopes.

    Args:
        address: The broker's address.
    """

    def __init__(self, address: Address[LoginBrokerMsg]) -> None:
        self._address = address

    async def begin(
        self,
        session_key: str,
        *,
        nonce: str,
        code_verifier: str,
        state: str | None = None,
        context: Mapping[str, str] | None = None,
    ) -> str:
        """Record a pending login and return its ``state``.

        Args:
            session_key: The effective session key the login is for.
            nonce: The id_token ``nonce``.
            code_verifier: The PKCE verifier.
            state: The ``state`` to use (e.g. from the OIDC client's login secrets); by
                default the broker generates 256 random bits.
            context: Values to hand back with the login on completion.

        Raises:
            ValueError: ``state`` is empty, too long, or in use (pending or recently
                finished).
            ActorStopped: The broker is not running.
        """
        return await self._address.ask(
            Begin, session_key, nonce, code_verifier, state, dict(context or {})
        )

    async def take(self, state: str) -> PendingLogin | LoginRefused:
        """Remove and return the pending login of ``state``, or why there is none."""
        return await self._address.ask(Take, state)

    async def discard(self, session_key: str) -> int:
        """Drop every pending login of a session key; return how many there were."""
        return await self._address.ask(Discard, session_key)

    async def statistics(self) -> LoginBrokerStatistics:
        """Return the broker's counters."""
        return await self._address.ask(GetStatistics)
