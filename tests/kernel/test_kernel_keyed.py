"""KeyedSupervisor: one temporary actor per key, on demand, idle timeout, limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import assert_never

import pytest
import trio
import trio.testing

from agent_identity.kernel import (
    Actor,
    ActorStopped,
    Address,
    ChildStartFailed,
    KeyedSupervisor,
    Reply,
    Request,
    Supervisor,
    TooManyChildren,
)


class BoomError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Whoami(Request[str]):
    pass


@dataclass(frozen=True, slots=True)
class Work(Request[str]):
    seconds: float


@dataclass(frozen=True, slots=True)
class Hold(Request[str]):
    pass


@dataclass(frozen=True, slots=True)
class Explode:
    pass


SessionMsg = Whoami | Work | Hold | Explode


class Session(Actor[SessionMsg]):
    def __init__(self, key: str, log: list[str], setup: float = 0) -> None:
        super().__init__(name=f"session-{key}")
        self.key = key
        self.log = log
        self.setup = setup
        self.held: list[Reply[str]] = []

    async def on_start(self) -> None:
        await trio.sleep(self.setup)
        if self.key == "broken":
            raise BoomError("cannot start")
        self.log.append(f"start {self.key}")

    async def handle(self, msg: SessionMsg) -> None:
        await trio.lowlevel.checkpoint()  # flake8-async: some branches never await
        match msg:
            case Whoami(reply=reply):
                reply.set(self.key)
            case Work(reply=reply, seconds=seconds):
                await trio.sleep(seconds)
                reply.set("worked")
            case Hold(reply=reply):
                self.held.append(reply)
            case Explode():
                raise BoomError(self.key)
            case _:
                assert_never(msg)


class Sessions:
    """A factory that records every actor it builds."""

    def __init__(self, setup: float = 0) -> None:
        self.log: list[str] = []
        self.built: list[Session] = []
        self.setup = setup

    def __call__(self, key: str) -> Session:
        actor = Session(key, self.log, self.setup)
        self.built.append(actor)
        return actor

    def running(self) -> list[bool]:
        """Which of the built actors are still running, in build order."""
        return [actor.statistics().running for actor in self.built]


async def whoami(address: Address[SessionMsg]) -> str:
    return await address.ask(Whoami)


async def test_children_start_on_demand_one_per_key(nursery: trio.Nursery) -> None:
    factory = Sessions()
    keyed = KeyedSupervisor(factory, name="sessions")
    await nursery.start(keyed.run)
    assert factory.built == []
    assert keyed.get("alice") is None
    alice = await keyed.get_or_start("alice")
    assert await whoami(alice) == "alice"
    assert await keyed.get_or_start("alice") is alice
    assert keyed.get("alice") is alice
    bob = await keyed.get_or_start("bob")
    assert bob is not alice
    assert await whoami(bob) == "bob"
    assert len(factory.built) == 2
    stats = keyed.statistics()
    assert (stats.name, stats.running, stats.children, stats.started) == ("sessions", True, 2, 2)
    assert "sessions" in repr(keyed)


async def test_concurrent_get_or_start_starts_one_child(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    factory = Sessions(setup=1)
    keyed = KeyedSupervisor(factory)
    await nursery.start(keyed.run)
    addresses: list[Address[SessionMsg]] = []

    async def get() -> None:
        addresses.append(await keyed.get_or_start("k"))

    async with trio.open_nursery() as callers:
        for _ in range(3):
            callers.start_soon(get)
    assert len(factory.built) == 1
    assert len(addresses) == 3
    assert len({id(a) for a in addresses}) == 1
    assert keyed.get("k") is addresses[0]


async def test_idle_child_is_stopped_after_the_timeout(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    factory = Sessions()
    keyed = KeyedSupervisor(factory, idle_timeout=10)
    await nursery.start(keyed.run)
    address = await keyed.get_or_start("k")
    await trio.sleep(9)
    assert await whoami(address) == "k"  # activity at t=9 resets the timer
    await trio.sleep(9.5)
    assert keyed.get("k") is address
    await trio.sleep(0.5)  # t=19: idle for 10 s
    await trio.testing.wait_all_tasks_blocked()
    assert keyed.get("k") is None
    assert factory.running() == [False]
    with pytest.raises(ActorStopped):
        await whoami(address)
    stats = keyed.statistics()
    assert (stats.children, stats.stopped_idle) == (0, 1)
    # The next use starts a fresh actor.
    again = await keyed.get_or_start("k")
    assert again is not address
    assert len(factory.built) == 2


async def test_get_or_start_counts_as_activity(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    keyed = KeyedSupervisor(Sessions(), idle_timeout=10)
    await nursery.start(keyed.run)
    first = await keyed.get_or_start("k")
    for _ in range(5):
        await trio.sleep(8)
        assert await keyed.get_or_start("k") is first
    assert keyed.statistics().stopped_idle == 0


async def test_busy_or_waiting_children_are_not_idle(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    factory = Sessions()
    keyed = KeyedSupervisor(factory, idle_timeout=10)
    await nursery.start(keyed.run)
    busy = await keyed.get_or_start("busy")
    holder = await keyed.get_or_start("holder")
    idle = await keyed.get_or_start("idle")
    work: Reply[str] = Reply()
    await busy.tell(Work(work, 25))
    held: Reply[str] = Reply()
    await holder.tell(Hold(held))
    await trio.sleep(15)
    assert keyed.get("idle") is None  # stopped at t=10
    assert keyed.get("busy") is busy
    assert keyed.get("holder") is holder  # a deferred reply is pending
    assert await work.wait() == "worked"  # t=25
    await trio.sleep(10)
    await trio.testing.wait_all_tasks_blocked()
    assert keyed.get("busy") is None  # idle since t=25
    assert keyed.get("holder") is holder
    assert keyed.statistics().stopped_idle == 2
    with pytest.raises(ActorStopped):
        await whoami(idle)


async def test_the_child_limit_is_enforced(nursery: trio.Nursery) -> None:
    keyed = KeyedSupervisor(Sessions(), max_children=2)
    await nursery.start(keyed.run)
    await keyed.get_or_start("a")
    await keyed.get_or_start("b")
    with pytest.raises(TooManyChildren, match="already runs 2 children") as info:
        await keyed.get_or_start("c")
    assert info.value.limit == 2
    assert await keyed.get_or_start("a") is not None  # existing keys still work
    assert await keyed.stop_child("a")
    assert await whoami(await keyed.get_or_start("c")) == "c"
    stats = keyed.statistics()
    assert (stats.children, stats.peak_children, stats.max_children) == (2, 2, 2)


async def test_stop_child(nursery: trio.Nursery) -> None:
    factory = Sessions()
    keyed = KeyedSupervisor(factory)
    await nursery.start(keyed.run)
    address = await keyed.get_or_start("k")
    assert await keyed.stop_child("k")
    assert factory.running() == [False]
    assert not await keyed.stop_child("k")
    assert keyed.get("k") is None
    with pytest.raises(ActorStopped):
        await whoami(address)


async def test_get_or_start_waits_for_a_stopping_child_then_starts_a_new_one(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    factory = Sessions()
    keyed = KeyedSupervisor(factory, shutdown=30)
    await nursery.start(keyed.run)
    old = await keyed.get_or_start("k")
    work: Reply[str] = Reply()
    await old.tell(Work(work, 5))  # the drain takes 5 s
    await trio.testing.wait_all_tasks_blocked()
    nursery.start_soon(keyed.stop_child, "k")
    await trio.testing.wait_all_tasks_blocked()
    assert keyed.get("k") is None  # stopping
    new = await keyed.get_or_start("k")
    assert trio.current_time() == 5
    assert new is not old
    assert await work.wait() == "worked"  # the old one finished its work first
    assert factory.log == ["start k", "start k"]
    assert factory.running() == [False, True]
    # A second stop_child while one is in progress just waits for it.
    await new.tell(Work(Reply(), 5))
    await trio.testing.wait_all_tasks_blocked()
    nursery.start_soon(keyed.stop_child, "k")
    await trio.testing.wait_all_tasks_blocked()
    assert await keyed.stop_child("k")
    assert trio.current_time() == 10


async def test_a_crashing_child_is_forgotten_and_others_are_unaffected(
    nursery: trio.Nursery,
) -> None:
    factory = Sessions()
    keyed = KeyedSupervisor(factory)
    await nursery.start(keyed.run)
    a = await keyed.get_or_start("a")
    b = await keyed.get_or_start("b")
    await a.tell(Explode())
    await trio.testing.wait_all_tasks_blocked()
    assert keyed.get("a") is None
    assert await whoami(b) == "b"
    assert keyed.statistics().crashed == 1
    fresh = await keyed.get_or_start("a")
    assert await whoami(fresh) == "a"
    assert len(factory.built) == 3


async def test_a_child_start_failure_raises_and_leaves_no_entry(nursery: trio.Nursery) -> None:
    keyed = KeyedSupervisor(Sessions(), name="ks")
    await nursery.start(keyed.run)
    with pytest.raises(ChildStartFailed, match="'ks'") as info:
        await keyed.get_or_start("broken")
    assert isinstance(info.value.__cause__, BoomError)
    assert keyed.statistics().children == 0
    assert not await keyed.stop_child("broken")


async def test_stop_child_of_a_child_whose_start_fails(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    keyed = KeyedSupervisor(Sessions(setup=1))
    await nursery.start(keyed.run)
    results: list[bool] = []

    async def try_start() -> None:
        with pytest.raises(ChildStartFailed):
            await keyed.get_or_start("broken")

    async def stop_while_starting() -> None:
        results.append(await keyed.stop_child("broken"))

    async with trio.open_nursery() as callers:
        callers.start_soon(try_start)
        await trio.testing.wait_all_tasks_blocked()
        callers.start_soon(stop_while_starting)
    assert results == [False]


async def test_stopping_the_keyed_supervisor_stops_every_child(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    factory = Sessions()
    keyed = KeyedSupervisor(factory, idle_timeout=100, shutdown=2)
    await nursery.start(keyed.run)
    for key in "abc":
        await keyed.get_or_start(key)
    slow = await keyed.get_or_start("slow")
    work: Reply[str] = Reply()
    await slow.tell(Work(work, 50))
    await trio.testing.wait_all_tasks_blocked()
    before = trio.current_time()
    await keyed.stop()
    # Stopped concurrently; the busy one was cancelled after its 2 s grace.
    assert trio.current_time() - before == 2
    assert factory.running() == [False] * 4
    with pytest.raises(ActorStopped):
        await work.wait()
    with pytest.raises(ActorStopped, match="keyed"):
        await keyed.get_or_start("d")
    assert not keyed.statistics().running
    await keyed.stop()  # idempotent


@pytest.mark.parametrize(
    ("setup", "shutdown"),
    [
        pytest.param(1, 5, id="started-then-stopped"),
        pytest.param(100, 1, id="cancelled-while-starting"),
    ],
)
async def test_get_or_start_racing_a_shutdown_gets_actor_stopped(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, setup: float, shutdown: float
) -> None:
    keyed = KeyedSupervisor(Sessions(setup=setup), shutdown=shutdown)
    await nursery.start(keyed.run)
    outcomes: list[str] = []

    async def start_late() -> None:
        with pytest.raises(ActorStopped):
            await keyed.get_or_start("k")
        outcomes.append("refused")

    async with trio.open_nursery() as callers:
        callers.start_soon(start_late)
        await trio.testing.wait_all_tasks_blocked()  # "k" is in on_start
        callers.start_soon(keyed.stop)
    assert outcomes == ["refused"]
    assert trio.current_time() == min(setup, shutdown)
    assert not keyed.statistics().running


async def test_shutdown_waits_for_a_stop_already_in_progress(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    factory = Sessions()
    keyed = KeyedSupervisor(factory, shutdown=30)
    await nursery.start(keyed.run)
    address = await keyed.get_or_start("k")
    work: Reply[str] = Reply()
    await address.tell(Work(work, 5))
    await trio.testing.wait_all_tasks_blocked()
    nursery.start_soon(keyed.stop_child, "k")  # drains until t=5
    await trio.testing.wait_all_tasks_blocked()
    await keyed.stop()
    assert trio.current_time() == 5
    assert await work.wait() == "worked"
    assert factory.running() == [False]


async def test_keyed_supervisor_runs_under_a_supervisor(nursery: trio.Nursery) -> None:
    keyed = KeyedSupervisor(Sessions(), name="sessions")
    root = Supervisor([keyed.child_spec()], name="root")
    await nursery.start(root.run)
    assert await whoami(await keyed.get_or_start("k")) == "k"
    await root.stop()
    assert not keyed.statistics().running


async def test_running_twice_and_invalid_settings_are_refused(nursery: trio.Nursery) -> None:
    keyed = KeyedSupervisor(Sessions())
    with pytest.raises(ActorStopped):
        await keyed.get_or_start("k")  # not running yet
    await nursery.start(keyed.run)
    with pytest.raises(RuntimeError, match="already running"):
        await keyed.run()
    with pytest.raises(ValueError, match="idle_timeout"):
        KeyedSupervisor(Sessions(), idle_timeout=0)
    with pytest.raises(ValueError, match="max_children"):
        KeyedSupervisor(Sessions(), max_children=0)
