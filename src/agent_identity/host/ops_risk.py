"""Risk and approvals: ``/identity risk|risk-patterns|approve|reject`` and their tools.

* ``risk <command>`` / ``identity_risk_check`` rate a shell command, or (tool only) any tool
  call given as ``toolName`` + ``params``, with the configured evaluator: the rules, then the
  LLM for a ``medium`` when ``authz.enableLlmRiskCheck`` is on. Works without login.
* ``risk-patterns`` / ``identity_list_risk_patterns`` list the rule table.
* ``approve <id>`` / ``reject <id>`` / ``identity_approve_tool`` decide a pending approval of
  a high-risk tool call (``authz.requireRiskApproval``).

Who may decide an approval: the broker checks the approver's session when it is given one
(:mod:`agent_identity.actors.approval_broker`). Every caller passes its effective session
key, so session B can neither approve nor reject session A's approval, except the local
identity server's caller (``kind == "local"``): only the socket owner, i.e. the gateway's
operator, can reach it, so it decides any session's approval. ``Caller.operator`` is *not*
enough: the host marks every WebChat command as coming from an authorized sender.

``identity_approve_tool`` is never offered to the agent (``agent_visible=False`` in
:mod:`~agent_identity.host.tool_specs`): a model must not approve its own calls.

The command and its tool report the same :class:`Outcome`. The rated command is not echoed
back (it may hold a secret the user typed), nor an approval's summary.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, TypeVar

import trio

from agent_identity.actors.approval_types import RefusalReason
from agent_identity.authz import RISK_LEVELS, RiskAssessment, list_risk_patterns
from agent_identity.authz.risk_tools import normalize_tool_name
from agent_identity.host.caller import Caller
from agent_identity.host.contract import Approve, IdentityCommand, Reject, Risk, RiskPatterns
from agent_identity.host.deps import HostDeps
from agent_identity.host.outcome import CommandHandler, OperationError, Outcome, ToolHandler
from agent_identity.kernel import KernelError

__all__ = [
    "COMMANDS",
    "TOOLS",
    "decide_approval",
    "rate_command",
    "rate_tool_call",
    "risk_patterns",
]

_C = TypeVar("_C")

_EXEC: Final = "exec"
_REFUSAL_CODES: Final[Mapping[RefusalReason, str]] = {
    RefusalReason.UNKNOWN: "approval_not_found",
    RefusalReason.EXPIRED: "approval_expired",
    RefusalReason.ALREADY_DECIDED: "approval_already_decided",
    RefusalReason.WRONG_SESSION: "approval_wrong_session",
}
_UNAVAILABLE: Final = "Approvals are not available right now. Please try again in a moment."


# ------------------------------------------------------------------ rating


def _rated(deps: HostDeps, tool: str, assessment: RiskAssessment) -> Outcome:
    """The outcome of one assessment (shared by the command and both tool forms)."""
    matched = [rule for rule in list_risk_patterns() if rule.id in assessment.rule_ids]
    matched.sort(key=lambda rule: assessment.rule_ids.index(rule.id))
    needs_approval = assessment.is_high and deps.plugin.authz.require_risk_approval
    # The tool name may come from the model: shown clipped, it cannot flood the reply.
    lines = [f"Risk: {assessment.risk.upper()} ({tool[:64]})", f"Reason: {assessment.reason}"]
    if matched:
        lines.append("Matched rules: " + ", ".join(f"{r.id} ({r.level})" for r in matched))
    if assessment.source == "llm" and assessment.rule_risk is not None:
        lines.append(f"Rated by the LLM reviewer; the rules said {assessment.rule_risk.upper()}.")
    if assessment.llm_error is not None:
        lines.append(f"LLM review failed ({assessment.llm_error}); the rules' rating stands.")
    if needs_approval:
        lines.append("A call like this needs your approval before it runs.")
    details: dict[str, Any] = {
        "toolName": tool,
        **assessment.to_wire(),
        "matchedRules": [{"id": r.id, "level": r.level, "reason": r.reason} for r in matched],
        "requiresApproval": needs_approval,
    }
    return Outcome("\n".join(lines), details)


async def rate_command(deps: HostDeps, command: str) -> Outcome:
    """Rate a shell command as an ``exec`` call.

    Raises:
        OperationError: ``invalid_params``: the command is empty.
    """
    if not command.strip():
        raise OperationError("Give the shell command to rate.", code="invalid_params")
    return _rated(deps, _EXEC, await deps.risk.assess_command(command))


async def rate_tool_call(deps: HostDeps, tool_name: str, params: Mapping[str, Any]) -> Outcome:
    """Rate one tool call (``bash`` and ``apply-patch`` are normalised as the host does).

    Raises:
        OperationError: ``invalid_params``: the tool name is empty.
    """
    tool = normalize_tool_name(tool_name)
    if not tool:
        raise OperationError("Give the name of the tool to rate.", code="invalid_params")
    return _rated(deps, tool, await deps.risk.assess(tool, params))


def risk_patterns(deps: HostDeps) -> Outcome:
    """The rule table: one line per rule (id and reason) for people, every field for programs."""
    rules = list_risk_patterns()
    counts = {level: sum(rule.level == level for rule in rules) for level in RISK_LEVELS}
    gate = "on" if deps.plugin.authz.require_risk_approval else "off"
    lines = [
        f"{len(rules)} risk rules ({counts['high']} high, {counts['medium']} medium); a call "
        "no rule matches is low.",
        f"High-risk calls need approval: {gate} (authz.requireRiskApproval).",
    ]
    for level in reversed(RISK_LEVELS):
        chosen = [rule for rule in rules if rule.level == level]
        if chosen:
            lines.append(f"{level.upper()}:")
            lines.extend(f"• {rule.id}: {rule.reason}" for rule in chosen)
    details = {
        "count": len(rules),
        "levels": counts,
        "requireRiskApproval": deps.plugin.authz.require_risk_approval,
        "rules": [rule.to_wire() for rule in rules],
    }
    return Outcome("\n".join(lines), details)


# ------------------------------------------------------------------ approvals


def _actor(caller: Caller) -> str:
    """Who decided, for the broker's audit log (ids only, never a token)."""
    if caller.kind == "local":
        return "local operator"
    if caller.sender_id is not None:
        return f"{caller.channel or 'chat'}:{caller.sender_id}"
    return f"session {caller.session_key}"


async def decide_approval(
    deps: HostDeps, caller: Caller, approval_id: str, *, approve: bool
) -> Outcome:
    """Approve or reject a pending approval for ``caller`` (see the module docstring).

    Raises:
        OperationError: ``invalid_params`` (no id), ``approval_not_found``,
            ``approval_expired``, ``approval_already_decided``, ``approval_wrong_session``
            or ``unavailable`` (the broker is not running).
    """
    wanted = approval_id.strip()
    if not wanted:
        raise OperationError("Give the approval id.", code="invalid_params")
    # Only the socket owner may decide for any session; everyone else for their own.
    session_key = None if caller.kind == "local" else caller.session_key
    decide = deps.approvals.approve if approve else deps.approvals.reject
    try:
        result = await decide(wanted, actor=_actor(caller), session_key=session_key)
    except KernelError:
        raise OperationError(_UNAVAILABLE, code="unavailable") from None
    if not result.ok or result.approval is None:
        code = _REFUSAL_CODES.get(result.refusal or RefusalReason.UNKNOWN, "approval_not_found")
        raise OperationError(result.message, code=code)
    approval = result.approval
    details = {
        "approvalId": approval.id,
        "decision": "approved" if approve else "rejected",
        "toolName": approval.tool_name,
        "risk": approval.risk,
    }
    return Outcome(result.message, details)


# ------------------------------------------------------------------ handler tables


def _command(
    kind: type[_C], run: Callable[[HostDeps, Caller, _C], Awaitable[Outcome]]
) -> CommandHandler:
    """A table entry for commands of type ``kind`` (the dispatcher looks handlers up by type)."""

    async def handler(deps: HostDeps, caller: Caller, command: IdentityCommand) -> Outcome:
        if not isinstance(command, kind):  # pragma: no cover - the table maps type → handler
            raise TypeError(f"expected {kind.__name__}, got {type(command).__name__}")
        return await run(deps, caller, command)

    return handler


async def _risk(deps: HostDeps, _caller: Caller, command: Risk) -> Outcome:
    return await rate_command(deps, command.command)


async def _patterns(deps: HostDeps, _caller: Caller, _command_: RiskPatterns) -> Outcome:
    await trio.lowlevel.checkpoint()  # nothing to wait for; handlers are still checkpoints
    return risk_patterns(deps)


async def _approve(deps: HostDeps, caller: Caller, command: Approve) -> Outcome:
    return await decide_approval(deps, caller, command.approval_id, approve=True)


async def _reject(deps: HostDeps, caller: Caller, command: Reject) -> Outcome:
    return await decide_approval(deps, caller, command.approval_id, approve=False)


def _text(params: Mapping[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None or isinstance(value, str):
        return value
    raise OperationError(f"{name}: expected a string.", code="invalid_params")


async def _risk_check_tool(deps: HostDeps, _caller: Caller, params: Mapping[str, Any]) -> Outcome:
    """``identity_risk_check``: ``toolName`` (+ ``params``) rates that call, else ``command``.

    With both, ``command`` joins the call's params unless they have one (``toolName:
    process`` with a ``command`` is rated on that command).
    """
    command = _text(params, "command")
    tool_name = _text(params, "toolName")
    if tool_name is None:
        if command is None:
            raise OperationError("Give a command, or a toolName.", code="invalid_params")
        return await rate_command(deps, command)
    raw = params.get("params")
    call: dict[str, Any] = dict(raw) if isinstance(raw, Mapping) else {}
    if command is not None:
        call.setdefault("command", command)
    return await rate_tool_call(deps, tool_name, call)


async def _patterns_tool(deps: HostDeps, _caller: Caller, _params: Mapping[str, Any]) -> Outcome:
    await trio.lowlevel.checkpoint()
    return risk_patterns(deps)


async def _approve_tool(deps: HostDeps, caller: Caller, params: Mapping[str, Any]) -> Outcome:
    approval_id = _text(params, "approval_id")
    return await decide_approval(deps, caller, approval_id or "", approve=True)


COMMANDS: Final[Mapping[type, CommandHandler]] = {
    Risk: _command(Risk, _risk),
    RiskPatterns: _command(RiskPatterns, _patterns),
    Approve: _command(Approve, _approve),
    Reject: _command(Reject, _reject),
}
"""The ``/identity`` subcommands of this module, by command type."""

TOOLS: Final[Mapping[str, ToolHandler]] = {
    "identity_risk_check": _risk_check_tool,
    "identity_list_risk_patterns": _patterns_tool,
    "identity_approve_tool": _approve_tool,
}
"""The tools of this module, by name (``identity_approve_tool`` is user-only, see above)."""
