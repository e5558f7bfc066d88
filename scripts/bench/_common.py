"""Shared helpers of the benchmarks in ``scripts/bench/``: arguments, figures, JSON lines.

Every benchmark prints machine-readable results, one JSON object per line on stdout (progress
goes to stderr), starting with a ``setup`` line that says when, where and how it ran::

    args = parse_args(__doc__)
    emit_setup("store_login", args, sessions=10_000)
    emit({"bench": "store_login", "case": "sequential", **latency_figures(samples)})

A benchmark never fails on a missed target: it reports ``"target_met": true/false`` and
exits non-zero only when the run itself breaks.

Shared machines: where an operation never leaves the process (no I/O, one thread), its
latency is also measured as the thread's CPU time (``time.thread_time``), which leaves out
the time the thread waited for a core other processes held. Those figures carry a ``cpu_``
prefix and are reported beside the wall-clock ones, never instead of them.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import math
import os
import platform
import secrets
import socket
import statistics
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from agent_identity.storage import SessionRecord

__all__ = [
    "emit",
    "emit_setup",
    "fake_jwt",
    "latency_figures",
    "machine",
    "median",
    "parse_args",
    "percentile",
    "progress",
    "session_key",
    "session_record",
]


def parse_args(
    doc: str | None,
    argv: Sequence[str] | None = None,
    *,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    """Parse the common flags (``--quick``, ``--rounds``) plus a benchmark's own.

    Args:
        doc: The benchmark's module docstring; its first line is the description.
        argv: The arguments (``sys.argv[1:]`` when None).
        extra: Adds the benchmark's own arguments to the parser.

    Returns:
        The parsed arguments; ``quick`` is a bool and ``rounds`` an int or None.
    """
    parser = argparse.ArgumentParser(description=(doc or "").strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small runs, for CI (< 1 minute)")
    parser.add_argument("--rounds", type=int, help="repetitions; the median is reported")
    if extra is not None:
        extra(parser)
    return parser.parse_args(argv)


def machine() -> dict[str, Any]:
    """Where and when the figures were taken (the machine is shared, so the load too)."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "loadavg_1m": round(load[0], 2),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:  # noqa: PTH123 - one small read
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def emit(record: Mapping[str, Any]) -> None:
    """Print one measurement as a JSON line on stdout (flushed: CI may read it live)."""
    print(json.dumps(record, separators=(", ", ": ")), flush=True)


def emit_setup(bench: str, args: argparse.Namespace, **details: object) -> None:
    """Print the ``setup`` line: the benchmark, its mode, the machine and its parameters."""
    mode = "quick" if args.quick else "full"
    emit({"bench": bench, "kind": "setup", "mode": mode, **machine(), **details})


def progress(message: str) -> None:
    """Say what is happening, on stderr (stdout holds only JSON lines)."""
    print(message, file=sys.stderr, flush=True)


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (``0 < q <= 1``) of ``values`` (need not be sorted)."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: Sequence[float]) -> float:
    """The median of ``values``."""
    return statistics.median(values)


def latency_figures(
    seconds: Sequence[float], *, unit: str = "ms", prefix: str = ""
) -> dict[str, float | int]:
    """p50, p90, p99, p99.9, max and mean of latencies given in seconds, in ``unit``.

    Args:
        seconds: One latency per operation, in seconds.
        unit: ``"ms"`` or ``"us"``; the keys are suffixed with it (``p99_ms``).
        prefix: Put before every key but ``count`` (``"cpu_"`` gives ``cpu_p99_us``).
    """
    scale = {"ms": 1e3, "us": 1e6}[unit]
    ordered = sorted(seconds)

    def at(q: float) -> float:
        return round(percentile(ordered, q) * scale, 3)

    return {
        "count": len(ordered),
        f"{prefix}p50_{unit}": at(0.50),
        f"{prefix}p90_{unit}": at(0.90),
        f"{prefix}p99_{unit}": at(0.99),
        f"{prefix}p999_{unit}": at(0.999),
        f"{prefix}max_{unit}": round(ordered[-1] * scale, 3),
        f"{prefix}mean_{unit}": round(statistics.fmean(ordered) * scale, 3),
    }


def fake_jwt(claims: Mapping[str, Any], *, kid: str = "bench-rs256-0001") -> str:
    """A compact RS256-shaped JWS with ``claims`` and a random 256-byte "signature".

    As long as a real one (what memory and file sizes depend on) but without the cost of an
    RSA signature, so 100k of them take a second. Nothing here verifies signatures: the
    store keeps tokens as opaque strings and the TIP claims reader does not verify.
    """
    header = {"alg": "RS256", "kid": kid, "typ": "JWT"}
    parts = (
        _b64url(json.dumps(header, separators=(",", ":")).encode()),
        _b64url(json.dumps(dict(claims), separators=(",", ":")).encode()),
        _b64url(os.urandom(256)),
    )
    return ".".join(parts)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def session_key(index: int) -> str:
    """The effective session key of the ``index``-th benchmark user (a Telegram DM)."""
    return f"agent:main:telegram:direct:{index}"


def session_record(index: int, now: float, *, lifetime: float = 86_400.0) -> SessionRecord:
    """A session as a real OIDC login stores it: a ~900-character id token, a refresh token.

    Args:
        index: The user's number (key, subject, email and name derive from it).
        now: The login time, epoch seconds.
        lifetime: Seconds until the id token expires.
    """
    sub = f"user-{index:08d}"
    claims = {
        "iss": "https://userpool-bench.id.example.com/userpool/up-bench-0001",
        "sub": sub,
        "aud": "client-openclaw-0001",
        "iat": int(now),
        "exp": int(now + lifetime),
        "auth_time": int(now),
        "nonce": secrets.token_urlsafe(24),
        "email": f"{sub}@example.com",
        "email_verified": True,
        "name": f"Bench User {index}",
    }
    return SessionRecord(
        session_key=session_key(index),
        sub=sub,
        user_token=fake_jwt(claims),
        expires_at=now + lifetime,
        login_at=now,
        refresh_token=secrets.token_urlsafe(32),
        email=f"{sub}@example.com",
        name=f"Bench User {index}",
    )
