"""The approval broker's vocabulary: approvals, their status, outcomes, and the host payload.

Everything here is a plain value or a pure function: :class:`Approval` (a snapshot of one
approval), where it is in its life (:class:`ApprovalStatus`), what a waiter learns
(:class:`ApprovalOutcome`), what an approve or reject answers (:class:`DecisionResult`, with
a :class:`RefusalReason` when refused), the broker's counters, :func:`params_digest` (how an
approval is tied to the exact params of one call) and :func:`require_approval_payload` (the
host's ``requireApproval``). The actor and its rules are
:mod:`agent_identity.actors.approval_broker`; its envelopes and typed client are in
:mod:`agent_identity.actors.approval_messages`.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

__all__ = [
    "APPROVAL_ID_PREFIX",
    "DESCRIPTION_MAX_LENGTH",
    "HOST_TIMEOUT_CAP_MS",
    "MAX_APPROVAL_ID_LENGTH",
    "RISK_LEVELS",
    "TITLE_MAX_LENGTH",
    "Approval",
    "ApprovalBrokerStatistics",
    "ApprovalOutcome",
    "ApprovalStatus",
    "DecisionResult",
    "HostDecision",
    "RefusalReason",
    "RiskLevel",
    "fit_text",
    "params_digest",
    "require_approval_payload",
]

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

#: How risky a call is (the risk rules' levels).
RiskLevel = Literal["low", "medium", "high"]
#: What the host's ``onResolution`` reports.
HostDecision = Literal["allow-once", "allow-always", "deny", "timeout", "cancelled"]

#: The values of :data:`RiskLevel`, to check a level given at run time.
RISK_LEVELS: frozenset[str] = frozenset(get_args(RiskLevel))
_SEVERITY: Mapping[str, str] = {"low": "info", "medium": "warning", "high": "critical"}


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
    """What :meth:`~agent_identity.actors.approval_messages.ApprovalBrokerClient.wait` learns."""

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
    """Counters of an :class:`~agent_identity.actors.approval_broker.ApprovalBroker` run."""

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


def fit_text(text: str, limit: int) -> str:
    """Clip ``text`` to ``limit`` UTF-16 units (what the host counts), ending with an ellipsis.

    Runs of whitespace (newlines included) become one space first.
    """
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
    title = fit_text(f"Approve {approval.risk}-risk {approval.tool_name} call", TITLE_MAX_LENGTH)
    suffix = f" (approval {approval.id})"
    body = approval.reason or f"The {approval.tool_name} call needs your approval."
    if approval.summary:
        body = f"{body.rstrip('.')}: {approval.summary}"
    room = DESCRIPTION_MAX_LENGTH - sum(map(_units, suffix))
    description = fit_text(body, room) + suffix
    return {
        "title": title,
        "description": description,
        "severity": _SEVERITY[approval.risk],
        "timeoutMs": timeout_ms,
        "timeoutBehavior": "deny",
    }
