"""Outbound credentials: provider listing, OAuth2 (M2M and 3LO), API keys (section 2.3)."""

from __future__ import annotations

import msgspec

from agent_identity.volcengine.models._base import WireModel

__all__ = [
    "ApiKeyMetadata",
    "CompleteResourceTokenAuthRequest",
    "CredentialProvider",
    "CredentialProviderFilter",
    "CredentialProviderPage",
    "CustomParameters",
    "GetResourceApiKeyRequest",
    "GetResourceOauth2TokenRequest",
    "KeyValue",
    "ListCredentialProvidersRequest",
    "Oauth2CallbackRequest",
    "Oauth2CallbackResult",
    "ResourceApiKey",
    "ResourceOauth2Token",
    "UserIdentifier",
]


class CredentialProviderFilter(WireModel):
    """``ListCredentialProviders.Filter``; ``type`` is ``api_key`` or ``oauth2``."""

    name: str | None = None
    pool_name: str | None = None
    project_name: str | None = None
    source: str | None = None
    type: str | None = None
    flow: str | None = None
    vendor: int | None = None
    binding_status: bool | None = None


class ListCredentialProvidersRequest(WireModel):
    """``ListCredentialProviders``: paging (1-based) plus filters."""

    page_number: int
    page_size: int
    pool_name: str | None = None
    sort_field: str | None = None
    sort_desc: bool | None = None
    filter: CredentialProviderFilter | None = None


class CredentialProvider(WireModel):
    """One credential provider of a listing (never its secret)."""

    name: str = ""
    type: str = ""
    flow: str = ""
    vendor: int | None = None
    pool_name: str = ""
    project_name: str = ""
    credential_provider_trn: str = ""
    binding_resource_number: int | None = None
    created_at: str = ""
    updated_at: str = ""


class CredentialProviderPage(WireModel):
    """A page of ``ListCredentialProviders``."""

    page_number: int = 0
    page_size: int = 0
    total_count: int = 0
    credential_providers: list[CredentialProvider] = msgspec.field(default_factory=list)


class KeyValue(WireModel):
    """A ``{Key, Value}`` pair."""

    key: str
    value: str


class CustomParameters(WireModel):
    """Extra authorize-URL parameters, in the SDK's ``{"Entries": [...]}`` shape."""

    entries: list[KeyValue] = msgspec.field(default_factory=list)


class GetResourceOauth2TokenRequest(WireModel):
    """``GetResourceOauth2Token``: an access token (M2M, or 3LO once consented) or a URL.

    Attributes:
        provider_name: The OAuth2 credential provider.
        identity_token: The TIP of the user the token is for.
        flow: ``M2M`` or ``USER_FEDERATION``; the provider's own flow when omitted.
        scopes: Scopes to request; the provider's when omitted.
        pool_name: The workload pool (``default`` on the service side).
        redirect_url: Where the provider sends the code (the app's own callback).
        force_authentication: Ask the user again even with a stored token.
        custom_parameters: Extra authorize-URL parameters.
        resource_oauth2_return_url: Where the service's callback sends the browser.
        custom_state: Echoed to ``resource_oauth2_return_url``.
        session_uri: A session to continue.
    """

    __secret_fields__ = frozenset({"identity_token"})

    provider_name: str
    identity_token: str
    flow: str | None = None
    scopes: list[str] | None = None
    pool_name: str | None = None
    redirect_url: str | None = None
    force_authentication: bool | None = None
    custom_parameters: CustomParameters | None = None
    resource_oauth2_return_url: str | None = None
    custom_state: str | None = None
    session_uri: str | None = None


class ResourceOauth2Token(WireModel):
    """``AccessToken`` (with ``ExpiresIn``) or ``AuthorizationUrl``, never both."""

    __secret_fields__ = frozenset({"access_token"})

    access_token: str | None = None
    expires_in: int | None = None
    authorization_url: str | None = None
    session_uri: str | None = None


class Oauth2CallbackRequest(WireModel):
    """``Oauth2Callback``: hand the code (or the provider's error) the app received over."""

    __secret_fields__ = frozenset({"identity_token", "code"})

    state: str
    identity_token: str
    code: str | None = None
    error: str | None = None


class Oauth2CallbackResult(WireModel):
    """The access token a completed ``Oauth2Callback`` yields."""

    __secret_fields__ = frozenset({"access_token"})

    access_token: str = ""


class UserIdentifier(WireModel):
    """Who completes a 3LO session: one of a user token, a user id or a TIP."""

    __secret_fields__ = frozenset({"user_token", "identity_token"})

    user_token: str | None = None
    user_id: str | None = msgspec.field(default=None, name="UserID")
    identity_token: str | None = None


class CompleteResourceTokenAuthRequest(WireModel):
    """``CompleteResourceTokenAuth``: bind a consented session to the logged-in user."""

    session_uri: str
    user_identifier: UserIdentifier | None = None
    pool_name: str | None = None


class GetResourceApiKeyRequest(WireModel):
    """``GetResourceApiKey``."""

    __secret_fields__ = frozenset({"identity_token"})

    provider_name: str
    identity_token: str
    pool_name: str | None = None


class ApiKeyMetadata(WireModel):
    """Where an API key goes: e.g. header ``Authorization`` with prefix ``Bearer ``."""

    location: str = ""
    parameter_name: str = ""
    prefix: str = ""


class ResourceApiKey(WireModel):
    """The API key of a provider and how to present it."""

    __secret_fields__ = frozenset({"api_key"})

    api_key: str = ""
    api_key_metadata: list[ApiKeyMetadata] = msgspec.field(default_factory=list)
