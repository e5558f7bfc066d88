r"""HTTP/1.1 request heads for the Unix-socket server: cut off the wire, parsed, checked.

:func:`split_head` cuts a complete head off the connection's buffer (``bytes.find`` for the
blank line), enforcing the size limits while it is incomplete; :func:`parse_head` turns it
into a :class:`RequestHead`, validating with two compiled regular expressions (request
line, whole header block), so a ``GET`` costs a few C calls and one short loop over its
header lines. Responses, the other direction, are :mod:`.http_messages`'s.

Refused, each as an :class:`HttpError` with the status to send (the server then closes, as
the connection may not be at a message boundary):

* Line endings other than CRLF (bare CR or LF, ``\n\n``): parsers that split such heads
  differently are how requests get smuggled past a proxy. Obsolete line folding,
  whitespace before a field's colon, control characters in a value. 400.
* A second ``Content-Length`` or ``Host``; a ``Content-Length`` that is not plain digits; no
  ``Host`` in HTTP/1.1; ``Transfer-Encoding`` with ``Content-Length`` (the smuggling pair).
  400. Chunked request bodies are deliberately unsupported (every client of this server
  knows its body's length): 411; other transfer codings: 501.
* Request line over the limit: 414; too many or too large header lines: 431.
* HTTP versions other than 1.x: 505 (1.2 and up are read as 1.1, RFC 9112 2.3).
  ``Expect`` other than ``100-continue``: 417.
* Targets other than origin-form, absolute-form or ``OPTIONS *``; percent-escapes that
  are not UTF-8 or decode to control characters; a repeated query parameter (which of two
  ``session=`` values would count?). 400.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qsl, unquote

__all__ = ["HeadLimits", "HttpError", "RequestHead", "parse_head", "split_head"]

_TCHAR = rb"!#$%&'*+.^_`|~0-9A-Za-z-"
_REQUEST_LINE = re.compile(rb"([" + _TCHAR + rb"]+) ([\x21-\x7e]+) HTTP/([0-9])\.([0-9])")
# The whole header block, each line CRLF-terminated: a token, a colon straight after it, then
# visible characters, spaces and tabs only. The classes exclude ':' and CR/LF respectively, so
# matching never backtracks.
_HEADER_BLOCK = re.compile(rb"(?:[" + _TCHAR + rb"]+:[\t\x20-\x7e\x80-\xff]*\r\n)*")
_TOKEN = re.compile(rb"[" + _TCHAR + rb"]+")
_FIELD_VALUE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_EMPTY_LINES = re.compile(rb"(?:\r\n)+")
# Headers that must appear at most once: a second copy is ambiguous, not a list.
_SINGLETONS = frozenset({"content-length", "host"})
_MAX_CONTENT_LENGTH_DIGITS = 18
_MAX_QUERY_FIELDS = 64


class HeadLimits(Protocol):
    """What a request head is held to (``uds_http.HttpLimits`` is one)."""

    @property
    def max_request_line(self) -> int:
        """Longest request line, in bytes without its CRLF (414 above it)."""
        ...

    @property
    def max_head_bytes(self) -> int:
        """Largest head, request line and header lines together (431 above it)."""
        ...

    @property
    def max_header_count(self) -> int:
        """Most header lines (431 above it)."""
        ...


class HttpError(Exception):
    """A request that must be refused with ``status``; the connection is closed afterwards.

    Attributes:
        status: The HTTP status to answer with.
        code: A short machine-readable error code for the JSON body.
        message: A human-readable reason (never echoes request bytes back).
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(slots=True)
class RequestHead:
    """A parsed request head.

    Attributes:
        method: The method, case preserved (methods are case-sensitive).
        path: The percent-decoded path (``*`` for ``OPTIONS *``).
        query: The decoded query parameters (each name at most once).
        headers: Field values by lower-case name; repeated fields joined with ``", "``.
        content_length: The body length in bytes (0 when absent).
        keep_alive: Whether the connection may carry another request afterwards.
        expect_continue: The client waits for ``100 Continue`` before sending the body.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    content_length: int
    keep_alive: bool
    expect_continue: bool


def split_head(buf: bytes, limits: HeadLimits) -> tuple[bytes, bytes]:
    """Cut a complete request head off the front of ``buf``.

    Args:
        buf: Bytes received so far on the connection.
        limits: The head's size limits.

    Returns:
        ``(head, rest)``: the head up to and including the CRLF of its last line (the blank
        line is dropped) and the bytes after it. ``head`` is empty when the head is not
        complete yet; ``rest`` is then ``buf`` without leading empty lines.

    Raises:
        HttpError: The head is already too large, or uses bare LF line endings.
    """
    # RFC 9112 2.2: ignore empty lines before a request line (some clients send a CRLF
    # after a body); one match, not a loop of slices, so a flood of them stays linear.
    if buf[:2] == b"\r\n" and (empty := _EMPTY_LINES.match(buf)) is not None:
        buf = buf[empty.end() :]
    end = buf.find(b"\r\n\r\n")
    max_request_line = limits.max_request_line
    if end >= 0:
        if end + 2 > limits.max_head_bytes:
            _raise_too_large(buf, max_request_line)
        return buf[: end + 2], buf[end + 4 :]
    if len(buf) > limits.max_head_bytes or (
        len(buf) > max_request_line and buf.find(b"\r\n", 0, max_request_line + 2) < 0
    ):
        _raise_too_large(buf, max_request_line)
    if b"\n\n" in buf or b"\n\r\n" in buf:
        # A head ending in bare LFs would otherwise just wait for the header timeout.
        raise HttpError(400, "bad_request", "lines must end with CRLF")
    return b"", buf


def _raise_too_large(buf: bytes, max_request_line: int) -> None:
    """Refuse a head over its limits: 414 if the request line is the culprit, else 431."""
    if buf.find(b"\r\n", 0, max_request_line + 2) < 0:
        raise HttpError(414, "uri_too_long", "the request line is too long")
    raise HttpError(431, "headers_too_large", "the request headers are too large")


def parse_head(head: bytes, limits: HeadLimits) -> RequestHead:
    """Parse a complete request head.

    Args:
        head: The request line and header lines, each ending in CRLF (from :func:`split_head`).
        limits: The head's size limits.

    Returns:
        The parsed head.

    Raises:
        HttpError: The head is malformed, too large, or asks for something unsupported.
    """
    line_end = head.find(b"\r\n")
    if line_end > limits.max_request_line:
        raise HttpError(414, "uri_too_long", "the request line is too long")
    match = _REQUEST_LINE.fullmatch(head, 0, line_end)
    if match is None:
        raise HttpError(400, "bad_request", "malformed request line")
    method_bytes, target, major, minor = match.groups()
    if major != b"1":
        raise HttpError(505, "version_not_supported", "only HTTP/1.1 and HTTP/1.0 are served")
    http10 = minor == b"0"
    start = line_end + 2
    if head.count(b"\r\n", start) > limits.max_header_count:
        raise HttpError(431, "headers_too_large", "too many header lines")
    if _HEADER_BLOCK.fullmatch(head, start) is None:
        raise HttpError(400, "bad_request", _diagnose(head[start:]))
    method = method_bytes.decode("ascii")
    headers = _headers(head[start:-2]) if start < len(head) else {}
    path, query = _target(method, target.decode("ascii"))
    if not http10 and "host" not in headers:
        raise HttpError(400, "bad_request", "HTTP/1.1 requests need a Host header")
    content_length = _body_length(headers, http10)
    expect_continue = False
    expect = headers.get("expect")
    if expect is not None and not http10:  # RFC 9110 10.1.1: ignore Expect from 1.0 clients
        if expect.lower() != "100-continue":
            raise HttpError(417, "expectation_failed", "only Expect: 100-continue is supported")
        expect_continue = content_length > 0
    keep_alive = not http10
    connection = headers.get("connection")
    if keep_alive and connection is not None:
        keep_alive = "close" not in (token.strip().lower() for token in connection.split(","))
    return RequestHead(method, path, query, headers, content_length, keep_alive, expect_continue)


def _headers(block: bytes) -> dict[str, str]:
    """The fields of a header block that passed ``_HEADER_BLOCK``, by lower-case name."""
    headers: dict[str, str] = {}
    for line in block.split(b"\r\n"):
        name, _, value = line.partition(b":")
        key = name.lower().decode("ascii")
        text = value.strip(b" \t").decode("latin-1")
        previous = headers.get(key)
        if previous is None:
            headers[key] = text
        elif key in _SINGLETONS:
            raise HttpError(400, "bad_request", f"more than one {key} header")
        else:
            headers[key] = f"{previous}, {text}"
    return headers


def _diagnose(block: bytes) -> str:
    """Say what is wrong with a header block that failed the fast check (error path only)."""
    for line in block.split(b"\r\n")[:-1]:
        name, colon, value = line.partition(b":")
        if line[:1] in {b" ", b"\t"}:
            return "obsolete line folding is not allowed"
        if b"\r" in line or b"\n" in line:
            return "bare CR or LF in a header line"
        if not colon:
            return "a header line has no colon"
        if name.rstrip(b" \t") != name:
            return "whitespace between a header name and its colon"
        if _TOKEN.fullmatch(name) is None:
            return "invalid character in a header name"
        if _FIELD_VALUE.fullmatch(value) is None:
            return "invalid character in a header value"
    return "malformed header block"


def _target(method: str, target: str) -> tuple[str, dict[str, str]]:
    """The decoded path and query of a request target (origin, absolute or ``*`` form)."""
    if target[0] != "/":
        if target == "*" and method == "OPTIONS":
            return "*", {}
        scheme, sep, rest = target.partition("://")
        if not sep or scheme.lower() not in {"http", "https"}:
            raise HttpError(400, "bad_request", "unsupported request target form")
        # RFC 9112 3.2.2: servers must accept the absolute form; the authority is ignored
        # because this server has exactly one origin.
        slash = rest.find("/")
        target = rest[slash:] if slash >= 0 else "/"
    if "#" in target:
        raise HttpError(400, "bad_request", "a request target cannot carry a fragment")
    path, _, query_text = target.partition("?")
    if "%" in path:
        try:
            path = unquote(path, errors="strict")
        except UnicodeDecodeError:
            raise HttpError(400, "bad_request", "the path is not valid UTF-8") from None
        if _CONTROL.search(path) is not None:
            raise HttpError(400, "bad_request", "control character in the path")
    return path, (_query(query_text) if query_text else {})


def _query(text: str) -> dict[str, str]:
    """The query's parameters, each name at most once."""
    try:
        pairs = parse_qsl(
            text, keep_blank_values=True, errors="strict", max_num_fields=_MAX_QUERY_FIELDS
        )
    except UnicodeDecodeError:
        raise HttpError(400, "bad_request", "the query is not valid UTF-8") from None
    except ValueError:
        raise HttpError(400, "bad_request", "too many query parameters") from None
    query = dict(pairs)
    if len(query) != len(pairs):
        raise HttpError(400, "bad_request", "a query parameter is repeated")
    return query


def _body_length(headers: dict[str, str], http10: bool) -> int:
    """The body's length from ``Content-Length``; ``Transfer-Encoding`` is refused."""
    coding = headers.get("transfer-encoding")
    length = headers.get("content-length")
    if coding is not None:
        if length is not None or http10:
            # Either framing could be believed; a proxy in front may have picked the other.
            raise HttpError(400, "bad_request", "Transfer-Encoding cannot be used here")
        if coding.rsplit(",", 1)[-1].strip().lower() == "chunked":
            raise HttpError(411, "length_required", "send the body with a Content-Length")
        raise HttpError(501, "not_implemented", "unsupported Transfer-Encoding")
    if length is None:
        return 0
    if not (length.isascii() and length.isdigit()) or len(length) > _MAX_CONTENT_LENGTH_DIGITS:
        raise HttpError(400, "bad_request", "invalid Content-Length")
    return int(length)
