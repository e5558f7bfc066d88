"""Role credentials: role provider listing and TIP → STS keys (section 2.4)."""

from __future__ import annotations

from datetime import datetime

import msgspec

from agent_identity.volcengine.models._base import WireModel
from agent_identity.volcengine.signer import SigningCredentials
from agent_identity.volcengine.timestamps import parse_timestamp

__all__ = [
    "AgentPoolRef",
    "AssumedRoleUser",
    "GetRoleCredentialsRequest",
    "IdentityPool",
    "ListRoleCredentialProvidersRequest",
    "OidcTokenInfo",
    "RoleCredentialProvider",
    "RoleCredentialProviderFilter",
    "RoleCredentialProviderPage",
    "RoleCredentials",
    "RoleCredentialsResponse",
    "RoleCredentialsResult",
    "RoleMapping",
    "RoleProviderConfig",
    "RoleRef",
    "RoleRequestMapping",
    "RoleRule",
    "RoleRuleMapping",
    "UserPoolRef",
]


class RoleCredentialProviderFilter(WireModel):
    """``ListRoleCredentialProviders.Filter``."""

    name: str | None = None
    pool_name: str | None = None
    project_name: str | None = None
    credential_provider_id: str | None = None
    vendor: int | None = None


class ListRoleCredentialProvidersRequest(WireModel):
    """``ListRoleCredentialProviders``: paging (1-based) plus filters."""

    page_number: int
    page_size: int
    sort_field: str | None = None
    sort_desc: bool | None = None
    filter: RoleCredentialProviderFilter | None = None


class AgentPoolRef(WireModel):
    """The workload pool side of a role provider's identity pool."""

    pool_name: str = ""


class UserPoolRef(WireModel):
    """The user pool (and client) whose users a role provider serves."""

    pool_id: str = ""
    pool_name: str = ""
    client_id: str = ""
    client_name: str = ""


class IdentityPool(WireModel):
    """Which agents and users a role provider serves."""

    agent_pool: AgentPoolRef | None = None
    user_pool: UserPoolRef | None = None


class RoleRef(WireModel):
    """A role name with an optional policy template."""

    role_name: str = ""
    policy_template: str = ""


class RoleRequestMapping(WireModel):
    """``FromRequest``: the roles a caller may ask for."""

    allowed_roles: list[RoleRef] = msgspec.field(default_factory=list)


class RoleRule(WireModel):
    """A claim-matching rule of ``FromRule`` (its role's shape is undocumented)."""

    claim: str = ""
    match_type: str = ""
    value: str = ""
    role: object = None


class RoleRuleMapping(WireModel):
    """``FromRule``: rules over TIP claims, with a default role (shape undocumented)."""

    default_role: object = None
    rules: list[RoleRule] = msgspec.field(default_factory=list)


class RoleMapping(WireModel):
    """How a TIP's claims map onto an IAM role."""

    from_role: RoleRef | None = None
    from_request: RoleRequestMapping | None = None
    from_rule: RoleRuleMapping | None = None


class RoleProviderConfig(WireModel):
    """A role provider's configuration (``Metadata`` is free-form)."""

    metadata: object = None
    identity_pool: IdentityPool | None = None
    role_mapping: RoleMapping | None = None


class RoleCredentialProvider(WireModel):
    """One role credential provider."""

    name: str = ""
    pool_name: str = ""
    project_name: str = ""
    vendor: int | None = None
    credential_provider_id: str = ""
    credential_provider_trn: str = ""
    created_at: str = ""
    updated_at: str = ""
    config: RoleProviderConfig | None = None


class RoleCredentialProviderPage(WireModel):
    """A page of ``ListRoleCredentialProviders``."""

    page_number: int = 0
    page_size: int = 0
    total_count: int = 0
    role_credential_providers: list[RoleCredentialProvider] = msgspec.field(default_factory=list)


class GetRoleCredentialsRequest(WireModel):
    """``GetRoleCredentials``: the TIP's user gets STS keys of the provider's role."""

    __secret_fields__ = frozenset({"identity_token"})

    provider_name: str
    identity_token: str
    pool_name: str | None = None
    requested_role_trn: str | None = None
    role_session_name: str | None = None
    duration_seconds: int | None = None
    with_oidc: bool | None = msgspec.field(default=None, name="WithOIDC")


class RoleCredentials(WireModel):
    """STS keys from ``GetRoleCredentials``: note ``Expiration``, not STS's ``ExpiredTime``."""

    __secret_fields__ = frozenset({"secret_access_key", "session_token"})

    access_key_id: str = ""
    secret_access_key: str = ""
    session_token: str = ""
    expiration: str = ""
    current_time: str = ""

    @property
    def expires_at(self) -> datetime:
        """``expiration`` parsed (aware, UTC).

        Raises:
            ValueError: The server sent no or a malformed ``Expiration``.
        """
        return parse_timestamp(self.expiration)

    def signing_credentials(self) -> SigningCredentials:
        """The keys as credentials to sign requests with."""
        return SigningCredentials(self.access_key_id, self.secret_access_key, self.session_token)


class AssumedRoleUser(WireModel):
    """The role session the keys belong to."""

    trn: str = ""
    assumed_role_id: str = ""


class OidcTokenInfo(WireModel):
    """What the service read from the TIP (with ``WithOIDC``)."""

    issuer: str = ""
    subject: str = ""
    client_ids: list[str] = msgspec.field(default_factory=list)
    issuance_time: str = ""
    expiration_time: str = ""


class RoleCredentialsResponse(WireModel):
    """The STS-shaped answer inside ``VolcEngResponse``."""

    credentials: RoleCredentials | None = None
    assumed_role_user: AssumedRoleUser | None = None
    oidc_token_info: OidcTokenInfo | None = msgspec.field(default=None, name="OIDCTokenInfo")


class RoleCredentialsResult(WireModel):
    """``GetRoleCredentials``'s Result: one extra ``VolcEngResponse`` level."""

    volc_eng_response: RoleCredentialsResponse | None = None
