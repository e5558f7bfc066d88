"""Shared helpers of the fault tests (no tests here): the TIP path of a system on simulated time.

:func:`open_stack` starts the sandbox on loopback and, against it, the production pieces that
serve TIPs in a running system (``system.tree.build_tree`` wires the same ones): the Identity
client with its default retry policy (4 attempts, full jitter, ``Retry-After``), the TIP
minter, the session store, the OIDC client that renews user tokens with refresh tokens, and
the TIP refresher. Sessions log in through the user pool's real authorization-code flow, so
each holds an id_token *and* a rotating refresh token.

Time: Trio's clock is the ``autojump_clock`` the tests ask for, and every wall clock (the
refresher's, the store's, the clients' ``X-Date``, the ID-token checks) is
``T0 + trio.current_time()``, so hours of TIP lifetimes pass in a second. The sandbox reads
the same clock plus :attr:`SimClock.skew`: setting it skews the control plane and the IdP
against the gateway. ``open_identity`` cannot be used here because its actors read
``time.time``. Loopback I/O is ready as soon as it is written and nothing runs in a worker
thread (the store's backend is in memory), so the clock only jumps when every task waits on
a timer, never while a request is in flight.

What the tests measure:

* every ``get_tip`` answer goes through :meth:`Stack.ask`, which checks it against the
  gateway's clock and the control plane's at the moment it is returned, and counts it in a
  :class:`Tally`;
* every HTTP request the system sends is seen by an httpx request hook (:class:`Wire`):
  control-plane attempts grouped by their ``X-Sdk-Invocation-Id`` (one id per call, the same
  on its retries), IdP requests by path, so retries are counted on the wire, not only by the
  client's own statistics;
* :meth:`Stack.through` applies a fault for a while, removes it and waits for the recovery,
  keeping the client's counters and the wire's marks at each step (a :class:`Window`).

The soak script ``scripts/soak/faults.py`` loads this module by its path and runs the same
stack (the same wiring, clock, counting and leak check) for hours of simulated time.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import random
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import trio

from agent_identity.actors.session_store import SessionStore
from agent_identity.actors.tip_messages import NoTip, TipInfo, TipOutcome, TipRefresherClient
from agent_identity.actors.tip_mint import IdentityTipMinter
from agent_identity.actors.tip_refresher import TipRefresher
from agent_identity.actors.tip_schedule import RefreshPolicy
from agent_identity.config import IdentityConfig
from agent_identity.oidc import OidcClient, OidcSettings, new_login_secrets
from agent_identity.sandbox import Sandbox, open_sandbox
from agent_identity.sandbox.browser import submit_login_form
from agent_identity.sandbox.faults import FaultRule
from agent_identity.storage import MemoryBackend, SessionRecord
from agent_identity.system.services import DEFAULT_HTTP_TIMEOUT
from agent_identity.volcengine import IdentityClient, SigningCredentials
from agent_identity.volcengine.retry import DEFAULT_RETRY_POLICY
from agent_identity.volcengine.transport import TransportStatistics, static_credentials

__all__ = [
    "FIVE_XX",
    "MAX_ATTEMPTS",
    "MINT",
    "POOL",
    "T0",
    "USERPOOL",
    "Attempt",
    "Recovery",
    "SimClock",
    "Stack",
    "Tally",
    "Undo",
    "Window",
    "Wire",
    "add_5xx",
    "late_calls_bound",
    "no_secrets_in",
    "open_stack",
    "within_budget",
]

#: The simulated epoch at Trio time 0 (a fixed instant: runs are reproducible).
T0 = 1_800_000_000.0
POOL = "agent-identity-dev"
CLIENT_ID = "client-openclaw-0001"
CLIENT_SECRET = "openclaw-gateway-client-secret"
PASSWORDS = {"alice": "alice-password", "bob": "bob-password"}
CALLBACK = "http://127.0.0.1:18789/identity/oauth/callback"
MINT = "GetWorkloadAccessTokenForJWT"
#: Where the sandbox serves its user pools' OIDC endpoints (token, JWKS, discovery).
USERPOOL = "/userpool/"
#: The retry budget of one control-plane call: the default policy's attempts.
MAX_ATTEMPTS = DEFAULT_RETRY_POLICY.max_attempts
#: The server errors :func:`add_5xx` answers with.
FIVE_XX = (500, 502, 503, 504)

#: Removes a fault (sandbox rules, a clock skew ...) once it has lasted long enough.
Undo = Callable[[], None]

# A compact JWS anywhere in a text: base64url header starting with '{"', then two more parts.
_JWT = re.compile(r"eyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]{8,}")
_ATTEMPT = re.compile(r"attempt=(\d+)")


def _exp(token: str) -> float:
    claims = jwt.decode(token, options={"verify_signature": False})
    return float(claims["exp"])


class SimClock:
    """The gateway's wall clock, ``T0 + trio.current_time()``; the sandbox's adds :attr:`skew`.

    Attributes:
        skew: Seconds the control plane's and the IdP's clock run ahead of the gateway's
            (negative: behind).
    """

    def __init__(self, t0: float = T0) -> None:
        self.t0 = t0
        self.skew = 0.0

    def __call__(self) -> float:
        return self.t0 + trio.current_time()

    def upstream(self) -> float:
        """The control plane's (and the IdP's) clock."""
        return self() + self.skew

    def utc(self) -> dt.datetime:
        """The gateway's clock as an aware datetime (the Identity client's ``X-Date``)."""
        return dt.datetime.fromtimestamp(self(), dt.UTC)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One control-plane HTTP attempt, as sent."""

    #: Its position among every attempt sent (a :meth:`Wire.mark` taken before it is lower).
    seq: int
    #: Trio time it was sent.
    at: float
    action: str
    #: ``X-Sdk-Invocation-Id``: the same for every attempt of one call.
    invocation: str
    #: ``N`` of ``X-Sdk-Request: attempt=N; max=M``.
    number: int


class Wire:
    """Sees every request the shared HTTP client sends (an httpx request hook)."""

    def __init__(self) -> None:
        self.attempts: list[Attempt] = []
        self.idp: list[tuple[float, str]] = []

    async def on_request(self, request: httpx.Request) -> None:
        """Record one request (httpx awaits this before sending it)."""
        await trio.lowlevel.checkpoint()
        invocation = request.headers.get("x-sdk-invocation-id")
        if invocation is not None:
            found = _ATTEMPT.search(request.headers.get("x-sdk-request", ""))
            self.attempts.append(
                Attempt(
                    seq=len(self.attempts),
                    at=trio.current_time(),
                    action=request.url.params.get("Action", ""),
                    invocation=invocation,
                    number=int(found.group(1)) if found else 0,
                )
            )
        elif request.url.path.startswith(USERPOOL):
            self.idp.append((trio.current_time(), request.url.path))

    def mark(self) -> int:
        """A point in the stream of attempts: later ones have a ``seq`` at least this."""
        return len(self.attempts)

    def calls(self, since: int = 0, until: int | None = None) -> list[list[Attempt]]:
        """The control-plane calls whose first attempt came between two marks, in order.

        A call's later attempts are included even when they came after ``until``.
        """
        stop = len(self.attempts) if until is None else until
        grouped: dict[str, list[Attempt]] = {}
        for attempt in self.attempts:
            grouped.setdefault(attempt.invocation, []).append(attempt)
        return [each for each in grouped.values() if since <= each[0].seq < stop]

    def idp_requests(self, since: float = -math.inf, until: float = math.inf) -> list[str]:
        """The paths of the IdP requests sent in ``[since, until)``."""
        return [path for at, path in self.idp if since <= at < until]


@dataclass
class Tally:
    """What the asking client got over a period."""

    requests: int = 0
    served: int = 0
    from_cache: int = 0
    #: Answers whose TIP had expired by the gateway's clock when it was returned: never.
    expired: int = 0
    #: Answers whose TIP had expired by the control plane's clock (matters under skew).
    expired_upstream: int = 0
    #: The least lifetime any served TIP had left (gateway clock), in seconds.
    least_left: float = math.inf
    #: The longest an ask waited for its answer (Trio seconds).
    slowest: float = 0.0
    #: The longest an ask answered from the cache waited (Trio seconds).
    slowest_cached: float = 0.0
    #: Answers without a TIP, by ``NoTip.code``.
    no_tip: Counter[str] = field(default_factory=Counter)
    #: Every TIP handed out (to look for them in logs).
    tokens: set[str] = field(default_factory=set, repr=False)

    def count(self, outcome: TipOutcome, *, now: float, upstream: float, waited: float) -> None:
        """Count one answer returned at gateway time ``now`` after ``waited`` seconds."""
        self.requests += 1
        self.slowest = max(self.slowest, waited)
        if isinstance(outcome, NoTip):
            self.no_tip[outcome.code] += 1
            return
        self.served += 1
        self.from_cache += outcome.cached
        if outcome.cached:
            self.slowest_cached = max(self.slowest_cached, waited)
        self.expired += outcome.expires_at <= now
        # The token's own ``exp`` (the control plane's clock), not the refresher's reading.
        self.expired_upstream += _exp(outcome.token) <= upstream
        self.least_left = min(self.least_left, outcome.expires_at - now)
        self.tokens.add(outcome.token)

    def assert_all_from_cache(self) -> None:
        """Every ask got a cached TIP, none expired by either clock (the cache covered a fault)."""
        assert self.served == self.from_cache == self.requests
        assert self.expired == self.expired_upstream == 0


@dataclass(frozen=True, slots=True)
class Recovery:
    """How a stack came back after a fault was removed."""

    #: Trio seconds from the removal until every session was healthy; None: not in time.
    seconds: float | None
    #: What the asking client got meanwhile.
    tally: Tally

    @property
    def recovered(self) -> bool:
        """Whether every session became healthy in time."""
        return self.seconds is not None

    def assert_within(self, seconds: float) -> None:
        """Every session became healthy, at most ``seconds`` after the fault was removed."""
        assert self.recovered
        assert self.seconds is not None
        assert self.seconds <= seconds


@dataclass(frozen=True, slots=True)
class Window:
    """A fault applied for a while, removed, and recovered from (:meth:`Stack.through`)."""

    #: The Identity client's counters as the fault began.
    before: TransportStatistics
    #: :meth:`Wire.mark` and Trio time as the fault began.
    start: int
    began: float
    #: What the asking client got under the fault.
    during: Tally
    #: :meth:`Wire.mark` and Trio time as the fault was removed.
    end: int
    ended: float
    #: The counters as the fault was removed.
    removed: TransportStatistics
    recovery: Recovery
    #: The counters once recovered.
    after: TransportStatistics
    #: The control-plane calls that began under the fault, with every attempt of each (read
    #: after the recovery: a call still retrying at the removal has finished).
    calls: list[list[Attempt]]
    #: The paths of the IdP requests sent under the fault.
    idp: list[str]


@dataclass
class Stack:
    """The sandbox and the system's TIP path on one simulated clock (see the module docstring)."""

    sb: Sandbox
    http: httpx.AsyncClient
    clock: SimClock
    wire: Wire
    identity_client: IdentityClient
    oidc: OidcClient
    store: SessionStore
    refresher: TipRefresher
    sessions: list[str] = field(default_factory=list)
    #: Every answer of the run.
    total: Tally = field(default_factory=Tally)
    #: Every user token, refresh token and access token the logins produced.
    login_secrets: set[str] = field(default_factory=set)

    @property
    def tips(self) -> TipRefresherClient:
        """The refresher's client (what the host handlers ask)."""
        return self.refresher.client

    @property
    def policy(self) -> RefreshPolicy:
        """The refresher's policy (serve margin, backoff cap)."""
        return self.refresher.policy

    def transport(self) -> TransportStatistics:
        """The Identity client's counters (calls, attempts, retries, errors by code)."""
        return self.identity_client.statistics()

    async def login(self, key: str, username: str = "alice") -> None:
        """Log ``username`` in under ``key`` through the user pool's form and store the session."""
        secrets = new_login_secrets()
        url = await self.oidc.authorization_url(secrets)
        # The form's redirect carries the one-time code, and httpcore logs response headers
        # at DEBUG: that is this test's browser, not the system under test, so it stays out
        # of the logs the tests (and the suite's leak check) look at.
        quiet = logging.root.manager.disable
        logging.disable(logging.DEBUG)
        try:
            answer = await submit_login_form(
                self.http,
                url,
                username=username,
                password=PASSWORDS[username],
                follow_redirects=False,
            )
        finally:
            logging.disable(quiet)
        assert answer.status_code in (302, 303), answer.text
        query = parse_qs(urlsplit(answer.headers["location"]).query)
        tokens = await self.oidc.exchange_code(
            query["code"][0],
            code_verifier=secrets.code_verifier,
            nonce=secrets.nonce,
            iss=query["iss"][0],
        )
        assert tokens.claims is not None
        assert tokens.id_token is not None
        self.login_secrets.update(
            each for each in (tokens.id_token, tokens.refresh_token, tokens.access_token) if each
        )
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

    async def ask(self, key: str, tally: Tally | None = None) -> TipOutcome:
        """Ask for a session's TIP like a host handler, checking and counting the answer."""
        start = trio.current_time()
        outcome = await self.tips.get_tip(key)
        waited = trio.current_time() - start
        for each in (self.total, tally):
            if each is not None:
                each.count(outcome, now=self.clock(), upstream=self.clock.upstream(), waited=waited)
        return outcome

    async def ask_all(self, tally: Tally | None = None) -> list[TipOutcome]:
        """Ask for every session's TIP at once; the answers in session order."""
        answers: dict[str, TipOutcome] = {}

        async def one(key: str) -> None:
            answers[key] = await self.ask(key, tally)

        async with trio.open_nursery() as nursery:
            for key in self.sessions:
                nursery.start_soon(one, key)
        return [answers[key] for key in self.sessions]

    async def refresh_all(self) -> float:
        """Mint a fresh TIP for every session now; returns when (Trio time), to plan faults by.

        Afterwards every TIP expires ``tip_seconds`` from now and is due for refresh at 75 to
        85 % of that, so a fault window can be placed over the refreshes.
        """
        for key in self.sessions:
            outcome = await self.tips.refresh(key)
            assert isinstance(outcome, TipInfo), outcome
            assert not outcome.cached
        return trio.current_time()

    async def drive(self, seconds: float, *, every: float = 2.0) -> Tally:
        """Ask for every session's TIP every ``every`` seconds for ``seconds``; what came back."""
        tally = Tally()
        start = trio.current_time()
        tick = 0
        while trio.current_time() < start + seconds:
            await self.ask_all(tally)
            tick += 1
            # A fixed cadence: an ask that waited on a mint does not shift the later ones.
            await trio.sleep_until(start + tick * every)
        return tally

    async def healthy(self, tally: Tally | None = None) -> bool:
        """Every session gets a TIP, and none is still backing off after a failed refresh."""
        answers = await self.ask_all(tally)
        if not all(isinstance(answer, TipInfo) for answer in answers):
            return False
        listed = {summary.session_key: summary for summary in await self.tips.list_tips()}
        return all(key in listed and listed[key].failures == 0 for key in self.sessions)

    async def recover(self, *, within: float, every: float = 1.0) -> Recovery:
        """Keep asking until every session is healthy again (the fault was just removed)."""
        tally = Tally()
        start = trio.current_time()
        while not await self.healthy(tally):
            if trio.current_time() - start >= within:
                return Recovery(None, tally)
            await trio.sleep(every)
        return Recovery(trio.current_time() - start, tally)

    def removing(self, rules: Sequence[FaultRule]) -> Undo:
        """What removes the sandbox's fault ``rules``."""

        def undo() -> None:
            for rule in rules:
                self.sb.faults.remove(rule)

        return undo

    async def through(
        self, undo: Undo, seconds: float, *, every: float = 2.0, within: float = 60.0
    ) -> Window:
        """Drive for ``seconds`` under an applied fault, ``undo`` it, then :meth:`recover`.

        Apply the fault just before (without awaiting anything in between): the counters
        and marks of the window are taken here.

        Args:
            undo: Removes the fault.
            seconds: How long the fault lasts.
            every: Seconds between asks (:meth:`drive`).
            within: The longest wait for the recovery.
        """
        before, start, began = self.transport(), self.wire.mark(), trio.current_time()
        try:
            during = await self.drive(seconds, every=every)
        finally:
            undo()
        end, ended = self.wire.mark(), trio.current_time()
        removed = self.transport()
        recovery = await self.recover(within=within)
        return Window(
            before=before,
            start=start,
            began=began,
            during=during,
            end=end,
            ended=ended,
            removed=removed,
            recovery=recovery,
            after=self.transport(),
            calls=self.wire.calls(start, end),
            idp=self.wire.idp_requests(began, ended),
        )

    async def stored_secrets(self) -> set[str]:
        """The user and refresh tokens the store holds now (renewals replaced the logins')."""
        found: set[str] = set()
        for key in self.sessions:
            view = await self.store.client.get(key, renewable=True)
            if view is not None:
                found.add(view.user_token)
            refresh = await self.store.client.get_refresh_token(key)
            if refresh is not None:
                found.add(refresh)
        return found

    async def secrets(self) -> set[str]:
        """Every secret the run handled: keys, client secret, passwords and every token."""
        return {
            self.sb.secret_access_key,
            CLIENT_SECRET,
            *PASSWORDS.values(),
            *self.login_secrets,
            *self.total.tokens,
            *await self.stored_secrets(),
        }


def add_5xx(sb: Sandbox, target: str | None, rate: float) -> list[FaultRule]:
    """Answer ``rate`` of the requests to ``target`` with 500, 502, 503 or 504, in equal shares."""
    share = rate / len(FIVE_XX)
    # Rules are rolled in order, so each later one fires only on what the earlier ones let
    # through: its own rate is the share over what is left.
    return [
        sb.faults.add(target, status=status, rate=share / (1.0 - n * share))
        for n, status in enumerate(FIVE_XX)
    ]


def within_budget(calls: Iterable[list[Attempt]]) -> int:
    """Check every call's attempts are numbered 1, 2, ... and at most the budget; the most."""
    most = 0
    for attempts in calls:
        assert [a.number for a in attempts] == list(range(1, len(attempts) + 1)), attempts
        assert len({a.action for a in attempts}) == 1, attempts
        most = max(most, len(attempts))
    assert most <= MAX_ATTEMPTS
    return most


class _LowestJitter(random.Random):
    """A jitter source that always picks the low end: the shortest back-off a policy allows."""

    def uniform(self, a: float, b: float) -> float:
        del b
        return a


def late_calls_bound(seconds: float, policy: RefreshPolicy | None = None) -> int:
    """The most mints one session's asks can start in ``seconds`` after its TIP ran out.

    Every failed mint holds the session's asks back for its miss back-off (none after the
    first, then doubling to the cap, each at least half its ceiling): however often the
    session is asked for, its calls are spaced at least that far apart.
    """
    policy = policy or RefreshPolicy()
    if policy.miss_backoff_base <= 0:
        raise ValueError("the policy holds no ask back: any number of calls is possible")
    lowest = _LowestJitter()
    calls, spent = 0, 0.0
    while spent <= seconds:
        calls += 1
        spent += policy.miss_backoff(calls, lowest)
    return calls


def no_secrets_in(records: Iterable[logging.LogRecord], secrets: set[str]) -> list[str]:
    """The log lines (message and traceback) that show a secret or any JWT; [] when clean."""
    formatter = logging.Formatter()
    leaks: list[str] = []
    for record in records:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + formatter.formatException(record.exc_info)
        if _JWT.search(text) or any(secret in text for secret in secrets):
            leaks.append(f"{record.name}: {text[:200]}")
    return leaks


@asynccontextmanager
async def open_stack(
    *,
    sessions: int = 3,
    tip_seconds: int = 300,
    seed: int = 1,
    skew: float = 0.0,
    t0: float = T0,
    user_token_seconds: int | None = None,
) -> AsyncIterator[Stack]:
    """Run the sandbox and the TIP path on a simulated clock, with ``sessions`` logged in.

    Args:
        sessions: How many sessions to log in (alice and bob in turn).
        tip_seconds: The TIP lifetime asked for (``identity.durationSeconds``).
        seed: Seeds the sandbox's fault rolls and the clients' jitter.
        skew: How far the sandbox's clock runs ahead of the gateway's from the start.
        t0: The wall-clock time at Trio time 0 (the soak's ``--real`` passes the real one).
        user_token_seconds: The id_token lifetime at the IdP (default: the seed's).

    Yields:
        The running stack, every session logged in and no TIP minted yet.
    """
    clock = SimClock(t0)
    clock.skew = skew
    wire = Wire()
    async with (
        open_sandbox(rng=random.Random(seed), clock=clock.upstream) as sb,
        httpx.AsyncClient(
            timeout=DEFAULT_HTTP_TIMEOUT, event_hooks={"request": [wire.on_request]}
        ) as http,
        trio.open_nursery() as nursery,
    ):
        if user_token_seconds is not None:
            pool = sb.state.user_pool(POOL)
            assert pool is not None, POOL
            pool.clients[CLIENT_ID].id_token_lifetime = user_token_seconds
        identity_client = IdentityClient(
            http,
            endpoint=sb.base_url,
            credentials=static_credentials(
                SigningCredentials(sb.access_key_id, sb.secret_access_key)
            ),
            rng=random.Random(seed + 1),
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
        config = IdentityConfig(duration_seconds=tip_seconds)
        refresher = TipRefresher(
            IdentityTipMinter.from_config(identity_client, config),
            store.client,
            config=config,
            renewer=oidc,
            rng=random.Random(seed + 2),
            wall=clock,
        )
        await nursery.start(refresher.run)
        stack = Stack(sb, http, clock, wire, identity_client, oidc, store, refresher)
        try:
            for n in range(sessions):
                await stack.login(f"agent:main:reliability-{n}", ("alice", "bob")[n % 2])
            yield stack
        finally:
            # Stop the actors gracefully even when the test is being cancelled, never hang.
            with trio.move_on_after(10, shield=True):
                await refresher.stop()
                await store.stop()
            nursery.cancel_scope.cancel()
