"""The TIP refresher's flights: one mint per session at a time, shared by all its askers.

A *flight* (:class:`~agent_identity.actors.tip_state.Flight`) is a task in the refresher's
nursery, beside the mailbox loop. It obtains one TIP for a session
(:class:`~agent_identity.actors.tip_obtain.TipObtainer`), then settles the outcome and answers
every asker parked on it, so 100 concurrent askers of a session cost one mint:

* **A TIP** is cached, scheduled for refresh at a jittered fraction of its lifetime
  (``RefreshPolicy.refresh_at``) and answered.
* **A transient failure while the cached TIP is still servable** keeps serving it (to the
  askers that take a cached TIP) and retries with exponential backoff
  (``RefreshPolicy.retry_delay``).
* **Any other failure** drops the cached TIP and is answered. From the second
  ``unavailable`` in a row, asks within the session's *miss back-off*
  (``RefreshPolicy.miss_backoff``, on Trio's clock) get that answer at once instead of one
  more mint each (:meth:`TipFlights.held_back`); the first ask after it mints again (a forced
  refresh always does), a successful mint or a logout ends it, and the timer's refreshes keep
  their own schedule.
* **A logout** is logged at INFO once per session and cause, the repeats of later asks at DEBUG.

A flight that would now mint the wrong thing (the session's agent or parent changed) is
cancelled and its askers move to a new one; a flight that outlasts the mint timeout answers
``unavailable``.

Every method here but the flight task is synchronous, and the flight task changes the state
only after its awaits: each change of the :class:`~agent_identity.actors.tip_state.RunState`
happens whole between two checkpoints. ``TipRefresher.get_tip_nowait`` relies on that, since it
reads (and starts flights from) the state in the caller's task.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import final

import trio

from agent_identity.actors.tip_messages import LoggedOut, NoTip
from agent_identity.actors.tip_mint import resolve_workload
from agent_identity.actors.tip_obtain import TipObtainer
from agent_identity.actors.tip_schedule import RefreshPolicy
from agent_identity.actors.tip_state import (
    Backoff,
    CachedTip,
    Flight,
    Minted,
    RunState,
    Waiter,
    answer,
)
from agent_identity.config import IdentityConfig

__all__ = ["TipFlights"]

# The refresher's logger: this is the refresher's work, wherever the code lives.
logger = logging.getLogger("agent_identity.tip")


@final
class TipFlights:
    """Starts, ends and settles the TIP refresher's flights, and counts what they got.

    Owned by the refresher, which passes each call the state of its current run.

    Args:
        obtainer: Obtains the TIP of a flight.
        config: The ``identity`` config (workload name rules).
        policy: When to refresh and back off, and which TIPs are servable.
        rng: The jitter source.
        wall: The wall clock, epoch seconds.
        mint_timeout: The longest one flight may take, in seconds of Trio's clock.
        nursery: The refresher's nursery while it runs (flights are its tasks), else None.
    """

    __slots__ = (
        "_config",
        "_mint_timeout",
        "_nursery",
        "_obtainer",
        "_policy",
        "_rng",
        "_wall",
        "failures",
        "logged_out",
        "mints",
        "refreshes",
    )

    def __init__(
        self,
        obtainer: TipObtainer,
        *,
        config: IdentityConfig,
        policy: RefreshPolicy,
        rng: random.Random,
        wall: Callable[[], float],
        mint_timeout: float,
        nursery: Callable[[], trio.Nursery | None],
    ) -> None:
        self._obtainer = obtainer
        self._config = config
        self._policy = policy
        self._rng = rng
        self._wall = wall
        self._mint_timeout = mint_timeout
        self._nursery = nursery
        # The refresher's statistics (TipRefresherStatistics), over the object's lifetime.
        #: Successful mints, of any kind.
        self.mints = 0
        #: Successful mints that replaced a cached TIP.
        self.refreshes = 0
        #: Failed mints that ended ``unavailable``.
        self.failures = 0
        #: Mints that found the user logged out.
        self.logged_out = 0

    def __repr__(self) -> str:
        return f"<TipFlights mints={self.mints} failures={self.failures}>"

    def start(self, state: RunState, key: str, agent: str | None, *, background: bool) -> Flight:
        """Start a flight for ``key`` (none may be in flight); its end schedules the next one."""
        link = state.links.get(key)
        flight = Flight(
            key=key,
            agent_id=agent,
            workload=resolve_workload(self._config, agent),
            parent_key=None if link is None else link.parent_key,
            background=background,
        )
        state.flights[key] = flight
        state.background += background
        state.timers.cancel(key)  # the flight's end schedules the next refresh
        nursery = self._nursery()
        if nursery is None:  # pragma: no cover - flights start only while running
            raise RuntimeError("TIP refresher nursery missing")
        nursery.start_soon(self._fly, state, flight, name=f"tip flight {key!r}")
        return flight

    def restart(self, state: RunState, old: Flight, agent: str | None) -> Flight:
        """Cancel a flight that mints the wrong thing now; its askers move to a new one."""
        self.end(state, old)
        old.scope.cancel()
        new = self.start(state, old.key, agent, background=False)
        new.waiters, old.waiters = old.waiters, []
        return new

    @staticmethod
    def end(state: RunState, flight: Flight) -> None:
        """Take a flight out of the state (once); its task, if still running, stays."""
        if flight.ended:
            return
        flight.ended = True
        if state.flights.get(flight.key) is flight:
            del state.flights[flight.key]
        if flight.background:
            state.background -= 1
            state.wake.set()  # a background slot is free

    @staticmethod
    def held_back(state: RunState, key: str, waiter: Waiter) -> NoTip | None:
        """The last failure, while the session's miss back-off lasts and the asker takes it.

        Only an asker that would take a cached TIP (``stale_ok``) is held back: a forced
        refresh (a login) or a propagation always gets a real attempt. The timer's refreshes
        do not come through here and keep their own schedule.
        """
        backoff = state.backoff.get(key)
        if backoff is None or not waiter.stale_ok or trio.current_time() >= backoff.until:
            return None
        return backoff.outcome

    async def _fly(self, state: RunState, flight: Flight) -> None:
        outcome: Minted | NoTip | None = None
        with flight.scope, trio.move_on_after(self._mint_timeout):
            outcome = await self._obtainer.obtain(state, flight)
        if flight.ended:  # forgotten or replaced meanwhile: its askers were dealt with
            return
        self.end(state, flight)
        if outcome is None:
            outcome = NoTip(f"no TIP within {self._mint_timeout:g}s: the control plane is too slow")
        self._settle(state, flight, outcome)

    def _settle(self, state: RunState, flight: Flight, outcome: Minted | NoTip) -> None:
        """Cache (or not) what a flight got, schedule the next attempt, answer its askers."""
        key = flight.key
        now = self._wall()
        previous = state.entries.get(key)
        if isinstance(outcome, Minted):
            self.mints += 1
            self.refreshes += previous is not None
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
            state.schedule(key, delay)
            answer(flight.waiters, entry.info(cached=False))
            return
        if isinstance(outcome, LoggedOut):
            self.logged_out += 1
            self._report_logged_out(state, key, outcome.reason)
        elif outcome.code == "unavailable":
            self.failures += 1
            logger.warning("TIP refresher: mint for session %r failed: %s", key, outcome.reason)
        if (
            previous is None
            or outcome.code != "unavailable"
            or not self._policy.servable(previous.expires_at, now)
        ):
            state.drop(key)
            self._hold_back(state, key, outcome)
            answer(flight.waiters, outcome)
            return
        # A transient failure while the cached TIP is still good: keep serving, back off.
        previous.failures += 1
        previous.last_error = outcome.reason
        delay = self._policy.retry_delay(previous.failures, self._rng)
        previous.refresh_at = now + delay
        state.schedule(key, delay)
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

    @staticmethod
    def _report_logged_out(state: RunState, key: str, reason: str) -> None:
        """Log a logout at INFO once per session and cause; the repeats of every ask at DEBUG."""
        if state.reported.get(key) == reason:
            logger.debug("TIP refresher: session %r is still logged out", key)
            return
        state.reported[key] = reason
        logger.info("TIP refresher: session %r is logged out: %s", key, reason)
