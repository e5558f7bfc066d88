"""Actor, Address and the request/reply pattern, with a tiny counter actor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, assert_never

import pytest
import trio
import trio.testing

from agent_identity.kernel import (
    Actor,
    ActorStopped,
    Address,
    DeadlineExceeded,
    MailboxFull,
    Reply,
    Request,
    Supervisor,
)
from agent_identity.kernel._mailbox import Mailbox

# --------------------------------------------------------------------- the test actor


class BoomError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Get(Request[int | None]):
    key: str


@dataclass(frozen=True, slots=True)
class Put:
    key: str
    value: int


@dataclass(frozen=True, slots=True)
class Slow(Request[str]):
    """Sleeps ``seconds`` and answers "done"."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Block(Request[str]):
    """Waits for the actor's gate, then answers "open" (or crashes if it explodes)."""


@dataclass(frozen=True, slots=True)
class Crash:
    pass


@dataclass(frozen=True, slots=True)
class Hold(Request[str]):
    """Kept by the actor and answered by a later Release (a deferred reply)."""


@dataclass(frozen=True, slots=True)
class Release:
    value: str


CounterMsg = Get | Put | Slow | Block | Crash | Hold | Release


class Counter(Actor[CounterMsg]):
    mailbox_size: ClassVar[int] = 4

    def __init__(self) -> None:
        super().__init__(name="counter")
        self.gate = trio.Event()
        self.explode = False
        self.seen: list[str] = []
        self.starts = 0

    async def on_start(self) -> None:
        await trio.lowlevel.checkpoint()
        self.starts += 1
        self.items: dict[str, int] = {}  # state is rebuilt on every (re)start
        self.held: list[Reply[str]] = []

    async def handle(self, msg: CounterMsg) -> None:
        await trio.lowlevel.checkpoint()  # flake8-async: some branches never await
        self.seen.append(type(msg).__name__)
        match msg:
            case Get(reply=reply, key=key):
                reply.set(self.items.get(key))
            case Put(key=key, value=value):
                self.items[key] = value
            case Slow(reply=reply, seconds=seconds):
                await trio.sleep(seconds)
                reply.set("done")
            case Block(reply=reply):
                await self.gate.wait()
                if self.explode:
                    raise BoomError("exploded while handling")
                reply.set("open")
            case Crash():
                raise BoomError("crash requested")
            case Hold(reply=reply):
                self.held.append(reply)
            case Release(value=value):
                for held in self.held:
                    held.set(value)
                self.held.clear()
            case _:
                assert_never(msg)


class CounterClient:
    """The intended pattern: typed helpers over an Address; callers never see envelopes."""

    def __init__(self, address: Address[CounterMsg]) -> None:
        self._address = address

    async def get(self, key: str) -> int | None:
        return await self._address.ask(Get, key)

    async def put(self, key: str, value: int) -> None:
        await self._address.tell(Put(key, value))

    async def slow(self, seconds: float) -> str:
        return await self._address.ask(Slow, seconds)

    async def block(self) -> str:
        return await self._address.ask(Block)

    async def hold(self) -> str:
        return await self._address.ask(Hold)


async def run_until_crash(actor: Counter) -> None:
    """Run the actor in a test nursery, expecting it to crash with BoomError."""
    with pytest.raises(BoomError):
        await actor.run()


async def start_until_crash(nursery: trio.Nursery, actor: Counter) -> None:
    nursery.start_soon(run_until_crash, actor)
    await trio.testing.wait_all_tasks_blocked()
    assert actor.statistics().running


# ----------------------------------------------------------------------------- tests


async def test_ask_and_tell_round_trip(nursery: trio.Nursery) -> None:
    actor = Counter()
    await nursery.start(actor.run)
    client = CounterClient(actor.address)
    await client.put("a", 1)
    assert await client.get("a") == 1
    # An expected "not found" outcome is a value, not an error.
    assert await client.get("missing") is None
    assert actor.address.name == "counter"
    assert "counter" in repr(actor.address)
    assert "counter" in repr(actor)


async def test_sending_to_an_actor_that_is_not_running_raises_actor_stopped() -> None:
    actor = Counter()
    client = CounterClient(actor.address)
    with pytest.raises(ActorStopped, match="counter"):
        await client.put("a", 1)
    with pytest.raises(ActorStopped):
        actor.address.try_tell(Put("a", 1))
    with pytest.raises(ActorStopped):
        await client.get("a")


async def test_running_the_same_actor_twice_is_refused(nursery: trio.Nursery) -> None:
    actor = Counter()
    await nursery.start(actor.run)
    with pytest.raises(RuntimeError, match="already running"):
        await actor.run()


async def test_on_start_failure_is_a_start_failure() -> None:
    class Broken(Counter):
        async def on_start(self) -> None:
            raise BoomError("cannot start")

    actor = Broken()
    async with trio.open_nursery() as nursery:
        with pytest.raises(BoomError, match="cannot start"):
            await nursery.start(actor.run)
    assert not actor.statistics().running


async def test_death_fails_in_flight_and_queued_callers_at_once(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    actor = Counter()
    actor.explode = True
    await start_until_crash(nursery, actor)
    client = CounterClient(actor.address)
    outcomes: list[str] = []

    async def call_block() -> None:
        with pytest.raises(ActorStopped):
            await client.block()
        outcomes.append("block")

    async def call_get(key: str) -> None:
        with pytest.raises(ActorStopped):
            await client.get(key)
        outcomes.append(key)

    async with trio.open_nursery() as callers:
        callers.start_soon(call_block)
        await trio.testing.wait_all_tasks_blocked()  # Block is in flight
        for key in ("x", "y", "z"):
            callers.start_soon(call_get, key)
        await trio.testing.wait_all_tasks_blocked()
        assert actor.statistics().mailbox_depth == 3
        before = trio.current_time()
        actor.gate.set()  # the in-flight handler crashes
    # Every caller got ActorStopped without waiting for any timeout.
    assert trio.current_time() == before
    assert sorted(outcomes) == ["block", "x", "y", "z"]
    stats = actor.statistics()
    assert stats.stopped_callers == 4
    assert not stats.running


async def test_cancellation_of_the_actor_fails_queued_callers(nursery: trio.Nursery) -> None:
    actor = Counter()
    scope = trio.CancelScope()

    async def run_actor() -> None:
        with scope:
            await actor.run()

    nursery.start_soon(run_actor)
    await trio.testing.wait_all_tasks_blocked()
    client = CounterClient(actor.address)
    errors: list[str] = []

    async def call_block() -> None:
        with pytest.raises(ActorStopped):
            await client.block()
        errors.append("block")

    async def call_get() -> None:
        with pytest.raises(ActorStopped):
            await client.get("k")
        errors.append("k")

    async with trio.open_nursery() as callers:
        callers.start_soon(call_block)
        await trio.testing.wait_all_tasks_blocked()
        callers.start_soon(call_get)
        await trio.testing.wait_all_tasks_blocked()
        scope.cancel()
    assert sorted(errors) == ["block", "k"]


async def test_sender_blocked_on_a_full_mailbox_gets_actor_stopped_when_it_dies(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    actor = Counter()
    actor.explode = True
    await start_until_crash(nursery, actor)
    address = actor.address
    blocked = Reply[str]()
    address.try_tell(Block(blocked))
    await trio.testing.wait_all_tasks_blocked()
    for i in range(Counter.mailbox_size):
        address.try_tell(Put(str(i), i))
    results: list[str] = []

    async def ask_when_full() -> None:
        with pytest.raises(ActorStopped):
            await CounterClient(address).get("late")
        results.append("stopped")

    async with trio.open_nursery() as callers:
        callers.start_soon(ask_when_full)
        await trio.testing.wait_all_tasks_blocked()
        assert actor.statistics().senders_waiting == 1
        before = trio.current_time()
        actor.gate.set()
    assert results == ["stopped"]
    assert trio.current_time() == before
    with pytest.raises(ActorStopped):
        await blocked.wait()


async def test_backpressure_tell_blocks_and_try_tell_refuses(nursery: trio.Nursery) -> None:
    actor = Counter()
    await nursery.start(actor.run)
    address = actor.address
    in_flight: Reply[str] = Reply()
    address.try_tell(Block(in_flight))
    await trio.testing.wait_all_tasks_blocked()
    for i in range(Counter.mailbox_size):
        address.try_tell(Put(str(i), i))
    with pytest.raises(MailboxFull, match="4 messages") as info:
        address.try_tell(Put("overflow", 0))
    assert isinstance(info.value, trio.WouldBlock)
    sent: list[str] = []

    async def tell_more() -> None:
        await address.tell(Put("late", 9))
        sent.append("late")

    nursery.start_soon(tell_more)
    await trio.testing.wait_all_tasks_blocked()
    assert sent == []  # blocked on the full mailbox
    stats = actor.statistics()
    assert stats.mailbox_depth == Counter.mailbox_size
    assert stats.senders_waiting == 1
    actor.gate.set()
    await trio.testing.wait_all_tasks_blocked()
    assert sent == ["late"]
    assert await in_flight.wait() == "open"
    assert await CounterClient(address).get("late") == 9
    assert actor.statistics().peak_depth == Counter.mailbox_size


async def test_cancelled_caller_leaves_the_actor_running_and_its_late_reply_is_dropped(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    actor = Counter()
    await nursery.start(actor.run)
    client = CounterClient(actor.address)
    with trio.CancelScope() as scope:
        nursery.start_soon(lambda: _cancel_after(scope, 1))
        await client.slow(5)
    assert scope.cancelled_caught
    assert trio.current_time() == 1
    # The actor finishes the request at t=5; the answer goes nowhere, harmlessly.
    await trio.sleep(5)
    assert actor.statistics().running
    assert actor.statistics().handled == 1
    assert await client.get("anything") is None


async def _cancel_after(scope: trio.CancelScope, seconds: float) -> None:
    await trio.sleep(seconds)
    scope.cancel()


async def test_expired_request_is_skipped(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    actor = Counter()
    await nursery.start(actor.run)
    client = CounterClient(actor.address)
    blocker: Reply[str] = Reply()
    actor.address.try_tell(Block(blocker))
    await trio.testing.wait_all_tasks_blocked()
    with pytest.raises(trio.TooSlowError):
        with trio.fail_after(1):
            await client.get("k")  # queued behind Block; its deadline is t=1
    await trio.sleep(1)
    actor.gate.set()
    assert await blocker.wait() == "open"
    await trio.testing.wait_all_tasks_blocked()
    # The handler never saw the expired Get.
    assert actor.seen == ["Block"]
    stats = actor.statistics()
    assert stats.expired == 1
    assert stats.handled == 1


async def test_a_request_that_already_expired_fails_with_deadline_exceeded(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    actor = Counter()
    await nursery.start(actor.run)
    await trio.sleep(10)
    reply: Reply[int | None] = Reply(deadline=5.0)
    await actor.address.tell(Get(reply, "k"))
    with pytest.raises(DeadlineExceeded, match="missed its deadline") as info:
        await reply.wait()
    assert isinstance(info.value, trio.TooSlowError)
    assert info.value.deadline == 5.0
    assert actor.seen == []


async def test_handling_is_cut_short_at_the_callers_deadline(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    actor = Counter()
    await nursery.start(actor.run)
    start = trio.current_time()
    reply: Reply[str] = Reply(deadline=start + 2)
    await actor.address.tell(Slow(reply, 10))
    with pytest.raises(DeadlineExceeded):
        await reply.wait()
    assert trio.current_time() == start + 2
    assert actor.statistics().expired == 1
    # The actor carries on.
    assert await CounterClient(actor.address).get("k") is None


async def test_deadlines_are_not_enforced_when_disabled(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    class Patient(Counter):
        enforce_deadlines: ClassVar[bool] = False

    actor = Patient()
    await nursery.start(actor.run)
    start = trio.current_time()
    reply: Reply[str] = Reply(deadline=start + 2)
    await actor.address.tell(Slow(reply, 10))
    assert await reply.wait() == "done"
    assert trio.current_time() == start + 10


async def test_ask_captures_the_callers_deadline(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    captured: list[float] = []

    class Spy(Counter):
        async def handle(self, msg: CounterMsg) -> None:
            if isinstance(msg, Get):
                captured.append(msg.deadline)
            await super().handle(msg)

    actor = Spy()
    await nursery.start(actor.run)
    client = CounterClient(actor.address)
    with trio.move_on_after(7):
        await client.get("k")
    await client.get("k")
    assert captured == [trio.current_time() + 7, float("inf")]


async def test_graceful_stop_drains_the_queue_then_refuses(nursery: trio.Nursery) -> None:
    actor = Counter()
    await nursery.start(actor.run)
    address = actor.address
    blocker: Reply[str] = Reply()
    address.try_tell(Block(blocker))
    await trio.testing.wait_all_tasks_blocked()
    address.try_tell(Put("a", 1))
    address.try_tell(Put("b", 2))
    async with trio.open_nursery() as inner:
        inner.start_soon(actor.stop)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(ActorStopped):
            address.try_tell(Put("c", 3))
        with pytest.raises(ActorStopped):
            await address.tell(Put("c", 3))
        actor.gate.set()
    assert actor.seen == ["Block", "Put", "Put"]
    assert actor.items == {"a": 1, "b": 2}
    assert not actor.statistics().running
    await actor.stop()  # stopping a stopped actor returns at once


async def test_deferred_reply_is_answered_later_or_failed_on_stop(nursery: trio.Nursery) -> None:
    actor = Counter()
    await nursery.start(actor.run)
    client = CounterClient(actor.address)
    results: list[str] = []

    async def hold() -> None:
        results.append(await client.hold())

    async with trio.open_nursery() as callers:
        callers.start_soon(hold)
        await trio.testing.wait_all_tasks_blocked()
        assert actor.statistics().deferred == 1
        await actor.address.tell(Release("approved"))
    assert results == ["approved"]
    assert actor.statistics().deferred == 0

    async def hold_until_stop() -> None:
        with pytest.raises(ActorStopped):
            await client.hold()
        results.append("stopped")

    async with trio.open_nursery() as callers:
        callers.start_soon(hold_until_stop)
        await trio.testing.wait_all_tasks_blocked()
        await actor.stop()
    assert results == ["approved", "stopped"]
    assert actor.statistics().stopped_callers == 1


async def test_many_answered_deferred_replies_are_pruned(nursery: trio.Nursery) -> None:
    actor = Counter()
    await nursery.start(actor.run)
    replies = [Reply[str]() for _ in range(70)]
    for reply in replies:
        await actor.address.tell(Hold(reply))
    await actor.address.tell(Release("ok"))
    late: Reply[str] = Reply()
    await actor.address.tell(Hold(late))
    await trio.testing.wait_all_tasks_blocked()
    assert all(reply.done for reply in replies)
    assert actor.statistics().deferred == 1
    await actor.stop()
    with pytest.raises(ActorStopped):
        await late.wait()
    assert actor.statistics().stopped_callers == 1


async def test_address_survives_a_restart_with_a_fresh_mailbox_and_state(
    nursery: trio.Nursery,
) -> None:
    actor = Counter()
    sup = Supervisor([actor.child_spec()], max_restarts=5, name="sup")
    await nursery.start(sup.run)
    client = CounterClient(actor.address)  # handed out before the crash
    await client.put("a", 1)
    assert await client.get("a") == 1
    await actor.address.tell(Crash())
    await trio.testing.wait_all_tasks_blocked()
    assert actor.starts == 2
    # Same address, new run: state was rebuilt by on_start.
    assert await client.get("a") is None
    await client.put("a", 2)
    assert await client.get("a") == 2
    stats = actor.statistics()
    assert stats.restarts == 1
    assert stats.running
    assert sup.statistics().restarts == 1
    await sup.stop()


async def test_statistics_track_the_actor(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    actor = Counter()
    fresh = actor.statistics()
    assert not fresh.running
    assert fresh.last_active is None
    assert fresh.mailbox_size == 4
    await nursery.start(actor.run)
    client = CounterClient(actor.address)
    await client.put("a", 1)
    await client.get("a")
    blocker: Reply[str] = Reply()
    actor.address.try_tell(Block(blocker))
    await trio.testing.wait_all_tasks_blocked()
    actor.address.try_tell(Put("b", 2))
    actor.address.try_tell(Put("c", 3))
    stats = actor.statistics()
    assert stats.name == "counter"
    assert stats.running
    assert stats.busy
    assert stats.handled == 3
    assert stats.mailbox_depth == 2
    assert stats.peak_depth == 2
    assert stats.restarts == 0
    assert stats.expired == 0
    assert actor.idle_since() is None
    actor.gate.set()
    await trio.testing.wait_all_tasks_blocked()
    stats = actor.statistics()
    assert not stats.busy
    assert stats.handled == 5
    assert stats.mailbox_depth == 0
    assert actor.idle_since() == trio.current_time()


def test_closing_a_mailbox_twice_is_harmless() -> None:
    mailbox: Mailbox[int] = Mailbox("m")
    assert mailbox.close() == []
    receive = mailbox.open(2)
    sender = mailbox.sender
    assert sender is not None
    sender.send_nowait(1)
    assert mailbox.close() == [1]
    assert mailbox.close() == []
    assert mailbox.sender is None
    assert mailbox.depth == mailbox.senders_waiting == 0
    with pytest.raises(trio.ClosedResourceError):
        receive.receive_nowait()
    with pytest.raises(trio.ClosedResourceError):
        sender.send_nowait(2)
