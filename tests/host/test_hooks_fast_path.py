"""before_tool_call's fast path: cache hits answered in the hook's task, misses still awaited.

The usual tool call (TIP cached, decision cached, bindings in memory) must not go through any
actor's mailbox; every other case takes the awaited path under the hook's deadline and gives
the same answers.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import trio

from agent_identity.actors.tip_messages import TipInfo
from agent_identity.host import hook_guard
from agent_identity.host.contract import to_wire
from agent_identity.host.hooks import IdentityHooks

from .conftest import Stack, StackOpener
from .test_hooks_credentials import SANDBOX_OPENAI_KEY, bind_openai

ALICE_DM = "agent:main:telegram:direct:42"
CTX = {"sessionKey": ALICE_DM}


def call(n: int, tool: str = "exec") -> dict[str, Any]:
    return {"toolName": tool, "params": {"command": "ls"}, "runId": "r", "toolCallId": f"c{n}"}


async def handled(stack: Stack) -> tuple[int, int]:
    """Messages the TIP refresher and the vault have handled, not counting this very ask."""
    tips = await stack.deps.tips.statistics()
    vault = await stack.deps.vault.statistics()
    return tips.actor.handled - 1, vault.actor.handled - 1


async def test_a_cached_tool_call_goes_through_no_mailbox(open_stack: StackOpener) -> None:
    async with open_stack(authz={"toolCheck": True}) as stack:
        await stack.login(ALICE_DM)
        await bind_openai(stack, ALICE_DM)
        hooks = IdentityHooks(stack.deps)
        await hooks.before_tool_call(call(0), CTX)  # the decision is cached from now on
        await hooks.after_tool_call(call(0), CTX)
        hits_before = (await stack.deps.tips.statistics()).hits
        tips_before, vault_before = await handled(stack)
        for n in range(1, 21):
            result = await hooks.before_tool_call(call(n), CTX)
            assert result is not None
            assert to_wire(result) == {"params": {"env": {"OPENAI_API_KEY": SANDBOX_OPENAI_KEY}}}
            await hooks.after_tool_call(call(n), CTX)
        tips_after, vault_after = await handled(stack)
        # Nothing but the statistics ask of the first handled() reached the mailboxes.
        assert (tips_after - tips_before, vault_after - vault_before) == (1, 1)
        tips = await stack.deps.tips.statistics()
        assert tips.hits - hits_before == 20
        vault = await stack.deps.vault.statistics()
        assert vault.leases_active == 0  # every lease granted on the fast path was released
        assert vault.leases_released >= 20
        assert stack.deps.permission.statistics().control_plane_calls == 1


async def test_a_miss_takes_the_awaited_path_and_gives_the_same_answer(
    open_stack: StackOpener,
) -> None:
    async with open_stack(authz={"toolCheck": True}) as stack:
        await stack.login(ALICE_DM)
        await bind_openai(stack, ALICE_DM)
        hooks = IdentityHooks(stack.deps)
        fast = await hooks.before_tool_call(call(1), CTX)
        # Nothing cached any more: the TIP is minted again, the decision asked again.
        assert await stack.deps.tips.flush() >= 1
        stack.deps.permission.clear()
        tips_before, _ = await handled(stack)
        slow = await hooks.before_tool_call(call(2), CTX)
        tips_after, _ = await handled(stack)
        # The statistics ask of the first handled(), and the hook's GetTip.
        assert tips_after - tips_before == 2
        assert fast is not None
        assert slow is not None
        assert to_wire(slow) == to_wire(fast)
        tip = stack.deps.tips.get_tip_nowait(ALICE_DM)
        assert isinstance(tip, TipInfo)  # and the minted TIP is a cache hit again


class _Hanging:
    """An actor client whose every awaited request hangs and that has no fast path."""

    def __getattr__(self, name: str) -> Any:
        if name.endswith("_nowait"):
            return lambda *args, **kwargs: None

        async def hang(*args: object, **kwargs: object) -> None:
            await trio.sleep_forever()

        return hang


@pytest.mark.parametrize("hung", ["tips", "vault"])
async def test_a_step_that_waits_is_still_bounded_by_the_hook_deadline(
    open_stack: StackOpener, monkeypatch: pytest.MonkeyPatch, hung: str
) -> None:
    monkeypatch.setattr(hook_guard, "HOOK_DEADLINE_SECONDS", 0.2)
    async with open_stack(authz={"toolCheck": True}) as stack:
        await stack.login(ALICE_DM)
        await bind_openai(stack, ALICE_DM)
        stuck: Any = _Hanging()
        deps = (
            dataclasses.replace(stack.deps, tips=stuck)
            if hung == "tips"
            else dataclasses.replace(stack.deps, vault=stuck)
        )
        hooks = IdentityHooks(deps)
        started = trio.current_time()
        with trio.fail_after(5):
            result = await hooks.before_tool_call(call(1), CTX)
        assert trio.current_time() - started >= 0.2
        assert result is not None
        assert result.block is True
        assert result.block_reason is not None
        assert "could not check" in result.block_reason
