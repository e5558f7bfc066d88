"""Verification of Volcengine-signed requests, on the same canonicalisation as the signer.

The sandbox uses this to check every request it receives the way the real gateway does: it
rebuilds the canonical request from the client's own ``SignedHeaders``, the raw body bytes and the
Host it actually received, then compares signatures in constant time.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from agent_identity.volcengine.signer import (
    canonical_request,
    credential_scope,
    hash_body,
    signature,
    signing_key,
    string_to_sign,
)

__all__ = [
    "DEFAULT_MAX_SKEW_SECONDS",
    "AuthorizationHeader",
    "KnownKey",
    "SignatureError",
    "VerifiedRequest",
    "parse_authorization",
    "verify_request",
]

DEFAULT_MAX_SKEW_SECONDS = 15 * 60
_AUTH_RE = re.compile(
    r"^HMAC-SHA256 Credential=(?P<ak>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[^/,\s]+)/"
    r"(?P<service>[^/,\s]+)/request, SignedHeaders=(?P<signed>[a-z0-9;\-]+), "
    r"Signature=(?P<sig>[0-9a-f]{64})$"
)
_X_DATE_RE = re.compile(r"^\d{8}T\d{6}Z$")


class SignatureError(Exception):
    """A request failed authentication; carries the gateway's error code and HTTP status."""

    def __init__(self, code: str, code_n: int, message: str, status: int = 401) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.code_n = code_n
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class AuthorizationHeader:
    """The parts of an ``Authorization: HMAC-SHA256 ...`` header."""

    access_key_id: str
    short_date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


@dataclass(frozen=True, slots=True)
class KnownKey:
    """What the verifier knows of an access key: its secret and, for STS keys, the token."""

    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class VerifiedRequest:
    """A request whose signature checked out."""

    access_key_id: str
    region: str
    service: str
    moment: datetime


def parse_authorization(value: str) -> AuthorizationHeader:
    """Parse an Authorization header.

    Args:
        value: The header value.

    Returns:
        Its parts.

    Raises:
        SignatureError: The header is not a well-formed HMAC-SHA256 authorization.
    """
    match = _AUTH_RE.match(value)
    if match is None:
        raise SignatureError(
            "MissingSignature", 100005, "the Authorization header is not a valid HMAC-SHA256 one"
        )
    return AuthorizationHeader(
        access_key_id=match["ak"],
        short_date=match["date"],
        region=match["region"],
        service=match["service"],
        signed_headers=tuple(match["signed"].split(";")),
        signature=match["sig"],
    )


def _parse_x_date(value: str) -> datetime:
    if not _X_DATE_RE.match(value):
        raise SignatureError("InvalidTimestamp", 100006, "X-Date is not YYYYMMDDTHHMMSSZ", 400)
    return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def verify_request(
    *,
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
    lookup: Callable[[str], KnownKey | None],
    now: datetime,
    max_skew_seconds: float = DEFAULT_MAX_SKEW_SECONDS,
) -> VerifiedRequest:
    """Check a signed request as the Volcengine gateway would.

    Args:
        method: The HTTP method received.
        path: The path received.
        query: The query parameters received, decoded.
        headers: The headers received (names matched case-insensitively).
        body: The raw body bytes received.
        lookup: Finds an access key's secret (and STS token); None for an unknown key.
        now: The verifier's current time.
        max_skew_seconds: How far X-Date may be from ``now``.

    Returns:
        Who signed it and for which region and service.

    Raises:
        SignatureError: With the code the real gateway uses for the failure.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    raw_auth = lowered.get("authorization")
    if not raw_auth:
        raise SignatureError("MissingAuthenticationToken", 100003, "no Authorization header")
    auth = parse_authorization(raw_auth)
    x_date = lowered.get("x-date")
    if x_date is None:
        raise SignatureError("MissingRequestInfo", 100004, "no X-Date header", 400)
    moment = _parse_x_date(x_date)
    if abs((now - moment).total_seconds()) > max_skew_seconds:
        raise SignatureError("InvalidTimestamp", 100006, "X-Date is outside the allowed skew", 400)
    if auth.short_date != x_date[:8]:
        raise SignatureError(
            "SignatureDoesNotMatch", 100010, "credential date does not match X-Date"
        )
    for required in ("host", "x-date"):
        if required not in auth.signed_headers:
            raise SignatureError(
                "SignatureDoesNotMatch", 100010, f"{required} must be a signed header"
            )
    missing = [name for name in auth.signed_headers if name not in lowered]
    if missing:
        raise SignatureError(
            "SignatureDoesNotMatch", 100010, f"signed header {missing[0]} is absent"
        )
    body_sha = hash_body(body)
    if lowered.get("x-content-sha256", body_sha) != body_sha:
        raise SignatureError(
            "SignatureDoesNotMatch", 100010, "X-Content-Sha256 does not match the body"
        )
    known = lookup(auth.access_key_id)
    if known is None:
        raise SignatureError("InvalidAccessKey", 100009, "the access key is not known")
    if known.session_token is not None and lowered.get("x-security-token") != (known.session_token):
        raise SignatureError(
            "InvalidAccessKey", 100009, "temporary credentials need their security token"
        )
    canonical = canonical_request(method, path, query, lowered, auth.signed_headers, body_sha)
    scope = credential_scope(auth.short_date, auth.region, auth.service)
    key = signing_key(known.secret_access_key, auth.short_date, auth.region, auth.service)
    expected = signature(key, string_to_sign(x_date, scope, canonical))
    if not hmac.compare_digest(expected, auth.signature):
        raise SignatureError(
            "SignatureDoesNotMatch",
            100010,
            "the request signature we calculated does not match the signature you provided",
        )
    return VerifiedRequest(auth.access_key_id, auth.region, auth.service, moment)
