"""The backoff schedule: full jitter bounds, the cap, Retry-After parsing and capping."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from agent_identity.volcengine.retry import (
    DEFAULT_RETRY_POLICY,
    NO_RETRY,
    RetryPolicy,
    parse_retry_after,
)
from agent_identity.volcengine.transport import _transport_error

NOW = datetime(2026, 11, 29, 4, 27, 0, tzinfo=UTC)


class _Extremes(random.Random):
    """A Random whose uniform() returns the lower or the upper bound."""

    def __init__(self, high: bool) -> None:
        super().__init__(0)
        self.high = high

    def uniform(self, a: float, b: float) -> float:
        return b if self.high else a


def test_defaults_match_the_sdk() -> None:
    assert DEFAULT_RETRY_POLICY.max_attempts == 4
    assert NO_RETRY.max_attempts == 1


def test_exponential_bounds_with_cap() -> None:
    policy = RetryPolicy(base_delay=0.25, max_delay=1.0)
    assert [policy.backoff_bound(n) for n in range(1, 6)] == [0.25, 0.5, 1.0, 1.0, 1.0]


def test_full_jitter_spans_zero_to_the_bound() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=3.0)
    assert [policy.delay(n, _Extremes(high=True)) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 3.0]
    assert [policy.delay(n, _Extremes(high=False)) for n in (1, 2, 3)] == [0.0, 0.0, 0.0]


def test_jitter_is_deterministic_with_a_seeded_random() -> None:
    policy = RetryPolicy(base_delay=0.25, max_delay=4.0)
    first = [policy.delay(n, random.Random(42)) for n in (1, 2, 3)]
    again = [policy.delay(n, random.Random(42)) for n in (1, 2, 3)]
    assert first == again
    rng = random.Random(1)
    for retry in (1, 2, 3):
        for _ in range(200):
            assert 0.0 <= policy.delay(retry, rng) <= policy.backoff_bound(retry)


def test_retry_after_overrides_jitter_and_is_capped() -> None:
    policy = RetryPolicy(max_retry_after=10.0)
    rng = _Extremes(high=True)
    assert policy.delay(1, rng, retry_after=2.0) == 2.0
    assert policy.delay(3, rng, retry_after=0.0) == 0.0
    assert policy.delay(1, rng, retry_after=3600.0) == 10.0
    assert policy.delay(1, rng, retry_after=-5.0) == 0.0


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"base_delay": -1.0}, {"max_delay": -1.0}, {"max_retry_after": -1.0}],
)
def test_invalid_policies(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "value", "expected"),
    [
        (429, "3", 3.0),
        (429, " 1.5 ", 1.5),
        (503, "0", 0.0),
        (429, "-4", 0.0),
        (429, None, None),
        (500, "3", None),
        (400, "3", None),
        (429, "soon", None),
        (429, "nan", None),
        (429, "inf", None),
        (429, format_datetime(NOW + timedelta(seconds=7), usegmt=True), 7.0),
        (429, format_datetime(NOW - timedelta(seconds=7), usegmt=True), 0.0),
        (429, "Sun, 29 Nov 2026 04:27:09", None),
    ],
)
def test_parse_retry_after(status: int, value: str | None, expected: float | None) -> None:
    assert parse_retry_after(status, value, NOW) == expected


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (httpx.ConnectError("refused"), "ConnectionError"),
        (httpx.ReadTimeout("slow"), "Timeout"),
        (httpx.RemoteProtocolError("garbled"), "TransportError"),
        (httpx.ReadError(""), "TransportError"),
    ],
)
def test_transport_error_codes(exc: httpx.TransportError, code: str) -> None:
    error = _transport_error(exc, "ListUserPools")
    assert (error.code, error.status, error.action) == (code, None, "ListUserPools")
    assert error.retryable
    assert error.message
