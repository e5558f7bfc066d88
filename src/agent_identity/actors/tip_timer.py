"""The TIP refresher's one timer task: the proactive, background refreshes of every session.

Every minted TIP is scheduled for refresh (``RunState.schedule``) on one
:class:`~agent_identity.actors.tip_schedule.TimerHeap`, on Trio's clock. One task,
:meth:`RefreshTimer.run`, sleeps until the earliest due time and starts the refreshes that are
due as background flights, so 100k sessions cost one task. At most ``max_background`` of those
flights run at once; the rest stay due on the heap until a flight's end frees a slot (it sets
``RunState.wake``, as does a schedule earlier than the one the task sleeps for).

A TIP nobody served for ``RefreshPolicy.idle_ttl`` is dropped when its refresh comes due, not
refreshed: the next ask mints it again.

The task changes the state only synchronously, between its waits, like every change of the
refresher's state.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import final

import trio

from agent_identity.actors.tip_flights import TipFlights
from agent_identity.actors.tip_schedule import RefreshPolicy
from agent_identity.actors.tip_state import RunState

__all__ = ["RefreshTimer"]


@final
class RefreshTimer:
    """Starts the due refreshes of the TIP refresher, as background slots allow.

    Args:
        flights: Starts the refreshes' flights.
        policy: The refresh policy (its ``idle_ttl``).
        wall: The wall clock, epoch seconds.
        max_background: Timer-started refreshes running at once.
    """

    __slots__ = ("_flights", "_max_background", "_policy", "_wall", "tasks")

    def __init__(
        self,
        flights: TipFlights,
        *,
        policy: RefreshPolicy,
        wall: Callable[[], float],
        max_background: int,
    ) -> None:
        self._flights = flights
        self._policy = policy
        self._wall = wall
        self._max_background = max_background
        #: Timer tasks running (the refresher's ``timer_tasks``): 1 while the refresher runs.
        self.tasks = 0

    def __repr__(self) -> str:
        return f"<RefreshTimer tasks={self.tasks} max_background={self._max_background}>"

    async def run(self, state: RunState) -> None:
        """The one timer task: sleep until the earliest due refresh, start it, repeat."""
        self.tasks += 1
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
            self.tasks -= 1

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
                state.drop(key)  # nobody asked for a long time: mint again on demand
                continue
            self._flights.start(state, key, entry.agent_id, background=True)
