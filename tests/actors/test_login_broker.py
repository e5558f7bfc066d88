"""The login broker: TTL, single use, replay, bounds, sweeps (on a mock clock)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from agent_identity.actors.login_broker import DEFAULT_LOGIN_TTL, MAX_STATE_LENGTH, LoginBroker
from agent_identity.actors.login_messages import (
    LoginBrokerClient,
    LoginBrokerMsg,
    LoginRefused,
    PendingLogin,
    RefusalReason,
    Sweep,
)
from agent_identity.kernel import ActorStopped, Strategy, Supervisor

KEY = "agent:main:telegram:direct:42"


async def start(nursery: trio.Nursery, **kwargs: float) -> tuple[LoginBroker, LoginBrokerClient]:
    broker = LoginBroker(**kwargs)  # type: ignore[arg-type]
    await nursery.start(broker.run)
    return broker, LoginBrokerClient(broker.address)


async def begin(client: LoginBrokerClient, key: str = KEY, n: int = 0) -> str:
    return await client.begin(key, nonce=f"nonce-{n}", code_verifier=f"verifier-{n}")


async def test_begin_then_take_returns_the_login_once(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    _, client = await start(nursery)
    await trio.sleep(3)
    state = await client.begin(
        KEY, nonce="n-1", code_verifier="v-1", context={"channel": "telegram"}
    )
    assert len(state) >= 43  # 256 random bits, URL-safe
    login = await client.take(state)
    assert isinstance(login, PendingLogin)
    assert (login.state, login.session_key, login.nonce, login.code_verifier) == (
        state,
        KEY,
        "n-1",
        "v-1",
    )
    assert login.created_at == 3
    assert login.expires_at == 3 + DEFAULT_LOGIN_TTL
    assert login.context == {"channel": "telegram"}
    # Secrets never show in a repr.
    assert "n-1" not in repr(login)
    assert "v-1" not in repr(login)
    # Single use: the replay is refused as a value.
    replay = await client.take(state)
    assert replay == LoginRefused(RefusalReason.USED)
    assert "already used" in replay.message
    stats = await client.statistics()
    assert (stats.begun, stats.taken, stats.pending, stats.sessions) == (1, 1, 0, 0)
    assert stats.refused == {"used": 1}


async def test_unknown_and_malformed_states_are_refused(nursery: trio.Nursery) -> None:
    _, client = await start(nursery)
    assert await client.take("nope") == LoginRefused(RefusalReason.UNKNOWN)
    assert await client.take("") == LoginRefused(RefusalReason.UNKNOWN)
    assert await client.take("x" * (MAX_STATE_LENGTH + 1)) == LoginRefused(RefusalReason.UNKNOWN)
    assert "not valid" in LoginRefused(RefusalReason.UNKNOWN).message
    assert (await client.statistics()).refused == {"unknown": 3}


async def test_a_login_expires_after_the_ttl(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    _, client = await start(nursery)
    fresh = await begin(client, n=1)
    old = await begin(client, n=2)
    await trio.sleep(DEFAULT_LOGIN_TTL - 0.001)
    assert isinstance(await client.take(fresh), PendingLogin)  # just in time
    await trio.sleep(0.001)
    refused = await client.take(old)
    assert refused == LoginRefused(RefusalReason.EXPIRED)
    assert "expired" in refused.message
    # The reason is remembered for one more TTL, then the state is simply unknown.
    await trio.sleep(DEFAULT_LOGIN_TTL - 1)
    assert await client.take(old) == LoginRefused(RefusalReason.EXPIRED)
    await trio.sleep(1)
    assert await client.take(old) == LoginRefused(RefusalReason.UNKNOWN)
    stats = await client.statistics()
    assert stats.expired == 1
    assert stats.remembered == 0


async def test_a_short_injected_ttl(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    _, client = await start(nursery, ttl=2)
    state = await begin(client)
    await trio.sleep(2)
    assert await client.take(state) == LoginRefused(RefusalReason.EXPIRED)


async def test_per_session_bound_evicts_the_oldest(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    _, client = await start(nursery, max_per_session=3)
    states = []
    for n in range(5):
        states.append(await begin(client, n=n))
        await trio.sleep(1)
    other = await begin(client, "agent:main:main:user:bob", n=99)
    stats = await client.statistics()
    assert (stats.pending, stats.sessions, stats.evicted) == (4, 2, 2)
    for state in states[:2]:
        refused = await client.take(state)
        assert refused == LoginRefused(RefusalReason.SUPERSEDED)
        assert "newer" in refused.message
    for n, state in enumerate(states[2:], start=2):
        login = await client.take(state)
        assert isinstance(login, PendingLogin)
        assert login.nonce == f"nonce-{n}"
    assert isinstance(await client.take(other), PendingLogin)


async def test_overall_bound_evicts_the_oldest_of_all(nursery: trio.Nursery) -> None:
    _, client = await start(nursery, max_pending=3)
    states = [await begin(client, f"agent:main:main:user:u{n}", n) for n in range(4)]
    assert await client.take(states[0]) == LoginRefused(RefusalReason.SUPERSEDED)
    for state in states[1:]:
        assert isinstance(await client.take(state), PendingLogin)
    stats = await client.statistics()
    assert stats.evicted == 1
    # Remembered refusals are bounded by max_pending too.
    assert stats.remembered == 3


async def test_overall_eviction_of_the_same_session(nursery: trio.Nursery) -> None:
    _, client = await start(nursery, max_pending=1, max_per_session=5)
    first = await begin(client, n=1)
    second = await begin(client, n=2)
    assert await client.take(first) == LoginRefused(RefusalReason.SUPERSEDED)
    assert isinstance(await client.take(second), PendingLogin)


async def test_sweeper_drops_expired_logins_without_any_traffic(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    broker, client = await start(nursery, ttl=10)
    sweeper = broker.sweeper(interval=3)
    await nursery.start(sweeper.run)
    for n in range(3):
        await begin(client, f"agent:main:main:user:u{n}", n)
    await trio.sleep(10.5)  # ticks at 3, 6, 9: nothing expired yet
    assert broker.statistics().handled == 3 + 3
    await trio.sleep(2)  # the tick at 12 sweeps (t >= 10)
    assert sweeper.ticks == 4
    stats = broker.statistics()
    assert stats.handled == 3 + 4
    snapshot = await client.statistics()
    assert (snapshot.pending, snapshot.sessions, snapshot.expired) == (0, 0, 3)
    sweeper.request_stop()
    await trio.sleep(10)
    assert sweeper.ticks == 4


async def test_sweeper_skips_a_stopped_or_full_broker(
    autojump_clock: trio.testing.MockClock,
) -> None:
    broker = LoginBroker()
    sweeper = broker.sweeper(interval=1)
    async with trio.open_nursery() as nursery:
        await nursery.start(sweeper.run)
        await trio.sleep(2.5)  # the broker never ran: ticks are dropped
        assert sweeper.ticks == 2
        sweeper.request_stop()


class Stuck(LoginBroker):
    """A broker whose handler blocks until the gate opens, so its mailbox fills up."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = trio.Event()

    async def handle(self, msg: LoginBrokerMsg) -> None:
        await self.gate.wait()


async def test_sweeper_tolerates_a_full_mailbox(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    stuck = Stuck()
    await nursery.start(stuck.run)
    for _ in range(Stuck.mailbox_size + 1):  # one in the handler, the rest queued
        stuck.address.try_tell(Sweep())
    sweeper = stuck.sweeper(interval=1)
    await nursery.start(sweeper.run)
    await trio.sleep(2.5)
    assert sweeper.ticks == 2
    assert stuck.statistics().mailbox_depth == Stuck.mailbox_size
    sweeper.request_stop()
    stuck.gate.set()


async def test_discard_drops_a_sessions_logins(nursery: trio.Nursery) -> None:
    _, client = await start(nursery)
    mine = [await begin(client, n=n) for n in range(2)]
    theirs = await begin(client, "agent:main:main:user:bob")
    assert await client.discard(KEY) == 2
    assert await client.discard(KEY) == 0
    assert await client.take(mine[0]) == LoginRefused(RefusalReason.UNKNOWN)
    assert isinstance(await client.take(theirs), PendingLogin)


async def test_caller_supplied_state(nursery: trio.Nursery) -> None:
    _, client = await start(nursery)
    state = await client.begin(KEY, nonce="n", code_verifier="v", state="chosen-state")
    assert state == "chosen-state"
    with pytest.raises(ValueError, match="already in use"):
        await client.begin(KEY, nonce="n", code_verifier="v", state="chosen-state")
    assert isinstance(await client.take(state), PendingLogin)
    # A used state stays reserved while its refusal is remembered.
    with pytest.raises(ValueError, match="already in use"):
        await client.begin(KEY, nonce="n", code_verifier="v", state="chosen-state")
    with pytest.raises(ValueError, match="1 to 512"):
        await client.begin(KEY, nonce="n", code_verifier="v", state="")
    with pytest.raises(ValueError, match="1 to 512"):
        await client.begin(KEY, nonce="n", code_verifier="v", state="s" * 513)


async def test_generated_states_are_distinct(nursery: trio.Nursery) -> None:
    _, client = await start(nursery, max_pending=100, max_per_session=100)
    states = {await begin(client, n=n) for n in range(100)}
    assert len(states) == 100


async def test_a_restart_forgets_pending_logins(nursery: trio.Nursery) -> None:
    broker = LoginBroker()
    sup = Supervisor([broker.child_spec()], strategy=Strategy.ONE_FOR_ONE, name="sup")
    await nursery.start(sup.run)
    client = LoginBrokerClient(broker.address)
    state = await begin(client)
    await broker.stop()
    with pytest.raises(ActorStopped):
        await client.take(state)
    await trio.testing.wait_all_tasks_blocked()
    assert await client.take(state) == LoginRefused(RefusalReason.UNKNOWN)
    await sup.stop()


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="ttl"):
        LoginBroker(ttl=0)
    with pytest.raises(ValueError, match="bounds"):
        LoginBroker(max_per_session=0)
    with pytest.raises(ValueError, match="interval"):
        LoginBroker().sweeper(interval=0)
    spec = LoginBroker().sweeper().child_spec()
    assert spec.id == "login_sweeper"
