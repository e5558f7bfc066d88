"""PermissionChecker against the sandbox over real loopback, decided by real Cedar policies.

The seed: alice and bob may invoke ``openclaw-agent``, users may call tools and read skills,
bob is forbidden ``exec``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator

import httpx
import pytest
import trio
import trio.testing

from agent_identity.authz.permission import (
    DEFAULT_CACHE_TTL,
    PermissionChecker,
    PermissionDecision,
)
from agent_identity.authz.tip_claims import DelegationChain, TipClaims, decode_tip_claims
from agent_identity.config import AuthzConfig
from agent_identity.sandbox import Sandbox, open_sandbox
from agent_identity.volcengine import IdentityClient, RetryPolicy, SigningCredentials
from agent_identity.volcengine.models import (
    CreateWorkloadIdentityRequest,
    GetWorkloadAccessTokenForJWTRequest,
)
from agent_identity.volcengine.transport import static_credentials

POOL = "agent-identity-dev"
AGENT = "openclaw-agent"
SESSION = "agent:main:telegram:direct:42"
RETRY = RetryPolicy(max_attempts=2, base_delay=0.0, max_delay=0.0, max_retry_after=0.0)


async def no_sleep(_seconds: float) -> None:
    await trio.lowlevel.checkpoint()


class ManualClock:
    """The checker's cache clock, moved by hand (the sandbox needs real time for sockets)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with open_sandbox(rng=random.Random(20261129)) as sandbox:
        yield sandbox


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


def identity_client(
    http: httpx.AsyncClient, sb: Sandbox, endpoint: str | None = None
) -> IdentityClient:
    return IdentityClient(
        http,
        endpoint=endpoint or sb.base_url,
        credentials=static_credentials(SigningCredentials(sb.access_key_id, sb.secret_access_key)),
        retry=RETRY,
        rng=random.Random(7),
        sleep=no_sleep,
    )


@pytest.fixture
def client(sb: Sandbox, http: httpx.AsyncClient) -> IdentityClient:
    return identity_client(http, sb)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def checker(client: IdentityClient, clock: ManualClock) -> PermissionChecker:
    return PermissionChecker(client, "default", clock=clock)


async def mint_tip(
    client: IdentityClient, sb: Sandbox, sub: str, *, via: str | None = None, agent: str = AGENT
) -> str:
    """A TIP for ``sub`` acting through ``agent``; with ``via``, delegated from that TIP."""
    user_token = via if via is not None else sb.issue_user_token(POOL, sub)
    result = await client.get_workload_access_token_for_jwt(
        GetWorkloadAccessTokenForJWTRequest(user_token=user_token, name=agent)
    )
    return result.workload_access_token


def assert_no_token(decision: PermissionDecision, *tokens: str) -> None:
    for token in tokens:
        assert token not in decision.reason
        for piece in token.split("."):
            assert piece not in decision.reason


# --------------------------------------------------------------------- decisions by Cedar


async def test_alice_may_invoke_the_agent_named_by_her_tip(
    checker: PermissionChecker, client: IdentityClient, sb: Sandbox
) -> None:
    tip = await mint_tip(client, sb, "alice")
    decision = await checker.check_agent(tip, session_key=SESSION, run_id="r1", session_id="s1")
    assert decision.allowed
    assert not decision.cached
    assert not decision.failed
    assert "alice" in decision.reason
    assert "invoke agent 'openclaw-agent'" in decision.reason
    assert "alice-invokes-openclaw-agent" in decision.reason  # Cedar's policy id
    assert_no_token(decision, tip)
    assert sb.requests.count("CheckPermission") == 1


async def test_bob_may_not_exec_but_may_read(
    checker: PermissionChecker, client: IdentityClient, sb: Sandbox
) -> None:
    tip = await mint_tip(client, sb, "bob")
    denied = await checker.check_tool(tip, "exec", session_key=SESSION)
    assert not denied.allowed
    assert not denied.failed
    assert "permission denied: user 'bob' call tool 'exec'" in denied.reason
    assert "bob-never-execs" in denied.reason
    allowed = await checker.check_tool(tip, "read", session_key=SESSION)
    assert allowed.allowed
    assert_no_token(denied, tip)
    assert_no_token(allowed, tip)
    # Bob may invoke the agent too, and read skills.
    assert (await checker.check_agent(tip)).allowed
    skill = await checker.check_skill_read(tip, "weather")
    assert skill.allowed
    assert "read skill 'weather'" in skill.reason


async def test_a_user_without_a_policy_is_denied(
    checker: PermissionChecker, client: IdentityClient, sb: Sandbox
) -> None:
    tip = await mint_tip(client, sb, "carol")
    decision = await checker.check_agent(tip)
    assert not decision.allowed
    assert "no policy permits" in decision.reason


async def test_an_explicit_agent_id_overrides_the_chain(
    checker: PermissionChecker, client: IdentityClient, sb: Sandbox
) -> None:
    tip = await mint_tip(client, sb, "alice")
    assert not (await checker.check_agent(tip, "other-agent")).allowed
    assert (await checker.check_agent(tip, AGENT)).allowed


async def test_the_agent_is_the_outermost_actor_of_the_chain(
    checker: PermissionChecker, client: IdentityClient, sb: Sandbox
) -> None:
    await client.create_workload_identity(CreateWorkloadIdentityRequest(name="planner"))
    # alice -> planner -> openclaw-agent: the current (outermost) agent is openclaw-agent.
    planner_tip = await mint_tip(client, sb, "alice", agent="planner")
    through = await mint_tip(client, sb, "alice", via=planner_tip, agent=AGENT)
    claims = decode_tip_claims(through)
    assert claims.chain.actors == (AGENT, "planner")
    allowed = await checker.check_agent(through)
    assert allowed.allowed
    assert "agent 'openclaw-agent'" in allowed.reason
    # alice -> openclaw-agent -> planner: now planner is outermost, and no policy lets alice
    # invoke it, although openclaw-agent is in the chain.
    reverse = await mint_tip(
        client, sb, "alice", via=await mint_tip(client, sb, "alice"), agent="planner"
    )
    assert decode_tip_claims(reverse).chain.actors == ("planner", AGENT)
    denied = await checker.check_agent(reverse)
    assert not denied.allowed
    assert "agent 'planner'" in denied.reason


async def test_decoded_claims_are_accepted(
    checker: PermissionChecker, client: IdentityClient, sb: Sandbox
) -> None:
    claims = decode_tip_claims(await mint_tip(client, sb, "alice"))
    assert (await checker.check_tool(claims, "web_search")).allowed


# ----------------------------------------------------------------------------- the cache


async def test_a_repeated_check_is_answered_from_the_cache(
    checker: PermissionChecker, client: IdentityClient, sb: Sandbox, clock: ManualClock
) -> None:
    tip = await mint_tip(client, sb, "bob")
    first = await checker.check_tool(tip, "exec", session_key=SESSION)
    calls = sb.requests.count("CheckPermission")
    assert calls == 1
    for _ in range(20):  # a hot tool loop
        again = await checker.check_tool(tip, "exec", session_key=SESSION)
        assert again == PermissionDecision(allowed=False, reason=first.reason, cached=True)
    assert sb.requests.count("CheckPermission") == calls
    # Just before the TTL the entry still answers; at the TTL it is asked again.
    clock.now += DEFAULT_CACHE_TTL - 0.001
    assert (await checker.check_tool(tip, "exec", session_key=SESSION)).cached
    clock.now += 0.001
    fresh = await checker.check_tool(tip, "exec", session_key=SESSION)
    assert not fresh.cached
    assert sb.requests.count("CheckPermission") == calls + 1
    stats = checker.statistics()
    assert (stats.checks, stats.cache_hits, stats.control_plane_calls) == (23, 21, 2)
    assert (stats.allowed, stats.denied, stats.failures, stats.invalid) == (0, 23, 0, 0)
    assert stats.cache_size == 1
    assert stats.in_flight == 0


async def test_cache_entries_are_per_session_user_and_resource(
    checker: PermissionChecker, client: IdentityClient, sb: Sandbox
) -> None:
    alice = await mint_tip(client, sb, "alice")
    bob = await mint_tip(client, sb, "bob")
    assert (await checker.check_tool(alice, "exec", session_key=SESSION)).allowed
    # Same session key, another user (a re-login): never the cached answer of alice.
    bob_in_same_session = await checker.check_tool(bob, "exec", session_key=SESSION)
    assert not bob_in_same_session.allowed
    assert not bob_in_same_session.cached
    # Another session of alice, another tool, another resource type: separate entries.
    assert not (await checker.check_tool(alice, "exec", session_key="other")).cached
    assert not (await checker.check_tool(alice, "read", session_key=SESSION)).cached
    assert not (await checker.check_skill_read(alice, "exec", session_key=SESSION)).cached
    assert sb.requests.count("CheckPermission") == 5
    assert checker.statistics().cache_size == 5
    # Invalidation by session, by user, or everything.
    assert checker.invalidate(session_key="other") == 1
    assert checker.invalidate(sub="bob") == 1
    assert checker.invalidate(session_key=SESSION, sub="alice") == 3
    assert (await checker.check_tool(alice, "exec")).allowed
    assert checker.invalidate() == 1
    assert checker.clear() == 0


async def test_concurrent_identical_checks_share_one_call(
    checker: PermissionChecker, client: IdentityClient, sb: Sandbox
) -> None:
    tip = await mint_tip(client, sb, "alice")
    sb.faults.add("CheckPermission", latency=0.2)
    results: list[PermissionDecision] = []

    async def check() -> None:
        results.append(await checker.check_agent(tip, session_key=SESSION))

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(check)
    assert sb.requests.count("CheckPermission") == 1
    assert all(result.allowed for result in results)
    assert sorted(result.cached for result in results) == [False, True, True, True, True]
    stats = checker.statistics()
    assert (stats.coalesced, stats.control_plane_calls, stats.allowed) == (4, 1, 5)


async def test_a_cancelled_leader_hands_the_call_to_a_waiter(
    checker: PermissionChecker, client: IdentityClient, sb: Sandbox
) -> None:
    tip = await mint_tip(client, sb, "alice")
    sb.faults.add("CheckPermission", latency=0.3)
    results: list[PermissionDecision] = []

    async def leader(scope: trio.CancelScope, task_status: trio.TaskStatus[None]) -> None:
        with scope:
            task_status.started()
            await checker.check_agent(tip)
        results.append(PermissionDecision(allowed=False, reason="leader cancelled"))

    async def waiter() -> None:
        results.append(await checker.check_agent(tip))

    async with trio.open_nursery() as nursery:
        scope = trio.CancelScope()
        await nursery.start(leader, scope)
        nursery.start_soon(waiter)
        await trio.sleep(0.05)
        assert checker.statistics().in_flight == 1
        scope.cancel()
    assert results[0].reason == "leader cancelled"
    assert results[1].allowed
    assert not results[1].cached
    assert sb.requests.count("CheckPermission") == 2


# ------------------------------------------------------------------------- fail closed


async def test_a_control_plane_failure_denies_and_is_not_cached(
    checker: PermissionChecker,
    client: IdentityClient,
    sb: Sandbox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    tip = await mint_tip(client, sb, "alice")
    rule = sb.faults.add("CheckPermission", status=503)
    decision = await checker.check_agent(tip, session_key=SESSION)
    assert not decision.allowed
    assert decision.failed
    assert not decision.cached
    assert "ServiceUnavailable" in decision.reason
    assert "HTTP 503" in decision.reason
    assert "fail" in decision.reason
    assert "invoke agent 'openclaw-agent'" in decision.reason
    assert_no_token(decision, tip)
    assert sb.requests.count("CheckPermission") == RETRY.max_attempts  # no retries left
    # Not cached: once the control plane answers again, so does the checker.
    sb.faults.remove(rule)
    recovered = await checker.check_agent(tip, session_key=SESSION)
    assert recovered.allowed
    assert not recovered.cached
    stats = checker.statistics()
    assert (stats.failures, stats.control_plane_calls, stats.denied, stats.allowed) == (1, 2, 1, 1)
    for record in caplog.records:
        assert tip not in record.getMessage()


async def test_failure_denies_can_be_cached_briefly_when_configured(
    client: IdentityClient, sb: Sandbox, clock: ManualClock
) -> None:
    checker = PermissionChecker(client, "default", failure_ttl=2.0, clock=clock)
    tip = await mint_tip(client, sb, "alice")
    rule = sb.faults.add("CheckPermission", status=500)
    assert (await checker.check_tool(tip, "exec")).failed
    sb.faults.remove(rule)
    cached = await checker.check_tool(tip, "exec")
    assert cached.failed
    assert cached.cached
    clock.now += 2.0
    assert (await checker.check_tool(tip, "exec")).allowed


async def test_an_unreachable_control_plane_denies(
    http: httpx.AsyncClient, sb: Sandbox, clock: ManualClock
) -> None:
    async with open_sandbox() as stopped:
        tip = await mint_tip(identity_client(http, stopped), stopped, "alice")
        endpoint = stopped.base_url
    checker = PermissionChecker(identity_client(http, sb, endpoint), clock=clock)
    decision = await checker.check_agent(tip)
    assert not decision.allowed
    assert decision.failed
    assert (
        "CheckPermission for user 'alice' invoke agent 'openclaw-agent' failed" in decision.reason
    )
    assert_no_token(decision, tip)
    assert not (await checker.check_agent(tip)).cached


async def test_an_unknown_namespace_denies(
    client: IdentityClient, sb: Sandbox, clock: ManualClock
) -> None:
    checker = PermissionChecker.from_config(client, AuthzConfig(namespace_name="nope"), clock=clock)
    assert checker.namespace == "nope"
    decision = await checker.check_agent(await mint_tip(client, sb, "alice"))
    assert not decision.allowed
    assert decision.failed
    assert "HTTP 404" in decision.reason
    assert "request id" in decision.reason


# ------------------------------------------------------------------------- bad input


async def test_an_unreadable_tip_denies_without_a_call(
    checker: PermissionChecker, sb: Sandbox
) -> None:
    bad = "SECRETHEADER.SECRETPAYLOAD.SECRETSIG"
    for decision in (
        await checker.check_agent(bad),
        await checker.check_tool(bad, "exec"),
        await checker.check_skill_read(bad, "weather"),
    ):
        assert not decision.allowed
        assert not decision.failed
        assert "the TIP cannot be read" in decision.reason
        assert "SECRET" not in decision.reason
    assert sb.requests.count("CheckPermission") == 0
    stats = checker.statistics()
    assert (stats.checks, stats.invalid, stats.denied) == (3, 3, 3)


async def test_no_agent_and_no_name_deny_without_a_call(
    checker: PermissionChecker, sb: Sandbox
) -> None:
    no_act = TipClaims(sub="alice", chain=DelegationChain())
    decision = await checker.check_agent(no_act)
    assert not decision.allowed
    assert "names no agent" in decision.reason
    assert not (await checker.check_tool(no_act, "")).allowed
    assert "no tool name" in (await checker.check_tool(no_act, "")).reason
    assert sb.requests.count("CheckPermission") == 0


async def test_constructor_validation(client: IdentityClient) -> None:
    with pytest.raises(ValueError, match="negative"):
        PermissionChecker(client, cache_ttl=-1)
    with pytest.raises(ValueError, match="negative"):
        PermissionChecker(client, failure_ttl=-1)
    with pytest.raises(ValueError, match="max_entries"):
        PermissionChecker(client, max_entries=0)
    with pytest.raises(ValueError, match="namespace"):
        PermissionChecker(client, "")


async def test_a_zero_ttl_disables_the_cache(client: IdentityClient, sb: Sandbox) -> None:
    checker = PermissionChecker(client, cache_ttl=0)
    tip = await mint_tip(client, sb, "alice")
    await checker.check_tool(tip, "exec")
    await checker.check_tool(tip, "exec")
    assert sb.requests.count("CheckPermission") == 2
    assert checker.statistics().cache_size == 0
