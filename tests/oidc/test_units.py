"""Small pieces without a provider: discovery checks and caching, the token endpoint's error
handling, login secrets, callbacks, settings and the user-pool URL helpers.

HTTP goes through ``httpx.MockTransport`` (in process, no sockets), so MockClock is safe here.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from agent_identity.oidc import (
    DiscoveryCache,
    OidcClient,
    OidcError,
    OidcSettings,
    TokenSet,
    discovery_location,
    discovery_url_for_pool,
    new_login_secrets,
    parse_authorization_response,
    s256_challenge,
    user_pool_uid_from_url,
)
from agent_identity.oidc.errors import scrub
from agent_identity.oidc.tokens import client_auth_method
from agent_identity.volcengine.models import UserPool

ISSUER = "https://idp.example.com/tenant"

Handler = Callable[[httpx.Request], httpx.Response]


def metadata(**overrides: Any) -> dict[str, Any]:
    return {
        "issuer": ISSUER,
        "authorization_endpoint": f"{ISSUER}/authorize?tenant=1",
        "token_endpoint": f"{ISSUER}/token",
        "jwks_uri": f"{ISSUER}/keys",
        **overrides,
    }


def mock_client(handler: Handler) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def serving(document: object, status: int = 200, counter: list[str] | None = None) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        if counter is not None:
            counter.append(str(request.url))
        if isinstance(document, bytes):
            return httpx.Response(status, content=document)
        return httpx.Response(status, json=document)

    return handle


# -- discovery --------------------------------------------------------------------------


def test_discovery_location() -> None:
    well_known = f"{ISSUER}/.well-known/openid-configuration"
    assert discovery_location(ISSUER) == (well_known, ISSUER)
    assert discovery_location(f"{ISSUER}/") == (well_known, ISSUER)
    assert discovery_location(well_known) == (well_known, ISSUER)


@pytest.mark.parametrize(
    ("document", "status", "reason", "fragment"),
    [
        (metadata(), 503, "discovery_failed", "HTTP 503"),
        (b"<html>", 200, "discovery_invalid", "not JSON"),
        ({"issuer": ISSUER}, 200, "discovery_invalid", "authorization_endpoint"),
        (metadata(issuer="https://other.example"), 200, "discovery_invalid", "declares"),
        (metadata(token_endpoint="http://idp.example.com/t"), 200, "discovery_invalid", "https"),
        (metadata(jwks_uri=""), 200, "discovery_invalid", "JWKS"),
        (metadata(jwks_uri="https://"), 200, "discovery_invalid", "JWKS"),
    ],
)
async def test_discovery_refusals(
    document: object, status: int, reason: str, fragment: str
) -> None:
    async with mock_client(serving(document, status)) as http:
        with pytest.raises(OidcError) as info:
            await DiscoveryCache(http).get(ISSUER)
    assert info.value.reason_code == reason
    assert fragment in info.value.message


async def test_discovery_network_error_and_insecure_url() -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with mock_client(fail) as http:
        with pytest.raises(OidcError) as info:
            await DiscoveryCache(http).get(ISSUER)
        assert info.value.reason_code == "discovery_failed"
        assert "ConnectError" in info.value.message
        with pytest.raises(OidcError) as info:
            await DiscoveryCache(http).get("http://idp.example.com")
        assert info.value.reason_code == "discovery_invalid"
        # Plain http is fine on loopback (the sandbox and local providers).
        loopback = "http://[::1]:8080"
        with pytest.raises(OidcError) as info:
            await DiscoveryCache(http).get(loopback)
        assert info.value.reason_code == "discovery_failed"


async def test_discovery_cache_ages_and_keeps_stale_on_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[str] = []
    state = {"status": 200}

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(state["status"], json=metadata())

    async with mock_client(handle) as http:
        cache = DiscoveryCache(http, max_age=100)
        first = await cache.get(ISSUER)
        assert await cache.get(f"{ISSUER}/.well-known/openid-configuration") is first
        assert len(seen) == 1
        await trio.sleep(101)
        state["status"] = 500
        assert await cache.get(ISSUER) is first  # stale copy served
        assert len(seen) == 2
        assert await cache.get(ISSUER) is first  # and not asked again right away
        assert len(seen) == 2
        await trio.sleep(61)
        state["status"] = 200
        await cache.get(ISSUER)
        assert len(seen) == 3
        cache.invalidate(ISSUER)
        await cache.get(ISSUER)
        cache.invalidate()
        await cache.get(ISSUER)
        assert len(seen) == 5


async def test_authorization_url_keeps_existing_query_and_adds_extras() -> None:
    async with mock_client(serving(metadata())) as http:
        settings = OidcSettings(
            discovery_url=ISSUER,
            client_id="c",
            redirect_uri="https://gw.example/cb",
            scope="email profile",
            extra_authorize_params=(("prompt", "consent"),),
        )
        url = await OidcClient(settings, http).authorization_url(new_login_secrets())
    assert url.startswith(f"{ISSUER}/authorize?tenant=1&response_type=code&")
    assert "scope=openid+email+profile" in url
    assert url.endswith("&prompt=consent")


def test_settings_refuse_overriding_core_parameters() -> None:
    with pytest.raises(ValueError, match="state"):
        OidcSettings(
            discovery_url=ISSUER,
            client_id="c",
            redirect_uri="https://gw/cb",
            extra_authorize_params=(("state", "x"),),
        )
    settings = OidcSettings(
        discovery_url=ISSUER, client_id="c", redirect_uri="u", client_secret="s"
    )
    assert "'s'" not in repr(settings)
    assert settings.scopes == "openid profile email"


# -- the token endpoint ---------------------------------------------------------------------


def token_client(handler: Handler, *, secret: str | None = "s3cr3t", **meta: Any) -> OidcClient:  # noqa: S107
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("openid-configuration"):
            return httpx.Response(200, json=metadata(**meta))
        return handler(request)

    settings = OidcSettings(
        discovery_url=ISSUER, client_id="my client", client_secret=secret, redirect_uri="u"
    )
    return OidcClient(settings, mock_client(handle))


@pytest.mark.parametrize(
    ("status", "body", "reason", "fragment"),
    [
        (
            400,
            {"error": "invalid_grant", "error_description": "token rt-123 spent"},
            "invalid_grant",
            "<redacted> spent",
        ),
        (401, {"error": "invalid_client"}, "invalid_client", "(invalid_client)."),
        (
            400,
            {"error": "invalid_scope", "error_description": "bad\nscope"},
            "token_rejected",
            "bad scope",
        ),
        (502, b"<html>bad gateway</html>", "token_request_failed", "HTTP 502"),
        (200, {"token_type": "Bearer"}, "token_response_invalid", "access_token"),
        (200, b"not json", "token_response_invalid", "not valid"),
    ],
)
async def test_token_endpoint_errors(status: int, body: object, reason: str, fragment: str) -> None:
    client = token_client(serving(body, status))
    with pytest.raises(OidcError) as info:
        await client.refresh("rt-123")
    assert info.value.reason_code == reason
    assert fragment in info.value.message
    assert "rt-123" not in info.value.message
    assert "s3cr3t" not in info.value.message


async def test_token_endpoint_network_error() -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(OidcError) as info:
        await token_client(fail).refresh("rt")
    assert info.value.reason_code == "token_request_failed"
    assert "ReadTimeout" in info.value.message


async def test_basic_auth_is_form_encoded_and_refresh_keeps_old_token() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"access_token": "at", "expires_in": "60"})

    tokens = await token_client(handle, secret="a:b c+").refresh("rt-old")
    assert tokens.refresh_token == "rt-old"  # not rotated: keep using it
    assert tokens.expires_in == 60
    assert tokens.claims is None
    basic = seen[0].headers["authorization"].removeprefix("Basic ")
    assert base64.b64decode(basic).decode() == "my+client:a%3Ab+c%2B"


async def test_public_client_sends_only_its_id() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"access_token": "at", "refresh_token": "rt-new"})

    tokens = await token_client(handle, secret=None).refresh("rt-old")
    assert tokens.refresh_token == "rt-new"
    assert "authorization" not in seen[0].headers
    assert b"client_id=my+client" in seen[0].content
    assert b"client_secret" not in seen[0].content


async def test_code_exchange_without_id_token() -> None:
    client = token_client(serving({"access_token": "at"}))
    with pytest.raises(OidcError) as info:
        await client.exchange_code("code", code_verifier="v" * 43, nonce="n")
    assert info.value.reason_code == "id_token_missing"


def test_client_auth_method_choice() -> None:
    from agent_identity.oidc.discovery import ProviderMetadata

    def meta(*methods: str) -> ProviderMetadata:
        return ProviderMetadata(
            issuer=ISSUER,
            authorization_endpoint="a",
            token_endpoint="t",
            jwks_uri="j",
            token_endpoint_auth_methods_supported=methods,
        )

    assert (
        client_auth_method(meta("client_secret_post", "client_secret_basic"), has_secret=True)
        == "client_secret_basic"
    )
    assert client_auth_method(meta("client_secret_post"), has_secret=True) == "client_secret_post"
    assert client_auth_method(meta("private_key_jwt"), has_secret=False) == "none"
    with pytest.raises(OidcError) as info:
        client_auth_method(meta("private_key_jwt"), has_secret=True)
    assert info.value.reason_code == "unsupported_client_auth"


def test_token_set_repr_masks_tokens() -> None:
    tokens = TokenSet(access_token="at-1", id_token="it-1", refresh_token=None, expires_in=5)
    text = repr(tokens)
    assert "at-1" not in text
    assert "it-1" not in text
    assert "refresh_token=None" in text


# -- login secrets and callbacks ------------------------------------------------------------


def test_login_secrets() -> None:
    a, b = new_login_secrets(), new_login_secrets()
    assert len({a.state, a.nonce, a.code_verifier, b.state, b.nonce, b.code_verifier}) == 6
    assert len(a.code_verifier) >= 43
    assert a.code_challenge == s256_challenge(a.code_verifier)
    # RFC 7636 appendix B.
    assert (
        s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
        == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )
    assert a.state not in repr(a)


def test_parse_authorization_response() -> None:
    ok = parse_authorization_response({"code": "c", "state": "s", "iss": "i"})
    assert (ok.code, ok.state, ok.iss) == ("c", "s", "i")
    assert "'c'" not in repr(ok)
    with pytest.raises(OidcError) as info:
        parse_authorization_response({"error": "access_denied", "state": "s"})
    assert info.value.reason_code == "authorization_denied"
    assert info.value.message.endswith("(access_denied).")
    with pytest.raises(OidcError) as info:
        parse_authorization_response({"state": "s"})
    assert info.value.reason_code == "callback_invalid"


def test_scrub_and_error_repr() -> None:
    assert scrub("a SECRET b\x00c", ("SECRET", None, "")) == "a <redacted> b c"
    assert len(scrub("x" * 1000, ())) == 300
    error = OidcError("invalid_grant", "spent")
    assert repr(error) == "OidcError('invalid_grant', 'spent')"
    assert str(error) == "spent"


# -- user-pool URL helpers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "uid"),
    [
        ("http://127.0.0.1:5000/userpool/up-1/.well-known/openid-configuration", "up-1"),
        ("http://127.0.0.1:5000/userpool/up-1", "up-1"),
        ("https://userpool-abc123.userpool.auth.id.cn-beijing.volces.com", "abc123"),
        ("https://accounts.example.com", None),
        ("http://a:b:c", None),
    ],
)
def test_user_pool_uid_from_url(url: str, uid: str | None) -> None:
    assert user_pool_uid_from_url(url) == uid


@pytest.mark.parametrize(
    ("pool", "expected"),
    [
        (
            UserPool(discovery_url="https://d/.well-known/openid-configuration", domain="x"),
            "https://d/.well-known/openid-configuration",
        ),
        (UserPool(issuer_url="https://iss/"), "https://iss/.well-known/openid-configuration"),
        (
            UserPool(domain="userpool-1.userpool.auth.id.cn-beijing.volces.com"),
            "https://userpool-1.userpool.auth.id.cn-beijing.volces.com/.well-known/openid-configuration",
        ),
        (
            UserPool(domain="127.0.0.1:8080/userpool/up-1/"),
            "http://127.0.0.1:8080/userpool/up-1/.well-known/openid-configuration",
        ),
        (
            UserPool(domain="localhost:9/userpool/u"),
            "http://localhost:9/userpool/u/.well-known/openid-configuration",
        ),
        (
            UserPool(domain="https://custom.example"),
            "https://custom.example/.well-known/openid-configuration",
        ),
        (UserPool(domain="a:b:c"), None),
        (UserPool(), None),
    ],
)
def test_discovery_url_for_pool(pool: UserPool, expected: str | None) -> None:
    assert discovery_url_for_pool(pool) == expected


def test_json_helper_roundtrip() -> None:
    # The MockTransport helper serves bytes verbatim and objects as JSON.
    assert json.loads(json.dumps(metadata()))["issuer"] == ISSUER
