"""``scripts/soak/crash_actors.py``: crashes injected into each actor under load, and escalation.

The quick load mode and two escalations run as CI runs them. The seam, the schedule and the
parsing of the server's verdict are also tested on their own.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from agent_identity.kernel import Actor as KernelActor
from agent_identity.kernel import ActorStopped, Request, Supervisor
from agent_identity.storage import FileBackend, SessionRecord, Snapshot
from agent_identity.system.tree import ROOT_INTENSITY, SERVICES_INTENSITY

from .test_crash_support import load_script, run_script

ACTORS = ("session_store", "login_broker", "tip_refresher", "credential_vault", "approval_broker")


@pytest.mark.slow
def test_quick_load_mode_restarts_every_actor_and_keeps_serving() -> None:
    run = run_script("crash_actors", "--quick")
    figures = run.summary
    assert run.returncode == 0, run.explain()
    for name in ACTORS:
        assert figures["injected"][name] >= 1, run.explain()
        assert figures["restarts"][name] >= figures["injected"][name], run.explain()
    assert figures["not_injected"] == 0
    # Every restart decision was one of ours: no crash spread to a neighbour.
    assert figures["unexpected_restarts"] == 0, run.explain()
    assert figures["restart_decisions"] == sum(figures["injected"].values())
    # Callers felt the crashes (clear errors), and every one of them got through on a retry.
    assert figures["first_attempt_failures"] > 0, run.explain()
    assert figures["retried_ok"] > 0, run.explain()
    assert figures["errors_seen"], run.explain()
    assert figures["failed"] == figures["raised"] == figures["hung"] == 0, run.explain()
    assert figures["latency_max_ms"] < figures["deadline_ms"], run.explain()
    assert figures["final_failures"] == 0, run.explain()
    assert figures["all_running"] is True
    assert figures["lost"] == figures["temp_files"] == figures["decrypt_failures"] == 0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("target", "verdicts"),
    [
        ("session_store", ["supervisor 'root' gave up after child 'session_store'"]),
        (
            "credential_vault",
            [
                "supervisor 'services' gave up after child 'credential_vault'",
                "supervisor 'root' gave up after child 'services'",
            ],
        ),
    ],
)
def test_escalation_ends_serve_non_zero_with_the_reason_and_nothing_half_written(
    target: str, verdicts: list[str]
) -> None:
    run = run_script("crash_actors", "--escalate", "--target", target)
    figures = run.summary
    assert run.returncode == 0, run.explain()
    assert figures["exit_code"] == 1, run.explain()
    assert [v.split(" exited")[0] for v in figures["verdicts"]] == verdicts, run.explain()
    assert figures["reason"] == figures["verdicts"][-1]
    # The CLI's last word is one error line with the reason, not an uncaught traceback.
    assert figures["last_line"] == figures["error_line"]
    assert figures["error_line"] == f"error: the identity system stopped: {figures['reason']}"
    assert figures["acknowledged"] > 0, run.explain()
    assert figures["lost"] == figures["temp_files"] == figures["decrypt_failures"] == 0
    assert figures["torn_tails"] == 0
    assert figures["sockets_left"] == []


@dataclass(frozen=True, slots=True)
class Ping(Request[int]):
    n: int


class Echo(KernelActor[Ping]):
    async def handle(self, msg: Ping) -> None:
        await trio.lowlevel.checkpoint()
        msg.reply.set(msg.n)


@pytest.mark.parametrize("when", ["before", "after"])
async def test_the_seam_crashes_the_actor_and_its_supervisor_restarts_it(when: str) -> None:
    soak = load_script("crash_actors")
    echo = Echo(name="echo")
    picked: list[str] = []

    def decide(name: str, msg: object) -> str | None:
        picked.append(name)
        return when if isinstance(msg, Ping) and msg.n == 2 else None

    soak.wrap_handle("echo", echo, decide)
    supervisor = Supervisor([echo.child_spec("echo")], max_restarts=1, period=60, name="sup")
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        assert await echo.address.ask(Ping, 1) == 1
        if when == "before":
            # The message was never handled: its caller is failed, not left waiting.
            with pytest.raises(ActorStopped):
                await echo.address.ask(Ping, 2)
        else:
            # The handler ran (and answered) before the crash.
            assert await echo.address.ask(Ping, 2) == 2
        await trio.testing.wait_all_tasks_blocked()  # the supervisor's restart is done
        assert echo.statistics().restarts == 1
        # The restarted actor still wears the seam (it is on the instance) and serves.
        assert await echo.address.ask(Ping, 3) == 3
        await supervisor.stop()
    assert picked == ["echo"] * 3
    assert supervisor.statistics().restarts == 1


def test_schedules_stay_within_every_supervisors_intensity() -> None:
    soak = load_script("crash_actors")
    for seed in range(20):
        for quick, duration in ((True, 10.0), (False, 120.0)):
            quotas = soak.quotas_for(quick, duration)
            schedule = soak.CrashSchedule(soak.random.Random(seed), quotas, duration, 0.0)
            plan: dict[str, list[float]] = schedule._pending
            assert sum(len(v) for v in plan.values()) == sum(quotas.values())
            for supervisor, (max_restarts, period) in (
                ("root", ROOT_INTENSITY),
                ("services", SERVICES_INTENSITY),
            ):
                times = sorted(
                    t for name, ts in plan.items() for t in ts
                    if soak.SUPERVISOR_OF[name] == supervisor
                )  # fmt: skip
                for i, t in enumerate(times):
                    assert len([u for u in times[i:] if u - t < period]) < max_restarts
            every = sorted(t for ts in plan.values() for t in ts)
            assert all(b - a >= soak.MIN_GAP for a, b in itertools.pairwise(every))
            assert all(t <= 0.8 * duration for t in every)
    full = soak.quotas_for(False, 120.0)
    assert all(full[name] >= 2 for name in ACTORS)


def test_verdicts_are_read_in_order_with_the_cli_error_line() -> None:
    soak = load_script("crash_actors")
    stderr = (
        "WARNING x: restarting\n"
        "ERROR agent_identity.kernel: supervisor 'services': child 'credential_vault' exited\n"
        "  raise error from cause\n"
        "SupervisorGaveUp: supervisor 'services' gave up after child 'credential_vault' exited: "
        "more than 5 restart(s) within 30s\n"
        "SupervisorGaveUp: supervisor 'services' gave up after child 'credential_vault' exited: "
        "more than 5 restart(s) within 30s\n"
        "error: the identity system stopped: supervisor 'root' gave up after child 'services' "
        "exited: more than 3 restart(s) within 30s\n"
    )
    verdicts, error_line = soak._verdicts(stderr)
    assert [v.split("'")[1] for v in verdicts] == ["services", "root"]
    assert error_line is not None
    assert error_line.startswith("error: the identity system stopped: supervisor 'root'")
    assert soak._verdicts("Traceback (most recent call last):\n  boom\n") == ([], None)


async def test_the_disk_check_counts_lost_logins_and_undone_logouts(tmp_path: Path) -> None:
    soak = load_script("crash_actors")
    data = tmp_path / "data"
    backend = FileBackend(data)
    await backend.load()
    kept = _record("agent:main:main:user:kept")
    back = _record("agent:main:main:user:back")
    await backend.save(Snapshot(sessions={kept.session_key: kept, back.session_key: back}))
    expected: dict[str, Any] = {kept.session_key: True, back.session_key: True}
    check = await soak.check_disk(data, tmp_path / "scratch", expected)
    assert (check.lost, check.temp_files, check.decrypt_failures) == (0, 0, 0)
    expected = {kept.session_key: True, back.session_key: False, "agent:main:main:user:x": True}
    check = await soak.check_disk(data, tmp_path / "scratch", expected)
    assert check.lost == 2, check.problems
    (data / ".sessions.json.0123456789ab.tmp").write_bytes(b"{")
    check = await soak.check_disk(data, tmp_path / "scratch", {})
    assert check.temp_files == 1


def _record(key: str) -> SessionRecord:
    return SessionRecord(
        session_key=key, sub=key, user_token="t" * 40, expires_at=4e9, login_at=1.8e9
    )
