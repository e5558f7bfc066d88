"""Shared helpers of the TIP refresher tests (no tests here): a sandbox stack on real loopback.

Every component (sandbox, Identity and STS clients, OIDC client, session store, refresher)
reads one :class:`WallClock`, so a test can move wall-clock time forward in one step (a TIP
ages an hour instantly) while Trio's clock and the sockets stay real.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import trio

from agent_identity.actors.session_store import SessionStore, SessionStoreClient
from agent_identity.actors.tip_messages import NoTip, TipInfo, TipOutcome, TipRefresherClient
from agent_identity.actors.tip_mint import IdentityTipMinter, TipMinter
from agent_identity.actors.tip_refresher import TipRefresher
from agent_identity.actors.tip_schedule import RefreshPolicy
from agent_identity.config import IdentityConfig
from agent_identity.oidc import OidcClient, OidcSettings, TokenSet, new_login_secrets
from agent_identity.sandbox import Sandbox, open_sandbox
from agent_identity.sandbox.browser import submit_login_form
from agent_identity.storage import MemoryBackend, SessionRecord
from agent_identity.volcengine import (
    IdentityClient,
    RetryPolicy,
    SigningCredentials,
    StsClient,
)
from agent_identity.volcengine.transport import static_credentials

POOL = "agent-identity-dev"
CLIENT_ID = "client-openclaw-0001"
CLIENT_SECRET = "openclaw-gateway-client-secret"
CALLBACK = "http://127.0.0.1:18789/identity/oauth/callback"
MINT = "GetWorkloadAccessTokenForJWT"
CREATE = "CreateWorkloadIdentity"
RETRY = RetryPolicy(max_attempts=2, base_delay=0.0, max_delay=0.0, max_retry_after=0.0)


async def no_sleep(_seconds: float) -> None:
    await trio.lowlevel.checkpoint()


class WallClock:
    """Real time plus an offset that tests move forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def utc(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self(), dt.UTC)

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def claims_of(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


def tip(outcome: TipOutcome) -> TipInfo:
    """The TipInfo of an outcome (fails the test with the reason otherwise)."""
    assert isinstance(outcome, TipInfo), outcome
    return outcome


def no_tip(outcome: TipOutcome) -> NoTip:
    assert isinstance(outcome, NoTip), outcome
    return outcome


@dataclass
class Env:
    """A sandbox, a store and factories for clients and refreshers, all on one wall clock."""

    sb: Sandbox
    http: httpx.AsyncClient
    wall: WallClock
    store: SessionStore
    nursery: trio.Nursery
    refreshers: list[TipRefresher] = field(default_factory=list)

    @property
    def sessions(self) -> SessionStoreClient:
        return self.store.client

    def identity_client(self, credentials: SigningCredentials | None = None) -> IdentityClient:
        creds = credentials or SigningCredentials(self.sb.access_key_id, self.sb.secret_access_key)
        return IdentityClient(
            self.http,
            endpoint=self.sb.base_url,
            credentials=static_credentials(creds),
            retry=RETRY,
            rng=random.Random(7),
            now=self.wall.utc,
            sleep=no_sleep,
        )

    async def role_credentials(self, role: str = "openclaw-agent") -> SigningCredentials:
        """STS temporary keys of ``role`` (AssumeRole with the root keys)."""
        root = SigningCredentials(self.sb.access_key_id, self.sb.secret_access_key)
        sts = StsClient(
            self.http,
            credentials=static_credentials(root),
            endpoint=self.sb.base_url,
            retry=RETRY,
            now=self.wall.utc,
            sleep=no_sleep,
        )
        assumed = await sts.assume_role(self.sb.state.role_trn(role), "tip-refresher-test")
        return assumed.signing_credentials()

    def oidc(self) -> OidcClient:
        settings = OidcSettings(
            discovery_url=self.sb.user_pool_discovery_url(POOL),
            client_id=CLIENT_ID,
            redirect_uri=CALLBACK,
            client_secret=CLIENT_SECRET,
        )
        return OidcClient(settings, self.http, jwks_min_refetch_interval=0.0, now=self.wall)

    async def oidc_login(self, oidc: OidcClient, username: str = "alice") -> TokenSet:
        """A real authorization-code login (form post), stopping at the callback redirect."""
        secrets = new_login_secrets()
        answer = await submit_login_form(
            self.http,
            await oidc.authorization_url(secrets),
            username=username,
            password=f"{username}-password",
            follow_redirects=False,
        )
        assert answer.status_code in (302, 303), answer.text
        query = parse_qs(urlsplit(answer.headers["location"]).query)
        return await oidc.exchange_code(
            query["code"][0],
            code_verifier=secrets.code_verifier,
            nonce=secrets.nonce,
            iss=query["iss"][0],
        )

    async def login(
        self,
        key: str,
        sub: str = "alice",
        *,
        ttl: int = 4 * 3600,
        user_token: str | None = None,
        refresh_token: str | None = None,
        expires_at: float | None = None,
    ) -> SessionRecord:
        """Store a session for ``key`` (a sandbox-issued id_token unless one is given)."""
        token = user_token or self.sb.issue_user_token(POOL, sub, ttl=ttl)
        record = SessionRecord(
            session_key=key,
            sub=sub,
            user_token=token,
            expires_at=expires_at if expires_at is not None else float(claims_of(token)["exp"]),
            login_at=self.wall(),
            refresh_token=refresh_token,
        )
        await self.sessions.put(record)
        return record

    async def start(
        self,
        config: IdentityConfig | None = None,
        *,
        client: IdentityClient | None = None,
        minter: TipMinter | None = None,
        renewer: OidcClient | None = None,
        policy: RefreshPolicy | None = None,
        seed: int = 1,
        name: str = "tip_refresher",
    ) -> tuple[TipRefresher, TipRefresherClient]:
        config = config or IdentityConfig()
        if minter is None:
            minter = IdentityTipMinter.from_config(client or self.identity_client(), config)
        refresher = TipRefresher(
            minter,
            self.sessions,
            config=config,
            renewer=renewer,
            policy=policy,
            rng=random.Random(seed),
            wall=self.wall,
            name=name,
        )
        await self.nursery.start(refresher.run)
        self.refreshers.append(refresher)
        return refresher, refresher.client


@asynccontextmanager
async def open_env() -> AsyncIterator[Env]:
    wall = WallClock()
    async with (
        open_sandbox(rng=random.Random(20261129), clock=wall) as sb,
        httpx.AsyncClient(timeout=30) as http,
        trio.open_nursery() as nursery,
    ):
        store = SessionStore(MemoryBackend(now=wall), now=wall)
        await nursery.start(store.run)
        env = Env(sb, http, wall, store, nursery)
        try:
            yield env
        finally:
            # Stop the actors gracefully even when the test is being cancelled, but never hang.
            with trio.move_on_after(10, shield=True):
                for refresher in env.refreshers:
                    await refresher.stop()
                await store.stop()
            nursery.cancel_scope.cancel()
