"""The approval broker's messages and the typed client callers use.

Callers never build these envelopes: they hold an :class:`ApprovalBrokerClient`
(``ApprovalBrokerClient(broker.address)``) and call its methods. The envelopes are internal
to the process and never serialised; they carry the digest of a call's params, never the
params themselves (they may hold secrets).

Approve and reject take the approver's session key when the decision comes from a chat;
transports must never let model output or tool params reach them (see
:mod:`agent_identity.actors.approval_broker` for who may decide).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import trio

from agent_identity.actors.approval_types import (
    RISK_LEVELS,
    Approval,
    ApprovalBrokerStatistics,
    ApprovalOutcome,
    DecisionResult,
    RiskLevel,
    params_digest,
)
from agent_identity.kernel import Address, Request

__all__ = [
    "ApprovalBrokerClient",
    "ApprovalBrokerMsg",
    "Consume",
    "Decide",
    "Discard",
    "Get",
    "GetStatistics",
    "ListApprovals",
    "Open",
    "Sweep",
    "Wait",
]

#: The host's ``onResolution`` decisions that approve; anything else rejects.
_HOST_APPROVES: frozenset[str] = frozenset({"allow-once", "allow-always"})


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
    """Expire old approvals and drop stale waiters.

    Sent by :class:`~agent_identity.actors.approval_broker.ApprovalSweeper`.
    """


ApprovalBrokerMsg = (
    Open | Decide | Consume | Wait | Get | ListApprovals | Discard | GetStatistics | Sweep
)


class ApprovalBrokerClient:
    """Typed access to an :class:`~agent_identity.actors.approval_broker.ApprovalBroker`.

    Callers never see envelopes. No method takes a timeout: wrap calls in
    :func:`trio.move_on_after` / :func:`trio.fail_after`, and the deadline travels with the
    request.

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
        if risk not in RISK_LEVELS:
            raise ValueError(f"risk must be one of {sorted(RISK_LEVELS)}")
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
