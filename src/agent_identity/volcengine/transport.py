"""The signed-call core shared by the Identity and STS clients.

One :class:`SignedTransport` talks to one service (``id`` or ``sts``) at one endpoint over a
shared :class:`httpx.AsyncClient`. Every call is ``POST https://host/?Action=..&Version=..``
with the body bytes that were hashed being exactly the bytes sent, signed per attempt with a
fresh ``X-Date`` and freshly fetched credentials (so a refreshing credential chain plugs in).
Like the official SDK it sends ``X-Sdk-Invocation-Id`` (stable across the attempts of one call)
and ``X-Sdk-Request: attempt=N; max=M``; being ``X-`` headers, both are signed.

Retries follow :mod:`agent_identity.volcengine.retry` and respect the caller's Trio deadline: a
wait that would end past ``trio.current_effective_deadline()`` is not started, the last error is
raised at once instead.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar
from urllib.parse import urlencode

import httpx
import msgspec
import trio

from agent_identity.volcengine.envelope import parse_response
from agent_identity.volcengine.errors import VolcengineError, VolcengineTransportError
from agent_identity.volcengine.retry import DEFAULT_RETRY_POLICY, RetryPolicy, parse_retry_after
from agent_identity.volcengine.signer import SigningCredentials, canonical_query, sign_request

__all__ = [
    "FORM_CONTENT_TYPE",
    "JSON_CONTENT_TYPE",
    "Clock",
    "CredentialsSource",
    "SignedTransport",
    "Sleep",
    "TransportStatistics",
    "base_url",
    "encode_json_body",
    "static_credentials",
    "utc_now",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

JSON_CONTENT_TYPE = "application/json"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"

CredentialsSource = Callable[[], Awaitable[SigningCredentials]]
"""An async callable returning the credentials to sign the next attempt with."""
Clock = Callable[[], datetime]
"""The wall clock (aware UTC datetimes): X-Date, Retry-After dates, credential expiry."""
Sleep = Callable[[float], Awaitable[None]]
"""How to wait between attempts; ``trio.sleep`` except in tests that record the schedule."""

_JSON_ENCODER = msgspec.json.Encoder(order="sorted")


def encode_json_body(request: msgspec.Struct | None) -> bytes:
    """The JSON body of a request: compact, keys sorted (the SDK also sends them sorted).

    Unset optionals are absent (the models' ``omit_defaults``); None encodes as ``{}``.
    """
    return _JSON_ENCODER.encode(request) if request is not None else b"{}"


def utc_now() -> datetime:
    """The real wall clock, as an aware UTC datetime."""
    return datetime.now(UTC)


def static_credentials(credentials: SigningCredentials) -> CredentialsSource:
    """Wrap fixed credentials as a :data:`CredentialsSource`."""

    async def source() -> SigningCredentials:
        await trio.lowlevel.checkpoint()
        return credentials

    return source


def base_url(endpoint: str) -> tuple[str, str]:
    """Split an endpoint URL into ``(scheme://netloc, netloc)``; the path is always ``/``.

    Args:
        endpoint: E.g. ``https://id.cn-beijing.volcengineapi.com`` or ``http://127.0.0.1:8080``.

    Returns:
        The base URL without a path, and the Host header value to sign.

    Raises:
        ValueError: The endpoint is not an absolute http(s) URL.
    """
    url = httpx.URL(endpoint)
    if url.scheme not in {"http", "https"} or not url.host:
        raise ValueError(f"endpoint must be an absolute http(s) URL, got {endpoint!r}")
    netloc = url.netloc.decode("ascii")
    return f"{url.scheme}://{netloc}", netloc


@dataclass(frozen=True, slots=True)
class TransportStatistics:
    """Counters of one transport, for metrics.

    Attributes:
        calls: Calls started.
        attempts: HTTP attempts made (a call makes one, plus one per retry).
        retries: Attempts beyond the first.
        successes: Calls that returned a result.
        failures: Calls that raised.
        errors_by_code: Failed attempts by error code (``ServiceUnavailable``, ...).
    """

    calls: int = 0
    attempts: int = 0
    retries: int = 0
    successes: int = 0
    failures: int = 0
    errors_by_code: Mapping[str, int] = field(default_factory=dict)


def _transport_error(exc: httpx.TransportError, action: str) -> VolcengineTransportError:
    if isinstance(exc, httpx.TimeoutException):
        code = "Timeout"
    elif isinstance(exc, httpx.ConnectError):
        code = "ConnectionError"
    else:
        code = "TransportError"
    # httpx messages name the failure (and at most the URL, which carries no secret).
    detail = str(exc) or type(exc).__name__
    return VolcengineTransportError(status=None, code=code, message=detail, action=action)


def _describe(error: VolcengineError) -> str:
    """What went wrong with one attempt, for the retry log: status and code, or what failed.

    A connection-level failure has no status; its message (httpx's own, which names no
    header or body) says what happened instead: a reset, a timeout, a refused connection.
    """
    if error.status is not None:
        return f"HTTP {error.status} {error.code}"
    return f"{error.code}: {error.message}"


class SignedTransport:
    """Signs, sends and retries calls to one Volcengine service.

    Args:
        http: The shared HTTP client (its timeouts bound each attempt).
        endpoint: The service base URL, e.g. ``https://id.cn-beijing.volcengineapi.com``.
        service: The signing service, ``id`` or ``sts``.
        version: The API version sent with every action.
        region: The signing region.
        credentials: Returns the credentials for each attempt.
        retry: The retry policy.
        rng: The jitter source (seed it in tests).
        now: The wall clock used for ``X-Date`` and ``Retry-After`` dates.
        sleep: Waits between attempts (``trio.sleep``; tests inject a recorder).

    Raises:
        ValueError: The endpoint is not an absolute http(s) URL.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        endpoint: str,
        service: str,
        version: str,
        region: str,
        credentials: CredentialsSource,
        retry: RetryPolicy = DEFAULT_RETRY_POLICY,
        rng: random.Random | None = None,
        now: Clock = utc_now,
        sleep: Sleep = trio.sleep,
    ) -> None:
        self._http = http
        self._base, self._host = base_url(endpoint)
        self.service = service
        self.version = version
        self.region = region
        self._credentials = credentials
        self._retry = retry
        # Jitter only: spreading retries needs no cryptographic randomness.
        self._rng = rng if rng is not None else random.Random()  # noqa: S311
        self._now = now
        self._sleep = sleep
        self._calls = 0
        self._attempts = 0
        self._retries = 0
        self._successes = 0
        self._failures = 0
        self._errors: Counter[str] = Counter()

    @property
    def endpoint(self) -> str:
        """The base URL requests go to (``scheme://host[:port]``)."""
        return self._base

    @property
    def host(self) -> str:
        """The Host header value that is signed."""
        return self._host

    def statistics(self) -> TransportStatistics:
        """A snapshot of the counters."""
        return TransportStatistics(
            calls=self._calls,
            attempts=self._attempts,
            retries=self._retries,
            successes=self._successes,
            failures=self._failures,
            errors_by_code=dict(self._errors),
        )

    async def call_json(
        self, action: str, request: msgspec.Struct | None, result_type: type[T]
    ) -> T:
        """Call an action with a JSON body (the Identity API).

        Args:
            action: The action, e.g. ``GetUserPool``.
            request: The request Struct (PascalCase on the wire); None sends ``{}``.
            result_type: The type ``Result`` decodes into.

        Returns:
            The decoded result.

        Raises:
            VolcengineError: The call failed (after retries where they apply).
        """
        body = encode_json_body(request)
        return await self.call(action, body, JSON_CONTENT_TYPE, result_type)

    async def call_form(
        self, action: str, form: Iterable[tuple[str, str]], result_type: type[T]
    ) -> T:
        """Call an action with a form body (STS), fields sorted by name like the SDK.

        Args:
            action: The action, e.g. ``AssumeRole``.
            form: The form fields.
            result_type: The type ``Result`` decodes into.

        Returns:
            The decoded result.

        Raises:
            VolcengineError: The call failed (after retries where they apply).
        """
        body = urlencode(sorted(form)).encode("ascii")
        return await self.call(action, body, FORM_CONTENT_TYPE, result_type)

    async def call(self, action: str, body: bytes, content_type: str, result_type: type[T]) -> T:
        """Send one call with retries; the body bytes are signed and sent as they are.

        Args:
            action: The action name.
            body: The exact body bytes.
            content_type: The ``Content-Type`` (signed).
            result_type: The type ``Result`` decodes into.

        Returns:
            The decoded result.

        Raises:
            VolcengineError: The call failed: a non-retryable error, the last retryable one
                once attempts ran out, or the one standing when the deadline left no room to
                wait for another attempt.
        """
        self._calls += 1
        invocation_id = str(uuid.uuid4())
        max_attempts = self._retry.max_attempts
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._attempt(
                    action, body, content_type, result_type, invocation_id, attempt
                )
            except _RetryableAttemptError as failed:
                error, retry_after = failed.error, failed.retry_after
            except VolcengineError as final:
                self._errors[final.code] += 1
                self._failures += 1
                raise
            self._errors[error.code] += 1
            if attempt >= max_attempts:
                self._failures += 1
                raise error
            delay = self._retry.delay(attempt, self._rng, retry_after)
            if trio.current_time() + delay >= trio.current_effective_deadline():
                # Sleeping would outlive the caller's deadline: give up now with the real cause
                # rather than be cancelled mid-sleep with nothing to show.
                self._failures += 1
                logger.debug("%s: no time left for attempt %d, giving up", action, attempt + 1)
                raise error
            logger.debug(
                "%s: attempt %d/%d failed (%s), retrying in %.3fs",
                action,
                attempt,
                max_attempts,
                _describe(error),
                delay,
            )
            await self._sleep(delay)
            self._retries += 1

    async def _attempt(
        self,
        action: str,
        body: bytes,
        content_type: str,
        result_type: type[T],
        invocation_id: str,
        attempt: int,
    ) -> T:
        credentials = await self._credentials()
        query = [("Action", action), ("Version", self.version)]
        headers = sign_request(
            method="POST",
            host=self._host,
            path="/",
            query=query,
            headers={
                "Accept": JSON_CONTENT_TYPE,
                "Content-Type": content_type,
                "X-Sdk-Invocation-Id": invocation_id,
                "X-Sdk-Request": f"attempt={attempt}; max={self._retry.max_attempts}",
            },
            body=body,
            credentials=credentials,
            region=self.region,
            service=self.service,
            moment=self._now(),
        )
        self._attempts += 1
        url = f"{self._base}/?{canonical_query(query)}"
        try:
            response = await self._http.post(url, content=body, headers=headers)
        except httpx.TransportError as exc:
            error = _transport_error(exc, action)
            # Kept for debugging; the httpx error's own text names no header or body.
            error.__cause__ = exc
            raise _RetryableAttemptError(error, None) from exc
        try:
            result = parse_response(
                response.status_code, response.content, action=action, result_type=result_type
            )
        except VolcengineError as error:
            if not error.retryable:
                raise
            retry_after = parse_retry_after(
                response.status_code, response.headers.get("retry-after"), self._now()
            )
            raise _RetryableAttemptError(error, retry_after) from error
        self._successes += 1
        logger.debug("%s: HTTP %d after %d attempt(s)", action, response.status_code, attempt)
        return result


class _RetryableAttemptError(Exception):
    """Internal: one attempt failed in a way worth retrying."""

    def __init__(self, error: VolcengineError, retry_after: float | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after
