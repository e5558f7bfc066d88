"""The approval broker: pending approvals of risky tool calls; TTL, single use, exact match.

When ``authz.requireRiskApproval`` blocks a high-risk call, ``before_tool_call`` opens an
approval here and returns the host's ``requireApproval`` (built by
:func:`require_approval_payload`). A human then approves or rejects it, by id, from
``/identity approve <id>`` / ``/identity reject <id>``, from ``agent-identity ctl``, or through
the host's native approval UI (its ``onResolution`` callback, see
:meth:`ApprovalBrokerClient.resolve_host_decision`). The hook either waits for the decision
(:meth:`ApprovalBrokerClient.wait`) or sees the retried call, and lets the call run only if
:meth:`ApprovalBrokerClient.consume` succeeds.

Rules:

* **Unguessable ids.** ``apr_`` + 192 random bits (``secrets.token_urlsafe``).
* **Exact call.** An approval is for one session key, one tool and one digest of the exact
  params (:func:`params_digest`: sha256 of canonical JSON). ``consume`` succeeds only for an
  *approved* approval of the same session, tool and digest; anything else is refused.
  The broker stores the digest, never the params (they may hold secrets).
* **Single use.** ``consume`` succeeds once per approval; the next identical call needs a new
  approval. Several approved identical calls are consumed oldest first.
* **Short-lived.** An approval expires ``ttl`` seconds after it was opened
  (``authz.approvalTtlSeconds``, default 300), whether still pending or approved but unused,
  on Trio's clock. Expired approvals are swept whenever the broker handles a message and by
  :class:`ApprovalSweeper`, a sibling child that sends :class:`Sweep` every second, so
  waiters learn of the expiry within a tick.
* **Who may decide.** ``approve`` / ``reject`` take an ``actor`` (who, for the audit log) and
  optionally the approver's effective ``session_key``. With a session key (a chat command)
  the approval must belong to that same session: session B can neither approve nor reject an
  approval of session A (:attr:`RefusalReason.WRONG_SESSION`). Without one the caller is
  trusted: the operator control socket (owner-only) or the host's native approval route,
  which does its own approver routing. Transports must pass the session key for anything
  that comes from a chat, and must never let model output or tool params reach these calls.
* **First decision wins.** Deciding an approval that was already decided (or consumed) is
  refused with :attr:`RefusalReason.ALREADY_DECIDED`; an approve can never be flipped to a
  reject by a late host timeout, nor the reverse.
* **Outcomes are values.** Decisions answer :class:`DecisionResult`; ``wait`` answers an
  :class:`ApprovalOutcome`. The status of a finished approval is remembered for one TTL, so
  a late approve says "expired" instead of "unknown".
* **Waiting never blocks the broker.** ``wait`` keeps the caller's reply and answers it when
  the approval is decided, expires or is cancelled. The caller's deadline travels with the
  request: a waiter whose deadline has passed is dropped (failed with
  :class:`DeadlineExceeded`) at the next sweep.

State is in memory only and rebuilt empty on every (re)start: a restart forgets pending
approvals (the calls stay blocked, fail closed) and fails current waiters with
:class:`ActorStopped`.

The vocabulary (:class:`Approval`, statuses, outcomes, :func:`params_digest`,
:func:`require_approval_payload`) is in :mod:`agent_identity.actors.approval_types`; the
envelopes and :class:`ApprovalBrokerClient` are in :mod:`agent_identity.actors.approval_messages`.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from dataclasses import replace
from typing import ClassVar, assert_never

import trio

from agent_identity.actors.approval_messages import (
    ApprovalBrokerMsg,
    Consume,
    Decide,
    Discard,
    Get,
    GetStatistics,
    ListApprovals,
    Open,
    Sweep,
    Wait,
)
from agent_identity.actors.approval_types import (
    APPROVAL_ID_PREFIX,
    MAX_APPROVAL_ID_LENGTH,
    RISK_LEVELS,
    Approval,
    ApprovalBrokerStatistics,
    ApprovalOutcome,
    ApprovalStatus,
    DecisionResult,
    RefusalReason,
    fit_text,
)
from agent_identity.config import AuthzConfig
from agent_identity.kernel import Actor, Address, DeadlineExceeded, Reply, Ticker

__all__ = [
    "DEFAULT_APPROVAL_TTL",
    "DEFAULT_MAX_PENDING",
    "DEFAULT_MAX_PER_SESSION",
    "DEFAULT_SWEEP_INTERVAL",
    "ApprovalBroker",
    "ApprovalSweeper",
]

logger = logging.getLogger(__name__)

#: Seconds an approval stays valid (``authz.approvalTtlSeconds`` default).
DEFAULT_APPROVAL_TTL = 300.0
#: Seconds between two sweeps.
DEFAULT_SWEEP_INTERVAL = 1.0
#: Live approvals kept overall.
DEFAULT_MAX_PENDING = 10_000
#: Live approvals kept per session key.
DEFAULT_MAX_PER_SESSION = 32

_ID_BYTES = 24
_MAX_REASON = 512
_MAX_SUMMARY = 512

_OUTCOME_OF: Mapping[ApprovalStatus, ApprovalOutcome] = {
    ApprovalStatus.APPROVED: ApprovalOutcome.APPROVED,
    ApprovalStatus.CONSUMED: ApprovalOutcome.APPROVED,
    ApprovalStatus.REJECTED: ApprovalOutcome.REJECTED,
    ApprovalStatus.EXPIRED: ApprovalOutcome.EXPIRED,
    ApprovalStatus.CANCELLED: ApprovalOutcome.CANCELLED,
}


# ----------------------------------------------------------------------------- actor


class ApprovalBroker(Actor[ApprovalBrokerMsg]):
    """Holds pending approvals; see the module docstring for the rules.

    Args:
        ttl: Seconds an approval stays valid (``authz.approvalTtlSeconds``).
        max_per_session: Live approvals kept per session key; opening another cancels that
            session's oldest.
        max_pending: Live approvals kept overall (also bounds the remembered ones); opening
            another cancels the oldest of all.
        name: The actor's name.
    """

    mailbox_size: ClassVar[int] = 64

    def __init__(
        self,
        *,
        ttl: float = DEFAULT_APPROVAL_TTL,
        max_per_session: int = DEFAULT_MAX_PER_SESSION,
        max_pending: int = DEFAULT_MAX_PENDING,
        name: str = "approval_broker",
    ) -> None:
        if ttl <= 0:
            raise ValueError(f"ttl must be > 0, got {ttl}")
        if max_per_session < 1 or max_pending < 1:
            raise ValueError("the bounds must be >= 1")
        super().__init__(name=name)
        self.ttl = float(ttl)
        self.max_per_session = max_per_session
        self.max_pending = max_pending

    @classmethod
    def from_config(cls, config: AuthzConfig, *, name: str = "approval_broker") -> ApprovalBroker:
        """Build a broker whose TTL is ``authz.approvalTtlSeconds``."""
        return cls(ttl=float(config.approval_ttl_seconds), name=name)

    async def on_start(self) -> None:
        """Start with no approvals."""
        await trio.lowlevel.checkpoint()
        # Insertion order is opening order, and with one TTL also expiry order.
        self._live: dict[str, Approval] = {}
        self._finished: dict[str, tuple[Approval, float]] = {}  # id -> (snapshot, forget at)
        self._by_session: dict[str, list[str]] = {}
        self._waiters: dict[str, list[Reply[ApprovalOutcome]]] = {}
        self._opened = 0
        self._approved = 0
        self._rejected = 0
        self._consumed = 0
        self._consume_refused = 0
        self._expired = 0
        self._cancelled = 0
        self._refused: dict[str, int] = {}

    def sweeper(self, interval: float = DEFAULT_SWEEP_INTERVAL) -> ApprovalSweeper:
        """A timer that sweeps this broker every ``interval`` seconds (run it as a sibling)."""
        return ApprovalSweeper(self.address, interval=interval)

    async def handle(self, msg: ApprovalBrokerMsg) -> None:
        """Apply one message."""
        await trio.lowlevel.checkpoint()  # no handler awaits anything else
        now = trio.current_time()
        self._sweep(now)
        match msg:
            case Open():
                self._open(msg, now)
            case Decide(reply=reply):
                reply.set(self._decide(msg, now))
            case Consume(reply=reply, session_key=key, tool_name=tool, params_digest=digest):
                reply.set(self._consume(key, tool, digest, now))
            case Wait(reply=reply, approval_id=approval_id):
                self._wait(reply, approval_id)
            case Get(reply=reply, approval_id=approval_id):
                reply.set(self._lookup(approval_id))
            case ListApprovals(reply=reply, session_key=key):
                reply.set([a for a in self._live.values() if key is None or a.session_key == key])
            case Discard(reply=reply, session_key=key):
                ids = list(self._by_session.get(key, ()))
                for approval_id in ids:
                    self._finish(approval_id, ApprovalStatus.CANCELLED, now)
                self._cancelled += len(ids)
                reply.set(len(ids))
            case GetStatistics(reply=reply):
                reply.set(self._statistics())
            case Sweep():
                pass  # already done above
            case _:
                assert_never(msg)

    # ------------------------------------------------------------------ internals

    def _open(self, msg: Open, now: float) -> None:
        if not msg.session_key or not msg.tool_name or msg.risk not in RISK_LEVELS:
            msg.reply.fail(ValueError("an approval needs a session key, a tool and a risk level"))
            return
        queue = self._by_session.get(msg.session_key, [])
        while len(queue) >= self.max_per_session:
            self._evict(queue[0], now)
            queue = self._by_session.get(msg.session_key, [])
        while len(self._live) >= self.max_pending:
            self._evict(next(iter(self._live)), now)
        approval_id = APPROVAL_ID_PREFIX + secrets.token_urlsafe(_ID_BYTES)
        approval = Approval(
            id=approval_id,
            session_key=msg.session_key,
            tool_name=msg.tool_name,
            params_digest=msg.params_digest,
            risk=msg.risk,
            reason=fit_text(msg.reason, _MAX_REASON),
            summary=fit_text(msg.summary, _MAX_SUMMARY),
            created_at=now,
            expires_at=now + self.ttl,
            status=ApprovalStatus.PENDING,
        )
        self._live[approval_id] = approval
        self._by_session.setdefault(msg.session_key, []).append(approval_id)
        self._opened += 1
        logger.info(
            "approval %s opened for a %s-risk %s call", approval_id, msg.risk, msg.tool_name
        )
        msg.reply.set(approval)

    def _decide(self, msg: Decide, now: float) -> DecisionResult:
        known = self._lookup(msg.approval_id)
        refusal: RefusalReason | None = None
        if known is None or known.status is ApprovalStatus.CANCELLED:
            refusal = RefusalReason.UNKNOWN
        elif msg.session_key is not None and msg.session_key != known.session_key:
            refusal = RefusalReason.WRONG_SESSION
        elif known.status is ApprovalStatus.EXPIRED:
            refusal = RefusalReason.EXPIRED
        elif known.status is not ApprovalStatus.PENDING:
            refusal = RefusalReason.ALREADY_DECIDED
        if refusal is not None:
            self._refused[refusal.value] = self._refused.get(refusal.value, 0) + 1
            logger.info(
                "approval %r: %s by %r refused (%s)",
                msg.approval_id[:MAX_APPROVAL_ID_LENGTH],
                "approve" if msg.approve else "reject",
                msg.actor,
                refusal.value,
            )
            # Another session learns nothing about the approval.
            shown = (
                None if refusal in (RefusalReason.UNKNOWN, RefusalReason.WRONG_SESSION) else known
            )
            return DecisionResult(ok=False, approval=shown, refusal=refusal)
        assert known is not None  # noqa: S101 - refusal covers None
        status = ApprovalStatus.APPROVED if msg.approve else ApprovalStatus.REJECTED
        decided = replace(known, status=status, decided_by=msg.actor, decided_at=now)
        logger.info("approval %s (%s) %s by %s", known.id, known.tool_name, status.value, msg.actor)
        if msg.approve:
            self._approved += 1
            self._live[known.id] = decided
            self._resolve_waiters(known.id, ApprovalOutcome.APPROVED)
        else:
            self._rejected += 1
            self._live[known.id] = decided
            self._finish(known.id, ApprovalStatus.REJECTED, now)
        return DecisionResult(ok=True, approval=decided)

    def _consume(self, session_key: str, tool_name: str, digest: str, now: float) -> bool:
        for approval_id in self._by_session.get(session_key, ()):
            approval = self._live[approval_id]
            if (
                approval.status is ApprovalStatus.APPROVED
                and approval.tool_name == tool_name
                and secrets.compare_digest(approval.params_digest, digest)
            ):
                self._consumed += 1
                self._finish(approval_id, ApprovalStatus.CONSUMED, now)
                logger.info("approval %s (%s) used", approval_id, tool_name)
                return True
        self._consume_refused += 1
        return False

    def _wait(self, reply: Reply[ApprovalOutcome], approval_id: str) -> None:
        live = self._live.get(approval_id)
        if live is not None and live.status is ApprovalStatus.PENDING:
            self._waiters.setdefault(approval_id, []).append(reply)
            return
        known = live if live is not None else self._lookup(approval_id)
        reply.set(ApprovalOutcome.UNKNOWN if known is None else _OUTCOME_OF[known.status])

    def _lookup(self, approval_id: str) -> Approval | None:
        if len(approval_id) > MAX_APPROVAL_ID_LENGTH:
            return None
        live = self._live.get(approval_id)
        if live is not None:
            return live
        finished = self._finished.get(approval_id)
        return finished[0] if finished is not None else None

    def _evict(self, approval_id: str, now: float) -> None:
        self._cancelled += 1
        logger.info("approval %s cancelled: too many pending approvals", approval_id)
        self._finish(approval_id, ApprovalStatus.CANCELLED, now)

    def _finish(self, approval_id: str, status: ApprovalStatus, now: float) -> None:
        """Move a live approval to the finished ones and answer its waiters."""
        approval = replace(self._live.pop(approval_id), status=status)
        queue = self._by_session[approval.session_key]
        queue.remove(approval_id)
        if not queue:
            del self._by_session[approval.session_key]
        self._resolve_waiters(approval_id, _OUTCOME_OF[status])
        while len(self._finished) >= self.max_pending:
            del self._finished[next(iter(self._finished))]
        self._finished[approval_id] = (approval, now + self.ttl)

    def _resolve_waiters(self, approval_id: str, outcome: ApprovalOutcome) -> None:
        for reply in self._waiters.pop(approval_id, ()):
            reply.set(outcome)

    def _sweep(self, now: float) -> None:
        """Expire old approvals, forget old finished ones, drop waiters past their deadline."""
        while self._live:
            approval = next(iter(self._live.values()))
            if approval.expires_at > now:
                break
            self._expired += 1
            logger.info("approval %s (%s) expired", approval.id, approval.tool_name)
            self._finish(approval.id, ApprovalStatus.EXPIRED, now)
        while self._finished:
            approval_id, (_, forget_at) = next(iter(self._finished.items()))
            if forget_at > now:
                break
            del self._finished[approval_id]
        for approval_id in list(self._waiters):
            waiting: list[Reply[ApprovalOutcome]] = []
            for reply in self._waiters[approval_id]:
                if reply.deadline <= now:
                    reply.fail(DeadlineExceeded(self.name, reply.deadline))
                else:
                    waiting.append(reply)
            if waiting:
                self._waiters[approval_id] = waiting
            else:
                del self._waiters[approval_id]

    def _statistics(self) -> ApprovalBrokerStatistics:
        pending = sum(1 for a in self._live.values() if a.status is ApprovalStatus.PENDING)
        return ApprovalBrokerStatistics(
            pending=pending,
            awaiting_use=len(self._live) - pending,
            waiters=sum(len(replies) for replies in self._waiters.values()),
            remembered=len(self._finished),
            opened=self._opened,
            approved=self._approved,
            rejected=self._rejected,
            consumed=self._consumed,
            consume_refused=self._consume_refused,
            expired=self._expired,
            cancelled=self._cancelled,
            refused=dict(self._refused),
        )


# --------------------------------------------------------------------------- sweeper


class ApprovalSweeper(Ticker[ApprovalBrokerMsg]):
    """A :class:`Ticker` (a sibling child) that sends :class:`Sweep` to an approval broker.

    A full or stopped mailbox skips that tick (the next message sweeps anyway).
    """

    def __init__(
        self, address: Address[ApprovalBrokerMsg], *, interval: float = DEFAULT_SWEEP_INTERVAL
    ) -> None:
        super().__init__(address, Sweep, interval=interval, name="approval_sweeper")
