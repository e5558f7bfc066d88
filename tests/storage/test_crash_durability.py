"""Crash test: SIGKILL a real store at random moments; every acknowledged session survives.

A writer process (forked by ``crash_writer.py``) writes sessions through the real actor and
file backend and prints each key once ``put`` has returned. The test kills it with SIGKILL
after a random short delay, then checks that ``sessions.json`` decrypts and holds every key
printed so far, and starts the next writer on the same data folder (which loads the previous
state, cleans up temp files, and keeps writing, so the file keeps growing). Most kills land
while writes are in flight; some land during start-up (loading, temp-file cleanup, key
creation).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import trio

from agent_identity.storage import FileBackend

from .helpers import decrypt_sessions

KILLS = int(os.environ.get("AGENT_IDENTITY_CRASH_KILLS", "200"))
WORKERS = 4
EARLY_KILL_RATE = 0.1
SCRIPT = Path(__file__).with_name("crash_writer.py")


class ForkServer:
    """Talks to ``crash_writer.py``: start a writer, kill it, collect what it printed."""

    def __init__(self, data_dir: Path, stderr_path: Path) -> None:
        self._stderr = stderr_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, str(SCRIPT), str(data_dir), str(WORKERS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self.lines: list[str] = []

    def send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{command}\n".encode())
        self.process.stdin.flush()

    def read_until(self, prefix: str) -> str:
        """Read lines (keeping them) until one starts with ``prefix``; return that one."""
        assert self.process.stdout is not None
        while True:
            line = self.process.stdout.readline().decode()
            assert line, "the fork server died; see its stderr"
            line = line.strip()
            if line.startswith(prefix):
                return line
            self.lines.append(line)

    def start_writer(self, run_id: str) -> int:
        self.send(f"run {run_id}")
        return int(self.read_until("pid ").split()[1])

    def kill_writer(self, pid: int) -> int:
        """SIGKILL the writer; return how it ended (the signal number, or minus its exit code)."""
        os.kill(pid, signal.SIGKILL)
        self.send(f"reap {pid}")
        return int(self.read_until(f"reaped {pid} ").split()[2])

    def take_keys(self) -> list[str]:
        keys = [line for line in self.lines if line != "ready"]
        self.lines = []
        return keys

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._stderr.close()


def test_sigkill_at_random_moments_never_loses_an_acknowledged_session(tmp_path: Path) -> None:
    rng = random.Random(20261129)
    data_dir = tmp_path / "identity"
    stderr_path = tmp_path / "writer-stderr.txt"
    acknowledged: set[str] = set()
    early_kills = 0
    mid_write = 0  # kills that left a temp file: the writer was cut off inside a write
    started = time.monotonic()
    server = ForkServer(data_dir, stderr_path)
    try:
        for run in range(KILLS):
            pid = server.start_writer(f"r{run}")
            if rng.random() < EARLY_KILL_RATE:
                # Kill during start-up: loading, temp-file cleanup, key creation.
                early_kills += 1
                time.sleep(rng.uniform(0.0, 0.02))
            else:
                server.read_until("ready")
                time.sleep(rng.uniform(0.01, 0.08))
            how = server.kill_writer(pid)
            assert how == signal.SIGKILL, (how, stderr_path.read_text())
            acknowledged.update(server.take_keys())
            mid_write += any(p.name.endswith(".tmp") for p in data_dir.iterdir())
            if acknowledged:
                missing = acknowledged - decrypt_sessions(data_dir).keys()
                assert not missing, f"run {run}: lost {len(missing)} acknowledged sessions"
            assert not list(data_dir.glob("*.corrupt-*")), f"run {run}: a file was unreadable"
    finally:
        server.close()
    elapsed = time.monotonic() - started
    print(  # noqa: T201 - the figures of the run, shown with -s
        f"\ncrash test: {KILLS} kills ({early_kills} during start-up, {mid_write} inside a "
        f"write) in {elapsed:.1f}s; {len(acknowledged)} acknowledged sessions, all on disk"
    )
    assert stderr_path.read_text() == ""
    assert len(acknowledged) > KILLS  # the writers did real work between kills
    # A last load cleans up after the last kill and still has everything.
    loaded = trio.run(FileBackend(data_dir).load)
    assert acknowledged <= loaded.sessions.keys()
    assert not [p for p in data_dir.iterdir() if p.name.endswith(".tmp")]
