"""The TIP refresher against the sandbox over real loopback: workloads, cache, single-flight.

Covers the workload name priority (all four branches, the role name with STS keys),
auto-create on 404 (and the 409 race of two gateways), cache hits, single-flight minting,
forget / flush, list-tips without tokens, and the one timer task.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import AsyncIterator

import pytest
import trio
import trio.lowlevel

from agent_identity.actors.tip_mint import IdentityTipMinter
from agent_identity.actors.tip_refresher import TipRefresher
from agent_identity.config import IdentityConfig

from .test_tip_support import CREATE, MINT, Env, claims_of, no_tip, open_env, tip

KEY = "agent:main:telegram:direct:42"


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    async with open_env() as opened:
        yield opened


# ------------------------------------------------------------------ workload name priority


async def test_config_workload_name_wins_over_role_and_agent(env: Env) -> None:
    config = IdentityConfig(workload_name="configured-agent", role_trn="trn:iam::1:role/x")
    _, tips = await env.start(config)
    await env.login(KEY)
    info = tip(await tips.get_tip(KEY, agent_id="coder"))
    assert info.workload == "configured-agent"
    assert info.chain.actors == ("configured-agent",)
    assert claims_of(info.token)["act"] == {"sub": "configured-agent"}
    assert info.sub == "alice"
    assert not info.cached


async def test_role_trn_omits_the_name_and_the_role_name_is_used(env: Env) -> None:
    config = IdentityConfig(role_trn=env.sb.state.role_trn("openclaw-agent"))
    client = env.identity_client(await env.role_credentials("openclaw-agent"))
    _, tips = await env.start(config, client=client)
    await env.login(KEY)
    info = tip(await tips.get_tip(KEY, agent_id="coder"))
    assert info.workload is None  # Name omitted: the control plane chose
    assert info.chain.actors == ("openclaw-agent",)  # the STS role's name
    assert env.sb.requests.count(CREATE) == 0


async def test_role_trn_without_a_role_caller_is_a_failure_not_a_logout(env: Env) -> None:
    """Name omitted but signed with root keys: 400 MissingParameter, not the user's fault."""
    _, tips = await env.start(IdentityConfig(role_trn="trn:iam::1:role/openclaw-agent"))
    await env.login(KEY)
    outcome = no_tip(await tips.get_tip(KEY))
    assert outcome.code == "unavailable"
    assert "MissingParameter" in outcome.reason
    assert env.sb.requests.count(CREATE) == 0  # no name, so nothing to create


async def test_agent_id_names_the_workload_and_it_is_created(env: Env) -> None:
    _, tips = await env.start()
    await env.login(KEY)
    info = tip(await tips.get_tip(KEY, agent_id="coder"))
    assert info.workload == "coder"
    assert info.chain.current == "coder"
    workload = env.sb.state.workload_pools["default"].workloads["coder"]
    assert workload.category == "Agent"
    # 404, create, retry once.
    assert env.sb.requests.count(MINT) == 2
    assert env.sb.requests.count(CREATE) == 1


async def test_default_workload_is_openclaw_agent(env: Env) -> None:
    _, tips = await env.start()
    await env.login(KEY)
    info = tip(await tips.get_tip(KEY))
    assert info.workload == "openclaw-agent"
    assert info.chain.actors == ("openclaw-agent",)
    assert env.sb.requests.count(CREATE) == 0


async def test_pool_audience_and_duration_come_from_the_config(env: Env) -> None:
    config = IdentityConfig(audience=("https://api.example.com",), duration_seconds=900)
    _, tips = await env.start(config)
    await env.login(KEY)
    info = tip(await tips.get_tip(KEY))
    claims = claims_of(info.token)
    assert claims["aud"] == ["https://api.example.com"]
    assert claims["exp"] - claims["iat"] == 900
    assert info.expires_at == claims["exp"]
    assert info.issued_at == claims["iat"]


async def test_a_new_agent_id_for_a_cached_session_mints_for_that_workload(env: Env) -> None:
    _, tips = await env.start()
    await env.login(KEY)
    first = tip(await tips.get_tip(KEY))
    assert tip(await tips.get_tip(KEY)).cached  # no agent id: whatever is cached
    second = tip(await tips.get_tip(KEY, agent_id="writer"))
    assert second.workload == "writer"
    assert not second.cached
    assert second.token != first.token
    # The agent is remembered for later askers and for refreshes.
    assert tip(await tips.get_tip(KEY)).workload == "writer"
    assert tip(await tips.refresh(KEY)).workload == "writer"


# ------------------------------------------------------------------ auto-create and 409


async def test_missing_workload_stays_an_error_when_create_fails(env: Env) -> None:
    env.sb.faults.add(action=CREATE, status=403, code="AccessDenied")
    _, tips = await env.start()
    await env.login(KEY)
    outcome = no_tip(await tips.get_tip(KEY, agent_id="nobody-may-create"))
    assert outcome.code == "unavailable"
    assert "AccessDenied" in outcome.reason


async def test_two_gateways_creating_the_same_workload_ignore_the_409(env: Env) -> None:
    """Two refreshers (two gateways) both see 404 and both create; one gets 409 and goes on."""
    # Delay the creates so both mints have seen their 404 before either create lands.
    env.sb.faults.add(action=CREATE, latency=0.3, count=2)
    first_minter = IdentityTipMinter(env.identity_client())
    second_minter = IdentityTipMinter(env.identity_client())
    _, first = await env.start(minter=first_minter, name="gateway-1")
    _, second = await env.start(minter=second_minter, name="gateway-2")
    await env.login("agent:race:one", "alice")
    await env.login("agent:race:two", "bob")
    results = {}

    async def ask(tips: object, key: str) -> None:
        assert hasattr(tips, "get_tip")
        results[key] = await tips.get_tip(key, agent_id="race-agent")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ask, first, "agent:race:one")
        nursery.start_soon(ask, second, "agent:race:two")
    assert tip(results["agent:race:one"]).chain.current == "race-agent"
    assert tip(results["agent:race:two"]).chain.current == "race-agent"
    assert env.sb.requests.count(CREATE) == 2
    stats = [first_minter.statistics(), second_minter.statistics()]
    assert sorted(s.workloads_created for s in stats) == [0, 1]
    assert sorted(s.create_conflicts for s in stats) == [0, 1]
    assert all(s.not_found == 1 and s.mints == 1 for s in stats)


async def test_sessions_of_one_gateway_share_one_create(env: Env) -> None:
    env.sb.faults.add(action=CREATE, latency=0.2, count=1)
    minter = IdentityTipMinter(env.identity_client())
    _, tips = await env.start(minter=minter)
    keys = [f"agent:shared:{n}" for n in range(5)]
    for key in keys:
        await env.login(key)
    async with trio.open_nursery() as nursery:
        for key in keys:
            nursery.start_soon(functools.partial(tips.get_tip, key, agent_id="shared-agent"))
    assert env.sb.requests.count(CREATE) == 1
    assert minter.statistics().workloads_created == 1
    assert minter.statistics().mints == 5
    for key in keys:
        assert tip(await tips.peek(key)).chain.current == "shared-agent"


# ------------------------------------------------------------------ cache and single-flight


async def test_cache_hits_cost_no_request(env: Env) -> None:
    refresher, tips = await env.start()
    await env.login(KEY)
    first = tip(await tips.get_tip(KEY))
    for _ in range(10):
        again = tip(await tips.get_tip(KEY))
        assert again.cached
        assert again.token == first.token
    assert env.sb.requests.count(MINT) == 1
    stats = await tips.statistics()
    assert (stats.hits, stats.misses, stats.mints, stats.refreshes) == (10, 1, 1, 0)
    assert stats.cached == 1
    assert stats.scheduled == 1
    assert dataclasses.replace(stats, actor=stats.actor) == dataclasses.replace(
        refresher.tip_statistics(), actor=stats.actor
    )


async def test_one_hundred_concurrent_askers_share_one_mint(env: Env) -> None:
    env.sb.faults.add(action=MINT, latency=0.2, count=1)  # keep the mint in flight a while
    _, tips = await env.start()
    await env.login(KEY)
    answers: list[str] = []

    async def ask() -> None:
        answers.append(tip(await tips.get_tip(KEY)).token)

    async with trio.open_nursery() as nursery:
        for _ in range(100):
            nursery.start_soon(ask)
        await trio.testing.wait_all_tasks_blocked()
        stats = await tips.statistics()
        assert stats.in_flight == 1
    assert len(answers) == 100
    assert len(set(answers)) == 1
    assert env.sb.requests.count(MINT) == 1
    stats = await tips.statistics()
    assert stats.mints == 1
    assert stats.misses + stats.hits == 100
    assert stats.in_flight == 0


async def test_unknown_session_is_no_session(env: Env) -> None:
    _, tips = await env.start()
    outcome = no_tip(await tips.get_tip("agent:main:nobody"))
    assert outcome.code == "no_session"
    assert env.sb.requests.count(MINT) == 0
    assert no_tip(await tips.peek("agent:main:nobody")).code == "not_cached"


async def test_forced_refresh_mints_a_new_tip(env: Env) -> None:
    _, tips = await env.start()
    await env.login(KEY)
    first = tip(await tips.get_tip(KEY))
    env.wall.advance(5)
    second = tip(await tips.refresh(KEY))
    assert second.token != first.token
    assert not second.cached
    assert tip(await tips.get_tip(KEY)).token == second.token
    stats = await tips.statistics()
    assert (stats.mints, stats.refreshes) == (2, 1)


# ------------------------------------------------------------------ forget, flush, list


async def test_forget_drops_the_tip_and_its_schedule(env: Env) -> None:
    _, tips = await env.start()
    await env.login(KEY)
    await env.login("agent:main:other", "bob")
    tip(await tips.get_tip(KEY))
    tip(await tips.get_tip("agent:main:other"))
    assert (await tips.statistics()).scheduled == 2
    assert await tips.forget(KEY) is True
    assert no_tip(await tips.peek(KEY)).code == "not_cached"
    assert (await tips.statistics()).scheduled == 1
    assert await tips.forget(KEY) is False
    # The other session is untouched; the forgotten one mints again on demand.
    assert tip(await tips.peek("agent:main:other")).sub == "bob"
    assert not tip(await tips.get_tip(KEY)).cached


async def test_forget_during_a_mint_answers_its_askers(env: Env) -> None:
    env.sb.faults.add(action=MINT, latency=5.0, count=1)
    _, tips = await env.start()
    await env.login(KEY)
    async with trio.open_nursery() as nursery:
        result: list[object] = []

        async def ask() -> None:
            result.append(await tips.get_tip(KEY))

        nursery.start_soon(ask)
        await trio.testing.wait_all_tasks_blocked()
        assert (await tips.statistics()).in_flight == 1
        assert await tips.forget(KEY) is False
    outcome = result[0]
    assert no_tip(outcome).code == "no_session"  # type: ignore[arg-type]
    stats = await tips.statistics()
    assert (stats.in_flight, stats.cached, stats.scheduled) == (0, 0, 0)


async def test_flush_drops_everything(env: Env) -> None:
    _, tips = await env.start()
    for n in range(3):
        await env.login(f"agent:main:user{n}", f"user{n}")
        tip(await tips.get_tip(f"agent:main:user{n}"))
    assert await tips.flush() == 3
    assert await tips.list_tips() == []
    stats = await tips.statistics()
    assert (stats.cached, stats.scheduled) == (0, 0)
    assert await tips.flush() == 0
    assert not tip(await tips.get_tip("agent:main:user1")).cached


async def test_list_tips_leaves_tokens_out_unless_asked(env: Env) -> None:
    _, tips = await env.start()
    await env.login("agent:main:b", "bob")
    await env.login("agent:main:a", "alice")
    b = tip(await tips.get_tip("agent:main:b"))
    a = tip(await tips.get_tip("agent:main:a", agent_id="coder"))
    listed = await tips.list_tips()
    assert [s.session_key for s in listed] == ["agent:main:a", "agent:main:b"]
    assert all(s.token is None for s in listed)
    first = listed[0]
    assert (first.sub, first.chain.actors, first.workload) == ("alice", ("coder",), "coder")
    assert first.expires_at == a.expires_at
    assert first.issued_at == a.issued_at
    assert first.refresh_at is not None
    assert first.issued_at is not None
    assert first.issued_at < first.refresh_at < first.expires_at
    assert (first.failures, first.last_error, first.parent_key) == (0, None, None)
    assert a.token not in repr(listed)
    assert a.token not in repr(a)
    with_tokens = await tips.list_tips(include_tokens=True)
    assert [s.token for s in with_tokens] == [a.token, b.token]
    assert a.token not in repr(with_tokens)
    # Expired TIPs are never listed.
    env.wall.advance(3 * 3600)
    assert await tips.list_tips() == []


# ------------------------------------------------------------------ one timer task


def _all_tasks(root: trio.lowlevel.Task) -> list[trio.lowlevel.Task]:
    found: list[trio.lowlevel.Task] = []
    pending = [root]
    while pending:
        task = pending.pop()
        found.append(task)
        for nursery in task.child_nurseries:
            pending.extend(nursery.child_tasks)
    return found


def _runs_refresher(task: trio.lowlevel.Task) -> bool:
    frame = getattr(task.coro, "cr_frame", None)
    owner = frame.f_locals.get("self") if frame is not None else None
    return task.name.endswith(".run") and isinstance(owner, TipRefresher)


def _refresher_tasks() -> list[str]:
    """The names of the tasks under the refresher's own ``run`` task."""
    root = trio.lowlevel.current_root_task()
    assert root is not None
    everything = _all_tasks(root)
    # The run method is inherited (NurseryActor.run), so find it by the actor it runs.
    [run] = [task for task in everything if _runs_refresher(task)]
    return [task.name for task in _all_tasks(run)]


async def test_one_timer_task_however_many_sessions(env: Env) -> None:
    _, tips = await env.start()
    before = _refresher_tasks()
    assert sum("_timer_loop" in name for name in before) == 1
    keys = [f"agent:main:user{n}" for n in range(40)]
    for key in keys:
        await env.login(key, key.rsplit(":", 1)[1])
    async with trio.open_nursery() as nursery:
        for key in keys:
            nursery.start_soon(tips.get_tip, key)
    stats = await tips.statistics()
    assert (stats.cached, stats.scheduled, stats.timer_tasks, stats.in_flight) == (40, 40, 1, 0)
    # 40 scheduled refreshes, and still the run task plus one timer task: nothing per session.
    assert _refresher_tasks() == before
    assert len(before) == 2
