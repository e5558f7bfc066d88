"""``scripts/soak/crash_serve.py``: SIGKILL ``serve`` at random moments, nothing acknowledged lost.

The quick mode runs as CI runs it (20 kills of a real ``agent-identity serve`` subprocess
under logins, logouts and binding changes over the bridge). The checks the soak relies on are
also tested on their own, so a soak that could never report a loss cannot pass unnoticed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agent_identity.storage import FileBackend, SessionRecord, Snapshot

from .test_crash_support import load_script, run_script


@pytest.mark.slow
def test_quick_mode_loses_nothing_across_kills() -> None:
    run = run_script("crash_serve", "--quick")
    figures = run.summary
    assert run.returncode == 0, run.explain()
    assert figures["kills"] == 20
    # Real work between kills, and kills that cut requests off mid-flight.
    assert figures["acknowledged"] > figures["kills"], run.explain()
    assert figures["unanswered"] > 0, run.explain()
    assert figures["lost"] == 0, run.explain()
    assert figures["temp_files"] == 0, run.explain()
    assert figures["decrypt_failures"] == 0, run.explain()
    # Every start that was not itself killed came up, and the last stop was graceful.
    assert figures["restarts"] == figures["kills"] - figures["startup_kills"] + 1
    assert figures["final_exit_code"] == 0
    assert set(figures) >= {"kills", "acknowledged", "lost", "temp_files", "decrypt_failures"}
    assert figures["seconds"] > 0


def test_compare_reports_every_contradicted_acknowledgement() -> None:
    soak = load_script("crash_serve")
    unknown = soak.UNKNOWN
    kept = soak.Sender(name="a", sub="ua", session=True, bindings={"openai": "X", "github": None})
    gone = soak.Sender(name="b", sub="ub", session=False)
    vague = soak.Sender(name="c", sub="uc", session=unknown)
    vague.bindings = dict.fromkeys(vague.bindings, unknown)
    everything_kept = {kept.key: {"openai": "X"}}
    assert soak.compare([kept, gone, vague], {kept.key, vague.key}, everything_kept) == []
    # The session, its binding, an unset that came back, and a logout that came back.
    lost = soak.compare(
        [kept, gone, vague], {gone.key}, {kept.key: {"github": "Y"}, vague.key: {"openai": "Z"}}
    )
    assert len(lost) == 4, lost
    assert any("a: session" in line for line in lost)
    assert any("a: binding openai" in line for line in lost)
    assert any("a: binding github" in line for line in lost)
    assert any("b: session" in line for line in lost)
    assert not any(line.startswith("c:") for line in lost)  # nothing of c was acknowledged


def test_an_unanswered_operation_makes_only_its_fields_unknown() -> None:
    soak = load_script("crash_serve")
    sender = soak.Sender(name="a", sub="ua", session=True, bindings={"openai": "X", "github": None})
    soak.Driver.forget(sender, "set github CRASH_GH")
    assert sender.session is True
    assert sender.bindings == {"openai": "X", "github": soak.UNKNOWN}
    soak.Driver.forget(sender, "login")
    assert sender.session is soak.UNKNOWN
    assert sender.bindings["openai"] == "X"
    soak.Driver.forget(sender, "logout")
    assert set(sender.bindings.values()) == {soak.UNKNOWN}


async def test_the_decrypt_check_reports_a_damaged_store_and_leaves_it_alone(
    tmp_path: Path,
) -> None:
    soak = load_script("crash_serve")
    data = tmp_path / "data"
    backend = FileBackend(data)
    await backend.load()
    record = SessionRecord(
        session_key="agent:main:main:user:a", sub="ua", user_token="t" * 40,
        expires_at=4_000_000_000.0, login_at=1_800_000_000.0,
    )  # fmt: skip
    await backend.save(Snapshot(sessions={record.session_key: record}))
    snapshot = await soak.load_copy(data, tmp_path / "scratch")
    assert set(snapshot.sessions) == {record.session_key}
    # Flip the last byte of every store file: whatever format, it no longer authenticates.
    for path in data.iterdir():
        if path.name.startswith("sessions"):
            raw = bytearray(path.read_bytes())
            raw[-2] ^= 0xFF
            path.write_bytes(bytes(raw))
    before = sorted(p.name for p in data.iterdir())
    with pytest.raises(RuntimeError, match="kept aside"):
        await soak.load_copy(data, tmp_path / "scratch")
    assert sorted(p.name for p in data.iterdir()) == before  # only the copy was touched
    shutil.rmtree(tmp_path / "scratch")
