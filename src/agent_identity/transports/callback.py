"""The OIDC login callback: a plain ASGI 3 app for ``GET /identity/oauth/callback``.

The IdP redirects the user's browser here with ``code`` and ``state`` (or ``error`` and
``error_description``). The app hands the query parameters to a :class:`LoginCompleter`
(the actors-layer login flow satisfies it; transports never import actors) and renders its
outcome: a success page naming the user, or an error page with a reason. It never shows a
token or any other secret, and every response carries ``Cache-Control: no-store``, a
``Content-Security-Policy`` that loads nothing, and ``Referrer-Policy: no-referrer`` (the
URL carries the authorization code).

Routing: the exact path only (other paths 404); ``GET`` only (other methods 405). A query
with a repeated OAuth parameter is refused without calling the completer (RFC 6749 §3.1:
parameters must not be included more than once). An unexpected exception from the completer
becomes a generic error page and is logged; it never crashes the server.

Serving: :func:`serve_callback_app` runs the app with hypercorn on the ``callbackUrl``'s
host and port (:func:`bind_address`) when agent-identity runs standalone; an embedding
gateway can instead mount :class:`CallbackApp` under its own ASGI server. Hypercorn's access
log stays off because request lines carry the authorization code. A server that must bind
before the app exists (a gateway that listens first, then starts the identity system) serves
a :class:`DeferredApp` and sets its ``app`` once there is one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any, Protocol, cast
from urllib.parse import parse_qsl, urlsplit

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from hypercorn.typing import ASGIFramework

from agent_identity._net import bound_tcp_fd
from agent_identity.transports.pages import (
    error_page,
    security_headers,
    simple_page,
    success_page,
)

__all__ = [
    "CALLBACK_PATH",
    "MAX_QUERY_LENGTH",
    "OAUTH_PARAMETERS",
    "ASGIApp",
    "CallbackApp",
    "CallbackResult",
    "DeferredApp",
    "LoginCompleter",
    "bind_address",
    "serve_callback_app",
]

logger = logging.getLogger(__name__)

#: The route the plugin registers (host contract, section 8 item 9).
CALLBACK_PATH = "/identity/oauth/callback"
#: Longest query string accepted, in bytes.
MAX_QUERY_LENGTH = 8192
#: Parameters that must not be repeated.
OAUTH_PARAMETERS = frozenset({"code", "state", "error", "error_description", "error_uri", "iss"})

_GRACE_SECONDS = 2.0
_INTERNAL_ERROR = "The login could not be completed because of an internal error. Try again."
_MALFORMED = "The login response was malformed. Start a new login with /identity login."
_NOT_READY = "The login service is starting or stopping. Try again in a moment."

Scope = Mapping[str, Any]
Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Send = Callable[[Mapping[str, Any]], Awaitable[None]]
#: A plain ASGI 3 application.
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class CallbackResult(Protocol):
    """What the app needs to know about a completed (or failed) login."""

    @property
    def ok(self) -> bool:
        """Whether a session was created."""
        ...

    @property
    def sub(self) -> str | None:
        """The logged-in user's subject (on success)."""
        ...

    @property
    def message(self) -> str:
        """A user-safe sentence: why the login failed (on failure)."""
        ...


class LoginCompleter(Protocol):
    """Completes a login from the callback's query parameters (the login flow)."""

    async def complete(self, params: Mapping[str, str]) -> CallbackResult:
        """Finish the login; expected failures are results, not exceptions."""
        ...


class CallbackApp:
    """The callback as an ASGI 3 application.

    Args:
        completer: Finishes logins (the actors-layer login flow).
        path: The exact path to serve (the path of the ``callbackUrl``).
    """

    def __init__(self, completer: LoginCompleter, *, path: str = CALLBACK_PATH) -> None:
        self._completer = completer
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope."""
        kind = scope["type"]
        if kind == "lifespan":
            await _lifespan(receive, send)
        elif kind == "http":
            await self._http(scope, send)
        else:  # websocket: nothing to see here
            await send({"type": "websocket.close", "code": 1008})

    async def _http(self, scope: Scope, send: Send) -> None:
        path = scope.get("path", "")
        root = scope.get("root_path", "")
        # ASGI servers put the mount prefix in both ``root_path`` and ``path``; older ones
        # only in ``root_path``. Either way the route is the exact path under the mount.
        if path != self.path and not (root and path == f"{root}{self.path}"):
            await _respond(send, 404, _page("Not found", "There is nothing here."))
            return
        if scope.get("method") != "GET":
            await _respond(
                send,
                405,
                _page("Method not allowed", "Use GET."),
                extra=[(b"allow", b"GET")],
            )
            return
        params = _query(scope.get("query_string", b""))
        if params is None:
            await _respond(send, 400, error_page(_MALFORMED))
            return
        try:
            result = await self._completer.complete(params)
        except Exception:  # one bad login must never take the server down
            logger.exception("the login callback failed unexpectedly")
            await _respond(send, 500, error_page(_INTERNAL_ERROR))
            return
        if result.ok:
            await _respond(send, 200, success_page(result.sub or "your account"))
        else:
            await _respond(send, 400, error_page(result.message or _INTERNAL_ERROR))


class DeferredApp:
    """An ASGI 3 app that forwards to one set later: serve first, attach the app after.

    It answers the server's ``lifespan`` itself (startup and shutdown complete at once, so the
    server starts whether or not an app is attached yet) and forwards every other scope to
    :attr:`app`. While no app is attached an HTTP request gets ``503`` and a WebSocket is
    closed. Attaching, replacing and detaching (``None``) take effect for the next request.

    Args:
        app: The app to forward to, if it exists already.
    """

    def __init__(self, app: ASGIApp | None = None) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope."""
        kind = scope["type"]
        if kind == "lifespan":
            await _lifespan(receive, send)
            return
        app = self.app
        if app is not None:
            await app(scope, receive, send)
        elif kind == "http":
            await _respond(
                send, 503, _page("Not ready", _NOT_READY), extra=[(b"retry-after", b"1")]
            )
        else:
            await send({"type": "websocket.close", "code": 1013})  # try again later


def _page(title: str, text: str) -> bytes:
    return simple_page(title, [text])


def _query(raw: bytes) -> dict[str, str] | None:
    """Parse the query string; ``None`` if too long, not UTF-8, or repeating an OAuth name."""
    if len(raw) > MAX_QUERY_LENGTH:
        return None
    try:
        pairs = parse_qsl(
            raw.decode("ascii"),
            keep_blank_values=True,
            strict_parsing=False,
            encoding="utf-8",
            errors="strict",
            max_num_fields=32,
        )
    except (UnicodeDecodeError, ValueError):
        return None
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            if name in OAUTH_PARAMETERS:
                return None
            continue
        params[name] = value
    return params


async def _respond(
    send: Send, status: int, body: bytes, *, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [*security_headers(), (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


# --------------------------------------------------------------------------- serving


def bind_address(callback_url: str) -> tuple[str, int, str]:
    """Where to serve a ``callbackUrl`` standalone: ``(host, port, path)``.

    The port defaults to 80 for ``http`` and 443 for ``https`` (TLS is expected to be
    terminated in front of the gateway); the path defaults to :data:`CALLBACK_PATH`.

    Raises:
        ValueError: The URL is not ``http(s)`` or has no host.
    """
    parts = urlsplit(callback_url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError("the callback URL must be an http(s) URL with a host")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname, port, parts.path or CALLBACK_PATH


async def serve_callback_app(
    app: ASGIApp,
    host: str,
    port: int,
    *,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the callback app with hypercorn until the shutdown trigger fires.

    Start it with ``nursery.start``: it binds first (so a taken port fails the start) and
    reports the base URL it serves, e.g. ``http://127.0.0.1:18789`` (useful with port 0).
    When ``shutdown_trigger`` returns, hypercorn stops accepting and gives open connections
    a short grace period; cancelling the task stops it at once.

    Args:
        app: The callback app (or a gateway app that mounts it).
        host: The address to listen on.
        port: The port (0: an ephemeral one).
        shutdown_trigger: Awaited by hypercorn; returning starts the graceful shutdown.
            Default: never (stop by cancellation).
        task_status: Receives the base URL.

    Raises:
        OSError: The address cannot be bound.
    """
    config = Config()
    config.bind = [f"fd://{bound_tcp_fd(host, port)}"]
    config.accesslog = None  # request lines carry the authorization code
    config.errorlog = logger
    config.graceful_timeout = _GRACE_SECONDS
    trigger = shutdown_trigger if shutdown_trigger is not None else trio.sleep_forever
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(
            partial(serve, cast("ASGIFramework", app), config, shutdown_trigger=trigger)
        )
        task_status.started(binds[0])
