"""LLM re-evaluation of a rules verdict: one cached, single-flight review per distinct call.

:class:`LlmRiskChecker` asks the configured model (see :mod:`.llm_protocol` for the wire
format) and turns its answer into a :class:`~.risk_model.RiskAssessment` with
``source="llm"``. The model may lower or raise the level.

* **Failure keeps the rules.** A timeout (``timeoutMs``, on Trio's clock via
  :func:`trio.move_on_after`), a transport error, an HTTP error status or an unusable answer
  leaves the rules' assessment as it was (``source="rules"``) with ``llm_error`` saying why —
  only a status code or a short description, never a body, URL or key. It is logged at
  WARNING the same way.
* **Cache.** Good verdicts are kept for ``cacheTtlMs`` (0: no cache) on an injectable clock
  (Trio's by default), keyed by a SHA-256 of the tool name and params; at most
  ``max_cache_entries`` are kept (expired, then oldest dropped first). Failures are not
  cached, so a flaky model is retried by the next call.
* **Single flight.** Concurrent reviews of the same key share one request: followers wait for
  the leader's outcome (a failure included). If the leader is cancelled, a follower takes over.
* **Compat retry.** An OpenAI-compatible server that answers 400 to the optional fields
  (``response_format``, ``temperature``, ``max_tokens``) is asked once more without them, and
  from then on never sent them again.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Final, cast

import httpx
import msgspec
import trio

from agent_identity.authz.llm_protocol import (
    LlmAnswerError,
    LlmVerdict,
    build_request,
    build_user_message,
    parse_response,
)
from agent_identity.authz.risk_model import RiskAssessment
from agent_identity.config import LlmRiskCheckConfig

__all__ = ["DEFAULT_MAX_CACHE_ENTRIES", "LlmRiskChecker", "LlmRiskStatistics", "call_digest"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_CACHE_ENTRIES: Final = 1024
MAX_RESPONSE_BYTES: Final = 256 * 1024


class LlmRiskStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of one checker.

    Attributes:
        calls: HTTP requests sent to the model (a compat retry counts as a second one).
        cache_hits: Reviews answered from the cache.
        coalesced: Reviews that waited for an identical one in flight instead of calling.
        failures: Reviews whose outcome was a failure (timeout, HTTP error, bad answer).
        successes: Reviews that got a usable verdict from the model.
        cached: Verdicts in the cache now.
    """

    calls: int
    cache_hits: int
    coalesced: int
    failures: int
    successes: int
    cached: int


def call_digest(tool: str, params: Mapping[str, Any]) -> str:
    """A stable digest of a tool call (key order does not matter)."""
    try:
        encoded = msgspec.json.encode([tool, params], order="sorted")
    except (TypeError, ValueError, msgspec.EncodeError):
        # Params that are not JSON (only possible from in-process callers): fall back to repr,
        # stable enough for a cache key.
        encoded = repr((tool, sorted(params.items(), key=lambda kv: str(kv[0])))).encode()
    return hashlib.sha256(encoded).hexdigest()


class _CallError(Exception):
    """One review failed; the message is safe to log and show."""


@dataclass(slots=True)
class _Flight:
    done: trio.Event = field(default_factory=trio.Event)
    outcome: LlmVerdict | str | None = None


class LlmRiskChecker:
    """Reviews tool calls with an LLM (``authz.llmRiskCheck``).

    Args:
        config: The LLM settings.
        http: The shared HTTP client (the checker never closes it).
        clock: Seconds on a monotonic clock for cache expiry; Trio's clock by default.
        max_cache_entries: Bound on cached verdicts.
    """

    def __init__(
        self,
        config: LlmRiskCheckConfig,
        http: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = trio.current_time,
        max_cache_entries: int = DEFAULT_MAX_CACHE_ENTRIES,
    ) -> None:
        self._config = config
        self._http = http
        self._clock = clock
        self._max_entries = max(1, max_cache_entries)
        self._ttl = config.cache_ttl_ms / 1000
        self._timeout = config.timeout_ms / 1000
        self._compat = False
        self._cache: dict[str, tuple[float, LlmVerdict]] = {}
        self._flights: dict[str, _Flight] = {}
        self._calls = self._hits = self._coalesced = self._failures = self._successes = 0

    def statistics(self) -> LlmRiskStatistics:
        """A snapshot of the counters."""
        return LlmRiskStatistics(
            calls=self._calls,
            cache_hits=self._hits,
            coalesced=self._coalesced,
            failures=self._failures,
            successes=self._successes,
            cached=len(self._cache),
        )

    def clear_cache(self) -> None:
        """Forget every cached verdict."""
        self._cache.clear()

    async def reevaluate(
        self, tool: str, params: Mapping[str, Any], rules: RiskAssessment
    ) -> RiskAssessment:
        """Ask the LLM about a call the rules assessed; keep the rules' verdict on failure.

        Args:
            tool: The normalised tool name.
            params: The call's params.
            rules: The rules' assessment (the evaluator only passes ``medium`` ones).

        Returns:
            The LLM's assessment (``source="llm"``, the rule ids kept), or ``rules`` with
            ``llm_error`` set.
        """
        outcome = await self._review(tool, params, rules)
        if isinstance(outcome, str):
            logger.warning(
                "LLM risk check failed (%s); keeping the rules' %s verdict for %s",
                outcome,
                rules.risk,
                tool,
            )
            return msgspec.structs.replace(rules, llm_error=outcome)
        return RiskAssessment(
            risk=outcome.risk,
            reason=outcome.reason,
            source="llm",
            rule_ids=rules.rule_ids,
            rule_risk=rules.rule_risk or rules.risk,
        )

    async def _review(
        self, tool: str, params: Mapping[str, Any], rules: RiskAssessment
    ) -> LlmVerdict | str:
        key = call_digest(tool, params)
        cached = self._cache.get(key)
        if cached is not None and cached[0] > self._clock():
            self._hits += 1
            await trio.lowlevel.checkpoint()
            return cached[1]
        counted = False
        while (flight := self._flights.get(key)) is not None:
            if not counted:
                self._coalesced += 1
                counted = True
            await flight.done.wait()
            if flight.outcome is not None:
                return flight.outcome
            # The leader was cancelled before it had an outcome: go round, maybe lead.
        flight = _Flight()
        self._flights[key] = flight
        try:
            outcome = await self._ask(build_user_message(tool, params, rules))
            flight.outcome = outcome
            if isinstance(outcome, LlmVerdict):
                self._successes += 1
                self._store(key, outcome)
            else:
                self._failures += 1
            return outcome
        finally:
            del self._flights[key]
            flight.done.set()

    def _store(self, key: str, verdict: LlmVerdict) -> None:
        if self._ttl <= 0:
            return
        now = self._clock()
        self._cache.pop(key, None)  # re-insert at the end: insertion order is age order
        self._cache[key] = (now + self._ttl, verdict)
        if len(self._cache) > self._max_entries:
            for stale in [k for k, (expires, _) in self._cache.items() if expires <= now]:
                del self._cache[stale]
        while len(self._cache) > self._max_entries:
            del self._cache[next(iter(self._cache))]

    async def _ask(self, user_message: str) -> LlmVerdict | str:
        failure = f"timed out after {self._config.timeout_ms} ms"
        with trio.move_on_after(self._timeout):
            await trio.lowlevel.checkpoint()  # a guaranteed cancel point inside the scope
            try:
                return await self._exchange(user_message)
            except _CallError as exc:
                failure = str(exc)
        return failure

    async def _exchange(self, user_message: str) -> LlmVerdict:
        status, body = await self._post(user_message)
        if status == 400 and not self._compat and self._config.api == "openai-completions":
            # Some OpenAI-compatible servers refuse response_format/temperature/max_tokens.
            self._compat = True
            status, body = await self._post(user_message)
        if not 200 <= status < 300:
            raise _CallError(f"HTTP {status}")
        try:
            return parse_response(self._config.api, body)
        except LlmAnswerError as exc:
            raise _CallError(str(exc)) from None

    async def _post(self, user_message: str) -> tuple[int, bytes]:
        url, headers, content = build_request(self._config, user_message, compat=self._compat)
        self._calls += 1
        chunks: list[bytes] = []
        size = 0
        try:
            async with self._http.stream(
                "POST", url, headers=headers, content=content, timeout=self._timeout + 1
            ) as response:
                # aclosing: leaving the loop early must close the byte stream right here
                # (httpx types it as an iterator; it is an async generator).
                chunks_in = cast("AsyncGenerator[bytes, None]", response.aiter_bytes())
                async with aclosing(chunks_in) as stream:
                    async for chunk in stream:
                        size += len(chunk)
                        if size > MAX_RESPONSE_BYTES:
                            break
                        chunks.append(chunk)
                status = response.status_code
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            # The type only: an exception text may carry the URL, and with it a query secret.
            raise _CallError(f"request failed ({type(exc).__name__})") from None
        if size > MAX_RESPONSE_BYTES:
            raise _CallError("response too large")
        return status, b"".join(chunks)
