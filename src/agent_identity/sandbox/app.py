"""The sandbox's one ASGI app: the control plane, STS and every page behind one base URL.

A request to ``/`` with ``Action`` is an API call and goes through the gateway's pipeline:
count it, apply any injected fault (an error, a delay, a garbage body or a dropped connection),
route ``(Version, Action)`` (404 ``InvalidActionOrVersion``), check the signature for the
Version's service, decode the params (JSON for ``id``, form or query for ``sts``), run the
handler. Everything else is a page: TIP issuer discovery and JWKS, user pool OIDC, the demo
OAuth2 provider, the 3LO callback, and the metadata endpoints, the LLM stand-in
(``/v1/chat/completions``, ``/v1/messages``) and the Feishu stand-in (``/open-apis/``). Any
unexpected exception becomes a logged 500 ``InternalError`` envelope; the app keeps serving.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import msgspec
import trio

from agent_identity.sandbox import (
    actions_authz,
    actions_credentials,
    actions_oauth,
    actions_userpool,
    actions_workload,
    sts,
)
from agent_identity.sandbox.asgi import (
    BodyTooLargeError,
    Receive,
    Request,
    Response,
    Scope,
    Send,
    json_response,
    read_request,
    send_response,
)
from agent_identity.sandbox.auth import authenticate
from agent_identity.sandbox.context import ActionContext, Handler
from agent_identity.sandbox.envelope import (
    ApiError,
    Meta,
    Params,
    error_body,
    new_request_id,
    success_body,
)
from agent_identity.sandbox.faults import FaultRule, Faults
from agent_identity.sandbox.feishu import DEV_APP_ID as FEISHU_DEV_APP_ID
from agent_identity.sandbox.feishu import PREFIX as FEISHU_PREFIX
from agent_identity.sandbox.feishu import FeishuSandbox
from agent_identity.sandbox.llm import PATHS as LLM_PATHS
from agent_identity.sandbox.llm import SandboxLlm
from agent_identity.sandbox.metadata import MetadataSettings, handle_metadata
from agent_identity.sandbox.oauth_demo import PREFIX as DEMO_PREFIX
from agent_identity.sandbox.oauth_demo import DemoOAuthProvider
from agent_identity.sandbox.state import SandboxState
from agent_identity.sandbox.tokens import workload_pool_document
from agent_identity.sandbox.userpool_oidc import PREFIX as USERPOOL_PREFIX
from agent_identity.sandbox.userpool_oidc import UserPoolOidc
from agent_identity.volcengine.verifier import DEFAULT_MAX_SKEW_SECONDS

__all__ = ["ID_VERSION", "RequestLog", "SandboxApp", "default_handlers"]

logger = logging.getLogger(__name__)

ID_VERSION = "2025-10-30"
SERVICES = {ID_VERSION: "id", sts.STS_VERSION: "sts"}
_WORKLOAD_PREFIX = "/workloadpool/"
_DISCOVERY = "/.well-known/openid-configuration"


def default_handlers() -> dict[tuple[str, str], Handler]:
    """Every implemented action, keyed by ``(Version, Action)``."""
    handlers: dict[tuple[str, str], Handler] = {}
    for module in (
        actions_workload,
        actions_credentials,
        actions_oauth,
        actions_userpool,
        actions_authz,
    ):
        handlers.update({(ID_VERSION, name): fn for name, fn in module.HANDLERS.items()})
    handlers.update({(sts.STS_VERSION, name): fn for name, fn in sts.HANDLERS.items()})
    return handlers


class RequestLog:
    """How many requests the sandbox saw, per Action (API calls) or path (pages)."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    def record(self, key: str) -> None:
        """Count one request."""
        self._counts[key] += 1

    def count(self, action: str) -> int:
        """How many requests named this Action (or hit this path), faulted ones included."""
        return self._counts[action]

    @property
    def total(self) -> int:
        """All requests seen."""
        return self._counts.total()

    def clear(self) -> None:
        """Forget the counts."""
        self._counts.clear()


class SandboxApp:
    """The ASGI application.

    Args:
        state: The sandbox's world.
        faults: The live fault rules.
        metadata: What the metadata endpoints answer.
        max_skew_seconds: How far ``X-Date`` may be from the sandbox's clock.
    """

    def __init__(
        self,
        state: SandboxState,
        *,
        faults: Faults,
        metadata: MetadataSettings,
        max_skew_seconds: float = DEFAULT_MAX_SKEW_SECONDS,
    ) -> None:
        self.state = state
        self.faults = faults
        self.metadata = metadata
        self.max_skew_seconds = max_skew_seconds
        self.requests = RequestLog()
        self.demo = DemoOAuthProvider(state)
        self.oidc = UserPoolOidc(state)
        self.llm = SandboxLlm()
        self.feishu = FeishuSandbox()
        self.handlers = default_handlers()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope."""
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            await trio.lowlevel.checkpoint()
            return
        try:
            request = await read_request(scope, receive)
        except BodyTooLargeError:
            await send_response(
                send,
                self._error(
                    None, "", ApiError(413, "RequestEntityTooLarge", "The body is too large.")
                ),
            )
            return
        await send_response(send, await self.respond(request))

    async def respond(self, request: Request) -> Response:
        """Answer one request (the whole pipeline, faults included)."""
        # A checkpoint on every path keeps one busy client from starving the others.
        await trio.lowlevel.checkpoint()
        action = request.query_value("Action") if request.path == "/" else None
        self.requests.record(action if action is not None else request.path)
        rule = self.faults.pick(action, request.path)
        if rule is not None:
            if rule.latency > 0:
                await trio.sleep(rule.latency)
            faulted = self._fault(rule, request, action)
            if faulted is not None:
                return faulted
        try:
            if request.path == "/":
                return self._api(request, action)
            if request.path in LLM_PATHS:
                # The only async page: the LLM stand-in may be told to answer slowly.
                return await self.llm.handle(request)
            if request.path.startswith(FEISHU_PREFIX):
                return await self.feishu.handle(request)
            return self._page(request)
        except Exception:
            logger.exception(
                "sandbox: unexpected error serving %s %s", request.method, request.path
            )
            return self._error(
                action,
                request.query_value("Version") or "",
                ApiError(500, "InternalError", "The sandbox failed unexpectedly; see its log."),
            )

    def _meta(self, action: str | None, version: str) -> Meta:
        return Meta(
            new_request_id(), action or "", version, SERVICES.get(version, "id"), self.state.region
        )

    def _error(self, action: str | None, version: str, error: ApiError) -> Response:
        return Response(
            error.status,
            error_body(self._meta(action, version), error),
            headers=list(error.headers),
        )

    def _fault(self, rule: FaultRule, request: Request, action: str | None) -> Response | None:
        if rule.reset:
            return Response(200, b'{"injected": "reset"}', hang_up=True)
        if rule.malformed == "envelope":
            return json_response(200, {"Result": {}, "Message": "injected: no ResponseMetadata"})
        if rule.malformed:
            return Response(200, b"<html><body>injected: not JSON</body></html>", "text/html")
        if rule.status is None:
            return None
        headers = [("Retry-After", str(rule.retry_after))] if rule.retry_after is not None else []
        error = ApiError(
            rule.status, rule.error_code, f"Injected fault: {rule.error_code}.", headers=headers
        )
        return self._error(action, request.query_value("Version") or "", error)

    def _api(self, request: Request, action: str | None) -> Response:
        version = request.query_value("Version") or ""
        if action is None and request.method == "GET" and not request.query:
            return json_response(200, self.index())
        try:
            result = self._call(request, action, version)
        except ApiError as exc:
            return self._error(action, version, exc)
        return Response(200, success_body(self._meta(action, version), result))

    def _call(self, request: Request, action: str | None, version: str) -> dict[str, Any]:
        if action is None:
            raise ApiError(400, "MissingAction", "The Action query parameter is required.")
        handler = self.handlers.get((version, action))
        if handler is None:
            raise ApiError(
                404,
                "InvalidActionOrVersion",
                f"The action {action!r} of version {version!r} does not exist.",
                100008,
            )
        service = SERVICES[version]
        caller = authenticate(
            self.state,
            method=request.method,
            path=request.path,
            query=request.query,
            headers=request.headers,
            body=request.body,
            service=service,
            max_skew_seconds=self.max_skew_seconds,
        )
        params = Params(_decode_params(request, service))
        return handler(ActionContext(self.state, params, caller, action, self.demo))

    def _page(self, request: Request) -> Response:
        path = request.path
        if path.startswith(_WORKLOAD_PREFIX):
            pool_id, _, tail = path.removeprefix(_WORKLOAD_PREFIX).partition("/")
            document = workload_pool_document(self.state, pool_id, tail)
            if document is not None:
                return json_response(200, document)
        elif path.startswith(USERPOOL_PREFIX):
            return self.oidc.handle(request)
        elif path.startswith(f"{DEMO_PREFIX}/"):
            return self.demo.handle(request)
        elif path == actions_oauth.CALLBACK_PATH:
            return actions_oauth.handle_callback(self.state, self.demo, request)
        else:
            found = handle_metadata(self.state, self.metadata, request)
            if found is not None:
                return found
        return json_response(404, {"error": "not_found", "path": path})

    def index(self) -> dict[str, Any]:
        """What ``GET /`` shows: where everything is, for a newcomer poking at the sandbox."""
        base = self.state.base_url
        return {
            "Service": "agent-identity sandbox (Volcengine Identity + STS emulator)",
            "Region": self.state.region,
            "Endpoint": base,
            "Versions": {"id": ID_VERSION, "sts": sts.STS_VERSION},
            "Actions": sorted(f"{name} ({version})" for version, name in self.handlers),
            "WorkloadPools": [
                {
                    "Name": p.name,
                    "DiscoveryUrl": f"{self.state.tip_issuer(p)}{_DISCOVERY}",
                }
                for p in self.state.workload_pools.values()
            ],
            "UserPools": [
                {
                    "Name": p.name,
                    "Uid": p.uid,
                    "DiscoveryUrl": f"{self.state.user_pool_issuer(p)}{_DISCOVERY}",
                }
                for p in self.state.user_pools.values()
            ],
            "Metadata": {
                "RegionUrl": f"{base}/latest/region_id",
                "CredentialsUrl": f"{base}/latest/credentials",
            },
            "Llm": {"Endpoint": f"{base}/v1", "Paths": sorted(LLM_PATHS)},
            "Feishu": {"Domain": base, "AppId": FEISHU_DEV_APP_ID},
        }


def _decode_params(request: Request, service: str) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if service == "sts":
        # STS takes its params from the query (GET) or a form body (the new SDK's POST).
        params.update((k, v) for k, v in request.query if k not in {"Action", "Version"})
    if not request.body.strip():
        return params
    if service == "sts" and "json" not in request.headers.get("content-type", ""):
        params.update(request.form())
        return params
    try:
        decoded = msgspec.json.decode(request.body)
    except msgspec.DecodeError as exc:
        raise ApiError(400, "InvalidRequest", f"The body is not valid JSON: {exc}") from exc
    if not isinstance(decoded, dict):
        raise ApiError(400, "InvalidRequest", "The body must be a JSON object.")
    params.update(decoded)
    return params


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
