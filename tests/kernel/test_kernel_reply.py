"""The one-shot reply slot: first answer wins, never raises, late answers are dropped."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import trio
import trio.testing

from agent_identity.kernel import ActorStopped, Reply, Request


class BoomError(Exception):
    pass


async def test_set_then_wait_returns_value() -> None:
    reply: Reply[int] = Reply()
    states = [reply.done]
    reply.set(7)
    states.append(reply.done)
    assert states == [False, True]
    assert await reply.wait() == 7
    # Waiting twice is harmless (outcome.unwrap would refuse the second time).
    assert await reply.wait() == 7


async def test_fail_then_wait_raises() -> None:
    reply: Reply[int] = Reply()
    reply.fail(BoomError("nope"))
    with pytest.raises(BoomError, match="nope"):
        await reply.wait()


async def test_first_answer_wins_and_later_ones_never_raise() -> None:
    reply: Reply[str] = Reply()
    reply.set("first")
    reply.set("second")
    reply.fail(ActorStopped("x"))
    assert await reply.wait() == "first"

    failed: Reply[str] = Reply()
    failed.fail(BoomError("first"))
    failed.set("late")
    with pytest.raises(BoomError, match="first"):
        await failed.wait()


async def test_wait_blocks_until_answered() -> None:
    reply: Reply[int] = Reply()
    got: list[int] = []

    async def waiter() -> None:
        got.append(await reply.wait())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        assert got == []
        reply.set(3)
    assert got == [3]


async def test_late_answer_after_cancelled_wait_is_dropped() -> None:
    reply: Reply[int] = Reply()
    with trio.move_on_after(1) as scope:
        await reply.wait()
    assert scope.cancelled_caught
    reply.set(1)  # the caller is gone: stored, never raises
    assert reply.done


async def test_wait_is_a_checkpoint_even_when_answered() -> None:
    reply: Reply[int] = Reply()
    reply.set(1)
    with trio.testing.assert_checkpoints():
        await reply.wait()


def test_deadline_defaults_to_infinity_and_repr_shows_state() -> None:
    reply: Reply[int] = Reply()
    assert reply.deadline == math.inf
    assert "pending" in repr(reply)
    reply.set(5)
    assert "Value(5)" in repr(reply)


def test_request_exposes_the_reply_deadline() -> None:
    @dataclass(frozen=True, slots=True)
    class Get(Request[int]):
        key: str

    reply: Reply[int] = Reply(deadline=12.5)
    msg = Get(reply, "k")
    assert msg.deadline == 12.5
    assert msg.reply is reply
