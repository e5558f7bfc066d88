"""The /identity and tool dispatchers: parsing, help, caller from context, failures contained."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pytest

from agent_identity.host.caller import Caller
from agent_identity.host.commands import IdentityCommands
from agent_identity.host.contract import IdentityCommand, Risk, SetBinding, Whoami
from agent_identity.host.deps import HostDeps
from agent_identity.host.outcome import OperationError, Outcome
from agent_identity.host.senders import Sender
from agent_identity.host.tools import IdentityTools, ToolError

from .conftest import Stack

SECRET = "very-secret-internal-detail"


async def _whoami(deps: HostDeps, caller: Caller, command: IdentityCommand) -> Outcome:
    del deps, command
    return Outcome(f"you are {caller.session_key}", {"sessionKey": caller.session_key})


async def _refuse(deps: HostDeps, caller: Caller, command: object) -> Outcome:
    del deps, caller, command
    raise OperationError("Not logged in. Run /identity login.", code="not_logged_in")


async def _crash(deps: HostDeps, caller: Caller, command: object) -> Outcome:
    del deps, caller, command
    raise RuntimeError(SECRET)


async def _tool_whoami(deps: HostDeps, caller: Caller, params: Mapping[str, Any]) -> Outcome:
    del deps
    return Outcome(f"you are {caller.session_key}", {"params": dict(params), "op": caller.operator})


def _commands(stack: Stack) -> IdentityCommands:
    return IdentityCommands(stack.deps, {Whoami: _whoami, Risk: _refuse})


async def test_command_runs_for_the_sender_of_the_context(stack: Stack) -> None:
    reply = await _commands(stack).handle(
        {"sessionKey": "agent:main:main", "senderId": "42", "channel": "telegram", "args": "whoami"}
    )
    assert reply.text == "you are agent:main:telegram:direct:42"
    assert reply.is_error is None


async def test_alias_and_command_body_without_args(stack: Stack) -> None:
    commands = _commands(stack)
    reply = await commands.handle(
        {"commandBody": "/id whoami", "senderId": "7", "channel": "webchat"}
    )
    assert reply.text == "you are agent:main:main:user:7"
    help_reply = await commands.handle({"commandBody": "/id"})
    assert help_reply.text is not None
    assert help_reply.text.startswith("/id — ")
    assert [d.name for d in commands.definitions] == ["identity", "id"]
    assert commands.definitions[0].to_wire()["acceptsArgs"] is True
    assert commands.definitions[0].to_wire()["requireAuth"] is False


async def test_unknown_subcommand_suggests_the_nearest(stack: Stack) -> None:
    reply = await _commands(stack).handle({"args": "whoamii"})
    assert reply.is_error is True
    assert reply.text is not None
    assert 'Did you mean "whoami"?' in reply.text


async def test_help_topic_and_usage_error(stack: Stack) -> None:
    commands = _commands(stack)
    topic = await commands.handle({"args": "help fetch"})
    assert topic.text is not None
    assert topic.text.startswith("Usage: /identity fetch")
    bad = await commands.handle({"args": "set onlyprovider"})
    assert bad.is_error is True


async def test_operation_error_and_crash_are_replies(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    commands = IdentityCommands(stack.deps, {Whoami: _crash, Risk: _refuse})
    refused = await commands.handle({"args": "risk rm -rf /"})
    assert refused.text == "⚠️ Not logged in. Run /identity login."
    with caplog.at_level(logging.ERROR):
        crashed = await commands.handle({"args": "whoami"})
    assert crashed.is_error is True
    assert crashed.text is not None
    assert "failed" in crashed.text
    assert SECRET not in crashed.text
    assert SECRET not in caplog.text
    assert "RuntimeError" in caplog.text
    assert commands.failed == 1


async def test_malformed_context_and_missing_handler(stack: Stack) -> None:
    commands = _commands(stack)
    malformed = await commands.handle({"senderId": 5, "args": "whoami", "isAuthorizedSender": "x"})
    assert malformed.is_error is True
    missing = await commands.handle({"args": "logout"})
    assert missing.is_error is True
    assert missing.text is not None
    assert "not available" in missing.text


async def test_tools_use_the_recorded_sender_and_validate_params(stack: Stack) -> None:
    tools = IdentityTools(stack.deps, {"identity_whoami": _tool_whoami})
    stack.deps.senders.record("agent:main:main", Sender("ou_abc", "feishu"))
    [definition] = tools.for_context({"sessionKey": "agent:main:main"})
    assert definition.name == "identity_whoami"
    assert definition.to_wire()["parameters"]["type"] == "object"
    result = await definition.execute("call-1", {})
    assert result.content[0].text == "you are agent:main:feishu:direct:ou_abc"
    with pytest.raises(ToolError) as invalid:
        await definition.execute("call-2", {"sessionKey": "agent:main:other"})
    assert invalid.value.code == "invalid_params"
    with pytest.raises(ToolError) as unknown:
        await tools.execute("identity_nope", {}, {})
    assert unknown.value.code == "unknown_tool"


async def test_hidden_tools_are_refused_to_the_agent(stack: Stack) -> None:
    tools = IdentityTools(stack.deps, {"identity_approve_tool": _tool_whoami})
    assert tools.specs() == ()
    assert [s.name for s in tools.specs(include_hidden=True)] == ["identity_approve_tool"]
    with pytest.raises(ToolError) as hidden:
        await tools.execute("identity_approve_tool", {"approval_id": "apr_x"}, {})
    assert hidden.value.code == "unknown_tool"
    caller = Caller(
        session_key="agent:main:main", host_session_key="agent:main:main", operator=True
    )
    result = await tools.execute_for(
        caller, "identity_approve_tool", {"approval_id": "apr_x"}, include_hidden=True
    )
    assert result.details["op"] is True


async def test_tool_failures_are_raised_safely(stack: Stack) -> None:
    tools = IdentityTools(stack.deps, {"identity_whoami": _crash, "identity_status": _refuse})
    with pytest.raises(ToolError) as crashed:
        await tools.execute("identity_whoami", {}, {"sessionKey": "main"})
    assert crashed.value.code == "internal"
    assert SECRET not in str(crashed.value)
    with pytest.raises(ToolError) as refused:
        await tools.execute("identity_status", {}, None)
    assert refused.value.code == "not_logged_in"
    with pytest.raises(ToolError) as context:
        tools.for_context({"sessionKey": 12})
    assert context.value.code == "invalid_context"
    assert tools.failures == 2


async def test_failures_name_the_subcommand_the_user_typed(stack: Stack) -> None:
    commands = IdentityCommands(stack.deps, {SetBinding: _crash})
    reply = await commands.handle({"args": "set openai OPENAI_API_KEY"})
    assert reply.text == "⚠️ /identity set failed. Please try again later."
