"""The WebChat session exchange: gateway methods ``identity.session.put`` / ``.get``.

With ``identity.webchatSessionExchange`` on, a WebChat client (typically fed by a BFF that
did the OIDC login itself) hands the plugin a user's id token instead of going through
``/identity login``, and reads it back later (plugin README, "WebChat Session Exchange").

Registration. :attr:`IdentityGatewayMethods.handlers` maps each method name to a handler
that takes the host's handler options ``opts`` — a mapping or an object with ``params``,
``client`` (``{connect, connId, clientIp}``, :class:`~agent_identity.host.contract.
GatewayClient` or its camelCase mapping), optionally ``isWebchatConnect`` (the host's
predicate) and ``respond(ok, payload, error)`` — answers through ``respond`` exactly once
when it is given (an awaitable result is awaited), and returns the same answer as a
:class:`GatewayResponse`. It is empty when the feature is off: nothing is registered.
Register each with ``{"scope": METHOD_SCOPE}`` so WebChat clients pass the host's scope check
(a method without a scope needs ``operator.admin``, host contract 6).
:meth:`IdentityGatewayMethods.call` is the same dispatch without the host's envelope.

Rules, in the order they are checked:

1. An unregistered method (or the feature off) → ``INVALID_REQUEST`` "unknown method".
2. Not a WebChat connection → ``FORBIDDEN``: the host's ``isWebchatConnect`` when it passes
   one, else :func:`~agent_identity.host.contract.is_webchat_connect` (fail closed).
3. Malformed params → ``INVALID_REQUEST`` naming the field (``$.idToken`` …), never a value.
4. The effective key is :func:`~agent_identity.host.session_keys.build_effective_session_key`
   of ``sessionKey``, ``senderId`` (default ``openclaw-control-ui``), ``channel`` and
   ``identity.personalSessionMode``: the same isolation as commands and hooks.

``put`` verifies the id token (signature, ``iss``, ``aud``, ``exp``) with the user pool's
verifier; an invalid one is ``INVALID_REQUEST`` with the reason, and nothing is stored. It
then stores the session (the refresh token encrypted at rest, for silent renewal), acquires
a TIP and answers ``{sub, expiresAt (epoch ms), effectiveSessionKey, hasTip}``. A put for
another user than the session's current one first drops that user's TIP, credentials and
pending approvals. ``get`` answers ``{userToken, sub, expiresAt, effectiveSessionKey,
hasRefreshToken}``, never the refresh token; without a live session it is ``NOT_LINKED``
(the key is not linked to a user; the client should put one). Store or TIP-refresher
outages are ``UNAVAILABLE`` (retryable). Tokens never appear in errors or logs.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, TypeAlias

import msgspec
import trio

from agent_identity.actors.tip_messages import TipInfo
from agent_identity.host.contract import (
    SESSION_GET_METHOD,
    SESSION_PUT_METHOD,
    GatewayClient,
    PayloadError,
    SessionGetParams,
    SessionPutParams,
    WireStruct,
    decode_as,
    is_webchat_connect,
    to_wire,
)
from agent_identity.host.deps import HostDeps
from agent_identity.host.results import (
    GatewayError,
    GatewayErrorCode,
    SessionGetResult,
    SessionPutResult,
)
from agent_identity.host.session_keys import WEBCHAT_DEFAULT_SENDER_ID, build_effective_session_key
from agent_identity.kernel import KernelError
from agent_identity.oidc import OidcError
from agent_identity.storage import SessionRecord

__all__ = [
    "MAX_TOKEN_LENGTH",
    "METHOD_SCOPE",
    "GatewayHandler",
    "GatewayResponse",
    "IdentityGatewayMethods",
]

logger = logging.getLogger(__name__)

#: The operator scope to register both methods with (admits WebChat and operator clients).
METHOD_SCOPE: Final = "operator.write"
#: Longest ``idToken`` / ``refreshToken`` accepted (a real id token is a few KiB).
MAX_TOKEN_LENGTH: Final = 16_384

_FORBIDDEN: Final = "identity.session methods are only available to WebChat connections."
_NO_USERPOOL: Final = "WebChat session exchange needs a userpool (OIDC) configuration."
_STORE_DOWN: Final = "The session store is not available right now; try again."


class GatewayResponse(WireStruct, frozen=True, kw_only=True):
    """One answer of a gateway method: the host's ``respond(ok, payload, error)`` arguments.

    Attributes:
        ok: Whether the call succeeded.
        payload: The result (camelCase), when ``ok``.
        error: ``{code, message, details?, retryable?}``, when not ``ok``.
    """

    ok: bool
    payload: dict[str, Any] | None = None
    error: GatewayError | None = None

    @classmethod
    def success(cls, result: msgspec.Struct) -> GatewayResponse:
        """A successful answer carrying ``result`` in wire form."""
        return cls(ok=True, payload=to_wire(result))

    @classmethod
    def failure(
        cls,
        code: GatewayErrorCode,
        message: str,
        *,
        details: Mapping[str, Any] | None = None,
        retryable: bool | None = None,
    ) -> GatewayResponse:
        """A failed answer (``message`` must never carry a secret)."""
        shown = None if details is None else dict(details)
        error = GatewayError(code=code.value, message=message, details=shown, retryable=retryable)
        return cls(ok=False, error=error)

    def respond_args(self) -> tuple[bool, dict[str, Any] | None, dict[str, Any] | None]:
        """The arguments of the host's ``respond(ok, payload, error)``, in wire form."""
        return self.ok, self.payload, None if self.error is None else to_wire(self.error)


GatewayHandler: TypeAlias = Callable[[object], Awaitable[GatewayResponse]]
"""A registered method: takes the host's handler options, answers (see the module docstring)."""

_Method: TypeAlias = Callable[[object], Awaitable[GatewayResponse]]


def _option(opts: object, *names: str) -> object:
    """One field of the host's ``opts`` (a mapping or an object), by any of its spellings."""
    for name in names:
        if isinstance(opts, Mapping):
            if name in opts:
                return opts[name]
        elif (value := getattr(opts, name, None)) is not None:
            return value
    return None


def _ms(epoch_seconds: float) -> int:
    return int(epoch_seconds * 1000)


class IdentityGatewayMethods:
    """``identity.session.put`` / ``identity.session.get`` over one system's dependencies.

    Args:
        deps: The running system's handler dependencies.
        now: Wall-clock time (epoch seconds), for the session's login time.
    """

    def __init__(self, deps: HostDeps, *, now: Callable[[], float] = time.time) -> None:
        self._deps = deps
        self._now = now
        enabled = deps.plugin.identity.webchat_session_exchange
        self._methods: dict[str, _Method] = (
            {SESSION_PUT_METHOD: self._put, SESSION_GET_METHOD: self._get} if enabled else {}
        )

    @property
    def methods(self) -> tuple[str, ...]:
        """The registered method names (none when the feature is off)."""
        return tuple(self._methods)

    @property
    def handlers(self) -> dict[str, GatewayHandler]:
        """Method name → handler of the host's ``opts`` (see the module docstring)."""
        return {name: self._handler(name) for name in self._methods}

    def _handler(self, method: str) -> GatewayHandler:
        async def handler(opts: object) -> GatewayResponse:
            response = await self.call(
                method,
                _option(opts, "params"),
                _option(opts, "client"),
                is_webchat=_option(opts, "isWebchatConnect", "is_webchat_connect"),
            )
            respond = _option(opts, "respond")
            if callable(respond):
                answered = respond(*response.respond_args())
                if inspect.isawaitable(answered):
                    await answered
            return response

        return handler

    async def call(
        self, method: str, params: object, client: object, *, is_webchat: object = None
    ) -> GatewayResponse:
        """Run ``method`` for a connection (never raises for what a client can send).

        Args:
            method: The method name.
            params: The request's params (a mapping, or a Struct).
            client: ``opts.client``: :class:`GatewayClient`, its mapping, or ``None``.
            is_webchat: The host's ``isWebchatConnect(connect)`` predicate, if it gave one.

        Returns:
            The answer to send back.
        """
        run = self._methods.get(method)
        if run is None:
            await trio.lowlevel.checkpoint()
            return GatewayResponse.failure(
                GatewayErrorCode.INVALID_REQUEST, f"unknown method: {method[:64]}"
            )
        if not _webchat(client, is_webchat):
            await trio.lowlevel.checkpoint()
            logger.warning("%s refused: not a WebChat connection", method)
            return GatewayResponse.failure(GatewayErrorCode.FORBIDDEN, _FORBIDDEN)
        return await run(params)

    # ------------------------------------------------------------------ methods

    def _key(self, session_key: str, sender_id: str | None, channel: str | None) -> str:
        sender = (sender_id or "").strip() or WEBCHAT_DEFAULT_SENDER_ID
        return build_effective_session_key(
            session_key,
            sender_id=sender,
            channel=(channel or "").strip().lower() or None,
            personal_session_mode=self._deps.plugin.identity.personal_session_mode,
        )

    async def _put(self, raw: object) -> GatewayResponse:
        params = decode_as(SessionPutParams, raw)
        if isinstance(params, PayloadError):
            await trio.lowlevel.checkpoint()
            return _invalid_params(params)
        too_long = _too_long(params)
        if too_long is not None:
            await trio.lowlevel.checkpoint()
            return too_long
        verifier = self._deps.id_tokens
        if verifier is None:
            await trio.lowlevel.checkpoint()
            return GatewayResponse.failure(GatewayErrorCode.UNAVAILABLE, _NO_USERPOOL)
        key = self._key(params.session_key, params.sender_id, params.channel)
        try:
            claims = await verifier.validate_id_token(params.id_token)
        except OidcError as exc:
            await trio.lowlevel.checkpoint()  # the failed call may not have been one
            logger.info("%s for %s refused: %s", SESSION_PUT_METHOD, key, exc.reason_code)
            return _token_refused(exc)
        record = SessionRecord(
            session_key=key,
            sub=claims.sub,
            user_token=params.id_token,
            expires_at=float(claims.exp),
            login_at=self._now(),
            refresh_token=params.refresh_token or None,
            email=claims.email,
            name=claims.name,
        )
        try:
            await self._leave_previous_user(key, claims.sub)
            await self._deps.sessions.put(record)
        except KernelError:
            await trio.lowlevel.checkpoint()  # the failed call may not have been one
            return GatewayResponse.failure(
                GatewayErrorCode.UNAVAILABLE, _STORE_DOWN, retryable=True
            )
        has_tip = await self._acquire_tip(key, claims.sub)
        logger.info("WebChat session stored for %s (sub %s, TIP %s)", key, claims.sub, has_tip)
        return GatewayResponse.success(
            SessionPutResult(
                sub=claims.sub,
                expires_at=_ms(record.expires_at),
                effective_session_key=key,
                has_tip=has_tip,
            )
        )

    async def _leave_previous_user(self, key: str, sub: str) -> None:
        """Drop what another user left under ``key`` (a shared default sender id).

        Done before the new session is stored, so a failure leaves everything as it was.

        Raises:
            KernelError: An actor is not running.
        """
        previous = await self._deps.sessions.get(key, renewable=True)
        if previous is None or previous.sub == sub:
            return
        await self._deps.tips.forget(key)
        await self._deps.vault.clear(key)
        await self._deps.approvals.discard(key)
        logger.info("WebChat session %s changes user; the previous user's state was dropped", key)

    async def _acquire_tip(self, key: str, sub: str) -> bool:
        """Mint a TIP for the new session; whether one is held (for this very user)."""
        try:
            outcome = await self._deps.tips.refresh(key)
            if isinstance(outcome, TipInfo) and outcome.sub != sub:
                # A mint that was already in flight for the previous user: never keep it.
                await self._deps.tips.forget(key)
                return False
        except KernelError:
            await trio.lowlevel.checkpoint()
            return False
        return isinstance(outcome, TipInfo)

    async def _get(self, raw: object) -> GatewayResponse:
        params = decode_as(SessionGetParams, raw)
        if isinstance(params, PayloadError):
            await trio.lowlevel.checkpoint()
            return _invalid_params(params)
        key = self._key(params.session_key, params.sender_id, params.channel)
        try:
            view = await self._deps.sessions.get(key)
        except KernelError:
            await trio.lowlevel.checkpoint()  # the failed call may not have been one
            return GatewayResponse.failure(
                GatewayErrorCode.UNAVAILABLE, _STORE_DOWN, retryable=True
            )
        if view is None:
            return GatewayResponse.failure(
                GatewayErrorCode.NOT_LINKED,
                "No identity session for this WebChat session; store one with "
                f"{SESSION_PUT_METHOD}.",
                details={"effectiveSessionKey": key},
            )
        return GatewayResponse.success(
            SessionGetResult(
                user_token=view.user_token,
                sub=view.sub,
                expires_at=_ms(view.expires_at),
                effective_session_key=key,
                has_refresh_token=view.has_refresh_token,
            )
        )


# ------------------------------------------------------------------ helpers


def _webchat(client: object, predicate: object) -> bool:
    """Whether the connection is a WebChat one (fail closed on anything odd)."""
    if client is None:
        return False
    decoded = decode_as(GatewayClient, client)
    if isinstance(decoded, PayloadError):
        return False
    if not callable(predicate):
        return is_webchat_connect(decoded.connect)
    # The host's own predicate gets the connect params as the host holds them.
    raw_connect = _option(client, "connect")
    try:
        return predicate(raw_connect) is True
    except Exception:  # noqa: BLE001 - a failing host predicate must refuse, not crash
        logger.warning("the host's isWebchatConnect failed; the request is refused")
        return False


def _invalid_params(error: PayloadError) -> GatewayResponse:
    # msgspec names the field and the expected type, never the value.
    return GatewayResponse.failure(
        GatewayErrorCode.INVALID_REQUEST, f"invalid params: {error.message}"
    )


def _too_long(params: SessionPutParams) -> GatewayResponse | None:
    for field, value in (("idToken", params.id_token), ("refreshToken", params.refresh_token)):
        if value is not None and len(value) > MAX_TOKEN_LENGTH:
            return GatewayResponse.failure(
                GatewayErrorCode.INVALID_REQUEST,
                f"invalid params: `$.{field}` is longer than {MAX_TOKEN_LENGTH} characters",
            )
    return None


def _token_refused(exc: OidcError) -> GatewayResponse:
    """An id token the verifier refused, or a verifier that could not work."""
    if exc.reason_code.startswith("id_token_"):
        return GatewayResponse.failure(
            GatewayErrorCode.INVALID_REQUEST,
            f"idToken: {exc.message}",
            details={"reason": exc.reason_code},
        )
    # Discovery or JWKS unreachable, user pool unresolved: not the client's fault.
    return GatewayResponse.failure(
        GatewayErrorCode.UNAVAILABLE,
        f"The id token cannot be verified right now: {exc.message}",
        details={"reason": exc.reason_code},
        retryable=True,
    )
