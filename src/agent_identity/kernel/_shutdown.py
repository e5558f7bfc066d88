"""Graceful shutdown on signals: the first one drains, the second one cancels.

Trio has no soft cancellation, so a graceful stop is an application protocol
(ask, wait, then cancel). :func:`serve_until_signalled` runs the root service of
the supervision tree and listens for SIGINT/SIGTERM itself (so Ctrl-C never
lands as a ``KeyboardInterrupt`` in the middle of actor code):

1. the first signal asks the root to stop (a :class:`Supervisor` stops its
   children in reverse start order, each with its own grace period) and arms an
   overall deadline of ``grace`` seconds;
2. a second signal, or that deadline, cancels whatever is still running.

:func:`run_main` is the synchronous entry point around :func:`trio.run`. It turns
a ``KeyboardInterrupt`` that slips through anyway (before the signal receiver is
installed, or after it is gone) into exit status 130, whether Trio raises it bare
or inside an exception group (it does the latter when nurseries are open).

Typical use in the composition root::

    async def main() -> None:
        root = build_tree(config)
        result = await serve_until_signalled(root, grace=30)
        logger.info("stopped: %s", result)

    sys.exit(run_main(main))
"""

from __future__ import annotations

import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol, TypeVarTuple, Unpack

import trio

from agent_identity.kernel._child import StatusRelay
from agent_identity.kernel._spec import Service

__all__ = [
    "EXIT_INTERRUPTED",
    "ShutdownResult",
    "SignalSource",
    "run_main",
    "serve_until_signalled",
]

logger = logging.getLogger("agent_identity.kernel")

#: The exit status of a process ended by SIGINT (128 + 2), returned by :func:`run_main`.
EXIT_INTERRUPTED = 130

Ts = TypeVarTuple("Ts")


class SignalSource(Protocol):
    """Opens a receiver of signal numbers, like :func:`trio.open_signal_receiver`.

    Injectable so tests can feed signals through a memory channel.
    """

    def __call__(self, *signals: int) -> AbstractContextManager[AsyncIterator[int]]:
        """Return a context manager whose value iterates over received signals."""
        ...


@dataclass(frozen=True, slots=True)
class ShutdownResult:
    """How :func:`serve_until_signalled` ended."""

    #: The signal that started the drain, or ``None`` if the service returned by itself.
    signal: int | None
    #: Whether the drain was cut short (second signal, or the grace period ran out).
    forced: bool


class _Signals:
    """What the watcher task saw."""

    __slots__ = ("first",)

    def __init__(self) -> None:
        self.first: int | None = None


async def serve_until_signalled(
    service: Service,
    *,
    grace: float,
    signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM),
    signal_source: SignalSource = trio.open_signal_receiver,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> ShutdownResult:
    """Run ``service`` until a signal asks it to stop; see the module docstring.

    The signal receiver is installed before the service starts, so a signal that
    arrives during startup is not lost. ``task_status.started()`` is forwarded to
    the service: when ``nursery.start`` returns, the whole tree is ready.

    Args:
        service: The root of the tree (usually a :class:`Supervisor`).
        grace: Seconds of Trio's clock the drain may take after the first signal.
        signals: The signals that mean "shut down".
        signal_source: Where signals come from (injectable for tests).
        task_status: Reports when the service is ready.

    Returns:
        Which signal started the shutdown and whether it had to be forced.

    Raises:
        Exception: Whatever the service raised (e.g. :class:`SupervisorGaveUp`),
            unwrapped: the watcher task never fails, so it is the only error.
    """
    seen = _Signals()
    returned = False
    failure: Exception | None = None
    with signal_source(*signals) as incoming:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_watch, incoming, service, nursery.cancel_scope, grace, seen)
            try:
                await service.run(task_status=StatusRelay(lambda _: task_status.started()))
                returned = True
            except Exception as exc:  # noqa: BLE001 - re-raised bare below, once the watcher is gone
                failure = exc
            nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return ShutdownResult(signal=seen.first, forced=not returned)


async def _watch(
    incoming: AsyncIterator[int],
    service: Service,
    scope: trio.CancelScope,
    grace: float,
    seen: _Signals,
) -> None:
    """First signal: ask the service to stop and arm the deadline. Second: cancel."""
    async for signum in incoming:
        if seen.first is None:
            seen.first = signum
            logger.warning("signal %d: shutting down gracefully (grace %gs)", signum, grace)
            scope.deadline = min(scope.deadline, trio.current_time() + grace)
            service.request_stop()
        else:
            logger.warning("signal %d: cancelling everything", signum)
            scope.cancel()
            return


def run_main(
    async_fn: Callable[[Unpack[Ts]], Awaitable[object]],
    *args: *Ts,
    clock: trio.abc.Clock | None = None,
) -> int:
    """Run ``async_fn(*args)`` with :func:`trio.run` and return a process exit status.

    Returns:
        0 when it returned, :data:`EXIT_INTERRUPTED` when a ``KeyboardInterrupt``
        escaped (bare or inside an exception group). Any other error propagates.
    """
    interrupted = False
    try:
        trio.run(async_fn, *args, clock=clock)
    except* KeyboardInterrupt:
        interrupted = True
        logger.warning("interrupted")
    return EXIT_INTERRUPTED if interrupted else 0
