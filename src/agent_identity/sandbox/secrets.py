"""A registry of every secret value the sandbox issues or holds, for leak checks.

The sandbox is where every secret a test run handles comes from: user tokens (id, access and
refresh), TIPs, API keys, OAuth2 access tokens and authorization codes, STS keys, the root
secret key, client secrets, passwords, user credentials, Feishu tenant tokens and app
secrets, LLM keys. The code that issues or holds one calls :func:`record_secret`; a leak
check (the test suite's ``leakcheck`` plugin) reads :func:`issued_secrets` and looks for the
values in log lines and error texts.

Authorization codes are recorded as *URL-borne*: by design (RFC 6749 section 4.1.2) they
travel in the query of the redirect the user's browser follows, so the HTTP client playing
the browser in a test logs them in its request lines. A checker may allow them there
(:func:`is_url_borne`) and nowhere else.

Recording is off until :func:`start_recording` is called, so ``agent-identity dev`` pays
nothing and holds no copies. The registry is process-global (the sandbox may run in any
thread), thread-safe and bounded: past :data:`MAX_SECRETS` values, new ones are only counted
(:func:`dropped_secrets`), so a checker can say that it checked less than it should have.
Values shorter than :data:`MIN_SECRET_LENGTH` are ignored: a short value (``"alice"``) would
match ordinary words and make the check cry wolf.

Example:
    >>> registry = SecretRegistry(limit=2)
    >>> registry.start()
    >>> registry.record("tok-0123456789abcdef")
    >>> registry.secrets()
    ('tok-0123456789abcdef',)
"""

from __future__ import annotations

import threading
from typing import Final

__all__ = [
    "MAX_SECRETS",
    "MIN_SECRET_LENGTH",
    "SecretRegistry",
    "dropped_secrets",
    "is_url_borne",
    "issued_secrets",
    "record_secret",
    "start_recording",
    "stop_recording",
]

#: Values shorter than this are not recorded (they would match ordinary text).
MIN_SECRET_LENGTH: Final = 12
#: At most this many values are kept; the whole test suite records about two thousand.
MAX_SECRETS: Final = 100_000


class SecretRegistry:
    """An append-only, deduplicated, bounded and thread-safe list of secret values.

    Args:
        limit: How many values are kept at most; later ones are only counted.
        min_length: Shorter values are ignored.
    """

    def __init__(self, *, limit: int = MAX_SECRETS, min_length: int = MIN_SECRET_LENGTH) -> None:
        self._limit = limit
        self._min_length = min_length
        self._lock = threading.Lock()
        self._order: list[str] = []
        self._known: set[str] = set()
        self._url_borne: set[str] = set()
        self._dropped = 0
        self._recording = False

    @property
    def min_length(self) -> int:
        """The shortest value recorded."""
        return self._min_length

    def start(self) -> None:
        """Record values from now on."""
        self._recording = True

    def stop(self) -> None:
        """Stop recording (values already recorded are kept)."""
        self._recording = False

    def record(self, value: str | None, *, url_borne: bool = False) -> None:
        """Remember a secret value (ignored when not recording, None, short or known).

        Args:
            value: The secret.
            url_borne: It travels in a redirect URL by design (an authorization code).
        """
        # Checked before taking the lock: when off (``dev``), a call costs one attribute read.
        if not self._recording or value is None or len(value) < self._min_length:
            return
        with self._lock:
            if value in self._known:
                return
            if len(self._order) >= self._limit:
                self._dropped += 1
                return
            self._known.add(value)
            self._order.append(value)
            if url_borne:
                self._url_borne.add(value)

    def secrets(self, since: int = 0) -> tuple[str, ...]:
        """The values recorded, oldest first, from the ``since``-th one on.

        Args:
            since: How many values the caller has already seen; lets a checker fetch only
                the new ones.
        """
        with self._lock:
            return tuple(self._order[since:])

    def is_url_borne(self, value: str) -> bool:
        """Whether ``value`` was recorded as travelling in redirect URLs."""
        with self._lock:
            return value in self._url_borne

    def dropped(self) -> int:
        """How many values arrived after the registry was full (and so are not checked)."""
        with self._lock:
            return self._dropped


_REGISTRY: Final = SecretRegistry()


def start_recording() -> None:
    """Turn the process-wide registry on (a leak checker does, before any test runs)."""
    _REGISTRY.start()


def stop_recording() -> None:
    """Turn the process-wide registry off; what it holds stays readable."""
    _REGISTRY.stop()


def record_secret(value: str | None, *, url_borne: bool = False) -> None:
    """Remember a secret value the sandbox issued or holds (a no-op unless recording).

    Args:
        value: The secret.
        url_borne: It travels in a redirect URL by design (an authorization code).
    """
    _REGISTRY.record(value, url_borne=url_borne)


def issued_secrets(since: int = 0) -> tuple[str, ...]:
    """Every secret value recorded so far, oldest first, from the ``since``-th one on."""
    return _REGISTRY.secrets(since)


def is_url_borne(value: str) -> bool:
    """Whether a recorded value travels in redirect URLs by design (an authorization code)."""
    return _REGISTRY.is_url_borne(value)


def dropped_secrets() -> int:
    """How many values were not kept because the registry was full."""
    return _REGISTRY.dropped()
