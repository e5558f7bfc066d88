"""The tool-call gate: ``before_tool_call`` and ``after_tool_call``.

``before_tool_call`` runs these steps in order (spec "Hooks"), each able to end the call:

1. **Caller.** The effective session key comes from the tool context, or, for hosts whose
   tool contexts carry no sender, from the sender ``before_dispatch`` recorded for the host
   session (group context). Never from the params: those come from the model.
2. **AuthZ.** ``authz.toolCheck`` needs the session's TIP (none: blocked, "run /identity
   login") and a CheckPermission allow for the tool; ``lowRiskBypass`` skips both for
   low-risk tools. ``authz.skillReadCheck`` checks every ``read`` of a SKILL.md, low-risk or
   not (``read`` is low-risk, so a bypass would make the check dead).
3. **Risk.** With ``authz.requireRiskApproval`` a high-risk call needs an approval
   (:mod:`agent_identity.host.hook_risk`).
4. **Credentials.** For ``exec`` the session's bound credentials are leased for this one call
   (lease id ``runId:toolCallId``) and returned as ``params.env``, over the model's ``env``.
   With ``identity.subagentTipPropagation`` a subagent session uses the credentials of the
   session its TIP was propagated from (the top of the chain).
   A call awaiting approval gets its lease at once (the host runs it with the params it
   has); if it never runs, the vault's lease TTL ends it.

**The fast path.** A tool loop runs this hook on every step, so the usual call (TIP cached,
decision cached, bindings in memory) must cost microseconds, not mailbox round trips. Each
step first asks synchronously (``get_tip_nowait``, ``check_tool_nowait``, ``assess_nowait``,
``lease_nowait``): the actor's own cache-hit code, run in the hook's task between two steps
of the actor (Trio switches tasks only at checkpoints). Only a step that must wait (a miss,
a mint, a CheckPermission call, the LLM risk check, an approval, bindings not loaded yet)
awaits, under the hook's deadline. Both paths give the same answers.

The hook fails closed: a malformed payload, an actor that is down, a deadline: the call is
blocked with a generic reason. No block reason and no log line carries a token, a credential
or the params (errors are logged by type only).

``after_tool_call`` releases the call's lease; it never raises (the host does not await it).
"""

from __future__ import annotations

import logging
import posixpath
import secrets
from collections.abc import Mapping
from typing import Any, Final

from agent_identity.actors.tip_messages import TipInfo, TipOutcome
from agent_identity.actors.tip_state import MAX_LINK_DEPTH
from agent_identity.authz import (
    normalize_tool_name,
    should_bypass_checks,
    skill_for_read,
)
from agent_identity.authz.permission_skills import READ_PATH_KEYS, SKILL_FILE_NAME
from agent_identity.host.caller import Caller, caller_for_tool_hook
from agent_identity.host.contract import PayloadError
from agent_identity.host.deps import HostDeps
from agent_identity.host.events import (
    AFTER_TOOL_CALL,
    BEFORE_TOOL_CALL,
    AfterToolCallEvent,
    BeforeToolCallEvent,
    ToolHookContext,
    call_key,
    decode_context,
    decode_event,
)
from agent_identity.host.hook_gate import SkillIndex
from agent_identity.host.hook_guard import guarded, guarded_steps, step_of_guarded_hook, within
from agent_identity.host.hook_risk import DEFAULT_LEDGER_CAPACITY, RiskStep
from agent_identity.host.results import BeforeToolCallResult, RequireApproval
from agent_identity.host.session_keys import is_subagent_key

__all__ = ["ENV_TOOLS", "ToolGate"]

logger = logging.getLogger(__name__)

#: Tools whose params take an ``env`` mapping, i.e. where bound credentials are injected.
ENV_TOOLS: Final = frozenset({"exec"})

_FAILED: Final = "Tool call blocked: the identity plugin could not check it. Try again shortly."
_NOT_SIGNED_IN: Final = (
    "Tool call blocked: you are not signed in. Run /identity login, open the link, then try again."
)
_UNAVAILABLE: Final = (
    "Tool call blocked: your identity could not be checked right now ({reason}). Try again."
)
_DENIED: Final = "Tool call blocked: {reason}."


def _call_key(event: BeforeToolCallEvent | AfterToolCallEvent, ctx: ToolHookContext) -> str | None:
    # The event's ids, else the context's: both name the same call (host contract 2.6).
    return call_key(event.run_id or ctx.run_id, event.tool_call_id or ctx.tool_call_id)


def _skill_folder(params: Mapping[str, Any]) -> str | None:
    """The folder name of a SKILL.md the params read (the OpenClaw layout names it so)."""
    for key in READ_PATH_KEYS:
        value = params.get(key)
        if isinstance(value, str) and value.strip():
            path = posixpath.normpath(value.strip().replace("\\", "/"))
            if posixpath.basename(path).lower() != SKILL_FILE_NAME.lower():
                return None
            return posixpath.basename(posixpath.dirname(path)) or SKILL_FILE_NAME
    return None


def _blocked(reason: str) -> BeforeToolCallResult:
    return BeforeToolCallResult(block=True, block_reason=reason)


class ToolGate:
    """``before_tool_call`` and ``after_tool_call``; see the module docstring.

    The steps may return without a checkpoint (the fast path,
    :func:`~agent_identity.host.hook_guard.step_of_guarded_hook`); the hooks are run by
    :func:`~agent_identity.host.hook_guard.guarded_steps`, which checkpoints once.

    Args:
        deps: The running system.
        skills: The skills each session's prompt offered (filled by ``before_agent_start``).
        ledger_capacity: Approvals remembered at once (see
            :class:`~agent_identity.host.hook_risk.RiskStep`).
    """

    def __init__(
        self,
        deps: HostDeps,
        skills: SkillIndex,
        *,
        ledger_capacity: int = DEFAULT_LEDGER_CAPACITY,
    ) -> None:
        self._deps = deps
        self._skills = skills
        self._risk = RiskStep(deps, ledger_capacity=ledger_capacity)

    # ------------------------------------------------------------------ before_tool_call

    async def before_tool_call(self, event: object, ctx: object) -> BeforeToolCallResult | None:
        """Gate, and maybe rewrite, one tool call; ``None`` lets it run unchanged."""
        # Fail closed (host contract 2.1): whatever broke, the call does not run.
        return await guarded_steps(BEFORE_TOOL_CALL, _blocked(_FAILED), self._before, event, ctx)

    @step_of_guarded_hook
    async def _before(
        self, raw_event: object, raw_ctx: object, deadline: float
    ) -> BeforeToolCallResult | None:
        event = decode_event(BEFORE_TOOL_CALL, raw_event)
        ctx = decode_context(BEFORE_TOOL_CALL, raw_ctx)
        if isinstance(event, PayloadError) or isinstance(ctx, PayloadError):
            bad = event if isinstance(event, PayloadError) else ctx
            logger.warning("before_tool_call blocked a malformed payload: %s", bad)
            return _blocked(_FAILED)
        caller = caller_for_tool_hook(
            ctx,
            senders=self._deps.senders,
            personal_session_mode=self._deps.plugin.identity.personal_session_mode,
        )
        tool = normalize_tool_name(event.tool_name)
        refusal = await self._authorize(caller, tool, event, ctx, deadline)
        if refusal is not None:
            return _blocked(refusal)
        approval: RequireApproval | None = None
        if self._deps.plugin.authz.require_risk_approval:
            step = await self._assess(caller, tool, event, ctx, deadline)
            if isinstance(step, str):
                return _blocked(step)
            approval = step
        params = await self._inject(caller, tool, event, ctx, deadline)
        if params is None and approval is None:
            return None
        return BeforeToolCallResult(params=params, require_approval=approval)

    @step_of_guarded_hook
    async def _authorize(
        self,
        caller: Caller,
        tool: str,
        event: BeforeToolCallEvent,
        ctx: ToolHookContext,
        deadline: float,
    ) -> str | None:
        """The block reason of the TIP, tool and skill-read checks, or ``None``."""
        authz = self._deps.plugin.authz
        check_tool = authz.tool_check and not should_bypass_checks(tool, authz)
        skill = self._skill_read(caller, tool, event.params) if authz.skill_read_check else None
        if not check_tool and skill is None:
            return None
        key = caller.session_key
        tips = self._deps.tips
        tip: TipOutcome | None = tips.get_tip_nowait(key)
        if tip is None:
            tip = await within(deadline, tips.get_tip(key))
        if not isinstance(tip, TipInfo):
            if tip.code == "unavailable":
                return _UNAVAILABLE.format(reason=tip.reason)
            return _NOT_SIGNED_IN
        claims = tip.claims  # decoded once, when the TIP was minted
        permission = self._deps.permission
        extra = {
            "session_key": key,
            "run_id": ctx.run_id or event.run_id,
            "session_id": ctx.session_id,
        }
        if check_tool:
            decision = permission.check_tool_nowait(claims, tool, session_key=key)
            if decision is None:
                decision = await within(deadline, permission.check_tool(claims, tool, **extra))
            if not decision.allowed:
                return _DENIED.format(reason=decision.reason)
        if skill is not None:
            decision = permission.check_skill_read_nowait(claims, skill, session_key=key)
            if decision is None:
                checked = permission.check_skill_read(claims, skill, **extra)
                decision = await within(deadline, checked)
            if not decision.allowed:
                return _DENIED.format(reason=decision.reason)
        return None

    def _skill_read(self, caller: Caller, tool: str, params: Mapping[str, Any]) -> str | None:
        """The skill whose SKILL.md a ``read`` opens: as the prompt listed it, else by folder.

        Every SKILL.md read is checked, listed or not: for a permission gate over-matching
        fails closed.
        """
        if tool != "read":
            return None
        listed = skill_for_read(params, self._skills.lookup(caller.host_session_key))
        return listed or _skill_folder(params)

    @step_of_guarded_hook
    async def _assess(
        self,
        caller: Caller,
        tool: str,
        event: BeforeToolCallEvent,
        ctx: ToolHookContext,
        deadline: float,
    ) -> RequireApproval | str | None:
        """``None``: may run; a string: the block reason; else the approval to ask for."""
        risk = self._deps.risk
        assessment = risk.assess_nowait(tool, event.params)
        if assessment is None:
            assessment = await within(deadline, risk.assess(tool, event.params))
        if not assessment.is_high:
            return None
        step = self._risk.check(
            caller.session_key, tool, event.params, assessment, _call_key(event, ctx)
        )
        return await within(deadline, step)

    @step_of_guarded_hook
    async def _inject(
        self,
        caller: Caller,
        tool: str,
        event: BeforeToolCallEvent,
        ctx: ToolHookContext,
        deadline: float,
    ) -> dict[str, Any] | None:
        """``{"env": …}`` with the session's bound credentials, or ``None`` (no change)."""
        if tool not in ENV_TOOLS:
            return None
        # Without a call id after_tool_call cannot name the lease: a random id, and the
        # vault's TTL releases it.
        lease_id = _call_key(event, ctx) or f"anonymous:{secrets.token_urlsafe(12)}"
        owner = await self._credential_owner(caller.session_key, deadline)
        vault = self._deps.vault
        overlay = vault.lease_nowait(owner, lease_id)
        if overlay is None:
            overlay = await within(deadline, vault.lease(owner, lease_id))
        if not overlay:
            return None
        current = event.params.get("env")
        env = dict(current) if isinstance(current, Mapping) else {}
        env.update(overlay)  # the user's bound credential wins over a value the model chose
        return {"env": env}

    @step_of_guarded_hook
    async def _credential_owner(self, session_key: str, deadline: float) -> str:
        """Whose bound credentials a call of ``session_key`` gets.

        A session's own, except for a subagent session when ``subagentTipPropagation`` is
        on: its TIP was handed down from the session that spawned it (``subagent_spawned``),
        so it acts for the same user and gets the credentials of the session at the top of
        that chain. A subagent whose chain is broken (no TIP, e.g. after a restart) gets its
        own, i.e. none.
        """
        if not (
            self._deps.plugin.identity.subagent_tip_propagation and is_subagent_key(session_key)
        ):
            return session_key
        tips = self._deps.tips
        owner = session_key
        for _ in range(MAX_LINK_DEPTH + 1):
            tip: TipOutcome | None = tips.get_tip_nowait(owner)
            if tip is None:
                tip = await within(deadline, tips.get_tip(owner))
            if not isinstance(tip, TipInfo) or tip.parent_key is None:
                break
            owner = tip.parent_key
        return owner

    # ------------------------------------------------------------------ after_tool_call

    async def after_tool_call(self, event: object, ctx: object) -> None:
        """Release the call's credential lease; never raises."""
        await guarded_steps(AFTER_TOOL_CALL, None, self._after, event, ctx)

    @step_of_guarded_hook
    async def _after(self, raw_event: object, raw_ctx: object, deadline: float) -> None:
        event = decode_event(AFTER_TOOL_CALL, raw_event)
        ctx = decode_context(AFTER_TOOL_CALL, raw_ctx)
        if isinstance(event, PayloadError) or isinstance(ctx, PayloadError):
            bad = event if isinstance(event, PayloadError) else ctx
            logger.warning("after_tool_call got a malformed payload: %s", bad)
            return
        lease_id = _call_key(event, ctx)
        if lease_id is None or normalize_tool_name(event.tool_name) not in ENV_TOOLS:
            return
        vault = self._deps.vault
        if vault.release_nowait(lease_id) is None:
            await within(deadline, vault.release(lease_id))

    # ------------------------------------------------------------------ host approvals

    def approval_id_for_call(self, call_key: str) -> str | None:
        """:meth:`RiskStep.approval_id_for_call <.hook_risk.RiskStep.approval_id_for_call>`."""
        return self._risk.approval_id_for_call(call_key)

    async def on_approval_resolution(self, approval_id: str, decision: str) -> bool:
        """:meth:`RiskStep.on_approval_resolution`, but never raises (False on a failure)."""
        resolve = self._risk.on_approval_resolution
        return await guarded("onResolution", False, resolve, approval_id, decision)
