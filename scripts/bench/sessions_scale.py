#!/usr/bin/env python3
"""100k logged-in sessions: memory per session, TIP refresh smoothness, ``/token`` latency.

Usage::

    python scripts/bench/sessions_scale.py            # full: 100k sessions
    python scripts/bench/sessions_scale.py --quick    # CI: 3k sessions, short timelines

Three measurements, each in fresh child processes (one heap never colours another's figures):

``memory``
    A real ``SessionStore`` loads N sessions (~900-character id tokens, refresh tokens)
    from the production ``FileBackend`` (journal mode), then a real ``TipRefresher`` mints and
    caches a TIP for each (~700-character tokens, from an in-process minter). Reported per
    session, for the store and the TIP cache: the bytes traced by ``tracemalloc`` (one child)
    and the growth of RSS (another child, without tracemalloc), each also *beyond the token
    bytes themselves* (the characters of the id, refresh and TIP tokens).
``refresh``
    The TIP refresher over simulated hours (Trio's ``MockClock``, autojump) with an
    in-process minter that takes ``--mint-latency`` simulated seconds, as the actor tests do.
    TIPs live 1 h and are refreshed after 75-85 % of it (the default policy): every 48 min
    on average. ``steady``: N logins spread over those 48 min, measured over
    ``steady_hours`` once the first refreshes have all come due (users come and go).
    ``burst``: N logins within a minute (a restart with everyone active), measured over the
    first refresh wave. Reported: refresh mints per simulated second (peak, mean over the
    window, long-run mean), the refresher's timer tasks and all tasks alive in the run.
``token``
    ``GET /token`` answered in process by ``LocalServerApp`` over a real ``TipRefresher``
    (warm cache) in three cases: ``small`` (100 sessions held and asked for at random),
    ``large`` (N held, all N asked for at random: the target's case) and ``large_hot`` (N
    held, 100 of them asked for: what holding N costs, without the memory traffic of
    serving N distinct sessions). The app gets a view of a system with the two parts
    ``/token`` reads (config, TIP client): the hot path is production's (route, one actor
    hop, cached body). Requests are timed by the wall clock and by the thread's CPU time
    (``cpu_`` figures: minus the time other processes held the core).

    The cases are measured side by side, so that they meet the same background load: one
    child per case (its own heap) is set up and warmed the same way (every session it will
    be asked for asked once, then 2,000 requests, then a full ``gc.collect()``), then the
    children take turns serving ``--slice`` requests each (the order rotating every turn;
    each turn starts with 100 untimed requests, as a child that waited for its turn has
    cold CPU caches) until each has served ``--requests`` in the round. Figures are per
    round; the summary takes the median over rounds. Each child reports the garbage
    collections that ran while it was timed (``gc_collections``, by generation) and what
    its collector tracks (``gc_tracked``), so unequal GC work shows.

Output: a setup line, then JSON lines of ``"kind"`` ``memory``, ``refresh`` (per scenario),
``token_setup`` (per case), ``token`` (per round and case) and ``token_summary``, with
``target_met`` where the issue sets one (steady refresh: peak <= 2x mean; token: p99 of
``large`` within 20 % of ``small``'s, by CPU time in ``target_met_cpu``). Exit status 1 if
a run breaks.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gc
import json
import os
import random
import resource
import secrets
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import _common as common
import trio
import trio.testing

from agent_identity.actors.session_store import SessionStore
from agent_identity.actors.tip_messages import TipInfo, TipRefresherClient
from agent_identity.actors.tip_mint import MintedTip
from agent_identity.actors.tip_refresher import TipRefresher
from agent_identity.actors.tip_schedule import RefreshPolicy
from agent_identity.config import PluginConfig
from agent_identity.storage import FileBackend, MemoryBackend, SessionRecord, Snapshot
from agent_identity.system import Identity
from agent_identity.system.local_server import LocalServerApp
from agent_identity.transports.http_messages import HttpRequest

HOUR = 3600.0
T0 = 1_800_000_000.0
SMALL = 100
FULL = {"sessions": 100_000, "rounds": 5, "requests": 100_000, "steady_hours": 1.0}
QUICK = {"sessions": 3_000, "rounds": 1, "requests": 5_000, "steady_hours": 0.25}
#: Requests a token child serves per turn (about 40 ms): the cases take turns this often.
SLICE = 1_000
#: Requests after the per-session warm-up, to warm the code paths too.
CODE_WARM_UP = 2_000
#: Untimed requests at the start of each turn: a child that just waited for its turn finds
#: its data evicted from the CPU caches by the other children (its first requests take up
#: to 6x as long), which would put a cost on the p99 that a busy server does not pay.
TURN_WARM_UP = 100
TOKEN_TARGET_RATIO = 1.2
SMOOTHNESS_TARGET = 2.0


class RunBrokenError(Exception):
    """The system did not behave as the benchmark needs: the figures would be wrong."""


def seeded(seed: int) -> random.Random:
    """A seeded generator for jitter and picks (reproducible runs; nothing secret)."""
    return random.Random(seed)  # noqa: S311


def logged_in(n: int, now: float) -> dict[str, SessionRecord]:
    """``n`` sessions that logged in at ``now`` (id tokens valid for 30 days)."""
    records = (common.session_record(i, now, lifetime=30 * 86_400) for i in range(n))
    return {record.session_key: record for record in records}


@dataclass
class Minter:
    """Mints TIPs like the sandbox (sub kept, ``act`` set, 1 h), keeping nothing per session."""

    wall: Any
    latency: float = 0.0
    minted: int = 0
    token_chars: int = 0
    running: int = 0
    peak: int = 0
    #: When each refresh (a mint for a user minted for before) was asked for, on Trio's
    #: clock, if a list is given (the subjects seen are kept then: only in the simulation).
    refreshes: list[float] | None = None
    seen: set[str] = field(default_factory=set)

    async def mint(self, user_token: str, workload: str | None) -> MintedTip:
        payload = user_token.split(".")[1]
        sub = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"]
        if self.refreshes is not None:
            if sub in self.seen:
                self.refreshes.append(trio.current_time())
            self.seen.add(sub)
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await trio.sleep(self.latency)  # 0: a checkpoint
            now = int(self.wall())
            claims = {"iss": "https://auth.id.example.com/workloadpool/wp-1", "sub": sub,
                      "aud": ["wp-1"], "iat": now, "exp": now + int(HOUR),
                      "act": {"sub": workload or "openclaw-agent"}}  # fmt: skip
            token = common.fake_jwt(claims)
            self.minted += 1
            self.token_chars += len(token)
            return MintedTip(token, float(now + HOUR))
        finally:
            self.running -= 1


async def fill_tips(tips: TipRefresherClient, keys: list[str], concurrency: int = 64) -> None:
    async def worker(share: list[str]) -> None:
        for key in share:
            if not isinstance(await tips.get_tip(key), TipInfo):
                raise RunBrokenError(f"no TIP for {key}")

    async with trio.open_nursery() as nursery:
        for i in range(concurrency):
            nursery.start_soon(worker, keys[i::concurrency])


def rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:  # noqa: PTH123 - one small read
        return int(statm.read().split()[1]) * resource.getpagesize()


async def memory_child(n: int, trace: bool) -> dict[str, Any]:
    now = time.time()
    key = secrets.token_bytes(32)
    with tempfile.TemporaryDirectory(prefix="scale-mem-") as tmp:
        folder = Path(tmp)
        records = logged_in(n, now)
        token_chars = sum(len(r.user_token) + len(r.refresh_token or "") for r in records.values())
        prefill = FileBackend(folder, key=key, journal=True)
        await prefill.load()
        await prefill.save(Snapshot(sessions=records))
        del records, prefill
        gc.collect()
        if trace:
            tracemalloc.start()
        measure = tracemalloc.get_traced_memory if trace else lambda: (rss_bytes(), 0)
        base = measure()[0]
        store = SessionStore(FileBackend(folder, key=key, journal=True))
        minter = Minter(wall=time.time)
        refresher = TipRefresher(minter, store.client, rng=seeded(1))
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            gc.collect()
            loaded = measure()[0]
            await nursery.start(refresher.run)
            await fill_tips(refresher.client, [common.session_key(i) for i in range(n)])
            gc.collect()
            cached = measure()[0]
            stats = await refresher.client.statistics()
            await refresher.stop()
            await store.stop()
    unit = "traced" if trace else "rss"
    store_bytes, tip_bytes = (loaded - base) / n, (cached - loaded) / n
    return {
        "bench": "sessions_scale", "kind": "memory", "measure": unit, "sessions": n,
        "store_bytes_per_session": round(store_bytes),
        "store_token_bytes_per_session": round(token_chars / n),
        "store_overhead_per_session": round(store_bytes - token_chars / n),
        "tip_cache_bytes_per_session": round(tip_bytes),
        "tip_token_bytes_per_session": round(minter.token_chars / n),
        "tip_cache_overhead_per_session": round(tip_bytes - minter.token_chars / n),
        "total_overhead_per_session": round(
            store_bytes + tip_bytes - (token_chars + minter.token_chars) / n
        ),
        "tips_cached": stats.cached, "timer_tasks": stats.timer_tasks,
    }  # fmt: skip


async def refresh_child(
    n: int, scenario: str, login_span: float, window: float, latency: float
) -> dict[str, Any]:
    def wall() -> float:
        return T0 + trio.current_time()

    store = SessionStore(MemoryBackend(Snapshot(logged_in(n, wall())), now=wall), now=wall)
    refresh_times: list[float] = []
    minter = Minter(wall=wall, latency=latency, refreshes=refresh_times)
    policy = RefreshPolicy()
    low, high = policy.refresh_fraction
    settle = (high - low) * HOUR if scenario == "steady" else 0.0
    refresher = TipRefresher(minter, store.client, policy=policy, rng=seeded(7), wall=wall)
    tasks_seen = 0
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        await nursery.start(refresher.run)
        tips = refresher.client
        start = trio.current_time()
        async with trio.open_nursery() as logins:
            for i in range(n):
                await trio.sleep_until(start + i * login_span / n)
                logins.start_soon(tips.get_tip, common.session_key(i))
        end = start + login_span + settle + window
        await trio.sleep_until(end - window / 2)
        tasks_seen = count_tasks()
        await trio.sleep_until(end)
        stats = await tips.statistics()
        nursery.cancel_scope.cancel()
    refreshes = sorted(t - start for t in refresh_times)
    if scenario == "steady":
        # After the logins, once the first refreshes of the first logins have all come due:
        # from then on every session refreshes once per (jittered) refresh interval.
        lo, hi = login_span + settle, login_span + settle + window
    else:
        lo, hi = refreshes[0], refreshes[min(n, len(refreshes)) - 1]  # the first wave
    per_second = Counter(int(t) for t in refreshes if lo <= t < hi)
    seconds = max(1, int(hi) - int(lo))
    mean = sum(per_second.values()) / seconds
    peak = max(per_second.values(), default=0)
    long_run = n / (HOUR * (low + high) / 2)  # every session once per refresh interval
    return {
        "bench": "sessions_scale", "kind": "refresh", "scenario": scenario, "sessions": n,
        "login_span_s": login_span, "window_s": [round(lo), round(hi)],
        "mint_latency_s": latency, "mints": minter.minted + minter.running,
        "refreshes_in_window": sum(per_second.values()),
        "mean_per_s": round(mean, 2), "peak_per_s": peak,
        "peak_over_mean": round(peak / mean, 3) if mean else None,
        "long_run_mean_per_s": round(long_run, 2),
        "peak_over_long_run_mean": round(peak / long_run, 3),
        "timer_tasks": stats.timer_tasks, "tasks_in_run": tasks_seen,
        "max_concurrent_mints": minter.peak,
        "target_peak_over_mean": SMOOTHNESS_TARGET if scenario == "steady" else None,
        "target_met": (peak <= SMOOTHNESS_TARGET * mean) if scenario == "steady" else None,
    }  # fmt: skip


def count_tasks() -> int:
    """Every task alive in this Trio run (the refresher must not have one per session)."""
    root = trio.lowlevel.current_root_task()
    seen, stack = 0, [] if root is None else [root]
    while stack:
        task = stack.pop()
        seen += 1
        stack.extend(t for nursery in task.child_nurseries for t in nursery.child_tasks)
    return seen


async def token_child(n: int, requests: int, asked: int) -> None:
    """Serve ``/token`` in turns on stdin's commands (``run <count>``, ``figures``, ``stop``).

    Prints one JSON line when ready (after the warm-up) and one per command.
    """
    store = SessionStore(MemoryBackend(Snapshot(logged_in(n, time.time()))))
    refresher = TipRefresher(Minter(wall=time.time), store.client, rng=seeded(3))
    rng = seeded(11)
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        await nursery.start(refresher.run)
        await fill_tips(refresher.client, [common.session_key(i) for i in range(n)])
        # What LocalServerApp reads for /token of a running system: its config and TIP client.
        view = SimpleNamespace(plugin=PluginConfig(), tips=refresher.client)
        app = LocalServerApp(cast("Identity", view))

        def token(index: int) -> HttpRequest:
            return HttpRequest("GET", "/token", {"session": common.session_key(index)}, {}, b"")

        picks = [token(rng.randrange(asked)) for _ in range(requests)]
        # Warm: every session asked for once (each case's caches then hold what it serves,
        # as the small case's do after a few requests), then the code.
        for request in [token(i) for i in range(asked)] + picks[: min(CODE_WARM_UP, requests)]:
            await app(request)
        gc.collect()
        say({"ready": True, "gc_tracked": len(gc.get_objects()), "rss_mb": rss_bytes() >> 20})
        collections = [0, 0, 0]

        def count_collection(phase: str, info: dict[str, int]) -> None:
            if phase == "stop":
                collections[info["generation"]] += 1

        wall, cpu = time.perf_counter, time.thread_time
        latencies: list[float] = []
        cpu_times: list[float] = []
        served = 0
        while command := (await trio.to_thread.run_sync(sys.stdin.readline)).split():
            if command[0] == "run":
                for i in range(TURN_WARM_UP):
                    await app(picks[(served + i) % requests])
                served += TURN_WARM_UP
                batch = [picks[(served + i) % requests] for i in range(int(command[1]))]
                served += len(batch)
                gc.callbacks.append(count_collection)
                for request in batch:
                    started, started_cpu = wall(), cpu()
                    response = await app(request)
                    ended_cpu = cpu()
                    ended = wall()
                    cpu_times.append(ended_cpu - started_cpu)
                    latencies.append(ended - started)
                    if response.status != 200:
                        raise RunBrokenError(f"/token answered {response.status}")
                gc.callbacks.remove(count_collection)
                say({"served": len(batch)})
            elif command[0] == "figures":
                say({"sessions": n,
                     **common.latency_figures(latencies, unit="us"),
                     **common.latency_figures(cpu_times, unit="us", prefix="cpu_"),
                     "gc_collections": collections,
                     "gc_tracked": len(gc.get_objects())})  # fmt: skip
                latencies, cpu_times, collections[:] = [], [], [0, 0, 0]
            else:
                break
        nursery.cancel_scope.cancel()


def say(record: dict[str, Any]) -> None:
    """A token child's answer to its parent: one JSON line on stdout."""
    print(json.dumps(record), flush=True)


class TokenChild:
    """A token child process: set up and warmed, it serves requests when told to.

    Args:
        held: Sessions it holds.
        requests: Requests per round (it cycles through that many picks).
        asked: How many of the sessions the requests name (at random).
    """

    def __init__(self, held: int, requests: int, asked: int) -> None:
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        argv = ["--child", "token", str(held), str(requests), str(asked)]
        self._proc = subprocess.Popen(
            [sys.executable, os.fspath(Path(__file__).resolve()), *argv],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
        )  # fmt: skip
        if self._proc.stdin is None or self._proc.stdout is None:  # pragma: no cover - PIPE
            raise RunBrokenError("no pipes to the token child")
        self._stdin, self._stdout = self._proc.stdin, self._proc.stdout

    def read(self) -> dict[str, Any]:
        """The child's next JSON line."""
        line = self._stdout.readline()
        if not line:
            self._proc.wait(timeout=60)
            self._stderr.seek(0)
            error = self._stderr.read().decode(errors="replace")[-2000:]
            raise RunBrokenError(f"token child failed ({self._proc.returncode}):\n{error}")
        found: dict[str, Any] = json.loads(line)
        return found

    def ask(self, command: str) -> dict[str, Any]:
        """Send one command and read its answer."""
        self._stdin.write(command + "\n")
        self._stdin.flush()
        return self.read()

    def close(self) -> None:
        """Tell the child to stop and wait for it (killed if it does not stop)."""
        with contextlib.suppress(OSError):
            self._stdin.close()
        try:
            self._proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._stderr.close()


def run_token(n: int, rounds: int, requests: int, turn: int) -> None:
    """The ``token`` measurement: the cases side by side, in turns, ``rounds`` times."""
    # (held, asked): sessions held, and how many distinct ones the requests name.
    cases = {"small": (SMALL, SMALL), "large": (n, n), "large_hot": (n, SMALL)}
    runs: dict[str, list[dict[str, Any]]] = {case: [] for case in cases}
    common.progress(f"/token: setting up {len(cases)} children ({n} sessions in the large)")
    children = {case: TokenChild(held, requests, asked) for case, (held, asked) in cases.items()}
    try:
        for case, proc in children.items():
            common.emit({"bench": "sessions_scale", "kind": "token_setup", "case": case,
                         "sessions": cases[case][0], "asked": cases[case][1],
                         **proc.read()})  # fmt: skip
        order = list(children)
        for number in range(rounds):
            common.progress(f"/token round {number + 1}/{rounds}: cases in turns of {turn}")
            for first in range(0, requests, turn):
                for case in order:
                    children[case].ask(f"run {min(turn, requests - first)}")
                order.append(order.pop(0))  # who goes first rotates
            for case, proc in children.items():
                found = proc.ask("figures")
                runs[case].append(found)
                common.emit({"bench": "sessions_scale", "kind": "token", "round": number,
                             "case": case, "asked": cases[case][1], **found})  # fmt: skip
    finally:
        for proc in children.values():
            proc.close()

    def med(key: str, case: str) -> float:
        return common.median([float(r[key]) for r in runs[case]])

    ratio = med("p99_us", "large") / med("p99_us", "small")
    cpu_ratio = med("cpu_p99_us", "large") / med("cpu_p99_us", "small")
    hot_ratio = med("p99_us", "large_hot") / med("p99_us", "small")
    common.emit({"bench": "sessions_scale", "kind": "token_summary", "rounds": rounds,
          "requests": requests, "turn": turn, "sessions_small": SMALL, "sessions_large": n,
          **{f"{key}_{case}": med(key, case)
             for key in ("p50_us", "p99_us", "cpu_p50_us", "cpu_p99_us") for case in cases},
          "p99_ratio": round(ratio, 3), "cpu_p99_ratio": round(cpu_ratio, 3),
          "hot_p99_ratio": round(hot_ratio, 3), "target_p99_ratio": TOKEN_TARGET_RATIO,
          "target_met": ratio <= TOKEN_TARGET_RATIO,
          "target_met_cpu": cpu_ratio <= TOKEN_TARGET_RATIO})  # fmt: skip


def child(*argv: str) -> dict[str, Any]:
    """Run this script as a child measuring one thing; its one JSON line."""
    done = subprocess.run(
        [sys.executable, os.fspath(Path(__file__).resolve()), "--child", *argv],
        capture_output=True, text=True, check=False, timeout=3600,
    )  # fmt: skip
    if done.returncode != 0:
        raise RunBrokenError(f"child {argv} failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run_children(args: argparse.Namespace) -> None:
    preset = QUICK if args.quick else FULL
    n = args.sessions or int(preset["sessions"])
    rounds = args.rounds or int(preset["rounds"])
    requests = args.requests or int(preset["requests"])
    steady = float(preset["steady_hours"]) * HOUR
    common.emit_setup("sessions_scale", args, sessions=n, small=SMALL, rounds=rounds,
               requests=requests, mint_latency_s=args.mint_latency,
               minter="in-process (RS256-shaped tokens, no signing)")  # fmt: skip
    if "memory" in args.parts:
        for trace in ("rss", "traced"):
            common.progress(f"memory ({trace}): {n} sessions")
            common.emit(child("memory", str(n), trace))
    if "refresh" in args.parts:
        low, high = RefreshPolicy().refresh_fraction
        interval = HOUR * (low + high) / 2  # the mean time between two refreshes of a TIP
        for scenario, span, window in (("steady", interval, steady), ("burst", 60.0, HOUR)):
            common.progress(f"refresh ({scenario}): {n} sessions over simulated time")
            common.emit(
                child("refresh", str(n), scenario, str(span), str(window), str(args.mint_latency))
            )
    if "token" in args.parts:
        run_token(n, rounds, requests, max(1, args.slice))


def run_child(argv: list[str]) -> None:
    what, n = argv[0], int(argv[1])
    if what == "memory":
        print(json.dumps(trio.run(memory_child, n, argv[2] == "traced")))
    elif what == "refresh":
        clock = trio.testing.MockClock(autojump_threshold=0)
        scenario, span, window, latency = argv[2], float(argv[3]), float(argv[4]), float(argv[5])
        result = trio.run(refresh_child, n, scenario, span, window, latency, clock=clock)
        print(json.dumps(result))
    else:
        trio.run(token_child, n, int(argv[2]), int(argv[3]))


def main(argv: list[str] | None = None) -> int:
    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--sessions", type=int, help="the large number of sessions")
        parser.add_argument("--requests", type=int, help="/token requests per round")
        parser.add_argument("--mint-latency", type=float, default=0.02, help="seconds per mint")
        parser.add_argument("--parts", default="memory,refresh,token", help="what to measure")
        parser.add_argument("--slice", type=int, default=SLICE, help="/token requests per turn")
        parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)

    args = common.parse_args(__doc__, argv, extra=extra)
    if args.child:
        run_child(args.child)
    else:
        run_children(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
