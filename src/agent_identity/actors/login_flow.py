"""The OIDC login flow: ``/identity login`` starts it, the callback completes it.

:class:`LoginFlow` ties three parts together: the login broker (pending logins by
``state``), the OIDC client (authorize URL, code exchange, ID-token validation) and the
session store (where the new session is put, durably and encrypted).

* :meth:`LoginFlow.start_login` makes fresh login secrets, records the pending login for
  the effective session key and returns the authorize URL for the user to open.
* :meth:`LoginFlow.complete` takes the callback's query parameters and returns a
  :class:`LoginOutcome`, never raising for anything a browser or an IdP can send. In order:

  1. ``state`` must be present and take a pending login from the broker (unknown, expired,
     replayed and superseded states are refused). The login is consumed either way, so a
     failed callback cannot be retried with the same link.
  2. The IdP's own ``error`` (e.g. ``access_denied``) is reported with its description.
     This happens only after the state check: a forged link with an unknown state cannot
     put the attacker's text on our page.
  3. The code is exchanged with the login's PKCE verifier; the ID token is validated
     (signature, issuer, audience, expiry, and the login's ``nonce``).
  4. The session is put into the store and is on disk when ``complete`` returns.
  5. Subscribers get a :class:`LoginSucceeded` event (non-blocking), and the optional
     ``acquire_tip`` hook runs. Neither can fail the login: the session already exists,
     and a TIP can be obtained again on demand.

  No session is stored unless every check passed. Failure messages are written for the
  user; they never contain a token, a code, a verifier or a secret.

The outcome satisfies the callback transport's ``CallbackResult`` protocol (``ok``,
``sub``, ``message``), and the flow its ``LoginCompleter`` protocol.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import trio

from agent_identity.actors.login_messages import LoginBrokerClient, LoginRefused, RefusalReason
from agent_identity.actors.session_store import SessionStoreClient
from agent_identity.kernel import ActorStopped, DeadlineExceeded, EventFanout
from agent_identity.oidc import (
    OidcClient,
    OidcError,
    TokenSet,
    new_login_secrets,
    parse_authorization_response,
)
from agent_identity.storage import SessionRecord

__all__ = [
    "DEFAULT_TIP_HOOK_TIMEOUT",
    "AcquireTip",
    "LoginEvents",
    "LoginFailure",
    "LoginFlow",
    "LoginOutcome",
    "LoginSucceeded",
]

logger = logging.getLogger(__name__)

#: Seconds the ``acquire_tip`` hook may take before it is abandoned.
DEFAULT_TIP_HOOK_TIMEOUT = 15.0


class LoginFailure(enum.StrEnum):
    """Why a callback did not create a session (stable codes for logs and metrics)."""

    #: The callback had no ``state``.
    STATE_MISSING = "state_missing"
    #: The ``state`` was never issued, or is long forgotten.
    STATE_UNKNOWN = "state_unknown"
    #: The login is older than the broker's TTL.
    STATE_EXPIRED = "state_expired"
    #: The login was already completed (a replayed callback).
    STATE_USED = "state_used"
    #: A newer login for the same session replaced it.
    STATE_SUPERSEDED = "state_superseded"
    #: The IdP returned an ``error`` (e.g. ``access_denied``).
    IDP_ERROR = "idp_error"
    #: The callback lacks its ``code``.
    CALLBACK_INVALID = "callback_invalid"
    #: The code exchange or the ID-token validation failed.
    TOKEN_REJECTED = "token_rejected"  # noqa: S105 - a reason code, not a credential
    #: The session could not be stored.
    STORE_FAILED = "store_failed"


_REFUSALS: Mapping[RefusalReason, LoginFailure] = {
    RefusalReason.UNKNOWN: LoginFailure.STATE_UNKNOWN,
    RefusalReason.EXPIRED: LoginFailure.STATE_EXPIRED,
    RefusalReason.USED: LoginFailure.STATE_USED,
    RefusalReason.SUPERSEDED: LoginFailure.STATE_SUPERSEDED,
}
_STATE_MISSING = "The login response has no state. Start a new login with /identity login."
_STORE_FAILED = "The login worked, but the session could not be saved. Try again."


@dataclass(frozen=True, slots=True)
class LoginOutcome:
    """The result of a callback: a new session, or why there is none.

    Attributes:
        ok: Whether a session was created.
        message: A user-safe sentence (the reason, on failure).
        session_key: The effective session key (on success, and on failures after the
            state was matched).
        sub: The user's subject (on success).
        name: The ``name`` claim, if any (on success).
        email: The ``email`` claim, if any (on success).
        failure: Why it failed (None on success).
        detail: A stable sub-reason for logs, e.g. the OIDC ``reason_code``.
    """

    ok: bool
    message: str
    session_key: str | None = None
    sub: str | None = None
    name: str | None = None
    email: str | None = None
    failure: LoginFailure | None = None
    detail: str | None = None
    context: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class LoginSucceeded:
    """Published after a session was stored (for the notification layer).

    Attributes:
        session_key: The effective session key.
        sub: The user's subject.
        name: The ``name`` claim, if any.
        email: The ``email`` claim, if any.
        context: What ``start_login`` was given (e.g. where to send a notice).
    """

    session_key: str
    sub: str
    name: str | None = None
    email: str | None = None
    context: Mapping[str, str] = field(default_factory=dict)


#: The TIP hook: called with the new session record after it is stored.
AcquireTip = Callable[[SessionRecord], Awaitable[object]]


class LoginEvents(EventFanout[LoginSucceeded]):
    """Fan-out of :class:`LoginSucceeded` to subscribers, never blocking the publisher.

    Each subscriber gets its own bounded memory channel; when it is full or closed the event
    is dropped for that subscriber (and counted), so a slow listener cannot stall logins.
    """

    def __init__(self) -> None:
        super().__init__("login", logger=logger)


class LoginFlow:
    """Starts and completes OIDC logins; see the module docstring.

    Args:
        broker: The login broker.
        oidc: The OIDC client of the configured user pool.
        sessions: The session store.
        events: Where :class:`LoginSucceeded` is published; a new one by default.
        acquire_tip: Optional hook run after a session is stored (e.g. mint a TIP).
        tip_hook_timeout: Seconds the hook may take.
        now: Wall-clock seconds, for the session's ``login_at``.
    """

    def __init__(
        self,
        broker: LoginBrokerClient,
        oidc: OidcClient,
        sessions: SessionStoreClient,
        *,
        events: LoginEvents | None = None,
        acquire_tip: AcquireTip | None = None,
        tip_hook_timeout: float = DEFAULT_TIP_HOOK_TIMEOUT,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._broker = broker
        self._oidc = oidc
        self._sessions = sessions
        self.events = events if events is not None else LoginEvents()
        self._acquire_tip = acquire_tip
        self._tip_timeout = tip_hook_timeout
        self._now = now

    async def start_login(
        self, session_key: str, *, context: Mapping[str, str] | None = None
    ) -> str:
        """Record a pending login for ``session_key`` and return the URL to open.

        Args:
            session_key: The *effective* session key the session will be stored under.
            context: Values handed back in :class:`LoginSucceeded` (e.g. the chat to notify).

        Returns:
            The IdP's authorize URL (state, nonce and PKCE challenge included).

        Raises:
            OidcError: The provider's metadata could not be fetched.
            ActorStopped: The login broker is not running.
        """
        secrets = new_login_secrets()
        url = await self._oidc.authorization_url(secrets)
        await self._broker.begin(
            session_key,
            nonce=secrets.nonce,
            code_verifier=secrets.code_verifier,
            state=secrets.state,
            context=context,
        )
        return url

    async def complete(self, params: Mapping[str, str]) -> LoginOutcome:
        """Complete a login from the callback's query parameters (see the module docstring).

        Raises:
            ActorStopped: The login broker is not running (an infrastructure failure).
        """
        state = params.get("state")
        if not state:
            await trio.lowlevel.checkpoint()
            return _failed(LoginFailure.STATE_MISSING, _STATE_MISSING)
        login = await self._broker.take(state)
        if isinstance(login, LoginRefused):
            return _failed(_REFUSALS[login.reason], login.message)
        key = login.session_key
        try:
            response = parse_authorization_response(params)
            tokens = await self._oidc.exchange_code(
                response.code,
                code_verifier=login.code_verifier,
                nonce=login.nonce,
                iss=response.iss,
            )
        except OidcError as exc:
            failure = {
                "authorization_denied": LoginFailure.IDP_ERROR,
                "callback_invalid": LoginFailure.CALLBACK_INVALID,
            }.get(exc.reason_code, LoginFailure.TOKEN_REJECTED)
            logger.info("login for %s failed: %s (%s)", key, exc.reason_code, exc.message)
            return _failed(failure, exc.message, key=key, detail=exc.reason_code)
        record = self._record(key, tokens)
        if record is None:
            return _failed(
                LoginFailure.TOKEN_REJECTED,
                "The identity provider returned no usable ID token.",
                key=key,
                detail="id_token_missing",
            )
        try:
            await self._sessions.put(record)
        except (ActorStopped, DeadlineExceeded):
            logger.exception("the session of %s could not be stored", key)
            return _failed(LoginFailure.STORE_FAILED, _STORE_FAILED, key=key, detail="store")
        logger.info("login for %s succeeded (sub %s)", key, record.sub)
        self.events.publish(
            LoginSucceeded(key, record.sub, record.name, record.email, dict(login.context))
        )
        await self._run_tip_hook(record)
        return LoginOutcome(
            ok=True,
            message=f"Logged in as {record.sub}.",
            session_key=key,
            sub=record.sub,
            name=record.name,
            email=record.email,
            context=dict(login.context),
        )

    def _record(self, key: str, tokens: TokenSet) -> SessionRecord | None:
        claims = tokens.claims
        if tokens.id_token is None or claims is None:
            return None
        return SessionRecord(
            session_key=key,
            sub=claims.sub,
            user_token=tokens.id_token,
            expires_at=float(claims.exp),
            login_at=self._now(),
            refresh_token=tokens.refresh_token,
            email=claims.email,
            name=claims.name,
        )

    async def _run_tip_hook(self, record: SessionRecord) -> None:
        hook = self._acquire_tip
        if hook is None:
            await trio.lowlevel.checkpoint()
            return
        with trio.move_on_after(self._tip_timeout) as scope:
            await _call_tip_hook(hook, record)
        if scope.cancelled_caught:
            logger.warning("acquiring a TIP after the login of %s timed out", record.sub)


async def _call_tip_hook(hook: AcquireTip, record: SessionRecord) -> None:
    await trio.lowlevel.checkpoint()  # a hook that fails at once still yields
    try:
        await hook(record)
    except Exception:  # the session exists; a TIP can be had again on demand
        logger.exception("acquiring a TIP after the login of %s failed", record.sub)


def _failed(
    failure: LoginFailure, message: str, *, key: str | None = None, detail: str | None = None
) -> LoginOutcome:
    return LoginOutcome(
        ok=False, message=message, session_key=key, failure=failure, detail=detail or failure
    )
