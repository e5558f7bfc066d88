"""The actor base class: one task, one bounded mailbox, state nobody else touches.

A minimal actor::

    @dataclass(frozen=True, slots=True)
    class Get(Request[int | None]):
        key: str

    @dataclass(frozen=True, slots=True)
    class Put:
        key: str
        value: int

    CounterMsg = Get | Put

    class Counter(Actor[CounterMsg]):
        mailbox_size = 8

        async def on_start(self) -> None:
            self._items: dict[str, int] = {}  # state is rebuilt on every (re)start

        async def handle(self, msg: CounterMsg) -> None:
            match msg:
                case Get(reply=reply, key=key):
                    reply.set(self._items.get(key))
                case Put(key=key, value=value):
                    self._items[key] = value
                case _:
                    assert_never(msg)

Start it with ``await nursery.start(counter.run)`` (or under a supervisor with
``counter.child_spec("counter")``) and talk to it through ``counter.address``.

Failure semantics:

* Expected outcomes are values in the reply. An exception escaping :meth:`handle`
  is a failure: it ends :meth:`run` and goes to the supervisor.
* Whenever :meth:`run` ends (crash, cancellation, graceful stop), its ``finally``
  fails the reply of the message being handled, of every message still queued and
  of every reply the actor kept to answer later, with :class:`ActorStopped`. No
  caller is left waiting for its own deadline.
* Deadlines: a request whose caller's deadline has passed when it is dequeued is
  skipped and failed with :class:`DeadlineExceeded`. If :attr:`Actor.enforce_deadlines`
  is true (the default), handling a request also runs under
  :func:`trio.move_on_at` of its deadline; if that cuts it short, the reply is
  failed with :class:`DeadlineExceeded` and the actor carries on. Set it to false
  for actors whose handlers must not be interrupted half-way.

Background work (a timer that wakes the actor up) belongs in a sibling child under
the same supervisor, e.g. a small task that sleeps with :func:`trio.sleep_until`
and sends the actor a ``Tick`` with ``try_tell``. It is then started, stopped and
restarted like everything else, and the actor itself stays a single task.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import trio

from agent_identity.kernel._errors import ActorStopped, DeadlineExceeded
from agent_identity.kernel._mailbox import Address, Mailbox
from agent_identity.kernel._reply import Reply, reply_of
from agent_identity.kernel._spec import ChildSpec, Restart

__all__ = ["Actor", "ActorStatistics"]

Msg = TypeVar("Msg")

# Once this many deferred replies are tracked, drop the answered ones before adding.
_DEFERRED_PRUNE_AT = 64


@dataclass(frozen=True, slots=True)
class ActorStatistics:
    """A snapshot of an actor, for ``/status``, ``ctl status`` and metrics."""

    #: The actor's name.
    name: str
    #: Whether a run is active (between the start of :meth:`Actor.run` and its end).
    running: bool
    #: The mailbox capacity.
    mailbox_size: int
    #: Messages queued right now.
    mailbox_depth: int
    #: The most messages seen queued at once, over the actor's lifetime.
    peak_depth: int
    #: Tasks blocked in ``tell`` on a full mailbox.
    senders_waiting: int
    #: Messages passed to :meth:`Actor.handle` (lifetime).
    handled: int
    #: Requests skipped or cut short because the caller's deadline passed.
    expired: int
    #: Replies failed with :class:`ActorStopped` when a run ended.
    stopped_callers: int
    #: Replies kept by the actor to answer later and still unanswered.
    deferred: int
    #: Completed runs that were followed by another (restarts).
    restarts: int
    #: Whether :meth:`Actor.handle` is executing.
    busy: bool
    #: Trio time of the last message start or end (or of the start of the run).
    last_active: float | None


class Actor(abc.ABC, Generic[Msg]):
    """Base class of actors; see the module docstring for an example.

    Subclasses implement :meth:`handle` and optionally :meth:`on_start`, and can
    set the class attributes :attr:`mailbox_size` and :attr:`enforce_deadlines`.

    The same instance is restarted by its supervisor: each run gets a fresh
    mailbox channel and calls :meth:`on_start` again, so state that must not
    survive a crash belongs there, not in ``__init__``.

    Args:
        name: Used in errors and statistics; defaults to the class name.
    """

    #: The mailbox capacity of each run (0 makes every ``tell`` a rendezvous).
    mailbox_size: ClassVar[int] = 16
    #: Whether handling a request runs under ``trio.move_on_at(deadline)``.
    enforce_deadlines: ClassVar[bool] = True

    def __init__(self, *, name: str | None = None) -> None:
        self.name = name if name is not None else type(self).__name__
        self._mailbox: Mailbox[Msg] = Mailbox(self.name)
        self._address = Address(self._mailbox)
        self._run_done: trio.Event | None = None
        self._deferred: set[Reply[Any]] = set()
        self._runs = 0
        self._handled = 0
        self._expired = 0
        self._stopped_callers = 0
        self._busy = False
        self._last_active: float | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    @property
    def address(self) -> Address[Msg]:
        """The actor's address; stable across restarts."""
        return self._address

    async def on_start(self) -> None:
        """Initialise per-run state; runs before ``task_status.started()``.

        The mailbox is already open, so messages sent meanwhile are queued. An
        exception here is a start failure.
        """

    @abc.abstractmethod
    async def handle(self, msg: Msg) -> None:
        """Handle one message; answer requests with ``msg.reply.set(...)``.

        A handler may also keep the reply and answer it later (from another
        message); if the run ends first, the kernel fails it with
        :class:`ActorStopped`.
        """

    def request_stop(self) -> None:
        """Ask the actor to stop gracefully: refuse new messages, drain the queue, return.

        Synchronous and idempotent. Callers sending afterwards get
        :class:`ActorStopped`.
        """
        self._mailbox.close_intake()

    async def stop(self) -> None:
        """Ask the actor to stop and wait until its run has ended.

        There is no grace limit: wrap the call in :func:`trio.move_on_after` if the
        queue could be long, and cancel the actor's scope if it runs out.
        """
        self.request_stop()
        if self._run_done is None:
            await trio.lowlevel.checkpoint()
        else:
            await self._run_done.wait()

    def child_spec(
        self,
        id: str | None = None,  # noqa: A002 - the OTP name of the field
        *,
        restart: Restart = Restart.PERMANENT,
        shutdown: float = 5.0,
    ) -> ChildSpec:
        """Return a spec that runs this actor under a supervisor.

        Args:
            id: The child id; defaults to the actor's name.
            restart: When the supervisor restarts the actor.
            shutdown: Grace period between :meth:`request_stop` and cancellation.
        """
        return ChildSpec.for_service(
            id if id is not None else self.name, self, restart=restart, shutdown=shutdown
        )

    @property
    def running(self) -> bool:
        """Whether a run is active: between the start of :meth:`run` and its end.

        A synchronous fast path that serves a request in the caller's task (a ``*_nowait``
        method of a subclass) must check it: between a crash and the restart the state of
        the dead run is still there but no longer the truth.
        """
        return self._run_done is not None

    def idle_since(self) -> float | None:
        """Return since when the actor has had nothing to do, or ``None`` if it is busy.

        Busy means handling a message, having messages queued or blocked senders,
        or holding an unanswered deferred reply. Used by :class:`KeyedSupervisor`
        for idle timeouts.
        """
        if self._busy or self._mailbox.depth or self._mailbox.senders_waiting:
            return None
        if any(not reply.done for reply in self._deferred):
            return None
        return self._last_active

    def statistics(self) -> ActorStatistics:
        """Return a snapshot of the actor's counters and mailbox."""
        return ActorStatistics(
            name=self.name,
            running=self.running,
            mailbox_size=self.mailbox_size,
            mailbox_depth=self._mailbox.depth,
            peak_depth=self._mailbox.peak_depth,
            senders_waiting=self._mailbox.senders_waiting,
            handled=self._handled,
            expired=self._expired,
            stopped_callers=self._stopped_callers,
            deferred=sum(1 for reply in self._deferred if not reply.done),
            restarts=max(self._runs - 1, 0),
            busy=self._busy,
            last_active=self._last_active,
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the actor until its mailbox is closed and drained, or it fails.

        Start it with ``nursery.start`` so it is ready (``on_start`` done) before
        the next sibling starts.

        Raises:
            RuntimeError: The actor is already running.
        """
        receive = self._mailbox.open(self.mailbox_size)
        self._run_done = trio.Event()
        self._runs += 1
        self._last_active = trio.current_time()
        current: list[Msg] = []  # the message being handled, if any
        try:
            await self.on_start()
            task_status.started()
            async for msg in receive:
                current.append(msg)
                await self._dispatch(msg)
                current.clear()
        finally:
            # Synchronous on purpose: no checkpoint, so nothing can be sent into the
            # mailbox between the drain and the close, even while we are cancelled.
            self._busy = False
            self._fail_callers([*current, *self._mailbox.close()])
            self._run_done.set()
            self._run_done = None

    async def _dispatch(self, msg: Msg) -> None:
        """Handle one message, applying the deadline rules."""
        reply = reply_of(msg)
        self._last_active = trio.current_time()
        if reply is not None and reply.deadline <= self._last_active:
            self._expired += 1
            reply.fail(DeadlineExceeded(self.name, reply.deadline))
            await trio.lowlevel.checkpoint()  # skipping is still a turn of the loop
            return
        self._busy = True
        self._handled += 1
        if reply is not None and self.enforce_deadlines and reply.deadline < math.inf:
            deadline = reply.deadline
            with trio.move_on_at(deadline) as scope:
                await self.handle(msg)
            if scope.cancelled_caught:
                self._expired += 1
                reply.fail(DeadlineExceeded(self.name, deadline))
        else:
            await self.handle(msg)
        self._busy = False
        self._last_active = trio.current_time()
        if reply is not None and not reply.done:
            self._keep_deferred(reply)

    def _keep_deferred(self, reply: Reply[Any]) -> None:
        """Remember a reply the handler kept, so a stop can fail it."""
        if len(self._deferred) >= _DEFERRED_PRUNE_AT:
            self._deferred = {r for r in self._deferred if not r.done}
        self._deferred.add(reply)

    def _fail_callers(self, messages: list[Msg]) -> None:
        """Fail every pending reply of a run that ended with :class:`ActorStopped`."""
        replies = [r for r in map(reply_of, messages) if r is not None]
        replies.extend(self._deferred)
        self._deferred = set()
        for reply in replies:
            if not reply.done:
                self._stopped_callers += 1
                reply.fail(ActorStopped(self.name))
