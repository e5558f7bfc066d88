"""Supervision as data: child specs, restart types, strategies and the service protocol."""

from __future__ import annotations

import enum
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import trio

__all__ = ["INFINITE", "ChildSpec", "Restart", "Service", "StartFn", "Strategy"]

#: A shutdown grace period that never runs out (use it for child supervisors).
INFINITE: float = math.inf


class Restart(enum.Enum):
    """When a supervisor restarts a child that exited (OTP restart types)."""

    #: Always restart, whatever the reason of the exit.
    PERMANENT = "permanent"
    #: Restart only after an abnormal exit (an exception); a normal return is final.
    TRANSIENT = "transient"
    #: Never restart, not even when a sibling's failure takes it down.
    TEMPORARY = "temporary"

    def should_restart(self, *, abnormal: bool) -> bool:
        """Whether a child of this type is restarted after an exit.

        Args:
            abnormal: The child raised an exception (rather than returning).
        """
        if self is Restart.PERMANENT:
            return True
        return abnormal and self is Restart.TRANSIENT


class Strategy(enum.Enum):
    """Which children a supervisor restarts when one of them has to be restarted."""

    #: Restart only the child that exited.
    ONE_FOR_ONE = "one_for_one"
    #: Stop every other child (reverse start order), then restart all (start order).
    ONE_FOR_ALL = "one_for_all"
    #: Stop the children started after the exited one (reverse order), then restart
    #: the exited child and those (start order).
    REST_FOR_ONE = "rest_for_one"


class StartFn(Protocol):
    """An async callable started with ``nursery.start``: it takes ``task_status``.

    It must call ``task_status.started()`` once it is ready to serve, and then run
    until it is stopped (or fails).
    """

    def __call__(self, *, task_status: trio.TaskStatus[Any]) -> Awaitable[object]:
        """Run the child."""
        ...


class Service(Protocol):
    """Something that runs under a supervisor and can be asked to stop.

    :class:`Actor`, :class:`Supervisor` and :class:`KeyedSupervisor` are services.
    """

    async def run(self, *, task_status: trio.TaskStatus[None] = ...) -> None:
        """Run until stopped; call ``task_status.started()`` once ready."""
        ...

    def request_stop(self) -> None:
        """Ask the service to finish its work and return from :meth:`run` (sync)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildSpec:
    """How a supervisor starts, stops and restarts one child.

    Stopping a child is "ask, wait up to ``shutdown`` seconds, then cancel": the
    supervisor calls ``stop`` (if given), waits for the child to return, and cancels
    the child's scope when the grace period runs out. Without ``stop`` the child is
    cancelled straight away. Use :attr:`INFINITE` for a child supervisor, which
    bounds its own children's shutdown.

    Most specs come from :meth:`Actor.child_spec` or :meth:`Supervisor.child_spec`
    (or :meth:`for_service`).

    Attributes:
        id: A name unique among the supervisor's children.
        start: The async callable that runs the child (takes ``task_status``).
        restart: When the child is restarted.
        shutdown: Grace period in seconds of Trio's clock between the stop request
            and cancellation.
        stop: A synchronous "please stop" request, e.g. ``actor.request_stop``.
    """

    id: str
    start: StartFn
    restart: Restart = Restart.PERMANENT
    shutdown: float = 5.0
    stop: Callable[[], object] | None = None

    def __post_init__(self) -> None:
        if self.shutdown < 0:
            raise ValueError(f"child {self.id!r}: shutdown must be >= 0, got {self.shutdown}")

    @classmethod
    def for_service(
        cls,
        id: str,  # noqa: A002 - the OTP name of the field, and the keyword callers use
        service: Service,
        *,
        restart: Restart = Restart.PERMANENT,
        shutdown: float = 5.0,
    ) -> ChildSpec:
        """Build the spec of a :class:`Service`: start with ``run``, ask with ``request_stop``."""
        return cls(
            id=id, start=service.run, restart=restart, shutdown=shutdown, stop=service.request_stop
        )
