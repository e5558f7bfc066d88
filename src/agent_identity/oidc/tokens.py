"""The token endpoint: client authentication, the request, and the :class:`TokenSet` it yields.

Client authentication follows the provider's ``token_endpoint_auth_methods_supported``:
``client_secret_basic`` when offered (preferred: the secret stays out of the body, which some
servers log), else ``client_secret_post``; a client without a secret sends only its
``client_id`` (``none``, a public client relying on PKCE). For Basic, id and secret are
form-url-encoded before base64 as RFC 6749 section 2.3.1 requires; for the usual id and secret
alphabets that changes nothing.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from urllib.parse import quote_plus

import httpx
import msgspec

from agent_identity.oidc.discovery import ProviderMetadata
from agent_identity.oidc.errors import OidcError, OidcReason, scrub
from agent_identity.oidc.id_token import IdTokenClaims

__all__ = [
    "RefreshNotValidatedError",
    "TokenResponse",
    "TokenSet",
    "client_auth_method",
    "request_tokens",
]

logger = logging.getLogger(__name__)

_REDACTED = "<redacted>"


@dataclass(frozen=True, slots=True, repr=False)
class TokenSet:
    """What a successful token request returned; ``repr`` masks every token.

    Attributes:
        access_token: The access token.
        id_token: The ID token (always present after a code exchange; after a refresh only
            when the provider issued a new one).
        refresh_token: The refresh token to use next time: the new one when the provider
            rotated it, else the one just used (RFC 6749 section 6); None when none was issued.
        expires_in: The access token's lifetime in seconds, if given.
        claims: The validated ID token's claims (None when there is no ID token).
        token_type: Usually ``Bearer``.
        scope: The granted scope, if the provider said.
    """

    access_token: str
    id_token: str | None = None
    refresh_token: str | None = None
    expires_in: int | None = None
    claims: IdTokenClaims | None = None
    token_type: str = "Bearer"  # noqa: S105 - a token type name, not a secret
    scope: str | None = None

    def __repr__(self) -> str:
        def mask(value: str | None) -> str:
            return "None" if value is None else _REDACTED

        return (
            f"TokenSet(access_token={mask(self.access_token)}, id_token={mask(self.id_token)}, "
            f"refresh_token={mask(self.refresh_token)}, expires_in={self.expires_in!r}, "
            f"token_type={self.token_type!r}, scope={self.scope!r}, claims={self.claims!r})"
        )


class RefreshNotValidatedError(OidcError):
    """The provider answered a refresh, but the ID token it returned could not be validated.

    The refresh went through at the provider: a rotating refresh token is spent, and the only
    usable one is :attr:`tokens`' ``refresh_token``. Whoever keeps the refresh token must keep
    that one (the validation may work next time: the JWKS endpoint was down during a key
    rotation, say), or the session is lost at its next renewal.

    The reason and message are the validation's (``jwks_failed``, ``id_token_unknown_kid``,
    ...); like every :class:`OidcError` the message names no token. The tokens are kept out of
    the message, the ``args`` and the ``repr``.

    Args:
        cause: The validation's error.
        tokens: What the provider returned, unvalidated.

    Attributes:
        tokens: The provider's answer: ``refresh_token`` is the one to use next time (the
            rotated one, or the one just used when the provider did not rotate it);
            ``claims`` is None and ``id_token`` was **not** validated: never use it as a
            user's token.
        rotated: Whether the provider issued a new refresh token (the old one is spent).
    """

    def __init__(self, cause: OidcError, tokens: TokenSet, *, rotated: bool) -> None:
        super().__init__(cause.reason_code, cause.message)
        self.tokens = tokens
        self.rotated = rotated

    def __repr__(self) -> str:
        reason, message = self.reason_code, self.message
        return f"RefreshNotValidatedError({reason!r}, {message!r}, rotated={self.rotated})"


class TokenResponse(msgspec.Struct, frozen=True, kw_only=True):
    """A successful token endpoint response (RFC 6749 section 5.1, OIDC Core 3.1.3.3)."""

    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - a token type name, not a secret
    id_token: str | None = None
    refresh_token: str | None = None
    expires_in: int | None = None
    scope: str | None = None


class _ErrorResponse(msgspec.Struct, frozen=True):
    error: str
    error_description: str | None = None


def client_auth_method(metadata: ProviderMetadata, *, has_secret: bool) -> str:
    """Pick the client authentication method for this provider.

    Raises:
        OidcError: ``unsupported_client_auth`` when the provider offers neither secret method.
    """
    if not has_secret:
        return "none"
    offered = metadata.token_endpoint_auth_methods_supported
    for method in ("client_secret_basic", "client_secret_post"):
        if method in offered:
            return method
    raise OidcError(
        "unsupported_client_auth",
        "The identity provider supports neither client_secret_basic nor client_secret_post "
        f"(it offers {', '.join(offered) or 'nothing'}).",
    )


_REASONS: dict[str, OidcReason] = {
    "invalid_grant": "invalid_grant",
    "invalid_client": "invalid_client",
    "unauthorized_client": "invalid_client",
}


async def request_tokens(
    http: httpx.AsyncClient,
    metadata: ProviderMetadata,
    *,
    client_id: str,
    client_secret: str | None,
    form: dict[str, str],
    secrets: tuple[str | None, ...] = (),
) -> TokenResponse:
    """POST a grant to the token endpoint and decode the answer.

    Args:
        http: The HTTP client.
        metadata: The provider.
        client_id: Our client id.
        client_secret: Our secret, or None for a public client.
        form: The grant's parameters (``grant_type`` and its own).
        secrets: Values we sent that must never appear in an error message.

    Returns:
        The decoded response.

    Raises:
        OidcError: ``token_request_failed``, ``invalid_grant``, ``invalid_client``,
            ``token_rejected`` or ``token_response_invalid``.
    """
    method = client_auth_method(metadata, has_secret=client_secret is not None)
    body = dict(form)
    headers = {"Accept": "application/json"}
    if method == "client_secret_basic" and client_secret is not None:
        pair = f"{quote_plus(client_id)}:{quote_plus(client_secret)}"
        headers["Authorization"] = f"Basic {base64.b64encode(pair.encode()).decode('ascii')}"
    else:
        body["client_id"] = client_id
        if client_secret is not None:
            body["client_secret"] = client_secret
    grant = form.get("grant_type", "?")
    try:
        response = await http.post(metadata.token_endpoint, data=body, headers=headers)
    except httpx.HTTPError as exc:
        raise OidcError(
            "token_request_failed",
            f"Could not reach the identity provider's token endpoint ({type(exc).__name__}).",
        ) from exc
    masked = (*secrets, client_secret)
    if response.status_code == 200:
        try:
            return msgspec.json.decode(response.content, type=TokenResponse, strict=False)
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise OidcError(
                "token_response_invalid",
                f"The identity provider's token response is not valid ({scrub(str(exc), masked)}).",
            ) from exc
    try:
        error = msgspec.json.decode(response.content, type=_ErrorResponse)
    except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError):
        error = None
    if error is None:
        raise OidcError(
            "token_request_failed",
            f"The identity provider's token endpoint answered HTTP {response.status_code}.",
        )
    code = scrub(error.error, masked)
    detail = scrub(error.error_description or "", masked)
    logger.info("token endpoint refused a %s grant: %s", grant, code)
    suffix = f": {detail}" if detail else ""
    raise OidcError(
        _REASONS.get(error.error, "token_rejected"),
        f"The identity provider refused the {grant} request ({code}){suffix}.",
    )
