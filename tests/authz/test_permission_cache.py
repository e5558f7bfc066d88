"""Cache expiry and bounds of PermissionChecker on Trio's mock clock.

No sockets here: the checker talks to a tiny in-test implementation of its own
``PermissionBackend`` protocol (one method). Every behaviour against the control plane is
tested with the real sandbox in ``test_permission.py``; this file only drives time.
"""

from __future__ import annotations

import trio
import trio.testing

from agent_identity.authz.permission import PermissionBackend, PermissionChecker
from agent_identity.authz.tip_claims import DelegationChain, TipClaims
from agent_identity.volcengine.errors import VolcengineError
from agent_identity.volcengine.models import CheckPermissionRequest, EntityRef, PermissionDecision

ALICE = TipClaims(sub="alice", chain=DelegationChain(("openclaw-agent", "upstream")))


class Policy:
    """Allows everything except tools named ``deny-*``; optionally fails or is slow."""

    def __init__(self, *, delay: float = 0.0) -> None:
        self.requests: list[CheckPermissionRequest] = []
        self.fail = False
        self.delay = delay

    async def check_permission(self, request: CheckPermissionRequest) -> PermissionDecision:
        self.requests.append(request)
        if self.fail:
            raise VolcengineError(status=None, code="ConnectionError", message="refused")
        await trio.sleep(self.delay)
        assert request.resource is not None
        return PermissionDecision(allowed=not request.resource.id.startswith("deny-"))


def test_the_policy_double_satisfies_the_protocol() -> None:
    backend: PermissionBackend = Policy()
    assert backend is not None


async def test_decisions_expire_on_trios_clock(autojump_clock: trio.testing.MockClock) -> None:
    policy = Policy()
    checker = PermissionChecker(policy, "default", cache_ttl=30.0)
    assert (await checker.check_tool(ALICE, "exec")).allowed
    assert not (await checker.check_tool(ALICE, "deny-rm")).allowed
    await trio.sleep(29.9)
    assert (await checker.check_tool(ALICE, "exec")).cached
    assert (await checker.check_tool(ALICE, "deny-rm")).cached
    assert len(policy.requests) == 2
    await trio.sleep(0.1)
    fresh = await checker.check_tool(ALICE, "exec")
    assert fresh.allowed
    assert not fresh.cached
    assert len(policy.requests) == 3


async def test_the_request_carries_the_mapping() -> None:
    policy = Policy()
    checker = PermissionChecker(policy, "ns-1")
    await checker.check_agent(ALICE, run_id="run-1")
    await checker.check_tool(ALICE, "exec", session_id="sess-1")
    await checker.check_skill_read(ALICE, "weather")
    agent, tool, skill = policy.requests
    assert agent.namespace_name == "ns-1"
    assert (agent.principal, agent.operation, agent.resource) == (
        EntityRef(type="user", id="alice"),
        EntityRef(type="Action", id="invoke"),
        EntityRef(type="agent", id="openclaw-agent"),
    )
    # The agent is the resource, so only the deeper actors are original callers.
    assert [(c.type, c.id) for c in agent.original_callers or []] == [("agent", "upstream")]
    assert agent.extra is not None
    assert (agent.extra.run_id, agent.extra.session_id) == ("run-1", None)
    # For tools and skills the whole chain calls, the current agent first.
    assert tool.operation is not None
    assert tool.resource is not None
    assert (tool.operation.id, tool.resource.type, tool.resource.id) == ("call", "tool", "exec")
    assert [c.id for c in tool.original_callers or []] == ["openclaw-agent", "upstream"]
    assert tool.extra is not None
    assert tool.extra.session_id == "sess-1"
    assert skill.operation is not None
    assert skill.resource is not None
    assert (skill.operation.id, skill.resource.type, skill.resource.id) == (
        "read",
        "skill",
        "weather",
    )
    assert skill.extra is None


async def test_the_cache_is_bounded_and_drops_expired_entries_first(
    autojump_clock: trio.testing.MockClock,
) -> None:
    policy = Policy()
    checker = PermissionChecker(policy, cache_ttl=10.0, max_entries=3)
    await checker.check_tool(ALICE, "a")
    await trio.sleep(5)
    await checker.check_tool(ALICE, "b")
    await checker.check_tool(ALICE, "c")
    await checker.check_tool(ALICE, "d")  # full: the oldest (a) goes
    assert checker.statistics().cache_size == 3
    assert not (await checker.check_tool(ALICE, "a")).cached  # evicted; now b goes
    assert (await checker.check_tool(ALICE, "d")).cached
    assert not (await checker.check_tool(ALICE, "b")).cached
    await trio.sleep(6)  # t=11: d, a, b (stored at t=5) are still fresh
    await checker.check_tool(ALICE, "f")  # full: the oldest (d) goes
    await trio.sleep(5)  # t=16: a and b have expired, f has not
    await checker.check_tool(ALICE, "g")  # full: the expired ones go, nothing fresh
    assert checker.statistics().cache_size == 2
    assert (await checker.check_tool(ALICE, "f")).cached


async def test_a_waiter_shares_the_answer_in_flight_and_failures_are_not_cached(
    autojump_clock: trio.testing.MockClock,
) -> None:
    policy = Policy(delay=1.0)
    checker = PermissionChecker(policy)
    results = []

    async def check() -> None:
        results.append(await checker.check_tool(ALICE, "exec"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(check)
        await trio.testing.wait_all_tasks_blocked()
        policy.fail = True  # the in-flight call still succeeds; only new ones fail
        nursery.start_soon(check)
    assert [r.allowed for r in results] == [True, True]
    checker.clear()
    policy.delay = 0.0
    first = await checker.check_tool(ALICE, "exec")
    assert first.failed
    assert "ConnectionError" in first.reason
    second = await checker.check_tool(ALICE, "exec")
    assert second.failed
    assert not second.cached
    assert len(policy.requests) == 3
    assert checker.statistics().failures == 2


async def test_an_immediate_failure_is_still_a_checkpoint() -> None:
    policy = Policy()
    policy.fail = True
    checker = PermissionChecker(policy)
    with trio.testing.assert_checkpoints():
        assert (await checker.check_tool(ALICE, "exec")).failed
    with trio.testing.assert_checkpoints():
        assert not (await checker.check_tool(ALICE, "")).allowed


async def test_the_nowait_checks_answer_only_from_the_cache(
    autojump_clock: trio.testing.MockClock,
) -> None:
    policy = Policy()
    checker = PermissionChecker(policy, "default", cache_ttl=30.0)
    key = "agent:main:telegram:direct:42"
    assert checker.check_tool_nowait(ALICE, "exec", session_key=key) is None
    asked = await checker.check_tool(ALICE, "exec", session_key=key)
    assert await checker.check_skill_read(ALICE, "deny-wx", session_key=key) is not None
    fast = checker.check_tool_nowait(ALICE, "exec", session_key=key)
    assert fast is not None
    assert (fast.allowed, fast.reason, fast.cached) == (True, asked.reason, True)
    skill = checker.check_skill_read_nowait(ALICE, "deny-wx", session_key=key)
    assert skill is not None
    assert not skill.allowed
    # Another session, another user, another resource kind or name: not this entry.
    bob = TipClaims(sub="bob", chain=ALICE.chain)
    assert checker.check_tool_nowait(ALICE, "exec", session_key="agent:main:main") is None
    assert checker.check_tool_nowait(bob, "exec", session_key=key) is None
    assert checker.check_skill_read_nowait(ALICE, "exec", session_key=key) is None
    assert checker.check_tool_nowait(ALICE, "", session_key=key) is None
    # A TIP not decoded yet is for the awaited check (it decodes it or says why it cannot).
    assert checker.check_tool_nowait("not-a-jwt", "exec", session_key=key) is None
    stats = checker.statistics()
    assert (stats.checks, stats.cache_hits, stats.allowed, stats.denied) == (4, 2, 2, 2)
    assert len(policy.requests) == 2
    await trio.sleep(30)
    assert checker.check_tool_nowait(ALICE, "exec", session_key=key) is None  # expired
