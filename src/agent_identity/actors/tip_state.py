"""The TIP refresher's in-memory state: cached TIPs, flights, subagent links, the timer heap.

Internal to the TIP refresher (:mod:`agent_identity.actors.tip_refresher` and the helpers it
owns: :mod:`~agent_identity.actors.tip_flights`, :mod:`~agent_identity.actors.tip_obtain`,
:mod:`~agent_identity.actors.tip_timer`); only the refresher's own tasks (the mailbox loop, the
timer, the flights) and ``TipRefresher.get_tip_nowait`` touch a :class:`RunState`, and every
touch is synchronous, so each of them sees the state between two whole changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, final

import msgspec
import trio

from agent_identity.actors.tip_messages import NoTip, TipInfo, TipOutcome, TipSummary
from agent_identity.actors.tip_schedule import TimerHeap
from agent_identity.authz.tip_claims import TipClaims
from agent_identity.kernel import Reply

__all__ = [
    "MAX_LINK_DEPTH",
    "Backoff",
    "CachedTip",
    "Flight",
    "Link",
    "Minted",
    "RunState",
    "Waiter",
    "answer",
]

#: The deepest chain of subagent links.
MAX_LINK_DEPTH = 16


class CachedTip(msgspec.Struct, eq=False):
    """A cached TIP and what the refresher knows about it (wall-clock times).

    **Not tracked by the garbage collector** while it holds only strings, numbers, ``None``
    and its :class:`~agent_identity.authz.tip_claims.TipClaims` (never tracked): msgspec
    keeps a struct out of the collector's lists until a field is given a value the
    collector tracks, so the cached TIPs of 100k sessions add no objects to the walk of
    every full collection. A cycle through one is still collected: assigning a tracked
    value (a list, an exception) makes msgspec track the struct at once.
    ``tests/actors/test_tip_simulated.py`` checks the refresher's entries stay untracked.
    """

    key: str
    token: str
    claims: TipClaims
    workload: str | None
    agent_id: str | None
    parent_key: str | None
    received_at: float
    expires_at: float
    refresh_at: float
    last_used: float
    failures: int = 0
    last_error: str | None = None
    #: ``GET /token``'s answer for this TIP, encoded on its first request (bytes: untracked).
    token_body: bytes | None = None

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in self._shown())
        return f"CachedTip({shown})"

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        """What ``rich`` shows: the fields ``repr`` shows (never the token)."""
        return self._shown()

    def _shown(self) -> list[tuple[str, Any]]:
        hidden = ("token", "token_body")
        return [
            (name, getattr(self, name)) for name in self.__struct_fields__ if name not in hidden
        ]

    def info(self, *, cached: bool) -> TipInfo:
        """The TIP as callers get it."""
        return TipInfo(
            session_key=self.key,
            token=self.token,
            sub=self.claims.sub,
            chain=self.claims.chain,
            workload=self.workload,
            issued_at=None if self.claims.iat is None else float(self.claims.iat),
            expires_at=self.expires_at,
            refresh_at=self.refresh_at,
            parent_key=self.parent_key,
            cached=cached,
            claims=self.claims,
        )

    def summary(self, *, include_token: bool) -> TipSummary:
        """The TIP as ``list-tips`` shows it (the token only when asked for)."""
        return TipSummary(
            session_key=self.key,
            sub=self.claims.sub,
            chain=self.claims.chain,
            workload=self.workload,
            issued_at=None if self.claims.iat is None else float(self.claims.iat),
            expires_at=self.expires_at,
            refresh_at=self.refresh_at,
            parent_key=self.parent_key,
            failures=self.failures,
            last_error=self.last_error,
            token=self.token if include_token else None,
        )


@dataclass(slots=True, eq=False)
class Waiter:
    """A caller parked on a flight; ``stale_ok``: a still-servable cached TIP will do."""

    reply: Reply[TipOutcome]
    stale_ok: bool


@dataclass(slots=True, eq=False)
class Flight:
    """One mint in progress for a session, shared by all its askers."""

    key: str
    agent_id: str | None
    workload: str | None
    parent_key: str | None
    background: bool
    waiters: list[Waiter] = field(default_factory=list)
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    ended: bool = False


@dataclass(slots=True, eq=False)
class Link:
    """A subagent session's parent (and the subagent's agent id)."""

    parent_key: str
    agent_id: str | None


@dataclass(frozen=True, slots=True)
class Backoff:
    """A session whose last mint failed and left no servable TIP: the miss back-off.

    Until :attr:`until`, asks for the session that would take a cached TIP get
    :attr:`outcome` at once instead of starting a mint (see ``RefreshPolicy.miss_backoff``).
    """

    #: Consecutive failed mints of the session.
    failures: int
    #: The end of the window, on Trio's clock.
    until: float
    #: The last failure, answered meanwhile.
    outcome: NoTip


@dataclass(frozen=True, slots=True)
class Minted:
    """A freshly minted, checked, servable TIP."""

    token: str = field(repr=False)
    claims: TipClaims
    expires_at: float


@final
class RunState:
    """The state of one run; only the refresher's own tasks touch it, synchronously."""

    __slots__ = (
        "background",
        "backoff",
        "dead",
        "entries",
        "flights",
        "links",
        "reported",
        "timers",
        "wake",
    )

    def __init__(self) -> None:
        self.entries: dict[str, CachedTip] = {}
        self.flights: dict[str, Flight] = {}
        self.links: dict[str, Link] = {}
        #: Session key -> (fingerprint of a user token known not to mint, why).
        self.dead: dict[str, tuple[str, str]] = {}
        #: Session key -> its miss back-off, after a failed mint left no servable TIP.
        self.backoff: dict[str, Backoff] = {}
        #: Session key -> the logout reason last logged at INFO (repeats go to DEBUG).
        self.reported: dict[str, str] = {}
        self.timers = TimerHeap()
        #: Set to wake the timer task (earlier due time, or a background slot freed).
        self.wake = trio.Event()
        self.background = 0

    def drop(self, key: str) -> None:
        """Forget the cached TIP of ``key`` and unschedule its refresh."""
        self.entries.pop(key, None)
        self.timers.cancel(key)

    def schedule(self, key: str, delay: float) -> None:
        """Schedule the refresh of ``key`` ``delay`` seconds from now, on Trio's clock."""
        if self.timers.schedule(key, trio.current_time() + delay):
            self.wake.set()  # the timer task sleeps until the earliest due time: now this one

    def children(self, key: str) -> list[str]:
        """The subagent sessions linked directly to ``key``."""
        return [child for child, link in self.links.items() if link.parent_key == key]

    def descendants(self, key: str) -> Iterator[str]:
        """Every subagent session below ``key``, at any depth."""
        pending = self.children(key)
        seen: set[str] = set()
        while pending:
            child = pending.pop()
            if child not in seen:
                seen.add(child)
                yield child
                pending.extend(self.children(child))

    def ancestors(self, key: str) -> list[str]:
        """The parents of ``key``, nearest first (at most ``MAX_LINK_DEPTH + 1``)."""
        found: list[str] = []
        link = self.links.get(key)
        while link is not None and link.parent_key not in found and len(found) <= MAX_LINK_DEPTH:
            found.append(link.parent_key)
            link = self.links.get(link.parent_key)
        return found


def answer(waiters: list[Waiter], outcome: TipOutcome) -> None:
    """Answer every waiter with ``outcome``."""
    for waiter in waiters:
        waiter.reply.set(outcome)
