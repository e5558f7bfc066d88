"""The mechanism under both supervisors: one child run in its own cancel scope.

A :class:`ChildRun` is one start of a child. Its wrapper task:

* runs the child's start function inside the run's own :class:`trio.CancelScope`,
  so one child can be cancelled without touching its siblings;
* forwards ``task_status.started()`` and remembers that it happened, because an
  error *before* ``started()`` is a start failure (it propagates out of
  ``nursery.start`` to whoever started the child) while an error *after* it is an
  exit the supervisor decides about;
* catches :class:`Exception` only: ``Cancelled`` and ``KeyboardInterrupt`` keep
  propagating, as Trio requires;
* reports the exit through a synchronous callback that must never block or raise
  (the supervisors use an unbounded channel's ``send_nowait`` or plain bookkeeping),
  so a dying child can never be held up by a busy supervisor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, final

import trio

from agent_identity.kernel._spec import StartFn

__all__ = ["ChildRun", "RestartWindow", "StatusRelay"]


@final
class StatusRelay:
    """A ``task_status`` that hands ``started()`` to a callback.

    The callback does the forwarding to the real ``task_status``, in the function
    that owns it, so that function visibly calls ``task_status.started()``.
    """

    __slots__ = ("_on_started",)

    def __init__(self, on_started: Callable[[object], None]) -> None:
        self._on_started = on_started

    def started(self, value: object = None) -> None:
        """Report that the task is ready, with an optional value for ``nursery.start``."""
        self._on_started(value)


@final
class ChildRun:
    """One start of one child: its cancel scope, its exit, its generation.

    Args:
        child_id: The child's id (for error messages and reports).
        generation: A number that grows with every start of the same child; an
            exit report whose generation is not the child's current one is stale.
    """

    __slots__ = ("child_id", "done", "error", "generation", "scope", "started", "stopping")

    def __init__(self, child_id: str, generation: int) -> None:
        self.child_id = child_id
        self.generation = generation
        self.scope = trio.CancelScope()
        self.done = trio.Event()
        #: The exception the child exited with after ``started()``, if any.
        self.error: Exception | None = None
        #: Whether the child called ``task_status.started()``.
        self.started = False
        #: Whether the exit was asked for (stop request or cancellation by us).
        self.stopping = False

    def __repr__(self) -> str:
        return f"<ChildRun {self.child_id!r} gen={self.generation}>"

    @property
    def running(self) -> bool:
        """Whether the child's task is still alive."""
        return not self.done.is_set()

    async def execute(
        self,
        start: StartFn,
        on_exit: Callable[[ChildRun], None],
        *,
        task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run the child; the wrapper task body (start it with ``nursery.start``).

        Args:
            start: The child's start function.
            on_exit: Called once, synchronously, when a started child has exited
                (normally, with an error, or cancelled by its own scope). It must
                not block or raise.
            task_status: Forwarded to ``start``.
        """

        def forward_started(value: object) -> None:
            self.started = True
            task_status.started(value)

        try:
            with self.scope:
                try:
                    await start(task_status=StatusRelay(forward_started))
                except Exception as exc:
                    if not self.started:
                        # A start failure belongs to whoever called nursery.start.
                        raise
                    self.error = exc
        finally:
            self.done.set()
        on_exit(self)
        # The child may have failed without ever reaching a checkpoint; keep the
        # Trio guarantee that every async call is one.
        await trio.lowlevel.checkpoint()

    async def stop(self, ask: Callable[[], object] | None, grace: float) -> None:
        """Stop the child: ask, wait up to ``grace`` seconds, then cancel its scope.

        Returns once the child's task has finished. Returns at once (after a
        checkpoint) if it already had.

        Args:
            ask: The child's synchronous stop request, or ``None`` to cancel at once.
            grace: Seconds of Trio's clock to wait after asking.
        """
        if not self.running:
            await trio.lowlevel.checkpoint()
            return
        self.stopping = True
        if ask is not None and grace > 0:
            ask()
            with trio.move_on_after(grace):
                await self.done.wait()
        self.scope.cancel()
        await self.done.wait()


@final
class RestartWindow:
    """Restart intensity: at most ``max_restarts`` restarts within ``period`` seconds.

    Times come from :func:`trio.current_time`, so tests drive the window with a
    mock clock. A restart at time ``t`` still counts at time ``now`` while
    ``now - t < period`` (the window slides; restarts spaced further apart than
    the period never accumulate).

    Args:
        max_restarts: Restarts allowed inside the window (0 allows none).
        period: The window length in seconds (> 0).
    """

    __slots__ = ("_times", "max_restarts", "period")

    def __init__(self, max_restarts: int, period: float) -> None:
        if max_restarts < 0:
            raise ValueError(f"max_restarts must be >= 0, got {max_restarts}")
        if period <= 0:
            raise ValueError(f"period must be > 0, got {period}")
        self.max_restarts = max_restarts
        self.period = period
        self._times: list[float] = []

    def record(self, now: float) -> bool:
        """Record a restart at ``now``; return whether it stays within the intensity."""
        self._times = [t for t in self._times if now - t < self.period]
        self._times.append(now)
        return len(self._times) <= self.max_restarts

    def reset(self) -> None:
        """Forget every recorded restart (a new supervisor run starts afresh)."""
        self._times.clear()
