"""The authentication gate: before_dispatch, before_agent_start and subagent_spawned."""

from __future__ import annotations

import logging
import re

import pytest

from agent_identity.actors.tip_messages import NoTip, TipInfo
from agent_identity.authz import parse_skill_entries
from agent_identity.host.events import BeforeDispatchContext, BeforeDispatchEvent
from agent_identity.host.hook_gate import SkillIndex, is_slash_command, message_texts
from agent_identity.host.hooks import IdentityHooks
from agent_identity.host.results import BeforeAgentStartResult, BeforeDispatchResult
from agent_identity.host.senders import Sender
from agent_identity.sandbox.browser import submit_login_form

from .conftest import MAIN, Stack, StackOpener

ALICE_DM = "agent:main:telegram:direct:42"  # effective key of sender 42 on telegram, main session
URL = re.compile(r"https?://\S+")


def message(text: str, *, sender: str = "42", channel: str = "telegram") -> dict[str, object]:
    return {"content": text, "channel": channel, "sessionKey": MAIN, "senderId": sender}


def login_url(result: BeforeDispatchResult | BeforeAgentStartResult | None) -> str:
    assert result is not None
    text = result.text if isinstance(result, BeforeDispatchResult) else result.prepend_context
    assert text is not None
    found = URL.search(text)
    assert found is not None, text
    return found.group(0)


async def test_an_unauthenticated_message_gets_a_login_url_and_no_model_call(
    open_stack: StackOpener,
) -> None:
    async with open_stack() as probe:
        endpoint = probe.sb.llm_endpoint
    # A model is configured (the LLM risk check), and still none is asked.
    llm = {"endpoint": endpoint, "model": "reviewer", "apiKey": "sk-sandbox-llm"}
    async with open_stack(authz={"enableLlmRiskCheck": True, "llmRiskCheck": llm}) as stack:
        hooks = IdentityHooks(stack.deps)
        calls = stack.sb.llm.calls
        result = await hooks.before_dispatch(message("hello"), {"sessionKey": MAIN})
        assert isinstance(result, BeforeDispatchResult)
        assert result.handled is True
        assert result.text is not None
        assert "sign in" in result.text
        assert stack.sb.llm.calls == calls
        # The URL is a real login for the sender's own effective key.
        page = await submit_login_form(
            stack.browser, login_url(result), username="alice", password="alice-password"
        )
        assert page.status_code == 200
        assert await stack.deps.sessions.get(ALICE_DM) is not None
        assert await stack.deps.sessions.get(MAIN) is None
        assert await hooks.before_dispatch(message("hello again")) is None
        assert stack.sb.llm.calls == calls


async def test_another_sender_in_the_same_host_session_is_still_gated(stack: Stack) -> None:
    hooks = IdentityHooks(stack.deps)
    await stack.login(ALICE_DM)
    assert await hooks.before_dispatch(message("hi", sender="42")) is None
    other = await hooks.before_dispatch(message("hi", sender="43"))
    assert other is not None
    assert other.handled is True


@pytest.mark.parametrize(
    "text",
    [
        "/identity login",
        "/id status",
        "/approve plugin:1234 allow-once",
        "/new",
        "/Identity@gateway_bot whoami",
        "  /status",
    ],
)
async def test_slash_commands_pass_through_without_a_session(stack: Stack, text: str) -> None:
    hooks = IdentityHooks(stack.deps)
    assert await hooks.before_dispatch(message(text)) is None


def test_text_that_only_starts_with_a_slash_is_no_command() -> None:
    assert not is_slash_command("/usr/bin/ls -- is this safe?")
    assert not is_slash_command("/")
    assert not is_slash_command("hello /identity")
    assert is_slash_command("/identity")


async def test_a_path_like_message_is_gated(stack: Stack) -> None:
    hooks = IdentityHooks(stack.deps)
    result = await hooks.before_dispatch(message("/usr/bin/ls -- is this safe?"))
    assert result is not None
    assert result.handled is True


async def test_the_sender_is_recorded_even_for_commands(stack: Stack) -> None:
    hooks = IdentityHooks(stack.deps)
    event = BeforeDispatchEvent(content="/identity login", channel="Telegram")
    ctx = BeforeDispatchContext(session_key="agent:main:main", sender_id=" 42 ")
    assert await hooks.before_dispatch(event, ctx) is None
    assert stack.deps.senders.lookup(MAIN) == Sender("42", "telegram")
    assert hooks.dispatch_active


async def test_personal_session_mode_gates_everyone_on_the_main_session(
    open_stack: StackOpener,
) -> None:
    async with open_stack(identity={"personalSessionMode": True}) as stack:
        hooks = IdentityHooks(stack.deps)
        assert await hooks.before_dispatch(message("hi")) is not None
        await stack.login(MAIN)
        assert await hooks.before_dispatch(message("hi", sender="43")) is None


async def test_without_a_userpool_the_reply_says_login_is_not_configured(
    open_stack: StackOpener,
) -> None:
    async with open_stack(userpool=None) as stack:
        result = await IdentityHooks(stack.deps).before_dispatch(message("hello"))
        assert result is not None
        assert result.handled is True
        assert result.text is not None
        assert "not configured" in result.text
        assert URL.search(result.text) is None


async def test_agent_check_allows_the_seeded_agent(open_stack: StackOpener) -> None:
    async with open_stack(authz={"agentCheck": True}) as stack:
        await stack.login(ALICE_DM)
        hooks = IdentityHooks(stack.deps)
        assert await hooks.before_dispatch(message("hello")) is None
        assert stack.deps.permission.statistics().allowed == 1


async def test_agent_check_denies_an_agent_the_policy_does_not_name(
    open_stack: StackOpener,
) -> None:
    # The TIP's outermost actor is the workload; no policy lets alice invoke "rogue-agent".
    async with open_stack(authz={"agentCheck": True}, identity={"workloadName": "rogue-agent"}) as (
        stack
    ):
        await stack.login(ALICE_DM)
        tip = await stack.deps.tips.get_tip(ALICE_DM)
        assert isinstance(tip, TipInfo)
        assert tip.chain.current == "rogue-agent"
        result = await IdentityHooks(stack.deps).before_dispatch(message("hello"))
        assert result is not None
        assert result.handled is True
        assert result.text is not None
        assert "may not use this agent" in result.text
        assert "rogue-agent" in result.text
        assert tip.token not in result.text


async def test_before_agent_start_steers_the_model_when_dispatch_is_missing(
    stack: Stack,
) -> None:
    hooks = IdentityHooks(stack.deps)
    ctx = {"sessionKey": MAIN, "senderId": "42", "channel": "telegram", "agentId": "main"}
    result = await hooks.before_agent_start({"prompt": "hello"}, ctx)
    assert isinstance(result, BeforeAgentStartResult)
    assert result.prepend_context is not None
    assert "not signed in" in result.prepend_context
    page = await submit_login_form(
        stack.browser, login_url(result), username="alice", password="alice-password"
    )
    assert page.status_code == 200
    assert await hooks.before_agent_start({"prompt": "hello"}, ctx) is None


async def test_before_agent_start_reports_an_agent_check_denial(open_stack: StackOpener) -> None:
    async with open_stack(authz={"agentCheck": True}, identity={"workloadName": "rogue-agent"}) as (
        stack
    ):
        await stack.login(MAIN)
        hooks = IdentityHooks(stack.deps)
        result = await hooks.before_agent_start({"prompt": "hi"}, {"sessionKey": MAIN})
        assert result is not None
        assert result.prepend_context is not None
        assert "may not use this agent" in result.prepend_context


async def test_before_agent_start_is_a_no_op_once_dispatch_gates(stack: Stack) -> None:
    hooks = IdentityHooks(stack.deps)
    assert await hooks.before_dispatch(message("/identity login")) is None
    # No session at all, yet the fallback leaves authentication to before_dispatch.
    assert await hooks.before_agent_start({"prompt": "hello"}, {"sessionKey": MAIN}) is None


async def test_subagents_inherit_the_parents_tip_when_propagation_is_on(
    open_stack: StackOpener,
) -> None:
    child = "agent:main:subagent:0b5e"
    async with open_stack(identity={"subagentTipPropagation": True}) as stack:
        await stack.login(ALICE_DM)
        hooks = IdentityHooks(stack.deps)
        assert await hooks.before_dispatch(message("spawn a helper")) is None
        await hooks.subagent_spawned(
            {"childSessionKey": child, "runId": "r1", "agentId": "main", "mode": "run"},
            {"requesterSessionKey": MAIN, "childSessionKey": child},
        )
        tip = await stack.deps.tips.get_tip(child)
        assert isinstance(tip, TipInfo)
        assert tip.parent_key == ALICE_DM
        assert tip.sub == "alice"


async def test_subagents_get_nothing_when_propagation_is_off(stack: Stack) -> None:
    child = "agent:main:subagent:0b5e"
    await stack.login(ALICE_DM)
    hooks = IdentityHooks(stack.deps)
    assert await hooks.before_dispatch(message("spawn a helper")) is None
    await hooks.subagent_spawned({"childSessionKey": child}, {"requesterSessionKey": MAIN})
    assert isinstance(await stack.deps.tips.get_tip(child), NoTip)


async def test_a_malformed_subagent_event_is_swallowed(open_stack: StackOpener) -> None:
    async with open_stack(identity={"subagentTipPropagation": True}) as stack:
        hooks = IdentityHooks(stack.deps)
        await hooks.subagent_spawned({"childSessionKey": 7}, None)
        await hooks.subagent_spawned({"childSessionKey": "agent:main:subagent:x"}, {})


async def test_a_malformed_dispatch_event_fails_closed(stack: Stack) -> None:
    result = await IdentityHooks(stack.deps).before_dispatch({"content": 42}, None)
    assert result is not None
    assert result.handled is True


async def test_an_unreachable_control_plane_is_no_login_prompt(stack: Stack) -> None:
    await stack.login(ALICE_DM)
    await stack.deps.tips.flush()
    stack.sb.faults.add("GetWorkloadAccessTokenForJWT", status=400, code="InvalidRequest")
    ctx = {"sessionKey": ALICE_DM}
    started = await IdentityHooks(stack.deps).before_agent_start({"prompt": "hi"}, ctx)
    assert started is not None
    assert started.prepend_context is not None
    assert "could not be checked" in started.prepend_context
    result = await IdentityHooks(stack.deps).before_dispatch(message("hello"))
    assert result is not None
    assert result.handled is True
    assert result.text is not None
    assert "could not be checked" in result.text
    assert URL.search(result.text) is None


async def test_before_agent_start_without_a_userpool_says_so(open_stack: StackOpener) -> None:
    async with open_stack(userpool=None) as stack:
        result = await IdentityHooks(stack.deps).before_agent_start({"prompt": "hi"}, None)
        assert result is not None
        assert result.prepend_context is not None
        assert "not configured" in result.prepend_context


async def test_a_malformed_agent_start_event_changes_nothing(stack: Stack) -> None:
    hooks = IdentityHooks(stack.deps)
    assert await hooks.before_agent_start({"messages": []}, {}) is None
    assert await hooks.before_agent_start({"prompt": "hi"}, {"sessionKey": ["x"]}) is None


async def test_a_subagent_of_a_session_without_tip_gets_none(
    open_stack: StackOpener, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    child = "agent:main:subagent:77"
    async with open_stack(identity={"subagentTipPropagation": True}) as stack:
        hooks = IdentityHooks(stack.deps)
        await hooks.subagent_spawned({"childSessionKey": child}, {"requesterSessionKey": MAIN})
        assert isinstance(await stack.deps.tips.get_tip(child), NoTip)
    assert "no TIP propagated" in caplog.text


def test_the_skill_index_reads_messages_and_stays_bounded() -> None:
    index = SkillIndex(capacity=1)
    messages: list[object] = [
        {"role": "system", "content": [{"type": "text", "text": "<available_skills>"}]},
        {"role": "system", "content": "<skill><name>wx</name></skill></available_skills>"},
        "not a message",
    ]
    texts = "\n".join(message_texts(messages))
    index.record("a", parse_skill_entries(texts))
    assert [entry.name for entry in index.lookup("a")] == ["wx"]
    index.record("b", [])
    assert index.lookup("a") == ()
