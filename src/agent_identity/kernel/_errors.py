"""Errors raised by the actor kernel.

Every error the kernel raises on purpose derives from :class:`KernelError`, so a
caller at a boundary can tell "the kernel refused or gave up" from a bug. Two of
them also derive from the Trio exception that means the same thing
(:class:`MailboxFull` is a :class:`trio.WouldBlock`, :class:`DeadlineExceeded` is a
:class:`trio.TooSlowError`), so code written against Trio's conventions keeps working.
"""

from __future__ import annotations

import trio

__all__ = [
    "ActorStopped",
    "ChildStartFailed",
    "DeadlineExceeded",
    "KernelError",
    "MailboxFull",
    "SupervisorGaveUp",
    "TooManyChildren",
    "lone_exception",
]


class KernelError(Exception):
    """Base class of the errors the kernel raises on purpose."""


class ActorStopped(KernelError):  # noqa: N818 - names a state, like trio.Cancelled
    """The actor stopped (or was never started) before it could take or answer a message.

    Raised by :meth:`Address.tell`, :meth:`Address.try_tell` and :meth:`Address.ask`
    when the mailbox is closed, and delivered through the reply slot to every caller
    whose request was queued or in flight when the actor stopped. The outcome of an
    in-flight request is unknown: the actor may have applied it before it died.

    Attributes:
        name: The name of the actor (or keyed supervisor) that stopped.
    """

    def __init__(self, name: str) -> None:
        super().__init__(f"actor {name!r} is not running")
        self.name = name


class MailboxFull(KernelError, trio.WouldBlock):  # noqa: N818 - names a state, like trio.Cancelled
    """:meth:`Address.try_tell` found the mailbox full; the message was not sent.

    It is a :class:`trio.WouldBlock`, following Trio's ``*_nowait`` convention.

    Attributes:
        name: The name of the actor whose mailbox is full.
        capacity: The size of that mailbox.
    """

    def __init__(self, name: str, capacity: int) -> None:
        super().__init__(f"mailbox of actor {name!r} is full ({capacity} messages)")
        self.name = name
        self.capacity = capacity


class DeadlineExceeded(KernelError, trio.TooSlowError):  # noqa: N818 - names a state, like trio.Cancelled
    """The caller's deadline passed before the actor could answer the request.

    The actor either skipped the request because it was already expired when it was
    dequeued (nothing was applied), or handling was cut short at the deadline (the
    outcome is unknown). It is a :class:`trio.TooSlowError`, the error
    :func:`trio.fail_after` raises, so callers need a single ``except``.

    Attributes:
        name: The name of the actor.
        deadline: The caller's deadline, on Trio's clock.
    """

    def __init__(self, name: str, deadline: float) -> None:
        super().__init__(f"request to actor {name!r} missed its deadline ({deadline:.3f})")
        self.name = name
        self.deadline = deadline


class SupervisorGaveUp(KernelError):  # noqa: N818 - names a state, like trio.Cancelled
    """A supervisor exceeded its restart intensity and stopped all its children.

    It is raised out of :meth:`Supervisor.run` and chained (``__cause__``) from the
    error of the child whose exit tipped the balance, so the parent supervisor sees
    it as an ordinary child failure: escalation, as in OTP.

    Attributes:
        supervisor: The name of the supervisor that gave up.
        child_id: The child whose exit exceeded the intensity.
        max_restarts: The configured intensity.
        period: The configured window, in seconds of Trio's clock.
    """

    def __init__(self, supervisor: str, child_id: str, max_restarts: int, period: float) -> None:
        super().__init__(
            f"supervisor {supervisor!r} gave up after child {child_id!r} exited: "
            f"more than {max_restarts} restart(s) within {period:g}s"
        )
        self.supervisor = supervisor
        self.child_id = child_id
        self.max_restarts = max_restarts
        self.period = period


class ChildStartFailed(KernelError):  # noqa: N818 - names a state, like trio.Cancelled
    """A child failed (or returned) before it called ``task_status.started()``.

    When this happens while a supervisor starts, the supervisor stops the children
    it already started and raises this error, chained from the child's own error.
    It never retries silently: a child that cannot start is a configuration or
    environment problem for the parent to decide on, as in OTP.

    Attributes:
        supervisor: The name of the supervisor that was starting the child.
        child_id: The child that failed to start.
    """

    def __init__(self, supervisor: str, child_id: str) -> None:
        super().__init__(f"supervisor {supervisor!r} could not start child {child_id!r}")
        self.supervisor = supervisor
        self.child_id = child_id


class TooManyChildren(KernelError):  # noqa: N818 - names a state, like trio.Cancelled
    """A keyed supervisor already runs as many children as it is allowed to.

    Attributes:
        supervisor: The name of the keyed supervisor.
        limit: The configured maximum number of children.
    """

    def __init__(self, supervisor: str, limit: int) -> None:
        super().__init__(f"keyed supervisor {supervisor!r} already runs {limit} children")
        self.supervisor = supervisor
        self.limit = limit


def lone_exception(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The single exception inside nested one-member groups, or ``None`` if there are several.

    Nurseries wrap a failure in one group per level; callers that map a start failure (a port
    taken, a socket in use) to a clear message unwrap it with this.
    """
    found: BaseException = group
    while isinstance(found, BaseExceptionGroup):
        if len(found.exceptions) != 1:
            return None
        found = found.exceptions[0]
    return found
