"""Supervisor: strategies, restart types, intensity, ordered start, reverse stop."""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from dataclasses import dataclass, field

import pytest
import trio
import trio.testing

from agent_identity.kernel import (
    INFINITE,
    ChildSpec,
    ChildStartFailed,
    Restart,
    Strategy,
    Supervisor,
    SupervisorGaveUp,
)
from agent_identity.kernel._child import ChildRun, RestartWindow

P, T, X = Restart.PERMANENT, Restart.TRANSIENT, Restart.TEMPORARY
ONE, ALL, REST = Strategy.ONE_FOR_ONE, Strategy.ONE_FOR_ALL, Strategy.REST_FOR_ONE


class BoomError(Exception):
    pass


@dataclass
class _Instance:
    command: str = ""
    wake: trio.Event = field(default_factory=trio.Event)


class Probe:
    """Children that log what happens to them and obey commands from the test.

    Log entries: "start x" (ready), "crash x" (raised), "exit x" (returned by
    itself), "stop x" (returned when asked), "ignore x" (asked, kept running),
    "cancel x" (cancelled), "fail x" (raised before started()).
    """

    def __init__(self) -> None:
        self.log: list[str] = []
        self.current: dict[str, _Instance] = {}
        self.alive: dict[str, int] = defaultdict(int)
        self.overlaps = 0
        self.fail_starts: dict[str, set[int]] = defaultdict(set)  # id -> start numbers
        self.starts: dict[str, int] = defaultdict(int)
        self.setup_delay: dict[str, float] = {}

    def spec(
        self,
        child_id: str,
        restart: Restart = P,
        *,
        shutdown: float = 5.0,
        obeys_stop: bool = True,
        askable: bool = True,
    ) -> ChildSpec:
        async def start(*, task_status: trio.TaskStatus[None]) -> None:
            instance = await self._setup(child_id)
            task_status.started()
            await self._serve(child_id, instance, obeys_stop=obeys_stop)

        return ChildSpec(
            id=child_id,
            start=start,
            restart=restart,
            shutdown=shutdown,
            stop=functools.partial(self._command, child_id, "ask") if askable else None,
        )

    async def _setup(self, child_id: str) -> _Instance:
        """Everything before started(): may take time, may fail."""
        self.starts[child_id] += 1
        if child_id in self.setup_delay:
            self.log.append(f"setup {child_id}")
        await trio.sleep(self.setup_delay.get(child_id, 0))
        if self.starts[child_id] in self.fail_starts[child_id]:
            self.log.append(f"fail {child_id}")
            raise BoomError(f"{child_id} cannot start")
        self.alive[child_id] += 1
        if self.alive[child_id] > 1:
            self.overlaps += 1
        instance = self.current[child_id] = _Instance()
        self.log.append(f"start {child_id}")
        return instance

    async def _serve(self, child_id: str, instance: _Instance, *, obeys_stop: bool) -> None:
        """Everything after started(): obey commands until told to end."""
        try:
            while True:
                await instance.wake.wait()
                instance.wake = trio.Event()
                if instance.command == "crash":
                    self.log.append(f"crash {child_id}")
                    raise BoomError(f"{child_id} crashed")
                if instance.command == "exit":
                    self.log.append(f"exit {child_id}")
                    return
                if obeys_stop:
                    self.log.append(f"stop {child_id}")
                    return
                self.log.append(f"ignore {child_id}")
        except trio.Cancelled:
            self.log.append(f"cancel {child_id}")
            raise
        finally:
            self.alive[child_id] -= 1

    def _command(self, child_id: str, command: str) -> None:
        instance = self.current[child_id]
        instance.command = command
        instance.wake.set()

    def crash(self, child_id: str) -> None:
        self._command(child_id, "crash")

    def exit(self, child_id: str) -> None:
        self._command(child_id, "exit")

    def take_log(self) -> list[str]:
        log, self.log = self.log, []
        return log


async def started(nursery: trio.Nursery, sup: Supervisor, probe: Probe) -> None:
    await nursery.start(sup.run)
    probe.take_log()


def ids(sup: Supervisor, *, running: bool | None = None) -> list[str]:
    return [c.id for c in sup.statistics().children if running is None or c.running == running]


# -------------------------------------------------------------- the strategy table


@dataclass(frozen=True)
class Case:
    strategy: Strategy
    types: tuple[Restart, Restart, Restart]  # of children a, b, c
    child: str
    action: str  # "crash" or "exit"
    log: list[str]
    restarts: int
    children: list[str]  # children left, in order


CASES = [
    # permanent children: the strategy decides who is restarted, in which order
    Case(ONE, (P, P, P), "b", "crash", ["crash b", "start b"], 1, ["a", "b", "c"]),
    Case(ALL, (P, P, P), "b", "crash",
         ["crash b", "stop c", "stop a", "start a", "start b", "start c"], 1, ["a", "b", "c"]),
    Case(REST, (P, P, P), "b", "crash", ["crash b", "stop c", "start b", "start c"], 1,
         ["a", "b", "c"]),
    Case(REST, (P, P, P), "a", "crash",
         ["crash a", "stop c", "stop b", "start a", "start b", "start c"], 1, ["a", "b", "c"]),
    Case(REST, (P, P, P), "c", "crash", ["crash c", "start c"], 1, ["a", "b", "c"]),
    Case(ALL, (P, P, P), "c", "crash",
         ["crash c", "stop b", "stop a", "start a", "start b", "start c"], 1, ["a", "b", "c"]),
    # a permanent child is restarted even after a normal exit
    Case(ONE, (P, P, P), "b", "exit", ["exit b", "start b"], 1, ["a", "b", "c"]),
    Case(REST, (P, P, P), "b", "exit", ["exit b", "stop c", "start b", "start c"], 1,
         ["a", "b", "c"]),
    # transient: restarted after a crash, not after a normal exit (and siblings untouched)
    Case(ONE, (P, T, P), "b", "crash", ["crash b", "start b"], 1, ["a", "b", "c"]),
    Case(ALL, (P, T, P), "b", "crash",
         ["crash b", "stop c", "stop a", "start a", "start b", "start c"], 1, ["a", "b", "c"]),
    Case(ONE, (P, T, P), "b", "exit", ["exit b"], 0, ["a", "b", "c"]),
    Case(ALL, (P, T, P), "b", "exit", ["exit b"], 0, ["a", "b", "c"]),
    Case(REST, (P, T, P), "b", "exit", ["exit b"], 0, ["a", "b", "c"]),
    # temporary: never restarted, forgotten, siblings untouched
    Case(ONE, (P, X, P), "b", "crash", ["crash b"], 0, ["a", "c"]),
    Case(ALL, (P, X, P), "b", "crash", ["crash b"], 0, ["a", "c"]),
    Case(REST, (P, X, P), "b", "crash", ["crash b"], 0, ["a", "c"]),
    Case(REST, (P, X, P), "b", "exit", ["exit b"], 0, ["a", "c"]),
    # temporary siblings taken down by a restart are not restarted either
    Case(REST, (P, P, X), "b", "crash", ["crash b", "stop c", "start b"], 1, ["a", "b"]),
    Case(ALL, (X, P, P), "b", "crash",
         ["crash b", "stop c", "stop a", "start b", "start c"], 1, ["b", "c"]),
    # a transient sibling is restarted with the others
    Case(ALL, (T, P, P), "c", "crash",
         ["crash c", "stop b", "stop a", "start a", "start b", "start c"], 1, ["a", "b", "c"]),
]  # fmt: skip


@pytest.mark.parametrize(
    "case",
    CASES,
    ids=[
        f"{c.strategy.value}-{''.join(r.value[0] for r in c.types)}-{c.action}-{c.child}"
        for c in CASES
    ],
)
async def test_strategy_table(nursery: trio.Nursery, case: Case) -> None:
    probe = Probe()
    specs = [probe.spec(name, kind) for name, kind in zip("abc", case.types, strict=True)]
    sup = Supervisor(specs, strategy=case.strategy, max_restarts=3, name="table")
    await started(nursery, sup, probe)
    probe._command(case.child, case.action)
    await trio.testing.wait_all_tasks_blocked()
    assert probe.take_log() == case.log
    stats = sup.statistics()
    assert stats.restarts == case.restarts
    assert [c.id for c in stats.children] == case.children
    assert probe.overlaps == 0
    # A child that is not restarted is not running; every other one is.
    not_restarted = case.child if case.restarts == 0 else None
    assert ids(sup, running=True) == [c for c in case.children if c != not_restarted]
    await sup.stop()
    assert ids(sup, running=True) == []


async def test_transient_child_that_ended_is_restarted_by_a_later_one_for_all(
    nursery: trio.Nursery,
) -> None:
    # As in OTP: a group restart starts every child still in the list.
    probe = Probe()
    sup = Supervisor([probe.spec("a"), probe.spec("b", T), probe.spec("c")], strategy=ALL)
    await started(nursery, sup, probe)
    probe.exit("b")
    await trio.testing.wait_all_tasks_blocked()
    probe.crash("c")
    await trio.testing.wait_all_tasks_blocked()
    assert probe.take_log() == [
        "exit b",
        "crash c",
        "stop a",
        "start a",
        "start b",
        "start c",
    ]
    assert ids(sup, running=True) == ["a", "b", "c"]


# -------------------------------------------------------------------------- intensity


async def test_exceeding_the_intensity_escalates_chained_from_the_childs_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    sup = Supervisor(
        [probe.spec("a"), probe.spec("b"), probe.spec("c")],
        strategy=ONE,
        max_restarts=2,
        period=5,
        name="top",
    )
    with pytest.RaisesGroup(
        pytest.RaisesExc(SupervisorGaveUp, match="more than 2 restart"),
    ) as group:
        async with trio.open_nursery() as nursery:
            await started(nursery, sup, probe)
            for _ in range(3):
                probe.crash("b")
                await trio.testing.wait_all_tasks_blocked()
                await trio.sleep(1)
    gave_up = group.value.exceptions[0]
    assert isinstance(gave_up, SupervisorGaveUp)
    assert gave_up.supervisor == "top"
    assert gave_up.child_id == "b"
    assert (gave_up.max_restarts, gave_up.period) == (2, 5)
    assert isinstance(gave_up.__cause__, BoomError)
    # Two restarts, then the third exit stopped everything in reverse order.
    assert probe.take_log() == [
        "crash b", "start b", "crash b", "start b", "crash b", "stop c", "stop a",
    ]  # fmt: skip
    stats = sup.statistics()
    assert stats.restarts == 2
    assert not stats.running


async def test_restarts_spaced_beyond_the_period_never_escalate(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    probe = Probe()
    sup = Supervisor([probe.spec("a")], max_restarts=1, period=5)
    await started(nursery, sup, probe)
    for _ in range(6):
        probe.crash("a")
        await trio.testing.wait_all_tasks_blocked()
        await trio.sleep(5)  # the previous restart has just left the window
    stats = sup.statistics()
    assert stats.running
    assert stats.restarts == 6
    assert stats.children[0].restarts == 6
    assert stats.children[0].generation == 7


async def test_restarts_inside_the_period_do_escalate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    sup = Supervisor([probe.spec("a")], max_restarts=1, period=5)
    with pytest.RaisesGroup(SupervisorGaveUp):
        async with trio.open_nursery() as nursery:
            await started(nursery, sup, probe)
            probe.crash("a")
            await trio.testing.wait_all_tasks_blocked()
            await trio.sleep(4.9)
            probe.crash("a")
            await trio.testing.wait_all_tasks_blocked()
    assert sup.statistics().restarts == 1


def test_restart_window_counts_within_a_sliding_period() -> None:
    window = RestartWindow(2, 10)
    assert window.record(0)
    assert window.record(5)
    assert not window.record(9.99)  # three within 10 s
    window.reset()
    assert window.record(20)
    assert window.record(29)
    assert window.record(30)  # the one at 20 has left the window
    assert not RestartWindow(0, 1).record(0)
    with pytest.raises(ValueError, match="max_restarts"):
        RestartWindow(-1, 1)
    with pytest.raises(ValueError, match="period"):
        RestartWindow(1, 0)


async def test_a_permanent_child_exiting_normally_escalates_without_a_cause(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    sup = Supervisor([probe.spec("a")], max_restarts=0)
    with pytest.RaisesGroup(SupervisorGaveUp) as group:
        async with trio.open_nursery() as nursery:
            await started(nursery, sup, probe)
            probe.exit("a")
            await trio.testing.wait_all_tasks_blocked()
    assert group.value.exceptions[0].__cause__ is None


# ------------------------------------------------------------ ordered start and stop


async def test_children_start_in_order_each_ready_before_the_next(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    probe = Probe()
    probe.setup_delay = {"a": 2, "b": 1, "c": 3}
    sup = Supervisor([probe.spec("a"), probe.spec("b"), probe.spec("c")])
    await nursery.start(sup.run)
    assert probe.take_log() == ["setup a", "start a", "setup b", "start b", "setup c", "start c"]
    assert trio.current_time() == 6
    assert ids(sup, running=True) == ["a", "b", "c"]


async def test_stop_is_reverse_order_with_grace_then_cancellation(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    probe = Probe()
    sup = Supervisor(
        [
            probe.spec("a", shutdown=10),
            probe.spec("b", shutdown=3, obeys_stop=False),
            probe.spec("c", shutdown=10),
        ]
    )
    await started(nursery, sup, probe)
    before = trio.current_time()
    await sup.stop()
    # b ignored the request and was cancelled when its 3 s grace ran out.
    assert probe.take_log() == ["stop c", "ignore b", "cancel b", "stop a"]
    assert trio.current_time() - before == 3
    assert not sup.statistics().running
    await sup.stop()  # stopping a stopped supervisor returns at once
    sup.request_stop()


async def test_children_without_stop_hook_or_grace_are_cancelled_at_once(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    probe = Probe()
    sup = Supervisor([probe.spec("a", askable=False), probe.spec("b", shutdown=0)])
    await started(nursery, sup, probe)
    before = trio.current_time()
    await sup.stop()
    assert probe.take_log() == ["cancel b", "cancel a"]
    assert trio.current_time() == before


async def test_a_child_failing_before_started_fails_the_supervisor_start(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    probe.fail_starts["b"] = {1}
    sup = Supervisor([probe.spec("a"), probe.spec("b"), probe.spec("c")], name="root")
    async with trio.open_nursery() as nursery:
        with pytest.raises(ChildStartFailed, match="could not start child 'b'") as info:
            await nursery.start(sup.run)
    assert isinstance(info.value.__cause__, BoomError)
    assert (info.value.supervisor, info.value.child_id) == ("root", "b")
    # Not retried; what was started is stopped again; c never started.
    assert probe.take_log() == ["start a", "fail b", "stop a"]
    assert probe.starts["b"] == 1
    assert not sup.statistics().running


async def test_a_child_returning_before_started_fails_the_supervisor_start() -> None:
    async def lazy(**_: object) -> None:
        """Returns without ever calling task_status.started()."""
        await trio.lowlevel.checkpoint()

    sup = Supervisor([ChildSpec(id="lazy", start=lazy)])
    with pytest.raises(ChildStartFailed) as info:
        await sup.run()
    assert isinstance(info.value.__cause__, RuntimeError)


async def test_a_failed_restart_counts_as_another_failure(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    probe = Probe()
    probe.fail_starts["b"] = {2}  # the first restart of b fails
    sup = Supervisor([probe.spec("a"), probe.spec("b"), probe.spec("c")], strategy=REST)
    await started(nursery, sup, probe)
    probe.crash("b")
    await trio.testing.wait_all_tasks_blocked()
    assert probe.take_log() == ["crash b", "stop c", "fail b", "start b", "start c"]
    assert sup.statistics().restarts == 2
    assert ids(sup, running=True) == ["a", "b", "c"]


async def test_failed_restarts_escalate_when_they_exceed_the_intensity(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    probe.fail_starts["a"] = {2, 3, 4}
    sup = Supervisor([probe.spec("a")], max_restarts=2)
    with pytest.RaisesGroup(SupervisorGaveUp) as group:
        async with trio.open_nursery() as nursery:
            await started(nursery, sup, probe)
            probe.crash("a")
            await trio.testing.wait_all_tasks_blocked()
    assert isinstance(group.value.exceptions[0].__cause__, BoomError)
    assert probe.take_log() == ["crash a", "fail a", "fail a"]


async def test_stale_exit_reports_are_ignored(nursery: trio.Nursery) -> None:
    probe = Probe()
    sup = Supervisor([probe.spec("a"), probe.spec("b"), probe.spec("c")], strategy=ALL)
    await started(nursery, sup, probe)
    # Both die before the supervisor runs; the second report belongs to a run that
    # the first restart already replaced, so it must not trigger a second restart.
    probe.crash("a")
    probe.crash("b")
    await trio.testing.wait_all_tasks_blocked()
    log = probe.take_log()
    assert sorted(log[:2]) == ["crash a", "crash b"]
    assert log[2:] == ["stop c", "start a", "start b", "start c"]
    assert sup.statistics().restarts == 1
    assert probe.overlaps == 0


# ------------------------------------------------------------------ nesting and misc


async def test_nested_supervisor_gives_up_and_the_parent_restarts_it(
    nursery: trio.Nursery,
) -> None:
    probe = Probe()
    inner = Supervisor([probe.spec("x"), probe.spec("y")], max_restarts=0, name="inner")
    outer = Supervisor([probe.spec("a"), inner.child_spec()], strategy=ONE, name="outer")
    await started(nursery, outer, probe)
    probe.crash("y")
    await trio.testing.wait_all_tasks_blocked()
    assert probe.take_log() == ["crash y", "stop x", "start x", "start y"]
    assert outer.statistics().restarts == 1
    assert inner.statistics().running
    await outer.stop()
    assert probe.take_log() == ["stop y", "stop x", "stop a"]


async def test_escalation_propagates_through_levels(autojump_clock: trio.testing.MockClock) -> None:
    probe = Probe()
    inner = Supervisor([probe.spec("x")], max_restarts=0, name="inner")
    outer = Supervisor([inner.child_spec()], max_restarts=0, name="outer")
    with pytest.RaisesGroup(SupervisorGaveUp) as group:
        async with trio.open_nursery() as nursery:
            await started(nursery, outer, probe)
            probe.crash("x")
            await trio.testing.wait_all_tasks_blocked()
    top = group.value.exceptions[0]
    assert isinstance(top, SupervisorGaveUp)
    assert top.supervisor == "outer"
    assert isinstance(top.__cause__, SupervisorGaveUp)
    assert top.__cause__.supervisor == "inner"
    assert isinstance(top.__cause__.__cause__, BoomError)


async def test_nested_start_failure_is_reported_at_every_level() -> None:
    probe = Probe()
    probe.fail_starts["x"] = {1}
    inner = Supervisor([probe.spec("x")], name="inner")
    outer = Supervisor([inner.child_spec("inner")], name="outer")
    with pytest.raises(ChildStartFailed, match="'outer' could not start child 'inner'") as info:
        await outer.run()
    assert isinstance(info.value.__cause__, ChildStartFailed)
    assert isinstance(info.value.__cause__.__cause__, BoomError)


async def test_statistics_and_rerun(nursery: trio.Nursery) -> None:
    probe = Probe()
    sup = Supervisor([probe.spec("a"), probe.spec("b", T)], strategy=REST, max_restarts=4,
                     period=7, name="stats")  # fmt: skip
    stats = sup.statistics()
    assert not stats.running
    assert (stats.name, stats.strategy, stats.max_restarts, stats.period) == (
        "stats", REST, 4, 7,
    )  # fmt: skip
    await started(nursery, sup, probe)
    with pytest.raises(RuntimeError, match="already running"):
        await sup.run()
    probe.crash("b")
    await trio.testing.wait_all_tasks_blocked()
    a, b = sup.statistics().children
    assert (a.id, a.running, a.generation, a.restarts, a.restart) == ("a", True, 1, 0, P)
    assert (b.id, b.running, b.generation, b.restarts, b.restart) == ("b", True, 2, 1, T)
    assert "stats" in repr(sup)
    await sup.stop()
    # A supervisor can run again (as when its parent restarts it); generations go on.
    await started(nursery, sup, probe)
    assert [c.generation for c in sup.statistics().children] == [2, 3]
    await sup.stop()


def test_invalid_configurations_are_rejected() -> None:
    async def noop(*, task_status: trio.TaskStatus[None]) -> None:
        await trio.lowlevel.checkpoint()
        task_status.started()

    with pytest.raises(ValueError, match="duplicate child ids \\['a'\\]"):
        Supervisor([ChildSpec(id="a", start=noop), ChildSpec(id="a", start=noop)])
    with pytest.raises(ValueError, match="shutdown"):
        ChildSpec(id="a", start=noop, shutdown=-1)
    with pytest.raises(ValueError, match="period"):
        Supervisor([], period=0)
    assert Supervisor([]).child_spec().shutdown == INFINITE == math.inf


def test_child_run_repr_names_child_and_generation() -> None:
    assert repr(ChildRun("store", 3)) == "<ChildRun 'store' gen=3>"


def test_restart_types() -> None:
    assert P.should_restart(abnormal=False)
    assert P.should_restart(abnormal=True)
    assert T.should_restart(abnormal=True)
    assert not T.should_restart(abnormal=False)
    assert not X.should_restart(abnormal=True)
    assert not X.should_restart(abnormal=False)
