"""The risk step of ``before_tool_call``: approvals through the broker and the host.

With ``authz.requireRiskApproval`` a high-risk call runs only if an approved approval for
exactly this call (session, tool, params) can be used up; otherwise an approval is opened in
the broker and the host is asked to show it (``requireApproval``). A retry of a call whose
approval is still pending shows the same approval again; one whose approval was denied or
expired is blocked once, and asking again opens a new one.

**Approvals through the host.** The host shows ``requireApproval`` natively and reports the
decision to the plugin's ``onResolution``; the gateway forwards it to
:meth:`RiskStep.on_approval_resolution` with the approval id from
:meth:`RiskStep.approval_id_for_call`. On an allow the host runs the call at once, so that
run uses the approval up. Hosts before 2026.3.28 ignore ``requireApproval`` and run the
call: ``requireRiskApproval`` needs a newer host.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import trio

from agent_identity.actors.approval_types import (
    Approval,
    ApprovalStatus,
    params_digest,
    require_approval_payload,
)
from agent_identity.authz import RiskAssessment
from agent_identity.host.deps import HostDeps
from agent_identity.host.results import (
    ALLOW_ALWAYS,
    ALLOW_ONCE,
    DENY,
    RequireApproval,
    approval_request,
)

__all__ = ["DEFAULT_LEDGER_CAPACITY", "RiskStep"]

#: Approvals remembered by the gate at once (the broker bounds its own table too).
DEFAULT_LEDGER_CAPACITY: Final = 10_000

_REJECTED: Final = (
    "Tool call blocked: the user did not approve this {tool} call (denied or timed out)."
)
_EXPIRED: Final = "Tool call blocked: the approval for this {tool} call expired undecided."
_NOT_JSON: Final = "Tool call blocked: this {tool} call needs approval but its params are not JSON."
_SUMMARY_KEYS: Final = ("command", "path", "file_path", "filePath", "url")

_Fingerprint = tuple[str, str, str]  # effective session key, tool, params digest


@dataclass(frozen=True, slots=True)
class _Asked:
    """An approval this gate opened, with what it needs to use it up on a host allow."""

    approval_id: str
    fingerprint: _Fingerprint
    params: Mapping[str, Any]


class _Ledger:
    """The approvals this gate opened: by id, by exact call, by the host's call key. Bounded."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._asked: OrderedDict[str, _Asked] = OrderedDict()
        self._by_call: dict[_Fingerprint, str] = {}
        self._by_call_key: OrderedDict[str, str] = OrderedDict()

    def remember(self, asked: _Asked, call_key: str | None) -> None:
        self._asked[asked.approval_id] = asked
        self._by_call[asked.fingerprint] = asked.approval_id
        if call_key is not None:
            self._by_call_key[call_key] = asked.approval_id
        while len(self._asked) > self._capacity:
            self.forget(next(iter(self._asked)))
        while len(self._by_call_key) > self._capacity:
            self._by_call_key.popitem(last=False)

    def get(self, approval_id: str) -> _Asked | None:
        return self._asked.get(approval_id)

    def for_call(self, fingerprint: _Fingerprint) -> str | None:
        return self._by_call.get(fingerprint)

    def for_call_key(self, call_key: str) -> str | None:
        return self._by_call_key.get(call_key)

    def forget(self, approval_id: str) -> None:
        asked = self._asked.pop(approval_id, None)
        if asked is not None and self._by_call.get(asked.fingerprint) == approval_id:
            del self._by_call[asked.fingerprint]


def _summary(params: Mapping[str, Any]) -> str:
    texts = (params.get(key) for key in _SUMMARY_KEYS)  # what the approver should see
    return next((text for text in texts if isinstance(text, str) and text.strip()), "")


class RiskStep:
    """Decides what a high-risk call needs; see the module docstring.

    Args:
        deps: The running system (the approval broker, the ``authz`` config).
        ledger_capacity: Approvals remembered at once (the oldest are forgotten first: a
            retry of a forgotten call just opens a new approval).
    """

    def __init__(self, deps: HostDeps, *, ledger_capacity: int = DEFAULT_LEDGER_CAPACITY) -> None:
        self._deps = deps
        self._ledger = _Ledger(max(1, ledger_capacity))

    async def check(
        self,
        session_key: str,
        tool: str,
        params: Mapping[str, Any],
        assessment: RiskAssessment,
        call_key: str | None,
    ) -> RequireApproval | str | None:
        """``None``: may run; a string: the block reason; else the approval to ask for.

        Args:
            session_key: The caller's effective session key.
            tool: The normalised tool name.
            params: The call's params.
            assessment: The call's risk (only a high one needs anything).
            call_key: The host's ``runId:toolCallId``, if the call has one.
        """
        if not assessment.is_high:
            await trio.lowlevel.checkpoint()
            return None
        try:
            fingerprint = (session_key, tool, params_digest(params))
        except ValueError:
            await trio.lowlevel.checkpoint()
            return _NOT_JSON.format(tool=tool)
        approvals = self._deps.approvals
        known = self._ledger.for_call(fingerprint)
        if await approvals.consume(session_key, tool, params):
            if known is not None:
                self._ledger.forget(known)
            return None
        if known is not None:
            previous = await approvals.get(known)
            status = previous.status if previous is not None else None
            if previous is not None and status is ApprovalStatus.PENDING:
                remaining = previous.expires_at - trio.current_time()
                self._ledger.remember(_Asked(known, fingerprint, params), call_key)
                return self._require(previous, remaining)
            self._ledger.forget(known)
            if status is ApprovalStatus.REJECTED:
                return _REJECTED.format(tool=tool)
            if status is ApprovalStatus.EXPIRED:
                return _EXPIRED.format(tool=tool)
        approval = await approvals.request(
            session_key,
            tool,
            params,
            risk=assessment.risk,
            reason=assessment.reason,
            summary=_summary(params),
        )
        self._ledger.remember(_Asked(approval.id, fingerprint, params), call_key)
        return self._require(approval, float(self._deps.plugin.authz.approval_ttl_seconds))

    @staticmethod
    def _require(approval: Approval, seconds: float) -> RequireApproval:
        payload = require_approval_payload(approval)
        return approval_request(
            str(payload["title"]),
            str(payload["description"]),
            severity="critical",  # only high-risk calls ask
            timeout_ms=round(seconds * 1000),
            timeout_behavior="deny",
            # "allow-always" is not offered: neither the host nor the broker persists it.
            allowed_decisions=[ALLOW_ONCE, DENY],
        )

    def approval_id_for_call(self, call_key: str) -> str | None:
        """The approval this gate asked the host to show for a call (``runId:toolCallId``)."""
        return self._ledger.for_call_key(call_key)

    async def on_approval_resolution(self, approval_id: str, decision: str) -> bool:
        """Apply the host's ``onResolution(decision)`` to an approval.

        Args:
            approval_id: The approval (from :meth:`approval_id_for_call`).
            decision: ``allow-once``, ``allow-always``, ``deny``, ``timeout`` or ``cancelled``.

        Returns:
            Whether the broker recorded the decision (False: unknown, expired or decided).
        """
        approvals = self._deps.approvals
        result = await approvals.resolve_host_decision(approval_id, decision)
        asked = self._ledger.get(approval_id)
        status = result.approval.status if result.approval is not None else None
        allowed = decision in (ALLOW_ONCE, ALLOW_ALWAYS)
        if allowed and asked is not None and status is ApprovalStatus.APPROVED:
            # The host runs an allowed call right away (even if the approval was already
            # approved from the chat): that run is the approval's one use.
            session_key, tool, _ = asked.fingerprint
            await approvals.consume(session_key, tool, asked.params)
            self._ledger.forget(approval_id)
        # A denial stays in the ledger: a retry of the same call is told it was denied.
        return result.ok
