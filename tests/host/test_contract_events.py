"""Hook events and contexts, the command context and the tool factory context."""

from __future__ import annotations

from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import given

from agent_identity.host.contract import PayloadError, decode_as, to_wire
from agent_identity.host.events import (
    AFTER_TOOL_CALL,
    BEFORE_AGENT_START,
    BEFORE_DISPATCH,
    BEFORE_TOOL_CALL,
    HOOK_NAMES,
    SUBAGENT_SPAWNED,
    AfterToolCallEvent,
    AgentContext,
    BeforeAgentStartEvent,
    BeforeDispatchContext,
    BeforeDispatchEvent,
    BeforeToolCallEvent,
    CommandContext,
    DeliveryContext,
    SubagentContext,
    SubagentRequester,
    SubagentSpawnedEvent,
    ToolContext,
    ToolHookContext,
    ToolRequester,
    decode_context,
    decode_event,
)

# Payloads shaped like the host's (host contract, section 2), with a field from a future host.
EVENTS: dict[str, dict[str, Any]] = {
    BEFORE_DISPATCH: {
        "content": "/identity login",
        "body": "/identity login",
        "channel": "telegram",
        "sessionKey": "agent:main:main",
        "senderId": "123456789",
        "isGroup": False,
        "timestamp": 1767225600000,
        "messageId": "m1",
        "replyToIsQuote": True,
        "futureField": {"x": 1},
    },
    BEFORE_AGENT_START: {
        "prompt": "hello",
        "runId": "r1",
        "messages": [{"role": "user", "content": "hello"}],
    },
    SUBAGENT_SPAWNED: {
        "runId": "r2",
        "childSessionKey": "agent:main:subagent:3f2a",
        "agentId": "main",
        "label": "research",
        "mode": "run",
        "requester": {
            "channel": "telegram",
            "accountId": "default",
            "to": "telegram:1",
            "threadId": 42,
        },
        "threadRequested": False,
        "resolvedModel": "gpt",
    },
    BEFORE_TOOL_CALL: {
        "toolName": "exec",
        "params": {"command": "ls", "env": None},
        "runId": "r3",
        "toolCallId": "call_1",
        "toolKind": "code_mode_exec",
        "derivedPaths": ["/tmp"],
    },
    AFTER_TOOL_CALL: {
        "toolName": "exec",
        "params": {"command": "ls"},
        "runId": "r3",
        "toolCallId": "call_1",
        "result": {"content": [{"type": "text", "text": "ok"}]},
        "error": None,
        "durationMs": 12.5,
    },
}

CONTEXTS: dict[str, dict[str, Any]] = {
    BEFORE_DISPATCH: {
        "channelId": "telegram",
        "accountId": "default",
        "conversationId": "c1",
        "sessionKey": "agent:main:main",
        "senderId": "123456789",
        "messageId": "m1",
    },
    BEFORE_AGENT_START: {
        "runId": "r1",
        "agentId": "main",
        "sessionKey": "agent:main:main",
        "sessionId": "s1",
        "channelId": "telegram",
        "channel": "telegram",
        "senderId": "123456789",
        "trigger": "user",
        "trace": {"spanId": "x"},
    },
    SUBAGENT_SPAWNED: {
        "runId": "r2",
        "childSessionKey": "agent:main:subagent:3f2a",
        "requesterSessionKey": "agent:main:telegram:direct:123456789",
    },
    BEFORE_TOOL_CALL: {
        "toolName": "exec",
        "agentId": "main",
        "sessionKey": "agent:main:main",
        "runId": "r3",
        "toolCallId": "call_1",
        "requester": {
            "channel": "feishu",
            "senderId": "ou_x",
            "senderIsOwner": False,
            "roleIds": ["r1"],
        },
    },
    AFTER_TOOL_CALL: {"toolName": "exec", "sessionKey": "agent:main:main", "toolCallId": "call_1"},
}


def test_hook_names() -> None:
    assert HOOK_NAMES == (
        "before_dispatch",
        "before_agent_start",
        "subagent_spawned",
        "before_tool_call",
        "after_tool_call",
    )


def test_before_dispatch() -> None:
    event = decode_event(BEFORE_DISPATCH, EVENTS[BEFORE_DISPATCH])
    assert isinstance(event, BeforeDispatchEvent)
    assert event.content == "/identity login"
    assert event.sender_id == "123456789"
    assert event.is_group is False
    assert event.timestamp == 1767225600000
    assert event.reply_to_is_quote is True
    ctx = decode_context(BEFORE_DISPATCH, CONTEXTS[BEFORE_DISPATCH])
    assert ctx == BeforeDispatchContext(
        channel_id="telegram",
        account_id="default",
        conversation_id="c1",
        session_key="agent:main:main",
        sender_id="123456789",
        message_id="m1",
    )


def test_before_agent_start() -> None:
    event = decode_event(BEFORE_AGENT_START, EVENTS[BEFORE_AGENT_START])
    assert event == BeforeAgentStartEvent(
        prompt="hello", run_id="r1", messages=[{"role": "user", "content": "hello"}]
    )
    ctx = decode_context(BEFORE_AGENT_START, CONTEXTS[BEFORE_AGENT_START])
    assert isinstance(ctx, AgentContext)
    assert (ctx.agent_id, ctx.sender_id, ctx.trigger) == ("main", "123456789", "user")
    # The model-resolve phase has only the prompt.
    assert decode_event(BEFORE_AGENT_START, {"prompt": ""}) == BeforeAgentStartEvent(prompt="")


def test_subagent_spawned() -> None:
    event = decode_event(SUBAGENT_SPAWNED, EVENTS[SUBAGENT_SPAWNED])
    assert isinstance(event, SubagentSpawnedEvent)
    assert event.requester == SubagentRequester(
        channel="telegram", account_id="default", to="telegram:1", thread_id=42
    )
    assert event.mode == "run"
    assert event.thread_requested is False
    ctx = decode_context(SUBAGENT_SPAWNED, CONTEXTS[SUBAGENT_SPAWNED])
    assert ctx == SubagentContext(
        run_id="r2",
        child_session_key="agent:main:subagent:3f2a",
        requester_session_key="agent:main:telegram:direct:123456789",
    )


def test_tool_hooks() -> None:
    before = decode_event(BEFORE_TOOL_CALL, EVENTS[BEFORE_TOOL_CALL])
    assert isinstance(before, BeforeToolCallEvent)
    assert before.params == {"command": "ls", "env": None}
    assert before.call_key == "r3:call_1"
    after = decode_event(AFTER_TOOL_CALL, EVENTS[AFTER_TOOL_CALL])
    assert isinstance(after, AfterToolCallEvent)
    assert after.call_key == before.call_key
    assert after.duration_ms == 12.5
    assert after.result == {"content": [{"type": "text", "text": "ok"}]}
    ctx = decode_context(BEFORE_TOOL_CALL, CONTEXTS[BEFORE_TOOL_CALL])
    assert isinstance(ctx, ToolHookContext)
    assert ctx.requester == ToolRequester(
        channel="feishu", sender_id="ou_x", sender_is_owner=False, role_ids=["r1"]
    )
    assert decode_context(AFTER_TOOL_CALL, CONTEXTS[AFTER_TOOL_CALL]) == ToolHookContext(
        tool_name="exec", session_key="agent:main:main", tool_call_id="call_1"
    )


@pytest.mark.parametrize(
    ("run_id", "tool_call_id", "key"),
    [("r", "c", "r:c"), (None, "c", ":c"), ("r", None, None), (None, None, None)],
)
def test_call_key(run_id: str | None, tool_call_id: str | None, key: str | None) -> None:
    event = BeforeToolCallEvent(tool_name="exec", run_id=run_id, tool_call_id=tool_call_id)
    assert event.call_key == key


def test_minimal_tool_event_has_empty_params() -> None:
    event = decode_event(BEFORE_TOOL_CALL, {"toolName": "read"})
    assert event == BeforeToolCallEvent(tool_name="read", params={})


@pytest.mark.parametrize("kind", HOOK_NAMES)
def test_round_trip_through_the_wire(kind: str) -> None:
    event = decode_event(kind, EVENTS[kind])
    ctx = decode_context(kind, CONTEXTS[kind])
    assert not isinstance(event, PayloadError)
    assert not isinstance(ctx, PayloadError)
    assert decode_event(kind, to_wire(event)) == event
    assert decode_context(kind, to_wire(ctx)) == ctx
    assert decode_event(kind, event) is event  # already decoded


@pytest.mark.parametrize("kind", HOOK_NAMES)
def test_missing_context_is_empty(kind: str) -> None:
    ctx = decode_context(kind, None)
    assert not isinstance(ctx, PayloadError)
    assert to_wire(ctx) == {}


@pytest.mark.parametrize(
    ("kind", "payload", "fragment"),
    [
        (BEFORE_DISPATCH, {"body": "x"}, "content"),
        (BEFORE_DISPATCH, {"content": 5}, "$.content"),
        (BEFORE_AGENT_START, {"runId": "r"}, "prompt"),
        (SUBAGENT_SPAWNED, {"runId": "r"}, "childSessionKey"),
        (SUBAGENT_SPAWNED, {"childSessionKey": "k", "requester": "telegram"}, "$.requester"),
        (BEFORE_TOOL_CALL, {"params": {}}, "toolName"),
        (BEFORE_TOOL_CALL, {"toolName": "exec", "params": ["ls"]}, "$.params"),
        (AFTER_TOOL_CALL, {"toolName": "exec", "durationMs": "slow"}, "$.durationMs"),
        (BEFORE_TOOL_CALL, None, "object"),
    ],
)
def test_bad_events(kind: str, payload: object, fragment: str) -> None:
    error = decode_event(kind, payload)
    assert isinstance(error, PayloadError)
    assert error.kind == f"{kind} event"
    assert fragment in error.message


def test_bad_context() -> None:
    error = decode_context(BEFORE_TOOL_CALL, {"requester": {"roleIds": "admin"}})
    assert isinstance(error, PayloadError)
    assert error.kind == "before_tool_call context"
    assert "$.requester.roleIds" in error.message


@pytest.mark.parametrize("decode", [decode_event, decode_context])
def test_unknown_hook(decode: Any) -> None:
    error = decode("message_sending", {})
    assert error == PayloadError("message_sending", "unknown hook 'message_sending'")


def test_numeric_strings_are_accepted_where_the_host_sends_numbers() -> None:
    event = decode_event(BEFORE_DISPATCH, {"content": "hi", "timestamp": "1767225600000"})
    assert isinstance(event, BeforeDispatchEvent)
    assert event.timestamp == 1767225600000


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
_KEYS = st.sampled_from(
    ["content", "prompt", "toolName", "params", "childSessionKey", "requester", "runId", "x"]
)


@given(st.sampled_from([*HOOK_NAMES, "nope"]), st.dictionaries(_KEYS, _JSON) | _JSON)
def test_decoding_never_raises(kind: str, payload: object) -> None:
    assert decode_event(kind, payload) is not None
    assert decode_context(kind, payload) is not None


# ---------------------------------------------------------------- command and tool contexts


def test_command_context() -> None:
    ctx = decode_as(
        CommandContext,
        {
            "senderId": "123",
            "channel": "telegram",
            "isAuthorizedSender": True,
            "gatewayClientScopes": ["operator.write"],
            "sessionKey": "agent:main:telegram:direct:123",
            "args": "fetch google",
            "commandBody": "/identity fetch google",
            "config": {"channels": {}},
            "from": "telegram:123",
            "to": "telegram:123",
            "accountId": "default",
            "messageThreadId": 7,
        },
    )
    assert isinstance(ctx, CommandContext)
    assert ctx.from_ == "telegram:123"
    assert ctx.message_thread_id == 7
    assert ctx.is_authorized_sender is True
    wire = to_wire(ctx)
    assert wire["from"] == "telegram:123"
    assert "from_" not in wire
    assert "config" not in wire


def test_command_context_defaults_to_unauthorised() -> None:
    ctx = decode_as(CommandContext, {"channel": "webchat"})
    assert isinstance(ctx, CommandContext)
    assert ctx.is_authorized_sender is False
    assert ctx.command_body == ""


def test_tool_context() -> None:
    ctx = decode_as(
        ToolContext,
        {
            "agentId": "main",
            "sessionKey": "agent:main:main",
            "messageChannel": "feishu",
            "agentAccountId": "default",
            "deliveryContext": {"channel": "feishu", "to": "user:ou_x", "threadId": "t"},
            "requesterSenderId": "ou_x",
            "senderIsOwner": False,
            "sandboxed": True,
            "getRuntimeConfig": None,
        },
    )
    assert isinstance(ctx, ToolContext)
    assert ctx.delivery_context == DeliveryContext(channel="feishu", to="user:ou_x", thread_id="t")
    assert ctx.requester_sender_id == "ou_x"
    assert decode_as(ToolContext, to_wire(ctx)) == ctx
