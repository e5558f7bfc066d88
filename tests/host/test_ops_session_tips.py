"""list-tips and the raw-token tools: who sees what, and where secrets may (not) appear."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from agent_identity.actors.tip_messages import TipInfo
from agent_identity.authz.tip_claims import decode_tip_claims
from agent_identity.host import ops_session
from agent_identity.host.caller import Caller
from agent_identity.host.commands import IdentityCommands
from agent_identity.host.contract import ListTips
from agent_identity.host.outcome import OperationError, Outcome
from agent_identity.host.tools import IdentityTools, ToolError

from .conftest import MAIN, Stack, StackOpener

BOB = "agent:main:main:user:bob"
NOBODY = "agent:main:main:user:nobody"
CHILD = "agent:main:subagent:child-1"


def caller(key: str = MAIN, **fields: Any) -> Caller:
    return Caller(session_key=key, host_session_key=key, **fields)


async def tool(stack: Stack, name: str, who: Caller | None = None) -> Outcome:
    return await ops_session.TOOLS[name](stack.deps, who or caller(), {})


def shown(outcome: Outcome) -> str:
    return outcome.text + json.dumps(outcome.details)


async def two_users(stack: Stack) -> None:
    await stack.login(MAIN)
    await stack.login(BOB, username="bob", password="bob-password")


# ---------------------------------------------------------------- list-tips


async def test_operator_sees_every_valid_tip(stack: Stack) -> None:
    empty = await tool(stack, "identity_list_tips", caller(NOBODY, operator=True))
    assert empty.text == "No valid TIPs."
    assert empty.details == {"scope": "all", "count": 0, "tips": []}
    await two_users(stack)
    outcome = await tool(stack, "identity_list_tips", caller(NOBODY, operator=True))

    assert outcome.details["scope"] == "all"
    assert outcome.details["count"] == 2
    by_key = {tip["sessionKey"]: tip for tip in outcome.details["tips"]}
    assert by_key[MAIN]["sub"] == "alice"
    assert by_key[BOB]["sub"] == "bob"
    assert by_key[BOB]["tipChain"] == ["openclaw-agent"]
    assert 0 < by_key[BOB]["tipExpiresInSeconds"] <= 3600
    lines = outcome.text.splitlines()
    assert lines[0] == "Valid TIPs (all sessions):"
    assert any(line.startswith(f"{BOB}: bob, expires in ") for line in lines)


async def test_non_operator_sees_only_its_own_tip(stack: Stack) -> None:
    await two_users(stack)
    outcome = await tool(stack, "identity_list_tips", caller(MAIN))

    assert outcome.details["scope"] == "own"
    assert [tip["sessionKey"] for tip in outcome.details["tips"]] == [MAIN]
    assert "bob" not in shown(outcome)
    assert outcome.text.splitlines()[0] == "Valid TIPs of this session:"

    nobody = await tool(stack, "identity_list_tips", caller(NOBODY))
    assert nobody.text == "No valid TIP for this session."
    assert nobody.details == {"scope": "own", "count": 0, "tips": []}


async def test_list_tips_command_widens_only_for_authorized_senders(stack: Stack) -> None:
    await two_users(stack)
    commands = IdentityCommands(stack.deps, ops_session.COMMANDS)
    context = {"args": "list-tips", "sessionKey": "main", "senderId": "carol", "channel": "webchat"}

    plain = await commands.handle(context)
    authorized = await commands.handle(context | {"isAuthorizedSender": True})

    assert plain.text == "No valid TIP for this session."
    assert authorized.text is not None
    assert f"{BOB}: bob" in authorized.text
    assert f"{MAIN}: alice" in authorized.text


async def test_list_tips_shows_env_bindings(stack: Stack) -> None:
    await stack.login(MAIN)
    environ = {"OPENAI_API_KEY": "sk-list-tips-0123456789"}
    await stack.deps.vault.set_binding(MAIN, "openai", "OPENAI_API_KEY", environ=environ)

    outcome = await ops_session.COMMANDS[ListTips](stack.deps, caller(), ListTips())

    [tip] = outcome.details["tips"]
    assert tip["bindings"] == {"openai": "OPENAI_API_KEY"}
    assert outcome.text.splitlines()[1].endswith("env OPENAI_API_KEY<-openai")
    assert "sk-list-tips" not in shown(outcome)


async def test_list_tips_of_a_session_include_its_subagents(open_stack: StackOpener) -> None:
    async with open_stack(identity={"subagentTipPropagation": True}) as stack:
        await two_users(stack)
        child = await stack.deps.tips.propagate(MAIN, CHILD)
        assert isinstance(child, TipInfo)

        mine = await tool(stack, "identity_list_tips", caller(MAIN))
        bobs = await tool(stack, "identity_list_tips", caller(BOB))

        by_key = {tip["sessionKey"]: tip for tip in mine.details["tips"]}
        assert set(by_key) == {MAIN, CHILD}
        assert by_key[CHILD]["parentKey"] == MAIN
        assert by_key[CHILD]["tipChain"] == child.chain.to_list()
        assert len(by_key[CHILD]["tipChain"]) == 2
        assert [tip["sessionKey"] for tip in bobs.details["tips"]] == [BOB]


# ---------------------------------------------------------------- raw tokens


async def test_get_tip_token_returns_the_sessions_tip_marked_secret(stack: Stack) -> None:
    await stack.login(MAIN)
    await stack.deps.tips.forget(MAIN)  # it is minted again on demand

    outcome = await tool(stack, "identity_get_tip_token")

    cached = await stack.deps.tips.peek(MAIN)
    assert isinstance(cached, TipInfo)
    assert outcome.details["token"] == cached.token
    assert outcome.details["secret"] is True
    assert "secret" in outcome.details["warning"]
    assert outcome.details["tipChain"] == ["openclaw-agent"]
    assert outcome.text.splitlines()[-1] == cached.token
    assert decode_tip_claims(outcome.details["token"]).sub == "alice"


async def test_get_tip_token_errors(stack: Stack) -> None:
    with pytest.raises(OperationError) as nobody:
        await tool(stack, "identity_get_tip_token")
    assert nobody.value.code == "not_logged_in"

    await stack.login(MAIN)
    await stack.deps.tips.forget(MAIN)
    denied = stack.sb.faults.add("GetWorkloadAccessTokenForJWT", status=403, code="AccessDenied")
    with pytest.raises(OperationError) as unavailable:
        await tool(stack, "identity_get_tip_token")
    assert unavailable.value.code == "tip_unavailable"

    stack.sb.faults.remove(denied)
    stack.sb.faults.add(
        "GetWorkloadAccessTokenForJWT", status=401, code="InvalidParameter.UserToken"
    )
    with pytest.raises(OperationError) as expired:
        await tool(stack, "identity_get_tip_token")
    assert expired.value.code == "logged_out"
    assert "expired or was revoked" in expired.value.message


async def test_get_session_token_returns_the_user_token_never_the_refresh_token(
    stack: Stack,
) -> None:
    await stack.login(MAIN)
    view = await stack.deps.sessions.get(MAIN)
    refresh = await stack.deps.sessions.get_refresh_token(MAIN)
    assert view is not None
    assert refresh is not None

    outcome = await tool(stack, "identity_get_session_token")

    assert outcome.details["userToken"] == view.user_token
    assert outcome.details["secret"] is True
    assert outcome.details["hasRefreshToken"] is True
    assert outcome.details["sub"] == "alice"
    assert outcome.text.splitlines()[-1] == view.user_token
    assert refresh not in shown(outcome)


async def test_get_session_token_when_not_logged_in_is_an_error(stack: Stack) -> None:
    with pytest.raises(OperationError) as failed:
        await tool(stack, "identity_get_session_token")
    assert failed.value.code == "not_logged_in"
    tools = IdentityTools(stack.deps, ops_session.TOOLS)
    with pytest.raises(ToolError) as raised:
        await tools.execute_for(caller(), "identity_get_session_token", {})
    assert raised.value.code == "not_logged_in"


async def test_tokens_are_only_in_the_token_tools_and_never_logged(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await two_users(stack)
    tip = await stack.deps.tips.get_tip(MAIN)
    view = await stack.deps.sessions.get(MAIN)
    refresh = await stack.deps.sessions.get_refresh_token(MAIN)
    assert isinstance(tip, TipInfo)
    assert view is not None
    assert refresh is not None
    secrets = (tip.token, view.user_token, refresh)
    operator = caller(operator=True)
    caplog.clear()

    for name in ("identity_whoami", "identity_status", "identity_list_tips", "identity_login"):
        outcome = await tool(stack, name, operator)
        assert not any(secret in shown(outcome) for secret in secrets), name
    tip_now = await stack.deps.tips.peek(MAIN)  # login refreshed it
    assert isinstance(tip_now, TipInfo)
    for name in ("identity_get_tip_token", "identity_get_session_token", "identity_logout"):
        await tool(stack, name, operator)
    assert not any(secret in caplog.text for secret in (*secrets, tip_now.token))


async def test_two_sessions_tokens_are_their_own(stack: Stack) -> None:
    await two_users(stack)
    alice = await tool(stack, "identity_get_session_token", caller(MAIN))
    bob = await tool(stack, "identity_get_session_token", caller(BOB))
    alice_tip = await tool(stack, "identity_get_tip_token", caller(MAIN))
    bob_tip = await tool(stack, "identity_get_tip_token", caller(BOB))

    assert alice.details["sub"] == "alice"
    assert bob.details["sub"] == "bob"
    assert alice.details["userToken"] != bob.details["userToken"]
    assert decode_tip_claims(alice_tip.details["token"]).sub == "alice"
    assert decode_tip_claims(bob_tip.details["token"]).sub == "bob"
