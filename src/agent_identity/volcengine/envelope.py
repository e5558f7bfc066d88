"""Parsing of the ``{"ResponseMetadata": ..., "Result": ...}`` envelope (API notes section 1.2).

The rules follow the official SDK, verified on loopback:

- 2xx with ``ResponseMetadata.Error`` is an error (the SDK raises with status 200);
- 2xx with no ``ResponseMetadata`` at all, or a body that is not JSON, is an error;
- non-2xx is an error described by the envelope when there is one, else a generic one;
- otherwise ``Result`` (``{}`` for actions with no output) is decoded into the result type.

Nothing from the body except the error's code, message and request id ends up in an error, so a
response that echoes a secret cannot leak it through an exception text.
"""

from __future__ import annotations

from typing import TypeVar

import msgspec

from agent_identity.volcengine.errors import VolcengineError

__all__ = [
    "GENERIC_HTTP_ERROR",
    "INVALID_RESPONSE",
    "ResponseError",
    "ResponseMetadata",
    "parse_response",
]

T = TypeVar("T")

INVALID_RESPONSE = "InvalidResponse"
GENERIC_HTTP_ERROR = "HttpError"
_EMPTY_RESULT = b"{}"


class ResponseError(msgspec.Struct, rename="pascal", frozen=True):
    """``ResponseMetadata.Error``: ``{Code, CodeN?, Message}``."""

    code: str = ""
    code_n: int | None = None
    message: str = ""


class ResponseMetadata(msgspec.Struct, rename="pascal", frozen=True):
    """``ResponseMetadata``: who answered, and the error when the call failed."""

    request_id: str = ""
    action: str = ""
    version: str = ""
    service: str = ""
    region: str = ""
    error: ResponseError | None = None


class _Envelope(msgspec.Struct, rename="pascal", frozen=True):
    # Result stays raw so that a failed call never tries to decode it, and a success decodes
    # it straight into the caller's typed Struct.
    response_metadata: ResponseMetadata | None = None
    result: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(_EMPTY_RESULT))


_ENVELOPE_DECODER = msgspec.json.Decoder(_Envelope)


def _envelope(body: bytes) -> tuple[_Envelope | None, str]:
    try:
        return _ENVELOPE_DECODER.decode(body), ""
    except msgspec.ValidationError as exc:
        # The path and expected type only; msgspec never quotes the offending value.
        return None, f"the body is not a valid envelope: {exc}"
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None, "the body is not JSON"


def _api_error(
    status: int, metadata: ResponseMetadata, error: ResponseError, action: str
) -> VolcengineError:
    return VolcengineError(
        status=status,
        code=error.code or GENERIC_HTTP_ERROR,
        code_n=error.code_n,
        message=error.message or "(no message)",
        request_id=metadata.request_id or None,
        action=action,
    )


def parse_response(status: int, body: bytes, *, action: str, result_type: type[T]) -> T:
    """Turn an HTTP answer into the typed ``Result``, or raise the error it describes.

    Args:
        status: The HTTP status.
        body: The raw response body.
        action: The action called, for the error text.
        result_type: The msgspec type to decode ``Result`` into.

    Returns:
        The decoded ``Result``.

    Raises:
        VolcengineError: The answer is an error, or is not a valid envelope.
    """
    envelope, problem = _envelope(body)
    metadata = envelope.response_metadata if envelope is not None else None
    if not 200 <= status < 300:
        if metadata is not None and metadata.error is not None:
            raise _api_error(status, metadata, metadata.error, action)
        raise VolcengineError(
            status=status,
            code=GENERIC_HTTP_ERROR,
            message=f"HTTP {status} without an error envelope",
            request_id=(metadata.request_id or None) if metadata is not None else None,
            action=action,
        )
    if envelope is None:
        raise VolcengineError(status=status, code=INVALID_RESPONSE, message=problem, action=action)
    if metadata is None:
        raise VolcengineError(
            status=status,
            code=INVALID_RESPONSE,
            message="the body has no ResponseMetadata",
            action=action,
        )
    if metadata.error is not None:
        raise _api_error(status, metadata, metadata.error, action)
    raw = bytes(envelope.result)
    if raw.strip() == b"null":
        raw = _EMPTY_RESULT
    try:
        return msgspec.json.decode(raw, type=result_type)
    except msgspec.ValidationError as exc:
        # msgspec names the path and the expected type, never the offending value.
        raise VolcengineError(
            status=status,
            code=INVALID_RESPONSE,
            message=f"unexpected Result shape: {exc}",
            request_id=metadata.request_id or None,
            action=action,
        ) from exc
