"""What the host hands in: hook events and contexts, the command and tool factory contexts.

One event and one context per hook agent-identity registers (host contract 2), plus
:class:`CommandContext` (4) and :class:`ToolContext` (5). Contexts hold the trusted facts
(session key, sender, channel); events and tool params carry what users and the model said.

Fields the host itself marks optional are ``None`` when absent. A few fields without which a
hook cannot do its job are required (``content`` of ``before_dispatch``, ``prompt`` of
``before_agent_start``, ``toolName`` of the tool events, ``childSessionKey`` of
``subagent_spawned``); everything else is optional even where the host's type is stricter,
as "context fields are optional and can be missing for some emit paths" (host contract 2.1).
:func:`decode_event` and :func:`decode_context` return a
:class:`~agent_identity.host.contract.PayloadError` value for a malformed payload.
"""

from __future__ import annotations

from typing import Any, Final, Literal, overload

import msgspec

from agent_identity.host.contract import PayloadError, WireStruct, decode_as

__all__ = [
    "AFTER_TOOL_CALL",
    "BEFORE_AGENT_START",
    "BEFORE_DISPATCH",
    "BEFORE_TOOL_CALL",
    "HOOK_NAMES",
    "SUBAGENT_SPAWNED",
    "AfterToolCallEvent",
    "AgentContext",
    "BeforeAgentStartEvent",
    "BeforeDispatchContext",
    "BeforeDispatchEvent",
    "BeforeToolCallEvent",
    "CommandContext",
    "DeliveryContext",
    "HookContext",
    "HookEvent",
    "HookName",
    "SubagentContext",
    "SubagentRequester",
    "SubagentSpawnedEvent",
    "ToolContext",
    "ToolHookContext",
    "ToolRequester",
    "decode_context",
    "decode_event",
]

HookName = Literal[
    "before_dispatch",
    "before_agent_start",
    "subagent_spawned",
    "before_tool_call",
    "after_tool_call",
]
BEFORE_DISPATCH: Final = "before_dispatch"
BEFORE_AGENT_START: Final = "before_agent_start"
SUBAGENT_SPAWNED: Final = "subagent_spawned"
BEFORE_TOOL_CALL: Final = "before_tool_call"
AFTER_TOOL_CALL: Final = "after_tool_call"
#: Every hook agent-identity registers, in the order a turn meets them.
HOOK_NAMES: Final[tuple[HookName, ...]] = (
    BEFORE_DISPATCH,
    BEFORE_AGENT_START,
    SUBAGENT_SPAWNED,
    BEFORE_TOOL_CALL,
    AFTER_TOOL_CALL,
)


# ---------------------------------------------------------------- before_dispatch


class BeforeDispatchEvent(WireStruct, frozen=True, kw_only=True):
    """An inbound message before commands and the model see it (host contract 2.3).

    ``content`` is the command-capable raw text, so ``/identity login`` shows up here too.
    """

    content: str
    body: str | None = None
    channel: str | None = None
    session_key: str | None = None
    sender_id: str | None = None
    is_group: bool | None = None
    timestamp: int | float | None = None
    message_id: str | None = None
    reply_to_id: str | None = None
    reply_to_id_full: str | None = None
    reply_to_body: str | None = None
    reply_to_sender: str | None = None
    reply_to_is_quote: bool | None = None


class BeforeDispatchContext(WireStruct, frozen=True, kw_only=True):
    """Context of ``before_dispatch``."""

    channel_id: str | None = None
    account_id: str | None = None
    conversation_id: str | None = None
    session_key: str | None = None
    sender_id: str | None = None
    message_id: str | None = None


# ---------------------------------------------------------------- before_agent_start


class BeforeAgentStartEvent(WireStruct, frozen=True, kw_only=True):
    """The legacy agent-start hook (host contract 2.4).

    ``messages`` is absent in the model-resolve phase.
    """

    prompt: str
    run_id: str | None = None
    messages: list[Any] | None = None


class AgentContext(WireStruct, frozen=True, kw_only=True):
    """The agent context of ``before_agent_start`` (``sender_id``/``channel`` from ~6.x)."""

    run_id: str | None = None
    job_id: str | None = None
    agent_id: str | None = None
    session_key: str | None = None
    session_id: str | None = None
    workspace_dir: str | None = None
    model_provider_id: str | None = None
    model_id: str | None = None
    message_provider: str | None = None
    trigger: str | None = None
    channel_id: str | None = None
    channel: str | None = None
    chat_id: str | None = None
    sender_id: str | None = None


# ---------------------------------------------------------------- subagent_spawned


class SubagentRequester(WireStruct, frozen=True, kw_only=True):
    """Where the spawning conversation lives."""

    channel: str | None = None
    account_id: str | None = None
    to: str | None = None
    thread_id: str | int | None = None
    channel_id: str | None = None
    message_id: str | None = None


class SubagentSpawnedEvent(WireStruct, frozen=True, kw_only=True):
    """A child run was started (host contract 2.5); it may already be running."""

    child_session_key: str
    run_id: str | None = None
    agent_id: str | None = None
    label: str | None = None
    mode: str | None = None
    requester: SubagentRequester | None = None
    thread_requested: bool | None = None


class SubagentContext(WireStruct, frozen=True, kw_only=True):
    """Context of ``subagent_spawned``: ``requester_session_key`` is the parent's key."""

    run_id: str | None = None
    child_session_key: str | None = None
    requester_session_key: str | None = None


# ---------------------------------------------------------------- tool hooks


class ToolRequester(WireStruct, frozen=True, kw_only=True):
    """The sender behind a tool call; only hosts from 2026.8.1 send it."""

    channel: str | None = None
    account_id: str | None = None
    sender_id: str | None = None
    sender_is_owner: bool | None = None
    role_ids: list[str] | None = None


class ToolHookContext(WireStruct, frozen=True, kw_only=True):
    """Context of ``before_tool_call`` and ``after_tool_call`` (host contract 2.6, 2.7)."""

    tool_name: str | None = None
    agent_id: str | None = None
    session_key: str | None = None
    session_id: str | None = None
    run_id: str | None = None
    tool_call_id: str | None = None
    channel_id: str | None = None
    tool_kind: str | None = None
    requester: ToolRequester | None = None


def call_key(run_id: str | None, tool_call_id: str | None) -> str | None:
    """``<runId>:<toolCallId>``, the key of per-call state; ``None`` without a call id."""
    # after_tool_call is not awaited and may run after the next call starts, so per-call state
    # is keyed by run and call id rather than by session (host contract 2.7).
    if tool_call_id is None:
        return None
    return f"{run_id or ''}:{tool_call_id}"


class BeforeToolCallEvent(WireStruct, frozen=True, kw_only=True):
    """A tool is about to run. ``tool_name`` is already normalised by the host."""

    tool_name: str
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    run_id: str | None = None
    tool_call_id: str | None = None
    tool_kind: str | None = None
    tool_input_kind: str | None = None

    @property
    def call_key(self) -> str | None:
        """``<runId>:<toolCallId>``, the key of per-call state; ``None`` without a call id."""
        return call_key(self.run_id, self.tool_call_id)


class AfterToolCallEvent(WireStruct, frozen=True, kw_only=True):
    """A tool ran: ``params`` are the executed (merged) params, ``error`` is set on failure."""

    tool_name: str
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    run_id: str | None = None
    tool_call_id: str | None = None
    result: Any = None
    error: str | None = None
    duration_ms: int | float | None = None

    @property
    def call_key(self) -> str | None:
        """Same key as :attr:`BeforeToolCallEvent.call_key` for the same call."""
        return call_key(self.run_id, self.tool_call_id)


# ---------------------------------------------------------------- commands and tools


class CommandContext(WireStruct, frozen=True, kw_only=True):
    """What a plugin command handler receives (``PluginCommandContext``, host contract 4).

    ``args`` is already sanitised by the host. Callbacks (``requestConversationBinding`` …)
    and the config snapshot are not data and not modelled. ``is_authorized_sender`` defaults
    to ``False``: a context missing it is unauthorised.
    """

    sender_id: str | None = None
    channel: str | None = None
    channel_id: str | None = None
    is_authorized_sender: bool = False
    sender_is_owner: bool | None = None
    gateway_client_scopes: list[str] | None = None
    session_key: str | None = None
    session_id: str | None = None
    session_file: str | None = None
    args: str | None = None
    command_body: str = ""
    from_: str | None = msgspec.field(default=None, name="from")
    to: str | None = None
    account_id: str | None = None
    message_thread_id: str | int | None = None
    thread_parent_id: str | None = None
    agent_id: str | None = None


class DeliveryContext(WireStruct, frozen=True, kw_only=True):
    """Where the current turn's replies go (``toolCtx.deliveryContext``)."""

    channel: str | None = None
    to: str | None = None
    account_id: str | None = None
    thread_id: str | int | None = None


class ToolContext(WireStruct, frozen=True, kw_only=True):
    """The tool factory context (host contract 5): the only trusted word on who calls a tool.

    Tool ``params`` come from the model and are untrusted; the caller's identity is taken from
    ``requester_sender_id``, ``session_key`` and ``message_channel`` here.
    """

    agent_id: str | None = None
    session_key: str | None = None
    session_id: str | None = None
    message_channel: str | None = None
    agent_account_id: str | None = None
    delivery_context: DeliveryContext | None = None
    requester_sender_id: str | None = None
    sender_is_owner: bool | None = None
    sandboxed: bool | None = None
    workspace_dir: str | None = None
    agent_dir: str | None = None
    native_channel_id: str | None = None


# ---------------------------------------------------------------- decoding

HookEvent = (
    BeforeDispatchEvent | BeforeAgentStartEvent | SubagentSpawnedEvent | BeforeToolCallEvent
    | AfterToolCallEvent
)  # fmt: skip
HookContext = BeforeDispatchContext | AgentContext | SubagentContext | ToolHookContext

_EVENTS: Final[dict[str, type[HookEvent]]] = {
    BEFORE_DISPATCH: BeforeDispatchEvent,
    BEFORE_AGENT_START: BeforeAgentStartEvent,
    SUBAGENT_SPAWNED: SubagentSpawnedEvent,
    BEFORE_TOOL_CALL: BeforeToolCallEvent,
    AFTER_TOOL_CALL: AfterToolCallEvent,
}
_CONTEXTS: Final[dict[str, type[HookContext]]] = {
    BEFORE_DISPATCH: BeforeDispatchContext,
    BEFORE_AGENT_START: AgentContext,
    SUBAGENT_SPAWNED: SubagentContext,
    BEFORE_TOOL_CALL: ToolHookContext,
    AFTER_TOOL_CALL: ToolHookContext,
}


@overload
def decode_event(
    kind: Literal["before_dispatch"], obj: object
) -> BeforeDispatchEvent | PayloadError: ...
@overload
def decode_event(
    kind: Literal["before_agent_start"], obj: object
) -> BeforeAgentStartEvent | PayloadError: ...
@overload
def decode_event(
    kind: Literal["subagent_spawned"], obj: object
) -> SubagentSpawnedEvent | PayloadError: ...
@overload
def decode_event(
    kind: Literal["before_tool_call"], obj: object
) -> BeforeToolCallEvent | PayloadError: ...
@overload
def decode_event(
    kind: Literal["after_tool_call"], obj: object
) -> AfterToolCallEvent | PayloadError: ...
@overload
def decode_event(kind: str, obj: object) -> HookEvent | PayloadError: ...
def decode_event(kind: str, obj: object) -> HookEvent | PayloadError:
    """Decode the ``event`` argument of hook ``kind``.

    Args:
        kind: The hook name as the host spells it, e.g. ``before_tool_call``.
        obj: A mapping with camelCase keys, or a Struct / object with those attributes.

    Returns:
        The event Struct, or a :class:`PayloadError` for an unknown hook or a bad payload.
    """
    cls = _EVENTS.get(kind)
    if cls is None:
        return PayloadError(kind, f"unknown hook {kind!r}")
    return decode_as(cls, obj, kind=f"{kind} event")


@overload
def decode_context(
    kind: Literal["before_dispatch"], obj: object
) -> BeforeDispatchContext | PayloadError: ...
@overload
def decode_context(
    kind: Literal["before_agent_start"], obj: object
) -> AgentContext | PayloadError: ...
@overload
def decode_context(
    kind: Literal["subagent_spawned"], obj: object
) -> SubagentContext | PayloadError: ...
@overload
def decode_context(
    kind: Literal["before_tool_call", "after_tool_call"], obj: object
) -> ToolHookContext | PayloadError: ...
@overload
def decode_context(kind: str, obj: object) -> HookContext | PayloadError: ...
def decode_context(kind: str, obj: object) -> HookContext | PayloadError:
    """Decode the ``ctx`` argument of hook ``kind``.

    A missing context (``None``) decodes as an empty one: every context field is optional.

    Args:
        kind: The hook name as the host spells it.
        obj: A mapping with camelCase keys, a Struct / object with those attributes, or
            ``None``.

    Returns:
        The context Struct, or a :class:`PayloadError` for an unknown hook or a bad payload.
    """
    cls = _CONTEXTS.get(kind)
    if cls is None:
        return PayloadError(kind, f"unknown hook {kind!r}")
    return decode_as(cls, {} if obj is None else obj, kind=f"{kind} context")
