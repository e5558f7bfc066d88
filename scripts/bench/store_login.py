#!/usr/bin/env python3
"""Durable login latency: a SessionStore over the real FileBackend holding 10k sessions.

Usage::

    python scripts/bench/store_login.py            # full: 10k stored sessions, 5 rounds
    python scripts/bench/store_login.py --quick    # CI: 2k stored sessions, 1 round

Two backend modes are measured side by side, interleaved round by round:

* ``journal``: what production runs (``FileBackend.from_config``): a login appends one
  encrypted frame to ``sessions.journal`` and ``fdatasync``-s it;
* ``whole-file``: ``FileBackend(journal=False)``: every write rewrites all of
  ``sessions.json`` (encrypt, write, ``fsync``, rename, ``fsync`` the folder).

A login is acknowledged when its session is on disk: ``SessionStoreClient.put`` returns only
once the store's writer task has completed a ``backend.save`` covering the change (group
commit, see ``agent_identity.actors.session_store``). Each round:

1. fills a fresh data folder per mode (on the real file system, with ``fsync``) with ``--sessions``
   sessions of realistic size (a ~900-character id token, a refresh token, email, name),
   written by the backend itself;
2. starts a real ``SessionStore`` over a real ``FileBackend`` in that mode on it (the start
   loads and decrypts the file: reported as ``load_ms``);
3. logs in ``--logins`` new sessions one after another, timing each ``put``
   (``sequential``);
4. logs in as many again from ``--concurrency`` tasks at once (``concurrent``: group commit
   shares writes between them).

Output: a setup line, one line per mode and case per round (``"kind": "round"``), then one
line per mode and case with the medians over rounds of p50 and p99 (``"kind": "summary"``,
with the target ``p99 <= 20 ms`` and ``target_met``; the target applies to ``journal``, the
mode production runs). Exit status 1 only if the run breaks.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio
from _common import emit, emit_setup, latency_figures, median, parse_args, progress, session_record

from agent_identity.actors.session_store import SessionStore, SessionStoreClient
from agent_identity.storage import SESSIONS_FILE, FileBackend, SessionRecord, Snapshot

TARGET_P99_MS = 20.0
FULL = {"sessions": 10_000, "logins": 300, "rounds": 5}
QUICK = {"sessions": 2_000, "logins": 40, "rounds": 1}
DEFAULT_CONCURRENCY = 16


MODES = ("journal", "whole-file")


@dataclass
class Round:
    """What one round measured in one mode."""

    mode: str
    load_ms: float
    file_bytes: int
    sequential: list[float]
    concurrent: list[float]
    writes_sequential: int
    writes_concurrent: int
    backend: dict[str, int]


async def prefill(folder: Path, count: int, key: bytes) -> None:
    """Write ``count`` sessions into ``folder`` through the backend (its own file format)."""
    now = time.time()
    sessions = {r.session_key: r for r in (session_record(i, now) for i in range(count))}
    backend = FileBackend(folder, key=key)
    await backend.load()
    await backend.save(Snapshot(sessions=sessions))


async def timed_puts(client: SessionStoreClient, records: Sequence[SessionRecord]) -> list[float]:
    """``put`` each record in turn; the latency of each, in seconds."""
    latencies: list[float] = []
    for record in records:
        started = time.perf_counter()
        await client.put(record)
        latencies.append(time.perf_counter() - started)
    return latencies


async def concurrent_puts(
    client: SessionStoreClient, records: Sequence[SessionRecord], concurrency: int
) -> list[float]:
    """``put`` the records from ``concurrency`` tasks at once; every put's latency."""
    latencies: list[float] = []
    shares = [records[i::concurrency] for i in range(concurrency)]

    async def worker(share: Sequence[SessionRecord]) -> None:
        latencies.extend(await timed_puts(client, share))

    async with trio.open_nursery() as nursery:
        for share in shares:
            nursery.start_soon(worker, share)
    return latencies


async def one_round(folder: Path, mode: str, sessions: int, logins: int, concurrency: int) -> Round:
    key = secrets.token_bytes(32)
    await prefill(folder, sessions, key)
    file_bytes = (folder / SESSIONS_FILE).stat().st_size
    now = time.time()
    fresh = [session_record(sessions + i, now) for i in range(2 * logins)]
    backend = FileBackend(folder, key=key, journal=mode == "journal")
    store = SessionStore(backend)
    async with trio.open_nursery() as nursery:
        started = time.perf_counter()
        await nursery.start(store.run)
        load_ms = (time.perf_counter() - started) * 1e3
        client = store.client
        before = (await client.statistics()).writes
        sequential = await timed_puts(client, fresh[:logins])
        middle = (await client.statistics()).writes
        concurrent = await concurrent_puts(client, fresh[logins:], concurrency)
        after = (await client.statistics()).writes
        await store.stop()
    stats = backend.statistics()
    return Round(
        mode=mode,
        load_ms=load_ms,
        file_bytes=file_bytes,
        sequential=sequential,
        concurrent=concurrent,
        writes_sequential=middle - before,
        writes_concurrent=after - middle,
        backend={
            "session_writes": stats.session_writes,
            "journal_appends": stats.journal_appends,
        },
    )


def summarise(mode: str, case: str, rounds: list[Round], extra: dict[str, Any]) -> dict[str, Any]:
    mine = [r for r in rounds if r.mode == mode]
    figures = [
        latency_figures(r.sequential if case == "sequential" else r.concurrent) for r in mine
    ]
    p50 = median([float(f["p50_ms"]) for f in figures])
    p99 = median([float(f["p99_ms"]) for f in figures])
    return {
        "bench": "store_login",
        "kind": "summary",
        "mode": mode,
        "case": case,
        **extra,
        "rounds": len(mine),
        "p50_ms": round(p50, 3),
        "p99_ms": round(p99, 3),
        "p99_ms_per_round": [f["p99_ms"] for f in figures],
        "load_ms": round(median([r.load_ms for r in mine]), 1),
        "file_bytes": int(median([r.file_bytes for r in mine])),
        "target_p99_ms": TARGET_P99_MS,
        "target_met": p99 <= TARGET_P99_MS,
    }


async def run(args: argparse.Namespace) -> None:
    preset = QUICK if args.quick else FULL
    sessions = args.sessions or preset["sessions"]
    logins = args.logins or preset["logins"]
    rounds = args.rounds or preset["rounds"]
    concurrency = args.concurrency
    modes = [mode for mode in MODES if mode in args.modes.split(",")]
    emit_setup(
        "store_login",
        args,
        backend="FileBackend",
        modes=modes,
        stored_sessions=sessions,
        logins_per_case=logins,
        concurrency=concurrency,
        rounds=rounds,
        folder=os.fspath(args.dir or tempfile.gettempdir()),
    )
    results: list[Round] = []
    with tempfile.TemporaryDirectory(prefix="store-login-", dir=args.dir) as tmp:
        for number in range(rounds):
            for mode in modes:
                progress(f"round {number + 1}/{rounds}, {mode}: {sessions} stored sessions")
                folder = Path(tmp) / f"{mode}-{number}"
                result = await one_round(folder, mode, sessions, logins, concurrency)
                results.append(result)
                for case, samples, writes in (
                    ("sequential", result.sequential, result.writes_sequential),
                    ("concurrent", result.concurrent, result.writes_concurrent),
                ):
                    emit({
                        "bench": "store_login", "kind": "round", "mode": mode, "case": case,
                        "round": number, "stored_sessions": sessions, "store_writes": writes,
                        "load_ms": round(result.load_ms, 1), **latency_figures(samples),
                        "backend": result.backend,
                    })  # fmt: skip
    common = {"stored_sessions": sessions, "logins": logins}
    for mode in modes:
        emit(summarise(mode, "sequential", results, common))
        emit(summarise(mode, "concurrent", results, {**common, "concurrency": concurrency}))


def main(argv: Sequence[str] | None = None) -> int:
    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--sessions", type=int, help="sessions stored before the logins")
        parser.add_argument("--logins", type=int, help="logins per case per round")
        parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
        parser.add_argument("--dir", type=Path, help="where the data folders go (a real disk)")
        parser.add_argument(
            "--modes", default=",".join(MODES), help="backend modes, comma-separated"
        )

    args = parse_args(__doc__, argv, extra=extra)
    trio.run(run, args)  # a broken run raises: a traceback and exit status 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
