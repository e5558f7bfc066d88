"""Volcengine request signing ("HMAC-SHA256", SigV4-like, no ``AWS4`` key prefix).

Pure functions over the request's parts: nothing here reads the clock, the environment or the
network, so the same code signs in the client and verifies in the sandbox. The algorithm is
section 3 of the API notes; the test vectors V1-V4 there are reproduced byte for byte in the tests.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote

__all__ = [
    "ALGORITHM",
    "SigningCredentials",
    "canonical_headers",
    "canonical_query",
    "canonical_request",
    "credential_scope",
    "format_x_date",
    "hash_body",
    "should_sign_header",
    "sign_request",
    "signature",
    "signing_key",
    "string_to_sign",
]

ALGORITHM = "HMAC-SHA256"
# Characters left unescaped in the canonical query: RFC 3986 "unreserved".
_UNRESERVED = "-_.~"
_ALWAYS_SIGNED = frozenset({"content-type", "content-md5", "host"})


@dataclass(frozen=True, slots=True)
class SigningCredentials:
    """An access key pair, with a session token when the keys are temporary (STS).

    The repr never shows the secret or the token, so a credential object that ends up in a log
    line or a traceback leaks nothing.
    """

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)

    @property
    def is_temporary(self) -> bool:
        """Whether these are STS credentials that carry a session token."""
        return bool(self.session_token)


def format_x_date(moment: datetime) -> str:
    """Format a moment as ``X-Date`` (``YYYYMMDD'T'HHMMSS'Z'``, UTC).

    Args:
        moment: An aware datetime (naive ones are taken as UTC).

    Returns:
        The timestamp string, e.g. ``20251127T022939Z``.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def hash_body(body: bytes) -> str:
    """Return the lowercase hex SHA-256 of the exact body bytes (``X-Content-Sha256``)."""
    return hashlib.sha256(body).hexdigest()


def _encode(text: str) -> str:
    return quote(text, safe=_UNRESERVED)


def canonical_query(params: Iterable[tuple[str, str]]) -> str:
    """Build the canonical query string.

    Keys and values are percent-encoded leaving only ``A-Z a-z 0-9 - _ . ~``, sorted by the
    encoded key (a stable sort, so repeated keys keep their order) and joined with ``&``.

    Args:
        params: The query parameters as (key, value) pairs, ``Action`` and ``Version`` included.

    Returns:
        The canonical query string.
    """
    encoded = [(_encode(key), _encode(value)) for key, value in params]
    encoded.sort(key=lambda pair: pair[0])
    return "&".join(f"{key}={value}" for key, value in encoded)


def should_sign_header(name: str) -> bool:
    """Whether the SDK signs a header: Content-Type, Content-Md5, Host, or any ``X-`` header."""
    lowered = name.lower()
    return lowered in _ALWAYS_SIGNED or lowered.startswith("x-")


def _canonical_host(value: str) -> str:
    # The default ports are implied by the scheme, so both sides drop them before signing.
    for suffix in (":80", ":443"):
        if value.endswith(suffix):
            return value[: -len(suffix)]
    return value


def canonical_headers(headers: Mapping[str, str], signed: Sequence[str]) -> tuple[str, str]:
    """Build the canonical header block and the ``SignedHeaders`` list.

    Args:
        headers: The request headers; names are matched case-insensitively.
        signed: The lowercase names to sign.

    Returns:
        ``(canonical_headers, signed_headers)``; the first ends with a newline per header.

    Raises:
        KeyError: A name in ``signed`` is not among ``headers``.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    names = sorted({name.lower() for name in signed})
    lines = []
    for name in names:
        value = lowered[name]
        if name == "host":
            value = _canonical_host(value)
        lines.append(f"{name}:{value}\n")
    return "".join(lines), ";".join(names)


def canonical_request(
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    signed: Sequence[str],
    body_sha256: str,
) -> str:
    """Assemble the canonical request text that the string to sign hashes.

    Args:
        method: The HTTP method, e.g. ``POST``.
        path: The request path (always ``/`` for the OpenAPI).
        query: The query parameters.
        headers: The request headers.
        signed: The lowercase names of the headers to sign.
        body_sha256: The hex SHA-256 of the body.

    Returns:
        The canonical request.
    """
    block, signed_list = canonical_headers(headers, signed)
    return "\n".join(
        [method.upper(), path or "/", canonical_query(query), block, signed_list, body_sha256]
    )


def credential_scope(short_date: str, region: str, service: str) -> str:
    """Return ``<shortdate>/<region>/<service>/request``."""
    return f"{short_date}/{region}/{service}/request"


def string_to_sign(x_date: str, scope: str, canonical: str) -> str:
    """Return the string to sign for a canonical request."""
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{x_date}\n{scope}\n{digest}"


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret_access_key: str, short_date: str, region: str, service: str) -> bytes:
    """Derive the signing key: date, region, service, then ``request``; no key prefix."""
    k_date = _hmac(secret_access_key.encode("utf-8"), short_date)
    k_region = _hmac(k_date, region)
    k_service = _hmac(k_region, service)
    return _hmac(k_service, "request")


def signature(key: bytes, to_sign: str) -> str:
    """Return the lowercase hex signature of a string to sign."""
    return hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def sign_request(
    *,
    method: str,
    host: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
    credentials: SigningCredentials,
    region: str,
    service: str,
    moment: datetime,
) -> dict[str, str]:
    """Sign a request and return the full set of headers to send.

    The result holds the caller's headers plus ``Host``, ``X-Date``, ``X-Content-Sha256``,
    ``X-Security-Token`` (temporary credentials only) and ``Authorization``. Every header the
    SDK would sign (Content-Type, Content-Md5, Host, ``X-*``) is signed.

    Args:
        method: The HTTP method.
        host: The Host header value (with a non-default port, if any).
        path: The request path.
        query: The query parameters, ``Action`` and ``Version`` included.
        headers: Extra headers, e.g. ``Content-Type``.
        body: The exact body bytes that will be sent.
        credentials: The key pair (and session token) to sign with.
        region: The signing region, e.g. ``cn-beijing``.
        service: The signing service, ``id`` or ``sts``.
        moment: The signing time (the caller's clock; never read here).

    Returns:
        The headers to send, ``Authorization`` included.
    """
    x_date = format_x_date(moment)
    body_sha = hash_body(body)
    out = dict(headers)
    out["Host"] = host
    out["X-Date"] = x_date
    out["X-Content-Sha256"] = body_sha
    if credentials.session_token:
        out["X-Security-Token"] = credentials.session_token
    signed = [name.lower() for name in out if should_sign_header(name)]
    query_pairs = list(query)
    canonical = canonical_request(method, path, query_pairs, out, signed, body_sha)
    scope = credential_scope(x_date[:8], region, service)
    key = signing_key(credentials.secret_access_key, x_date[:8], region, service)
    sig = signature(key, string_to_sign(x_date, scope, canonical))
    _, signed_list = canonical_headers(out, signed)
    out["Authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key_id}/{scope}, "
        f"SignedHeaders={signed_list}, Signature={sig}"
    )
    return out
