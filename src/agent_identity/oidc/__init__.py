"""OIDC relying party: discovery, authorize URLs with PKCE, code exchange, id_token checks.

A login, end to end::

    client = await open_oidc_client(config.userpool, http, identity_client)
    secrets = new_login_secrets()            # keep until the callback (keyed by state)
    url = await client.authorization_url(secrets)
    ...                                      # the user logs in; the callback arrives
    response = parse_authorization_response(query)
    tokens = await client.exchange_code(
        response.code, code_verifier=secrets.code_verifier, nonce=secrets.nonce,
        iss=response.iss,
    )
    tokens.claims.sub                        # the validated user
    tokens = await client.refresh(tokens.refresh_token)

Every failure is an :class:`OidcError` with a ``reason_code`` and a message safe to show. A
refresh whose new ID token cannot be validated raises :class:`RefreshNotValidatedError`, which
carries the (possibly rotated) refresh token to keep.
"""

from agent_identity.oidc.client import DEFAULT_SCOPE, OidcClient, OidcSettings
from agent_identity.oidc.discovery import DiscoveryCache, ProviderMetadata, discovery_location
from agent_identity.oidc.errors import OidcError, OidcReason
from agent_identity.oidc.factory import open_oidc_client, settings_from_config
from agent_identity.oidc.id_token import DEFAULT_LEEWAY, IdTokenClaims, IdTokenValidator
from agent_identity.oidc.jwks import ALLOWED_ALGORITHMS, JwksCache, JwksStatistics
from agent_identity.oidc.login import (
    AuthorizationResponse,
    LoginSecrets,
    new_login_secrets,
    parse_authorization_response,
    s256_challenge,
)
from agent_identity.oidc.tokens import RefreshNotValidatedError, TokenSet
from agent_identity.oidc.userpool import (
    ResolvedUserPool,
    discovery_url_for_pool,
    resolve_user_pool,
    user_pool_uid_from_url,
)

__all__ = [
    "ALLOWED_ALGORITHMS",
    "DEFAULT_LEEWAY",
    "DEFAULT_SCOPE",
    "AuthorizationResponse",
    "DiscoveryCache",
    "IdTokenClaims",
    "IdTokenValidator",
    "JwksCache",
    "JwksStatistics",
    "LoginSecrets",
    "OidcClient",
    "OidcError",
    "OidcReason",
    "OidcSettings",
    "ProviderMetadata",
    "RefreshNotValidatedError",
    "ResolvedUserPool",
    "TokenSet",
    "discovery_location",
    "discovery_url_for_pool",
    "new_login_secrets",
    "open_oidc_client",
    "parse_authorization_response",
    "resolve_user_pool",
    "s256_challenge",
    "settings_from_config",
    "user_pool_uid_from_url",
]
