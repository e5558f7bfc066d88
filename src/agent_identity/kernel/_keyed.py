"""A keyed supervisor: one temporary actor per key, started on demand (simple_one_for_one).

Example, one actor per session::

    sessions = KeyedSupervisor(SessionActor, idle_timeout=900, max_children=1000)
    async with trio.open_nursery() as nursery:
        await nursery.start(sessions.run)
        address = await sessions.get_or_start(session_key)  # same key, same actor
        await address.tell(...)

Semantics:

* Children are temporary: an actor that crashes or ends is forgotten (its waiting
  callers get :class:`ActorStopped` from the actor itself) and the next
  :meth:`KeyedSupervisor.get_or_start` for that key starts a fresh one. A crash
  never affects the other keys or the supervisor.
* Concurrent :meth:`~KeyedSupervisor.get_or_start` calls for one key start one
  actor; a call that finds the key's actor stopping waits for it to end and
  starts a new one.
* Idle timeout: an actor with nothing queued, nothing being handled, no deferred
  reply and no ``get_or_start`` for ``idle_timeout`` seconds of Trio's clock is
  stopped gracefully. One sweeper task serves every child: it sleeps until the
  earliest moment any child could have become idle.
* ``max_children`` bounds the children alive at once (stopping ones included);
  beyond it :meth:`~KeyedSupervisor.get_or_start` raises :class:`TooManyChildren`.
* Stopping the supervisor stops every child concurrently, each with the
  ``shutdown`` grace period, then returns.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar, final

import trio

from agent_identity.kernel._actor import Actor
from agent_identity.kernel._child import ChildRun
from agent_identity.kernel._errors import ActorStopped, ChildStartFailed, TooManyChildren
from agent_identity.kernel._mailbox import Address
from agent_identity.kernel._spec import INFINITE, ChildSpec, Restart

__all__ = ["KeyedSupervisor", "KeyedSupervisorStatistics"]

logger = logging.getLogger("agent_identity.kernel")

K = TypeVar("K", bound=Hashable)
Msg = TypeVar("Msg")


@dataclass(frozen=True, slots=True)
class KeyedSupervisorStatistics:
    """A snapshot of a :class:`KeyedSupervisor`."""

    #: The supervisor's name.
    name: str
    #: Whether :meth:`KeyedSupervisor.run` is active.
    running: bool
    #: Children alive right now (starting and stopping ones included).
    children: int
    #: The most children alive at once.
    peak_children: int
    #: The configured limit (``None``: unlimited).
    max_children: int | None
    #: Children started (lifetime).
    started: int
    #: Children stopped because they were idle (lifetime).
    stopped_idle: int
    #: Children that ended with an exception (lifetime).
    crashed: int


@final
class _Entry(Generic[Msg]):
    """One key's child run."""

    __slots__ = ("actor", "ready", "run", "stopping", "touched")

    def __init__(self, actor: Actor[Msg], run: ChildRun, now: float) -> None:
        self.actor = actor
        self.run = run
        self.ready = trio.Event()  # set once the start finished (or failed)
        self.stopping = False
        self.touched = now

    def idle_since(self) -> float | None:
        since = self.actor.idle_since()
        return None if since is None else max(since, self.touched)


@final
class KeyedSupervisor(Generic[K, Msg]):
    """Supervises one temporary actor per key; see the module docstring.

    Args:
        factory: Builds a fresh actor for a key (called on each start).
        idle_timeout: Seconds of inactivity after which a child is stopped
            (:data:`INFINITE` disables it).
        max_children: The most children alive at once (``None``: unlimited).
        shutdown: Grace period of each child between the stop request and
            cancellation.
        name: Used in errors, logs and statistics.

    Raises:
        ValueError: A non-positive ``idle_timeout`` or ``max_children``.
    """

    def __init__(
        self,
        factory: Callable[[K], Actor[Msg]],
        *,
        idle_timeout: float = INFINITE,
        max_children: int | None = None,
        shutdown: float = 5.0,
        name: str = "keyed",
    ) -> None:
        if idle_timeout <= 0:
            raise ValueError(f"idle_timeout must be > 0, got {idle_timeout}")
        if max_children is not None and max_children <= 0:
            raise ValueError(f"max_children must be > 0, got {max_children}")
        self.name = name
        self._factory = factory
        self._idle_timeout = idle_timeout
        self._max_children = max_children
        self._shutdown = shutdown
        self._entries: dict[K, _Entry[Msg]] = {}
        self._nursery: trio.Nursery | None = None
        self._stop_requested: trio.Event | None = None
        self._run_done: trio.Event | None = None
        self._wakeup = trio.Event()
        self._closing = False
        self._generation = 0
        self._peak = 0
        self._idle_stops = 0
        self._crashes = 0

    def __repr__(self) -> str:
        return f"<KeyedSupervisor {self.name!r} children={len(self._entries)}>"

    def child_spec(
        self,
        id: str | None = None,  # noqa: A002 - the OTP name of the field
        *,
        restart: Restart = Restart.PERMANENT,
        shutdown: float = INFINITE,
    ) -> ChildSpec:
        """Return a spec that runs this keyed supervisor under a :class:`Supervisor`."""
        return ChildSpec.for_service(
            id if id is not None else self.name, self, restart=restart, shutdown=shutdown
        )

    def get(self, key: K) -> Address[Msg] | None:
        """Return the address of the key's running child, without starting one.

        Unlike :meth:`get_or_start`, this does not count as activity.
        """
        entry = self._entries.get(key)
        if entry is None or entry.stopping or not entry.ready.is_set():
            return None
        return entry.actor.address

    async def get_or_start(self, key: K) -> Address[Msg]:
        """Return the address of the key's child, starting it if needed.

        Counts as activity for the idle timeout.

        Raises:
            ActorStopped: The keyed supervisor is not running or is stopping.
            TooManyChildren: Starting a child would exceed ``max_children``.
            ChildStartFailed: The new child failed before it was ready.
        """
        while True:
            nursery = self._nursery
            if nursery is None or self._closing:
                await trio.lowlevel.checkpoint()
                raise ActorStopped(self.name)
            entry = self._entries.get(key)
            if entry is None:
                return await self._start(nursery, key)
            if entry.stopping:
                await entry.run.done.wait()
            elif not entry.ready.is_set():
                await entry.ready.wait()
            else:
                entry.touched = trio.current_time()
                await trio.lowlevel.checkpoint()
                return entry.actor.address

    async def stop_child(self, key: K) -> bool:
        """Stop the key's child gracefully and wait until it has ended.

        Returns:
            Whether there was a child for the key.
        """
        entry = self._entries.get(key)
        if entry is None:
            await trio.lowlevel.checkpoint()
            return False
        await entry.ready.wait()
        if self._entries.get(key) is not entry:
            return False  # its start failed
        if entry.stopping:
            await entry.run.done.wait()  # already being stopped (idle, or another caller)
        else:
            entry.stopping = True
            await entry.run.stop(entry.actor.request_stop, self._shutdown)
        return True

    def request_stop(self) -> None:
        """Ask the keyed supervisor to stop every child and return (sync, idempotent)."""
        if self._stop_requested is not None:
            self._stop_requested.set()

    async def stop(self) -> None:
        """Stop every child gracefully and wait until :meth:`run` has returned."""
        done = self._run_done
        self.request_stop()
        if done is None:
            await trio.lowlevel.checkpoint()
        else:
            await done.wait()

    def statistics(self) -> KeyedSupervisorStatistics:
        """Return a snapshot of the keyed supervisor's counters."""
        return KeyedSupervisorStatistics(
            name=self.name,
            running=self._nursery is not None,
            children=len(self._entries),
            peak_children=self._peak,
            max_children=self._max_children,
            started=self._generation,
            stopped_idle=self._idle_stops,
            crashed=self._crashes,
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve ``get_or_start`` until stopped, then stop every child and return.

        Raises:
            RuntimeError: The keyed supervisor is already running.
        """
        if self._run_done is not None:
            raise RuntimeError(f"keyed supervisor {self.name!r} is already running")
        self._run_done, self._stop_requested = trio.Event(), trio.Event()
        self._closing = False
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                sweeper = trio.CancelScope()
                if self._idle_timeout < INFINITE:
                    nursery.start_soon(self._sweep, nursery, sweeper)
                task_status.started()
                await self._stop_requested.wait()
                self._closing = True
                sweeper.cancel()
                for entry in self._entries.values():
                    if entry.stopping:
                        continue  # its stop task is already running in this nursery
                    entry.stopping = True
                    nursery.start_soon(entry.run.stop, entry.actor.request_stop, self._shutdown)
        finally:
            self._nursery = self._stop_requested = None
            self._run_done.set()
            self._run_done = None

    async def _start(self, nursery: trio.Nursery, key: K) -> Address[Msg]:
        """Start the key's child in our nursery and return its address."""
        if self._max_children is not None and len(self._entries) >= self._max_children:
            await trio.lowlevel.checkpoint()
            raise TooManyChildren(self.name, self._max_children)
        actor = self._factory(key)
        self._generation += 1
        entry = _Entry(
            actor, ChildRun(f"{self.name}[{key!r}]", self._generation), trio.current_time()
        )
        self._entries[key] = entry
        self._peak = max(self._peak, len(self._entries))
        started = False
        try:
            await nursery.start(
                entry.run.execute, actor.run, functools.partial(self._on_exit, key, entry)
            )
            started = True
        except Exception as exc:
            if self._closing:
                raise ActorStopped(self.name) from exc
            raise ChildStartFailed(self.name, entry.run.child_id) from exc
        finally:
            if not started and self._entries.get(key) is entry:
                del self._entries[key]
            entry.ready.set()
        if entry.stopping:
            # Stopped (shutdown, stop_child) while it started: do not hand it out.
            raise ActorStopped(self.name)
        self._wakeup.set()  # the sweeper may be waiting for a first child
        return actor.address

    def _on_exit(self, key: K, entry: _Entry[Msg], run: ChildRun) -> None:
        """Forget a child that ended; called synchronously by its wrapper task."""
        if self._entries.get(key) is entry:
            del self._entries[key]
        if run.error is not None and not entry.stopping:
            self._crashes += 1
            logger.warning(
                "keyed supervisor %r: child %r crashed", self.name, run.child_id, exc_info=run.error
            )

    async def _sweep(self, nursery: trio.Nursery, scope: trio.CancelScope) -> None:
        """Stop idle children; sleep until the earliest moment one could be idle."""
        with scope:
            while True:
                now = trio.current_time()
                wake = INFINITE
                for entry in list(self._entries.values()):
                    if entry.stopping or not entry.ready.is_set():
                        continue
                    since = entry.idle_since()
                    if since is None:
                        # Busy: it cannot be idle long enough before now + timeout.
                        wake = min(wake, now + self._idle_timeout)
                    elif now - since >= self._idle_timeout:
                        self._stop_idle(nursery, entry)
                    else:
                        wake = min(wake, since + self._idle_timeout)
                self._wakeup = trio.Event()
                with trio.move_on_at(wake):
                    await self._wakeup.wait()

    def _stop_idle(self, nursery: trio.Nursery, entry: _Entry[Msg]) -> None:
        """Start stopping an idle child (in the background: stops take a grace period)."""
        entry.stopping = True
        self._idle_stops += 1
        logger.info("keyed supervisor %r: stopping idle child %r", self.name, entry.run.child_id)
        nursery.start_soon(entry.run.stop, entry.actor.request_stop, self._shutdown)
