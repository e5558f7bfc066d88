"""before_tool_call authorization: caller resolution, TIP, toolCheck, low-risk bypass, skills."""

from __future__ import annotations

from typing import Any

import pytest

from agent_identity.host.contract import to_wire
from agent_identity.host.events import BeforeToolCallEvent, ToolHookContext
from agent_identity.host.hooks import IdentityHooks
from agent_identity.host.results import BeforeToolCallResult
from agent_identity.sandbox.cedar import PolicyEngine
from agent_identity.sandbox.seed import load_seed

from .conftest import MAIN, Stack, StackOpener

ALICE_DM = "agent:main:telegram:direct:42"
BOB_DM = "agent:main:telegram:direct:77"
SKILLS_PROMPT = """You can use skills.
<available_skills>
  <skill><name>weather</name><location>/opt/skills/wx/SKILL.md</location></skill>
  <skill><name>secret-ops</name><location>/opt/skills/so/SKILL.md</location></skill>
</available_skills>"""


def call(tool: str, params: dict[str, Any] | None = None, *, n: int = 1) -> dict[str, Any]:
    return {"toolName": tool, "params": params or {}, "runId": "run-1", "toolCallId": f"c{n}"}


def blocked(result: BeforeToolCallResult | None) -> str:
    assert result is not None
    assert result.block is True
    assert result.block_reason is not None
    return result.block_reason


def forbid_skill(stack: Stack, skill: str) -> None:
    """Add a Cedar policy that forbids every user to read ``skill``."""
    seed = load_seed()
    assert seed.authz is not None
    current = stack.sb.state.engines["default"]
    forbid = (
        f'@id("no-{skill}") forbid(principal, action == Default::Action::"read", '
        f'resource == Default::Skill::"{skill}");'
    )
    stack.sb.state.engines["default"] = PolicyEngine(
        "default", "Default", seed.authz.schema_text, f"{current.policies_text}\n{forbid}"
    )


async def test_without_checks_a_tool_call_passes_untouched(stack: Stack) -> None:
    hooks = IdentityHooks(stack.deps)
    assert (
        await hooks.before_tool_call(call("exec", {"command": "ls"}), {"sessionKey": MAIN}) is None
    )


async def test_tool_check_needs_a_tip_and_says_how_to_log_in(open_stack: StackOpener) -> None:
    async with open_stack(authz={"toolCheck": True}) as stack:
        hooks = IdentityHooks(stack.deps)
        reason = blocked(await hooks.before_tool_call(call("exec"), {"sessionKey": ALICE_DM}))
        assert "/identity login" in reason
        await stack.login(ALICE_DM)
        assert await hooks.before_tool_call(call("exec"), {"sessionKey": ALICE_DM}) is None


async def test_tool_check_denies_bob_exec_but_not_other_tools(open_stack: StackOpener) -> None:
    async with open_stack(authz={"toolCheck": True}) as stack:
        await stack.login(BOB_DM, username="bob", password="bob-password")
        hooks = IdentityHooks(stack.deps)
        ctx = {"sessionKey": BOB_DM}
        reason = blocked(await hooks.before_tool_call(call("bash", {"command": "ls"}), ctx))
        assert "permission denied" in reason
        assert "'exec'" in reason
        assert await hooks.before_tool_call(call("write", {"path": "a.txt"}), ctx) is None


async def test_the_sender_recorded_by_dispatch_names_the_tool_callers_session(
    open_stack: StackOpener,
) -> None:
    async with open_stack(authz={"toolCheck": True}) as stack:
        await stack.login(ALICE_DM)
        hooks = IdentityHooks(stack.deps)
        # Before any message the tool context (no sender) resolves to the shared main key.
        assert blocked(await hooks.before_tool_call(call("exec"), {"sessionKey": MAIN}))
        inbound = {"content": "run ls", "channel": "telegram", "senderId": "42"}
        assert await hooks.before_dispatch(inbound, {"sessionKey": MAIN}) is None
        assert await hooks.before_tool_call(call("exec"), {"sessionKey": MAIN}) is None
        # A host that names the requester (2026.8.1+) needs no recorded sender.
        assert stack.deps.senders.forget(MAIN)
        assert blocked(await hooks.before_tool_call(call("exec"), {"sessionKey": MAIN}))
        requester = {"senderId": "42", "channel": "telegram"}
        ctx = {"sessionKey": "main", "requester": requester}
        assert await hooks.before_tool_call(call("exec"), ctx) is None


async def test_group_sessions_use_the_group_key(open_stack: StackOpener) -> None:
    group = "agent:main:telegram:group:-100"
    async with open_stack(authz={"toolCheck": True}) as stack:
        await stack.login(group)
        hooks = IdentityHooks(stack.deps)
        inbound = {"content": "hi", "channel": "telegram", "senderId": "42", "isGroup": True}
        assert await hooks.before_dispatch(inbound, {"sessionKey": group}) is None
        assert await hooks.before_tool_call(call("exec"), {"sessionKey": group}) is None


async def test_low_risk_tools_bypass_tip_and_permission(open_stack: StackOpener) -> None:
    authz = {"toolCheck": True, "lowRiskTools": ["My_Lookup"]}
    async with open_stack(authz=authz) as stack:
        hooks = IdentityHooks(stack.deps)
        ctx = {"sessionKey": ALICE_DM}
        assert await hooks.before_tool_call(call("read", {"path": "notes.md"}), ctx) is None
        assert await hooks.before_tool_call(call("web_search", {"query": "x"}), ctx) is None
        assert await hooks.before_tool_call(call("my_lookup"), ctx) is None
        assert blocked(await hooks.before_tool_call(call("write", {"path": "a"}), ctx))
        assert stack.deps.permission.statistics().checks == 0


async def test_without_the_bypass_low_risk_tools_are_checked(open_stack: StackOpener) -> None:
    async with open_stack(authz={"toolCheck": True, "lowRiskBypass": False}) as stack:
        hooks = IdentityHooks(stack.deps)
        reason = blocked(await hooks.before_tool_call(call("read", {"path": "notes.md"}), {}))
        assert "/identity login" in reason


async def test_skill_reads_are_checked_under_the_listed_name(open_stack: StackOpener) -> None:
    async with open_stack(authz={"skillReadCheck": True}) as stack:
        forbid_skill(stack, "secret-ops")
        await stack.login(ALICE_DM)
        hooks = IdentityHooks(stack.deps)
        ctx = {"sessionKey": ALICE_DM}
        # Without the prompt's index the folder names the skill: "so" is not forbidden.
        so = call("read", {"path": "/opt/skills/so/SKILL.md"})
        assert await hooks.before_tool_call(so, ctx) is None
        assert await hooks.before_agent_start({"prompt": SKILLS_PROMPT}, ctx) is None
        reason = blocked(await hooks.before_tool_call(so, ctx))
        assert "'secret-ops'" in reason
        wx = call("read", {"path": "/opt/skills/wx/../wx/SKILL.md"})
        assert await hooks.before_tool_call(wx, ctx) is None
        # An unlisted skill is checked too, under its folder's name.
        stray = call("read", {"file_path": "C:\\skills\\secret-ops\\SKILL.md"})
        assert "'secret-ops'" in blocked(await hooks.before_tool_call(stray, ctx))
        checks = stack.deps.permission.statistics().checks
        assert await hooks.before_tool_call(call("read", {"path": "README.md"}), ctx) is None
        cat = call("exec", {"command": "cat /opt/skills/so/SKILL.md"})
        assert await hooks.before_tool_call(cat, ctx) is None
        assert stack.deps.permission.statistics().checks == checks


async def test_skill_reads_need_a_tip_even_though_read_is_low_risk(
    open_stack: StackOpener,
) -> None:
    async with open_stack(authz={"skillReadCheck": True}) as stack:
        hooks = IdentityHooks(stack.deps)
        skill = call("read", {"path": "skills/weather/SKILL.md"})
        assert "/identity login" in blocked(await hooks.before_tool_call(skill, {}))


@pytest.mark.parametrize(
    ("event", "ctx"),
    [
        ({"toolName": 5, "params": {}}, {}),
        ({"params": {"command": "ls"}}, {}),
        ({"toolName": "exec", "params": ["ls"]}, {}),
        ({"toolName": "exec"}, {"requester": "42"}),
        (None, None),
    ],
)
async def test_malformed_payloads_fail_closed(stack: Stack, event: Any, ctx: Any) -> None:
    reason = blocked(await IdentityHooks(stack.deps).before_tool_call(event, ctx))
    assert "could not check" in reason


async def test_a_stopped_system_fails_closed(open_stack: StackOpener) -> None:
    async with open_stack(authz={"toolCheck": True}) as stack:
        hooks = IdentityHooks(stack.deps)
    # The actors are gone: every hook that needs them gives its failure answer.
    assert "could not check" in blocked(await hooks.before_tool_call(call("exec"), {}))
    started = await hooks.before_agent_start({"prompt": "hi"}, {})
    assert started is not None
    assert started.prepend_context is not None
    dispatched = await hooks.before_dispatch({"content": "hi"}, {})
    assert dispatched is not None
    assert dispatched.handled is True
    await hooks.after_tool_call(call("exec"), {})


async def test_typed_structs_are_accepted_too(open_stack: StackOpener) -> None:
    async with open_stack(authz={"toolCheck": True}) as stack:
        await stack.login(BOB_DM, username="bob", password="bob-password")
        hooks = IdentityHooks(stack.deps)
        event = BeforeToolCallEvent(tool_name="exec", params={"command": "ls"}, run_id="r")
        result = await hooks.before_tool_call(event, ToolHookContext(session_key=BOB_DM))
        assert result is not None
        wire = to_wire(result)
        assert wire["block"] is True
        assert set(wire) == {"block", "blockReason"}


async def test_hooks_register_under_the_host_names(stack: Stack) -> None:
    hooks = IdentityHooks(stack.deps)
    mapping = hooks.as_mapping()
    assert list(mapping) == [
        "before_dispatch",
        "before_agent_start",
        "subagent_spawned",
        "before_tool_call",
        "after_tool_call",
    ]
    assert mapping["before_tool_call"] == hooks.before_tool_call


async def test_an_unreachable_control_plane_blocks_without_a_login_hint(
    open_stack: StackOpener,
) -> None:
    async with open_stack(authz={"toolCheck": True}) as stack:
        await stack.login(ALICE_DM)
        await stack.deps.tips.flush()
        stack.sb.faults.add("GetWorkloadAccessTokenForJWT", status=400, code="InvalidRequest")
        hooks = IdentityHooks(stack.deps)
        reason = blocked(await hooks.before_tool_call(call("exec"), {"sessionKey": ALICE_DM}))
        assert "could not be checked" in reason
        assert "/identity login" not in reason
