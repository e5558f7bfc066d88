"""Minimal ASGI plumbing: a received request, a response to send, and small page helpers.

The sandbox is one hand-written ASGI app (no framework) so that it sees the exact bytes and
headers a client sent, which the signature check needs.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec

__all__ = [
    "MAX_BODY_BYTES",
    "Receive",
    "Request",
    "Response",
    "Scope",
    "Send",
    "add_query",
    "form_page",
    "html_page",
    "json_response",
    "read_request",
    "redirect",
    "send_response",
    "text_response",
]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

MAX_BODY_BYTES = 1 << 20


class BodyTooLargeError(Exception):
    """The request body exceeds :data:`MAX_BODY_BYTES`."""


@dataclass(frozen=True, slots=True)
class Request:
    """An HTTP request as received: the query decoded, the body raw."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes

    def query_value(self, name: str) -> str | None:
        """The first value of a query parameter."""
        return next((value for key, value in self.query if key == name), None)

    def form(self) -> dict[str, str]:
        """The body decoded as ``application/x-www-form-urlencoded`` (first value wins)."""
        parsed: dict[str, str] = {}
        for key, value in parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True):
            parsed.setdefault(key, value)
        return parsed


@dataclass(slots=True)
class Response:
    """An HTTP response to send.

    Attributes:
        status: The HTTP status.
        body: The body bytes (``Content-Length`` is their length).
        content_type: The ``Content-Type``.
        headers: More headers.
        hang_up: Send the head only and end the connection without the body it promises
            (the reset fault): the client's read fails mid-answer.
    """

    status: int
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)
    hang_up: bool = False


async def read_request(scope: Scope, receive: Receive) -> Request:
    """Read a whole HTTP request from ASGI.

    Raises:
        BodyTooLargeError: The body is larger than :data:`MAX_BODY_BYTES`.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        # Past the limit the rest is read and dropped, so the client finishes sending and
        # sees the 413 instead of a reset connection.
        if size <= MAX_BODY_BYTES:
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    if size > MAX_BODY_BYTES:
        raise BodyTooLargeError
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").lower()
        # The first occurrence wins, like the verifier's view of a header.
        headers.setdefault(name, raw_value.decode("latin-1"))
    query = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
    return Request(scope["method"], scope["path"], query, headers, b"".join(chunks))


async def send_response(send: Send, response: Response) -> None:
    """Send a response through ASGI."""
    headers = [
        (b"content-type", response.content_type.encode("latin-1")),
        (b"content-length", str(len(response.body)).encode("latin-1")),
        (b"cache-control", b"no-store"),
    ]
    headers.extend((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers)
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    if response.hang_up:
        # Returning with the promised body unsent makes the server close the connection:
        # ASGI has no way to send a TCP reset, and this is what the client sees of one.
        return
    await send({"type": "http.response.body", "body": response.body, "more_body": False})


def json_response(
    status: int, document: object, headers: Sequence[tuple[str, str]] = ()
) -> Response:
    """A JSON response."""
    return Response(status, msgspec.json.encode(document), headers=list(headers))


def text_response(status: int, text: str) -> Response:
    """A plain-text response."""
    return Response(status, text.encode("utf-8"), "text/plain; charset=utf-8")


def redirect(location: str) -> Response:
    """A 302 redirect."""
    return Response(302, b"", "text/plain; charset=utf-8", [("Location", location)])


def add_query(url: str, params: Mapping[str, str]) -> str:
    """Append query parameters to a URL that may already have some."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def html_page(status: int, title: str, body_html: str) -> Response:
    """A small HTML page; ``body_html`` must already be escaped."""
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1>{body_html}</body></html>"
    )
    return Response(status, page.encode("utf-8"), "text/html; charset=utf-8")


def form_page(
    status: int,
    title: str,
    message: str,
    action: str,
    hidden: Mapping[str, str],
    *,
    inputs: Sequence[tuple[str, str, str]] = (),
    buttons: Sequence[tuple[str, str, str]] = (("", "", "Continue"),),
) -> Response:
    """An HTML page with one POST form, for a person or a test's form-following client.

    Args:
        status: The HTTP status.
        title: The page title.
        message: A plain-text paragraph above the form.
        action: The form's action URL.
        hidden: Hidden fields carried through the POST.
        inputs: Visible inputs as ``(name, type, label)``.
        buttons: Submit buttons as ``(name, value, label)``; a button's name/value is posted.
    """
    fields = "".join(
        f"<input type='hidden' name='{html.escape(k)}' value='{html.escape(v)}'>"
        for k, v in hidden.items()
    )
    fields += "".join(
        f"<label>{html.escape(label)} <input type='{html.escape(kind)}' "
        f"name='{html.escape(name)}'></label><br>"
        for name, kind, label in inputs
    )
    for name, value, label in buttons:
        # A nameless button posts nothing, as in a browser.
        named = f" name='{html.escape(name)}' value='{html.escape(value)}'" if name else ""
        fields += f"<button type='submit'{named}>{html.escape(label)}</button>"
    body = (
        f"<p>{html.escape(message)}</p>"
        f"<form method='post' action='{html.escape(action)}'>{fields}</form>"
    )
    return html_page(status, title, body)
