"""The TIP refresher actor: TIPs in memory, single-flight mints, proactive refresh on one timer.

A TIP (workload access token) is minted from a session's user token with
``GetWorkloadAccessTokenForJWT`` and kept **in memory only**::

    minter = IdentityTipMinter.from_config(identity_client, config.identity)
    refresher = TipRefresher(minter, sessions, config=config.identity, renewer=oidc_client)
    ...  # under a supervisor, or: await nursery.start(refresher.run)
    tips = refresher.client
    match await tips.get_tip(session_key, agent_id="main"):
        case TipInfo(token=token, chain=chain): ...
        case LoggedOut(reason=reason): ...  # log in again
        case NoTip(reason=reason): ...

This module is the actor: its mailbox, cache hits, subagent links and the cache's admin
requests. Helpers it owns do the rest, on the state of the current run
(:class:`~agent_identity.actors.tip_state.RunState`):

* **The mailbox never waits for the network.** A cache hit is answered at once (also without
  the mailbox: :meth:`TipRefresher.get_tip_nowait`). A miss starts a *flight*, a task beside
  the mailbox loop, and parks the caller's reply on it; every later asker of the same session
  joins that flight. The flight answers them all when the mint ends
  (:mod:`~agent_identity.actors.tip_flights`: caching, retries while the cached TIP is still
  servable, the miss back-off after failures, logouts).
* **Minting** reads the session's user token, renews it with the refresh token when it is due
  or refused, and remembers a session whose token cannot mint as
  :class:`~agent_identity.actors.tip_messages.LoggedOut`
  (:mod:`~agent_identity.actors.tip_obtain`).
* **Proactive refresh, one timer.** A minted TIP is scheduled for refresh at a jittered
  fraction of its lifetime (:class:`~agent_identity.actors.tip_schedule.RefreshPolicy`); one
  timer task starts the due refreshes, at most ``max_background_mints`` at once
  (:mod:`~agent_identity.actors.tip_timer`).
* **Two clocks** (:mod:`~agent_identity.actors.tip_schedule`). Whether a TIP may be served is
  decided against the injected wall clock at serve time, so an expired TIP is never served,
  whatever the timer did; a serve that finds the TIP's wall-clock refresh instant passed (the
  machine slept, the clock was stepped) starts the refresh at once.
* **Subagents.** With ``subagentTipPropagation``, :meth:`TipRefresherClient.propagate` links a
  child session to its parent; the child's TIP is minted with the parent's TIP as user token
  (one more ``act`` level) and refreshed the same way.

Every change of the run's state, here and in the helpers, is synchronous: the mailbox loop,
the timer and the flights change it only between two checkpoints. That is what lets
:meth:`TipRefresher.get_tip_nowait` serve from the state in its caller's task.

Unexpected exceptions (bugs) crash the actor; its supervisor restarts it with an empty cache
(TIPs are re-obtained on demand) and every waiting caller gets
:class:`~agent_identity.kernel.ActorStopped`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import ClassVar, assert_never, final

import trio

from agent_identity.actors.session_store_messages import SessionStoreClient
from agent_identity.actors.tip_flights import TipFlights
from agent_identity.actors.tip_messages import (
    FlushTips,
    ForgetTip,
    GetStatistics,
    GetTip,
    ListTips,
    LoggedOut,
    NoTip,
    PeekTip,
    Propagate,
    TipInfo,
    TipOutcome,
    TipRefresherClient,
    TipRefresherMsg,
    TipRefresherStatistics,
    TipSummary,
)
from agent_identity.actors.tip_mint import IdentityTipMinter, TipMinter, resolve_workload
from agent_identity.actors.tip_obtain import TipObtainer
from agent_identity.actors.tip_schedule import RefreshPolicy
from agent_identity.actors.tip_session import UserTokenRenewer
from agent_identity.actors.tip_state import (
    MAX_LINK_DEPTH,
    CachedTip,
    Link,
    RunState,
    Waiter,
    answer,
)
from agent_identity.actors.tip_timer import RefreshTimer
from agent_identity.config import IdentityConfig
from agent_identity.kernel import NurseryActor, Reply

__all__ = [
    "IdentityTipMinter",
    "LoggedOut",
    "NoTip",
    "RefreshPolicy",
    "TipInfo",
    "TipMinter",
    "TipRefresher",
    "TipRefresherClient",
    "TipRefresherStatistics",
    "TipSummary",
]

#: Timer-started refreshes running at once; more wait on the heap.
DEFAULT_MAX_BACKGROUND_MINTS = 8
#: The longest a flight may take (Trio seconds) before its askers get ``unavailable``.
DEFAULT_MINT_TIMEOUT = 120.0


@final
class TipRefresher(NurseryActor[TipRefresherMsg]):
    """The TIP refresher actor; see the module docstring.

    Talk to it through ``TipRefresherClient(refresher.address)`` (or :attr:`client`).

    Args:
        minter: Mints TIPs (:class:`~agent_identity.actors.tip_mint.IdentityTipMinter`).
        sessions: The session store, where user tokens are read (and renewed ones written).
        config: The ``identity`` config (workload name rules, subagent propagation).
        renewer: The OIDC client, to renew user tokens with refresh tokens; None: never renew.
        policy: When to refresh, back off and stop serving.
        rng: The jitter source (seed it in tests).
        wall: The wall clock, epoch seconds, against which TIP expiry is checked.
        max_background_mints: Timer-started refreshes running at once.
        mint_timeout: The longest one flight may take, in seconds of Trio's clock.
        name: The actor's name.
    """

    mailbox_size: ClassVar[int] = 128

    def __init__(
        self,
        minter: TipMinter,
        sessions: SessionStoreClient,
        *,
        config: IdentityConfig | None = None,
        renewer: UserTokenRenewer | None = None,
        policy: RefreshPolicy | None = None,
        rng: random.Random | None = None,
        wall: Callable[[], float] = time.time,
        max_background_mints: int = DEFAULT_MAX_BACKGROUND_MINTS,
        mint_timeout: float = DEFAULT_MINT_TIMEOUT,
        name: str = "tip_refresher",
    ) -> None:
        super().__init__(name=name)
        if max_background_mints < 1:
            raise ValueError("max_background_mints must be at least 1")
        self._config = config if config is not None else IdentityConfig()
        self._policy = policy if policy is not None else RefreshPolicy()
        self._wall = wall
        self._obtainer = TipObtainer(
            minter, sessions, renewer, policy=self._policy, wall=wall, ask=self._ask_uncounted
        )
        self._flights = TipFlights(
            self._obtainer,
            config=self._config,
            policy=self._policy,
            rng=rng if rng is not None else random.Random(),  # noqa: S311 - jitter only
            wall=wall,
            mint_timeout=mint_timeout,
            nursery=lambda: self._nursery,
        )
        self._timer = RefreshTimer(
            self._flights, policy=self._policy, wall=wall, max_background=max_background_mints
        )
        self._state: RunState | None = None
        self._hits = 0
        self._misses = 0
        self._held_back = 0

    @property
    def client(self) -> TipRefresherClient:
        """A typed client of this refresher."""
        return TipRefresherClient(self.address, fast=self)

    @property
    def policy(self) -> RefreshPolicy:
        """The refresh policy."""
        return self._policy

    async def on_start(self) -> None:
        """Start every run with an empty cache (TIPs are in memory only) and the timer task."""
        await trio.lowlevel.checkpoint()
        state = RunState()
        self._state = state
        nursery = self._nursery
        if nursery is None:  # pragma: no cover - run() opens it before on_start
            raise RuntimeError("TIP refresher nursery missing")
        nursery.start_soon(self._timer_loop, state)

    async def _timer_loop(self, state: RunState) -> None:
        # The timer task is named after this method (``..._timer_loop``), as it always was:
        # task listings, and the tests that count timer tasks, find it by that name.
        await self._timer.run(state)

    async def handle(self, msg: TipRefresherMsg) -> None:
        """Answer from the cache, or park the reply on a flight; never waits for the network."""
        await trio.lowlevel.checkpoint()  # no branch awaits anything else
        state = self._state
        if state is None:  # pragma: no cover - on_start installs it before the mailbox opens
            raise RuntimeError("TIP refresher state missing")
        match msg:
            case GetTip(reply=reply, session_key=key, agent_id=agent_id, force=force):
                self._get(state, reply, key, agent_id, force=force)
            case PeekTip(reply=reply, session_key=key):
                reply.set(self._peek(state, key))
            case ListTips(reply=reply, include_tokens=include_tokens):
                reply.set(self._list(state, include_tokens=include_tokens))
            case Propagate(reply=reply, parent_key=parent, child_key=child, agent_id=agent_id):
                self._propagate(state, reply, parent, child, agent_id)
            case ForgetTip(reply=reply, session_key=key):
                reply.set(self._forget(state, key))
            case FlushTips(reply=reply):
                reply.set(self._flush(state))
            case GetStatistics(reply=reply):
                reply.set(self.tip_statistics())
            case _:
                assert_never(msg)

    def tip_statistics(self) -> TipRefresherStatistics:
        """Return the refresher's statistics (what ``TipRefresherClient.statistics`` answers)."""
        state = self._state if self._state is not None else RunState()
        flights = self._flights
        return TipRefresherStatistics(
            actor=self.statistics(),
            cached=len(state.entries),
            hits=self._hits,
            misses=self._misses,
            mints=flights.mints,
            refreshes=flights.refreshes,
            failures=flights.failures,
            logged_out=flights.logged_out,
            held_back=self._held_back,
            renewals=self._obtainer.renewals,
            scheduled=len(state.timers),
            in_flight=len(state.flights),
            background_in_flight=state.background,
            linked=len(state.links),
            timer_tasks=self._timer.tasks,
        )

    # -- requests ------------------------------------------------------------------------

    def _workload(self, agent_id: str | None) -> str | None:
        return resolve_workload(self._config, agent_id)

    def _ask_uncounted(self, state: RunState, reply: Reply[TipOutcome], key: str) -> None:
        """Ask for a TIP like ``GetTip`` without counting it: a subagent flight's parent TIP."""
        self._get(state, reply, key, None, force=False, count=False)

    @staticmethod
    def _known_agent(state: RunState, key: str) -> str | None:
        """The agent id a session was last minted (or linked) for."""
        flight = state.flights.get(key)
        if flight is not None:
            return flight.agent_id
        entry = state.entries.get(key)
        if entry is not None:
            return entry.agent_id
        link = state.links.get(key)
        return None if link is None else link.agent_id

    def _get(
        self,
        state: RunState,
        reply: Reply[TipOutcome],
        key: str,
        agent_id: str | None,
        *,
        force: bool,
        count: bool = True,
    ) -> None:
        agent = agent_id if agent_id is not None else self._known_agent(state, key)
        entry = state.entries.get(key)
        fits = entry is None or entry.workload == self._workload(agent)
        if not force and fits and entry is not None:
            served = self._serve_cached(state, entry, agent, count=count)
            if served is not None:
                reply.set(served)
                return
        if count and not force:
            self._misses += 1
        self._join(state, key, agent, Waiter(reply, stale_ok=fits and not force))

    def _serve_cached(
        self, state: RunState, entry: CachedTip, agent: str | None, *, count: bool = True
    ) -> TipInfo | None:
        """Serve a cached TIP that fits the asker, if it is still servable; ``None`` if not."""
        return entry.info(cached=True) if self._hit(state, entry, agent, count=count) else None

    def _hit(self, state: RunState, entry: CachedTip, agent: str | None, *, count: bool) -> bool:
        """Whether a cached TIP that fits the asker may be served now; counts it if so."""
        now = self._wall()
        if not self._policy.servable(entry.expires_at, now):
            return False
        if count:
            self._hits += 1
        entry.last_used = now
        if entry.refresh_at <= now and entry.key not in state.flights:
            # The wall clock says the refresh is due but the timer has not fired (the
            # machine slept, the clock was stepped): refresh ahead, serve this one meanwhile.
            self._flights.start(state, entry.key, agent, background=True)
        return True

    def _fitting_entry(self, session_key: str) -> tuple[RunState, CachedTip, str | None] | None:
        """The run's cached TIP of a session, if a fast path may serve it (see below)."""
        state = self._state
        if state is None or not self.running:
            return None
        entry = state.entries.get(session_key)
        if entry is None:
            return None
        agent = self._known_agent(state, session_key)
        if entry.workload != self._workload(agent):
            return None
        return state, entry, agent

    def get_tip_nowait(self, session_key: str) -> TipInfo | None:
        """Serve a cache hit in the caller's task, without a mailbox round trip.

        The fast path of ``before_tool_call`` (a hop through the mailbox costs more than the
        rest of the hook). It does exactly what a ``GetTip`` that hits the cache does, and
        it is synchronous: Trio runs one task at a time and switches only at checkpoints, so
        this runs between two whole steps of the refresher, like a message handled at once.
        That holds only while every change of the run's state (here, in the flights and in
        the timer) stays synchronous between checkpoints.

        Returns:
            The cached TIP, or ``None`` when the answer needs the actor: the refresher is
            not running (or restarting), nothing servable is cached, or the cached TIP was
            minted for another workload than the session's agent now names.
        """
        found = self._fitting_entry(session_key)
        return None if found is None else self._serve_cached(*found)

    def token_body_nowait(
        self, session_key: str, encode: Callable[[TipInfo], bytes]
    ) -> bytes | None:
        """:meth:`get_tip_nowait` for ``GET /token``: the TIP's answer, encoded once per TIP.

        The encoded body lives in the cache entry, so it goes when the TIP does (a refresh,
        a logout, an expiry) and a hit touches no other object (with 100k sessions each one
        read is a cache miss of the CPU). There is one such body per TIP: ``encode`` must be
        the local server's (it may only depend on the TIP).

        Returns:
            The body, or ``None`` when the answer needs the actor (as for
            :meth:`get_tip_nowait`).
        """
        found = self._fitting_entry(session_key)
        if found is None or not self._hit(*found, count=True):
            return None
        entry = found[1]
        if entry.token_body is None:
            entry.token_body = encode(entry.info(cached=True))
        return entry.token_body

    def _join(self, state: RunState, key: str, agent: str | None, waiter: Waiter) -> None:
        flight = state.flights.get(key)
        link = state.links.get(key)
        parent = None if link is None else link.parent_key
        if flight is not None and (
            flight.workload != self._workload(agent) or flight.parent_key != parent
        ):
            flight = self._flights.restart(state, flight, agent)
        if flight is None:
            held = self._flights.held_back(state, key, waiter)
            if held is not None:
                self._held_back += 1
                waiter.reply.set(held)
                return
            flight = self._flights.start(state, key, agent, background=False)
        flight.waiters.append(waiter)

    def _peek(self, state: RunState, key: str) -> TipOutcome:
        entry = state.entries.get(key)
        if entry is None or not self._policy.servable(entry.expires_at, self._wall()):
            return NoTip("no servable TIP is cached for the session", "not_cached")
        return entry.info(cached=True)

    def _list(self, state: RunState, *, include_tokens: bool) -> list[TipSummary]:
        now = self._wall()
        return [
            entry.summary(include_token=include_tokens)
            for key, entry in sorted(state.entries.items())
            if self._policy.servable(entry.expires_at, now)
        ]

    def _propagate(
        self,
        state: RunState,
        reply: Reply[TipOutcome],
        parent: str,
        child: str,
        agent_id: str | None,
    ) -> None:
        if not self._config.subagent_tip_propagation:
            reply.set(NoTip("subagent TIP propagation is disabled", "propagation_disabled"))
            return
        lineage = [parent, *state.ancestors(parent)]
        if child in lineage:
            reply.set(NoTip("a session cannot inherit from itself or a subagent", "invalid_link"))
            return
        if len(lineage) > MAX_LINK_DEPTH:
            reply.set(NoTip(f"subagents nest deeper than {MAX_LINK_DEPTH}", "invalid_link"))
            return
        state.links[child] = Link(parent, agent_id)
        workload = self._workload(agent_id)
        entry = state.entries.get(child)
        if entry is not None and (entry.parent_key != parent or entry.workload != workload):
            state.drop(child)
            entry = None
        if entry is not None and self._policy.servable(entry.expires_at, self._wall()):
            reply.set(entry.info(cached=True))  # propagated before: idempotent
            return
        self._join(state, child, agent_id, Waiter(reply, stale_ok=False))

    def _forget(self, state: RunState, key: str) -> bool:
        dropped = key in state.entries
        for each in [key, *state.descendants(key)]:
            state.drop(each)
            state.dead.pop(each, None)
            state.backoff.pop(each, None)
            state.reported.pop(each, None)
            state.links.pop(each, None)
            flight = state.flights.get(each)
            if flight is not None:
                self._flights.end(state, flight)
                flight.scope.cancel()
                answer(flight.waiters, NoTip("the session was logged out", "no_session"))
        return dropped

    def _flush(self, state: RunState) -> int:
        dropped = len(state.entries)
        state.entries.clear()
        state.timers.clear()
        state.dead.clear()
        state.backoff.clear()
        state.reported.clear()
        return dropped
