"""Graceful shutdown: first signal drains in reverse order, second cancels; KI handling."""

from __future__ import annotations

import functools
import os
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import pytest
import trio
import trio.lowlevel
import trio.testing

from agent_identity.kernel import (
    EXIT_INTERRUPTED,
    ChildSpec,
    ChildStartFailed,
    ShutdownResult,
    SignalSource,
    Supervisor,
    SupervisorGaveUp,
    run_main,
    serve_until_signalled,
)


class BoomError(Exception):
    pass


class FakeSignals:
    """An injectable signal source fed from a memory channel."""

    def __init__(self) -> None:
        self.send, self.receive = trio.open_memory_channel[int](10)
        self.opened_with: tuple[int, ...] = ()

    @contextmanager
    def __call__(self, *signals: int) -> Iterator[AsyncIterator[int]]:
        self.opened_with = signals
        yield self.receive


class Tree:
    """A root supervisor over children that log stop requests and cancellation."""

    def __init__(self, *, stubborn: str = "", setup: float = 0, crash_on_start: str = "") -> None:
        self.log: list[str] = []
        self.wake: dict[str, trio.Event] = {}
        self.crashing: set[str] = set()
        self.stubborn = stubborn
        self.setup = setup
        self.crash_on_start = crash_on_start
        self.root = Supervisor([self._spec(c) for c in "abc"], max_restarts=0, name="root")

    def _spec(self, name: str) -> ChildSpec:
        async def start(*, task_status: trio.TaskStatus[None]) -> None:
            await trio.sleep(self.setup)
            if name == self.crash_on_start:
                raise BoomError(name)
            wake = self.wake[name] = trio.Event()
            self.log.append(f"start {name}")
            task_status.started()
            try:
                await wake.wait()
                if name in self.crashing:
                    raise BoomError(name)
                if name == self.stubborn:
                    self.log.append(f"ignore {name}")
                    await trio.sleep_forever()
                self.log.append(f"stop {name}")
            except trio.Cancelled:
                self.log.append(f"cancel {name}")
                raise

        return ChildSpec(
            id=name, start=start, stop=functools.partial(self._ask, name), shutdown=100
        )

    def _ask(self, name: str) -> None:
        self.wake[name].set()

    def crash(self, name: str) -> None:
        self.crashing.add(name)
        self.wake[name].set()


class Served:
    """Runs serve_until_signalled in a background task and keeps its result."""

    def __init__(self) -> None:
        self.results: list[ShutdownResult] = []
        self.done = trio.Event()

    async def serve(
        self,
        tree: Tree,
        grace: float,
        source: SignalSource = trio.open_signal_receiver,
        signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM),
    ) -> None:
        result = await serve_until_signalled(
            tree.root, grace=grace, signals=signals, signal_source=source
        )
        self.results.append(result)
        self.done.set()


async def test_nursery_start_returns_once_the_whole_tree_is_ready(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    tree, signals = Tree(setup=1), FakeSignals()
    await nursery.start(
        functools.partial(serve_until_signalled, tree.root, grace=30, signal_source=signals)
    )
    assert tree.log == ["start a", "start b", "start c"]
    assert trio.current_time() == 3
    assert signals.opened_with == (signal.SIGINT, signal.SIGTERM)


async def test_first_signal_drains_in_reverse_order(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    tree, signals, served = Tree(), FakeSignals(), Served()
    nursery.start_soon(served.serve, tree, 30, signals)
    await trio.testing.wait_all_tasks_blocked()
    assert tree.log == ["start a", "start b", "start c"]
    before = trio.current_time()
    await signals.send.send(signal.SIGTERM)
    await served.done.wait()
    assert tree.log[3:] == ["stop c", "stop b", "stop a"]
    assert served.results == [ShutdownResult(signal=signal.SIGTERM, forced=False)]
    assert trio.current_time() == before


async def test_second_signal_cancels_the_drain(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    tree, signals, served = Tree(stubborn="b"), FakeSignals(), Served()
    nursery.start_soon(served.serve, tree, 50, signals)
    await trio.testing.wait_all_tasks_blocked()
    await signals.send.send(signal.SIGTERM)
    await trio.testing.wait_all_tasks_blocked()
    assert tree.log[3:] == ["stop c", "ignore b"]
    await trio.sleep(1)
    await signals.send.send(signal.SIGINT)
    await served.done.wait()
    # A forced stop cancels everything at once, in no particular order.
    assert sorted(tree.log[5:]) == ["cancel a", "cancel b"]
    assert served.results == [ShutdownResult(signal=signal.SIGTERM, forced=True)]
    assert trio.current_time() == 1


async def test_the_grace_period_bounds_the_drain(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    tree, signals, served = Tree(stubborn="b"), FakeSignals(), Served()
    nursery.start_soon(served.serve, tree, 10, signals)
    await trio.testing.wait_all_tasks_blocked()
    await signals.send.send(signal.SIGINT)
    await served.done.wait()
    # Child b alone would have had 100 s; the overall grace cut it at 10 s.
    assert trio.current_time() == 10
    assert tree.log[3:5] == ["stop c", "ignore b"]
    assert sorted(tree.log[5:]) == ["cancel a", "cancel b"]
    assert served.results == [ShutdownResult(signal=signal.SIGINT, forced=True)]


async def test_a_signal_during_startup_is_not_lost(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    tree, signals, served = Tree(setup=1), FakeSignals(), Served()
    signals.send.send_nowait(signal.SIGTERM)
    nursery.start_soon(served.serve, tree, 30, signals)
    await served.done.wait()
    assert tree.log == ["start a", "start b", "start c", "stop c", "stop b", "stop a"]
    assert served.results == [ShutdownResult(signal=signal.SIGTERM, forced=False)]


async def test_a_service_that_returns_by_itself_ends_the_wait(nursery: trio.Nursery) -> None:
    tree, signals, served = Tree(), FakeSignals(), Served()
    nursery.start_soon(served.serve, tree, 30, signals)
    await trio.testing.wait_all_tasks_blocked()
    await tree.root.stop()
    await served.done.wait()
    assert served.results == [ShutdownResult(signal=None, forced=False)]


async def test_a_service_failure_propagates_unwrapped(nursery: trio.Nursery) -> None:
    tree, signals = Tree(), FakeSignals()
    caught: list[SupervisorGaveUp] = []

    async def serve() -> None:
        # pytest.raises, not RaisesGroup: the error is not wrapped in a group.
        with pytest.raises(SupervisorGaveUp) as info:
            await serve_until_signalled(tree.root, grace=30, signal_source=signals)
        caught.append(info.value)

    nursery.start_soon(serve)
    await trio.testing.wait_all_tasks_blocked()
    tree.crash("b")
    await trio.testing.wait_all_tasks_blocked()
    assert len(caught) == 1
    assert isinstance(caught[0].__cause__, BoomError)


async def test_a_start_failure_propagates_out_of_nursery_start() -> None:
    tree, signals = Tree(crash_on_start="b"), FakeSignals()
    async with trio.open_nursery() as nursery:
        with pytest.raises(ChildStartFailed):
            await nursery.start(
                functools.partial(serve_until_signalled, tree.root, grace=30, signal_source=signals)
            )
    assert tree.log == ["start a", "stop a"]


async def test_a_real_signal_starts_the_drain() -> None:
    tree, served = Tree(), Served()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(served.serve, tree, 5, trio.open_signal_receiver, (signal.SIGUSR1,))
            await trio.testing.wait_all_tasks_blocked()
            assert tree.log == ["start a", "start b", "start c"]
            os.kill(os.getpid(), signal.SIGUSR1)
    assert served.results == [ShutdownResult(signal=signal.SIGUSR1, forced=False)]
    assert tree.log[3:] == ["stop c", "stop b", "stop a"]


# -------------------------------------------------------------------------- run_main


async def _interrupt() -> None:
    await trio.lowlevel.checkpoint()
    raise KeyboardInterrupt


def test_run_main_returns_zero_after_a_normal_run() -> None:
    seen: list[float] = []

    async def main(seconds: float) -> None:
        await trio.sleep(seconds)
        seen.append(trio.current_time())

    assert run_main(main, 100.0, clock=trio.testing.MockClock(autojump_threshold=0)) == 0
    assert seen == [100.0]


def test_run_main_maps_a_bare_keyboard_interrupt() -> None:
    assert run_main(_interrupt) == EXIT_INTERRUPTED == 130


def test_run_main_maps_a_keyboard_interrupt_inside_an_exception_group() -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_interrupt)
            await trio.sleep_forever()

    # Without except*, this would escape as a BaseExceptionGroup.
    with pytest.RaisesGroup(KeyboardInterrupt):
        trio.run(main)
    assert run_main(main) == EXIT_INTERRUPTED


def test_run_main_lets_other_errors_through() -> None:
    async def main() -> None:
        await trio.lowlevel.checkpoint()
        raise BoomError("bug")

    with pytest.raises(BoomError, match="bug"):
        run_main(main)
