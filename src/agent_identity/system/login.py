"""Lazy OIDC: the login flow of the system, whose OIDC client is opened on first use.

Opening the OIDC client needs no network in explicit mode but does in dynamic mode (the
user pool and its client are looked up through the control plane), and the client's first
real use fetches the discovery document. Neither may delay or fail the start of the system,
so both are deferred:

* :class:`LazyOidc` opens the client with :func:`~agent_identity.oidc.open_oidc_client` the
  first time it is needed (single-flight: concurrent callers share one open; a failure is not
  cached, the next caller tries again). It also renews user tokens for the TIP refresher
  (it satisfies the refresher's ``UserTokenRenewer`` protocol).
* :class:`LazyLoginFlow` builds the :class:`~agent_identity.actors.login_flow.LoginFlow` on
  that client on first use, and has the flow's ``start_login`` / ``complete`` surface, so it
  is the callback app's ``LoginCompleter``. Its :attr:`LazyLoginFlow.events` exist from the
  start, so listeners can subscribe before any login happens.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import httpx
import trio

from agent_identity.actors.login_flow import (
    AcquireTip,
    LoginEvents,
    LoginFailure,
    LoginFlow,
    LoginOutcome,
)
from agent_identity.actors.login_messages import LoginBrokerClient
from agent_identity.actors.session_store_messages import SessionStoreClient
from agent_identity.config import UserPoolConfig
from agent_identity.oidc import IdTokenClaims, OidcClient, OidcError, TokenSet, open_oidc_client
from agent_identity.volcengine.identity import IdentityClient

__all__ = ["LazyLoginFlow", "LazyOidc"]

logger = logging.getLogger(__name__)

_UNAVAILABLE = "Login is not available right now (the identity provider could not be reached)."


class LazyOidc:
    """Opens the OIDC client of the ``userpool`` config on first use.

    Args:
        config: The ``userpool`` section.
        http: The shared HTTP client.
        identity_client: The Identity client (dynamic mode, identity-provider lookup).
    """

    def __init__(
        self, config: UserPoolConfig, http: httpx.AsyncClient, identity_client: IdentityClient
    ) -> None:
        self._config = config
        self._http = http
        self._identity = identity_client
        self._client: OidcClient | None = None
        self._lock = trio.Lock()
        self.opens = 0
        self.failures = 0

    @property
    def opened(self) -> bool:
        """Whether the client has been opened."""
        return self._client is not None

    async def get(self) -> OidcClient:
        """Return the client, opening it first if needed (single-flight).

        Raises:
            OidcError: The ``userpool`` config is incomplete, or (dynamic mode) the user
                pool could not be resolved.
        """
        async with self._lock:
            if self._client is None:
                try:
                    self._client = await open_oidc_client(self._config, self._http, self._identity)
                except OidcError:
                    self.failures += 1
                    raise
                self.opens += 1
            return self._client

    async def refresh(self, refresh_token: str, *, expected_sub: str | None = None) -> TokenSet:
        """Redeem a refresh token with the (lazily opened) client.

        Raises:
            OidcError: The client could not be opened, or the provider refused or failed.
        """
        client = await self.get()
        return await client.refresh(refresh_token, expected_sub=expected_sub)

    async def validate_id_token(self, token: str, *, nonce: str | None = None) -> IdTokenClaims:
        """Verify an id token of the user pool with the (lazily opened) client.

        Raises:
            OidcError: The client could not be opened, or the token is invalid.
        """
        client = await self.get()
        return await client.validate_id_token(token, nonce=nonce)


class LazyLoginFlow:
    """A :class:`LoginFlow` built on first use, on the client of a :class:`LazyOidc`.

    Args:
        oidc: The lazy OIDC client.
        broker: The login broker.
        sessions: The session store.
        events: Where logins are published (shared with the flow once it exists).
        acquire_tip: The hook the flow runs after a session is stored.
    """

    def __init__(
        self,
        oidc: LazyOidc,
        broker: LoginBrokerClient,
        sessions: SessionStoreClient,
        *,
        events: LoginEvents,
        acquire_tip: AcquireTip | None = None,
    ) -> None:
        self.oidc = oidc
        self.events = events
        self._broker = broker
        self._sessions = sessions
        self._acquire_tip = acquire_tip
        self._flow: LoginFlow | None = None

    async def flow(self) -> LoginFlow:
        """Return the login flow, opening the OIDC client first if needed.

        Raises:
            OidcError: The OIDC client could not be opened.
        """
        if self._flow is None:
            client = await self.oidc.get()
            if self._flow is None:  # another task may have built it meanwhile
                self._flow = LoginFlow(
                    self._broker,
                    client,
                    self._sessions,
                    events=self.events,
                    acquire_tip=self._acquire_tip,
                )
        else:
            await trio.lowlevel.checkpoint()
        return self._flow

    async def start_login(
        self, session_key: str, *, context: Mapping[str, str] | None = None
    ) -> str:
        """Record a pending login and return the authorize URL (see :meth:`LoginFlow.start_login`).

        Raises:
            OidcError: The OIDC client could not be opened or its metadata fetched.
            ActorStopped: The login broker is not running.
        """
        flow = await self.flow()
        return await flow.start_login(session_key, context=context)

    async def complete(self, params: Mapping[str, str]) -> LoginOutcome:
        """Complete a login from the callback's query (see :meth:`LoginFlow.complete`).

        Never raises for what a browser or an IdP can send; an OIDC client that cannot be
        opened is a failed outcome too.

        Raises:
            ActorStopped: The login broker is not running.
        """
        try:
            flow = await self.flow()
        except OidcError as exc:
            await trio.lowlevel.checkpoint()
            logger.warning("login callback: the OIDC client is unavailable (%s)", exc.reason_code)
            return LoginOutcome(
                ok=False,
                message=_UNAVAILABLE,
                failure=LoginFailure.TOKEN_REJECTED,
                detail=exc.reason_code,
            )
        return await flow.complete(params)
