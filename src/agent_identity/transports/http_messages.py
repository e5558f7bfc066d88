"""HTTP messages as the application of the Unix-socket server sees them, and responses as bytes.

A :data:`Handler` takes an :class:`HttpRequest` (already parsed and size-checked, see
:mod:`.http_parse`) and returns an :class:`HttpResponse`; :func:`json_error` builds the JSON
error answers. :func:`encode_response` turns a response into the one ``bytes`` the server
sends: a status line cached per status and content type, the header fields checked (no
CR, LF or other control characters; the framing fields are the server's), and a ``Date``
line rebuilt once a second.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus

__all__ = [
    "CONTINUE",
    "Handler",
    "HttpRequest",
    "HttpResponse",
    "encode_response",
    "json_error",
]

#: The interim response that tells an ``Expect: 100-continue`` client to send its body.
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# A field name is a token (RFC 9110 5.1), the grammar http_parse holds request heads to.
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Framing is the server's business; a handler setting these could split the response.
_RESERVED = frozenset({"connection", "content-length", "date", "transfer-encoding"})
_UNSAFE_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_PREFIX_CACHE_SIZE = 64
_prefixes: dict[tuple[int, str], bytes] = {}
_date: list[tuple[int, bytes]] = [(0, b"")]


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One request, as the handler sees it.

    Attributes:
        method: The method, e.g. ``"GET"``.
        path: The percent-decoded path, e.g. ``"/token"``.
        query: The query parameters (each name at most once).
        headers: Header values by lower-case name.
        body: The request body (empty without ``Content-Length``).
        peer: What the peer gate learned about the client, or ``None`` without a gate.
    """

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    peer: object | None = None


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """One response.

    Attributes:
        status: The status code (200-599).
        body: The body; sent as is, with a ``Content-Length``.
        content_type: The ``Content-Type``; empty to send none.
        headers: Extra header fields (not the framing ones: ``Content-Length``,
            ``Connection``, ``Transfer-Encoding``, ``Date``).
    """

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


#: The application: one request in, one response out.
Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]


def json_error(
    status: int, code: str, message: str, *, headers: tuple[tuple[str, str], ...] = ()
) -> HttpResponse:
    """A JSON error response: ``{"error": code, "message": message}``.

    Args:
        status: The status code.
        code: A short machine-readable code, e.g. ``"not_found"``.
        message: A sentence for people; it must not carry secrets.
        headers: Extra header fields, e.g. ``(("Allow", "GET"),)`` on a 405.

    Returns:
        The response.
    """
    body = json.dumps({"error": code, "message": message}).encode()
    return HttpResponse(status, body, headers=headers)


def encode_response(response: HttpResponse, keep_alive: bool, head_only: bool = False) -> bytes:
    """The response as bytes on the wire: status line, header fields, blank line, body.

    Args:
        response: The response.
        keep_alive: ``False`` adds ``Connection: close`` (the server closes afterwards).
        head_only: Leave the body out (a ``HEAD`` request), keeping its ``Content-Length``.

    Returns:
        The encoded response.

    Raises:
        ValueError: A status outside 200-599, or a header field that is malformed, unsafe
            (CR, LF or other control characters) or reserved for the server.
    """
    status = response.status
    body = response.body
    prefix = _prefixes.get((status, response.content_type))
    if prefix is None:
        prefix = _prefix(status, response.content_type)
    parts = [prefix]
    if status not in {204, 304}:  # RFC 9110 8.6: these never carry a Content-Length
        parts.append(b"Content-Length: %d\r\n" % len(body))
    else:
        body = b""
    parts.extend(_field(name, value) for name, value in response.headers)
    second = int(time.time())  # calendar time for the Date field, not a timeout
    cached = _date[0]
    if cached[0] != second:
        cached = (second, b"Date: %s\r\n" % formatdate(second, usegmt=True).encode())
        _date[0] = cached
    parts.append(cached[1])
    parts.append(b"\r\n" if keep_alive else b"Connection: close\r\n\r\n")
    if not head_only:
        parts.append(body)
    return b"".join(parts)


def _prefix(status: int, content_type: str) -> bytes:
    """The status line and ``Content-Type`` field, cached for the next response like it."""
    if not 200 <= status <= 599:
        raise ValueError(f"a handler cannot send status {status}")
    if _UNSAFE_VALUE.search(content_type) is not None:
        raise ValueError("unsafe character in the content type")
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    prefix = f"HTTP/1.1 {status} {reason}\r\n".encode("ascii")
    if content_type:
        prefix += f"Content-Type: {content_type}\r\n".encode("latin-1")
    if len(_prefixes) < _PREFIX_CACHE_SIZE:
        _prefixes[status, content_type] = prefix
    return prefix


def _field(name: str, value: str) -> bytes:
    """One extra header field, refused if it could split the response or reframe it."""
    encoded = name.encode("latin-1")
    if _TOKEN.fullmatch(encoded) is None or name.lower() in _RESERVED:
        raise ValueError(f"a handler cannot send the header field {name!r}")
    if _UNSAFE_VALUE.search(value) is not None:
        raise ValueError(f"unsafe character in the header field {name!r}")
    return b"%s: %s\r\n" % (encoded, value.encode("latin-1"))
