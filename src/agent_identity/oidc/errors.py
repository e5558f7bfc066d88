"""The one exception of the OIDC relying party, with a machine-readable reason.

Every failure of discovery, the token endpoint, ID-token validation or user-pool resolution is
an :class:`OidcError`. Its message is written for the person who tried to log in (or the
operator reading the log): it names what was wrong, never a token, a code, a verifier or a
client secret, so it can be shown as is. (One subclass, ``tokens.RefreshNotValidatedError``, also
carries the tokens of a refresh whose new ID token could not be validated, outside its text.)
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = ["OidcError", "OidcReason", "scrub"]

OidcReason = Literal[
    # Configuration and user-pool resolution.
    "config_incomplete",
    "user_pool_not_found",
    "user_pool_client_not_found",
    "user_pool_lookup_failed",
    "callback_registration_failed",
    # Provider metadata and keys.
    "discovery_failed",
    "discovery_invalid",
    "jwks_failed",
    # The authorization response (callback).
    "authorization_denied",
    "callback_invalid",
    "callback_issuer_missing",
    "callback_issuer_mismatch",
    # The token endpoint.
    "unsupported_client_auth",
    "token_request_failed",
    "invalid_grant",
    "invalid_client",
    "token_rejected",
    "token_response_invalid",
    # ID-token validation.
    "id_token_missing",
    "id_token_malformed",
    "id_token_alg_not_allowed",
    "id_token_alg_mismatch",
    "id_token_unknown_kid",
    "id_token_bad_signature",
    "id_token_missing_claim",
    "id_token_wrong_issuer",
    "id_token_wrong_audience",
    "id_token_wrong_azp",
    "id_token_expired",
    "id_token_issued_in_future",
    "id_token_nonce_mismatch",
    "id_token_at_hash_mismatch",
    "id_token_subject_changed",
]
"""Why an OIDC step failed; stable strings a caller can branch on (e.g. ``invalid_grant``
means "the refresh token is spent, log in again")."""

_REDACTED: Final = "<redacted>"
_MAX_MESSAGE = 300


class OidcError(Exception):
    """An OIDC step failed.

    Args:
        reason_code: Why, as a stable code (see :data:`OidcReason`).
        message: What happened, for a person; never contains a token or secret.

    Attributes:
        reason_code: Why, as a stable code.
        message: The human-readable text (also ``str(error)``).
    """

    def __init__(self, reason_code: OidcReason, message: str) -> None:
        self.reason_code: OidcReason = reason_code
        self.message = message
        super().__init__(message)

    def __repr__(self) -> str:
        return f"OidcError({self.reason_code!r}, {self.message!r})"


def scrub(text: str, secrets: tuple[str | None, ...]) -> str:
    """Make provider-supplied text safe for a message: secrets masked, one line, clipped.

    Providers echo little, but an ``error_description`` could quote the code or token it
    refused; anything we sent that is secret is masked before the text reaches a message.

    Args:
        text: The text, e.g. an ``error_description``.
        secrets: Values to mask wherever they occur (None and empty values are ignored).

    Returns:
        The cleaned text.
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, _REDACTED)
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    if len(text) > _MAX_MESSAGE:
        text = f"{text[: _MAX_MESSAGE - 3]}..."
    return text
