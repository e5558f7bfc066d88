"""Crash-test child: writes sessions through the real store actor until it is killed.

Usage: ``python crash_writer.py DATA_DIR WORKERS``, driven by commands on stdin. The process
imports everything once and then acts as a fork server (so 200 runs do not pay 200 interpreter
start-ups):

* ``run RUN_ID``: fork a writer and print ``pid <pid>``. The writer starts a
  :class:`SessionStore` over a :class:`FileBackend` in ``DATA_DIR`` (key in ``store.key``),
  prints ``ready``, and runs ``WORKERS`` tasks that each put sessions
  ``RUN_ID-<worker>-<n>`` in a loop, printing each key the moment its ``put`` returns (the
  change is durable). The parent holds the store to every key it read.
* ``reap PID``: wait for that writer to end (the parent SIGKILLs it) and print
  ``reaped <pid> <signal or -exit code>``. Everything the writer printed is in the pipe before
  this line, because the writer is dead by then.

Every line is one ``write`` of less than ``PIPE_BUF`` bytes, so lines of the fork server and
of a writer never interleave mid-line.
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
    # Unbuffered: whatever was written before SIGKILL is in the pipe.
    os.write(1, f"{line}\n".encode())


async def writer(client: SessionStoreClient, run_id: str, worker: int) -> None:
    n = 0
    while True:
        key = f"{run_id}-{worker}-{n}"
        now = time.time()
        await client.put(
            SessionRecord(
                session_key=key,
                sub=f"u{worker}",
                user_token=f"tok-{key}",
                expires_at=now + 86_400,
                login_at=now,
            )
        )
        emit(key)
        n += 1


async def serve(data_dir: Path, run_id: str, workers: int) -> None:
    store = SessionStore(FileBackend(data_dir))
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        emit("ready")
        for worker in range(workers):
            nursery.start_soon(writer, store.client, run_id, worker)


def run_writer(data_dir: Path, run_id: str, workers: int) -> None:
    pid = os.fork()
    if pid:
        emit(f"pid {pid}")
        return
    try:
        trio.run(serve, data_dir, run_id, workers)
    finally:
        os._exit(1)  # never fall back into the fork server's loop


def reap(pid: int) -> None:
    _, status = os.waitpid(pid, 0)
    code = os.WTERMSIG(status) if os.WIFSIGNALED(status) else -os.WEXITSTATUS(status)
    emit(f"reaped {pid} {code}")


def main() -> None:
    data_dir, workers = Path(sys.argv[1]), int(sys.argv[2])
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "run":
            run_writer(data_dir, argument, workers)
        elif command == "reap":
            reap(int(argument))


if __name__ == "__main__":
    main()
