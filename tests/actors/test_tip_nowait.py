"""``get_tip_nowait``: the refresher's cache hit served in the caller's task.

It must answer exactly what a ``GetTip`` that hits the cache answers, and ``None`` whenever
the actor is needed; over simulated hours a caller that tries it first never sees an expired
TIP. Built on the simulation of ``test_tip_simulated.py`` (Trio's MockClock drives time).
"""

from __future__ import annotations

import dataclasses
import random

import trio
import trio.testing

from agent_identity.actors.tip_messages import TipInfo, TipOutcome

from .test_tip_simulated import HOUR, Sim, open_sim

KEY = "agent:main:alice"


async def ask(sim: Sim, key: str) -> TipOutcome:
    """What before_tool_call does: the fast path, else the mailbox."""
    fast = sim.tips.get_tip_nowait(key)
    return fast if fast is not None else await sim.tips.get_tip(key)


async def test_a_hit_is_what_get_tip_answers_and_a_miss_is_none(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_sim() as sim:
        assert sim.tips.get_tip_nowait(KEY) is None  # nothing cached: the actor must mint
        await sim.login(KEY, "alice")
        assert sim.tips.get_tip_nowait(KEY) is None
        minted = await sim.tips.get_tip(KEY)
        assert isinstance(minted, TipInfo)
        handled = sim.refresher.statistics().handled
        hits = (await sim.tips.statistics()).hits
        fast = sim.tips.get_tip_nowait(KEY)
        assert fast == dataclasses.replace(minted, cached=True)
        assert fast == await sim.tips.get_tip(KEY)
        stats = await sim.tips.statistics()
        assert stats.hits == hits + 2  # the fast hit counts like the asked one
        # Two GetStatistics and one GetTip reached the mailbox; the fast hit sent nothing.
        assert sim.refresher.statistics().handled == handled + 3
        assert sim.tips.get_tip_nowait("agent:main:bob") is None
        await sim.tips.forget(KEY)
        assert sim.tips.get_tip_nowait(KEY) is None  # logged out: never served from memory


async def test_hours_of_fast_path_traffic_never_see_an_expired_tip(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_sim() as sim:
        users = [f"user{n}" for n in range(10)]
        for user in users:
            await sim.login(f"agent:main:{user}", user)
        served = 0

        async def client(key: str, pace: random.Random) -> None:
            nonlocal served
            end = trio.current_time() + 6 * HOUR
            while trio.current_time() < end:
                assert isinstance(sim.check(await ask(sim, key)), TipInfo)
                served += 1
                await trio.sleep(pace.uniform(1, 600))

        async with trio.open_nursery() as nursery:
            for n, user in enumerate(users):
                nursery.start_soon(client, f"agent:main:{user}", random.Random(n))
        stats = await sim.tips.statistics()
        assert stats.misses == len(users)  # the timer kept every session fresh
        assert stats.hits == served - len(users)
        assert stats.refreshes > 0


async def test_a_slept_machine_refreshes_ahead_or_mints_on_demand(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_sim() as sim:
        await sim.login(KEY, "alice")
        first = await sim.tips.get_tip(KEY)
        assert isinstance(first, TipInfo)
        assert first.refresh_at is not None
        sim.wall.jump += first.refresh_at - sim.wall() + 30  # past the refresh point, valid
        served = sim.tips.get_tip_nowait(KEY)
        assert served is not None
        assert served.token == first.token
        # The fast path started the refresh the timer missed, as GetTip would have.
        assert (await sim.tips.statistics()).background_in_flight == 1
        sim.wall.jump += 2 * HOUR  # slept past the expiry of everything
        assert sim.tips.get_tip_nowait(KEY) is None
        again = sim.check(await sim.tips.get_tip(KEY))
        assert isinstance(again, TipInfo)
        assert again.token != first.token


async def test_a_stopped_refresher_has_no_fast_path(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_sim() as sim:
        await sim.login(KEY, "alice")
        assert isinstance(await sim.tips.get_tip(KEY), TipInfo)
        assert sim.tips.get_tip_nowait(KEY) is not None
        await sim.refresher.stop()
        # The dead run's cache is still in memory, but it is no longer the truth.
        assert not sim.refresher.running
        assert sim.tips.get_tip_nowait(KEY) is None
        async with trio.open_nursery() as nursery:
            await nursery.start(sim.refresher.run)  # a restart starts with an empty cache
            assert sim.tips.get_tip_nowait(KEY) is None
            assert isinstance(await sim.tips.get_tip(KEY), TipInfo)
            assert sim.tips.get_tip_nowait(KEY) is not None
            await sim.refresher.stop()
