#!/usr/bin/env python3
"""Full garbage collections with N cached TIPs: GC-tracked objects per TIP, the gen-2 pause.

Usage::

    python scripts/bench/gc_pause.py            # full: 100k cached TIPs, 7 collections
    python scripts/bench/gc_pause.py --quick    # CI: 10k cached TIPs, 5 collections

A full (generation 2) collection visits every object the garbage collector tracks, and the
process (every request it serves) waits meanwhile. The TIP refresher keeps one cached TIP
per logged-in session, so what one cached TIP adds to the collector's work is paid on
every full collection, times the number of sessions.

Setup: N TIPs signed RS256 with one 2048-bit key (PyJWT, as the simulated actor tests do),
with the claims the sandbox's ``mint_tip`` gives a workload acting for a logged-in user
(``iss``, ``sub``, an ``aud`` list, ``iat``, ``exp``, ``act`` naming the workload, ``jti``).
Each is read with ``decode_tip_claims`` (the refresher's own path) and cached in a real
``RunState`` as a flight caches a mint: a ``CachedTip`` in ``entries``, its refresh on the
timer heap. Automatic collections are off while the cache is built, then one untimed
``gc.collect()`` settles it (tuples of untracked items are untracked by a first pass).

Measured, before the cache is built (the interpreter and the imports: ``baseline``) and
after: the objects the collector tracks (``len(gc.get_objects())``) and the time of a full
``gc.collect()`` (median, min and max of ``--rounds``; wall clock and the thread's CPU
time). Per TIP: the tracked objects (delta / N, by type: ``tracked_per_tip_by_type``), the
growth of RSS (rough: the allocator keeps freed memory) and the build time (decode plus
``CachedTip``). The ``cache_gc_ms`` figure is the pause the cache adds (median after minus
median before).

Output: a setup line, then ``"kind": "summary"`` with ``target_met`` (at most 2 tracked
objects per cached TIP). Exit status 1 if the run breaks.
"""

from __future__ import annotations

import argparse
import gc
import resource
import secrets
import sys
import time
from collections import Counter

import _common as common
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from agent_identity.actors.tip_state import CachedTip, RunState
from agent_identity.authz.tip_claims import decode_tip_claims

FULL = {"tips": 100_000, "rounds": 7}
QUICK = {"tips": 10_000, "rounds": 5}
#: The most GC-tracked objects one cached TIP may cost.
TARGET_TRACKED_PER_TIP = 2
NOW = 1_800_000_000
HOUR = 3600
ISSUER = "https://auth.id.cn-beijing.volces.com/workloadpool/wp-bench-0001"
WORKLOAD = "openclaw-agent"


class RunBrokenError(Exception):
    """The setup did not come out as the benchmark needs: the figures would be wrong."""


def mint(key: rsa.RSAPrivateKey, index: int) -> str:
    """The ``index``-th user's TIP, as the sandbox mints one for a logged-in user."""
    claims = {
        "iss": ISSUER,
        "sub": f"user-{index:08d}",
        "aud": [ISSUER],
        "iat": NOW,
        "exp": NOW + HOUR,
        "act": {"sub": WORKLOAD},
        "jti": secrets.token_hex(8),
    }
    return jwt.encode(claims, key, "RS256", headers={"kid": "wp-bench-rs256-0001"})


def build(tokens: list[str]) -> RunState:
    """Cache every TIP in a fresh ``RunState``, as the refresher's flights do."""
    state = RunState()
    for index, token in enumerate(tokens):
        key = common.session_key(index)
        claims = decode_tip_claims(token)
        if claims.exp is None:
            raise RunBrokenError("a TIP without exp")
        refresh_at = NOW + 0.8 * HOUR
        state.entries[key] = CachedTip(
            key=key,
            token=token,
            claims=claims,
            workload=WORKLOAD,
            agent_id=None,
            parent_key=None,
            received_at=float(NOW),
            expires_at=float(claims.exp),
            refresh_at=refresh_at,
            last_used=float(NOW),
        )
        state.timers.schedule(key, refresh_at - NOW)
    return state


def tracked_by_type() -> Counter[str]:
    """The tracked objects, counted by type."""
    return Counter(type(item).__qualname__ for item in gc.get_objects())


def collections(rounds: int) -> dict[str, float]:
    """Time ``rounds`` full collections: median, min and max (ms), also by CPU time."""
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(rounds):
        started, started_cpu = time.perf_counter(), time.thread_time()
        gc.collect()
        ended_cpu, ended = time.thread_time(), time.perf_counter()
        wall.append(ended - started)
        cpu.append(ended_cpu - started_cpu)
    return {
        "gc_collect_ms_p50": round(common.median(wall) * 1e3, 2),
        "gc_collect_ms_min": round(min(wall) * 1e3, 2),
        "gc_collect_ms_max": round(max(wall) * 1e3, 2),
        "cpu_gc_collect_ms_p50": round(common.median(cpu) * 1e3, 2),
    }


def rss_bytes() -> int | None:
    """The resident set size (Linux), or None where ``/proc`` has no ``statm``."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:  # noqa: PTH123 - small read
            return int(statm.read().split()[1]) * resource.getpagesize()
    except OSError:
        return None


def main(argv: list[str] | None = None) -> int:
    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--tips", type=int, help="cached TIPs (sessions)")

    args = common.parse_args(__doc__, argv, extra=extra)
    preset = QUICK if args.quick else FULL
    n = args.tips or preset["tips"]
    rounds = args.rounds or preset["rounds"]
    common.emit_setup(
        "gc_pause", args, tips=n, rounds=rounds, gc_thresholds=list(gc.get_threshold()),
        tokens="RS256, 2048-bit key (PyJWT), sandbox mint_tip claims",
    )  # fmt: skip

    common.progress(f"gc_pause: signing {n} TIPs (RS256)")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tokens = [mint(key, i) for i in range(n)]
    token_chars = sum(map(len, tokens))

    gc.disable()
    try:
        gc.collect()
        before_types = tracked_by_type()
        before = sum(before_types.values())
        common.progress(f"gc_pause: {rounds} full collections without the cache")
        baseline = collections(rounds)
        rss_before = rss_bytes()

        common.progress(f"gc_pause: caching {n} TIPs")
        started = time.perf_counter()
        state = build(tokens)
        built = time.perf_counter() - started
        del tokens  # the cache holds each token (a str: never tracked) on its own now
        gc.collect()  # settle: the first pass untracks tuples of untracked items
        rss_after = rss_bytes()
        after_types = tracked_by_type()
        after = sum(after_types.values())
        common.progress(f"gc_pause: {rounds} full collections with {n} cached TIPs")
        cached = collections(rounds)
        if len(state.entries) != n or len(state.timers) != n:
            raise RunBrokenError("the cache does not hold every TIP")
    finally:
        gc.enable()

    grown = after_types - before_types
    by_type = {
        name: round(count / n, 3) for name, count in grown.most_common() if count >= n // 100
    }
    per_tip = (after - before) / n
    common.emit({
        "bench": "gc_pause", "kind": "summary", "tips": n, "rounds": rounds,
        "tracked_before": before, "tracked_after": after,
        "tracked_per_tip": round(per_tip, 3), "tracked_per_tip_by_type": by_type,
        **cached,
        **{f"baseline_{name}": value for name, value in baseline.items()},
        "cache_gc_ms": round(cached["gc_collect_ms_p50"] - baseline["gc_collect_ms_p50"], 2),
        "build_us_per_tip": round(built / n * 1e6, 2),
        "token_chars_per_tip": round(token_chars / n),
        "rss_bytes_per_tip": (
            None if rss_before is None or rss_after is None else round((rss_after - rss_before) / n)
        ),
        "target_tracked_per_tip": TARGET_TRACKED_PER_TIP,
        "target_met": per_tip <= TARGET_TRACKED_PER_TIP,
    })  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
