"""Operator control: executes control-socket requests against a running system.

:class:`ControlService` is the handler :func:`~agent_identity.transports.control.serve_control`
calls. It answers from the actors' statistics and listings (which leave tokens out) and acts
through their clients; the daemon that runs the server supplies the two hooks that only it
can implement::

    service = ControlService(ident, reload=config_file_reloader(path, apply), shutdown=stop)
    await nursery.start(serve_control, listener, service.handle)

* ``status``: actor statistics (mailbox depth, handled, restarts), supervisors, session and
  credential counts, the TIP cache summary and the live approvals.
* ``sessions``: every live session with its expiry, its TIP's expiry and its env bindings.
* ``revoke KEY``: the session and its bindings (durably), then its TIP and subagent links,
  its credentials, flows and leases, and its live approvals. The session goes first, so
  no new TIP can be minted from it while the rest is cleared.
* ``flush-tips``: drop every cached TIP.
* ``reload``: the ``reload`` hook; :func:`config_file_reloader` builds one that rejects an
  invalid file (problems listed, values never shown) and keeps the system running.
* ``approvals`` / ``approve ID`` / ``reject ID``: the operator decides any session's approval
  (a trusted route: no session key, see :mod:`agent_identity.actors.approval_broker`).
* ``shutdown``: the ``shutdown`` hook, answered before the daemon stops.

Expected failures are replies: an actor that is not running (or too slow) gives
``unavailable``, a hook that was not supplied gives ``unsupported``.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeAlias, assert_never

import trio

from agent_identity import __version__
from agent_identity.actors.approval_types import Approval, DecisionResult
from agent_identity.actors.tip_messages import TipRefresherStatistics
from agent_identity.config import ConfigError, LoadedConfig, load_config
from agent_identity.kernel import ActorStatistics, ActorStopped, SupervisorStatistics
from agent_identity.system.identity import Identity
from agent_identity.transports.control_wire import (
    ActorRow,
    ApprovalRow,
    ApprovalsReply,
    ApprovalsRequest,
    ApproveRequest,
    ControlReply,
    ControlRequest,
    DecisionReply,
    ErrorReply,
    FlushTipsReply,
    FlushTipsRequest,
    RejectRequest,
    ReloadReply,
    ReloadRequest,
    RevokeReply,
    RevokeRequest,
    SessionRow,
    SessionsReply,
    SessionsRequest,
    ShutdownReply,
    ShutdownRequest,
    StatusReply,
    StatusRequest,
    SupervisorRow,
    TipCacheRow,
)

__all__ = [
    "DEFAULT_OPERATOR",
    "DEFAULT_REQUEST_DEADLINE",
    "ControlService",
    "ReloadHook",
    "ReloadResult",
    "config_file_reloader",
]

logger = logging.getLogger(__name__)

#: Who decides approvals from the control socket, for the approval broker's audit log.
DEFAULT_OPERATOR: Final = "operator (ctl)"
#: Seconds a request (other than ``reload``) may take before it answers ``unavailable``.
DEFAULT_REQUEST_DEADLINE: Final = 10.0


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What a reload did.

    Attributes:
        ok: Whether the new configuration is in effect.
        message: A sentence for the operator (never a configured value).
        problems: Why it was rejected, one line each (JSON path and rule, no values).
    """

    ok: bool
    message: str
    problems: tuple[str, ...] = ()


ReloadHook: TypeAlias = Callable[[], Awaitable[ReloadResult]]
"""Re-reads the configuration and applies it, or rejects it and keeps the running one."""


def config_file_reloader(
    path: str | os.PathLike[str], apply: Callable[[LoadedConfig], Awaitable[ReloadResult]]
) -> ReloadHook:
    """A reload hook that re-reads a config file and hands a valid one to ``apply``.

    An unreadable or invalid file is rejected with its problems and ``apply`` is not called,
    so the running system is untouched.

    Args:
        path: The config file the daemon was started with.
        apply: Puts a validated configuration into effect (or refuses it).

    Returns:
        The hook for :class:`ControlService`.
    """
    source = Path(path)

    async def reload() -> ReloadResult:
        loaded = await trio.to_thread.run_sync(_load, source)
        if isinstance(loaded, ConfigError):
            logger.warning("reload of %s rejected (%d problems)", source, len(loaded.problems))
            return ReloadResult(
                ok=False,
                message=f"{source} was not loaded; the running configuration is kept",
                problems=tuple(str(problem) for problem in loaded.problems),
            )
        return await apply(loaded)

    return reload


def _load(path: Path) -> LoadedConfig | ConfigError:
    """Load a config file in a worker thread; a config problem is a value."""
    try:
        return load_config(path)
    except ConfigError as exc:
        return exc


class ControlService:
    """Executes control requests against a running system; see the module docstring.

    Create it inside the Trio run that runs the system; ``status`` counts its uptime from then.

    Args:
        identity: The running system. The attribute can be replaced (e.g. by a reload that
            restarted the system); each request uses the one set when it starts.
        reload: The reload hook, if the daemon supports reloading.
        shutdown: Starts the daemon's graceful stop (synchronous: it must only signal).
        operator: Who decides approvals, for the audit log.
        deadline: Seconds a request may take (``reload`` excepted).
    """

    def __init__(
        self,
        identity: Identity,
        *,
        reload: ReloadHook | None = None,
        shutdown: Callable[[], None] | None = None,
        operator: str = DEFAULT_OPERATOR,
        deadline: float = DEFAULT_REQUEST_DEADLINE,
    ) -> None:
        self.identity = identity
        self._reload = reload
        self._shutdown = shutdown
        self._operator = operator
        self._deadline = deadline
        self._started = trio.current_time()

    async def handle(self, request: ControlRequest) -> ControlReply:
        """Execute one request (the ``handler`` of ``serve_control``).

        Returns:
            The reply; ``unavailable`` when an actor is not running or too slow.
        """
        # A reload may restart the whole system: it gets no deadline.
        deadline = math.inf if isinstance(request, ReloadRequest) else self._deadline
        try:
            with trio.fail_after(deadline):
                return await self._execute(request, self.identity)
        except ActorStopped:
            reply = ErrorReply(code="unavailable", message=_STOPPED)
        except trio.TooSlowError:  # DeadlineExceeded is one too
            reply = ErrorReply(code="unavailable", message=_SLOW)
        await trio.lowlevel.checkpoint()
        return reply

    async def _execute(self, request: ControlRequest, ident: Identity) -> ControlReply:
        await trio.lowlevel.checkpoint()  # every branch awaits, but the checkers can't see it
        match request:
            case StatusRequest():
                return await self._status(ident)
            case SessionsRequest():
                return await _sessions(ident)
            case RevokeRequest(session_key=key):
                return await _revoke(ident, key)
            case FlushTipsRequest():
                dropped = await ident.tips.flush()
                logger.info("ctl: flushed %d cached TIPs", dropped)
                return FlushTipsReply(dropped=dropped)
            case ApprovalsRequest():
                now = trio.current_time()
                return ApprovalsReply(
                    approvals=tuple(_approval_row(a, now) for a in await ident.approvals.list())
                )
            case ApproveRequest(approval_id=approval_id):
                result = await ident.approvals.approve(approval_id, actor=self._operator)
                return _decision(approval_id, result)
            case RejectRequest(approval_id=approval_id):
                result = await ident.approvals.reject(approval_id, actor=self._operator)
                return _decision(approval_id, result)
            case ShutdownRequest():
                return await self._stop()
            case ReloadRequest():
                return await self._reload_config()
            case _:
                assert_never(request)

    async def _status(self, ident: Identity) -> StatusReply:
        stats = ident.statistics()
        logins = await ident.login_broker.statistics()
        approvals = await ident.approvals.list()
        now = trio.current_time()
        actors = (
            stats.session_store.actor,
            stats.login_broker,
            stats.tip_refresher.actor,
            stats.credential_vault.actor,
            stats.approval_broker,
        )
        return StatusReply(
            version=__version__,
            pid=os.getpid(),
            uptime=now - self._started,
            actors=tuple(_actor_row(actor) for actor in actors),
            supervisors=(_supervisor_row(stats.root), _supervisor_row(stats.services)),
            sessions=stats.session_store.sessions,
            bound_sessions=stats.session_store.bound_sessions,
            pending_logins=logins.pending,
            credentials=stats.credential_vault.credentials,
            tips=_tip_row(stats.tip_refresher),
            approvals=tuple(_approval_row(approval, now) for approval in approvals),
        )

    async def _reload_config(self) -> ControlReply:
        if self._reload is None:
            await trio.lowlevel.checkpoint()
            return ErrorReply(code="unsupported", message="this daemon cannot reload")
        result = await self._reload()
        logger.info("ctl: reload %s", "applied" if result.ok else "rejected")
        return ReloadReply(ok=result.ok, message=result.message, problems=result.problems)

    async def _stop(self) -> ControlReply:
        await trio.lowlevel.checkpoint()
        if self._shutdown is None:
            return ErrorReply(code="unsupported", message="this daemon cannot be stopped here")
        logger.info("ctl: shutdown requested")
        self._shutdown()
        return ShutdownReply(message="stopping gracefully")


_STOPPED: Final = "a part of the daemon is not running (restarting?); try again"
_SLOW: Final = "the daemon did not answer in time; try again"


async def _sessions(ident: Identity) -> SessionsReply:
    views = await ident.sessions.list()
    tips = {tip.session_key: tip for tip in await ident.tips.list_tips()}
    now = time.time()  # session and TIP expiries are wall-clock epoch seconds
    rows: list[SessionRow] = []
    for view in views:
        tip = tips.get(view.session_key)
        rows.append(
            SessionRow(
                session_key=view.session_key,
                sub=view.sub,
                name=view.name,
                email=view.email,
                login_at=view.login_at,
                expires_in=view.expires_at - now,
                renewable=view.has_refresh_token,
                tip_expires_in=None if tip is None else tip.expires_at - now,
                bindings=await ident.sessions.bindings(view.session_key),
            )
        )
    return SessionsReply(sessions=tuple(rows))


async def _revoke(ident: Identity, key: str) -> ControlReply:
    if not key:
        await trio.lowlevel.checkpoint()
        return ErrorReply(code="bad_request", message="revoke needs a session key")
    bindings = await ident.sessions.bindings(key)
    # The session first (with its bindings, durably): nothing can mint a new TIP from it
    # afterwards, so the TIP dropped next stays dropped.
    removed = await ident.sessions.delete(key)
    tip_dropped = await ident.tips.forget(key)
    credentials = await ident.vault.clear(key)
    cancelled = await ident.approvals.discard(key)
    logger.info(
        "ctl: revoked a session (session %s, TIP %s, %d credentials, %d bindings, %d approvals)",
        "removed" if removed else "absent",
        "dropped" if tip_dropped else "absent",
        credentials,
        len(bindings),
        cancelled,
    )
    return RevokeReply(
        session_key=key,
        session_removed=removed,
        tip_dropped=tip_dropped,
        credentials_dropped=credentials,
        bindings_removed=len(bindings),
        approvals_cancelled=cancelled,
    )


def _decision(approval_id: str, result: DecisionResult) -> DecisionReply:
    return DecisionReply(
        ok=result.ok,
        approval_id=approval_id,
        message=result.message,
        refusal=None if result.refusal is None else result.refusal.value,
        approval=None
        if result.approval is None
        else _approval_row(result.approval, trio.current_time()),
    )


def _actor_row(stats: ActorStatistics) -> ActorRow:
    return ActorRow(
        name=stats.name,
        running=stats.running,
        mailbox_depth=stats.mailbox_depth,
        mailbox_size=stats.mailbox_size,
        peak_depth=stats.peak_depth,
        handled=stats.handled,
        restarts=stats.restarts,
        busy=stats.busy,
    )


def _supervisor_row(stats: SupervisorStatistics) -> SupervisorRow:
    return SupervisorRow(
        name=stats.name,
        strategy=str(stats.strategy.value),
        running=stats.running,
        restarts=stats.restarts,
        max_restarts=stats.max_restarts,
        period=stats.period,
        children=len(stats.children),
    )


def _tip_row(stats: TipRefresherStatistics) -> TipCacheRow:
    return TipCacheRow(
        cached=stats.cached,
        hits=stats.hits,
        misses=stats.misses,
        mints=stats.mints,
        refreshes=stats.refreshes,
        failures=stats.failures,
        logged_out=stats.logged_out,
        held_back=stats.held_back,
        renewals=stats.renewals,
        scheduled=stats.scheduled,
        in_flight=stats.in_flight,
        linked=stats.linked,
    )


def _approval_row(approval: Approval, now: float) -> ApprovalRow:
    """``now`` is Trio's clock, which approvals are timed on."""
    return ApprovalRow(
        id=approval.id,
        session_key=approval.session_key,
        tool_name=approval.tool_name,
        risk=approval.risk,
        reason=approval.reason,
        summary=approval.summary,
        status=approval.status.value,
        expires_in=approval.expires_at - now,
        decided_by=approval.decided_by,
    )
