"""``FeishuNotifier``: send a text to a Feishu user or chat as the configured app, never failing.

The credentials are ``channels.feishu`` (the Feishu channel plugin's own section, see
:class:`~agent_identity.config.FeishuChannel`); an account's id, secret and domain override
the channel's. The wire format is in :mod:`.feishu_wire`.

* **Tenant token cache.** One ``tenant_access_token`` per app (base URL, app id, secret), kept
  until shortly before its ``expire`` — three minutes before, as the official Go SDK does, or a
  tenth of the lifetime when that is shorter — on an injectable monotonic clock (Trio's by
  default). Accounts that share an app share its token.
* **Single flight.** Concurrent sends that need a token for the same app wait for one request
  and share its outcome, a failure included; if that request's sender is cancelled, a waiter
  takes over.
* **One retry on a rejected token.** When the send API answers one of the token-invalid codes
  (``99991663`` and kin), the cached token is dropped, a new one fetched and the message sent
  once more; a second rejection is the answer.
* **Never fatal.** A follow-up is a courtesy: every failure — no credentials, a bad target, a
  refused token, an HTTP or transport error, the timeout (``timeout`` seconds for the whole
  send, retry included) — comes back as a :class:`SendResult` and is logged at WARNING. Texts
  in results and logs carry status codes and Feishu's ``code``/``msg`` only, with the app
  secret and token scrubbed out even if a server echoed them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

import httpx
import msgspec
import trio

from agent_identity.config import FeishuChannel
from agent_identity.notify.feishu_wire import (
    MESSAGES_PATH,
    OK,
    RETRY_WITH_NEW_TOKEN,
    TOKEN_PATH,
    SendAnswer,
    TokenAnswer,
    resolve_base_url,
    send_body,
    token_body,
)
from agent_identity.notify.results import (
    DEFAULT_TIMEOUT_SECONDS,
    FeishuStatistics,
    SendResult,
    SendStatus,
)
from agent_identity.notify.targets import FeishuTarget, parse_feishu_target

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "REFRESH_MARGIN_SECONDS",
    "FeishuNotifier",
    "FeishuStatistics",
    "SendResult",
    "SendStatus",
]

logger = logging.getLogger(__name__)

REFRESH_MARGIN_SECONDS: Final = 180.0
_MAX_DETAIL_CHARS: Final = 200
_JSON: Final = {"Content-Type": "application/json; charset=utf-8"}
_MASK: Final = "***"


@dataclass(frozen=True, slots=True)
class _App:
    base_url: str
    app_id: str
    # Part of the cache key (a changed secret must not reuse the old token), never shown.
    app_secret: str = field(repr=False)


@dataclass(slots=True)
class _Token:
    value: str = field(repr=False)
    refresh_at: float


@dataclass(slots=True)
class _Flight:
    done: trio.Event = field(default_factory=trio.Event)
    outcome: _Token | SendResult | None = None


def _failed(detail: str, code: int | None = None) -> SendResult:
    return SendResult(SendStatus.FAILED, detail, code=code)


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, _MASK)
    text = " ".join(text.split())
    if len(text) > _MAX_DETAIL_CHARS:
        text = text[: _MAX_DETAIL_CHARS - 1] + "…"
    return text


class FeishuNotifier:
    """Sends follow-up texts through the Feishu Open Platform.

    Args:
        http: The shared HTTP client (the notifier never closes it).
        channel: ``channels.feishu``.
        clock: Seconds on a monotonic clock, for token lifetimes; Trio's clock by default.
        timeout: Seconds one ``send_text`` may take in all (token fetch and retry included).
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        channel: FeishuChannel,
        *,
        clock: Callable[[], float] = trio.current_time,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self._http = http
        self._channel = channel
        self._clock = clock
        self._timeout = timeout
        self._tokens: dict[_App, _Token] = {}
        self._flights: dict[_App, _Flight] = {}
        secrets = [channel.app_secret or ""]
        secrets += [account.app_secret or "" for account in (channel.accounts or {}).values()]
        self._secrets = tuple(secret for secret in secrets if secret)
        self._sends = self._sent = self._failures = 0
        self._token_fetches = self._invalidations = 0

    def statistics(self) -> FeishuStatistics:
        """A snapshot of the counters."""
        return FeishuStatistics(
            sends=self._sends,
            sent=self._sent,
            failures=self._failures,
            token_fetches=self._token_fetches,
            token_invalidations=self._invalidations,
            cached_tokens=len(self._tokens),
        )

    def clear_tokens(self) -> None:
        """Forget every cached token (the next send fetches a new one)."""
        self._tokens.clear()

    async def send_text(
        self, target: str, text: str, *, account_id: str | None = None
    ) -> SendResult:
        """Send a plain-text message; never raises.

        Args:
            target: ``user:ou_…``, ``chat:oc_…``, bare ``ou_…`` / ``oc_…``, or any of these
                behind ``feishu:``.
            text: The message.
            account_id: The Feishu account the conversation belongs to (``None``: the default).

        Returns:
            ``SENT`` with the message id, or ``FAILED`` with a reason.
        """
        self._sends += 1
        result: SendResult = _failed(f"timed out after {self._timeout:g}s")
        try:
            with trio.move_on_after(self._timeout):
                result = await self._send(target, text, account_id)
        except Exception as exc:  # noqa: BLE001 - a follow-up must never break its caller
            # Only the type: an unexpected exception's text is not known to be free of secrets.
            await trio.lowlevel.checkpoint()
            result = _failed(f"unexpected error ({type(exc).__name__})")
        if result.ok:
            self._sent += 1
        else:
            self._failures += 1
            logger.warning("Feishu follow-up to %s not delivered: %s", target, result.detail)
        return result

    async def _send(self, target: str, text: str, account_id: str | None) -> SendResult:
        parsed = parse_feishu_target(target)
        if parsed is None:
            await trio.lowlevel.checkpoint()
            return _failed("not a Feishu user or chat id")
        app = self._app(account_id)
        if isinstance(app, SendResult):
            await trio.lowlevel.checkpoint()
            return app
        retried = False
        while True:
            token = await self._token(app)
            if isinstance(token, SendResult):
                return token
            result = await self._post(app, token, parsed, text)
            if result.code not in RETRY_WITH_NEW_TOKEN or retried:
                return result
            # The token was revoked or expired early: drop it and try once with a new one.
            retried = True
            if self._tokens.get(app) is token:
                del self._tokens[app]
                self._invalidations += 1

    def _app(self, account_id: str | None) -> _App | SendResult:
        credentials = self._channel.credentials_for(account_id)
        if credentials is None:
            where = f" for account {account_id!r}" if account_id else ""
            return _failed(f"no Feishu app id and secret configured{where}")
        account = (self._channel.accounts or {}).get(account_id) if account_id else None
        domain = (account.domain if account is not None else None) or self._channel.domain
        base_url = resolve_base_url(domain)
        if base_url is None:
            return _failed("the Feishu domain is not feishu, lark or an http(s) URL")
        return _App(base_url, *credentials)

    async def _token(self, app: _App) -> _Token | SendResult:
        while True:
            cached = self._tokens.get(app)
            if cached is not None and self._clock() < cached.refresh_at:
                await trio.lowlevel.checkpoint()
                return cached
            flight = self._flights.get(app)
            if flight is None:
                break
            await flight.done.wait()
            if flight.outcome is not None:
                return flight.outcome
            # The fetching send was cancelled before an outcome: go round, maybe fetch.
        flight = _Flight()
        self._flights[app] = flight
        try:
            flight.outcome = await self._fetch_token(app)
            return flight.outcome
        finally:
            del self._flights[app]
            flight.done.set()

    async def _fetch_token(self, app: _App) -> _Token | SendResult:
        self._token_fetches += 1
        # Lifetimes count from before the request, so a slow answer errs on the early side.
        started = self._clock()
        secrets = (*self._secrets, app.app_secret)
        try:
            response = await self._http.post(
                app.base_url + TOKEN_PATH,
                content=token_body(app.app_id, app.app_secret),
                headers=_JSON,
            )
        except httpx.HTTPError as exc:
            # A connect error may come before any checkpoint; keep every path a real await.
            await trio.lowlevel.checkpoint()
            return _failed(f"token request failed: {_describe(exc, secrets)}")
        try:
            answer = msgspec.json.decode(response.content, type=TokenAnswer)
        except (msgspec.DecodeError, UnicodeDecodeError):
            return _failed(f"token request failed: HTTP {response.status_code}, not JSON")
        if answer.code != OK or not answer.tenant_access_token:
            message = _scrub(answer.msg, secrets)
            return _failed(f"token request refused: code {answer.code} ({message})", answer.code)
        expire = max(answer.expire or 0, 0)
        margin = min(REFRESH_MARGIN_SECONDS, expire / 10)
        token = _Token(answer.tenant_access_token, started + expire - margin)
        self._tokens[app] = token
        return token

    async def _post(self, app: _App, token: _Token, target: FeishuTarget, text: str) -> SendResult:
        secrets = (*self._secrets, app.app_secret, token.value)
        try:
            response = await self._http.post(
                app.base_url + MESSAGES_PATH,
                params={"receive_id_type": target.receive_id_type},
                content=send_body(target.receive_id, text),
                headers={**_JSON, "Authorization": f"Bearer {token.value}"},
            )
        except httpx.HTTPError as exc:
            await trio.lowlevel.checkpoint()
            return _failed(f"send failed: {_describe(exc, secrets)}")
        try:
            answer = msgspec.json.decode(response.content, type=SendAnswer)
        except (msgspec.DecodeError, UnicodeDecodeError):
            return _failed(f"send failed: HTTP {response.status_code}, not JSON")
        if answer.code != OK or not response.is_success:
            message = _scrub(answer.msg, secrets)
            return _failed(
                f"send refused: HTTP {response.status_code}, code {answer.code} ({message})",
                answer.code,
            )
        message_id = answer.data.message_id if answer.data is not None else None
        return SendResult(SendStatus.SENT, "sent", message_id=message_id, code=OK)


def _describe(exc: httpx.HTTPError, secrets: Iterable[str]) -> str:
    shown = _scrub(str(exc), secrets)
    return f"{type(exc).__name__}: {shown}" if shown else type(exc).__name__
