"""The plugin's host hooks, as one object a gateway registers: :class:`IdentityHooks`.

Every handler takes ``(event, ctx)`` like the host's hooks (host contract 2.1): the typed
Structs of :mod:`agent_identity.host.events`, or plain mappings with the host's camelCase
keys. Each returns its result Struct (:func:`~agent_identity.host.contract.to_wire` gives the
host's JSON) or ``None`` for "no decision".

====================== ================================== ================================
hook                   what it does                       on an internal error
====================== ================================== ================================
``before_dispatch``    pre-LLM login gate, agentCheck     claims the message ("try again")
``before_agent_start`` fallback gate: steers the model    tells the model to stop
``subagent_spawned``   TIP propagation to the child       logged, nothing else
``before_tool_call``   authz, risk approval, credentials  blocks the call (fail closed)
``after_tool_call``    releases the call's credentials    logged, nothing else
====================== ================================== ================================

The gate is :mod:`~agent_identity.host.hook_gate`, the tool hooks are
:mod:`~agent_identity.host.hook_tools`.

Wiring into a gateway::

    hooks = ident.hooks                 # an IdentityHooks over the running system
    for name, handler in hooks.as_mapping().items():
        host.on(name, handler)          # names exactly as the host spells them

A high-risk call answers ``requireApproval``. The host shows it natively and later calls the
plugin's ``onResolution(decision)``; a Python gateway keeps that callback beside the result::

    result = await hooks.before_tool_call(event, ctx)
    if result is not None and result.require_approval is not None:
        approval_id = hooks.approval_id_for_call(f"{run_id}:{tool_call_id}")
        on_resolution = partial(hooks.on_approval_resolution, approval_id)

The same approval can also be decided from the chat (``/identity approve <id>``; the id is in
the description); the model's retry of the identical call then runs once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from agent_identity.host.deps import HostDeps
from agent_identity.host.events import (
    AFTER_TOOL_CALL,
    BEFORE_AGENT_START,
    BEFORE_DISPATCH,
    BEFORE_TOOL_CALL,
    SUBAGENT_SPAWNED,
    AfterToolCallEvent,
    AgentContext,
    BeforeAgentStartEvent,
    BeforeDispatchContext,
    BeforeDispatchEvent,
    BeforeToolCallEvent,
    HookName,
    SubagentContext,
    SubagentSpawnedEvent,
    ToolHookContext,
)
from agent_identity.host.hook_gate import AuthGate, SkillIndex
from agent_identity.host.hook_tools import ToolGate
from agent_identity.host.results import (
    BeforeAgentStartResult,
    BeforeDispatchResult,
    BeforeToolCallResult,
)

__all__ = ["HookHandler", "IdentityHooks"]

Payload = Mapping[str, Any]
"""A hook argument as JSON from the host: camelCase keys."""

HookHandler = Callable[[Any, Any], Awaitable[object]]
"""A registered hook: ``(event, ctx) -> result | None``."""


class IdentityHooks:
    """The five hooks of agent-identity over a running system.

    Args:
        deps: The running system's handler dependencies (``Identity.deps``).
    """

    def __init__(self, deps: HostDeps) -> None:
        skills = SkillIndex()
        self._gate = AuthGate(deps, skills)
        self._tools = ToolGate(deps, skills)

    @property
    def dispatch_active(self) -> bool:
        """Whether ``before_dispatch`` has run (``before_agent_start`` then skips auth)."""
        return self._gate.dispatch_active

    async def before_dispatch(
        self,
        event: BeforeDispatchEvent | Payload,
        ctx: BeforeDispatchContext | Payload | None = None,
    ) -> BeforeDispatchResult | None:
        """Gate an inbound message before the model: ``handled`` with a login URL, or ``None``."""
        return await self._gate.before_dispatch(event, ctx)

    async def before_agent_start(
        self,
        event: BeforeAgentStartEvent | Payload,
        ctx: AgentContext | Payload | None = None,
    ) -> BeforeAgentStartResult | None:
        """Fallback gate for hosts without ``before_dispatch``; it can only steer the model."""
        return await self._gate.before_agent_start(event, ctx)

    async def subagent_spawned(
        self,
        event: SubagentSpawnedEvent | Payload,
        ctx: SubagentContext | Payload | None = None,
    ) -> None:
        """Propagate the parent's TIP to the child session (``subagentTipPropagation``)."""
        await self._gate.subagent_spawned(event, ctx)

    async def before_tool_call(
        self,
        event: BeforeToolCallEvent | Payload,
        ctx: ToolHookContext | Payload | None = None,
    ) -> BeforeToolCallResult | None:
        """Authorize, maybe ask approval for, and inject credentials into one tool call."""
        return await self._tools.before_tool_call(event, ctx)

    async def after_tool_call(
        self,
        event: AfterToolCallEvent | Payload,
        ctx: ToolHookContext | Payload | None = None,
    ) -> None:
        """Release the call's credential lease."""
        await self._tools.after_tool_call(event, ctx)

    def approval_id_for_call(self, call_key: str) -> str | None:
        """The approval ``before_tool_call`` asked for a call (``runId:toolCallId``), if any."""
        return self._tools.approval_id_for_call(call_key)

    async def on_approval_resolution(self, approval_id: str, decision: str) -> bool:
        """Forward the host's ``onResolution(decision)`` to the approval broker; never raises.

        Returns:
            Whether the decision was recorded.
        """
        return await self._tools.on_approval_resolution(approval_id, decision)

    def as_mapping(self) -> dict[HookName, HookHandler]:
        """``{hook name: handler}`` for registration, names exactly as the host spells them."""
        return {
            BEFORE_DISPATCH: self.before_dispatch,
            BEFORE_AGENT_START: self.before_agent_start,
            SUBAGENT_SPAWNED: self.subagent_spawned,
            BEFORE_TOOL_CALL: self.before_tool_call,
            AFTER_TOOL_CALL: self.after_tool_call,
        }
