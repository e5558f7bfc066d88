"""The one exception type of the Volcengine clients, and helpers to classify it.

Every failure of a control-plane or STS call surfaces as :class:`VolcengineError` (or a
subclass), so a caller needs one ``except`` clause. The error carries only what the server said
(status, code, message, request id) and the action name: never a request body, a header or a
credential, so its text is safe to log and to show to an operator.
"""

from __future__ import annotations

__all__ = [
    "CredentialsError",
    "VolcengineError",
    "VolcengineTransportError",
    "is_conflict",
    "is_not_found",
    "is_retryable_status",
]

# Server messages are shown as they come, but a runaway one must not flood a log line.
_MAX_MESSAGE = 500
_CONFLICT_MARKERS = ("Exist", "Duplicate", "Conflict", "AlreadyExist")
_RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


def _clip(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= _MAX_MESSAGE:
        return text
    return f"{text[: _MAX_MESSAGE - 3]}..."


class VolcengineError(Exception):
    """A failed Volcengine API call (or a local failure to make one).

    Attributes:
        status: The HTTP status, or None when no response arrived.
        code: The ``Error.Code`` (e.g. ``SignatureDoesNotMatch``), or a local code such as
            ``InvalidResponse`` / ``ConnectionError`` / ``NoCredentials``.
        code_n: The numeric ``Error.CodeN`` when the gateway sent one.
        message: The human-readable message (the server's, clipped).
        request_id: ``ResponseMetadata.RequestId``, for support tickets.
        action: The API action that failed, e.g. ``GetWorkloadAccessTokenForJWT``.
    """

    def __init__(
        self,
        *,
        status: int | None,
        code: str,
        message: str,
        code_n: int | None = None,
        request_id: str | None = None,
        action: str | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.code_n = code_n
        self.message = _clip(message)
        self.request_id = request_id
        self.action = action
        super().__init__(self._text())

    def _text(self) -> str:
        where = f"{self.action}: " if self.action else ""
        status = f"HTTP {self.status} " if self.status is not None else ""
        number = f" ({self.code_n})" if self.code_n is not None else ""
        request = f" [RequestId {self.request_id}]" if self.request_id else ""
        return f"{where}{status}{self.code}{number}: {self.message}{request}"

    @property
    def retryable(self) -> bool:
        """Whether retrying the same call may succeed (throttling, 5xx, connection loss)."""
        return self.status is not None and self.status in _RETRYABLE_STATUSES


class VolcengineTransportError(VolcengineError):
    """No usable HTTP response: connection refused or reset, timeout, protocol error."""

    @property
    def retryable(self) -> bool:
        """Connection-level failures are always worth another attempt."""
        return True


class CredentialsError(VolcengineError):
    """No signing credentials could be resolved, or a credential source is broken."""


def is_retryable_status(status: int) -> bool:
    """Whether an HTTP status is retried: 429 and 500/502/503/504, as the official SDK does."""
    return status in _RETRYABLE_STATUSES


def is_not_found(error: BaseException) -> bool:
    """Whether an error means "no such resource": HTTP 404 or ``NotFound`` in the code.

    The exact not-found code strings of the service are undocumented, so both signals count.
    """
    if not isinstance(error, VolcengineError):
        return False
    return error.status == 404 or "NotFound" in error.code


def is_conflict(error: BaseException) -> bool:
    """Whether an error means "already exists": HTTP 409 or an Exist/Duplicate/Conflict code."""
    if not isinstance(error, VolcengineError):
        return False
    return error.status == 409 or any(marker in error.code for marker in _CONFLICT_MARKERS)
