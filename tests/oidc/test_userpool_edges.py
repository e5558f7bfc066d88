"""Dynamic-mode edge cases: create races (409), pool records without URLs, JWKS failures."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
import pytest

from agent_identity.oidc import OidcClient, OidcError, resolve_user_pool
from agent_identity.sandbox import Sandbox
from agent_identity.volcengine import IdentityClient
from agent_identity.volcengine.models import UserPoolClientPage, UserPoolPage

from .conftest import CALLBACK, POOL, POOL_UID, sandbox_settings


def hide_first_listing(
    monkeypatch: pytest.MonkeyPatch, identity: IdentityClient, method: str, empty: Any
) -> None:
    """The first list call sees nothing: another gateway creates the resource meanwhile."""
    real = getattr(identity, method)
    calls = [0]

    async def listing(request: Any) -> Any:
        calls[0] += 1
        result = await real(request)
        return empty if calls[0] == 1 else result

    monkeypatch.setattr(identity, method, listing)


async def test_pool_create_race(
    sb: Sandbox, identity: IdentityClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    hide_first_listing(monkeypatch, identity, "list_user_pools", UserPoolPage())
    resolved = await resolve_user_pool(identity, POOL, "openclaw-gateway", CALLBACK)
    assert resolved.user_pool_uid == POOL_UID
    assert not resolved.created_user_pool
    assert sb.requests.count("CreateUserPool") == 1  # answered 409


async def test_client_create_race(
    sb: Sandbox, identity: IdentityClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    hide_first_listing(monkeypatch, identity, "list_user_pool_clients", UserPoolClientPage())
    resolved = await resolve_user_pool(identity, POOL, "openclaw-gateway", CALLBACK)
    assert not resolved.created_client
    assert sb.requests.count("CreateUserPoolClient") == 1


async def test_conflict_without_a_findable_resource(sb: Sandbox, identity: IdentityClient) -> None:
    sb.faults.add("CreateUserPool", status=409, code="ResourceAlreadyExists.UserPool")
    with pytest.raises(OidcError) as info:
        await resolve_user_pool(identity, "ghost-pool", "c", CALLBACK)
    assert info.value.reason_code == "user_pool_lookup_failed"
    sb.faults.clear()
    sb.faults.add("CreateUserPoolClient", status=409, code="ResourceAlreadyExists.UserPoolClient")
    with pytest.raises(OidcError) as info:
        await resolve_user_pool(identity, POOL, "ghost-client", CALLBACK)
    assert info.value.reason_code == "user_pool_lookup_failed"
    sb.faults.clear()
    sb.faults.add("CreateUserPoolClient", status=400, code="InvalidParameter")
    with pytest.raises(OidcError) as info:
        await resolve_user_pool(identity, POOL, "bad-client", CALLBACK)
    assert info.value.reason_code == "user_pool_lookup_failed"


async def test_pool_listing_without_urls_falls_back_to_get(
    sb: Sandbox, identity: IdentityClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = identity.list_user_pools
    bare = {"discovery_url": "", "issuer_url": "", "domain": ""}

    async def listing(request: Any) -> UserPoolPage:
        page = await real(request)
        return msgspec.structs.replace(
            page, data=[msgspec.structs.replace(p, **bare) for p in page.data]
        )

    monkeypatch.setattr(identity, "list_user_pools", listing)
    resolved = await resolve_user_pool(identity, POOL, "openclaw-gateway", CALLBACK)
    assert resolved.discovery_url == sb.user_pool_discovery_url(POOL)
    assert sb.requests.count("GetUserPool") == 1

    async def nothing(request: Any) -> Any:
        pool = await real_get(request)
        return msgspec.structs.replace(pool, **bare)

    real_get = identity.get_user_pool
    monkeypatch.setattr(identity, "get_user_pool", nothing)
    with pytest.raises(OidcError) as info:
        await resolve_user_pool(identity, POOL, "openclaw-gateway", CALLBACK)
    assert info.value.reason_code == "user_pool_lookup_failed"
    assert "neither a discovery URL nor a domain" in info.value.message


@pytest.mark.parametrize(
    ("fault", "fragment"),
    [
        ({"status": 503}, "HTTP 503"),
        ({"malformed": True}, "not JSON"),
    ],
)
async def test_jwks_fetch_failures(
    sb: Sandbox, http: httpx.AsyncClient, fault: dict[str, Any], fragment: str
) -> None:
    rp = OidcClient(sandbox_settings(sb), http)
    await rp.metadata()
    sb.faults.add(f"/userpool/{POOL_UID}/keys", **fault)
    with pytest.raises(OidcError) as info:
        await rp.validate_id_token(sb.issue_user_token(POOL, "alice"))
    assert info.value.reason_code == "jwks_failed"
    assert fragment in info.value.message


async def test_jwks_unreachable(http: httpx.AsyncClient) -> None:
    from agent_identity.oidc.jwks import http_jwks_fetcher

    with pytest.raises(OidcError) as info:
        await http_jwks_fetcher(http, "http://127.0.0.1:9/keys")()
    assert info.value.reason_code == "jwks_failed"
    assert "ConnectError" in info.value.message
