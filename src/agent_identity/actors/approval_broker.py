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
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Final, Literal, assert_never, get_args

import trio

from agent_identity.config import AuthzConfig
from agent_identity.kernel import Actor, Address, DeadlineExceeded, Reply, Request, Ticker

__all__ = [
    "APPROVAL_ID_PREFIX",
    "DEFAULT_APPROVAL_TTL",
    "DEFAULT_MAX_PENDING",
    "DEFAULT_MAX_PER_SESSION",
    "DEFAULT_SWEEP_INTERVAL",
    "DESCRIPTION_MAX_LENGTH",
    "HOST_TIMEOUT_CAP_MS",
    "MAX_APPROVAL_ID_LENGTH",
    "TITLE_MAX_LENGTH",
    "Approval",
    "ApprovalBroker",
    "ApprovalBrokerClient",
    "ApprovalBrokerMsg",
    "ApprovalBrokerStatistics",
    "ApprovalOutcome",
    "ApprovalStatus",
    "ApprovalSweeper",
    "DecisionResult",
    "HostDecision",
    "RefusalReason",
    "RiskLevel",
    "Sweep",
    "params_digest",
    "require_approval_payload",
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
#: The prefix of every approval id.
APPROVAL_ID_PREFIX: Final = "apr_"
#: The longest approval id looked up (longer ones are unknown by definition).
MAX_APPROVAL_ID_LENGTH = 128
#: The host's limit on ``requireApproval.timeoutMs``.
HOST_TIMEOUT_CAP_MS = 600_000
#: The host's limit on ``requireApproval.title``.
TITLE_MAX_LENGTH = 80
#: The host's limit on ``requireApproval.description`` (P429; P96 allows 512).
DESCRIPTION_MAX_LENGTH = 256

_ID_BYTES = 24
_MAX_REASON = 512
_MAX_SUMMARY = 512

#: How risky a call is (the risk rules' levels).
RiskLevel = Literal["low", "medium", "high"]
#: What the host's ``onResolution`` reports.
HostDecision = Literal["allow-once", "allow-always", "deny", "timeout", "cancelled"]

_RISKS: frozenset[str] = frozenset(get_args(RiskLevel))
_SEVERITY: Mapping[str, str] = {"low": "info", "medium": "warning", "high": "critical"}
_HOST_APPROVES: frozenset[str] = frozenset({"allow-once", "allow-always"})


class ApprovalStatus(enum.Enum):
    """Where an approval is in its life."""

    #: Waiting for a decision.
    PENDING = "pending"
    #: Approved, not used yet.
    APPROVED = "approved"
    #: Rejected.
    REJECTED = "rejected"
    #: Approved and used by its call.
    CONSUMED = "consumed"
    #: Older than the TTL before it was used.
    EXPIRED = "expired"
    #: Dropped: its session was discarded (logout) or the bounds evicted it.
    CANCELLED = "cancelled"

    @property
    def live(self) -> bool:
        """Whether the approval can still be decided or used."""
        return self in (ApprovalStatus.PENDING, ApprovalStatus.APPROVED)


class ApprovalOutcome(enum.Enum):
    """What :meth:`ApprovalBrokerClient.wait` learns."""

    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    #: Never issued by this broker, or forgotten.
    UNKNOWN = "unknown"


class RefusalReason(enum.Enum):
    """Why an approve or reject was refused."""

    #: Never issued by this broker, malformed, cancelled, or forgotten long ago.
    UNKNOWN = "unknown"
    #: Older than the TTL.
    EXPIRED = "expired"
    #: Already approved, rejected or used.
    ALREADY_DECIDED = "already_decided"
    #: The approver's session is not the session that asked.
    WRONG_SESSION = "wrong_session"


_OUTCOME_OF: Mapping[ApprovalStatus, ApprovalOutcome] = {
    ApprovalStatus.APPROVED: ApprovalOutcome.APPROVED,
    ApprovalStatus.CONSUMED: ApprovalOutcome.APPROVED,
    ApprovalStatus.REJECTED: ApprovalOutcome.REJECTED,
    ApprovalStatus.EXPIRED: ApprovalOutcome.EXPIRED,
    ApprovalStatus.CANCELLED: ApprovalOutcome.CANCELLED,
}

_REFUSAL_MESSAGES: Mapping[RefusalReason, str] = {
    RefusalReason.UNKNOWN: "No such approval. Check the id, or ask for the tool call again.",
    RefusalReason.EXPIRED: "This approval has expired. Ask for the tool call again.",
    RefusalReason.ALREADY_DECIDED: "This approval was already decided.",
    RefusalReason.WRONG_SESSION: "This approval belongs to another session.",
}


@dataclass(frozen=True, slots=True)
class Approval:
    """A snapshot of one approval (for listing, waiting and building the host payload)."""

    #: The approval id (``apr_…``).
    id: str
    #: The effective session key of the call.
    session_key: str
    #: The tool.
    tool_name: str
    #: :func:`params_digest` of the exact params.
    params_digest: str
    #: The risk level.
    risk: RiskLevel
    #: Why it needs approval (e.g. "Pipe-to-shell: network fetch piped to shell execution").
    reason: str
    #: What is being approved, for humans (e.g. the command line); may be empty.
    summary: str
    #: When it was opened (Trio's clock).
    created_at: float
    #: When it expires (Trio's clock).
    expires_at: float
    #: Its status when the snapshot was taken.
    status: ApprovalStatus
    #: Who decided it (the ``actor`` given to approve/reject), if anyone did.
    decided_by: str | None = None
    #: When it was decided (Trio's clock).
    decided_at: float | None = None


@dataclass(frozen=True, slots=True)
class DecisionResult:
    """The answer to an approve or reject."""

    #: Whether the decision was recorded.
    ok: bool
    #: The approval after the decision (or as it stands, when known, if refused).
    approval: Approval | None = None
    #: Why it was refused.
    refusal: RefusalReason | None = None

    @property
    def message(self) -> str:
        """A sentence safe to show the approver."""
        if self.refusal is not None:
            return _REFUSAL_MESSAGES[self.refusal]
        assert self.approval is not None  # noqa: S101 - ok results always carry it
        verb = "Approved" if self.approval.status is ApprovalStatus.APPROVED else "Rejected"
        return f"{verb} {self.approval.tool_name} call {self.approval.id}."


@dataclass(frozen=True, slots=True)
class ApprovalBrokerStatistics:
    """Counters of an :class:`ApprovalBroker` run."""

    #: Approvals waiting for a decision right now.
    pending: int
    #: Approved approvals not used yet.
    awaiting_use: int
    #: Callers waiting for a decision.
    waiters: int
    #: Finished approvals whose status is remembered.
    remembered: int
    #: Approvals opened.
    opened: int
    #: Approvals approved.
    approved: int
    #: Approvals rejected.
    rejected: int
    #: Approvals used by their call.
    consumed: int
    #: ``consume`` calls refused (no matching approved approval).
    consume_refused: int
    #: Approvals that expired.
    expired: int
    #: Approvals cancelled (discarded sessions, evictions).
    cancelled: int
    #: Approves and rejects refused, by reason value.
    refused: Mapping[str, int]


# ------------------------------------------------------------------------------ helpers


def params_digest(params: Mapping[str, Any]) -> str:
    """Return the sha256 (hex) of the canonical JSON of a tool call's params.

    Canonical: keys sorted, no whitespace, UTF-8, no NaN/Infinity. Digest the params the
    model asked for (the ``before_tool_call`` event's), not ones merged with injected values.

    Raises:
        ValueError: The params are not JSON (non-string keys, NaN, other types).
    """
    try:
        text = json.dumps(
            params, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as error:
        raise ValueError(f"tool params must be plain JSON: {type(error).__name__}") from None
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _units(char: str) -> int:
    # JavaScript measures strings in UTF-16 code units; astral characters count twice.
    return 2 if ord(char) > 0xFFFF else 1


def _fit(text: str, limit: int) -> str:
    """Clip ``text`` to ``limit`` UTF-16 units (what the host counts), ending with an ellipsis."""
    text = " ".join(text.split())
    if sum(map(_units, text)) <= limit:
        return text
    kept: list[str] = []
    used = 1  # the ellipsis
    for char in text:  # pragma: no branch - the text is longer than the limit
        used += _units(char)
        if used > limit:
            break
        kept.append(char)
    return "".join(kept).rstrip() + "\u2026"


def require_approval_payload(
    approval: Approval, *, ttl_seconds: float | None = None
) -> dict[str, str | int]:
    """Build ``before_tool_call``'s ``requireApproval`` for an approval (camelCase keys).

    ``{title (≤ 80), description (1..256, with the approval id), severity ("warning" for
    medium, "critical" for high, "info" for low), timeoutMs (the TTL in ms, capped at
    600000), timeoutBehavior: "deny"}``. Lengths are counted in UTF-16 units, as the host
    does.

    Args:
        approval: The approval the call waits for.
        ttl_seconds: The timeout; by default the approval's remaining lifetime at opening.
    """
    ttl = approval.expires_at - approval.created_at if ttl_seconds is None else ttl_seconds
    timeout_ms = max(1, min(round(ttl * 1000), HOST_TIMEOUT_CAP_MS))
    title = _fit(f"Approve {approval.risk}-risk {approval.tool_name} call", TITLE_MAX_LENGTH)
    suffix = f" (approval {approval.id})"
    body = approval.reason or f"The {approval.tool_name} call needs your approval."
    if approval.summary:
        body = f"{body.rstrip('.')}: {approval.summary}"
    room = DESCRIPTION_MAX_LENGTH - sum(map(_units, suffix))
    description = _fit(body, room) + suffix
    return {
        "title": title,
        "description": description,
        "severity": _SEVERITY[approval.risk],
        "timeoutMs": timeout_ms,
        "timeoutBehavior": "deny",
    }


# --------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class Open(Request[Approval]):
    """Open an approval for one exact call; answers its snapshot."""

    session_key: str
    tool_name: str
    params_digest: str
    risk: RiskLevel
    reason: str
    summary: str


@dataclass(frozen=True, slots=True)
class Decide(Request[DecisionResult]):
    """Approve or reject an approval by id."""

    approval_id: str
    approve: bool
    actor: str
    session_key: str | None


@dataclass(frozen=True, slots=True)
class Consume(Request[bool]):
    """Use the oldest approved approval matching the exact call; answers whether there was one."""

    session_key: str
    tool_name: str
    params_digest: str


@dataclass(frozen=True, slots=True)
class Wait(Request[ApprovalOutcome]):
    """Answer when the approval is decided, expires or is cancelled (a deferred reply)."""

    approval_id: str


@dataclass(frozen=True, slots=True)
class Get(Request[Approval | None]):
    """Answer an approval's snapshot (live or remembered), or ``None``."""

    approval_id: str


@dataclass(frozen=True, slots=True)
class ListApprovals(Request[list[Approval]]):
    """Answer the live approvals (pending or approved, unused), oldest first."""

    session_key: str | None


@dataclass(frozen=True, slots=True)
class Discard(Request[int]):
    """Cancel every live approval of a session key (logout); answers how many."""

    session_key: str


@dataclass(frozen=True, slots=True)
class GetStatistics(Request[ApprovalBrokerStatistics]):
    """Answer the broker's counters."""


@dataclass(frozen=True, slots=True)
class Sweep:
    """Expire old approvals and drop stale waiters (sent by :class:`ApprovalSweeper`)."""


ApprovalBrokerMsg = (
    Open | Decide | Consume | Wait | Get | ListApprovals | Discard | GetStatistics | Sweep
)


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
        if not msg.session_key or not msg.tool_name or msg.risk not in _RISKS:
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
            reason=_fit(msg.reason, _MAX_REASON),
            summary=_fit(msg.summary, _MAX_SUMMARY),
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


# ---------------------------------------------------------------------------- client


class ApprovalBrokerClient:
    """Typed access to an :class:`ApprovalBroker`; callers never see envelopes.

    No method takes a timeout: wrap calls in :func:`trio.move_on_after` /
    :func:`trio.fail_after`, and the deadline travels with the request.

    Args:
        address: The broker's address.
    """

    def __init__(self, address: Address[ApprovalBrokerMsg]) -> None:
        self._address = address

    async def request(
        self,
        session_key: str,
        tool_name: str,
        params: Mapping[str, Any],
        *,
        risk: RiskLevel,
        reason: str,
        summary: str = "",
    ) -> Approval:
        """Open an approval for one exact tool call and return it.

        Args:
            session_key: The effective session key of the call.
            tool_name: The tool.
            params: The exact params the model asked for (only their digest is kept).
            risk: The risk level.
            reason: Why it needs approval (clipped to 512 characters).
            summary: What is approved, for humans (e.g. the command; clipped likewise).

        Raises:
            ValueError: Empty session key or tool, unknown risk, or params that are not JSON.
            ActorStopped: The broker is not running.
        """
        if not session_key or not tool_name:
            raise ValueError("an approval needs a session key and a tool name")
        if risk not in _RISKS:
            raise ValueError(f"risk must be one of {sorted(_RISKS)}")
        digest = params_digest(params)
        return await self._address.ask(Open, session_key, tool_name, digest, risk, reason, summary)

    async def approve(
        self, approval_id: str, *, actor: str, session_key: str | None = None
    ) -> DecisionResult:
        """Approve an approval by id.

        Args:
            approval_id: The id (``apr_…``).
            actor: Who approves, for the audit log (e.g. ``"telegram:42"``,
                ``"operator uid 1000"``, ``"host plugin approval"``).
            session_key: The approver's effective session key when the approval comes from
                a chat; ``None`` only for trusted routes (operator socket, host-native UI).
        """
        return await self._address.ask(Decide, approval_id, True, actor, session_key)

    async def reject(
        self, approval_id: str, *, actor: str, session_key: str | None = None
    ) -> DecisionResult:
        """Reject an approval by id (arguments as for :meth:`approve`)."""
        return await self._address.ask(Decide, approval_id, False, actor, session_key)

    async def resolve_host_decision(
        self, approval_id: str, decision: str, *, actor: str = "host approval"
    ) -> DecisionResult:
        """Apply the host's ``onResolution`` decision (a trusted route, no session check).

        ``allow-once`` and ``allow-always`` approve (once: the host does not persist
        "always", and neither does the broker); ``deny``, ``timeout``, ``cancelled`` and
        anything unknown reject.
        """
        if decision in _HOST_APPROVES:
            return await self.approve(approval_id, actor=f"{actor} ({decision})")
        return await self.reject(approval_id, actor=f"{actor} ({decision[:32]})")

    async def consume(self, session_key: str, tool_name: str, params: Mapping[str, Any]) -> bool:
        """Use an approval for this exact call; ``True`` at most once per approval.

        Succeeds only for an approved, unexpired, unused approval of the same session key,
        tool and params digest. Params that are not JSON never match.
        """
        try:
            digest = params_digest(params)
        except ValueError:
            await trio.lowlevel.checkpoint()
            return False
        return await self._address.ask(Consume, session_key, tool_name, digest)

    async def wait(self, approval_id: str) -> ApprovalOutcome:
        """Wait until the approval is decided, expires or is cancelled.

        Returns at once for a decided or unknown id. Bound it with a cancel scope; a waiter
        whose deadline passes is dropped by the broker.

        Raises:
            ActorStopped: The broker stopped before answering.
            DeadlineExceeded: The deadline passed before the broker answered.
        """
        return await self._address.ask(Wait, approval_id)

    async def get(self, approval_id: str) -> Approval | None:
        """Return an approval (live, or finished within the last TTL), or ``None``."""
        return await self._address.ask(Get, approval_id)

    async def list(self, session_key: str | None = None) -> list[Approval]:
        """Return the live approvals, oldest first, of one session key or of all."""
        return await self._address.ask(ListApprovals, session_key)

    async def discard(self, session_key: str) -> int:
        """Cancel every live approval of a session key (logout); return how many."""
        return await self._address.ask(Discard, session_key)

    async def statistics(self) -> ApprovalBrokerStatistics:
        """Return the broker's counters."""
        return await self._address.ask(GetStatistics)


# --------------------------------------------------------------------------- sweeper


class ApprovalSweeper(Ticker[ApprovalBrokerMsg]):
    """A :class:`Ticker` (a sibling child) that sends :class:`Sweep` to an approval broker.

    A full or stopped mailbox skips that tick (the next message sweeps anyway).
    """

    def __init__(
        self, address: Address[ApprovalBrokerMsg], *, interval: float = DEFAULT_SWEEP_INTERVAL
    ) -> None:
        super().__init__(address, Sweep, interval=interval, name="approval_sweeper")
