"""When and how long to wait before retrying a control-plane call.

The policy mirrors the official SDK (API notes section 1.2): up to 4 attempts in total, retrying
only HTTP 429/500/502/503/504 and connection-level failures, never another 4xx. The wait is
exponential backoff with *full jitter* (a uniform draw between 0 and the exponential bound, so a
fleet of clients that failed together does not retry together), except that a server's
``Retry-After`` on 429/503 is honoured, capped so a hostile or buggy value cannot park a caller.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

__all__ = ["DEFAULT_RETRY_POLICY", "NO_RETRY", "RetryPolicy", "parse_retry_after"]

_RETRY_AFTER_STATUSES = frozenset({429, 503})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retry limits and backoff shape.

    Attributes:
        max_attempts: Attempts in total, the first included (the SDK's ``max=4``).
        base_delay: The bound of the first backoff, in seconds; doubled per retry.
        max_delay: The largest bound the exponential growth may reach.
        max_retry_after: The cap applied to a server's ``Retry-After``.
    """

    max_attempts: int = 4
    base_delay: float = 0.25
    max_delay: float = 4.0
    max_retry_after: float = 10.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_retry_after < 0:
            raise ValueError("delays must not be negative")

    def backoff_bound(self, retry: int) -> float:
        """The upper bound of the jittered wait before retry number ``retry`` (1-based)."""
        return min(self.max_delay, self.base_delay * 2.0 ** (retry - 1))

    def delay(self, retry: int, rng: random.Random, retry_after: float | None = None) -> float:
        """How long to wait before retry number ``retry`` (1 = the second attempt).

        Args:
            retry: Which retry this is, starting at 1.
            rng: The random source of the jitter (injectable for deterministic tests).
            retry_after: The server's ``Retry-After`` in seconds, when it sent one.

        Returns:
            The wait in seconds: the capped ``Retry-After`` when given, else a uniform draw in
            ``[0, backoff_bound(retry)]``.
        """
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        jittered: float = rng.uniform(0.0, self.backoff_bound(retry))
        return jittered


DEFAULT_RETRY_POLICY = RetryPolicy()
NO_RETRY = RetryPolicy(max_attempts=1)


def parse_retry_after(status: int, value: str | None, now: datetime) -> float | None:
    """Read a ``Retry-After`` header (delta-seconds or an HTTP date) of a 429/503 answer.

    Args:
        status: The HTTP status; the header counts only on 429 and 503.
        value: The header value, or None when absent.
        now: The wall clock, to turn an HTTP date into a delay.

    Returns:
        The delay in seconds (never negative), or None when absent, not applicable or garbled.
    """
    if value is None or status not in _RETRY_AFTER_STATUSES:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None or now.tzinfo is None:
        return None
    return max((moment - now).total_seconds(), 0.0)
