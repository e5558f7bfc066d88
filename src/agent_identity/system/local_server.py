"""The local identity server's endpoints (spec "Local Identity Server (UDS)").

=======  ===================  =====================================================
method   path                 answer
=======  ===================  =====================================================
GET      /token               the main session's TIP (``?session=<key>`` for another)
GET      /session             the main session's OIDC id token (``?session=`` too)
GET      /status              health and a summary of the sessions (no secrets)
GET      /tools               every tool: name, label, description, JSON schema
POST     /tool/<name>         run a tool: ``{"params": {...}, "session": "..."}``
GET      /metrics             Prometheus text
=======  ===================  =====================================================

Answers are JSON; errors are ``{"error": code, "message": text}`` with 400 (bad JSON or
params), 401 (the session's login expired), 404 (unknown path or tool, or a session that is
not logged in, with a hint to run ``/identity login``), 405 (wrong method), 500 (a bug) or
503 (the control plane is unavailable). The socket is reachable only by processes the peer
gate admits (the socket owner's, allowlisted), so a request may name any session: the caller
is the operator of this gateway (:func:`~agent_identity.host.caller.caller_for_local`).

``GET /token`` is the hot path: one actor hop to the TIP cache, then a body encoded once per
TIP and reused while that TIP is served.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import msgspec
import trio

from agent_identity.actors.tip_messages import LoggedOut, NoTip, TipInfo
from agent_identity.host.caller import Caller, caller_for_local
from agent_identity.host.contract import to_wire
from agent_identity.system.identity import Identity
from agent_identity.system.metrics import RequestMetrics, render_metrics
from agent_identity.transports.http_messages import HttpRequest, HttpResponse, json_error

__all__ = ["LocalServerApp"]

logger = logging.getLogger(__name__)

_GET: Final = (("Allow", "GET"),)
_POST: Final = (("Allow", "POST"),)
_METRICS_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
_TOOL_STATUS: Final = {
    "unknown_tool": 404,
    "invalid_params": 400,
    "invalid_context": 400,
    "not_logged_in": 404,
    "logged_out": 401,
    "tip_unavailable": 503,
    "internal": 500,
}
_encoder = msgspec.json.Encoder()


class _ToolBody(msgspec.Struct, forbid_unknown_fields=True):
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    session: str | None = None


async def _answer(response: HttpResponse) -> HttpResponse:
    """Return ``response`` after a checkpoint (paths that answer without other awaits)."""
    await trio.lowlevel.checkpoint()
    return response


def _token_body(tip: TipInfo) -> bytes:
    """``GET /token``'s answer for a TIP (it depends on the TIP only: it is kept with it)."""
    return _encoder.encode(
        {
            "token": tip.token,
            "sessionKey": tip.session_key,
            "sub": tip.sub,
            "expiresAt": int(tip.expires_at),
            "delegationChain": list(tip.chain.actors),
        }
    )


def _json(status: int, value: object) -> HttpResponse:
    return HttpResponse(status, _encoder.encode(value))


def _not_logged_in(key: str) -> HttpResponse:
    return json_error(
        404,
        "not_logged_in",
        f"Session {key!r} is not logged in. Run /identity login in that chat first.",
    )


def _no_tip(key: str, outcome: NoTip) -> HttpResponse:
    if isinstance(outcome, LoggedOut):
        return json_error(
            401, "logged_out", f"The login of {key!r} expired or was revoked: /identity login."
        )
    if outcome.code == "no_session":
        return _not_logged_in(key)
    return json_error(503, "tip_unavailable", f"No TIP for {key!r} right now: {outcome.reason}")


class LocalServerApp:
    """Answers the local server's requests for one running system.

    Args:
        ident: The running system.
        metrics: Where requests are counted (shared with ``/metrics``).
        clock: Wall-clock seconds (for ``expiresIn``).
    """

    def __init__(
        self,
        ident: Identity,
        metrics: RequestMetrics | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ident = ident
        self.metrics = metrics if metrics is not None else RequestMetrics()
        self._clock = clock
        self._personal = ident.plugin.identity.personal_session_mode
        self._routes: Mapping[str, tuple[str, Callable[[HttpRequest], Awaitable[HttpResponse]]]] = {
            "/token": ("GET", self._token),
            "/session": ("GET", self._session),
            "/status": ("GET", self._status),
            "/tools": ("GET", self._tools),
            "/metrics": ("GET", self._metrics),
        }

    def _caller(self, session: str | None) -> Caller:
        return caller_for_local(session, personal_session_mode=self._personal)

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        """Route one request and count it (a handler failure counts as the 500 it becomes)."""
        started = time.perf_counter()
        endpoint = self._endpoint(request.path)
        try:
            response = await self._route(endpoint, request)
        except Exception:
            # The server answers an escaping exception with a 500; count it here, or
            # /metrics would hide exactly the failures it is read for.
            self.metrics.observe(endpoint, 500, time.perf_counter() - started)
            raise
        self.metrics.observe(endpoint, response.status, time.perf_counter() - started)
        return response

    def _endpoint(self, path: str) -> str:
        """The metrics label of ``path``: a route name, never the raw path."""
        if path in self._routes:
            return path[1:]
        return "tool" if path.startswith("/tool/") else "other"

    async def _route(self, endpoint: str, request: HttpRequest) -> HttpResponse:
        path = request.path
        route = self._routes.get(path)
        if route is not None:
            method, handler = route
            if request.method not in (method, "HEAD"):
                return await _answer(
                    json_error(405, "method_not_allowed", f"{path} takes {method}.", headers=_GET)
                )
            return await handler(request)
        if endpoint == "tool":
            if request.method != "POST":
                return await _answer(
                    json_error(405, "method_not_allowed", "/tool/<name> takes POST.", headers=_POST)
                )
            return await self._tool(path.removeprefix("/tool/"), request)
        return await _answer(json_error(404, "not_found", "No such endpoint; see GET /tools."))

    async def _token(self, request: HttpRequest) -> HttpResponse:
        key = self._caller(request.query.get("session")).session_key
        tips = self._ident.tips
        # A cached TIP is answered in this task (no mailbox round trip: most of a /token),
        # with its body encoded once per TIP and kept with it.
        body = tips.token_body_nowait(key, _token_body)
        if body is not None:
            await trio.lowlevel.checkpoint()  # still one turn of the loop per request
            return HttpResponse(200, body)
        outcome = await tips.get_tip(key)
        if isinstance(outcome, NoTip):
            return _no_tip(key, outcome)
        return HttpResponse(200, _token_body(outcome))

    async def _session(self, request: HttpRequest) -> HttpResponse:
        key = self._caller(request.query.get("session")).session_key
        view = await self._ident.sessions.get(key)
        if view is None:
            return _not_logged_in(key)
        return _json(
            200,
            {
                "idToken": view.user_token,
                "sessionKey": key,
                "sub": view.sub,
                "expiresAt": int(view.expires_at),
                "hasRefreshToken": view.has_refresh_token,
            },
        )

    async def _status(self, request: HttpRequest) -> HttpResponse:
        del request
        views = await self._ident.sessions.list()
        tips = {tip.session_key for tip in await self._ident.tips.list_tips()}
        sessions = [
            {
                "sessionKey": view.session_key,
                "sub": view.sub,
                "expiresAt": int(view.expires_at),
                "hasTip": view.session_key in tips,
            }
            for view in views
        ]
        stats = self._ident.statistics()
        healthy = stats.root.running and stats.services.running
        return _json(
            200 if healthy else 503,
            {"status": "ok" if healthy else "degraded", "sessions": sessions},
        )

    async def _tools(self, request: HttpRequest) -> HttpResponse:
        await trio.lowlevel.checkpoint()
        del request
        tools = self._ident.tools
        listing = [
            {
                "name": spec.name,
                "label": spec.label,
                "description": spec.description,
                "parameters": spec.json_schema(),
                "agentVisible": spec.agent_visible,
            }
            for spec in tools.specs(include_hidden=True)
        ]
        return _json(200, {"tools": listing})

    async def _metrics(self, request: HttpRequest) -> HttpResponse:
        await trio.lowlevel.checkpoint()
        del request
        text = render_metrics(self._ident.statistics(), self.metrics)
        return HttpResponse(200, text.encode(), content_type=_METRICS_TYPE)

    async def _tool(self, name: str, request: HttpRequest) -> HttpResponse:
        # The host handlers are imported with Identity.host, on the first call (import time
        # of serve).
        from agent_identity.host.tools import ToolError  # noqa: PLC0415

        try:
            body = msgspec.json.decode(request.body or b"{}", type=_ToolBody)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # bad UTF-8 in a string
            return await _answer(
                json_error(400, "invalid_json", f"The body must be {{params, session}}: {exc}")
            )
        try:
            result = await self._ident.tools.execute_for(
                self._caller(body.session), name, body.params, include_hidden=True
            )
        except ToolError as exc:
            return await _answer(json_error(_TOOL_STATUS.get(exc.code, 400), exc.code, exc.message))
        return _json(200, to_wire(result))
