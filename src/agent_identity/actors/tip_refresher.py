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

How it works:

* **The mailbox never waits for the network.** A cache hit is answered at once. A miss starts a
  *flight* (a task in the refresher's own nursery, beside the mailbox loop) and parks the
  caller's reply on it; every later asker of the same session joins that flight, so 100
  concurrent askers cost one mint. The flight answers them all when the mint ends.
* **Proactive refresh, one timer.** A minted TIP is scheduled for refresh at a jittered
  fraction of its lifetime (:class:`~agent_identity.actors.tip_schedule.RefreshPolicy`). All
  schedules live in one :class:`~agent_identity.actors.tip_schedule.TimerHeap` on Trio's clock,
  served by one timer task that sleeps until the earliest due time: 100k sessions cost one task.
  At most ``max_background_mints`` timer-started refreshes run at once.
* **Two clocks.** A TIP's ``exp`` is wall-clock; whether it may be served is decided against
  the injected wall clock at serve time (at least ``serve_margin`` left), so an expired TIP is
  never served, whatever the timer did. Due times are mapped onto Trio's clock when scheduled;
  the wall-clock refresh instant is kept with the TIP and a serve that finds it passed (the
  machine slept, the clock was stepped) starts the refresh at once.
* **Failures.** A failed refresh keeps serving the cached TIP while it is servable and retries
  with exponential backoff; once it has expired, askers get ``NoTip(code="unavailable")`` with
  the last error. From the second such failure in a row, asks within the session's *miss
  back-off* (1 s doubling to 30 s, jittered, on Trio's clock: ``RefreshPolicy.miss_backoff``)
  get that answer at once instead of one more mint each; the first ask after it mints again
  (a forced refresh always does), a successful mint or a logout ends it, and the timer's
  refreshes keep their own schedule. A user token the control plane refuses (expired,
  revoked) is renewed with the session's refresh token (through the OIDC client, the renewed
  record written back to the store) and the mint retried; without a usable refresh token the
  session is reported :class:`~agent_identity.actors.tip_messages.LoggedOut`, remembered by
  the token's fingerprint so asking again costs no network call until the user logs in again;
  the logout is logged at INFO once per session and cause, the repeats of later asks at DEBUG.
* **Subagents.** With ``subagentTipPropagation``, :meth:`TipRefresherClient.propagate` links a
  child session to its parent; the child's TIP is minted with the parent's TIP as user token
  (one more ``act`` level) and refreshed the same way.

Unexpected exceptions (bugs) crash the actor; its supervisor restarts it with an empty cache
(TIPs are re-obtained on demand) and every waiting caller gets
:class:`~agent_identity.kernel.ActorStopped`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import time
from collections.abc import Callable
from typing import ClassVar, assert_never, final

import trio

from agent_identity.actors.session_store_messages import SessionStoreClient
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
from agent_identity.actors.tip_mint import (
    IdentityTipMinter,
    MintedTip,
    TipMinter,
    is_user_token_rejected,
    resolve_workload,
)
from agent_identity.actors.tip_schedule import RefreshPolicy
from agent_identity.actors.tip_session import (
    RenewFailed,
    SessionTokens,
    UserTokenRenewer,
    token_fingerprint,
)
from agent_identity.actors.tip_state import (
    MAX_LINK_DEPTH,
    Backoff,
    CachedTip,
    Flight,
    Link,
    Minted,
    RunState,
    Waiter,
    answer,
)
from agent_identity.authz.tip_claims import TipClaimsError, decode_tip_claims
from agent_identity.config import IdentityConfig
from agent_identity.kernel import KernelError, NurseryActor, Reply
from agent_identity.storage import SessionView
from agent_identity.volcengine import VolcengineError

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

logger = logging.getLogger("agent_identity.tip")

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
        self._minter = minter
        self._tokens = SessionTokens(sessions, renewer)
        self._config = config if config is not None else IdentityConfig()
        self._policy = policy if policy is not None else RefreshPolicy()
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 - jitter only
        self._wall = wall
        self._max_background = max_background_mints
        self._mint_timeout = mint_timeout
        self._state: RunState | None = None
        self._timer_tasks = 0
        self._hits = 0
        self._misses = 0
        self._mints = 0
        self._refreshes = 0
        self._failures = 0
        self._logged_out = 0

    @property
    def client(self) -> TipRefresherClient:
        """A typed client of this refresher."""
        return TipRefresherClient(self.address, nowait=self.get_tip_nowait)

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
        return TipRefresherStatistics(
            actor=self.statistics(),
            cached=len(state.entries),
            hits=self._hits,
            misses=self._misses,
            mints=self._mints,
            refreshes=self._refreshes,
            failures=self._failures,
            logged_out=self._logged_out,
            renewals=self._tokens.renewals,
            scheduled=len(state.timers),
            in_flight=len(state.flights),
            background_in_flight=state.background,
            linked=len(state.links),
            timer_tasks=self._timer_tasks,
        )

    # -- requests ------------------------------------------------------------------------

    def _workload(self, agent_id: str | None) -> str | None:
        return resolve_workload(self._config, agent_id)

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
        now = self._wall()
        if not self._policy.servable(entry.expires_at, now):
            return None
        if count:
            self._hits += 1
        entry.last_used = now
        if entry.refresh_at <= now and entry.key not in state.flights:
            # The wall clock says the refresh is due but the timer has not fired (the
            # machine slept, the clock was stepped): refresh ahead, serve this one meanwhile.
            self._start(state, entry.key, agent, background=True)
        return entry.info(cached=True)

    def get_tip_nowait(self, session_key: str) -> TipInfo | None:
        """Serve a cache hit in the caller's task, without a mailbox round trip.

        The fast path of ``before_tool_call`` (a hop through the mailbox costs more than the
        rest of the hook). It does exactly what a ``GetTip`` that hits the cache does, and
        it is synchronous: Trio runs one task at a time and switches only at checkpoints, so
        this runs between two whole steps of the refresher, like a message handled at once.

        Returns:
            The cached TIP, or ``None`` when the answer needs the actor: the refresher is
            not running (or restarting), nothing servable is cached, or the cached TIP was
            minted for another workload than the session's agent now names.
        """
        state = self._state
        if state is None or not self.running:
            return None
        entry = state.entries.get(session_key)
        if entry is None:
            return None
        agent = self._known_agent(state, session_key)
        if entry.workload != self._workload(agent):
            return None
        return self._serve_cached(state, entry, agent)

    def _join(self, state: RunState, key: str, agent: str | None, waiter: Waiter) -> None:
        flight = state.flights.get(key)
        link = state.links.get(key)
        parent = None if link is None else link.parent_key
        if flight is not None and (
            flight.workload != self._workload(agent) or flight.parent_key != parent
        ):
            flight = self._restart(state, flight, agent)
        if flight is None:
            held = self._held_back(state, key, waiter)
            if held is not None:
                waiter.reply.set(held)
                return
            flight = self._start(state, key, agent, background=False)
        flight.waiters.append(waiter)

    @staticmethod
    def _held_back(state: RunState, key: str, waiter: Waiter) -> NoTip | None:
        """The last failure, while the session's miss back-off lasts and the asker takes it.

        Only an asker that would take a cached TIP (``stale_ok``) is held back: a forced
        refresh (a login) or a propagation always gets a real attempt. The timer's refreshes
        do not come through here and keep their own schedule.
        """
        backoff = state.backoff.get(key)
        if backoff is None or not waiter.stale_ok or trio.current_time() >= backoff.until:
            return None
        return backoff.outcome

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
            self._drop(state, child)
            entry = None
        if entry is not None and self._policy.servable(entry.expires_at, self._wall()):
            reply.set(entry.info(cached=True))  # propagated before: idempotent
            return
        self._join(state, child, agent_id, Waiter(reply, stale_ok=False))

    def _forget(self, state: RunState, key: str) -> bool:
        dropped = key in state.entries
        for each in [key, *state.descendants(key)]:
            self._drop(state, each)
            state.dead.pop(each, None)
            state.backoff.pop(each, None)
            state.reported.pop(each, None)
            state.links.pop(each, None)
            flight = state.flights.get(each)
            if flight is not None:
                self._end(state, flight)
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

    def _drop(self, state: RunState, key: str) -> None:
        state.entries.pop(key, None)
        state.timers.cancel(key)

    # -- flights -------------------------------------------------------------------------

    def _start(self, state: RunState, key: str, agent: str | None, *, background: bool) -> Flight:
        link = state.links.get(key)
        flight = Flight(
            key=key,
            agent_id=agent,
            workload=self._workload(agent),
            parent_key=None if link is None else link.parent_key,
            background=background,
        )
        state.flights[key] = flight
        state.background += background
        state.timers.cancel(key)  # the flight's end schedules the next refresh
        nursery = self._nursery
        if nursery is None:  # pragma: no cover - flights start only while running
            raise RuntimeError("TIP refresher nursery missing")
        nursery.start_soon(self._fly, state, flight, name=f"tip flight {key!r}")
        return flight

    def _restart(self, state: RunState, old: Flight, agent: str | None) -> Flight:
        """Cancel a flight that mints the wrong thing now; its askers move to a new one."""
        self._end(state, old)
        old.scope.cancel()
        new = self._start(state, old.key, agent, background=False)
        new.waiters, old.waiters = old.waiters, []
        return new

    def _end(self, state: RunState, flight: Flight) -> None:
        if flight.ended:
            return
        flight.ended = True
        if state.flights.get(flight.key) is flight:
            del state.flights[flight.key]
        if flight.background:
            state.background -= 1
            state.wake.set()  # a background slot is free

    async def _fly(self, state: RunState, flight: Flight) -> None:
        outcome: Minted | NoTip | None = None
        with flight.scope, trio.move_on_after(self._mint_timeout):
            outcome = await self._obtain(state, flight)
        if flight.ended:  # forgotten or replaced meanwhile: its askers were dealt with
            return
        self._end(state, flight)
        if outcome is None:
            outcome = NoTip(f"no TIP within {self._mint_timeout:g}s: the control plane is too slow")
        self._settle(state, flight, outcome)

    async def _obtain(self, state: RunState, flight: Flight) -> Minted | NoTip:
        if flight.parent_key is not None:
            return await self._obtain_child(state, flight, flight.parent_key)
        return await self._obtain_own(state, flight)

    async def _obtain_child(
        self, state: RunState, flight: Flight, parent_key: str
    ) -> Minted | NoTip:
        reply: Reply[TipOutcome] = Reply()
        self._get(state, reply, parent_key, None, force=False, count=False)
        parent = await reply.wait()
        if isinstance(parent, NoTip):
            reason = f"the parent session has no TIP: {parent.reason}"
            return dataclasses.replace(parent, reason=reason)
        try:
            minted = await self._minter.mint(parent.token, flight.workload)
        except VolcengineError as exc:
            return NoTip(f"minting the subagent's TIP failed: {exc}")
        return self._check(minted)

    async def _obtain_own(self, state: RunState, flight: Flight) -> Minted | NoTip:
        key = flight.key
        try:
            view = await self._tokens.get(key)
        except KernelError:
            await trio.lowlevel.checkpoint()  # the failed call may not have been one
            return NoTip("the session store is not available")
        if view is None:
            state.dead.pop(key, None)
            return NoTip("no user is logged in for the session", "no_session")
        dead = state.dead.get(key)
        if dead is not None and dead[0] == token_fingerprint(view.user_token):
            return LoggedOut(dead[1])
        renewed = False
        if (
            view.has_refresh_token
            and self._tokens.can_renew
            and view.expires_at - self._wall() <= self._policy.user_token_margin
        ):
            fresh = await self._tokens.renew(view)
            if isinstance(fresh, SessionView):
                view, renewed = fresh, True
            else:  # the current token is still valid: use it while it lasts
                logger.info("TIP refresher: early user token renewal failed: %s", fresh.reason)
        try:
            minted = await self._minter.mint(view.user_token, flight.workload)
        except VolcengineError as exc:
            if not is_user_token_rejected(exc):
                return NoTip(f"minting the TIP failed: {exc}")
            if renewed:
                return self._logged_out_by(
                    state, view, f"the renewed user token was refused: {exc}"
                )
            return await self._renew_and_mint(state, flight, view, exc)
        return self._check(minted)

    async def _renew_and_mint(
        self, state: RunState, flight: Flight, view: SessionView, refused: VolcengineError
    ) -> Minted | NoTip:
        """The control plane refused the user token: renew it once, then mint again."""
        fresh = await self._tokens.renew(view)
        if isinstance(fresh, RenewFailed):
            reason = (
                f"the control plane refused the user token ({refused.code}: {refused.message})"
                f" and {fresh.reason}"
            )
            if fresh.final:
                return self._logged_out_by(state, view, reason)
            return NoTip(reason)
        try:
            minted = await self._minter.mint(fresh.user_token, flight.workload)
        except VolcengineError as exc:
            if is_user_token_rejected(exc):
                return self._logged_out_by(
                    state, fresh, f"the renewed user token was refused: {exc}"
                )
            return NoTip(f"minting the TIP failed: {exc}")
        return self._check(minted)

    def _logged_out_by(self, state: RunState, view: SessionView, reason: str) -> LoggedOut:
        message = f"{reason}; log in again"
        state.dead[view.session_key] = (token_fingerprint(view.user_token), message)
        state.reported.pop(view.session_key, None)  # a new finding: logged at INFO once
        return LoggedOut(message)

    def _check(self, minted: MintedTip) -> Minted | NoTip:
        """Read a minted TIP's claims; refuse one that would not be servable."""
        try:
            claims = decode_tip_claims(minted.token)
        except TipClaimsError as exc:
            return NoTip(f"the control plane returned an unreadable TIP: {exc}")
        expires_at = minted.expires_at if claims.exp is None else min(minted.expires_at, claims.exp)
        now = self._wall()
        if claims.exp is not None and claims.iat is not None:
            # ``exp`` is on the control plane's clock. When that clock runs ahead of ours, the
            # TIP dies earlier than ``exp`` reads here: count its lifetime from its arrival
            # too, and keep the earlier end, so a skewed clock never gets an expired TIP served.
            expires_at = min(expires_at, now + (claims.exp - claims.iat))
        if not self._policy.servable(expires_at, now):
            left = expires_at - now
            return NoTip(f"the control plane returned a TIP that expires in {left:.0f}s")
        return Minted(token=minted.token, claims=claims, expires_at=expires_at)

    def _settle(self, state: RunState, flight: Flight, outcome: Minted | NoTip) -> None:
        """Cache (or not) what a flight got, schedule the next attempt, answer its askers."""
        key = flight.key
        now = self._wall()
        previous = state.entries.get(key)
        if isinstance(outcome, Minted):
            self._mints += 1
            self._refreshes += previous is not None
            state.dead.pop(key, None)
            state.backoff.pop(key, None)
            state.reported.pop(key, None)
            policy = self._policy
            delay = max(
                policy.refresh_at(now, outcome.expires_at, self._rng) - now, policy.min_delay
            )
            entry = CachedTip(
                key=key,
                token=outcome.token,
                claims=outcome.claims,
                workload=flight.workload,
                agent_id=flight.agent_id,
                parent_key=flight.parent_key,
                received_at=now,
                expires_at=outcome.expires_at,
                refresh_at=now + delay,
                # A refresh nobody waited for is no use of the TIP (see RefreshPolicy.idle_ttl).
                last_used=now if flight.waiters or previous is None else previous.last_used,
            )
            state.entries[key] = entry
            self._schedule(state, key, delay)
            answer(flight.waiters, entry.info(cached=False))
            return
        if isinstance(outcome, LoggedOut):
            self._logged_out += 1
            self._report_logged_out(state, key, outcome.reason)
        elif outcome.code == "unavailable":
            self._failures += 1
            logger.warning("TIP refresher: mint for session %r failed: %s", key, outcome.reason)
        if (
            previous is None
            or outcome.code != "unavailable"
            or not self._policy.servable(previous.expires_at, now)
        ):
            self._drop(state, key)
            self._hold_back(state, key, outcome)
            answer(flight.waiters, outcome)
            return
        # A transient failure while the cached TIP is still good: keep serving, back off.
        previous.failures += 1
        previous.last_error = outcome.reason
        delay = self._policy.retry_delay(previous.failures, self._rng)
        previous.refresh_at = now + delay
        self._schedule(state, key, delay)
        for waiter in flight.waiters:
            waiter.reply.set(previous.info(cached=True) if waiter.stale_ok else outcome)

    def _hold_back(self, state: RunState, key: str, outcome: NoTip) -> None:
        """Start (or lengthen) the miss back-off after a failure that left no servable TIP.

        Without it, every ask of a session whose TIP expired during an outage would start
        one more mint (a whole retried control-plane call). A logout or a vanished session
        ends the back-off: that is no outage.
        """
        if outcome.code != "unavailable":
            state.backoff.pop(key, None)
            if outcome.code == "no_session":
                state.reported.pop(key, None)
            return
        last = state.backoff.get(key)
        failures = 1 if last is None else last.failures + 1
        delay = self._policy.miss_backoff(failures, self._rng)
        state.backoff[key] = Backoff(failures, trio.current_time() + delay, outcome)

    def _report_logged_out(self, state: RunState, key: str, reason: str) -> None:
        """Log a logout at INFO once per session and cause; the repeats of every ask at DEBUG."""
        if state.reported.get(key) == reason:
            logger.debug("TIP refresher: session %r is still logged out", key)
            return
        state.reported[key] = reason
        logger.info("TIP refresher: session %r is logged out: %s", key, reason)

    # -- the timer -----------------------------------------------------------------------

    def _schedule(self, state: RunState, key: str, delay: float) -> None:
        if state.timers.schedule(key, trio.current_time() + delay):
            state.wake.set()

    async def _timer_loop(self, state: RunState) -> None:
        """The one timer task: sleep until the earliest due refresh, start it, repeat."""
        self._timer_tasks += 1
        try:
            while True:
                self._start_due(state)
                state.wake = trio.Event()
                due = state.timers.next_due()
                if due is None or state.background >= self._max_background:
                    due = math.inf  # until a schedule or a free slot wakes us
                with trio.move_on_at(due):
                    await state.wake.wait()
        finally:
            self._timer_tasks -= 1

    def _start_due(self, state: RunState) -> None:
        """Start the refreshes that are due, as far as background slots allow."""
        now = self._wall()
        clock = trio.current_time()
        idle_ttl = self._policy.idle_ttl
        while state.background < self._max_background:
            key = state.timers.pop_due(clock)
            if key is None:
                return
            entry = state.entries.get(key)
            if entry is None or key in state.flights:  # pragma: no cover - unscheduled then
                continue
            if idle_ttl is not None and now - entry.last_used > idle_ttl:
                self._drop(state, key)  # nobody asked for a long time: mint again on demand
                continue
            self._start(state, key, entry.agent_id, background=True)
