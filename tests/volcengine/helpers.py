"""Test helpers: a leak watch, a request recorder and a sleep recorder."""

from __future__ import annotations

import base64
import json
import logging
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx
import trio

from agent_identity.sandbox import Sandbox
from agent_identity.sandbox.browser import submit_consent_form

# Values shorter than this are too generic to search for (e.g. "x"); every real secret is longer.
_MIN_SECRET = 8


def sandbox_secrets(sb: Sandbox) -> list[str]:
    """Every secret the sandbox knows of."""
    state = sb.state
    found = [state.root_secret_access_key]
    for key in state.temporary_keys.values():
        found += [key.secret_access_key, key.session_token]
    for provider in state.providers.values():
        found.append(getattr(provider, "client_secret", "") or getattr(provider, "api_key", ""))
    for pool in state.user_pools.values():
        found += [client.secret for client in pool.clients.values()]
        found += [user.password for user in pool.users.values()]
    found += [token.access_token for token in state.oauth_tokens.values()]
    found += [cred.data for cred in state.user_credentials.values()]
    return found


def error_texts(error: BaseException) -> list[str]:
    """What an error can show: str, repr, args, its formatted traceback, and its causes."""
    texts = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts += [str(current), repr(current), *map(repr, current.args)]
        current = current.__cause__ or current.__context__
    texts += traceback.format_exception_only(error)
    return texts


@dataclass
class LeakWatch:
    """Collects secrets, errors and sandboxes; asserts no secret shows up anywhere."""

    secrets: set[str] = field(default_factory=set)
    errors: list[BaseException] = field(default_factory=list)
    sandboxes: list[Sandbox] = field(default_factory=list)
    extra_texts: list[str] = field(default_factory=list)

    def secret(self, *values: str | None) -> None:
        """Register values that must never appear in a log line or an error text."""
        self.secrets.update(v for v in values if v and len(v) >= _MIN_SECRET)

    def text(self, *values: str) -> None:
        """Register more text to check (e.g. a repr a test produced)."""
        self.extra_texts.extend(values)

    def texts(self, records: Iterable[logging.LogRecord]) -> list[str]:
        """Every text under watch."""
        found = list(self.extra_texts)
        for record in records:
            found.append(record.getMessage())
            if record.exc_info and record.exc_info[1] is not None:
                found += error_texts(record.exc_info[1])
            if record.exc_text:
                found.append(record.exc_text)
        for error in self.errors:
            found += error_texts(error)
        return found

    def leaks(self, records: Iterable[logging.LogRecord]) -> list[tuple[str, str]]:
        """(secret prefix, text prefix) for every secret found in a watched text."""
        return [
            (secret[:6], text[:120])
            for text in self.texts(records)
            for secret in self.secrets
            if secret in text
        ]

    def assert_clean(self, records: Iterable[logging.LogRecord]) -> None:
        """Fail when a secret leaked (the message shows only prefixes of what leaked)."""
        leaks = self.leaks(records)
        assert not leaks, f"secrets leaked: {leaks[:5]}"


@dataclass
class RequestRecorder:
    """An httpx request hook keeping every request sent (headers and body)."""

    requests: list[httpx.Request] = field(default_factory=list)

    async def __call__(self, request: httpx.Request) -> None:
        self.requests.append(request)
        await trio.lowlevel.checkpoint()

    def for_action(self, action: str) -> list[httpx.Request]:
        """The requests that called ``action``."""
        return [r for r in self.requests if r.url.params.get("Action") == action]


@dataclass
class SleepRecorder:
    """A ``sleep`` for the transport that records the waits and does not wait."""

    delays: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await trio.lowlevel.checkpoint()


def jwt_claims(token: str) -> dict[str, object]:
    """The payload of a compact JWS, unverified (the tests only read what the sandbox minted)."""
    payload = token.split(".")[1]
    claims: dict[str, object] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


async def consent(http: httpx.AsyncClient, url: str, decision: str = "approve") -> httpx.Response:
    """Act as the user on the demo OAuth2 provider's consent page; returns its redirect."""
    return await submit_consent_form(http, url, decision=decision, follow_redirects=None)
