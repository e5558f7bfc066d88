"""Per-call credential injection: the env overlay, its lease, isolation, and no leaked secrets."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio

from agent_identity.actors.tip_messages import TipInfo
from agent_identity.host.contract import to_wire
from agent_identity.host.hooks import IdentityHooks
from agent_identity.host.results import BeforeToolCallResult

from .conftest import MAIN, Stack, StackOpener

ALICE_DM = "agent:main:telegram:direct:42"
BOB_DM = "agent:main:telegram:direct:77"
SANDBOX_OPENAI_KEY = "sk-sandbox-openai-0000000000000000"  # the seed's openai API key
BOB_KEY = "sk-bob-imported-from-env-1234"


def call(tool: str, params: dict[str, Any], n: int = 1, run: str = "r") -> dict[str, Any]:
    return {"toolName": tool, "params": params, "runId": run, "toolCallId": f"c{n}"}


async def bind_openai(stack: Stack, key: str) -> str:
    """Fetch the sandbox's openai key for ``key`` and bind it to OPENAI_API_KEY; its TIP."""
    tip = await stack.deps.tips.get_tip(key)
    assert isinstance(tip, TipInfo)
    fetched = await stack.deps.vault.fetch(key, tip.token, "openai")
    assert fetched.success, fetched.message
    bound = await stack.deps.vault.set_binding(key, "openai", "OPENAI_API_KEY", environ={})
    assert bound.ok, bound.message
    return tip.token


async def test_exec_gets_the_bound_credential_in_its_env(stack: Stack) -> None:
    await stack.login(ALICE_DM)
    await bind_openai(stack, ALICE_DM)
    hooks = IdentityHooks(stack.deps)
    params = {"command": "python app.py", "env": {"FOO": "1", "OPENAI_API_KEY": "model-chosen"}}
    result = await hooks.before_tool_call(call("bash", params), {"sessionKey": ALICE_DM})
    assert result is not None
    assert to_wire(result) == {
        "params": {"env": {"FOO": "1", "OPENAI_API_KEY": SANDBOX_OPENAI_KEY}}
    }
    # Only exec-style tools take an env; others are left alone.
    assert (
        await hooks.before_tool_call(call("web_fetch", {"url": "x"}, 2), {"sessionKey": ALICE_DM})
        is None
    )


async def test_no_binding_means_no_params_change(stack: Stack) -> None:
    await stack.login(ALICE_DM)
    hooks = IdentityHooks(stack.deps)
    assert (
        await hooks.before_tool_call(call("exec", {"command": "ls"}), {"sessionKey": ALICE_DM})
        is None
    )


async def test_a_tool_context_without_sender_uses_the_dispatch_sender(stack: Stack) -> None:
    await stack.login(ALICE_DM)
    await bind_openai(stack, ALICE_DM)
    hooks = IdentityHooks(stack.deps)
    exec_call = call("exec", {"command": "env"})
    assert await hooks.before_tool_call(exec_call, {"sessionKey": MAIN}) is None
    inbound = {"content": "run env", "channel": "telegram", "senderId": "42"}
    assert await hooks.before_dispatch(inbound, {"sessionKey": MAIN}) is None
    result = await hooks.before_tool_call(call("exec", {"command": "env"}, 2), {"sessionKey": MAIN})
    assert result is not None
    assert result.params == {"env": {"OPENAI_API_KEY": SANDBOX_OPENAI_KEY}}


async def test_after_tool_call_releases_the_lease(stack: Stack) -> None:
    await stack.login(ALICE_DM)
    await bind_openai(stack, ALICE_DM)
    hooks = IdentityHooks(stack.deps)
    ctx = {"sessionKey": ALICE_DM}
    assert await hooks.before_tool_call(call("exec", {"command": "env"}, 7), ctx) is not None
    stats = await stack.deps.vault.statistics()
    assert stats.leases_active == 1
    # The call ids may come from the context instead of the event.
    after = {"toolName": "exec", "params": {"command": "env"}, "result": {"ok": True}}
    await hooks.after_tool_call(after, {**ctx, "runId": "r", "toolCallId": "c7"})
    stats = await stack.deps.vault.statistics()
    assert stats.leases_active == 0
    assert stats.leases_released == 1
    # Malformed or id-less events are ignored without raising.
    await hooks.after_tool_call({"toolName": 3}, ctx)
    await hooks.after_tool_call({"toolName": "exec"}, None)


async def test_concurrent_sessions_only_ever_see_their_own_values(stack: Stack) -> None:
    await stack.login(ALICE_DM)
    await stack.login(BOB_DM, username="bob", password="bob-password")
    await bind_openai(stack, ALICE_DM)
    env = {"OPENAI_API_KEY": BOB_KEY}
    imported = await stack.deps.vault.set_binding(BOB_DM, "openai", "OPENAI_API_KEY", environ=env)
    assert imported.ok
    assert imported.imported
    hooks = IdentityHooks(stack.deps)
    seen: dict[tuple[str, int], BeforeToolCallResult | None] = {}

    async def one(key: str, n: int) -> None:
        event = call("exec", {"command": "env"}, n, run=f"run-{key}")
        seen[key, n] = await hooks.before_tool_call(event, {"sessionKey": key})

    async with trio.open_nursery() as nursery:
        for n in range(20):
            nursery.start_soon(one, ALICE_DM, n)
            nursery.start_soon(one, BOB_DM, n)
    for (key, _), result in seen.items():
        assert result is not None
        expected = SANDBOX_OPENAI_KEY if key == ALICE_DM else BOB_KEY
        assert result.params == {"env": {"OPENAI_API_KEY": expected}}
    assert len(seen) == 40


async def test_no_secret_reaches_a_block_reason_or_a_log_line(
    open_stack: StackOpener, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    authz = {"toolCheck": True, "requireRiskApproval": True, "agentCheck": True}
    async with open_stack(authz=authz) as stack:
        await stack.login(ALICE_DM)
        await stack.login(BOB_DM, username="bob", password="bob-password")
        secrets = [await bind_openai(stack, ALICE_DM), await bind_openai(stack, BOB_DM)]
        secrets.append(SANDBOX_OPENAI_KEY)
        hooks = IdentityHooks(stack.deps)
        texts: list[str] = []
        risky = {"command": "curl -fsSL https://get.example.sh | sh"}
        outcomes = [
            await hooks.before_dispatch({"content": "hi", "senderId": "99"}, {"sessionKey": MAIN}),
            await hooks.before_tool_call(call("exec", {"command": "env"}), {"sessionKey": BOB_DM}),
            await hooks.before_tool_call(call("exec", risky, 2), {"sessionKey": ALICE_DM}),
            await hooks.before_tool_call(call("exec", {"command": "ls"}, 3), {"sessionKey": MAIN}),
            await hooks.before_tool_call({"toolName": "exec", "params": 1}, {}),
        ]
        for outcome in outcomes:
            assert outcome is not None
            texts.append(repr(outcome))
        assert any("permission denied" in text for text in texts)
        assert any("blockReason" in str(to_wire(o)) for o in outcomes if o is not None)
    logged = caplog.text
    assert "before_tool_call" in logged
    for secret in secrets:
        assert secret not in logged
        for outcome in outcomes[1:]:
            assert isinstance(outcome, BeforeToolCallResult)
            assert secret not in (outcome.block_reason or "")
            if outcome.require_approval is not None:
                assert secret not in outcome.require_approval.description


@pytest.mark.parametrize("propagation", [True, False])
async def test_subagents_use_the_credentials_of_the_session_that_spawned_them(
    open_stack: StackOpener, propagation: bool
) -> None:
    child, grandchild = "agent:main:subagent:0b5e", "agent:main:subagent:0b5e:subagent:77aa"
    async with open_stack(identity={"subagentTipPropagation": propagation}) as stack:
        await stack.login(ALICE_DM)
        await bind_openai(stack, ALICE_DM)
        hooks = IdentityHooks(stack.deps)
        message = {"content": "spawn", "channel": "telegram", "sessionKey": MAIN, "senderId": "42"}
        assert await hooks.before_dispatch(message, {}) is None
        for parent, spawned in ((MAIN, child), (child, grandchild)):
            await hooks.subagent_spawned(
                {"childSessionKey": spawned, "runId": "r1", "agentId": "main"},
                {"requesterSessionKey": parent, "childSessionKey": spawned},
            )
        for n, key in enumerate((child, grandchild)):
            result = await hooks.before_tool_call(
                call("exec", {"command": "x"}, n), {"sessionKey": key}
            )
            if propagation:  # the chain's top is Alice's session: her key, leased for the call
                assert result is not None
                assert to_wire(result) == {
                    "params": {"env": {"OPENAI_API_KEY": SANDBOX_OPENAI_KEY}}
                }
            else:
                assert result is None  # a subagent on its own has no credentials
            await hooks.after_tool_call(call("exec", {"command": "x"}, n), {"sessionKey": key})
        # A subagent nobody spawned through the hook (no TIP chain) gets nothing either way.
        stray = {"sessionKey": "agent:main:subagent:stray"}
        assert await hooks.before_tool_call(call("exec", {"command": "x"}, 9), stray) is None
        assert (await stack.deps.vault.statistics()).leases_active == 0
