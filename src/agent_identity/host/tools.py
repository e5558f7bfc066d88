"""The ``identity_*`` agent tools: definitions per caller, validation, execution.

A host registers tools through a *factory* that receives the trusted tool context (host
contract 5); :meth:`IdentityTools.for_context` is that factory: it returns the agent-visible
tools, each bound to the caller derived from the context, never from params. Params come
from the model: they are validated against the tool's JSON Schema first and a failure is a
:class:`ToolError`, raised, as the host expects tools to fail.

``identity_approve_tool`` is never offered to the agent (a model must not approve its own
calls): :meth:`IdentityTools.for_context` leaves it out and :meth:`IdentityTools.execute`
refuses it unless the caller is a user-facing surface (``include_hidden``; the local
identity server).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent_identity.host.caller import Caller, caller_for_tool
from agent_identity.host.contract import PayloadError, decode_as
from agent_identity.host.deps import HostDeps
from agent_identity.host.events import ToolContext
from agent_identity.host.outcome import OperationError, ToolHandler
from agent_identity.host.results import ToolResult
from agent_identity.host.tool_specs import TOOL_SPECS, ToolSpec, tool_spec, validate_params

__all__ = ["IdentityTools", "ToolDefinition", "ToolError"]

logger = logging.getLogger(__name__)

Execute = Callable[..., Awaitable[ToolResult]]


class ToolError(Exception):
    """A tool call that failed; the message is safe to show (no secrets).

    Args:
        message: What went wrong, for the model and the user.
        code: Stable reason: ``unknown_tool``, ``invalid_params``, ``internal`` or the
            operation's own code (``not_logged_in`` …).
    """

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True, slots=True)
class ToolDefinition:
    """One tool as a host registers it (``AgentTool``), bound to one caller.

    Attributes:
        name: The tool name.
        label: Short display label.
        description: What the model reads.
        parameters: The JSON Schema of the params (a private copy).
        execute: ``await execute(tool_call_id, params, signal=None, on_update=None)``.
    """

    name: str
    label: str
    description: str
    parameters: dict[str, Any]
    execute: Execute = field(repr=False)

    def to_wire(self) -> dict[str, Any]:
        """The definition without ``execute``, as JSON (``GET /tools``, a bridge)."""
        return {
            "name": self.name,
            "label": self.label,
            "description": self.description,
            "parameters": self.parameters,
        }


class IdentityTools:
    """Executes ``identity_*`` tools for trusted callers.

    Args:
        deps: The running system's handler dependencies.
        handlers: Tool name → operation handler (see ``ops_*``).
    """

    def __init__(self, deps: HostDeps, handlers: Mapping[str, ToolHandler]) -> None:
        self._deps = deps
        self._handlers = dict(handlers)
        self.calls = 0
        self.failures = 0

    def specs(self, *, include_hidden: bool = False) -> tuple[ToolSpec, ...]:
        """The implemented tools' specs (agent-visible only unless ``include_hidden``)."""
        return tuple(
            spec
            for spec in TOOL_SPECS
            if spec.name in self._handlers and (include_hidden or spec.agent_visible)
        )

    def caller(self, ctx: ToolContext | Mapping[str, Any] | None) -> Caller:
        """The caller of a tool context (an empty context is the host's main session).

        Raises:
            ToolError: The context is malformed.
        """
        decoded = decode_as(ToolContext, {} if ctx is None else ctx, kind="tool context")
        if isinstance(decoded, PayloadError):
            raise ToolError(str(decoded), code="invalid_context")
        return caller_for_tool(
            decoded,
            senders=self._deps.senders,
            personal_session_mode=self._deps.plugin.identity.personal_session_mode,
        )

    def for_context(self, ctx: ToolContext | Mapping[str, Any] | None) -> list[ToolDefinition]:
        """The tool factory: the agent-visible tools bound to the context's caller.

        Raises:
            ToolError: The context is malformed.
        """
        caller = self.caller(ctx)
        return [self._bind(spec, caller) for spec in self.specs()]

    def _bind(self, spec: ToolSpec, caller: Caller) -> ToolDefinition:
        async def execute(
            tool_call_id: str | None = None,
            params: object = None,
            signal: object = None,
            on_update: object = None,
        ) -> ToolResult:
            del tool_call_id, signal, on_update  # the host's signature; unused here
            return await self.execute_for(caller, spec.name, params)

        return ToolDefinition(
            spec.name, spec.label, spec.description, spec.json_schema(), execute=execute
        )

    async def execute(
        self,
        name: str,
        params: object,
        ctx: ToolContext | Mapping[str, Any] | None = None,
    ) -> ToolResult:
        """Run an agent-visible tool for the caller of ``ctx``.

        Raises:
            ToolError: Unknown or hidden tool, invalid params, or the operation failed.
        """
        return await self.execute_for(self.caller(ctx), name, params)

    async def execute_for(
        self, caller: Caller, name: str, params: object, *, include_hidden: bool = False
    ) -> ToolResult:
        """Run tool ``name`` with ``params`` for ``caller``.

        Args:
            caller: Who calls (trusted).
            name: The tool name.
            params: The params (untrusted; ``None`` means ``{}``).
            include_hidden: Allow tools that are never offered to the agent (user surfaces).

        Raises:
            ToolError: Unknown or hidden tool, invalid params, or the operation failed.
        """
        spec = tool_spec(name)
        handler = self._handlers.get(name)
        if spec is None or handler is None or not (include_hidden or spec.agent_visible):
            raise ToolError(f"Unknown tool {name[:64]!r}.", code="unknown_tool")
        values: object = {} if params is None else params
        errors = validate_params(spec, values)
        if errors:
            raise ToolError(
                f"Invalid params for {name}: " + "; ".join(errors), code="invalid_params"
            )
        if not isinstance(values, Mapping):  # validate_params already refuses non-objects
            raise ToolError(f"Invalid params for {name}: expected an object", code="invalid_params")
        self.calls += 1
        try:
            outcome = await handler(self._deps, caller, values)
        except OperationError as exc:
            self.failures += 1
            raise ToolError(exc.message, code=exc.code) from None
        except Exception as exc:  # noqa: BLE001 - fail with a safe message; the type is logged
            self.failures += 1
            logger.error("tool %s failed: %s", name, type(exc).__name__)  # noqa: TRY400
            raise ToolError(f"{name} failed (internal error).", code="internal") from None
        return outcome.tool_result()
