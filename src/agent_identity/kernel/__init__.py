"""The actor kernel: actors, addresses, replies, supervisors. No domain, no I/O.

Everything here is mechanism for the layers above (``actors``, ``transports``,
``system``): an :class:`Actor` owns state and a bounded mailbox; others hold its
:class:`Address` and talk to it with ``tell`` / ``try_tell`` / ``ask``; requests
carry a one-shot :class:`Reply` and the caller's deadline; a :class:`Supervisor`
starts children in order, restarts them by strategy within an intensity and
escalates beyond it; a :class:`KeyedSupervisor` runs one actor per key; a
:class:`Ticker` sends an actor a message on a period and an :class:`EventFanout`
offers events to subscribers without blocking; and
:func:`serve_until_signalled` / :func:`run_main` turn signals into a graceful
shutdown. The design follows the style anchors (section 2) of the project notes.
"""

from agent_identity.kernel._actor import Actor, ActorStatistics
from agent_identity.kernel._child import StatusRelay
from agent_identity.kernel._errors import (
    ActorStopped,
    ChildStartFailed,
    DeadlineExceeded,
    KernelError,
    MailboxFull,
    SupervisorGaveUp,
    TooManyChildren,
    lone_exception,
)
from agent_identity.kernel._fanout import DEFAULT_EVENT_BUFFER, EventFanout
from agent_identity.kernel._keyed import KeyedSupervisor, KeyedSupervisorStatistics
from agent_identity.kernel._mailbox import Address
from agent_identity.kernel._nursery_actor import NurseryActor
from agent_identity.kernel._reply import Reply, Request
from agent_identity.kernel._shutdown import (
    EXIT_INTERRUPTED,
    ShutdownResult,
    SignalSource,
    run_main,
    serve_until_signalled,
)
from agent_identity.kernel._spec import INFINITE, ChildSpec, Restart, Service, StartFn, Strategy
from agent_identity.kernel._supervisor import ChildStatistics, Supervisor, SupervisorStatistics
from agent_identity.kernel._ticker import Ticker

__all__ = [
    "DEFAULT_EVENT_BUFFER",
    "EXIT_INTERRUPTED",
    "INFINITE",
    "Actor",
    "ActorStatistics",
    "ActorStopped",
    "Address",
    "ChildSpec",
    "ChildStartFailed",
    "ChildStatistics",
    "DeadlineExceeded",
    "EventFanout",
    "KernelError",
    "KeyedSupervisor",
    "KeyedSupervisorStatistics",
    "MailboxFull",
    "NurseryActor",
    "Reply",
    "Request",
    "Restart",
    "Service",
    "ShutdownResult",
    "SignalSource",
    "StartFn",
    "StatusRelay",
    "Strategy",
    "Supervisor",
    "SupervisorGaveUp",
    "SupervisorStatistics",
    "Ticker",
    "TooManyChildren",
    "lone_exception",
    "run_main",
    "serve_until_signalled",
]
