"""The Volcengine response envelope, API errors as values, and typed access to request params.

Every answer of the control plane and STS goes through here, so the wire shape (section 1.2 of
the API notes) lives in one place: ``{"ResponseMetadata": {...}, "Result": {...}}`` on success,
``{"ResponseMetadata": {..., "Error": {Code, CodeN?, Message}}}`` with a real HTTP status on
failure.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

__all__ = [
    "ApiError",
    "Meta",
    "Params",
    "already_exists",
    "error_body",
    "invalid",
    "missing",
    "new_request_id",
    "not_found",
    "success_body",
]

_ENCODER = msgspec.json.Encoder()


class ApiError(Exception):
    """An expected failure of an API call, rendered as the error envelope.

    Attributes:
        status: The HTTP status to answer with.
        code: The ``Error.Code`` string, e.g. ``InvalidParameter.Name``.
        message: The human-readable ``Error.Message``.
        code_n: The numeric ``Error.CodeN`` (gateway errors carry one, service errors may not).
        headers: Extra response headers, e.g. ``Retry-After``.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        code_n: int | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.code_n = code_n
        self.headers = tuple(headers)


def missing(name: str) -> ApiError:
    """Return the 400 ``MissingParameter`` error for a required parameter."""
    return ApiError(400, "MissingParameter", f"The parameter {name} is required.", 100002)


def invalid(name: str, detail: str = "") -> ApiError:
    """Return the 400 ``InvalidParameter.<name>`` error, with an optional detail."""
    message = f"The parameter {name} is invalid."
    if detail:
        message = f"{message} {detail}"
    return ApiError(400, f"InvalidParameter.{name}", message)


def not_found(kind: str, name: str) -> ApiError:
    """Return the 404 ``ResourceNotFound.<kind>`` error (callers test ``"NotFound" in code``)."""
    return ApiError(404, f"ResourceNotFound.{kind}", f"The {kind} {name!r} does not exist.")


def already_exists(kind: str, name: str) -> ApiError:
    """Return the 409 ``ResourceAlreadyExists.<kind>`` error for a create of an existing name."""
    return ApiError(409, f"ResourceAlreadyExists.{kind}", f"The {kind} {name!r} already exists.")


def new_request_id() -> str:
    """Return a request id shaped like the real ones: a UTC timestamp then random hex."""
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    return f"{stamp}{secrets.token_hex(9).upper()}"


@dataclass(frozen=True, slots=True)
class Meta:
    """The ``ResponseMetadata`` of one answer."""

    request_id: str
    action: str
    version: str
    service: str
    region: str

    def to_json(self) -> dict[str, Any]:
        """Return the PascalCase wire form."""
        return {
            "RequestId": self.request_id,
            "Action": self.action,
            "Version": self.version,
            "Service": self.service,
            "Region": self.region,
        }


def success_body(meta: Meta, result: Mapping[str, Any]) -> bytes:
    """Encode a success envelope."""
    return _ENCODER.encode({"ResponseMetadata": meta.to_json(), "Result": result})


def error_body(meta: Meta, error: ApiError) -> bytes:
    """Encode an error envelope; there is no ``Result`` on error."""
    detail: dict[str, Any] = {"Code": error.code}
    if error.code_n is not None:
        detail["CodeN"] = error.code_n
    detail["Message"] = error.message
    metadata = meta.to_json()
    metadata["Error"] = detail
    return _ENCODER.encode({"ResponseMetadata": metadata})


class Params:
    """Typed, validating access to a decoded JSON (or form) request object.

    Every accessor raises the envelope's ``MissingParameter`` / ``InvalidParameter.<Name>``
    errors, so handlers read like the Appendix rows they implement. ``prefix`` names nested
    objects in error messages (``Principal.Type``).
    """

    def __init__(self, data: Mapping[str, Any], prefix: str = "") -> None:
        self._data = data
        self._prefix = prefix

    def _name(self, name: str) -> str:
        return f"{self._prefix}{name}"

    def has(self, name: str) -> bool:
        """Whether the field is present and not null."""
        return self._data.get(name) is not None

    def raw(self, name: str) -> object:
        """Return the field as decoded, or None."""
        return self._data.get(name)

    def text(self, name: str, default: str | None = None) -> str | None:
        """Return an optional string field (an empty string counts as absent)."""
        value = self._data.get(name)
        if value is None or value == "":
            return default
        if not isinstance(value, str):
            raise invalid(self._name(name), "Expected a string.")
        return value

    def required_text(self, name: str) -> str:
        """Return a required, non-empty string field."""
        value = self.text(name)
        if value is None:
            raise missing(self._name(name))
        return value

    def integer(self, name: str, default: int | None = None) -> int | None:
        """Return an optional integer field (form values given as digits are accepted)."""
        value = self._data.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, str) and value.lstrip("-").isdigit():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid(self._name(name), "Expected an integer.")
        return value

    def required_integer(self, name: str) -> int:
        """Return a required integer field."""
        value = self.integer(name)
        if value is None:
            raise missing(self._name(name))
        return value

    def flag(self, name: str, default: bool = False) -> bool:
        """Return an optional boolean field."""
        value = self._data.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise invalid(self._name(name), "Expected a boolean.")
        return value

    def texts(self, name: str) -> list[str] | None:
        """Return an optional list of strings (None when absent)."""
        value = self._data.get(name)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise invalid(self._name(name), "Expected a list of strings.")
        return list(value)

    def child(self, name: str) -> Params | None:
        """Return a nested object as Params, or None when absent."""
        value = self._data.get(name)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise invalid(self._name(name), "Expected an object.")
        return Params(value, f"{self._name(name)}.")

    def required_child(self, name: str) -> Params:
        """Return a required nested object."""
        value = self.child(name)
        if value is None:
            raise missing(self._name(name))
        return value

    def children(self, name: str) -> list[Params]:
        """Return a list of nested objects (empty when absent)."""
        value = self._data.get(name)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
            raise invalid(self._name(name), "Expected a list of objects.")
        return [Params(item, f"{self._name(name)}[{i}].") for i, item in enumerate(value)]

    def page(self, *, max_size: int = 100) -> tuple[int, int]:
        """Return the required ``(PageNumber, PageSize)`` pair, validated (1-based, ≤ max)."""
        number = self.required_integer("PageNumber")
        size = self.required_integer("PageSize")
        if number < 1:
            raise invalid(self._name("PageNumber"), "It must be at least 1.")
        if not 1 <= size <= max_size:
            raise invalid(self._name("PageSize"), f"It must be between 1 and {max_size}.")
        return number, size
