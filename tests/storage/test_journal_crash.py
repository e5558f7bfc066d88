"""Crash test of the journal: SIGKILL a journaling store at random moments; nothing is lost.

Like ``test_crash_durability.py`` (whose fork server it reuses), with the production backend
mode: every put appends to ``sessions.journal``, and a small compaction threshold makes the
store fold the journal into ``sessions.json`` every few dozen writes, so kills land inside
appends, inside compactions and during start-up (replay, torn-tail cut-off, stale journal
removal). After each kill a fresh journaling backend must load every acknowledged session,
and nothing may ever be kept aside as unreadable.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
import trio

from agent_identity.storage import FileBackend

from . import test_crash_durability
from .test_crash_durability import ForkServer

KILLS = int(os.environ.get("AGENT_IDENTITY_CRASH_KILLS", "200")) // 2
COMPACT_MIN_BYTES = 4096
SCRIPT = Path(__file__).with_name("crash_writer_journal.py")


def load(data_dir: Path, seen: Counter[str] | None = None) -> set[str]:
    backend = FileBackend(data_dir, journal=True, compact_min_bytes=COMPACT_MIN_BYTES)
    sessions = set(trio.run(backend.load).sessions)
    if seen is not None:
        stats = backend.statistics()
        seen.update(torn_tails=stats.torn_tails, stale_journals=stats.stale_journals)
        seen.update(journal_frames=stats.journal_replayed)
    return sessions


def test_sigkill_never_loses_an_acknowledged_session_in_journal_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(20261130)
    data_dir = tmp_path / "identity"
    stderr_path = tmp_path / "writer-stderr.txt"
    monkeypatch.setattr(test_crash_durability, "SCRIPT", SCRIPT)
    monkeypatch.setenv("CRASH_COMPACT_MIN_BYTES", str(COMPACT_MIN_BYTES))
    acknowledged: set[str] = set()
    seen: Counter[str] = Counter()
    started = time.monotonic()
    server = ForkServer(data_dir, stderr_path)
    try:
        for run in range(KILLS):
            pid = server.start_writer(f"r{run}")
            if rng.random() < 0.1:
                time.sleep(rng.uniform(0.0, 0.02))  # during start-up
            else:
                server.read_until("ready")
                time.sleep(rng.uniform(0.01, 0.08))
            how = server.kill_writer(pid)
            assert how == signal.SIGKILL, (how, stderr_path.read_text())
            acknowledged.update(server.take_keys())
            if acknowledged:
                missing = acknowledged - load(data_dir, seen)
                assert not missing, f"run {run}: lost {len(missing)} acknowledged sessions"
            assert not list(data_dir.glob("*.corrupt-*")), f"run {run}: a file was unreadable"
    finally:
        server.close()
    print(  # noqa: T201 - the figures of the run, shown with -s
        f"\njournal crash test: {KILLS} kills in {time.monotonic() - started:.1f}s; "
        f"{len(acknowledged)} acknowledged sessions, all loaded; {dict(seen)}"
    )
    assert stderr_path.read_text() == ""
    assert len(acknowledged) > KILLS
    assert acknowledged <= load(data_dir)
