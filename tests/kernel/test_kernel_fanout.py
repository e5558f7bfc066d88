"""EventFanout: non-blocking publish to memory-channel subscribers."""

from __future__ import annotations

import logging

import pytest
import trio

from agent_identity.kernel import DEFAULT_EVENT_BUFFER, EventFanout


async def test_every_subscriber_gets_every_later_event() -> None:
    fanout = EventFanout[int]()
    early = fanout.subscribe()
    fanout.publish(1)
    late = fanout.subscribe()
    fanout.publish(2)
    assert fanout.subscribers == 2
    assert [early.receive_nowait(), early.receive_nowait()] == [1, 2]
    assert late.receive_nowait() == 2
    with pytest.raises(trio.WouldBlock):
        late.receive_nowait()
    assert fanout.dropped == 0


async def test_a_full_subscriber_drops_without_blocking_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger("tests.fanout")
    fanout = EventFanout[str]("demo", logger=log)
    slow = fanout.subscribe(buffer=1)
    fast = fanout.subscribe(buffer=10)
    with caplog.at_level(logging.WARNING, logger="tests.fanout"):
        for event in ("a", "b", "c"):
            fanout.publish(event)  # sync: never waits for the slow subscriber
    assert fanout.dropped == 2
    assert fanout.subscribers == 2  # full is not gone
    assert slow.receive_nowait() == "a"
    assert [fast.receive_nowait() for _ in range(3)] == ["a", "b", "c"]
    messages = [r.getMessage() for r in caplog.records if r.name == "tests.fanout"]
    assert messages == ["a demo event subscriber is full; event dropped"] * 2


async def test_closed_subscribers_are_removed() -> None:
    fanout = EventFanout[int]()
    gone = fanout.subscribe()
    kept = fanout.subscribe()
    await gone.aclose()
    fanout.publish(1)
    assert fanout.subscribers == 1
    assert fanout.dropped == 0
    assert kept.receive_nowait() == 1
    fanout.publish(2)
    assert kept.receive_nowait() == 2


async def test_the_default_buffer_and_log_line(caplog: pytest.LogCaptureFixture) -> None:
    fanout = EventFanout[int]()
    receive = fanout.subscribe()
    with caplog.at_level(logging.WARNING, logger="agent_identity.kernel"):
        for n in range(DEFAULT_EVENT_BUFFER + 1):
            fanout.publish(n)
    assert fanout.dropped == 1
    assert receive.statistics().current_buffer_used == DEFAULT_EVENT_BUFFER
    assert [r.getMessage() for r in caplog.records] == [
        "an event subscriber is full; event dropped"
    ]
