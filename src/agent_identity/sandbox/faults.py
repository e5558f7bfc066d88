"""Fault injection: errors, throttling, latency, resets and garbage bodies, set at run time.

A rule matches an API ``Action`` by name (None: every API action), or a non-API path when the
name starts with ``/`` (e.g. ``/latest/region_id``, a prefix match). Rules are tried in the
order they were added; the first that matches *and* fires (its ``rate``, rolled on the
injectable :class:`random.Random`) applies. A rule with a ``count`` expires after that many
hits. Faulted answers still carry the proper error envelope; a ``reset`` rule answers nothing
usable at all: the connection is dropped mid-answer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["FAULT_CODES", "FaultRule", "Faults"]

FAULT_CODES = {
    400: "InvalidRequest",
    401: "InvalidAccessKey",
    403: "AccessDenied",
    404: "ResourceNotFound",
    429: "RequestLimitExceeded",
    500: "InternalError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}

Malformed = Literal[False, True, "text", "envelope"]


@dataclass(eq=False, slots=True)
class FaultRule:
    """One injected fault.

    Attributes:
        action: The Action it hits, a path prefix (``/...``), or None for every API action.
        status: The HTTP status of the injected error, or None for a latency-only rule that
            lets the real answer through after the delay.
        rate: The probability that a matching request is hit.
        count: How many hits are left before the rule expires (None: never).
        latency: Seconds to sleep (trio time) before answering.
        retry_after: A ``Retry-After`` header value, in seconds.
        malformed: Answer 200 with a broken body: True/``"text"`` for non-JSON,
            ``"envelope"`` for JSON without ``ResponseMetadata``.
        code: The ``Error.Code``; default from the status (429 ``RequestLimitExceeded``, 503
            ``ServiceUnavailable``, ...).
        reset: Drop the connection instead of answering: the head goes out promising a body
            that never comes, and the connection is closed (the client sees the peer hang
            up mid-answer, as after a reset). Wins over every other effect but ``latency``.
        hits: How many requests it has hit so far.
    """

    action: str | None
    status: int | None
    rate: float = 1.0
    count: int | None = None
    latency: float = 0.0
    retry_after: int | None = None
    malformed: Malformed = False
    code: str | None = None
    reset: bool = False
    hits: int = 0

    @property
    def error_code(self) -> str:
        """The ``Error.Code`` to answer with."""
        return self.code or FAULT_CODES.get(self.status or 503, "InjectedFault")

    def matches(self, action: str | None, path: str) -> bool:
        """Whether the rule applies to this request (before its rate is rolled)."""
        if self.action is None:
            return action is not None
        if self.action.startswith("/"):
            return path.startswith(self.action)
        return self.action == action


@dataclass(slots=True)
class Faults:
    """The live fault rules of one sandbox.

    Args:
        rng: The random source for ``rate``; seed it for reproducible tests.
    """

    rng: random.Random = field(default_factory=random.Random)
    rules: list[FaultRule] = field(default_factory=list)

    def add(
        self,
        action: str | None = None,
        *,
        status: int | None = None,
        rate: float = 1.0,
        count: int | None = None,
        latency: float = 0.0,
        retry_after: int | None = None,
        malformed: Malformed = False,
        code: str | None = None,
        reset: bool = False,
    ) -> FaultRule:
        """Add a rule and return it (to remove it later).

        Args:
            action: An Action name, a path prefix starting with ``/``, or None for every API
                action.
            status: The HTTP status. Default: 503, except for a rule with only ``latency``,
                which delays the real answer instead of replacing it.
            rate: Probability of hitting a matching request, 0..1.
            count: Expire after this many hits.
            latency: Seconds to wait before answering.
            retry_after: Seconds for a ``Retry-After`` header (use with 429 or 503).
            malformed: Answer 200 with a non-JSON (True/``"text"``) or envelope-less
                (``"envelope"``) body.
            code: Override the ``Error.Code``.
            reset: Drop the connection mid-answer instead of answering (after ``latency``).

        Returns:
            The rule.

        Raises:
            ValueError: A value is out of range.
        """
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        if count is not None and count < 1:
            raise ValueError("count must be at least 1")
        if latency < 0:
            raise ValueError("latency must not be negative")
        if status is None and (latency == 0 or malformed or retry_after is not None):
            status = 503
        rule = FaultRule(
            action, status, rate, count, latency, retry_after, malformed, code, reset=reset
        )
        self.rules.append(rule)
        return rule

    def remove(self, rule: FaultRule) -> None:
        """Remove a rule (no error if it already expired)."""
        if rule in self.rules:
            self.rules.remove(rule)

    def clear(self) -> None:
        """Remove every rule."""
        self.rules.clear()

    def pick(self, action: str | None, path: str) -> FaultRule | None:
        """Return the rule that hits this request, counting the hit; None when none does."""
        for rule in list(self.rules):
            if not rule.matches(action, path):
                continue
            if rule.rate < 1.0 and self.rng.random() >= rule.rate:
                continue
            rule.hits += 1
            if rule.count is not None:
                rule.count -= 1
                if rule.count <= 0:
                    self.rules.remove(rule)
            return rule
        return None
