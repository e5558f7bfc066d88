"""The gateway bridge: the embedding API over HTTP on an owner-only Unix socket.

A gateway that is not written in Python (OpenClaw itself is Node.js) forwards its hooks,
commands, tool calls and gateway methods here with a thin shim; the JSON shapes are exactly
those of the embedding API (host contract, camelCase):

* ``GET /definitions``: what to register (hook names, commands, agent tools, methods).
* ``POST /hook/<name>`` with ``{"event": {...}, "ctx": {...}}``: the hook's result or
  ``null``.
* ``POST /command`` with the command context (``commandBody`` …): a ReplyPayload.
* ``POST /tool/<name>`` with ``{"params": {...}, "context": {...}}`` (the tool factory's
  context): a tool result.
* ``POST /gateway/<method>`` with ``{"params": {...}, "client": {...}}``:
  ``{ok, payload?, error?}``.
* ``POST /approval/<id>`` with ``{"decision": "allow-once"}`` (the host's ``onResolution``):
  ``{"applied": bool}``.

A tool failure is 400 ``{"error": code, "message": …}`` (the shim throws it, as hosts expect
tools to fail). ``before_tool_call`` fails closed inside the hook itself; a request the
bridge cannot even decode is a 400 that the shim must treat as a block.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

import msgspec
import trio

from agent_identity.host.contract import to_wire
from agent_identity.system.identity import Identity
from agent_identity.transports.http_messages import HttpRequest, HttpResponse, json_error

if TYPE_CHECKING:
    from agent_identity.host.hooks import HookHandler

__all__ = ["BridgeApp"]

_GET: Final = (("Allow", "GET"),)
_POST: Final = (("Allow", "POST"),)
_encoder = msgspec.json.Encoder()


class _HookBody(msgspec.Struct):
    event: dict[str, Any]
    ctx: dict[str, Any] = msgspec.field(default_factory=dict)


class _ToolBody(msgspec.Struct):
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    context: dict[str, Any] = msgspec.field(default_factory=dict)


class _GatewayBody(msgspec.Struct):
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    client: dict[str, Any] | None = None


class _DecisionBody(msgspec.Struct):
    decision: str


def _wire(value: object) -> object:
    return to_wire(value) if isinstance(value, msgspec.Struct) else value


def _ok(value: object) -> HttpResponse:
    return HttpResponse(200, _encoder.encode(_wire(value)))


class BridgeApp:
    """Answers the bridge's requests for one running system."""

    def __init__(self, ident: Identity) -> None:
        self._ident = ident
        self._post: dict[str, Callable[[str, bytes], Awaitable[HttpResponse]]] = {
            "hook": self._hook,
            "command": self._command,
            "tool": self._tool,
            "gateway": self._gateway,
            "approval": self._approval,
        }

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        """Route one request."""
        await trio.lowlevel.checkpoint()
        if request.path == "/definitions":
            if request.method not in ("GET", "HEAD"):
                return json_error(
                    405, "method_not_allowed", "/definitions takes GET.", headers=_GET
                )
            return self._definitions()
        kind, _, rest = request.path.removeprefix("/").partition("/")
        handler = self._post.get(kind)
        if handler is None:
            return json_error(404, "not_found", "No such endpoint; see GET /definitions.")
        if request.method != "POST":
            return json_error(405, "method_not_allowed", f"/{kind} takes POST.", headers=_POST)
        try:
            return await handler(rest, request.body or b"{}")
        # msgspec raises UnicodeDecodeError, not DecodeError, for bad UTF-8 inside a string.
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            return json_error(400, "invalid_json", f"The body does not fit /{kind}: {exc}")

    def _definitions(self) -> HttpResponse:
        ident = self._ident
        return _ok(
            {
                "hooks": sorted(ident.hooks.as_mapping()),
                "commands": [d.to_wire() for d in ident.commands.definitions],
                "tools": [
                    {
                        "name": spec.name,
                        "label": spec.label,
                        "description": spec.description,
                        "parameters": spec.json_schema(),
                    }
                    for spec in ident.tools.specs()
                ],
                "gatewayMethods": list(ident.gateway_methods.methods),
            }
        )

    async def _hook(self, name: str, body: bytes) -> HttpResponse:
        await trio.lowlevel.checkpoint()
        handler: HookHandler | None = None
        for hook, candidate in self._ident.hooks.as_mapping().items():
            if hook == name:
                handler = candidate
        if handler is None:
            return json_error(404, "unknown_hook", f"No hook named {name[:64]!r}.")
        decoded = msgspec.json.decode(body, type=_HookBody)
        return _ok(await handler(decoded.event, decoded.ctx))

    async def _command(self, rest: str, body: bytes) -> HttpResponse:
        await trio.lowlevel.checkpoint()
        if rest:
            return json_error(404, "not_found", "The command endpoint is POST /command.")
        context = msgspec.json.decode(body, type=dict[str, Any])
        return _ok(await self._ident.commands.handle(context))

    async def _tool(self, name: str, body: bytes) -> HttpResponse:
        # The host handlers are imported with Identity.host, on the first call (import time
        # of serve).
        from agent_identity.host.tools import ToolError  # noqa: PLC0415

        await trio.lowlevel.checkpoint()
        decoded = msgspec.json.decode(body, type=_ToolBody)
        try:
            result = await self._ident.tools.execute(name, decoded.params, decoded.context)
        except ToolError as exc:
            status = 404 if exc.code == "unknown_tool" else 400
            return json_error(status, exc.code, exc.message)
        return _ok(result)

    async def _gateway(self, method: str, body: bytes) -> HttpResponse:
        decoded = msgspec.json.decode(body, type=_GatewayBody)
        response = await self._ident.gateway_methods.call(method, decoded.params, decoded.client)
        return _ok(response)

    async def _approval(self, approval_id: str, body: bytes) -> HttpResponse:
        decoded = msgspec.json.decode(body, type=_DecisionBody)
        applied = await self._ident.hooks.on_approval_resolution(approval_id, decoded.decision)
        return _ok({"applied": applied})
