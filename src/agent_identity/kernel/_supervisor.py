"""OTP-style supervisor: ordered start, restart strategies, intensity, escalation.

Example, the shape of the gateway's root::

    services = Supervisor(
        [refresher.child_spec("tip_refresher"), broker.child_spec("approval_broker")],
        strategy=Strategy.ONE_FOR_ONE,
        max_restarts=5,
        period=10,
        name="services",
    )
    root = Supervisor(
        [store.child_spec("session_store"), services.child_spec("services")],
        strategy=Strategy.REST_FOR_ONE,
        max_restarts=1,
        period=5,
        name="root",
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)  # every child is ready when this returns
        ...
        await root.stop()  # reverse order, each child with its grace period

Mechanism (one nursery; one wrapper task per child run, see :class:`ChildRun`):

* Children start in list order with ``nursery.start``; each is ready before the
  next starts. A child that fails before ``started()`` during the initial start
  makes :meth:`Supervisor.run` stop the children already started (reverse order)
  and raise :class:`ChildStartFailed`; nothing is retried. A start failure during
  a *restart* counts as one more failure of that child (and so towards the
  intensity), as in OTP.
* An exit is reported through an unbounded channel with ``send_nowait``, so a
  dying child never waits for the supervisor. Each report carries the run's
  generation; reports of runs the supervisor already replaced or stopped are
  ignored.
* On an exit the restart type decides whether anything happens at all
  (:meth:`Restart.should_restart`); a temporary child that ends is forgotten, and
  the exit of a child that is not restarted never affects its siblings. Otherwise
  the restart is recorded in the sliding window; exceeding the intensity stops
  every child (reverse order) and raises :class:`SupervisorGaveUp` chained from
  the child's error. Else the strategy picks the affected children: those still
  running are stopped in reverse start order, temporary ones among them are
  forgotten, and the rest are started again in start order (including a transient
  one that had ended normally, as OTP does).
* Stopping a child is "ask, wait for its grace period, cancel" (:class:`ChildSpec`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import final

import trio

from agent_identity.kernel._child import ChildRun, RestartWindow
from agent_identity.kernel._errors import ChildStartFailed, KernelError, SupervisorGaveUp
from agent_identity.kernel._spec import INFINITE, ChildSpec, Restart, Strategy

__all__ = ["ChildStatistics", "Supervisor", "SupervisorStatistics"]

logger = logging.getLogger("agent_identity.kernel")


@dataclass(frozen=True, slots=True)
class ChildStatistics:
    """A snapshot of one child of a :class:`Supervisor`."""

    #: The child's id.
    id: str
    #: Its restart type.
    restart: Restart
    #: Whether its task is alive.
    running: bool
    #: How many times it was started (over the supervisor's lifetime).
    generation: int
    #: How many of those starts were restarts.
    restarts: int


@dataclass(frozen=True, slots=True)
class SupervisorStatistics:
    """A snapshot of a :class:`Supervisor`."""

    #: The supervisor's name.
    name: str
    #: Its restart strategy.
    strategy: Strategy
    #: Whether :meth:`Supervisor.run` is active.
    running: bool
    #: Its children in start order (temporary children that ended are gone).
    children: tuple[ChildStatistics, ...]
    #: Restart decisions taken (one per handled exit, whatever the strategy).
    restarts: int
    #: The intensity: restarts allowed within :attr:`period`.
    max_restarts: int
    #: The intensity window in seconds.
    period: float


@final
class _Child:
    """A child's supervisor-side record; lives as long as the supervisor."""

    __slots__ = ("generation", "removed", "restarts", "run", "spec")

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.generation = 0
        self.restarts = 0
        self.run: ChildRun | None = None
        self.removed = False


@final
@dataclass(frozen=True, slots=True)
class _Exit:
    run: ChildRun


@final
class _StopRequest:
    __slots__ = ()


_Event = _Exit | _StopRequest


@final
@dataclass(frozen=True, slots=True)
class _RunContext:
    """What one run of the supervisor hands to its helpers."""

    nursery: trio.Nursery
    events: trio.MemorySendChannel[_Event]

    def report(self, run: ChildRun) -> None:
        """Report an exit; called synchronously by the dying child's wrapper task.

        The channel is unbounded, so ``send_nowait`` never blocks or fails: a dying
        child never waits for the supervisor. Each child run reports at most once,
        so the buffer only ever holds a few reports per child.
        """
        self.events.send_nowait(_Exit(run))


@final
class Supervisor:
    """Runs children, restarts them by strategy and escalates beyond the intensity.

    See the module docstring for the semantics.

    Args:
        children: Child specs in start order; ids must be unique.
        strategy: Which children an exit restarts.
        max_restarts: Restarts allowed within ``period`` before giving up.
        period: The intensity window, in seconds of Trio's clock.
        name: Used in errors, logs and statistics.

    Raises:
        ValueError: Duplicate child ids, or an invalid intensity.
    """

    def __init__(
        self,
        children: Sequence[ChildSpec],
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        max_restarts: int = 3,
        period: float = 5.0,
        name: str = "supervisor",
    ) -> None:
        ids = [spec.id for spec in children]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"supervisor {name!r}: duplicate child ids {duplicates}")
        self.name = name
        self.strategy = strategy
        self._children = [_Child(spec) for spec in children]
        self._window = RestartWindow(max_restarts, period)
        self._restarts = 0
        self._events: trio.MemorySendChannel[_Event] | None = None
        self._run_done: trio.Event | None = None

    def __repr__(self) -> str:
        return f"<Supervisor {self.name!r} {self.strategy.value}>"

    def child_spec(
        self,
        id: str | None = None,  # noqa: A002 - the OTP name of the field
        *,
        restart: Restart = Restart.PERMANENT,
        shutdown: float = INFINITE,
    ) -> ChildSpec:
        """Return a spec that runs this supervisor under another one.

        The default shutdown is infinite, as OTP advises for supervisors: this
        supervisor bounds its children's shutdown itself.
        """
        return ChildSpec.for_service(
            id if id is not None else self.name, self, restart=restart, shutdown=shutdown
        )

    def request_stop(self) -> None:
        """Ask the supervisor to stop its children (reverse order) and return.

        Synchronous and idempotent; does nothing if it is not running.
        """
        if self._events is not None:
            self._events.send_nowait(_StopRequest())

    async def stop(self) -> None:
        """Stop the supervisor gracefully and wait until :meth:`run` has returned."""
        done = self._run_done
        self.request_stop()
        if done is None:
            await trio.lowlevel.checkpoint()
        else:
            await done.wait()

    def statistics(self) -> SupervisorStatistics:
        """Return a snapshot of the supervisor and its children."""
        return SupervisorStatistics(
            name=self.name,
            strategy=self.strategy,
            running=self._run_done is not None,
            children=tuple(
                ChildStatistics(
                    id=child.spec.id,
                    restart=child.spec.restart,
                    running=child.run is not None and child.run.running,
                    generation=child.generation,
                    restarts=child.restarts,
                )
                for child in self._children
                if not child.removed
            ),
            restarts=self._restarts,
            max_restarts=self._window.max_restarts,
            period=self._window.period,
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start the children in order, supervise them until stopped, stop them.

        Returns after :meth:`request_stop` once every child has stopped.

        Raises:
            ChildStartFailed: A child failed before ``started()`` during the start.
            SupervisorGaveUp: The restart intensity was exceeded.
            RuntimeError: The supervisor is already running.
        """
        if self._run_done is not None:
            raise RuntimeError(f"supervisor {self.name!r} is already running")
        send, receive = trio.open_memory_channel[_Event](math.inf)
        self._events, self._run_done = send, trio.Event()
        # A new run starts afresh, like a restarted OTP supervisor process.
        self._window.reset()
        for child in self._children:
            child.removed = False
            child.run = None
        failure: tuple[KernelError, Exception | None] | None = None
        try:
            async with trio.open_nursery() as nursery:
                ctx = _RunContext(nursery, send)
                start_failure = await self._start_children(ctx, self._children)
                if start_failure is not None:
                    child, error = start_failure
                    failure = (ChildStartFailed(self.name, child.spec.id), error)
                else:
                    task_status.started()
                    failure = await self._supervise(ctx, receive)
                await self._stop_children(self._children)
        finally:
            send.close()
            receive.close()
            self._run_done.set()
            self._events = self._run_done = None
        if failure is not None:
            error, cause = failure
            raise error from cause

    async def _supervise(
        self, ctx: _RunContext, events: trio.MemoryReceiveChannel[_Event]
    ) -> tuple[KernelError, Exception | None] | None:
        """Handle exit reports until a stop request (``None``) or giving up."""
        while True:
            event = await events.receive()
            if isinstance(event, _StopRequest):
                return None
            run = event.run
            child = next(c for c in self._children if c.spec.id == run.child_id)
            if child.run is None or child.generation != run.generation:
                continue  # a stale report: that run was already stopped or replaced
            child.run = None
            gave_up = await self._restart(ctx, child, run.error)
            if gave_up is not None:
                return gave_up

    async def _restart(
        self, ctx: _RunContext, child: _Child, error: Exception | None
    ) -> tuple[KernelError, Exception | None] | None:
        """Apply the restart type, intensity and strategy to one exit."""
        await trio.lowlevel.checkpoint()  # Trio convention: every async call checkpoints
        pending: tuple[_Child, Exception | None] | None = (child, error)
        while pending is not None:
            child, error = pending
            pending = None
            if not child.spec.restart.should_restart(abnormal=error is not None):
                if child.spec.restart is Restart.TEMPORARY:
                    child.removed = True
                logger.info(
                    "supervisor %r: child %r ended (not restarted)", self.name, child.spec.id
                )
                return None
            if not self._window.record(trio.current_time()):
                logger.error(
                    "supervisor %r: child %r exited; restart intensity exceeded, giving up",
                    self.name,
                    child.spec.id,
                    exc_info=error,
                )
                gave_up = SupervisorGaveUp(
                    self.name, child.spec.id, self._window.max_restarts, self._window.period
                )
                return (gave_up, error)
            self._restarts += 1
            logger.warning(
                "supervisor %r: child %r exited; restarting (%s)",
                self.name,
                child.spec.id,
                self.strategy.value,
                exc_info=error,
            )
            affected = self._affected(child)
            await self._stop_children(affected)
            for other in affected:
                if other.spec.restart is Restart.TEMPORARY:
                    other.removed = True
            restarting = [c for c in affected if not c.removed]
            for c in restarting:
                c.restarts += 1
            pending = await self._start_children(ctx, restarting)
        return None

    def _affected(self, child: _Child) -> list[_Child]:
        """The children the strategy restarts when ``child`` is restarted."""
        live = [c for c in self._children if not c.removed]
        if self.strategy is Strategy.ONE_FOR_ONE:
            return [child]
        if self.strategy is Strategy.ONE_FOR_ALL:
            return live
        return live[live.index(child) :]

    async def _start_children(
        self, ctx: _RunContext, children: list[_Child]
    ) -> tuple[_Child, Exception] | None:
        """Start children in order; stop at the first start failure and return it."""
        await trio.lowlevel.checkpoint()  # Trio convention: every async call checkpoints
        for child in children:
            child.generation += 1
            run = ChildRun(child.spec.id, child.generation)
            child.run = run
            try:
                await ctx.nursery.start(run.execute, child.spec.start, ctx.report)
            except Exception as exc:
                child.run = None
                logger.warning(
                    "supervisor %r: child %r failed to start",
                    self.name,
                    child.spec.id,
                    exc_info=exc,
                )
                return (child, exc)
        return None

    async def _stop_children(self, children: list[_Child]) -> None:
        """Stop the given children in reverse order, each with its grace period."""
        await trio.lowlevel.checkpoint()  # Trio convention: every async call checkpoints
        for child in reversed(children):
            run = child.run
            if run is not None:
                await run.stop(child.spec.stop, child.spec.shutdown)
                child.run = None
