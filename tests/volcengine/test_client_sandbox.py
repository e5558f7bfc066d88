"""Every IdentityClient action end to end against the sandbox."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import msgspec
import pytest

from agent_identity.sandbox import Sandbox
from agent_identity.volcengine import IdentityClient, is_conflict, is_not_found
from agent_identity.volcengine.errors import VolcengineError
from agent_identity.volcengine.models import (
    CheckPermissionRequest,
    ClientFilter,
    CompleteResourceTokenAuthRequest,
    CreateUserCredentialRequest,
    CreateUserPoolClientRequest,
    CreateUserPoolRequest,
    CreateWorkloadIdentityRequest,
    CredentialProviderFilter,
    CustomParameters,
    EmptyResult,
    EntityRef,
    GetResourceApiKeyRequest,
    GetResourceOauth2TokenRequest,
    GetRoleCredentialsRequest,
    GetUserCredentialRequest,
    GetUserPoolClientRequest,
    GetUserPoolRequest,
    GetWorkloadAccessTokenForJWTRequest,
    GetWorkloadIdentityRequest,
    IdentityProviderFilter,
    IdTokenSettings,
    KeyValue,
    ListCredentialProvidersRequest,
    ListIdentityProvidersRequest,
    ListRoleCredentialProvidersRequest,
    ListUserPoolClientsRequest,
    ListUserPoolsRequest,
    MetaDataEntry,
    Oauth2CallbackRequest,
    PermissionExtra,
    RoleCredentialProviderFilter,
    UpdateUserPoolClientRequest,
    UserIdentifier,
    UserPoolFilter,
)
from agent_identity.volcengine.transport import static_credentials

from .conftest import FAST_RETRY
from .helpers import LeakWatch, consent, jwt_claims

POOL = "agent-identity-dev"
POOL_UID = "up-dev-0001"
APP_CALLBACK = "http://127.0.0.1:9/app/oauth-callback"


async def _tip(
    client: IdentityClient, sb: Sandbox, watch: LeakWatch, sub: str = "alice", **kwargs: object
) -> str:
    user_token = sb.issue_user_token(POOL, sub)
    kwargs.setdefault("name", "openclaw-agent")
    result = await client.get_workload_access_token_for_jwt(
        GetWorkloadAccessTokenForJWTRequest(user_token=user_token, **kwargs)  # type: ignore[arg-type]
    )
    watch.secret(user_token, result.workload_access_token)
    return result.workload_access_token


# ---------------------------------------------------------------- workloads and TIPs


async def test_tip_minting(client: IdentityClient, sb: Sandbox, leak_watch: LeakWatch) -> None:
    user_token = sb.issue_user_token(POOL, "alice")
    result = await client.get_workload_access_token_for_jwt(
        GetWorkloadAccessTokenForJWTRequest(
            user_token=user_token,
            name="openclaw-agent",
            workload_pool_name="default",
            audience=["https://api.example.com"],
            duration_seconds=600,
        )
    )
    leak_watch.secret(user_token, result.workload_access_token)
    claims = jwt_claims(result.workload_access_token)
    assert claims["sub"] == "alice"
    assert claims["act"] == {"sub": "openclaw-agent"}
    assert claims["aud"] == ["https://api.example.com"]
    assert claims["exp"] == int(result.expires_at_datetime.timestamp())
    assert result.expires_at.endswith("Z")
    # Delegation: the TIP itself goes in as the user token and gains an act level.
    delegated = await client.get_workload_access_token_for_jwt(
        GetWorkloadAccessTokenForJWTRequest(
            user_token=result.workload_access_token, name="openclaw-agent"
        )
    )
    leak_watch.secret(delegated.workload_access_token)
    nested = jwt_claims(delegated.workload_access_token)
    assert nested["sub"] == "alice"
    assert nested["act"] == {"sub": "openclaw-agent", "act": {"sub": "openclaw-agent"}}


async def test_missing_workload_then_create_then_retry(
    client: IdentityClient, sb: Sandbox, leak_watch: LeakWatch
) -> None:
    """The plugin's flow: 404 → CreateWorkloadIdentity(Category=Agent) → retry; 409 ignored."""
    with pytest.raises(VolcengineError) as caught:
        await _tip(client, sb, leak_watch, name="new-agent")
    assert is_not_found(caught.value)
    assert sb.requests.count("GetWorkloadAccessTokenForJWT") == 1
    created = await client.create_workload_identity(
        CreateWorkloadIdentityRequest(
            name="new-agent",
            workload_pool_name="default",
            category="Agent",
            description="made by a test",
            allowed_resource_oauth2_return_urls=["https://gw/return"],
            meta_data=[MetaDataEntry(key="owner", values=["tests"])],
        )
    )
    assert (created.name, created.category, created.workload_pool_name) == (
        "new-agent",
        "Agent",
        "default",
    )
    assert created.meta_data == [MetaDataEntry(key="owner", values=["tests"])]
    assert created.trn.endswith("workload/new-agent")
    assert jwt_claims(await _tip(client, sb, leak_watch, name="new-agent"))["act"] == {
        "sub": "new-agent"
    }
    with pytest.raises(VolcengineError) as again:
        await client.create_workload_identity(CreateWorkloadIdentityRequest(name="new-agent"))
    assert is_conflict(again.value)
    assert sb.requests.count("CreateWorkloadIdentity") == 2


async def test_get_workload_identity(client: IdentityClient) -> None:
    found = await client.get_workload_identity(GetWorkloadIdentityRequest(name="openclaw-agent"))
    assert found.category == "Agent"
    assert found.created_at.endswith("Z")
    with pytest.raises(VolcengineError) as caught:
        await client.get_workload_identity(
            GetWorkloadIdentityRequest(name="ghost", workload_pool_name="default")
        )
    assert caught.value.status == 404
    assert caught.value.code == "ResourceNotFound.WorkloadIdentity"


async def test_invalid_user_token(client: IdentityClient, sb: Sandbox) -> None:
    expired = sb.issue_user_token(POOL, "alice", ttl=-60)
    with pytest.raises(VolcengineError) as caught:
        await client.get_workload_access_token_for_jwt(
            GetWorkloadAccessTokenForJWTRequest(user_token=expired, name="openclaw-agent")
        )
    assert (caught.value.status, caught.value.code) == (400, "InvalidParameter.UserToken")


# ---------------------------------------------------------------- outbound credentials


async def test_list_credential_providers(client: IdentityClient) -> None:
    page = await client.list_credential_providers(
        ListCredentialProvidersRequest(page_number=1, page_size=10, pool_name="default")
    )
    assert page.total_count == 3
    kinds = {p.name: (p.type, p.flow) for p in page.credential_providers}
    assert kinds["demo-oauth"] == ("oauth2", "USER_FEDERATION")
    assert kinds["demo-m2m"] == ("oauth2", "M2M")
    assert kinds["openai"][0] == "api_key"
    filtered = await client.list_credential_providers(
        ListCredentialProvidersRequest(
            page_number=1,
            page_size=10,
            sort_field="Name",
            filter=CredentialProviderFilter(type="oauth2", flow="M2M"),
        )
    )
    assert [p.name for p in filtered.credential_providers] == ["demo-m2m"]


async def test_role_credential_providers_and_role_credentials(
    client: IdentityClient, sb: Sandbox, http: httpx.AsyncClient, leak_watch: LeakWatch
) -> None:
    page = await client.list_role_credential_providers(
        ListRoleCredentialProvidersRequest(
            page_number=1, page_size=10, filter=RoleCredentialProviderFilter(name="demo")
        )
    )
    assert [p.name for p in page.role_credential_providers] == ["demo-role"]
    config = page.role_credential_providers[0].config
    assert config is not None
    assert config.role_mapping is not None
    assert config.role_mapping.from_role is not None
    assert config.role_mapping.from_role.role_name == "demo-readonly"
    assert config.identity_pool is not None
    assert config.identity_pool.user_pool is not None
    assert config.identity_pool.user_pool.client_name == "openclaw-gateway"

    tip = await _tip(client, sb, leak_watch)
    result = await client.get_role_credentials(
        GetRoleCredentialsRequest(
            provider_name="demo-role",
            identity_token=tip,
            pool_name="default",
            duration_seconds=900,
            with_oidc=True,
        )
    )
    response = result.volc_eng_response
    assert response is not None
    assert response.credentials is not None
    assert response.assumed_role_user is not None
    assert "assumed-role/demo-readonly/alice" in response.assumed_role_user.trn
    assert response.oidc_token_info is not None
    assert response.oidc_token_info.subject == "alice"
    key = sb.state.temporary_keys[response.credentials.access_key_id]
    assert response.credentials.expires_at.timestamp() == pytest.approx(key.expires_at, abs=1)
    # The keys work: sign a call with them.
    as_role = IdentityClient(
        http,
        endpoint=sb.base_url,
        credentials=static_credentials(response.credentials.signing_credentials()),
        retry=FAST_RETRY,
    )
    pools = await as_role.list_user_pools(ListUserPoolsRequest(page_number=1, page_size=10))
    assert pools.total_count == 1


async def test_m2m_token(client: IdentityClient, sb: Sandbox, leak_watch: LeakWatch) -> None:
    tip = await _tip(client, sb, leak_watch)
    token = await client.get_resource_oauth2_token(
        GetResourceOauth2TokenRequest(provider_name="demo-m2m", identity_token=tip)
    )
    assert token.access_token is not None
    assert token.access_token.startswith("demo-at-")
    assert token.expires_in == 3600
    assert token.authorization_url is None


async def test_three_legged_via_service_callback(
    client: IdentityClient, sb: Sandbox, http: httpx.AsyncClient, leak_watch: LeakWatch
) -> None:
    tip = await _tip(client, sb, leak_watch)
    request = GetResourceOauth2TokenRequest(
        provider_name="demo-oauth",
        identity_token=tip,
        flow="USER_FEDERATION",
        custom_parameters=CustomParameters(entries=[KeyValue(key="prompt", value="consent")]),
    )
    first = await client.get_resource_oauth2_token(request)
    assert first.access_token is None
    assert first.authorization_url is not None
    assert first.session_uri is not None
    assert first.session_uri.startswith("urn:ietf:params:oauth:request_uri:")
    assert parse_qs(urlsplit(first.authorization_url).query)["prompt"] == ["consent"]
    http.follow_redirects = True
    done = await consent(http, first.authorization_url)
    assert "Authorization complete" in done.text
    polled = await client.get_resource_oauth2_token(request)
    assert polled.access_token is not None
    assert polled.authorization_url is None


async def test_three_legged_via_oauth2_callback(
    client: IdentityClient, sb: Sandbox, http: httpx.AsyncClient, leak_watch: LeakWatch
) -> None:
    tip = await _tip(client, sb, leak_watch)
    first = await client.get_resource_oauth2_token(
        GetResourceOauth2TokenRequest(
            provider_name="demo-oauth", identity_token=tip, redirect_url=APP_CALLBACK
        )
    )
    assert first.authorization_url is not None
    redirect = await consent(http, first.authorization_url)
    params = {k: v[0] for k, v in parse_qs(urlsplit(redirect.headers["location"]).query).items()}
    leak_watch.secret(params["code"])
    result = await client.oauth2_callback(
        Oauth2CallbackRequest(state=params["state"], code=params["code"], identity_token=tip)
    )
    assert result.access_token.startswith("demo-at-")
    denied_flow = await client.get_resource_oauth2_token(
        GetResourceOauth2TokenRequest(
            provider_name="demo-oauth",
            identity_token=await _tip(client, sb, leak_watch, sub="bob"),
            redirect_url=APP_CALLBACK,
        )
    )
    assert denied_flow.authorization_url is not None
    state = parse_qs(urlsplit(denied_flow.authorization_url).query)["state"][0]
    with pytest.raises(VolcengineError) as caught:
        await client.oauth2_callback(
            Oauth2CallbackRequest(
                state=state,
                error="access_denied",
                identity_token=await _tip(client, sb, leak_watch, sub="bob"),
            )
        )
    assert caught.value.code == "Oauth2AuthorizationDenied"


async def test_complete_resource_token_auth(
    client: IdentityClient, sb: Sandbox, http: httpx.AsyncClient, leak_watch: LeakWatch
) -> None:
    tip = await _tip(client, sb, leak_watch)
    request = GetResourceOauth2TokenRequest(
        provider_name="demo-oauth",
        identity_token=tip,
        resource_oauth2_return_url="http://127.0.0.1:9/return",
        custom_state="mine",
    )
    first = await client.get_resource_oauth2_token(request)
    assert first.authorization_url is not None
    assert first.session_uri is not None
    redirect = await consent(http, first.authorization_url)
    back = await http.get(redirect.headers["location"])
    assert parse_qs(urlsplit(back.headers["location"]).query)["session_id"] == [first.session_uri]
    result = await client.complete_resource_token_auth(
        CompleteResourceTokenAuthRequest(
            session_uri=first.session_uri,
            user_identifier=UserIdentifier(identity_token=tip),
            pool_name="default",
        )
    )
    assert result == EmptyResult()
    polled = await client.get_resource_oauth2_token(
        GetResourceOauth2TokenRequest(provider_name="demo-oauth", identity_token=tip)
    )
    assert polled.access_token is not None
    with pytest.raises(VolcengineError) as caught:
        await client.complete_resource_token_auth(
            CompleteResourceTokenAuthRequest(
                session_uri="urn:nope", user_identifier=UserIdentifier(user_id="alice")
            )
        )
    assert is_not_found(caught.value)


async def test_api_key(client: IdentityClient, sb: Sandbox, leak_watch: LeakWatch) -> None:
    tip = await _tip(client, sb, leak_watch)
    key = await client.get_resource_api_key(
        GetResourceApiKeyRequest(provider_name="openai", identity_token=tip, pool_name="default")
    )
    assert key.api_key == "sk-sandbox-openai-0000000000000000"
    assert [(m.location, m.parameter_name, m.prefix) for m in key.api_key_metadata] == [
        ("header", "Authorization", "Bearer ")
    ]
    assert key.api_key not in repr(key)
    with pytest.raises(VolcengineError) as caught:
        await client.get_resource_api_key(
            GetResourceApiKeyRequest(provider_name="missing", identity_token=tip)
        )
    assert is_not_found(caught.value)


async def test_user_credentials(client: IdentityClient, sb: Sandbox, leak_watch: LeakWatch) -> None:
    alice = await _tip(client, sb, leak_watch)
    bob = await _tip(client, sb, leak_watch, sub="bob")
    leak_watch.secret("github-pat-secret-value")
    created = await client.create_user_credential(
        CreateUserCredentialRequest(
            credential_data="github-pat-secret-value",
            identity_token=alice,
            credential_id="github-pat",
            pool_name="default",
        )
    )
    assert created.credential_id == "github-pat"
    fetched = await client.get_user_credential(
        GetUserCredentialRequest(credential_id="github-pat", identity_token=alice)
    )
    assert fetched.credential_data == "github-pat-secret-value"
    assert "github-pat-secret-value" not in repr(fetched)
    with pytest.raises(VolcengineError) as missing:
        await client.get_user_credential(
            GetUserCredentialRequest(credential_id="github-pat", identity_token=bob)
        )
    assert is_not_found(missing.value)
    with pytest.raises(VolcengineError) as taken:
        await client.create_user_credential(
            CreateUserCredentialRequest(
                credential_data="x-other-data", identity_token=alice, credential_id="github-pat"
            )
        )
    assert is_conflict(taken.value)


# ---------------------------------------------------------------- authorization


@pytest.mark.parametrize(
    ("principal", "operation", "resource", "allowed"),
    [
        ("alice", "invoke", EntityRef(type="agent", id="openclaw-agent"), True),
        ("bob", "call", EntityRef(type="tool", id="exec"), False),
        ("bob", "call", EntityRef(type="tool", id="read"), True),
        ("carol", "invoke", EntityRef(type="agent", id="openclaw-agent"), False),
    ],
)
async def test_check_permission(
    client: IdentityClient, principal: str, operation: str, resource: EntityRef, allowed: bool
) -> None:
    decision = await client.check_permission(
        CheckPermissionRequest(
            namespace_name="default",
            principal=EntityRef(type="user", id=principal),
            operation=EntityRef(type="Action", id=operation),
            resource=resource,
            original_callers=[EntityRef(type="agent", id="upstream")],
            extra=PermissionExtra(run_id="run-1", session_id="sess-1"),
        )
    )
    assert decision.allowed is allowed


async def test_check_permission_unknown_namespace(client: IdentityClient) -> None:
    with pytest.raises(VolcengineError) as caught:
        await client.check_permission(
            CheckPermissionRequest(
                namespace_name="nope",
                principal=EntityRef(type="user", id="alice"),
                operation=EntityRef(type="Action", id="invoke"),
                resource=EntityRef(type="agent", id="openclaw-agent"),
            )
        )
    assert is_not_found(caught.value)


# ---------------------------------------------------------------- user pools


async def test_identity_providers_use_user_pool_uid_caps(client: IdentityClient) -> None:
    page = await client.list_identity_providers(
        ListIdentityProvidersRequest(user_pool_uid=POOL_UID, page_number=1, page_size=10)
    )
    assert [(p.name, p.connection_type) for p in page.data] == [("userpool", "local")]
    empty = await client.list_identity_providers(
        ListIdentityProvidersRequest(
            user_pool_uid=POOL_UID,
            page_number=1,
            page_size=10,
            filter=IdentityProviderFilter(exclude_connection_type="local"),
        )
    )
    assert empty.data == []


async def test_user_pools(client: IdentityClient) -> None:
    found = await client.list_user_pools(
        ListUserPoolsRequest(page_number=1, page_size=1, filter=UserPoolFilter(name=POOL))
    )
    assert found.total_count == 1
    assert found.data[0].uid == POOL_UID
    created = await client.create_user_pool(
        CreateUserPoolRequest(
            name="dynamic-pool", self_sign_up_enabled=False, self_account_recovery_enabled=True
        )
    )
    assert created.self_sign_up_enabled is False
    assert created.self_account_recovery_enabled is True
    assert created.discovery_url.endswith("/.well-known/openid-configuration")
    fetched = await client.get_user_pool(GetUserPoolRequest(user_pool_uid=created.uid))
    assert (fetched.name, fetched.domain) == ("dynamic-pool", created.domain)
    with pytest.raises(VolcengineError) as conflict:
        await client.create_user_pool(CreateUserPoolRequest(name="dynamic-pool"))
    assert is_conflict(conflict.value)
    with pytest.raises(VolcengineError) as missing:
        await client.get_user_pool(GetUserPoolRequest(user_pool_uid="up-ghost"))
    assert is_not_found(missing.value)


async def test_user_pool_clients(client: IdentityClient, leak_watch: LeakWatch) -> None:
    listed = await client.list_user_pool_clients(
        ListUserPoolClientsRequest(
            user_pool_uid=POOL_UID,
            page_number=1,
            page_size=1,
            filter=ClientFilter(name="openclaw-gateway"),
        )
    )
    assert listed.total_count == 1
    assert listed.data[0].client_secret is None
    seeded = await client.get_user_pool_client(
        GetUserPoolClientRequest(user_pool_uid=POOL_UID, client_uid=listed.data[0].uid)
    )
    assert seeded.client_secret == "openclaw-gateway-client-secret"
    created = await client.create_user_pool_client(
        CreateUserPoolClientRequest(
            user_pool_uid=POOL_UID,
            name="web",
            client_type="WEB_APPLICATION",
            allowed_callback_urls=["https://gw/one"],
        )
    )
    assert created.client_secret
    leak_watch.secret(created.client_secret)
    update = UpdateUserPoolClientRequest.from_client(POOL_UID, created)
    update = msgspec.structs.replace(
        update,
        allowed_callback_urls=[*created.allowed_callback_urls, "https://gw/two"],
        allowed_web_origins=["https://gw"],
        id_token=IdTokenSettings(life_time_seconds=600),
    )
    updated = await client.update_user_pool_client(update)
    assert updated.allowed_callback_urls == ["https://gw/one", "https://gw/two"]
    assert updated.allowed_web_origins == ["https://gw"]
    assert updated.id_token is not None
    assert updated.id_token.lifetime_seconds == 600
    assert updated.client_secret == created.client_secret
    with pytest.raises(VolcengineError) as missing:
        await client.get_user_pool_client(
            GetUserPoolClientRequest(user_pool_uid=POOL_UID, client_uid="ghost")
        )
    assert (missing.value.status, missing.value.code) == (404, "ResourceNotFound.UserPoolClient")


async def test_statistics(client: IdentityClient) -> None:
    await client.get_user_pool(GetUserPoolRequest(user_pool_uid=POOL_UID))
    with pytest.raises(VolcengineError):
        await client.get_user_pool(GetUserPoolRequest(user_pool_uid="ghost"))
    stats = client.statistics()
    assert (stats.calls, stats.attempts, stats.retries) == (2, 2, 0)
    assert (stats.successes, stats.failures) == (1, 1)
    assert stats.errors_by_code == {"ResourceNotFound.UserPool": 1}
