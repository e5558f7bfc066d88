"""The tool-call gate: ``before_tool_call`` and ``after_tool_call``.

``before_tool_call`` runs these steps in order (spec "Hooks"), each able to end the call:

1. **Caller.** The effective session key comes from the tool context, or, for hosts whose
   tool contexts carry no sender, from the sender ``before_dispatch`` recorded for the host
   session (group context). Never from the params: those come from the model.
2. **AuthZ.** ``authz.toolCheck`` needs the session's TIP (none: blocked, "run /identity
   login") and a CheckPermission allow for the tool; ``lowRiskBypass`` skips both for
   low-risk tools. ``authz.skillReadCheck`` checks every ``read`` of a SKILL.md, low-risk or
   not (``read`` is low-risk, so a bypass would make the check dead).
3. **Risk.** With ``authz.requireRiskApproval`` a high-risk call runs only if an approved
   approval for exactly this call (session, tool, params) can be used up; otherwise an
   approval is opened in the broker and the host is asked to show it (``requireApproval``).
   A retry of a call whose approval is still pending shows the same approval again; one
   whose approval was denied or expired is blocked once, and asking again opens a new one.
4. **Credentials.** For ``exec`` the session's bound credentials are leased for this one call
   (lease id ``runId:toolCallId``) and returned as ``params.env``, over the model's ``env``.

The hook fails closed: a malformed payload, an actor that is down, a deadline: the call is
blocked with a generic reason. No block reason and no log line carries a token, a credential
or the params (errors are logged by type only).

``after_tool_call`` releases the call's lease; it never raises (the host does not await it).

**Approvals through the host.** The host shows ``requireApproval`` natively and reports the
decision to the plugin's ``onResolution``; the gateway forwards it to
:meth:`ToolGate.on_approval_resolution` with the approval id from
:meth:`ToolGate.approval_id_for_call`. On an allow the host runs the call at once, so that
run uses the approval up. Hosts before 2026.3.28 ignore ``requireApproval`` and run the call:
``requireRiskApproval`` needs a newer host. A call awaiting approval gets its lease at once
(the host runs it with the params it has); if it never runs, the vault's lease TTL ends it.
"""

from __future__ import annotations

import logging
import posixpath
import secrets
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import msgspec
import trio

from agent_identity.actors.approval_broker import (
    Approval,
    ApprovalStatus,
    params_digest,
    require_approval_payload,
)
from agent_identity.actors.tip_messages import TipInfo
from agent_identity.authz import (
    TipClaims,
    TipClaimsError,
    decode_tip_claims,
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
    decode_context,
    decode_event,
)
from agent_identity.host.hook_gate import SkillIndex, guarded
from agent_identity.host.results import (
    ALLOW_ALWAYS,
    ALLOW_ONCE,
    DENY,
    BeforeToolCallResult,
    RequireApproval,
    approval_request,
)

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
_REJECTED: Final = (
    "Tool call blocked: the user did not approve this {tool} call (denied or timed out)."
)
_EXPIRED: Final = "Tool call blocked: the approval for this {tool} call expired undecided."
_NOT_JSON: Final = "Tool call blocked: this {tool} call needs approval but its params are not JSON."
_SUMMARY_KEYS: Final = ("command", "path", "file_path", "filePath", "url")
#: Approvals remembered by the gate at once (the broker bounds its own table too).
DEFAULT_LEDGER_CAPACITY: Final = 10_000
#: Sessions whose decoded TIP the gate remembers at once.
DEFAULT_CLAIMS_CAPACITY: Final = 4096

_Fingerprint = tuple[str, str, str]  # effective session key, tool, params digest


@dataclass(frozen=True, slots=True)
class _Asked:
    """An approval this gate opened, with what it needs to use it up on a host allow."""

    approval_id: str
    fingerprint: _Fingerprint
    params: Mapping[str, Any]


class _Ledger:
    """The approvals this gate opened: by id, by exact call, by the host's call key. Bounded."""

    def __init__(self, capacity: int = DEFAULT_LEDGER_CAPACITY) -> None:
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


class _ClaimsMemo:
    """Each session's current TIP with its decoded claims; bounded, oldest entry first out.

    Decoding the ~1 KB JWT for every checked call cost more than the rest of a cached
    permission check; a TIP never changes, so it is decoded again only when the session's
    TIP is another one (a refresh). Entries share the token object of the TIP cache.
    """

    def __init__(self, capacity: int = DEFAULT_CLAIMS_CAPACITY) -> None:
        self._capacity = capacity
        self._entries: dict[str, tuple[str, TipClaims]] = {}

    def claims(self, session_key: str, token: str) -> TipClaims | str:
        """The claims of ``token``; the token itself if undecodable (the checker says why)."""
        entry = self._entries.get(session_key)
        if entry is not None and (entry[0] is token or entry[0] == token):
            return entry[1]
        try:
            claims = decode_tip_claims(token)
        except TipClaimsError:
            return token
        self._entries.pop(session_key, None)  # re-inserted last: the oldest stays first
        if len(self._entries) >= self._capacity:
            del self._entries[next(iter(self._entries))]
        self._entries[session_key] = (token, claims)
        return claims

    def forget(self, session_key: str) -> None:
        """Drop a session's entry (it has no TIP any more)."""
        self._entries.pop(session_key, None)


def _call_key(event: BeforeToolCallEvent | AfterToolCallEvent, ctx: ToolHookContext) -> str | None:
    # The event's ids, else the context's: both name the same call (host contract 2.6).
    filled = msgspec.structs.replace(
        event,
        run_id=event.run_id or ctx.run_id,
        tool_call_id=event.tool_call_id or ctx.tool_call_id,
    )
    return filled.call_key


def _summary(params: Mapping[str, Any]) -> str:
    texts = (params.get(key) for key in _SUMMARY_KEYS)  # what the approver should see
    return next((text for text in texts if isinstance(text, str) and text.strip()), "")


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

    Args:
        deps: The running system.
        skills: The skills each session's prompt offered (filled by ``before_agent_start``).
        ledger_capacity: Approvals remembered at once (the oldest are forgotten first: a
            retry of a forgotten call just opens a new approval).
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
        self._ledger = _Ledger(max(1, ledger_capacity))
        self._claims = _ClaimsMemo()

    # ------------------------------------------------------------------ before_tool_call

    async def before_tool_call(self, event: object, ctx: object) -> BeforeToolCallResult | None:
        """Gate, and maybe rewrite, one tool call; ``None`` lets it run unchanged."""
        # Fail closed (host contract 2.1): whatever broke, the call does not run.
        return await guarded(BEFORE_TOOL_CALL, _blocked(_FAILED), self._before, event, ctx)

    async def _before(self, raw_event: object, raw_ctx: object) -> BeforeToolCallResult | None:
        event = decode_event(BEFORE_TOOL_CALL, raw_event)
        ctx = decode_context(BEFORE_TOOL_CALL, raw_ctx)
        if isinstance(event, PayloadError) or isinstance(ctx, PayloadError):
            bad = event if isinstance(event, PayloadError) else ctx
            logger.warning("before_tool_call blocked a malformed payload: %s", bad)
            await trio.lowlevel.checkpoint()
            return _blocked(_FAILED)
        caller = caller_for_tool_hook(
            ctx,
            senders=self._deps.senders,
            personal_session_mode=self._deps.plugin.identity.personal_session_mode,
        )
        tool = normalize_tool_name(event.tool_name)
        refusal = await self._authorize(caller, tool, event, ctx)
        if refusal is not None:
            return _blocked(refusal)
        approval: RequireApproval | None = None
        if self._deps.plugin.authz.require_risk_approval:
            step = await self._risk(caller, tool, event.params, _call_key(event, ctx))
            if isinstance(step, str):
                return _blocked(step)
            approval = step
        params = await self._inject(caller, tool, event, ctx)
        if params is None and approval is None:
            return None
        return BeforeToolCallResult(params=params, require_approval=approval)

    async def _authorize(
        self, caller: Caller, tool: str, event: BeforeToolCallEvent, ctx: ToolHookContext
    ) -> str | None:
        """The block reason of the TIP, tool and skill-read checks, or ``None``."""
        authz = self._deps.plugin.authz
        check_tool = authz.tool_check and not should_bypass_checks(tool, authz)
        skill = self._skill_read(caller, tool, event.params) if authz.skill_read_check else None
        if not check_tool and skill is None:
            await trio.lowlevel.checkpoint()
            return None
        tip = await self._deps.tips.get_tip(caller.session_key)
        if not isinstance(tip, TipInfo):
            self._claims.forget(caller.session_key)
            if tip.code == "unavailable":
                return _UNAVAILABLE.format(reason=tip.reason)
            return _NOT_SIGNED_IN
        permission = self._deps.permission
        claims = self._claims.claims(caller.session_key, tip.token)
        extra = {
            "session_key": caller.session_key,
            "run_id": ctx.run_id or event.run_id,
            "session_id": ctx.session_id,
        }
        if check_tool:
            decision = await permission.check_tool(claims, tool, **extra)
            if not decision.allowed:
                return _DENIED.format(reason=decision.reason)
        if skill is not None:
            decision = await permission.check_skill_read(claims, skill, **extra)
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

    async def _risk(
        self, caller: Caller, tool: str, params: Mapping[str, Any], call_key: str | None
    ) -> RequireApproval | str | None:
        """``None``: may run; a string: the block reason; else the approval to ask for."""
        assessment = await self._deps.risk.assess(tool, params)
        if not assessment.is_high:
            return None
        try:
            fingerprint = (caller.session_key, tool, params_digest(params))
        except ValueError:
            return _NOT_JSON.format(tool=tool)
        approvals = self._deps.approvals
        known = self._ledger.for_call(fingerprint)
        if await approvals.consume(caller.session_key, tool, params):
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
            caller.session_key,
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

    async def _inject(
        self, caller: Caller, tool: str, event: BeforeToolCallEvent, ctx: ToolHookContext
    ) -> dict[str, Any] | None:
        """``{"env": …}`` with the session's bound credentials, or ``None`` (no change)."""
        if tool not in ENV_TOOLS:
            await trio.lowlevel.checkpoint()
            return None
        # Without a call id after_tool_call cannot name the lease: a random id, and the
        # vault's TTL releases it.
        lease_id = _call_key(event, ctx) or f"anonymous:{secrets.token_urlsafe(12)}"
        overlay = await self._deps.vault.lease(caller.session_key, lease_id)
        if not overlay:
            return None
        current = event.params.get("env")
        env = dict(current) if isinstance(current, Mapping) else {}
        env.update(overlay)  # the user's bound credential wins over a value the model chose
        return {"env": env}

    # ------------------------------------------------------------------ after_tool_call

    async def after_tool_call(self, event: object, ctx: object) -> None:
        """Release the call's credential lease; never raises."""
        await guarded(AFTER_TOOL_CALL, None, self._after, event, ctx)

    async def _after(self, raw_event: object, raw_ctx: object) -> None:
        event = decode_event(AFTER_TOOL_CALL, raw_event)
        ctx = decode_context(AFTER_TOOL_CALL, raw_ctx)
        if isinstance(event, PayloadError) or isinstance(ctx, PayloadError):
            bad = event if isinstance(event, PayloadError) else ctx
            logger.warning("after_tool_call got a malformed payload: %s", bad)
            await trio.lowlevel.checkpoint()
            return
        lease_id = _call_key(event, ctx)
        if lease_id is None or normalize_tool_name(event.tool_name) not in ENV_TOOLS:
            await trio.lowlevel.checkpoint()
            return
        await self._deps.vault.release(lease_id)

    # ------------------------------------------------------------------ host approvals

    def approval_id_for_call(self, call_key: str) -> str | None:
        """The approval this gate asked the host to show for a call (``runId:toolCallId``)."""
        return self._ledger.for_call_key(call_key)

    async def on_approval_resolution(self, approval_id: str, decision: str) -> bool:
        """Apply the host's ``onResolution(decision)`` to an approval; never raises.

        Args:
            approval_id: The approval (from :meth:`approval_id_for_call`).
            decision: ``allow-once``, ``allow-always``, ``deny``, ``timeout`` or ``cancelled``.

        Returns:
            Whether the broker recorded the decision (False: unknown, expired or decided).
        """
        return await guarded("onResolution", False, self._resolve, approval_id, decision)

    async def _resolve(self, approval_id: str, decision: str) -> bool:
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
