"""User pools, their clients and identity providers (section 2.6 of the API notes).

Enough of the management API for the plugin's "dynamic user pool" mode: find or create a pool
by name, find or create a client, read its secret, append a callback URL. List filters on
``Name`` match exactly, so a name lookup with ``PageSize=1`` is never fooled by a longer name.
"""

from __future__ import annotations

import secrets
from typing import Any

from agent_identity.sandbox.context import ActionContext, Handler, Result, paginate
from agent_identity.sandbox.envelope import Params, already_exists, invalid, not_found
from agent_identity.sandbox.state import Client, SandboxState, UserPool, iso_z

__all__ = ["HANDLERS"]

_CLIENT_TYPES = ("WEB_APPLICATION", "MOBILE_APPLICATION", "SINGLE_PAGE_APPLICATION", "M2M")
_POOL_FLAGS = (
    "SelfSignUpEnabled",
    "SelfAccountRecoveryEnabled",
    "PasswordSignInEnabled",
    "EmailPasswordlessSignInEnabled",
    "SmsPasswordlessSignInEnabled",
    "EmailAnonymousSignUpEnabled",
    "SmsAnonymousSignUpEnabled",
    "SignUpAutoVerificationEnabled",
    "UnconfirmedUserSignInEnabled",
)
_CLIENT_FLAGS = ("DevelopmentModeEnabled", "DismissLoginPageEnabled", "SkipConsentEnabled")
_URL_LISTS = {
    "AllowedCallbackUrls": "allowed_callback_urls",
    "AllowedLogoutUrls": "allowed_logout_urls",
    "AllowedWebOrigins": "allowed_web_origins",
    "AllowedCors": "allowed_cors",
}


def _pool(ctx: ActionContext, param: str = "UserPoolUid") -> UserPool:
    uid = ctx.params.required_text(param)
    pool = ctx.state.user_pools.get(uid)
    if pool is None:
        raise not_found("UserPool", uid)
    return pool


def _pool_json(state: SandboxState, pool: UserPool) -> dict[str, Any]:
    issuer = state.user_pool_issuer(pool)
    flags = {name: pool.flags.get(name, name == "PasswordSignInEnabled") for name in _POOL_FLAGS}
    return {
        "Uid": pool.uid,
        "Name": pool.name,
        "Trn": pool.trn,
        "Description": pool.description,
        "ProjectName": pool.project_name,
        "Tags": [],
        "Enabled": True,
        # The real Domain is a bare https host; here it is host + path of the http issuer.
        "Domain": issuer.split("://", 1)[1],
        "CustomDomain": "",
        "IssuerUrl": issuer,
        "DiscoveryUrl": f"{issuer}/.well-known/openid-configuration",
        "TokenUrl": f"{issuer}/oauth/token",
        "TokenSigningKeyUrl": f"{issuer}/keys",
        "OauthLoginCallbackUrl": f"{issuer}/login/generic_oauth/callback",
        "OauthSignUpCallbackUrl": f"{issuer}/signup/generic_oauth/callback",
        "OidcLoginCallbackUrl": f"{issuer}/login/oidc/callback",
        "OidcSignUpCallbackUrl": f"{issuer}/signup/oidc/callback",
        "SamlLoginCallbackUrl": f"{issuer}/login/saml/callback",
        "SamlSignUpCallbackUrl": f"{issuer}/signup/saml/callback",
        "TotalUsers": len(pool.users),
        "TotalClients": len(pool.clients),
        "TotalConnections": len(pool.identity_providers),
        "SignInAttributes": pool.flags.get("SignInAttributes", ["username", "email"]),
        "RequiredSignUpAttributes": pool.flags.get("RequiredSignUpAttributes", []),
        "SelfAccountRecoveryVerificationAttributes": pool.flags.get(
            "SelfAccountRecoveryVerificationAttributes", []
        ),
        "AuthenticationMethodOrder": pool.flags.get("AuthenticationMethodOrder", []),
        "Brand": pool.flags.get("Brand", {}),
        "CustomAttributes": [],
        "CreateTime": iso_z(pool.created_at),
        "UpdateTime": iso_z(pool.updated_at),
        **flags,
    }


def _client_json(state: SandboxState, pool: UserPool, client: Client) -> dict[str, Any]:
    refresh = {
        "Rotation": False,
        "HasIdleLifetime": True,
        "IdleLifetimeSeconds": 2592000,
        "HasCombinedLifetime": False,
        "CombinedLifetimeSeconds": 0,
        **client.refresh_token,
    }
    return {
        "Uid": client.uid,
        "Name": client.name,
        "ClientType": client.client_type,
        "ClientSecret": client.secret,
        "Description": client.description,
        "LogoUri": client.logo_uri,
        "AllowedCallbackUrls": list(client.allowed_callback_urls),
        "AllowedLogoutUrls": list(client.allowed_logout_urls),
        "AllowedWebOrigins": list(client.allowed_web_origins),
        "AllowedCors": list(client.allowed_cors),
        "IdToken": {"LifetimeSeconds": client.id_token_lifetime},
        "RefreshToken": refresh,
        "LoginPageUrl": f"{state.user_pool_issuer(pool)}/login",
        "CreateTime": iso_z(client.created_at),
        "UpdateTime": iso_z(client.updated_at),
        **{flag: client.flags.get(flag, False) for flag in _CLIENT_FLAGS},
    }


def list_user_pools(ctx: ActionContext) -> Result:
    """``ListUserPools``: paging; Filter Name/Uid/Trn (exact)."""
    number, size = ctx.params.page()
    flt = ctx.params.child("Filter") or Params({})
    wanted = {key: flt.text(key) for key in ("Name", "Uid", "Trn")}
    items = []
    for pool in sorted(ctx.state.user_pools.values(), key=lambda p: (p.created_at, p.name)):
        full = _pool_json(ctx.state, pool)
        if all(value is None or full[key] == value for key, value in wanted.items()):
            items.append(full)
    return paginate(items, number, size, "Data")


def create_user_pool(ctx: ActionContext) -> Result:
    """``CreateUserPool``: Name* (≤ 128); 409 when a pool of that name exists."""
    name = ctx.params.required_text("Name")
    if len(name) > 128:
        raise invalid("Name", "It must be at most 128 characters.")
    if any(p.name == name for p in ctx.state.user_pools.values()):
        raise already_exists("UserPool", name)
    pool = ctx.state.add_user_pool(
        f"up-{secrets.token_hex(8)}", name, ctx.params.text("Description", "") or ""
    )
    project = ctx.params.text("ProjectName")
    if project is not None:
        pool.project_name = project
    for flag in _POOL_FLAGS:
        if ctx.params.has(flag):
            pool.flags[flag] = ctx.params.flag(flag)
    for key in ("SignInAttributes", "RequiredSignUpAttributes", "AuthenticationMethodOrder"):
        values = ctx.params.texts(key)
        if values is not None:
            pool.flags[key] = values
    return _pool_json(ctx.state, pool)


def get_user_pool(ctx: ActionContext) -> Result:
    """``GetUserPool``: 404 when absent."""
    return _pool_json(ctx.state, _pool(ctx))


def list_user_pool_clients(ctx: ActionContext) -> Result:
    """``ListUserPoolClients``: paging; Filter Name (exact), ClientTypes; never the secret."""
    pool = _pool(ctx)
    number, size = ctx.params.page()
    flt = ctx.params.child("Filter") or Params({})
    name = flt.text("Name")
    types = flt.texts("ClientTypes")
    items = [
        {
            "Uid": c.uid,
            "Name": c.name,
            "ClientType": c.client_type,
            "Description": c.description,
            "LogoUri": c.logo_uri,
            "CreateTime": iso_z(c.created_at),
            "UpdateTime": iso_z(c.updated_at),
        }
        for c in sorted(pool.clients.values(), key=lambda c: (c.created_at, c.name))
        if (name is None or c.name == name) and (types is None or c.client_type in types)
    ]
    return paginate(items, number, size, "Data")


def _client(ctx: ActionContext, pool: UserPool) -> Client:
    uid = ctx.params.required_text("ClientUid")
    client = pool.clients.get(uid)
    if client is None:
        raise not_found("UserPoolClient", uid)
    return client


def get_user_pool_client(ctx: ActionContext) -> Result:
    """``GetUserPoolClient``: with ``ClientSecret``; 404 when absent."""
    pool = _pool(ctx)
    return _client_json(ctx.state, pool, _client(ctx, pool))


def _apply_client_fields(params: Params, client: Client) -> None:
    for key, attr in _URL_LISTS.items():
        values = params.texts(key)
        if values is not None:
            setattr(client, attr, values)
    for key, attr in (("Name", "name"), ("Description", "description"), ("LogoUri", "logo_uri")):
        if params.has(key):
            setattr(client, attr, params.text(key) or "")
    for flag in _CLIENT_FLAGS:
        if params.has(flag):
            client.flags[flag] = params.flag(flag)
    id_token = params.child("IdToken")
    if id_token is not None:
        # Input spells it LifeTimeSeconds (capital T); output LifetimeSeconds. Take both.
        lifetime = id_token.integer("LifeTimeSeconds", id_token.integer("LifetimeSeconds"))
        if lifetime is not None:
            if lifetime <= 0:
                raise invalid("IdToken.LifeTimeSeconds", "It must be positive.")
            client.id_token_lifetime = lifetime
    refresh = params.raw("RefreshToken")
    if isinstance(refresh, dict):
        client.refresh_token.update(refresh)


def create_user_pool_client(ctx: ActionContext) -> Result:
    """``CreateUserPoolClient``: UserPoolUid*, Name*, ClientType*; returns the secret."""
    pool = _pool(ctx)
    name = ctx.params.required_text("Name")
    client_type = ctx.params.required_text("ClientType")
    if client_type not in _CLIENT_TYPES:
        raise invalid("ClientType", f"Use one of {', '.join(_CLIENT_TYPES)}.")
    if any(c.name == name for c in pool.clients.values()):
        raise already_exists("UserPoolClient", name)
    now = ctx.state.now()
    client = Client(
        uid=secrets.token_hex(16),
        name=name,
        secret=secrets.token_urlsafe(32),
        client_type=client_type,
        created_at=now,
        updated_at=now,
    )
    _apply_client_fields(ctx.params, client)
    pool.clients[client.uid] = client
    return _client_json(ctx.state, pool, client)


def update_user_pool_client(ctx: ActionContext) -> Result:
    """``UpdateUserPoolClient``: the given fields replace the stored ones; 404 when absent."""
    pool = _pool(ctx)
    client = _client(ctx, pool)
    _apply_client_fields(ctx.params, client)
    client.updated_at = ctx.state.now()
    return _client_json(ctx.state, pool, client)


def list_identity_providers(ctx: ActionContext) -> Result:
    """``ListIdentityProviders``: note ``UserPoolUID`` (all caps), unlike every other call."""
    pool = _pool(ctx, "UserPoolUID")
    number, size = ctx.params.page()
    flt = ctx.params.child("Filter") or Params({})
    name, kind, exclude = (
        flt.text("Name"),
        flt.text("ConnectionType"),
        flt.text("ExcludeConnectionType"),
    )
    items = [
        {
            "Uid": idp.uid,
            "Name": idp.name,
            "Provider": idp.provider,
            "ConnectionType": idp.connection_type,
            "Enabled": idp.enabled,
            "AttributeMappings": [],
            "CreateTime": iso_z(idp.created_at),
            "UpdateTime": iso_z(idp.created_at),
        }
        for idp in pool.identity_providers
        if (name is None or idp.name == name)
        and (kind is None or idp.connection_type == kind)
        and (exclude is None or idp.connection_type != exclude)
    ]
    return paginate(items, number, size, "Data")


HANDLERS: dict[str, Handler] = {
    "ListUserPools": list_user_pools,
    "CreateUserPool": create_user_pool,
    "GetUserPool": get_user_pool,
    "ListUserPoolClients": list_user_pool_clients,
    "GetUserPoolClient": get_user_pool_client,
    "CreateUserPoolClient": create_user_pool_client,
    "UpdateUserPoolClient": update_user_pool_client,
    "ListIdentityProviders": list_identity_providers,
}
