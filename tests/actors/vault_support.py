"""Shared helpers of the credential vault tests (no tests here).

A running vault (with a session store on a memory backend) against the sandbox over real
loopback, TIP minting, acting as the user on the demo OAuth2 provider's consent page, and a
leak check over log records and texts.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import trio

from agent_identity.actors.credential_vault import CredentialVault
from agent_identity.actors.session_store import SessionStore
from agent_identity.actors.session_store_messages import SessionStoreClient
from agent_identity.actors.vault_events import VaultEvent
from agent_identity.actors.vault_flows import PollPolicy
from agent_identity.actors.vault_messages import CredentialVaultClient
from agent_identity.sandbox import Sandbox
from agent_identity.sandbox.browser import submit_consent_form
from agent_identity.storage import MemoryBackend
from agent_identity.volcengine import IdentityClient, RetryPolicy, SigningCredentials
from agent_identity.volcengine.models import GetWorkloadAccessTokenForJWTRequest
from agent_identity.volcengine.transport import static_credentials

USER_POOL = "agent-identity-dev"
AGENT = "openclaw-agent"
APP_CALLBACK = "http://127.0.0.1:9/app/oauth-callback"
#: Fast polling for loopback tests (real time: no autojump with real sockets).
FAST_POLL = PollPolicy(initial=0.02, factor=1.5, maximum=0.1, timeout=30.0)
RETRY = RetryPolicy(max_attempts=2, base_delay=0.0, max_delay=0.0, max_retry_after=0.0)
#: A generous bound for anything that waits on the loopback sandbox.
WAIT = 15.0


async def no_sleep(_seconds: float) -> None:
    await trio.lowlevel.checkpoint()


def identity_client(
    http: httpx.AsyncClient, endpoint: str, sb: Sandbox | None = None
) -> IdentityClient:
    """An Identity client signing with the sandbox's root keys (or dummies, never used)."""
    creds = (
        SigningCredentials(sb.access_key_id, sb.secret_access_key)
        if sb is not None
        else SigningCredentials("AKLTunused", "unused-secret")
    )
    return IdentityClient(
        http,
        endpoint=endpoint,
        credentials=static_credentials(creds),
        retry=RETRY,
        rng=random.Random(7),
        sleep=no_sleep,
    )


def offline_identity(http: httpx.AsyncClient) -> IdentityClient:
    """A client pointing at a closed port: for tests that must not reach any service."""
    return identity_client(http, "http://127.0.0.1:9")


async def mint_tip(client: IdentityClient, sb: Sandbox, sub: str = "alice") -> str:
    user_token = sb.issue_user_token(USER_POOL, sub)
    result = await client.get_workload_access_token_for_jwt(
        GetWorkloadAccessTokenForJWTRequest(user_token=user_token, name=AGENT)
    )
    return result.workload_access_token


@dataclass
class Running:
    """A started vault and store."""

    vault: CredentialVault
    creds: CredentialVaultClient
    store: SessionStore
    sessions: SessionStoreClient
    backend: MemoryBackend
    events: trio.MemoryReceiveChannel[VaultEvent]

    async def next_event(self) -> VaultEvent:
        with trio.fail_after(WAIT):
            return await self.events.receive()


@asynccontextmanager
async def running_vault(identity: IdentityClient, **options: Any) -> AsyncIterator[Running]:
    """Start a session store (memory backend) and a vault in a nursery; stop both after."""
    backend = MemoryBackend()
    store = SessionStore(backend)
    options.setdefault("poll", FAST_POLL)
    vault = CredentialVault(identity, store.client, **options)
    events = vault.events.subscribe()
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        await nursery.start(vault.run)
        yield Running(vault, vault.client, store, store.client, backend, events)
        nursery.cancel_scope.cancel()


async def consent(http: httpx.AsyncClient, url: str, decision: str = "approve") -> httpx.Response:
    """Act as the user on the demo provider's consent page; returns the decision's response.

    With ``http.follow_redirects`` the browser lands on the sandbox's callback page;
    without, the response is the provider's redirect to ``redirect_uri``.
    """
    return await submit_consent_form(http, url, decision=decision, follow_redirects=None)


def leaked(secrets: Iterable[str], texts: Iterable[str]) -> list[str]:
    """Which secrets appear in any of the texts."""
    corpus = list(texts)
    return [secret for secret in secrets if secret and any(secret in text for text in corpus)]


def record_texts(records: Iterable[logging.LogRecord]) -> list[str]:
    found: list[str] = []
    for record in records:
        found.append(record.getMessage())
        if record.exc_text:
            found.append(record.exc_text)
        if record.exc_info and record.exc_info[1] is not None:
            found.append(repr(record.exc_info[1]))
            found.append(str(record.exc_info[1]))
    return found
