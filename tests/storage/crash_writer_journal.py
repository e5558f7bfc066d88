"""Crash-test child for the journal: ``crash_writer.py`` with a journaling FileBackend.

Usage: ``python crash_writer_journal.py DATA_DIR WORKERS``, with the same commands on stdin as
``crash_writer.py`` (``run RUN_ID`` forks a writer and prints ``pid <pid>``; ``reap PID``
waits for it and prints ``reaped <pid> <signal or -exit code>``); each writer prints every
session key the moment its ``put`` returned. The store appends to ``sessions.journal`` and
compacts it into ``sessions.json`` whenever it outgrows ``$CRASH_COMPACT_MIN_BYTES`` (small,
so kills land in compactions too). Standalone (the test folder is not a package a script can
import from), so the few lines it shares with ``crash_writer.py`` are repeated.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import trio

from agent_identity.actors.session_store import SessionStore, SessionStoreClient
from agent_identity.storage import FileBackend, SessionRecord


def emit(line: str) -> None:
    # Unbuffered, one write per line: whatever was written before SIGKILL is in the pipe.
    os.write(1, f"{line}\n".encode())


async def writer(client: SessionStoreClient, run_id: str, worker: int) -> None:
    n = 0
    while True:
        key = f"{run_id}-{worker}-{n}"
        now = time.time()
        record = SessionRecord(
            session_key=key, sub=f"u{worker}", user_token=f"tok-{key}",
            expires_at=now + 86_400, login_at=now,
        )  # fmt: skip
        await client.put(record)
        emit(key)
        n += 1


async def serve(data_dir: Path, run_id: str, workers: int, compact_min_bytes: int) -> None:
    backend = FileBackend(data_dir, journal=True, compact_min_bytes=compact_min_bytes)
    store = SessionStore(backend)
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        emit("ready")
        for worker in range(workers):
            nursery.start_soon(writer, store.client, run_id, worker)


def main() -> None:
    data_dir, workers = Path(sys.argv[1]), int(sys.argv[2])
    compact = int(os.environ["CRASH_COMPACT_MIN_BYTES"])
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "run":
            pid = os.fork()
            if pid:
                emit(f"pid {pid}")
                continue
            try:
                trio.run(serve, data_dir, argument, workers, compact)
            finally:
                os._exit(1)  # never fall back into the fork server's loop
        elif command == "reap":
            _, status = os.waitpid(int(argument), 0)
            code = os.WTERMSIG(status) if os.WIFSIGNALED(status) else -os.WEXITSTATUS(status)
            emit(f"reaped {argument} {code}")


if __name__ == "__main__":
    main()
