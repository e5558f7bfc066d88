"""Property tests: random exit sequences against a reference model of the supervisor.

Each example builds a supervisor with three children of random restart types and a
random strategy and intensity, then applies a random sequence of (advance the
clock, make one running child crash or exit). After every step the real
supervisor must agree with a small pure model on: which children run, how many
restarts happened, and whether it gave up, exactly at the step where the model
exceeds the intensity. No child may ever run twice at once.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import hypothesis.strategies as st
import trio
import trio.testing
from hypothesis import given, settings

from agent_identity.kernel import (
    ChildSpec,
    Restart,
    Strategy,
    Supervisor,
    SupervisorGaveUp,
)

IDS = ("a", "b", "c")


class BoomError(Exception):
    pass


@dataclass
class Model:
    """What OTP semantics say should happen (see the Supervisor module docstring)."""

    strategy: Strategy
    types: dict[str, Restart]
    max_restarts: int
    period: float
    removed: set[str] = field(default_factory=set)
    running: set[str] = field(default_factory=lambda: set(IDS))
    times: list[float] = field(default_factory=list)
    restarts: int = 0
    gave_up: bool = False

    def exit(self, child: str, *, abnormal: bool, now: float) -> None:
        self.running.discard(child)
        kind = self.types[child]
        if not kind.should_restart(abnormal=abnormal):
            if kind is Restart.TEMPORARY:
                self.removed.add(child)
            return
        self.times = [t for t in self.times if now - t < self.period] + [now]
        if len(self.times) > self.max_restarts:
            self.gave_up = True
            self.running.clear()
            return
        self.restarts += 1
        live = [c for c in IDS if c not in self.removed]
        if self.strategy is Strategy.ONE_FOR_ONE:
            affected = [child]
        elif self.strategy is Strategy.ONE_FOR_ALL:
            affected = live
        else:
            affected = live[live.index(child) :]
        for other in affected:
            if self.types[other] is Restart.TEMPORARY:
                self.removed.add(other)
                self.running.discard(other)
            else:
                self.running.add(other)


class Children:
    """Probe children: obey stop requests at once; crash or exit on command."""

    def __init__(self) -> None:
        self.wake: dict[str, trio.Event] = {}
        self.command: dict[str, str] = {}
        self.alive: dict[str, int] = defaultdict(int)
        self.overlaps = 0

    def spec(self, child_id: str, restart: Restart) -> ChildSpec:
        async def start(*, task_status: trio.TaskStatus[None]) -> None:
            self.alive[child_id] += 1
            if self.alive[child_id] > 1:
                self.overlaps += 1
            try:
                wake = self.wake[child_id] = trio.Event()
                task_status.started()
                await wake.wait()
                if self.command.pop(child_id) == "crash":
                    raise BoomError(child_id)
            finally:
                self.alive[child_id] -= 1

        return ChildSpec(
            id=child_id, start=start, restart=restart, stop=lambda: self.order(child_id, "stop")
        )

    def order(self, child_id: str, command: str) -> None:
        self.command[child_id] = command
        self.wake[child_id].set()


Step = tuple[float, int, str]

steps_strategy = st.lists(
    st.tuples(
        st.sampled_from([0.0, 0.5, 1.0, 2.5, 6.0]),
        st.integers(min_value=0, max_value=2),
        st.sampled_from(["crash", "crash", "exit"]),
    ),
    max_size=14,
)


async def scenario(
    clock: trio.testing.MockClock,
    strategy: Strategy,
    types: dict[str, Restart],
    max_restarts: int,
    period: float,
    steps: list[Step],
) -> None:
    children = Children()
    model = Model(strategy, types, max_restarts, period)
    sup = Supervisor(
        [children.spec(c, types[c]) for c in IDS],
        strategy=strategy,
        max_restarts=max_restarts,
        period=period,
    )
    escalated: list[SupervisorGaveUp] = []

    async def supervise() -> None:
        try:
            await sup.run()
        except SupervisorGaveUp as exc:
            escalated.append(exc)
        await trio.lowlevel.checkpoint()  # flake8-async: the except path has none

    async with trio.open_nursery() as nursery:
        nursery.start_soon(supervise)
        await trio.testing.wait_all_tasks_blocked()
        assert {c.id for c in sup.statistics().children if c.running} == set(IDS)
        for advance, index, action in steps:
            clock.jump(advance)
            child = IDS[index]
            if child not in model.running:
                continue
            children.order(child, action)
            model.exit(child, abnormal=action == "crash", now=trio.current_time())
            await trio.testing.wait_all_tasks_blocked()
            assert children.overlaps == 0
            if model.gave_up:
                break
            stats = sup.statistics()
            assert stats.restarts == model.restarts
            assert {c.id for c in stats.children if c.running} == model.running
            assert [c.id for c in stats.children] == [c for c in IDS if c not in model.removed]
            assert escalated == []
        if model.gave_up:
            assert len(escalated) == 1
            error = escalated[0]
            assert sup.statistics().restarts == model.restarts
            # Chained from the last child's error (none for a normal exit).
            assert isinstance(error.__cause__, BoomError | None)
        else:
            await sup.stop()
        assert not any(children.alive.values())
        assert not sup.statistics().running


@settings(max_examples=80, deadline=None)
@given(
    strategy=st.sampled_from(Strategy),
    types=st.tuples(*[st.sampled_from(Restart)] * 3),
    max_restarts=st.integers(min_value=0, max_value=4),
    period=st.sampled_from([1.0, 3.0, 10.0]),
    steps=steps_strategy,
)
def test_random_exit_sequences_match_the_model(
    strategy: Strategy,
    types: tuple[Restart, Restart, Restart],
    max_restarts: int,
    period: float,
    steps: list[Step],
) -> None:
    clock = trio.testing.MockClock()
    trio.run(
        scenario,
        clock,
        strategy,
        dict(zip(IDS, types, strict=True)),
        max_restarts,
        period,
        steps,
        clock=clock,
    )
