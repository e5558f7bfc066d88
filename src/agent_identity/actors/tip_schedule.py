"""When the TIP refresher refreshes: the refresh policy and its one timer heap.

Two clocks are involved, on purpose:

* A TIP's ``exp`` is **wall-clock** time (epoch seconds, the control plane's clock). Whether a
  TIP may still be served is always decided against the wall clock, at serve time.
* Waiting is done on **Trio's clock** (monotonic, and a ``MockClock`` in tests), by the
  refresher's single timer task.

:class:`RefreshPolicy` works in wall-clock time only: given when a TIP was received and when it
expires, it says at which wall-clock instant to refresh it (a jittered fraction of its lifetime,
never later than a safety margin before ``exp``) and how long to back off after a failure. The
refresher maps that instant onto Trio's clock once, when it schedules
(``trio_due = trio.current_time() + (refresh_at - wall_now)``), and keeps the wall-clock
instant with the cached TIP; a serve that finds the wall clock already past it (the machine
slept, NTP stepped the clock) starts the refresh at once. :class:`TimerHeap` is the
Trio-clock side: one heap of ``(due, key)`` for every session, so the refresher needs one
timer task however many sessions it holds.

The policy also holds the *miss back-off*: after a mint failed and no servable TIP is cached
(the control plane is down and the TIP has expired, say), asks for the session within a short
window get the failure at once instead of starting one more mint each. The window opens at the
second failed mint in a row (:data:`MISS_BACKOFF_GRACE`) and grows exponentially with every
further one (:meth:`RefreshPolicy.miss_backoff`, from :data:`MISS_BACKOFF_BASE` to
:data:`MISS_BACKOFF_MAX`).
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass
from typing import final

__all__ = [
    "MISS_BACKOFF_BASE",
    "MISS_BACKOFF_GRACE",
    "MISS_BACKOFF_MAX",
    "RefreshPolicy",
    "TimerHeap",
]

#: Failed mints in a row (with no servable TIP cached) that hold no ask back: one failure may
#: be that attempt's own (an operator just fixed a permission, a refused user token is renewed
#: on the next try), and it already was a whole control-plane call with its retries.
MISS_BACKOFF_GRACE = 1
#: The first miss back-off, in seconds (before jitter), after the failure that follows the
#: grace; it doubles with every further failed mint of the session.
MISS_BACKOFF_BASE = 1.0
#: The longest miss back-off, in seconds: also the most a session waits, once the control
#: plane is back, before an ask mints again.
MISS_BACKOFF_MAX = 30.0

# Rebuild the heap once it holds this many more stale entries than live ones.
_COMPACT_SLACK = 64


@dataclass(frozen=True, slots=True)
class RefreshPolicy:
    """How early TIPs are refreshed, how failures back off, and how close to expiry one is served.

    All durations are seconds. The defaults suit TIPs of minutes to hours.

    Attributes:
        refresh_fraction: The refresh happens at a uniformly random fraction of the TIP's
            lifetime in this range (jitter spreads the refreshes of sessions that logged in
            together).
        safety_margin: A refresh is never scheduled later than this before ``exp`` (capped at
            ``1 - refresh_fraction[1]`` of the lifetime, so short-lived TIPs still get a
            jittered refresh).
        serve_margin: A TIP with this little left (or less) is never served: callers need
            time to use it.
        min_delay: No refresh or retry is scheduled sooner than this (no hot loops when the
            control plane hands out very short TIPs).
        retry_base: The first backoff after a failed refresh; it doubles per failure.
        retry_max: The longest backoff.
        user_token_margin: The user token is renewed with the refresh token (when there is
            one) before a mint once it expires within this.
        idle_ttl: A TIP not served for this long is no longer refreshed: it is dropped when
            its refresh comes due and minted again on the next demand. None: refresh for as
            long as the session lives.
        miss_backoff_base: After a second failed mint in a row that leaves no servable TIP,
            asks for the session (other than forced refreshes) get that failure at once,
            without a mint, for this long; it doubles per further failure (see
            :meth:`miss_backoff`). 0 turns the miss back-off off.
        miss_backoff_max: The longest such window.
    """

    refresh_fraction: tuple[float, float] = (0.75, 0.85)
    safety_margin: float = 60.0
    serve_margin: float = 5.0
    min_delay: float = 1.0
    retry_base: float = 2.0
    retry_max: float = 300.0
    user_token_margin: float = 300.0
    idle_ttl: float | None = 86400.0
    miss_backoff_base: float = MISS_BACKOFF_BASE
    miss_backoff_max: float = MISS_BACKOFF_MAX

    def __post_init__(self) -> None:
        low, high = self.refresh_fraction
        if not 0.0 < low <= high < 1.0:
            raise ValueError("refresh_fraction must satisfy 0 < low <= high < 1")
        for name in ("safety_margin", "serve_margin", "min_delay", "user_token_margin"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0")
        if not 0 < self.retry_base <= self.retry_max:
            raise ValueError("retry_base must be > 0 and <= retry_max")
        if self.idle_ttl is not None and self.idle_ttl <= 0:
            raise ValueError("idle_ttl must be > 0 (or None)")
        if not 0 <= self.miss_backoff_base <= self.miss_backoff_max < math.inf:
            raise ValueError("miss_backoff_base must be >= 0 and <= miss_backoff_max (finite)")

    def servable(self, expires_at: float, now: float) -> bool:
        """Whether a TIP expiring at ``expires_at`` may be served at wall-clock ``now``."""
        return expires_at - now > self.serve_margin

    def refresh_at(self, received_at: float, expires_at: float, rng: random.Random) -> float:
        """The wall-clock instant to refresh a TIP received at ``received_at``.

        Args:
            received_at: When the TIP arrived (wall clock); its lifetime is counted from here,
                not from its ``iat``, so a skewed control-plane clock cannot push the refresh
                past the TIP's expiry as seen here.
            expires_at: The TIP's ``exp`` (wall clock).
            rng: The jitter source.

        Returns:
            ``received_at + lifetime * U(refresh_fraction)``, but no later than
            ``expires_at - min(safety_margin, lifetime * (1 - refresh_fraction[1]))``.
        """
        lifetime = max(expires_at - received_at, 0.0)
        low, high = self.refresh_fraction
        target = received_at + lifetime * rng.uniform(low, high)
        margin = min(self.safety_margin, lifetime * (1.0 - high))
        return min(target, expires_at - margin)

    def retry_delay(self, failures: int, rng: random.Random) -> float:
        """The backoff after ``failures`` consecutive failed refreshes (``failures >= 1``).

        Exponential (``retry_base * 2 ** (failures - 1)``, capped at ``retry_max``) with
        "equal jitter": a uniform pick in the upper half, and never below ``min_delay``.
        """
        exponent = min(max(failures, 1) - 1, 62)
        ceiling = min(self.retry_max, self.retry_base * 2.0**exponent)
        return max(self.min_delay, ceiling * rng.uniform(0.5, 1.0))

    def miss_backoff(self, failures: int, rng: random.Random) -> float:
        """How long asks get a failed mint's answer without a new mint, in Trio seconds.

        Args:
            failures: Failed mints of the session in a row, this one included (``>= 1``).
            rng: The jitter source.

        Returns:
            0 within :data:`MISS_BACKOFF_GRACE`; then exponential
            (``miss_backoff_base * 2 ** (failures - MISS_BACKOFF_GRACE - 1)``, capped at
            ``miss_backoff_max``) with "equal jitter" (a uniform pick in the upper half), so
            sessions that failed together do not all come back together.
        """
        if failures <= MISS_BACKOFF_GRACE:
            return 0.0
        exponent = min(failures - MISS_BACKOFF_GRACE - 1, 62)
        ceiling = min(self.miss_backoff_max, self.miss_backoff_base * 2.0**exponent)
        return ceiling * rng.uniform(0.5, 1.0)


@final
class TimerHeap:
    """Due times on Trio's clock for many keys, in one binary heap.

    Each key has at most one live due time; rescheduling or cancelling a key leaves its old
    heap entry behind as a stale one, skipped when it surfaces (lazy deletion) and swept out
    when stale entries outnumber live ones. Every operation is ``O(log n)`` amortised.
    """

    __slots__ = ("_heap", "_live", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, str]] = []
        self._live: dict[str, tuple[float, int]] = {}
        self._seq = 0

    def __len__(self) -> int:
        """How many keys are scheduled."""
        return len(self._live)

    def __contains__(self, key: object) -> bool:
        return key in self._live

    def __repr__(self) -> str:
        return f"<TimerHeap scheduled={len(self._live)} entries={len(self._heap)}>"

    def when(self, key: str) -> float | None:
        """The due time of ``key``, or None when it is not scheduled."""
        live = self._live.get(key)
        return None if live is None else live[0]

    def schedule(self, key: str, due: float) -> bool:
        """Schedule ``key`` at ``due``, replacing its previous due time.

        Returns:
            Whether ``key`` is now the earliest due (the timer must wake up earlier).
        """
        self._seq += 1
        self._live[key] = (due, self._seq)
        heapq.heappush(self._heap, (due, self._seq, key))
        self._maybe_compact()
        return self.next_due() == due

    def cancel(self, key: str) -> bool:
        """Unschedule ``key``; returns whether it was scheduled."""
        removed = self._live.pop(key, None) is not None
        if removed:
            self._maybe_compact()
        return removed

    def clear(self) -> None:
        """Unschedule every key."""
        self._heap.clear()
        self._live.clear()

    def next_due(self) -> float | None:
        """The earliest due time, or None when nothing is scheduled."""
        heap = self._heap
        while heap:
            due, seq, key = heap[0]
            if self._live.get(key) == (due, seq):
                return due
            heapq.heappop(heap)  # rescheduled or cancelled since: stale
        return None

    def pop_due(self, now: float) -> str | None:
        """Unschedule and return the earliest key due at or before ``now``, if any."""
        due = self.next_due()
        if due is None or due > now:
            return None
        _, _, key = heapq.heappop(self._heap)
        del self._live[key]
        return key

    def _maybe_compact(self) -> None:
        if len(self._heap) > 2 * len(self._live) + _COMPACT_SLACK:
            self._heap = [(due, seq, key) for key, (due, seq) in self._live.items()]
            heapq.heapify(self._heap)
