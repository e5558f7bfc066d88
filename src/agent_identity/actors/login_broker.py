"""The login broker: pending OIDC logins, keyed by ``state``, single use, short-lived.

``/identity login`` records a pending login (the effective session key it is for, the
``nonce`` the id_token must carry and the PKCE ``code_verifier``) under the OAuth ``state``
it sends to the IdP; the callback takes it back by that ``state``. Rules:

* **Single use.** :meth:`LoginBrokerClient.take` removes the login; taking the same ``state``
  again is refused with :attr:`RefusalReason.USED` (a replayed callback).
* **Short-lived.** A login expires :attr:`LoginBroker.ttl` seconds (5 minutes) after it was
  begun, on Trio's clock; taking it later is refused with :attr:`RefusalReason.EXPIRED`.
* **Bounded.** At most :attr:`LoginBroker.max_per_session` pending logins per session key
  (starting another evicts that session's oldest) and :attr:`LoginBroker.max_pending` overall
  (starting another evicts the oldest of all). An evicted login is refused with
  :attr:`RefusalReason.SUPERSEDED`.
* **Refusals are values.** :class:`LoginRefused` says why (unknown, expired, used,
  superseded); nothing here raises for a bad ``state``. The reason of a finished login is
  remembered for one TTL (bounded like the pending logins), after which its ``state`` is
  simply unknown.
* **Swept.** Expired logins are dropped whenever the broker handles a message, and by a
  periodic :class:`LoginSweeper` (a sibling child that sends :class:`Sweep`), so memory is
  released even when nobody logs in.

Secrets (``nonce``, ``code_verifier``) never appear in a ``repr``. The values, the envelopes
and :class:`LoginBrokerClient` are in :mod:`agent_identity.actors.login_messages`.
"""

from __future__ import annotations

import secrets
from collections import deque
from typing import ClassVar, assert_never

import trio

from agent_identity.actors.login_messages import (
    Begin,
    Discard,
    GetStatistics,
    LoginBrokerMsg,
    LoginBrokerStatistics,
    LoginRefused,
    PendingLogin,
    RefusalReason,
    Sweep,
    Take,
)
from agent_identity.kernel import Actor, Address, Ticker

__all__ = [
    "DEFAULT_LOGIN_TTL",
    "DEFAULT_MAX_PENDING",
    "DEFAULT_MAX_PER_SESSION",
    "DEFAULT_SWEEP_INTERVAL",
    "MAX_STATE_LENGTH",
    "LoginBroker",
    "LoginSweeper",
]

#: Seconds a pending login stays valid.
DEFAULT_LOGIN_TTL = 300.0
#: Pending logins kept per session key.
DEFAULT_MAX_PER_SESSION = 5
#: Pending logins kept overall.
DEFAULT_MAX_PENDING = 10_000
#: Seconds between two sweeps of expired logins.
DEFAULT_SWEEP_INTERVAL = 30.0
#: The longest ``state`` accepted (longer ones are unknown by definition).
MAX_STATE_LENGTH = 512

_STATE_BYTES = 32


# ----------------------------------------------------------------------------- actor


class LoginBroker(Actor[LoginBrokerMsg]):
    """Holds pending logins; see the module docstring for the rules.

    State lives in memory only and is rebuilt empty on every (re)start: a restart (or a
    gateway restart) invalidates the login links in flight, which then fail as unknown.

    Args:
        ttl: Seconds a pending login stays valid.
        max_per_session: Pending logins kept per session key.
        max_pending: Pending logins kept overall (also bounds the remembered refusals).
        name: The actor's name.
    """

    mailbox_size: ClassVar[int] = 64

    def __init__(
        self,
        *,
        ttl: float = DEFAULT_LOGIN_TTL,
        max_per_session: int = DEFAULT_MAX_PER_SESSION,
        max_pending: int = DEFAULT_MAX_PENDING,
        name: str = "login_broker",
    ) -> None:
        if ttl <= 0:
            raise ValueError(f"ttl must be > 0, got {ttl}")
        if max_per_session < 1 or max_pending < 1:
            raise ValueError("the bounds must be >= 1")
        super().__init__(name=name)
        self.ttl = ttl
        self.max_per_session = max_per_session
        self.max_pending = max_pending

    async def on_start(self) -> None:
        """Start with no pending logins."""
        await trio.lowlevel.checkpoint()
        # Both dicts are in insertion order, which is time order (Trio's clock is monotonic).
        self._pending: dict[str, PendingLogin] = {}
        self._finished: dict[str, tuple[RefusalReason, float]] = {}  # state -> (reason, until)
        self._by_session: dict[str, deque[str]] = {}
        self._begun = 0
        self._taken = 0
        self._expired = 0
        self._evicted = 0
        self._refused: dict[str, int] = {}

    def sweeper(self, interval: float = DEFAULT_SWEEP_INTERVAL) -> LoginSweeper:
        """A timer that sweeps this broker every ``interval`` seconds (run it as a sibling)."""
        return LoginSweeper(self.address, interval=interval)

    async def handle(self, msg: LoginBrokerMsg) -> None:
        """Apply one message."""
        await trio.lowlevel.checkpoint()  # no handler awaits anything else
        now = trio.current_time()
        self._sweep(now)
        match msg:
            case Begin():
                self._begin(msg, now)
            case Take(reply=reply, state=state):
                reply.set(self._take(state, now))
            case Discard(reply=reply, session_key=session_key):
                states = list(self._by_session.get(session_key, ()))
                for state in states:
                    self._finish(self._pending[state], RefusalReason.UNKNOWN, now)
                reply.set(len(states))
            case GetStatistics(reply=reply):
                reply.set(self._statistics())
            case Sweep():
                pass  # already done above
            case _:
                assert_never(msg)

    # ------------------------------------------------------------------ internals

    def _begin(self, msg: Begin, now: float) -> None:
        state = msg.state if msg.state is not None else secrets.token_urlsafe(_STATE_BYTES)
        if not state or len(state) > MAX_STATE_LENGTH:
            msg.reply.fail(ValueError("a login state must have 1 to 512 characters"))
            return
        if state in self._pending or state in self._finished:
            msg.reply.fail(ValueError("this login state is already in use"))
            return
        queue = self._by_session.setdefault(msg.session_key, deque())
        while len(queue) >= self.max_per_session:
            self._evict(queue[0], now)
        while len(self._pending) >= self.max_pending:
            self._evict(next(iter(self._pending)), now)
        self._pending[state] = PendingLogin(
            state=state,
            session_key=msg.session_key,
            nonce=msg.nonce,
            code_verifier=msg.code_verifier,
            created_at=now,
            expires_at=now + self.ttl,
            context=dict(msg.context),
        )
        # The evictions may have removed this session's (emptied) queue.
        self._by_session.setdefault(msg.session_key, queue).append(state)
        self._begun += 1
        msg.reply.set(state)

    def _take(self, state: str, now: float) -> PendingLogin | LoginRefused:
        login = self._pending.get(state) if len(state) <= MAX_STATE_LENGTH else None
        if login is not None:
            # Not expired: the sweep at the start of this message dropped those.
            self._finish(login, RefusalReason.USED, now)
            self._taken += 1
            return login
        finished = self._finished.get(state) if len(state) <= MAX_STATE_LENGTH else None
        reason = finished[0] if finished is not None else RefusalReason.UNKNOWN
        self._refused[reason.value] = self._refused.get(reason.value, 0) + 1
        return LoginRefused(reason)

    def _evict(self, state: str, now: float) -> None:
        self._evicted += 1
        self._finish(self._pending[state], RefusalReason.SUPERSEDED, now)

    def _finish(self, login: PendingLogin, reason: RefusalReason, now: float) -> None:
        """Remove a pending login and remember why later takes of its state are refused."""
        del self._pending[login.state]
        queue = self._by_session[login.session_key]
        queue.remove(login.state)
        if not queue:
            del self._by_session[login.session_key]
        if reason is RefusalReason.UNKNOWN:
            return
        while len(self._finished) >= self.max_pending:
            del self._finished[next(iter(self._finished))]
        self._finished[login.state] = (reason, now + self.ttl)

    def _sweep(self, now: float) -> None:
        """Drop expired logins (remembered as expired) and forgotten refusals."""
        while self._pending:
            login = next(iter(self._pending.values()))
            if login.expires_at > now:
                break
            self._expired += 1
            self._finish(login, RefusalReason.EXPIRED, now)
        while self._finished:
            state, (_, until) = next(iter(self._finished.items()))
            if until > now:
                break
            del self._finished[state]

    def _statistics(self) -> LoginBrokerStatistics:
        return LoginBrokerStatistics(
            pending=len(self._pending),
            sessions=len(self._by_session),
            remembered=len(self._finished),
            begun=self._begun,
            taken=self._taken,
            refused=dict(self._refused),
            expired=self._expired,
            evicted=self._evicted,
        )


# --------------------------------------------------------------------------- sweeper


class LoginSweeper(Ticker[LoginBrokerMsg]):
    """A :class:`Ticker` (a sibling child) that sends :class:`Sweep` to a login broker.

    A full or stopped mailbox skips that tick (the next message sweeps anyway).
    """

    def __init__(
        self, address: Address[LoginBrokerMsg], *, interval: float = DEFAULT_SWEEP_INTERVAL
    ) -> None:
        super().__init__(address, Sweep, interval=interval, name="login_sweeper")
