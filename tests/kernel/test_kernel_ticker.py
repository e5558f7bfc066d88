"""Ticker: a periodic try_tell on Trio's clock that skips full or stopped mailboxes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest
import trio
import trio.testing

from agent_identity.kernel import Actor, ChildSpec, Supervisor, Ticker


@dataclass(frozen=True, slots=True)
class Tick:
    pass


class Recorder(Actor[Tick]):
    """Counts ticks and when they arrived; blocks on ``gate`` while ``stuck``."""

    mailbox_size: ClassVar[int] = 2

    def __init__(self, *, stuck: bool = False) -> None:
        super().__init__(name="recorder")
        self.stuck = stuck
        self.gate = trio.Event()
        self.times: list[float] = []

    async def handle(self, msg: Tick) -> None:
        if self.stuck:
            await self.gate.wait()
        else:
            await trio.lowlevel.checkpoint()
        self.times.append(trio.current_time())


async def test_ticks_on_a_fixed_schedule_until_stopped(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    actor = Recorder()
    await nursery.start(actor.run)
    ticker = Ticker(actor.address, Tick, interval=3)
    start = trio.current_time()
    await nursery.start(ticker.run)
    await trio.sleep(10)
    assert ticker.ticks == 3
    assert [t - start for t in actor.times] == [3, 6, 9]
    ticker.request_stop()
    ticker.request_stop()  # idempotent
    await trio.sleep(10)
    assert ticker.ticks == 3
    assert len(actor.times) == 3


async def test_a_full_mailbox_skips_the_tick(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    actor = Recorder(stuck=True)
    await nursery.start(actor.run)
    ticker = Ticker(actor.address, Tick, interval=1)
    await nursery.start(ticker.run)
    await trio.sleep(5.5)  # one in the handler, two queued, two skipped
    assert ticker.ticks == 5
    assert actor.statistics().mailbox_depth == Recorder.mailbox_size
    actor.gate.set()
    await trio.sleep(0.1)
    assert len(actor.times) == 1 + Recorder.mailbox_size
    ticker.request_stop()


async def test_a_stopped_actor_skips_the_tick(autojump_clock: trio.testing.MockClock) -> None:
    actor = Recorder()  # never started
    ticker = Ticker(actor.address, Tick, interval=1)
    async with trio.open_nursery() as nursery:
        await nursery.start(ticker.run)
        await trio.sleep(2.5)
        assert ticker.ticks == 2
        ticker.request_stop()
    assert actor.times == []


async def test_runs_under_a_supervisor(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    actor = Recorder()
    ticker = Ticker(actor.address, Tick, interval=1, name="recorder_ticker")
    spec = ticker.child_spec()
    assert isinstance(spec, ChildSpec)
    assert spec.id == "recorder_ticker"
    assert ticker.child_spec("other").id == "other"
    sup = Supervisor([actor.child_spec(), spec], name="ticking")
    await nursery.start(sup.run)
    await trio.sleep(3.5)
    assert ticker.ticks == 3
    assert len(actor.times) == 3
    sup.request_stop()


def test_interval_must_be_positive() -> None:
    actor = Recorder()
    for interval in (0, -1):
        with pytest.raises(ValueError, match="interval must be > 0"):
            Ticker(actor.address, Tick, interval=interval)
    assert Ticker(actor.address, Tick, interval=1).child_spec().id == "ticker"
