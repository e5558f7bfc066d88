"""The per-login secrets (state, nonce, PKCE) and the parsed authorization response.

A login starts with :func:`new_login_secrets`; the caller keeps the result (the login broker
stores it under ``state`` for a few minutes, single use), sends the user to
:meth:`OidcClient.authorization_url`, and on the callback turns the query into an
:class:`AuthorizationResponse` with :func:`parse_authorization_response` before redeeming the
code with the stored verifier and nonce.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from agent_identity.oidc.errors import OidcError, scrub

__all__ = [
    "AuthorizationResponse",
    "LoginSecrets",
    "new_login_secrets",
    "parse_authorization_response",
    "s256_challenge",
]

# 32 random bytes each: 256 bits, well past what guessing or collisions could reach. The
# verifier's 43 base64url characters are the minimum length RFC 7636 allows.
_RANDOM_BYTES = 32


def s256_challenge(verifier: str) -> str:
    """The PKCE ``S256`` code challenge of a verifier: base64url(SHA-256(verifier)).

    Args:
        verifier: The code verifier (ASCII).

    Returns:
        The challenge, unpadded base64url.
    """
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class LoginSecrets:
    """The one-time values of a login; ``repr`` shows none of them.

    Attributes:
        state: Binds the callback to this login (CSRF protection); also its lookup key.
        nonce: Binds the ID token to this login (replay protection).
        code_verifier: The PKCE secret, sent only with the code exchange.
        code_challenge: ``S256`` of the verifier, sent in the authorization URL.
    """

    state: str = field(repr=False)
    nonce: str = field(repr=False)
    code_verifier: str = field(repr=False)
    code_challenge: str = field(repr=False)


def new_login_secrets() -> LoginSecrets:
    """Fresh state, nonce and PKCE verifier (with its S256 challenge) from :mod:`secrets`."""
    verifier = secrets.token_urlsafe(_RANDOM_BYTES)
    return LoginSecrets(
        state=secrets.token_urlsafe(_RANDOM_BYTES),
        nonce=secrets.token_urlsafe(_RANDOM_BYTES),
        code_verifier=verifier,
        code_challenge=s256_challenge(verifier),
    )


@dataclass(frozen=True, slots=True)
class AuthorizationResponse:
    """A successful callback's parameters; ``repr`` hides the code.

    Attributes:
        code: The authorization code.
        state: The state echoed by the provider (look the login up by it).
        iss: The RFC 9207 issuer parameter, when the provider sent one.
    """

    code: str = field(repr=False)
    state: str
    iss: str | None = None


def parse_authorization_response(query: Mapping[str, str]) -> AuthorizationResponse:
    """Read the callback's query (``code``, ``state``, ``iss``, or ``error``).

    Args:
        query: The callback's query parameters (first value of each).

    Returns:
        The code, state and issuer.

    Raises:
        OidcError: ``authorization_denied`` when the provider sent an ``error`` (the user
            cancelled, the request was refused...), ``callback_invalid`` when ``code`` or
            ``state`` is missing.
    """
    error = query.get("error")
    if error is not None:
        detail = scrub(query.get("error_description", ""), ())
        suffix = f": {detail}" if detail else ""
        raise OidcError(
            "authorization_denied",
            f"The identity provider did not complete the login ({scrub(error, ())}){suffix}.",
        )
    code, state = query.get("code"), query.get("state")
    if not code or not state:
        raise OidcError("callback_invalid", "The login callback lacks its code or state.")
    return AuthorizationResponse(code=code, state=state, iss=query.get("iss"))
