"""Dynamic user-pool mode against the sandbox control plane (root AK/SK)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from agent_identity.config import UserPoolConfig
from agent_identity.oidc import (
    OidcError,
    new_login_secrets,
    open_oidc_client,
    resolve_user_pool,
    settings_from_config,
)
from agent_identity.sandbox import Sandbox
from agent_identity.sandbox.state import User
from agent_identity.volcengine import IdentityClient

from .browser import Browser
from .conftest import CALLBACK, CLIENT_SECRET, CLIENT_UID, POOL, POOL_UID
from .test_flow_sandbox import log_in

OTHER_CALLBACK = "http://127.0.0.1:28789/identity/oauth/callback"


def dynamic(pool: str, client: str, callback: str = CALLBACK, **extra: object) -> UserPoolConfig:
    config = UserPoolConfig(
        user_pool_name=pool,
        client_name=client,
        callback_url=callback,
        **extra,  # type: ignore[arg-type]
    )
    assert config.mode == "dynamic"
    return config


async def test_existing_pool_and_client(
    sb: Sandbox, http: httpx.AsyncClient, identity: IdentityClient, browser: Browser
) -> None:
    rp = await open_oidc_client(dynamic(POOL, "openclaw-gateway"), http, identity)
    assert rp.settings.client_id == CLIENT_UID
    assert rp.settings.client_secret == CLIENT_SECRET
    assert rp.settings.user_pool_uid == POOL_UID
    assert rp.settings.discovery_url == sb.user_pool_discovery_url(POOL)
    assert sb.requests.count("CreateUserPool") == 0
    assert sb.requests.count("CreateUserPoolClient") == 0
    assert sb.requests.count("UpdateUserPoolClient") == 0
    url = await rp.authorization_url(new_login_secrets())
    assert parse_qs(urlsplit(url).query)["identity_provider"] == ["userpool"]
    _, tokens = await log_in(rp, browser)
    assert tokens.claims is not None
    assert tokens.claims.sub == "alice"


async def test_auto_create_pool_and_client(
    sb: Sandbox, http: httpx.AsyncClient, identity: IdentityClient, browser: Browser
) -> None:
    resolved = await resolve_user_pool(identity, "fresh-pool", "fresh-client", CALLBACK)
    assert resolved.created_user_pool
    assert resolved.created_client
    assert not resolved.registered_callback  # created with the callback already
    assert "client_secret" not in repr(resolved)
    pool = sb.state.user_pools[resolved.user_pool_uid]
    assert pool.name == "fresh-pool"
    assert pool.flags["SelfSignUpEnabled"] is False
    client = pool.clients[resolved.client_id]
    assert client.client_type == "WEB_APPLICATION"
    assert client.allowed_callback_urls == [CALLBACK]
    assert resolved.client_secret == client.secret
    # A new pool has no users; give it one so the login can complete.
    pool.users["alice"] = User("alice", "alice-password", "alice-fresh", "alice@example.com")
    rp = await open_oidc_client(dynamic("fresh-pool", "fresh-client"), http, identity)
    assert rp.settings.client_id == resolved.client_id
    _, tokens = await log_in(rp, browser)
    assert tokens.claims is not None
    assert tokens.claims.sub == "alice-fresh"
    assert sb.requests.count("CreateUserPool") == 1


async def test_callback_url_added_when_absent(
    sb: Sandbox, http: httpx.AsyncClient, identity: IdentityClient
) -> None:
    client = sb.state.user_pools[POOL_UID].clients[CLIENT_UID]
    client.allowed_web_origins = ["http://127.0.0.1:18789"]
    client.id_token_lifetime = 900
    resolved = await resolve_user_pool(identity, POOL, "openclaw-gateway", OTHER_CALLBACK)
    assert resolved.registered_callback
    assert not resolved.created_client
    assert client.allowed_callback_urls == [CALLBACK, OTHER_CALLBACK]
    assert client.allowed_web_origins == ["http://127.0.0.1:18789", "http://127.0.0.1:28789"]
    # Everything else was written back unchanged.
    assert client.id_token_lifetime == 900
    assert client.name == "openclaw-gateway"
    again = await resolve_user_pool(identity, POOL, "openclaw-gateway", OTHER_CALLBACK)
    assert not again.registered_callback
    assert sb.requests.count("UpdateUserPoolClient") == 1


async def test_new_client_in_existing_pool_with_other_callback(
    sb: Sandbox, http: httpx.AsyncClient, identity: IdentityClient
) -> None:
    browser = Browser(httpx.AsyncClient(timeout=10), OTHER_CALLBACK)
    async with browser.client:
        rp = await open_oidc_client(
            dynamic(POOL, "second-gateway", OTHER_CALLBACK, use_relay_callback=True),
            http,
            identity,
        )
        _, tokens = await log_in(rp, browser)
    assert tokens.claims is not None
    assert tokens.claims.aud == (rp.settings.client_id,)
    assert sb.requests.count("CreateUserPool") == 0
    assert sb.requests.count("CreateUserPoolClient") == 1


async def test_auto_create_false_missing_pool(
    sb: Sandbox, http: httpx.AsyncClient, identity: IdentityClient
) -> None:
    with pytest.raises(OidcError) as info:
        await open_oidc_client(dynamic("no-such-pool", "c", auto_create=False), http, identity)
    assert info.value.reason_code == "user_pool_not_found"
    assert "'no-such-pool' does not exist" in info.value.message
    assert "autoCreate" in info.value.message
    assert sb.requests.count("CreateUserPool") == 0


async def test_auto_create_false_missing_client(
    sb: Sandbox, http: httpx.AsyncClient, identity: IdentityClient
) -> None:
    with pytest.raises(OidcError) as info:
        await open_oidc_client(dynamic(POOL, "no-such-client", auto_create=False), http, identity)
    assert info.value.reason_code == "user_pool_client_not_found"
    assert "'no-such-client'" in info.value.message
    assert sb.requests.count("CreateUserPoolClient") == 0


async def test_dynamic_mode_needs_an_identity_client(http: httpx.AsyncClient) -> None:
    with pytest.raises(OidcError) as info:
        await open_oidc_client(dynamic(POOL, "openclaw-gateway"), http, None)
    assert info.value.reason_code == "config_incomplete"


async def test_explicit_mode_incomplete() -> None:
    config = UserPoolConfig(client_id="x", callback_url=CALLBACK)
    with pytest.raises(OidcError) as info:
        await settings_from_config(config, None)
    assert info.value.reason_code == "config_incomplete"
    assert "discoveryUrl" in info.value.message


async def test_control_plane_failure_is_a_clear_error(
    sb: Sandbox, http: httpx.AsyncClient, identity: IdentityClient
) -> None:
    sb.faults.add("ListUserPools", status=500, code="InternalError")
    with pytest.raises(OidcError) as info:
        await resolve_user_pool(identity, POOL, "openclaw-gateway", CALLBACK)
    assert info.value.reason_code == "user_pool_lookup_failed"
    assert "ListUserPools" in info.value.message
    assert sb.secret_access_key not in info.value.message


async def test_callback_registration_failure(
    sb: Sandbox, http: httpx.AsyncClient, identity: IdentityClient
) -> None:
    sb.faults.add("UpdateUserPoolClient", status=403, code="AccessDenied")
    with pytest.raises(OidcError) as info:
        await resolve_user_pool(identity, POOL, "openclaw-gateway", OTHER_CALLBACK)
    assert info.value.reason_code == "callback_registration_failed"
    assert OTHER_CALLBACK in info.value.message
