"""The TIP refresher's answers, statistics, envelopes, and the typed client callers use.

Callers hold a :class:`TipRefresherClient` (``TipRefresherClient(refresher.address)``) and get
values back, never exceptions, for every expected outcome:

* :class:`TipInfo`: a TIP that may be used now (never an expired one), with its claims;
* :class:`NoTip`: no TIP, and why (:attr:`NoTip.code` for code, :attr:`NoTip.reason` for
  people); :class:`LoggedOut` is the :class:`NoTip` of a session whose user token can no
  longer mint (expired or revoked, and not renewable): the user must log in again.

Tokens never appear in a ``repr``; :meth:`TipRefresherClient.list_tips` leaves them out unless
asked. The envelopes are internal to the process and never serialised.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from agent_identity.authz.tip_claims import DelegationChain, TipClaims
from agent_identity.kernel import ActorStatistics, Address, Request

__all__ = [
    "FlushTips",
    "ForgetTip",
    "GetStatistics",
    "GetTip",
    "ListTips",
    "LoggedOut",
    "NoTip",
    "NoTipCode",
    "PeekTip",
    "Propagate",
    "TipInfo",
    "TipOutcome",
    "TipRefresherClient",
    "TipRefresherMsg",
    "TipRefresherStatistics",
    "TipSummary",
]

NoTipCode = Literal[
    "no_session",
    "logged_out",
    "unavailable",
    "not_cached",
    "propagation_disabled",
    "invalid_link",
]
"""Why there is no TIP:

* ``no_session``: no user is logged in for the session (or it was logged out meanwhile);
* ``logged_out``: the user token can no longer mint and could not be renewed (:class:`LoggedOut`);
* ``unavailable``: the control plane or the session store failed; try again later;
* ``not_cached``: :meth:`TipRefresherClient.peek` found no servable TIP in the cache;
* ``propagation_disabled``: ``subagentTipPropagation`` is off;
* ``invalid_link``: a propagation that would make a session its own ancestor.
"""


@dataclass(frozen=True, slots=True)
class TipInfo:
    """A servable TIP of a session: at least ``serve_margin`` seconds before its expiry."""

    #: The session key it belongs to.
    session_key: str
    #: The compact JWS (secret; hidden from ``repr``).
    token: str = field(repr=False)
    #: The end user (``sub``).
    sub: str
    #: The agents acting for the user, outermost (current) first.
    chain: DelegationChain
    #: The workload name it was minted for; None when the role name was used.
    workload: str | None
    #: ``iat``, epoch seconds, when the TIP has one.
    issued_at: float | None
    #: ``exp``, epoch seconds (wall clock).
    expires_at: float
    #: When the refresher will refresh it, epoch seconds (None if not scheduled).
    refresh_at: float | None
    #: For a subagent session: the session whose TIP it was minted from.
    parent_key: str | None
    #: Whether it came from the cache (False: minted for this request).
    cached: bool
    #: All its claims, decoded once when it was minted (shared with the cache).
    claims: TipClaims = field(repr=False, compare=False)

    def expires_in(self, now: float) -> float:
        """Seconds until expiry at wall-clock ``now``."""
        return self.expires_at - now


@dataclass(frozen=True, slots=True)
class NoTip:
    """No TIP for the session; :attr:`code` says why, :attr:`reason` explains (safe to show)."""

    #: A sentence for people; never contains a token.
    reason: str
    #: Why, for code.
    code: NoTipCode = "unavailable"


@dataclass(frozen=True, slots=True)
class LoggedOut(NoTip):
    """The session's user token can no longer mint (expired or revoked, not renewable)."""

    code: NoTipCode = "logged_out"


TipOutcome = TipInfo | NoTip
"""What :meth:`TipRefresherClient.get_tip` and friends answer."""


@dataclass(frozen=True, slots=True)
class TipSummary:
    """One cached, servable TIP, as ``list-tips`` shows it."""

    session_key: str
    sub: str
    chain: DelegationChain
    workload: str | None
    issued_at: float | None
    expires_at: float
    #: When it will be refreshed (epoch seconds), if scheduled.
    refresh_at: float | None
    parent_key: str | None
    #: Consecutive failed refreshes (the TIP is still served until it expires).
    failures: int
    #: The last refresh error, if the last refresh failed.
    last_error: str | None
    #: The token itself, only when asked for (``include_tokens=True``).
    token: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class TipRefresherStatistics:
    """A snapshot of the TIP refresher, for ``/status``, ``ctl status`` and metrics."""

    #: The kernel's view of the actor (mailbox depth, handled, restarts, ...).
    actor: ActorStatistics
    #: TIPs in the cache (servable or not yet dropped).
    cached: int
    #: ``get_tip`` answered from the cache.
    hits: int
    #: ``get_tip`` that needed a mint (or joined one).
    misses: int
    #: Successful mints, of any kind.
    mints: int
    #: Successful mints that replaced a cached TIP (proactive or forced refreshes).
    refreshes: int
    #: Failed mints (control plane or store unavailable, unusable answers).
    failures: int
    #: Mints that found the user logged out.
    logged_out: int
    #: Asks answered with the last failure during a session's back-off, without a mint.
    held_back: int
    #: User tokens renewed with a refresh token.
    renewals: int
    #: Sessions with a refresh (or retry) scheduled on the timer heap.
    scheduled: int
    #: Mints in flight (each shared by all its askers).
    in_flight: int
    #: Of those, the ones the timer started.
    background_in_flight: int
    #: Subagent sessions linked to a parent.
    linked: int
    #: Timer tasks running: 1 while the refresher runs, however many sessions it holds.
    timer_tasks: int


@dataclass(frozen=True, slots=True)
class GetTip(Request[TipOutcome]):
    """A servable TIP for the session; ``force`` mints a new one even on a cache hit."""

    session_key: str
    agent_id: str | None = None
    force: bool = False


@dataclass(frozen=True, slots=True)
class PeekTip(Request[TipOutcome]):
    """The cached TIP if servable; never mints."""

    session_key: str


@dataclass(frozen=True, slots=True)
class ListTips(Request[list[TipSummary]]):
    """Every cached servable TIP, sorted by session key."""

    include_tokens: bool = False


@dataclass(frozen=True, slots=True)
class Propagate(Request[TipOutcome]):
    """Link ``child_key`` to ``parent_key`` and mint the child's TIP from the parent's."""

    parent_key: str
    child_key: str
    agent_id: str | None = None


@dataclass(frozen=True, slots=True)
class ForgetTip(Request[bool]):
    """Drop the session's TIP, its schedule, its subagent links (a logout)."""

    session_key: str


@dataclass(frozen=True, slots=True)
class FlushTips(Request[int]):
    """Drop every cached TIP and schedule (``ctl flush-tips``)."""


@dataclass(frozen=True, slots=True)
class GetStatistics(Request[TipRefresherStatistics]):
    """The refresher's statistics."""


TipRefresherMsg = GetTip | PeekTip | ListTips | Propagate | ForgetTip | FlushTips | GetStatistics


class TipFastPath(Protocol):
    """What a refresher serves synchronously in the caller's task (cache hits only)."""

    def get_tip_nowait(self, session_key: str) -> TipInfo | None:
        """What ``GetTip`` answers from the cache, if it can; ``None`` otherwise."""

    def token_body_nowait(
        self, session_key: str, encode: Callable[[TipInfo], bytes]
    ) -> bytes | None:
        """The cached TIP's encoded ``/token`` body, if it can; ``None`` otherwise."""


class TipRefresherClient:
    """Typed access to a TIP refresher through its address.

    Every method may raise :class:`~agent_identity.kernel.ActorStopped` (the refresher is not
    running, or stopped before answering) and :class:`~agent_identity.kernel.DeadlineExceeded`.
    Expected outcomes are values (:class:`TipInfo`, :class:`NoTip`, :class:`LoggedOut`).

    Args:
        address: The refresher's address (``refresher.address``).
        fast: The refresher's synchronous cache-hit paths (the refresher itself); without
            them the ``*_nowait`` methods always answer ``None``.
    """

    __slots__ = ("_address", "_fast")

    def __init__(
        self, address: Address[TipRefresherMsg], *, fast: TipFastPath | None = None
    ) -> None:
        self._address = address
        self._fast = fast

    def __repr__(self) -> str:
        return f"<TipRefresherClient of {self._address.name!r}>"

    async def get_tip(self, session_key: str, *, agent_id: str | None = None) -> TipOutcome:
        """Return a servable TIP of the session: from the cache, or minted (single-flight).

        Args:
            session_key: The effective session key (or a linked subagent key).
            agent_id: The caller's agent id; names the workload when the config does not.

        Returns:
            The TIP, or why there is none. A refresh that failed while the cached TIP is
            still servable does not matter here: the cached TIP is returned.
        """
        return await self._address.ask(GetTip, session_key, agent_id, False)

    def get_tip_nowait(self, session_key: str) -> TipInfo | None:
        """The session's TIP if the cache has it servable now, in the caller's task.

        Answers what :meth:`get_tip` would answer from the cache, without waiting; ``None``
        means "ask :meth:`get_tip`" (a miss, a restart, a client without the fast path).
        """
        return None if self._fast is None else self._fast.get_tip_nowait(session_key)

    def token_body_nowait(
        self, session_key: str, encode: Callable[[TipInfo], bytes]
    ) -> bytes | None:
        """``GET /token``'s body from the cache: ``encode(tip)``, made once per TIP.

        ``None`` means "ask :meth:`get_tip`", as for :meth:`get_tip_nowait`.
        """
        return None if self._fast is None else self._fast.token_body_nowait(session_key, encode)

    async def refresh(self, session_key: str, *, agent_id: str | None = None) -> TipOutcome:
        """Mint a new TIP now (``login`` of a logged-in user), sharing a mint in flight.

        Returns:
            The new TIP, or why none could be minted (the cached one, if any, stays cached
            and served until it expires).
        """
        return await self._address.ask(GetTip, session_key, agent_id, True)

    async def peek(self, session_key: str) -> TipOutcome:
        """Return the cached TIP if it is servable, else ``NoTip(code="not_cached")``."""
        return await self._address.ask(PeekTip, session_key)

    async def list_tips(self, *, include_tokens: bool = False) -> list[TipSummary]:
        """Every cached servable TIP, sorted by session key; tokens only when asked."""
        return await self._address.ask(ListTips, include_tokens)

    async def propagate(
        self, parent_key: str, child_key: str, *, agent_id: str | None = None
    ) -> TipOutcome:
        """Give a subagent session its own TIP, minted from its parent's (one more ``act``).

        The child then inherits the parent's session: :meth:`get_tip` works for it and its TIP
        is refreshed from the parent's. Needs ``subagentTipPropagation``.

        Args:
            parent_key: The spawning session's key.
            child_key: The subagent session's key.
            agent_id: The subagent's agent id (names its workload when the config does not).
        """
        return await self._address.ask(Propagate, parent_key, child_key, agent_id)

    async def forget(self, session_key: str) -> bool:
        """Drop the session's TIP and schedule, and those of its subagents (logout).

        Returns:
            Whether a TIP was cached for the session.
        """
        return await self._address.ask(ForgetTip, session_key)

    async def flush(self) -> int:
        """Drop every cached TIP and its schedule; returns how many were dropped.

        Subagent links survive (a child mints again from its parent on the next demand).
        """
        return await self._address.ask(FlushTips)

    async def statistics(self) -> TipRefresherStatistics:
        """Return the refresher's statistics."""
        return await self._address.ask(GetStatistics)
