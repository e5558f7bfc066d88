"""The TIP refresher over simulated hours: Trio's MockClock (autojump) drives the timer.

Real sockets do not mix with autojump, so here the refresher's ``TipMinter`` is a small local
minter that signs RS256 TIPs exactly as the sandbox does (``sub`` kept, ``act`` nested, ``exp``
capped at the user token's). It is a test double of *our* interface, used only to simulate
time; every control-plane behaviour is tested against the sandbox in ``test_tip_sandbox.py``
and ``test_tip_sessions.py``. The wall clock is derived from Trio's clock
(``T0 + trio.current_time() + jump``), so hours pass in milliseconds and a test can also step
the wall clock alone (a suspended laptop).
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import itertools
import random
import weakref
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
import trio
import trio.testing
from cryptography.hazmat.primitives.asymmetric import rsa

from agent_identity.actors.session_store import SessionStore
from agent_identity.actors.tip_messages import NoTip, TipInfo, TipOutcome, TipRefresherClient
from agent_identity.actors.tip_mint import MintedTip
from agent_identity.actors.tip_refresher import TipRefresher
from agent_identity.actors.tip_schedule import MISS_BACKOFF_BASE, MISS_BACKOFF_MAX, RefreshPolicy
from agent_identity.config import IdentityConfig
from agent_identity.storage import MemoryBackend, SessionRecord
from agent_identity.volcengine import VolcengineError

T0 = 1_800_000_000.0
HOUR = 3600.0
ISSUER = "https://auth.id.local/workloadpool/wp-test"


@functools.cache
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class Wall:
    """Wall clock = T0 + Trio's clock + whatever the test jumped."""

    def __init__(self) -> None:
        self.jump = 0.0

    def __call__(self) -> float:
        return T0 + trio.current_time() + self.jump


def user_token(sub: str, exp: float) -> str:
    return jwt.encode({"iss": "local-users", "sub": sub, "exp": int(exp)}, signing_key(), "RS256")


@dataclass
class LocalMinter:
    """Mints TIPs like the sandbox; records every call; can be taken down."""

    wall: Wall
    duration: int = 3600
    latency: float = 0.05
    down: bool = False
    calls: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    running: int = 0
    peak: int = 0
    hook: Callable[[], Awaitable[None]] | None = None

    async def mint(self, user_token: str, workload: str | None) -> MintedTip:
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await trio.sleep(self.latency)
            if self.hook is not None:
                await self.hook()
            incoming: dict[str, Any] = jwt.decode(user_token, options={"verify_signature": False})
            self.calls[incoming["sub"]].append(self.wall())
            if self.down:
                raise VolcengineError(
                    status=503, code="ServiceUnavailable", message="down", action="mint"
                )
            now = int(self.wall())
            exp = min(now + self.duration, int(incoming["exp"]))
            act: dict[str, Any] = {"sub": workload or "role-name"}
            if isinstance(incoming.get("act"), dict):
                act["act"] = incoming["act"]
            claims = {
                "iss": ISSUER,
                "sub": incoming["sub"],
                "aud": [ISSUER],
                "iat": now,
                "exp": exp,
                "act": act,
            }
            return MintedTip(jwt.encode(claims, signing_key(), "RS256"), float(exp))
        finally:
            self.running -= 1


@dataclass
class Sim:
    wall: Wall
    minter: LocalMinter
    store: SessionStore
    refresher: TipRefresher
    tips: TipRefresherClient

    async def login(self, key: str, sub: str, *, days: float = 30) -> None:
        exp = self.wall() + days * 86400
        await self.store.client.put(
            SessionRecord(
                session_key=key,
                sub=sub,
                user_token=user_token(sub, exp),
                expires_at=exp,
                login_at=self.wall(),
            )
        )

    def check(self, outcome: TipOutcome) -> TipOutcome:
        """Whatever is served must be servable *now*, by the wall clock."""
        if isinstance(outcome, TipInfo):
            now = self.wall()
            exp = jwt.decode(outcome.token, options={"verify_signature": False})["exp"]
            assert outcome.expires_at == exp
            assert exp - now > self.refresher.policy.serve_margin, (exp, now)
        return outcome


@asynccontextmanager
async def open_sim(
    *,
    policy: RefreshPolicy | None = None,
    config: IdentityConfig | None = None,
    max_background_mints: int = 8,
    seed: int = 5,
) -> AsyncIterator[Sim]:
    wall = Wall()
    minter = LocalMinter(wall)
    async with trio.open_nursery() as nursery:
        store = SessionStore(MemoryBackend(now=wall), now=wall)
        await nursery.start(store.run)
        refresher = TipRefresher(
            minter,
            store.client,
            config=config,
            policy=policy,
            rng=random.Random(seed),
            wall=wall,
            max_background_mints=max_background_mints,
        )
        await nursery.start(refresher.run)
        yield Sim(wall, minter, store, refresher, refresher.client)
        await refresher.stop()
        await store.stop()


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    # pytest-trio only takes the clock from the test's own arguments: every test using this
    # fixture asks for ``autojump_clock`` itself.
    async with open_sim() as opened:
        yield opened


# ------------------------------------------------------------------ hours of proactive refresh


async def test_hours_of_traffic_never_see_an_expired_tip(
    sim: Sim, autojump_clock: trio.testing.MockClock
) -> None:
    users = [f"user{n}" for n in range(20)]
    for user in users:
        await sim.login(f"agent:main:{user}", user)
    rng = random.Random(99)
    served = 0

    async def client(key: str, pace: random.Random) -> None:
        nonlocal served
        end = trio.current_time() + 10 * HOUR
        while trio.current_time() < end:
            outcome = sim.check(await sim.tips.get_tip(key))
            assert isinstance(outcome, TipInfo), outcome
            served += 1
            await trio.sleep(pace.uniform(1, 900))

    async with trio.open_nursery() as nursery:
        for user in users:
            nursery.start_soon(client, f"agent:main:{user}", random.Random(rng.random()))
    stats = await sim.tips.statistics()
    # Only the first ask of each session missed: refreshes always came before expiry.
    assert stats.misses == len(users)
    assert stats.hits == served - len(users)
    assert stats.failures == 0
    assert stats.timer_tasks == 1
    assert stats.scheduled == len(users)
    for user in users:
        calls = sim.minter.calls[user]
        gaps = [b - a for a, b in itertools.pairwise(calls)]
        assert len(calls) >= 11  # 10 hours / at most 0.85 h
        assert all(0.75 * HOUR - 1 <= gap <= 0.85 * HOUR + 1 for gap in gaps), gaps
    assert stats.refreshes == stats.mints - len(users)


async def test_refresh_times_are_jittered(sim: Sim, autojump_clock: trio.testing.MockClock) -> None:
    for n in range(10):
        await sim.login(f"agent:main:u{n}", f"u{n}")
        await sim.tips.get_tip(f"agent:main:u{n}")
    due = {summary.refresh_at for summary in await sim.tips.list_tips()}
    assert len(due) == 10  # no thundering herd


async def test_outage_during_refresh_serves_until_expiry_then_recovers(
    sim: Sim, autojump_clock: trio.testing.MockClock
) -> None:
    key = "agent:main:alice"
    await sim.login(key, "alice")
    first = sim.check(await sim.tips.get_tip(key))
    assert isinstance(first, TipInfo)
    assert first.refresh_at is not None
    refresh_at = first.refresh_at
    timeline: list[tuple[float, str]] = []

    async def outage() -> None:
        await trio.sleep_until(refresh_at - T0 - 60)  # wall = T0 + Trio's clock here
        sim.minter.down = True
        await trio.sleep(1.5 * HOUR)
        sim.minter.down = False

    async with trio.open_nursery() as nursery:
        nursery.start_soon(outage)
        for _ in range(int(3 * HOUR / 10)):
            outcome = sim.check(await sim.tips.get_tip(key))
            if isinstance(outcome, TipInfo):
                timeline.append((sim.wall(), "old" if outcome.token == first.token else "new"))
            else:
                assert outcome.code == "unavailable"
                assert "ServiceUnavailable" in outcome.reason
                timeline.append((sim.wall(), "none"))
            await trio.sleep(10)
    kinds = [kind for _, kind in timeline]
    # old TIP until it expires, then reported missing, then a new one: in that order.
    assert kinds[0] == "old"
    assert "none" in kinds
    assert "new" in kinds
    first_none = kinds.index("none")
    first_new = kinds.index("new")
    assert set(kinds[:first_none]) == {"old"}
    assert set(kinds[first_none:first_new]) == {"none"}
    assert set(kinds[first_new:]) == {"new"}
    assert timeline[first_none - 1][0] < first.expires_at - sim.refresher.policy.serve_margin
    assert timeline[first_none][0] >= first.expires_at - sim.refresher.policy.serve_margin - 10
    stats = await sim.tips.statistics()
    assert stats.failures >= 5  # background retries with backoff, then on-demand attempts
    # Backoff: far fewer background attempts than seconds of outage before expiry.
    attempts = [
        t for t in sim.minter.calls["alice"] if first.refresh_at - 60 <= t < first.expires_at
    ]
    assert 3 <= len(attempts) <= 20


async def test_a_wall_clock_jump_refreshes_at_the_next_serve(
    sim: Sim, autojump_clock: trio.testing.MockClock
) -> None:
    """The machine slept: Trio's clock did not move, the wall clock did."""
    key = "agent:main:alice"
    await sim.login(key, "alice")
    first = sim.check(await sim.tips.get_tip(key))
    assert isinstance(first, TipInfo)
    assert first.refresh_at is not None
    sim.wall.jump += first.refresh_at - sim.wall() + 30  # past the refresh point, still valid
    served = sim.check(await sim.tips.get_tip(key))
    assert isinstance(served, TipInfo)
    assert served.token == first.token  # served while the refresh runs ahead
    assert (await sim.tips.statistics()).background_in_flight == 1
    refreshed = sim.check(await sim.tips.refresh(key))  # joins the refresh in flight
    assert isinstance(refreshed, TipInfo)
    assert refreshed.token != first.token
    assert len(sim.minter.calls["alice"]) == 2
    assert sim.check(await sim.tips.get_tip(key)) == dataclasses.replace(refreshed, cached=True)
    # Slept past the expiry of even the new one: never served, minted on demand.
    sim.wall.jump += 2 * HOUR
    again = sim.check(await sim.tips.get_tip(key))
    assert isinstance(again, TipInfo)
    assert again.token != refreshed.token
    assert not again.cached


async def test_background_refreshes_are_bounded(autojump_clock: trio.testing.MockClock) -> None:
    del autojump_clock
    policy = RefreshPolicy(refresh_fraction=(0.8, 0.8))  # all due at the same instant
    async with open_sim(policy=policy, max_background_mints=3) as sim:
        sim.minter.latency = 5.0
        keys = [f"agent:main:u{n}" for n in range(12)]
        for n, key in enumerate(keys):
            await sim.login(key, f"u{n}")
        async with trio.open_nursery() as nursery:
            for key in keys:
                nursery.start_soon(sim.tips.get_tip, key)
        assert sim.minter.peak == 12  # on-demand mints are not throttled
        sim.minter.peak = 0
        await trio.sleep(0.8 * HOUR + 60)
        assert sim.minter.peak == 3
        for n in range(12):
            assert len(sim.minter.calls[f"u{n}"]) == 2
        assert (await sim.tips.statistics()).background_in_flight == 0


async def test_idle_sessions_stop_being_refreshed(autojump_clock: trio.testing.MockClock) -> None:
    del autojump_clock
    async with open_sim(policy=RefreshPolicy(idle_ttl=3 * HOUR)) as sim:
        key = "agent:main:alice"
        await sim.login(key, "alice")
        sim.check(await sim.tips.get_tip(key))
        await trio.sleep(10 * HOUR)
        assert 3 <= len(sim.minter.calls["alice"]) <= 6
        stats = await sim.tips.statistics()
        assert (stats.cached, stats.scheduled) == (0, 0)
        again = sim.check(await sim.tips.get_tip(key))
        assert isinstance(again, TipInfo)
        assert not again.cached


async def test_subagent_tips_refresh_from_the_parent_for_hours(
    autojump_clock: trio.testing.MockClock,
) -> None:
    del autojump_clock
    async with open_sim(config=IdentityConfig(subagent_tip_propagation=True)) as sim:
        parent, child = "agent:main:alice", "agent:main:subagent:1"
        await sim.login(parent, "alice")
        first = sim.check(await sim.tips.propagate(parent, child, agent_id="helper"))
        assert isinstance(first, TipInfo)
        assert first.chain.actors == ("helper", "openclaw-agent")
        tokens = set()
        for _ in range(6 * 60):
            outcome = sim.check(await sim.tips.get_tip(child))
            assert isinstance(outcome, TipInfo), outcome
            assert outcome.chain.actors == ("helper", "openclaw-agent")
            tokens.add(outcome.token)
            await trio.sleep(60)
        assert len(tokens) >= 6  # refreshed, never expired
        stats = await sim.tips.statistics()
        assert stats.misses == 0  # propagate minted it; every later ask was a hit
        assert stats.failures == 0


# ------------------------------------------------------------------ the miss back-off


class LowestJitter(random.Random):
    """Always the low end of a jittered range: the shortest back-off the policy allows."""

    def uniform(self, a: float, b: float) -> float:
        del b
        return a


def most_mints(seconds: float, policy: RefreshPolicy) -> int:
    """The most mints one session's asks can start in ``seconds`` of failures in a row."""
    lowest = LowestJitter()
    mints, spent = 0, 0.0
    while spent <= seconds:
        mints += 1
        spent += policy.miss_backoff(mints, lowest)
    return mints


async def test_an_outage_past_expiry_costs_a_mint_per_back_off_window_not_per_ask(
    autojump_clock: trio.testing.MockClock,
) -> None:
    del autojump_clock
    async with open_sim() as sim:
        sim.minter.duration = 600
        key = "agent:main:alice"
        await sim.login(key, "alice")
        first = sim.check(await sim.tips.get_tip(key))
        assert isinstance(first, TipInfo)
        sim.minter.down = True
        # The timer's refreshes fail (with their own back-off) until the TIP runs out.
        await trio.sleep_until(first.expires_at - T0)  # wall = T0 + Trio's clock here
        calls = sim.minter.calls["alice"]
        background = len(calls) - 1
        assert background >= 3
        start = len(calls)
        asks = 0

        async def asker() -> None:
            nonlocal asks
            end = trio.current_time() + 600
            while trio.current_time() < end:
                outcome = sim.check(await sim.tips.get_tip(key))
                assert isinstance(outcome, NoTip), outcome  # never an expired TIP
                assert outcome.code == "unavailable"
                assert "ServiceUnavailable" in outcome.reason
                asks += 1
                await trio.sleep(1)

        held_before = (await sim.tips.statistics()).held_back
        async with trio.open_nursery() as nursery:
            for _ in range(10):
                nursery.start_soon(asker)
        mints = len(calls) - start
        # Nearly every ask was held back (counted for operators: ctl status, /metrics).
        held = (await sim.tips.statistics()).held_back - held_before
        assert asks - 10 * mints <= held < asks
        # 10 askers every second for 10 minutes (without the back-off: a mint per second),
        # and the session was still tried at least once per longest window.
        assert asks >= 5900
        assert 600 / (MISS_BACKOFF_MAX + 1) <= mints <= most_mints(600, sim.refresher.policy)
        assert mints <= 45
        # The control plane is back: the first ask after the session's window mints again.
        sim.minter.down = False
        back = trio.current_time()
        for _ in range(int(MISS_BACKOFF_MAX) + 2):  # asked every second, as before
            if isinstance(sim.check(await sim.tips.get_tip(key)), TipInfo):
                break
            await trio.sleep(1)
        assert trio.current_time() - back <= MISS_BACKOFF_MAX + 1
        assert isinstance(sim.check(await sim.tips.get_tip(key)), TipInfo)
        stats = await sim.tips.statistics()
        assert stats.failures == background + mints
        assert (stats.cached, stats.scheduled) == (1, 1)  # refreshed by the timer again


async def test_the_miss_backoff_doubles_and_ends_with_a_mint_or_a_logout(
    sim: Sim, autojump_clock: trio.testing.MockClock
) -> None:
    key = "agent:main:alice"
    await sim.login(key, "alice")
    sim.minter.down = True
    calls = sim.minter.calls["alice"]

    async def ask() -> NoTip:
        outcome = await sim.tips.get_tip(key)
        assert isinstance(outcome, NoTip), outcome
        assert outcome.code == "unavailable"
        return outcome

    # One failure holds nothing back; the second opens the window.
    first = await ask()
    assert len(calls) == 1
    assert await ask() == first
    assert len(calls) == 2
    assert await ask() == first  # held back: the last answer, at once, no mint
    assert len(calls) == 2
    # A forced refresh (a login) always tries.
    assert isinstance(await sim.tips.refresh(key), NoTip)
    assert len(calls) == 3
    # Asked every 50 ms: the mints come one window apart, doubling up to the cap.
    every = 0.05
    while len(calls) < 10:
        await ask()
        await trio.sleep(every)
    latency = sim.minter.latency
    for failures, (a, b) in enumerate(itertools.pairwise(calls[2:]), start=3):
        ceiling = min(MISS_BACKOFF_MAX, MISS_BACKOFF_BASE * 2.0 ** (failures - 2))
        assert ceiling / 2 + latency - 1e-6 <= b - a <= ceiling + latency + every + 1e-6, (
            failures,
            b - a,
        )
    # A logout (forget) ends it: the next ask tries at once.
    assert not await sim.tips.forget(key)
    await ask()
    assert len(calls) == 11
    # So does a mint: the next failure is spared again.
    sim.minter.down = False
    assert isinstance(await sim.tips.get_tip(key), TipInfo)
    sim.minter.down = True
    sim.wall.jump += 2 * HOUR  # past the TIP's expiry (and its refresh)
    await ask()
    await ask()
    assert len(calls) == 14


# ------------------------------------------------------------------ failure edges


async def test_a_slow_mint_times_out(autojump_clock: trio.testing.MockClock) -> None:
    del autojump_clock
    async with open_sim() as sim:
        await sim.login("agent:main:alice", "alice")
        sim.minter.latency = 10_000.0
        outcome = await sim.tips.get_tip("agent:main:alice")
        assert isinstance(outcome, NoTip)
        assert "too slow" in outcome.reason


async def test_an_unreadable_tip_is_not_served(
    sim: Sim, autojump_clock: trio.testing.MockClock
) -> None:
    await sim.login("agent:main:alice", "alice")

    async def garbage(user_token: str, workload: str | None) -> MintedTip:
        await trio.lowlevel.checkpoint()
        return MintedTip("not-a-jwt", sim.wall() + HOUR)

    sim.minter.mint = garbage  # type: ignore[method-assign]
    outcome = await sim.tips.get_tip("agent:main:alice")
    assert isinstance(outcome, NoTip)
    assert "unreadable TIP" in outcome.reason


async def test_a_stopped_store_is_unavailable(
    sim: Sim, autojump_clock: trio.testing.MockClock
) -> None:
    await sim.store.stop()
    outcome = await sim.tips.get_tip("agent:main:alice")
    assert isinstance(outcome, NoTip)
    assert outcome.code == "unavailable"
    assert "session store" in outcome.reason


# ------------------------------------------------------------------ the garbage collector


class Witness:
    """A tracked object that can be put in a cycle, to see the collector free the cycle."""

    def __init__(self) -> None:
        self.held: object = None


async def test_cached_tips_are_not_tracked_by_the_garbage_collector(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Every full collection visits every tracked object: with one cached TIP per logged-in
    # session, a tracked object per TIP is paid on every collection times the sessions
    # (scripts/bench/gc_pause.py measures it). The cache's entries, their claims and chains
    # must stay untracked through serving, refreshing and failing.
    del autojump_clock
    async with open_sim(config=IdentityConfig(subagent_tip_propagation=True)) as sim:
        for user in ("alice", "bob"):
            await sim.login(f"agent:main:{user}", user)
            assert isinstance(await sim.tips.get_tip(f"agent:main:{user}"), TipInfo)
        child = await sim.tips.propagate("agent:main:alice", "agent:main:subagent:1", agent_id="h")
        assert isinstance(child, TipInfo)
        assert child.chain.actors == ("h", "openclaw-agent")  # a nested act
        assert isinstance(await sim.tips.get_tip("agent:main:bob"), TipInfo)  # served: last_used
        assert isinstance(await sim.tips.refresh("agent:main:alice"), TipInfo)  # refreshed
        sim.minter.down = True
        assert isinstance(await sim.tips.refresh("agent:main:bob"), NoTip)  # failed: kept
        sim.minter.down = False
        state = sim.refresher._state
        assert state is not None
        entries = list(state.entries.values())
        assert len(entries) == 3
        assert any(entry.failures == 1 and entry.last_error for entry in entries)
        for entry in entries:
            assert not gc.is_tracked(entry), entry
            assert not gc.is_tracked(entry.claims), entry
            assert not gc.is_tracked(entry.claims.chain), entry
            assert entry.claims.claims["sub"] in {"alice", "bob"}  # the raw claims, on demand
            assert entry.token not in repr(entry)
            assert "token" not in dict(entry.__rich_repr__())

        # The entry is untracked only while it holds nothing tracked: given something that
        # could refer back to it, it is tracked again, and a cycle through it is collected.
        entry = entries[0]
        witness = Witness()
        witness.held = entry
        entry.last_error = witness  # type: ignore[assignment]
        assert gc.is_tracked(entry)
        alive = weakref.ref(witness)
        assert await sim.tips.forget(entry.key)
        del entries, entry, witness
        gc.collect()
        assert alive() is None
