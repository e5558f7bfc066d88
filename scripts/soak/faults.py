#!/usr/bin/env python3
"""Soak the TIP path under control-plane and IdP faults, one fault after another.

Usage::

    python scripts/soak/faults.py               # each fault for 2 simulated hours
    python scripts/soak/faults.py --quick       # CI: 30 simulated minutes each, ~15 s real
    python scripts/soak/faults.py --real --seconds 120 --tip-seconds 60  # on the real clock

What runs: the sandbox (the control plane, STS and the user pool's OIDC provider) on
loopback, and against it the pieces of a running system that serve TIPs, wired as
``system.tree.build_tree`` wires them: the Identity client with its default retry policy
(4 attempts, full jitter, ``Retry-After`` honoured), the TIP minter, the session store, the
OIDC client that renews user tokens with their rotating refresh tokens, and the TIP
refresher. ``--sessions`` users log in through the user pool's real authorization-code flow.
The stack is the fault tests' own (``tests/reliability/test_faults_support.py``, loaded by its
path): the same wiring, clocks, counters and leak check as ``tests/reliability/test_faults_*``.

Time: by default Trio runs on a ``MockClock`` that jumps whenever every task waits on a timer,
and every wall clock (the refresher's, the clients' ``X-Date``, the ID-token checks, the
sandbox's) is derived from Trio's clock, so hours of TIP lifetimes and back-offs pass in
seconds. Loopback I/O completes as soon as it is written, so the clock never jumps while a
request is in flight. ``--real`` runs on the real clock instead.

For each fault in turn the fault is applied for ``--seconds`` while a client asks for the TIP
of every session every ``--every`` seconds; then it is removed and the client keeps asking
until every session is healthy again (a TIP served, no refresh backing off) or
``--recovery-limit`` passes. The faults:

* ``5xx_30pct``: 30 % of control-plane and IdP requests answer 500/502/503/504;
* ``429_retry_after``: half of the control-plane requests answer 429 with ``Retry-After: 2``;
* ``latency_2s``: half of the control-plane and IdP requests answer 2 s late;
* ``connection_reset``: 30 % of the control-plane requests are hung up on mid-answer;
* ``malformed_json``: 30 % of the mints answer 200 with a body that is not JSON;
* ``jwks_rotation``: the user pool signs with a new key and drops the old one at once;
* ``clock_skew_plus_120`` / ``clock_skew_minus_120``: the control plane's and IdP's clock
  steps 2 minutes ahead of / behind the gateway's;
* ``outage``: every control-plane request answers 503 for three TIP lifetimes (or
  ``--seconds`` if shorter): the refreshes fail, the cached TIPs run out, and later asks are
  held back by each session's miss back-off (up to 30 s): a full call (its 4 attempts are
  counted) per session and back-off window, not per ask; the first ask after a session's
  window once the outage is over mints again, so recovery takes up to that window.

Output: one JSON line per fault on stdout, with ``fault``, ``requests`` (asks), ``served``,
``served_from_cache``, ``expired_served`` (TIPs returned at or past their expiry by the
gateway's clock: must be 0), ``control_plane_calls``, ``retries``, ``retries_per_call_max``
(counted on the wire from ``X-Sdk-Invocation-Id``), ``recovered``, ``recovery_seconds``, and
more: ``no_tip`` (asks without a TIP, by reason), ``expired_served_upstream`` (by the control
plane's clock: a clock that steps ahead makes TIPs cached before the step die early, which the
gateway cannot see before their next refresh), ``attempts``, ``failed_calls``,
``idp_requests``, ``log_records``, ``log_warnings``, ``log_leaks`` (log lines showing a token,
key or secret: must be 0), ``log_example`` (one line saying what happened), ``seconds``,
``clock``. Progress goes to stderr.

Exit status: 1 when an invariant breaks (an expired TIP served, a call past its 4 attempts, no
recovery, a secret in a log line), so CI fails on it; 0 otherwise.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import trio
import trio.testing

#: The fault suite's stack, shared with the tests (this script is not a package, so it loads
#: the module by its path): the sandbox, the TIP path wired as ``build_tree`` wires it, the
#: simulated clock, the wire counters, the answer tally and the leak check.
SUPPORT = Path(__file__).resolve().parents[2] / "tests" / "reliability" / "test_faults_support.py"


def _load_support() -> ModuleType:
    name = "faults_support"
    spec = importlib.util.spec_from_file_location(name, SUPPORT)
    if spec is None or spec.loader is None:
        raise ImportError(name, SUPPORT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


support = _load_support()
Stack = support.Stack
USERPOOL: str = support.USERPOOL
MINT: str = support.MINT
POOL: str = support.POOL
MAX_ATTEMPTS: int = support.MAX_ATTEMPTS
#: The simulated epoch at Trio time 0 (fixed: runs are comparable).
SIMULATED_T0: float = support.T0

progress = logging.getLogger("soak")


# -- the faults ----------------------------------------------------------------------------

#: Removes a fault once it has lasted long enough.
Undo = Callable[[], None]


def fault_5xx(stack: Stack) -> Undo:
    """30 % of control-plane and IdP requests answer 500/502/503/504."""
    sb = stack.sb
    return stack.removing(support.add_5xx(sb, None, 0.3) + support.add_5xx(sb, USERPOOL, 0.3))


def fault_429(stack: Stack) -> Undo:
    """Half of the control-plane requests are throttled with ``Retry-After: 2``."""
    return stack.removing([stack.sb.faults.add(None, status=429, retry_after=2, rate=0.5)])


def fault_latency(stack: Stack) -> Undo:
    """Half of the control-plane and IdP requests answer 2 s late."""
    sb = stack.sb
    rules = [
        sb.faults.add(None, latency=2.0, rate=0.5),
        sb.faults.add(USERPOOL, latency=2.0, rate=0.5),
    ]
    return stack.removing(rules)


def fault_reset(stack: Stack) -> Undo:
    """30 % of the control-plane requests are hung up on mid-answer."""
    return stack.removing([stack.sb.faults.add(None, reset=True, rate=0.3)])


def fault_malformed(stack: Stack) -> Undo:
    """30 % of the mints answer 200 with a body that is not JSON."""
    return stack.removing([stack.sb.faults.add(MINT, malformed=True, rate=0.3)])


def fault_rotation(stack: Stack) -> Undo:
    """The user pool rotates its signing key and drops the old one at once."""
    stack.sb.rotate_user_pool_key(POOL, grace_seconds=None)
    return lambda: None


def fault_skew(seconds: float) -> Callable[[Stack], Undo]:
    """The control plane's and IdP's clock steps ``seconds`` away from the gateway's."""

    def apply(stack: Stack) -> Undo:
        stack.clock.skew = seconds

        def undo() -> None:
            stack.clock.skew = 0.0

        return undo

    return apply


def fault_outage(stack: Stack) -> Undo:
    """Every control-plane request answers 503."""
    return stack.removing([stack.sb.faults.add(None, status=503)])


#: Lifetimes of a TIP an outage lasts: long enough to outlive every cached TIP.
OUTAGE_TIPS = 3

FAULTS: list[tuple[str, Callable[[Stack], Undo]]] = [
    ("5xx_30pct", fault_5xx),
    ("429_retry_after", fault_429),
    ("latency_2s", fault_latency),
    ("connection_reset", fault_reset),
    ("malformed_json", fault_malformed),
    ("jwks_rotation", fault_rotation),
    ("clock_skew_plus_120", fault_skew(120.0)),
    ("clock_skew_minus_120", fault_skew(-120.0)),
    ("outage", fault_outage),
]


# -- the run -------------------------------------------------------------------------------


class LogWatch(logging.Handler):
    """Keeps the system's log lines of the current fault, to count them and check for leaks."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def take(self) -> list[logging.LogRecord]:
        """The records since the last call."""
        taken, self.records = self.records, []
        return taken


def _example(records: Sequence[logging.LogRecord]) -> str | None:
    """One line that says what happened: the first warning, else the first retry or note."""
    for level in (logging.WARNING, logging.INFO, logging.DEBUG):
        for record in records:
            text = record.getMessage()
            if record.levelno == level and (level > logging.DEBUG or "retrying" in text):
                return text[:300]
    return None


async def soak_one(
    stack: Stack, name: str, apply: Callable[[Stack], Undo], args: argparse.Namespace
) -> dict[str, Any]:
    """Apply one fault for ``args.seconds`` while asking, remove it, measure the recovery."""
    seconds = args.seconds
    if name == "outage":
        seconds = min(seconds, OUTAGE_TIPS * args.tip_seconds)
    watch = LogWatch()
    logging.getLogger("agent_identity").addHandler(watch)
    try:
        healthy_before = (await stack.recover(within=args.recovery_limit)).recovered
        window = await stack.through(
            apply(stack), seconds, every=args.every, within=args.recovery_limit
        )
        records = watch.take()
        # Every secret of the run: keys, passwords, the logins' and stored tokens, every TIP.
        leaks = len(support.no_secrets_in(records, await stack.secrets()))
    finally:
        logging.getLogger("agent_identity").removeHandler(watch)
    # Read after the recovery: a call still retrying when the fault ended has finished.
    calls = [[attempt.number for attempt in call] for call in window.calls]
    attempts = sum(len(numbers) for numbers in calls)
    most = max((len(numbers) for numbers in calls), default=0)
    numbered = all(numbers == list(range(1, len(numbers) + 1)) for numbers in calls)
    tally, recovery = window.during, window.recovery
    return {
        "fault": name,
        "requests": tally.requests,
        "served": tally.served,
        "served_from_cache": tally.from_cache,
        "expired_served": tally.expired + recovery.tally.expired,
        "control_plane_calls": len(calls),
        "retries": attempts - len(calls),
        "retries_per_call_max": max(most - 1, 0),
        "recovered": recovery.recovered,
        "recovery_seconds": None if recovery.seconds is None else round(recovery.seconds, 3),
        "no_tip": dict(tally.no_tip),
        "expired_served_upstream": tally.expired_upstream + recovery.tally.expired_upstream,
        "attempts": attempts,
        "attempts_numbered": numbered,
        "failed_calls": window.removed.failures - window.before.failures,
        "idp_requests": len(window.idp),
        "healthy_before": healthy_before,
        "log_records": len(records),
        "log_warnings": sum(r.levelno >= logging.WARNING for r in records),
        "log_leaks": leaks,
        # Shown only when it was checked clean: never print what might be a secret.
        "log_example": _example(records) if leaks == 0 else None,
        "seconds": seconds,
        "clock": "real" if args.real else "simulated",
    }


def broken(line: dict[str, Any]) -> list[str]:
    """The invariants a fault's line breaks."""
    problems = []
    if line["expired_served"]:
        problems.append("an expired TIP was served")
    if line["retries_per_call_max"] >= MAX_ATTEMPTS or not line["attempts_numbered"]:
        problems.append("a call went past its retry budget")
    if not line["recovered"]:
        problems.append("no recovery")
    if line["log_leaks"]:
        problems.append("a log line shows a secret")
    return problems


async def run(args: argparse.Namespace) -> int:
    """Soak every selected fault in turn; print a JSON line each; 1 if an invariant broke."""
    t0 = time.time() - trio.current_time() if args.real else SIMULATED_T0
    selected = [(name, apply) for name, apply in FAULTS if not args.only or name in args.only]
    failed = False
    stack_opened = support.open_stack(
        sessions=args.sessions,
        tip_seconds=args.tip_seconds,
        seed=args.seed,
        t0=t0,
        # Shorter-lived id_tokens make the refresher renew them (at the IdP) during every
        # fault, not once an hour.
        user_token_seconds=args.user_token_seconds,
    )
    async with stack_opened as stack:
        # Every session holds a TIP before the first fault.
        await stack.drive(args.every, every=args.every)
        for name, apply in selected:
            started = time.monotonic()
            line = await soak_one(stack, name, apply, args)
            print(json.dumps(line), flush=True)
            problems = broken(line)
            failed |= bool(problems)
            progress.info(
                "%s: %d asks, %d served, %d calls, %d retries, recovered in %s s (%.1f s real)%s",
                name,
                line["requests"],
                line["served"],
                line["control_plane_calls"],
                line["retries"],
                line["recovery_seconds"],
                time.monotonic() - started,
                f": {'; '.join(problems)}" if problems else "",
            )
    return 1 if failed else 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run for CI (< 1 minute)")
    parser.add_argument("--real", action="store_true", help="run on the real clock")
    parser.add_argument("--seconds", type=float, help="how long each fault lasts")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between asks")
    parser.add_argument("--sessions", type=int, help="logged-in sessions asked for")
    parser.add_argument("--tip-seconds", type=int, default=300, help="TIP lifetime asked for")
    parser.add_argument("--user-token-seconds", type=int, help="id_token lifetime at the IdP")
    parser.add_argument(
        "--recovery-limit", type=float, default=360.0, help="longest wait for recovery (s)"
    )
    parser.add_argument("--seed", type=int, default=1, help="seeds fault rolls and jitter")
    parser.add_argument("--only", action="append", help="run only this fault (repeatable)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the system's log")
    args = parser.parse_args(argv)
    if args.seconds is None:
        args.seconds = 1800.0 if args.quick else 7200.0
    if args.sessions is None:
        args.sessions = 3 if args.quick else 6
    if args.user_token_seconds is None:
        args.user_token_seconds = 900 if args.quick else 3600
    unknown = set(args.only or ()) - {name for name, _ in FAULTS}
    if unknown:
        parser.error(f"unknown fault(s): {', '.join(sorted(unknown))}")
    if not (math.isfinite(args.seconds) and args.seconds > 0 and args.every > 0):
        parser.error("--seconds and --every must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the soak; the exit status says whether every invariant held."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    # The system's own lines are checked, not shown, unless asked for.
    logging.getLogger("agent_identity").setLevel(logging.DEBUG)
    logging.getLogger("agent_identity").propagate = args.verbose
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.real:
        return trio.run(run, args)
    return trio.run(run, args, clock=trio.testing.MockClock(autojump_threshold=0))


if __name__ == "__main__":
    sys.exit(main())
