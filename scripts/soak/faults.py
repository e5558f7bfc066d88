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
  ``--seconds`` if shorter): the refreshes fail, the cached TIPs run out, and every later ask
  costs a full call (the 4 attempts of each are counted).

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
import datetime as dt
import json
import logging
import math
import random
import re
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import jwt
import trio
import trio.testing

from agent_identity.actors.session_store import SessionStore
from agent_identity.actors.tip_messages import NoTip, TipInfo, TipOutcome, TipRefresherClient
from agent_identity.actors.tip_mint import IdentityTipMinter
from agent_identity.actors.tip_refresher import TipRefresher
from agent_identity.config import IdentityConfig
from agent_identity.oidc import OidcClient, OidcSettings, new_login_secrets
from agent_identity.sandbox import Sandbox, open_sandbox
from agent_identity.sandbox.faults import FaultRule
from agent_identity.storage import MemoryBackend, SessionRecord
from agent_identity.system.services import DEFAULT_HTTP_TIMEOUT
from agent_identity.volcengine import IdentityClient, SigningCredentials
from agent_identity.volcengine.retry import DEFAULT_RETRY_POLICY
from agent_identity.volcengine.transport import static_credentials

POOL = "agent-identity-dev"
CLIENT_ID = "client-openclaw-0001"
CLIENT_SECRET = "openclaw-gateway-client-secret"  # the sandbox seed's demo client  # noqa: S105
PASSWORDS = {"alice": "alice-password", "bob": "bob-password"}
CALLBACK = "http://127.0.0.1:18789/identity/oauth/callback"
MINT = "GetWorkloadAccessTokenForJWT"
USERPOOL = "/userpool/"
MAX_ATTEMPTS = DEFAULT_RETRY_POLICY.max_attempts
#: The simulated epoch at Trio time 0 (fixed: runs are comparable).
SIMULATED_T0 = 1_800_000_000.0

_JWT = re.compile(r"eyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]{8,}")
_ATTEMPT = re.compile(r"attempt=(\d+)")

progress = logging.getLogger("soak")


class Clock:
    """The gateway's wall clock, ``t0 + trio.current_time()``; the sandbox's adds ``skew``."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.skew = 0.0

    def __call__(self) -> float:
        return self.t0 + trio.current_time()

    def upstream(self) -> float:
        """The control plane's (and the IdP's) clock."""
        return self() + self.skew

    def utc(self) -> dt.datetime:
        """The gateway's clock as an aware datetime (``X-Date``)."""
        return dt.datetime.fromtimestamp(self(), dt.UTC)


class Wire:
    """Counts the requests the system sends (an httpx request hook).

    Control-plane attempts are kept as ``(invocation id, attempt number)``: the SDK headers
    ``X-Sdk-Invocation-Id`` (the same on every attempt of one call) and ``X-Sdk-Request``.
    """

    def __init__(self) -> None:
        self.attempts: list[tuple[str, int]] = []
        self.idp = 0

    async def on_request(self, request: httpx.Request) -> None:
        """Record one request (httpx awaits this before sending it)."""
        await trio.lowlevel.checkpoint()
        invocation = request.headers.get("x-sdk-invocation-id")
        if invocation is not None:
            found = _ATTEMPT.search(request.headers.get("x-sdk-request", ""))
            self.attempts.append((invocation, int(found.group(1)) if found else 0))
        elif request.url.path.startswith(USERPOOL):
            self.idp += 1

    def calls_between(self, since: int, until: int) -> dict[str, list[int]]:
        """Attempt numbers per call, for the calls whose first attempt is in ``[since, until)``.

        ``since`` and ``until`` are lengths of :attr:`attempts` taken earlier; a call's later
        attempts count even when they came after ``until``.
        """
        first: dict[str, int] = {}
        calls: dict[str, list[int]] = {}
        for index, (invocation, number) in enumerate(self.attempts):
            first.setdefault(invocation, index)
            if since <= first[invocation] < until:
                calls.setdefault(invocation, []).append(number)
        return calls


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


@dataclass
class Tally:
    """What the asking client got."""

    requests: int = 0
    served: int = 0
    from_cache: int = 0
    expired: int = 0
    expired_upstream: int = 0
    no_tip: Counter[str] = field(default_factory=Counter)
    tokens: set[str] = field(default_factory=set, repr=False)

    def count(self, outcome: TipOutcome, clock: Clock) -> None:
        """Count one answer, checking it against both clocks as it is returned."""
        self.requests += 1
        if isinstance(outcome, NoTip):
            self.no_tip[outcome.code] += 1
            return
        self.served += 1
        self.from_cache += outcome.cached
        self.expired += outcome.expires_at <= clock()
        exp = jwt.decode(outcome.token, options={"verify_signature": False})["exp"]
        self.expired_upstream += float(exp) <= clock.upstream()
        self.tokens.add(outcome.token)


class _FormReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {key: value or "" for key, value in attrs}
        if tag == "form":
            self.action = found.get("action", "")
        elif tag == "input" and found.get("type") == "hidden" and "name" in found:
            self.fields[found["name"]] = found.get("value", "")


@dataclass
class Stack:
    """The sandbox and the system's TIP path, with the asking client's helpers."""

    sb: Sandbox
    http: httpx.AsyncClient
    clock: Clock
    wire: Wire
    identity_client: IdentityClient
    oidc: OidcClient
    store: SessionStore
    refresher: TipRefresher
    sessions: list[str] = field(default_factory=list)
    secrets: set[str] = field(default_factory=set, repr=False)

    @property
    def tips(self) -> TipRefresherClient:
        """The refresher's client."""
        return self.refresher.client

    async def login(self, key: str, username: str) -> None:
        """Log ``username`` in under ``key`` through the user pool's form; store the session."""
        login = new_login_secrets()
        page = await self.http.get(await self.oidc.authorization_url(login))
        form = _FormReader()
        form.feed(page.text)
        answer = await self.http.post(
            urljoin(str(page.url), form.action),
            data={**form.fields, "username": username, "password": PASSWORDS[username]},
        )
        if answer.status_code not in {302, 303}:
            raise RuntimeError(f"login of {username} failed: HTTP {answer.status_code}")
        query = parse_qs(urlsplit(answer.headers["location"]).query)
        tokens = await self.oidc.exchange_code(
            query["code"][0],
            code_verifier=login.code_verifier,
            nonce=login.nonce,
            iss=query["iss"][0],
        )
        if tokens.claims is None or tokens.id_token is None:
            raise RuntimeError(f"login of {username} returned no ID token")
        self.secrets.update(t for t in (tokens.id_token, tokens.refresh_token) if t)
        await self.store.client.put(
            SessionRecord(
                session_key=key,
                sub=tokens.claims.sub,
                user_token=tokens.id_token,
                expires_at=float(tokens.claims.exp),
                login_at=self.clock(),
                refresh_token=tokens.refresh_token,
            )
        )
        self.sessions.append(key)

    async def ask_all(self, tally: Tally) -> list[TipOutcome]:
        """Ask for every session's TIP at once, like concurrent host handlers."""
        answers: dict[str, TipOutcome] = {}

        async def one(key: str) -> None:
            answers[key] = outcome = await self.tips.get_tip(key)
            tally.count(outcome, self.clock)

        async with trio.open_nursery() as nursery:
            for key in self.sessions:
                nursery.start_soon(one, key)
        return [answers[key] for key in self.sessions]

    async def drive(self, seconds: float, every: float, tally: Tally) -> None:
        """Ask for every session's TIP every ``every`` seconds, for ``seconds``."""
        start = trio.current_time()
        tick = 0
        await trio.lowlevel.checkpoint()  # even when ``seconds`` leaves no tick at all
        while trio.current_time() < start + seconds:
            await self.ask_all(tally)
            tick += 1
            # A fixed cadence: an ask that waited on a mint does not shift the later ones.
            await trio.sleep_until(start + tick * every)

    async def healthy(self, tally: Tally) -> bool:
        """Every session gets a TIP and none is backing off after a failed refresh."""
        answers = await self.ask_all(tally)
        if not all(isinstance(answer, TipInfo) for answer in answers):
            return False
        listed = {summary.session_key: summary for summary in await self.tips.list_tips()}
        return all(key in listed and listed[key].failures == 0 for key in self.sessions)

    async def recover(self, limit: float, every: float, tally: Tally) -> float | None:
        """Seconds until every session is healthy (asking every ``every``); None past ``limit``."""
        start = trio.current_time()
        while not await self.healthy(tally):
            if trio.current_time() - start >= limit:
                return None
            await trio.sleep(every)
        return trio.current_time() - start

    async def all_secrets(self) -> set[str]:
        """Keys, the client secret, passwords and every token the run has seen or stored."""
        found = {self.sb.secret_access_key, CLIENT_SECRET, *PASSWORDS.values(), *self.secrets}
        await trio.lowlevel.checkpoint()  # even without sessions
        for key in self.sessions:
            view = await self.store.client.get(key, renewable=True)
            if view is not None:
                found.add(view.user_token)
            refresh = await self.store.client.get_refresh_token(key)
            if refresh is not None:
                found.add(refresh)
        return found


@asynccontextmanager
async def open_stack(args: argparse.Namespace, t0: float) -> AsyncIterator[Stack]:
    """Run the sandbox and the TIP path on one clock, with ``args.sessions`` logged in."""
    clock = Clock(t0)
    wire = Wire()
    seed = args.seed
    async with (
        # Seeded for comparable runs; fault rolls and jitter need no cryptographic randomness.
        open_sandbox(rng=random.Random(seed), clock=clock.upstream) as sb,  # noqa: S311
        httpx.AsyncClient(
            timeout=DEFAULT_HTTP_TIMEOUT, event_hooks={"request": [wire.on_request]}
        ) as http,
        trio.open_nursery() as nursery,
    ):
        pool = sb.state.user_pool(POOL)
        if pool is None:
            raise RuntimeError(f"the sandbox seed has no user pool {POOL!r}")
        # Shorter-lived id_tokens make the refresher renew them (at the IdP) during every
        # fault, not once an hour.
        pool.clients[CLIENT_ID].id_token_lifetime = args.user_token_seconds
        identity_client = IdentityClient(
            http,
            endpoint=sb.base_url,
            credentials=static_credentials(
                SigningCredentials(sb.access_key_id, sb.secret_access_key)
            ),
            rng=random.Random(seed + 1),  # noqa: S311
            now=clock.utc,
        )
        store = SessionStore(MemoryBackend(now=clock), now=clock)
        await nursery.start(store.run)
        settings = OidcSettings(
            discovery_url=sb.user_pool_discovery_url(POOL),
            client_id=CLIENT_ID,
            redirect_uri=CALLBACK,
            client_secret=CLIENT_SECRET,
        )
        oidc = OidcClient(settings, http, now=clock)
        config = IdentityConfig(duration_seconds=args.tip_seconds)
        refresher = TipRefresher(
            IdentityTipMinter.from_config(identity_client, config),
            store.client,
            config=config,
            renewer=oidc,
            rng=random.Random(seed + 2),  # noqa: S311
            wall=clock,
        )
        await nursery.start(refresher.run)
        stack = Stack(sb, http, clock, wire, identity_client, oidc, store, refresher)
        try:
            for n in range(args.sessions):
                await stack.login(f"agent:soak:{n}", ("alice", "bob")[n % 2])
            yield stack
        finally:
            with trio.move_on_after(10, shield=True):
                await refresher.stop()
                await store.stop()
            nursery.cancel_scope.cancel()


# -- the faults ----------------------------------------------------------------------------

Undo = Callable[[], None]


def _removing(sb: Sandbox, rules: Sequence[FaultRule]) -> Undo:
    def undo() -> None:
        for rule in rules:
            sb.faults.remove(rule)

    return undo


def _five_xx(sb: Sandbox, target: str | None, rate: float) -> list[FaultRule]:
    statuses = (500, 502, 503, 504)
    share = rate / len(statuses)
    # Rules are rolled in order: each later one's rate is its share of what is left.
    return [
        sb.faults.add(target, status=status, rate=share / (1.0 - n * share))
        for n, status in enumerate(statuses)
    ]


def fault_5xx(stack: Stack) -> Undo:
    """30 % of control-plane and IdP requests answer 500/502/503/504."""
    sb = stack.sb
    return _removing(sb, _five_xx(sb, None, 0.3) + _five_xx(sb, USERPOOL, 0.3))


def fault_429(stack: Stack) -> Undo:
    """Half of the control-plane requests are throttled with ``Retry-After: 2``."""
    sb = stack.sb
    return _removing(sb, [sb.faults.add(None, status=429, retry_after=2, rate=0.5)])


def fault_latency(stack: Stack) -> Undo:
    """Half of the control-plane and IdP requests answer 2 s late."""
    sb = stack.sb
    rules = [
        sb.faults.add(None, latency=2.0, rate=0.5),
        sb.faults.add(USERPOOL, latency=2.0, rate=0.5),
    ]
    return _removing(sb, rules)


def fault_reset(stack: Stack) -> Undo:
    """30 % of the control-plane requests are hung up on mid-answer."""
    sb = stack.sb
    return _removing(sb, [sb.faults.add(None, reset=True, rate=0.3)])


def fault_malformed(stack: Stack) -> Undo:
    """30 % of the mints answer 200 with a body that is not JSON."""
    sb = stack.sb
    return _removing(sb, [sb.faults.add(MINT, malformed=True, rate=0.3)])


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
    sb = stack.sb
    return _removing(sb, [sb.faults.add(None, status=503)])


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


def _leaks(records: Sequence[logging.LogRecord], secrets: set[str]) -> int:
    formatter = logging.Formatter()
    found = 0
    for record in records:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + formatter.formatException(record.exc_info)
        found += bool(_JWT.search(text)) or any(secret in text for secret in secrets)
    return found


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
        healthy_before = await stack.recover(args.recovery_limit, 1.0, Tally()) is not None
        before = stack.identity_client.statistics()
        mark = len(stack.wire.attempts)
        idp_before = stack.wire.idp
        tally = Tally()
        undo = apply(stack)
        try:
            await stack.drive(seconds, args.every, tally)
        finally:
            undo()
        end = len(stack.wire.attempts)
        after = stack.identity_client.statistics()
        idp = stack.wire.idp - idp_before
        recovery_tally = Tally()
        recovery = await stack.recover(args.recovery_limit, 1.0, recovery_tally)
        # Read after the recovery: a call still retrying when the fault ended has finished.
        during = stack.wire.calls_between(mark, end)
        records = watch.take()
        leaks = _leaks(records, await stack.all_secrets() | tally.tokens | recovery_tally.tokens)
    finally:
        logging.getLogger("agent_identity").removeHandler(watch)
    attempts = sum(len(numbers) for numbers in during.values())
    most = max((len(numbers) for numbers in during.values()), default=0)
    numbered = all(numbers == list(range(1, len(numbers) + 1)) for numbers in during.values())
    return {
        "fault": name,
        "requests": tally.requests,
        "served": tally.served,
        "served_from_cache": tally.from_cache,
        "expired_served": tally.expired + recovery_tally.expired,
        "control_plane_calls": len(during),
        "retries": attempts - len(during),
        "retries_per_call_max": max(most - 1, 0),
        "recovered": recovery is not None,
        "recovery_seconds": None if recovery is None else round(recovery, 3),
        "no_tip": dict(tally.no_tip),
        "expired_served_upstream": tally.expired_upstream + recovery_tally.expired_upstream,
        "attempts": attempts,
        "attempts_numbered": numbered,
        "failed_calls": after.failures - before.failures,
        "idp_requests": idp,
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
    async with open_stack(args, t0) as stack:
        # Every session holds a TIP before the first fault.
        await stack.drive(args.every, args.every, Tally())
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
