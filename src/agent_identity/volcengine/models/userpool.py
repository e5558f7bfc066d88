"""User pools, their clients and identity providers (section 2.6).

Two naming quirks live here: ``ListIdentityProviders`` spells its pool ``UserPoolUID`` (every
other call says ``UserPoolUid``), and a client's ID-token lifetime is ``LifeTimeSeconds`` on
input but ``LifetimeSeconds`` on output.
"""

from __future__ import annotations

import msgspec

from agent_identity.volcengine.models._base import WireModel

__all__ = [
    "AttributeMapping",
    "Brand",
    "ClientFilter",
    "CreateUserPoolClientRequest",
    "CreateUserPoolRequest",
    "GetUserPoolClientRequest",
    "GetUserPoolRequest",
    "IdTokenLifetime",
    "IdTokenSettings",
    "IdentityProvider",
    "IdentityProviderFilter",
    "IdentityProviderPage",
    "ListIdentityProvidersRequest",
    "ListUserPoolClientsRequest",
    "ListUserPoolsRequest",
    "RefreshTokenSettings",
    "Tag",
    "TagFilter",
    "UpdateUserPoolClientRequest",
    "UserPool",
    "UserPoolClient",
    "UserPoolClientPage",
    "UserPoolFilter",
    "UserPoolPage",
]


class Tag(WireModel):
    """A resource tag."""

    key: str
    value: str = ""


class TagFilter(WireModel):
    """A tag filter: a key and the values that match."""

    key: str
    values: list[str] = msgspec.field(default_factory=list)


class Brand(WireModel):
    """The hosted login page's branding."""

    name: str | None = None
    logo_uri: str | None = None


class UserPoolFilter(WireModel):
    """``ListUserPools.Filter``."""

    name: str | None = None
    uid: str | None = None
    trn: str | None = None
    description: str | None = None
    tag_filters: list[TagFilter] | None = None


class ListUserPoolsRequest(WireModel):
    """``ListUserPools``: find a pool by name with ``Filter.Name`` and ``PageSize=1``."""

    page_number: int
    page_size: int
    filter: UserPoolFilter | None = None
    sort_field: str | None = None
    sort_direction: str | None = None
    project_name: str | None = None
    tag_filters: list[TagFilter] | None = None


class CreateUserPoolRequest(WireModel):
    """``CreateUserPool``."""

    name: str
    description: str | None = None
    self_sign_up_enabled: bool | None = None
    self_account_recovery_enabled: bool | None = None
    password_sign_in_enabled: bool | None = None
    email_passwordless_sign_in_enabled: bool | None = None
    sms_passwordless_sign_in_enabled: bool | None = None
    email_anonymous_sign_up_enabled: bool | None = None
    sms_anonymous_sign_up_enabled: bool | None = None
    sign_up_auto_verification_enabled: bool | None = None
    unconfirmed_user_sign_in_enabled: bool | None = None
    sign_in_attributes: list[str] | None = None
    required_sign_up_attributes: list[str] | None = None
    self_account_recovery_verification_attributes: list[str] | None = None
    authentication_method_order: list[str] | None = None
    brand: Brand | None = None
    project_name: str | None = None
    tags: list[Tag] | None = None


class GetUserPoolRequest(WireModel):
    """``GetUserPool`` (404 when absent)."""

    user_pool_uid: str


class UserPool(WireModel):
    """A user pool as Create/Get/List return it; ``domain`` is a bare host (add a scheme)."""

    uid: str = ""
    name: str = ""
    trn: str = ""
    description: str = ""
    project_name: str = ""
    enabled: bool | None = None
    domain: str = ""
    custom_domain: str = ""
    issuer_url: str = ""
    discovery_url: str = ""
    token_url: str = ""
    token_signing_key_url: str = ""
    oauth_login_callback_url: str = ""
    oauth_sign_up_callback_url: str = ""
    oidc_login_callback_url: str = ""
    oidc_sign_up_callback_url: str = ""
    saml_login_callback_url: str = ""
    saml_sign_up_callback_url: str = ""
    self_sign_up_enabled: bool | None = None
    self_account_recovery_enabled: bool | None = None
    password_sign_in_enabled: bool | None = None
    email_passwordless_sign_in_enabled: bool | None = None
    sms_passwordless_sign_in_enabled: bool | None = None
    email_anonymous_sign_up_enabled: bool | None = None
    sms_anonymous_sign_up_enabled: bool | None = None
    sign_up_auto_verification_enabled: bool | None = None
    unconfirmed_user_sign_in_enabled: bool | None = None
    sign_in_attributes: list[str] = msgspec.field(default_factory=list)
    required_sign_up_attributes: list[str] = msgspec.field(default_factory=list)
    self_account_recovery_verification_attributes: list[str] = msgspec.field(default_factory=list)
    authentication_method_order: list[str] = msgspec.field(default_factory=list)
    brand: Brand | None = None
    tags: list[Tag] = msgspec.field(default_factory=list)
    # A list in GetUserPool, undocumented elsewhere: kept as decoded.
    custom_attributes: object = None
    total_users: int | None = None
    total_clients: int | None = None
    total_connections: int | None = None
    create_time: str = ""
    update_time: str = ""


class UserPoolPage(WireModel):
    """A page of ``ListUserPools``."""

    page_number: int = 0
    page_size: int = 0
    total_count: int = 0
    data: list[UserPool] = msgspec.field(default_factory=list)


class ClientFilter(WireModel):
    """``ListUserPoolClients.Filter``."""

    name: str | None = None
    description: str | None = None
    client_types: list[str] | None = None


class ListUserPoolClientsRequest(WireModel):
    """``ListUserPoolClients`` (list results never carry the secret)."""

    user_pool_uid: str
    page_number: int
    page_size: int
    filter: ClientFilter | None = None
    sort_field: str | None = None
    sort_direction: str | None = None


class GetUserPoolClientRequest(WireModel):
    """``GetUserPoolClient``: the only read that returns ``ClientSecret``; 404 when absent."""

    user_pool_uid: str
    client_uid: str


class CreateUserPoolClientRequest(WireModel):
    """``CreateUserPoolClient``; ``client_type`` e.g. ``WEB_APPLICATION``."""

    user_pool_uid: str
    name: str
    client_type: str
    allowed_callback_urls: list[str] | None = None
    description: str | None = None
    logo_uri: str | None = None
    development_mode_enabled: bool | None = None
    device_flow_enabled: bool | None = None
    dismiss_login_page_enabled: bool | None = None
    skip_consent_enabled: bool | None = None


class IdTokenSettings(WireModel):
    """The ID-token lifetime as *sent*: ``LifeTimeSeconds`` with a capital T."""

    life_time_seconds: int | None = None


class IdTokenLifetime(WireModel):
    """The ID-token lifetime as *returned*: ``LifetimeSeconds``."""

    lifetime_seconds: int | None = None


class RefreshTokenSettings(WireModel):
    """Refresh-token rotation and lifetimes (the session cap the plugin reads)."""

    rotation: bool | None = None
    has_idle_lifetime: bool | None = None
    idle_lifetime_seconds: int | None = None
    has_combined_lifetime: bool | None = None
    combined_lifetime_seconds: int | None = None


class UserPoolClient(WireModel):
    """A user pool client (``uid`` is the OIDC client_id)."""

    __secret_fields__ = frozenset({"client_secret"})

    uid: str = ""
    name: str = ""
    client_type: str = ""
    client_secret: str | None = None
    description: str = ""
    logo_uri: str = ""
    allowed_callback_urls: list[str] = msgspec.field(default_factory=list)
    allowed_logout_urls: list[str] = msgspec.field(default_factory=list)
    allowed_web_origins: list[str] = msgspec.field(default_factory=list)
    allowed_cors: list[str] = msgspec.field(default_factory=list)
    id_token: IdTokenLifetime | None = None
    refresh_token: RefreshTokenSettings | None = None
    login_page_url: str = ""
    development_mode_enabled: bool | None = None
    dismiss_login_page_enabled: bool | None = None
    skip_consent_enabled: bool | None = None
    create_time: str = ""
    update_time: str = ""


class UserPoolClientPage(WireModel):
    """A page of ``ListUserPoolClients``."""

    page_number: int = 0
    page_size: int = 0
    total_count: int = 0
    data: list[UserPoolClient] = msgspec.field(default_factory=list)


class UpdateUserPoolClientRequest(WireModel):
    """``UpdateUserPoolClient``: the fields given replace the stored ones."""

    user_pool_uid: str
    client_uid: str
    name: str | None = None
    description: str | None = None
    logo_uri: str | None = None
    allowed_callback_urls: list[str] | None = None
    allowed_logout_urls: list[str] | None = None
    allowed_web_origins: list[str] | None = None
    allowed_cors: list[str] | None = None
    id_token: IdTokenSettings | None = None
    refresh_token: RefreshTokenSettings | None = None
    development_mode_enabled: bool | None = None
    dismiss_login_page_enabled: bool | None = None
    skip_consent_enabled: bool | None = None

    @classmethod
    def from_client(cls, user_pool_uid: str, client: UserPoolClient) -> UpdateUserPoolClientRequest:
        """An update that writes back everything a fetched client has (veadk's pattern).

        Combine with :func:`msgspec.structs.replace` to change a field, e.g. to append a
        callback URL without resetting the other settings.

        Args:
            user_pool_uid: The pool of the client.
            client: The client as ``GetUserPoolClient`` returned it.

        Returns:
            The request.
        """
        lifetime = client.id_token.lifetime_seconds if client.id_token is not None else None
        return cls(
            user_pool_uid=user_pool_uid,
            client_uid=client.uid,
            name=client.name,
            description=client.description,
            logo_uri=client.logo_uri,
            allowed_callback_urls=list(client.allowed_callback_urls),
            allowed_logout_urls=list(client.allowed_logout_urls),
            allowed_web_origins=list(client.allowed_web_origins),
            allowed_cors=list(client.allowed_cors),
            id_token=IdTokenSettings(life_time_seconds=lifetime) if lifetime else None,
            refresh_token=client.refresh_token,
            development_mode_enabled=client.development_mode_enabled,
            dismiss_login_page_enabled=client.dismiss_login_page_enabled,
            skip_consent_enabled=client.skip_consent_enabled,
        )


class IdentityProviderFilter(WireModel):
    """``ListIdentityProviders.Filter``."""

    name: str | None = None
    connection_type: str | None = None
    exclude_connection_type: str | None = None
    eip_id: str | None = None


class ListIdentityProvidersRequest(WireModel):
    """``ListIdentityProviders``; note the all-caps ``UserPoolUID``."""

    user_pool_uid: str = msgspec.field(name="UserPoolUID")
    page_number: int
    page_size: int
    filter: IdentityProviderFilter | None = None


class AttributeMapping(WireModel):
    """How an upstream IdP attribute maps onto a user attribute."""

    source_attribute_name: str = ""
    target_attribute_name: str = ""
    mapping_type: str = ""
    additional_config: object = None


class IdentityProvider(WireModel):
    """An identity provider (connection) of a user pool."""

    uid: str = ""
    name: str = ""
    provider: str = ""
    connection_type: str = ""
    enabled: bool | None = None
    attribute_mappings: list[AttributeMapping] = msgspec.field(default_factory=list)
    create_time: str = ""
    update_time: str = ""


class IdentityProviderPage(WireModel):
    """A page of ``ListIdentityProviders``."""

    page_number: int = 0
    page_size: int = 0
    total_count: int = 0
    data: list[IdentityProvider] = msgspec.field(default_factory=list)
