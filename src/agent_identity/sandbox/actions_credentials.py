"""Credential providers, API keys, role credentials and per-user credentials (section 2.3, 2.4).

Every per-user call takes a TIP as ``IdentityToken``; its ``sub`` scopes the user's state, so
two users of one agent never see each other's credentials.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from agent_identity.sandbox.context import (
    ActionContext,
    Handler,
    Result,
    identity_token,
    paginate,
)
from agent_identity.sandbox.envelope import already_exists, invalid, not_found
from agent_identity.sandbox.state import (
    ApiKeyProvider,
    OAuth2Provider,
    RoleProvider,
    UserCredential,
    iso_z,
)
from agent_identity.sandbox.sts import (
    assumed_role_user,
    credentials_json,
    issue_temporary_key,
    sts_duration,
)

__all__ = ["HANDLERS"]

_CREDENTIAL_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_SORT_FIELDS = {"Name": "Name", "CreatedAt": "CreatedAt", "UpdatedAt": "UpdatedAt"}


def _contains(needle: str | None, haystack: str) -> bool:
    return needle is None or needle.lower() in haystack.lower()


def _sorted(ctx: ActionContext, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    field = ctx.params.text("SortField", "CreatedAt") or "CreatedAt"
    if field not in _SORT_FIELDS:
        raise invalid("SortField", f"Use one of {', '.join(_SORT_FIELDS)}.")
    return sorted(
        items, key=lambda item: (item[field], item["Name"]), reverse=ctx.params.flag("SortDesc")
    )


def _provider_json(provider: OAuth2Provider | ApiKeyProvider) -> dict[str, Any]:
    return {
        "Name": provider.name,
        "Type": provider.type,
        "Flow": provider.flow,
        "Vendor": provider.vendor,
        "PoolName": provider.pool_name,
        "ProjectName": "default",
        "CredentialProviderTrn": provider.trn,
        "BindingResourceNumber": 0,
        "CreatedAt": iso_z(provider.created_at),
        "UpdatedAt": iso_z(provider.created_at),
    }


def list_credential_providers(ctx: ActionContext) -> Result:
    """``ListCredentialProviders``: paging; Filter Name (substring), Type, Flow, PoolName."""
    number, size = ctx.params.page()
    flt = ctx.params.child("Filter")
    pool = ctx.params.text("PoolName") or (flt.text("PoolName") if flt else None)
    name = flt.text("Name") if flt else None
    kind = flt.text("Type") if flt else None
    flow = flt.text("Flow") if flt else None
    items = [
        _provider_json(p)
        for p in ctx.state.providers.values()
        if (pool is None or p.pool_name == pool)
        and _contains(name, p.name)
        and (kind is None or p.type == kind)
        and (flow is None or p.flow == flow)
    ]
    return paginate(_sorted(ctx, items), number, size, "CredentialProviders")


def _role_provider_json(provider: RoleProvider) -> dict[str, Any]:
    user_pool: dict[str, Any] = {}
    if provider.user_pool_uid is not None:
        user_pool = {
            "PoolId": provider.user_pool_uid,
            "PoolName": provider.user_pool_name,
            "ClientId": provider.client_uid or "",
            "ClientName": provider.client_name or "",
        }
    return {
        "Name": provider.name,
        "PoolName": provider.pool_name,
        "ProjectName": "default",
        "Vendor": provider.vendor,
        "CredentialProviderId": provider.provider_id,
        "CredentialProviderTrn": provider.trn,
        "CreatedAt": iso_z(provider.created_at),
        "UpdatedAt": iso_z(provider.created_at),
        "Config": {
            "Metadata": {},
            "IdentityPool": {"AgentPool": {"PoolName": provider.pool_name}, "UserPool": user_pool},
            "RoleMapping": {
                "FromRole": {"RoleName": provider.role.name, "PolicyTemplate": ""},
            },
        },
    }


def list_role_credential_providers(ctx: ActionContext) -> Result:
    """``ListRoleCredentialProviders``: paging; Filter Name (substring), PoolName, Id."""
    number, size = ctx.params.page()
    flt = ctx.params.child("Filter")
    name = flt.text("Name") if flt else None
    pool = flt.text("PoolName") if flt else None
    provider_id = flt.text("CredentialProviderId") if flt else None
    items = [
        _role_provider_json(p)
        for p in ctx.state.role_providers.values()
        if _contains(name, p.name)
        and (pool is None or p.pool_name == pool)
        and (provider_id is None or p.provider_id == provider_id)
    ]
    return paginate(_sorted(ctx, items), number, size, "RoleCredentialProviders")


def get_role_credentials(ctx: ActionContext) -> Result:
    """``GetRoleCredentials``: TIP in, STS keys of the provider's role out (accepted here)."""
    tip = identity_token(ctx)
    name = ctx.params.required_text("ProviderName")
    provider = ctx.state.role_providers.get(name)
    pool = ctx.params.text("PoolName")
    if provider is None or (pool is not None and provider.pool_name != pool):
        raise not_found("RoleCredentialProvider", name)
    requested = ctx.params.text("RequestedRoleTrn")
    if requested is not None and requested != provider.role.trn:
        raise invalid("RequestedRoleTrn", "The provider does not map to that role.")
    session_name = ctx.params.text("RoleSessionName") or tip.sub
    duration = sts_duration(ctx.params.integer("DurationSeconds"))
    key = issue_temporary_key(ctx.state, provider.role, session_name, duration)
    response: dict[str, Any] = {
        "Credentials": credentials_json(ctx.state, key, expiry_field="Expiration"),
        "AssumedRoleUser": assumed_role_user(ctx.state, key),
    }
    if ctx.params.flag("WithOIDC"):
        response["OIDCTokenInfo"] = {
            "Issuer": tip.claims["iss"],
            "Subject": tip.sub,
            "ClientIds": list(tip.claims.get("aud") or []),
            "IssuanceTime": iso_z(float(tip.claims["iat"])),
            "ExpirationTime": iso_z(float(tip.claims["exp"])),
        }
    return {"VolcEngResponse": response}


def get_resource_api_key(ctx: ActionContext) -> Result:
    """``GetResourceApiKey``: the provider's key and where to put it."""
    identity_token(ctx)
    name = ctx.params.required_text("ProviderName")
    pool = ctx.params.text("PoolName", "default") or "default"
    provider = ctx.state.providers.get((pool, name))
    if provider is None:
        raise not_found("CredentialProvider", name)
    if not isinstance(provider, ApiKeyProvider):
        raise invalid("ProviderName", f"The provider {name!r} is not an API key provider.")
    return {"ApiKey": provider.api_key, "ApiKeyMetadata": [dict(m) for m in provider.metadata]}


def create_user_credential(ctx: ActionContext) -> Result:
    """``CreateUserCredential``: store an opaque secret for the TIP's user; 409 on a taken id."""
    tip = identity_token(ctx)
    data = ctx.params.required_text("CredentialData")
    pool = ctx.params.text("PoolName", "default") or "default"
    credential_id = ctx.params.text("CredentialId") or f"cred-{secrets.token_hex(8)}"
    if not _CREDENTIAL_ID_RE.match(credential_id):
        raise invalid("CredentialId", "Use up to 128 characters of [A-Za-z0-9_.:-].")
    key = (pool, tip.sub, credential_id)
    if key in ctx.state.user_credentials:
        raise already_exists("UserCredential", credential_id)
    now = ctx.state.now()
    ctx.state.user_credentials[key] = UserCredential(credential_id, data, now, now)
    return {"CredentialId": credential_id}


def get_user_credential(ctx: ActionContext) -> Result:
    """``GetUserCredential``: the TIP's user's secret; 404 when absent (or another user's)."""
    tip = identity_token(ctx)
    credential_id = ctx.params.required_text("CredentialId")
    pool = ctx.params.text("PoolName", "default") or "default"
    found = ctx.state.user_credentials.get((pool, tip.sub, credential_id))
    if found is None:
        raise not_found("UserCredential", credential_id)
    return {
        "CredentialId": found.credential_id,
        "CredentialData": found.data,
        "CreatedAt": iso_z(found.created_at),
        "UpdatedAt": iso_z(found.updated_at),
    }


HANDLERS: dict[str, Handler] = {
    "ListCredentialProviders": list_credential_providers,
    "ListRoleCredentialProviders": list_role_credential_providers,
    "GetRoleCredentials": get_role_credentials,
    "GetResourceApiKey": get_resource_api_key,
    "CreateUserCredential": create_user_credential,
    "GetUserCredential": get_user_credential,
}
