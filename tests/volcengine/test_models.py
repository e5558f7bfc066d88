"""Model encoding (exact PascalCase JSON, quirks, omitted optionals), decoding, masked reprs."""

from __future__ import annotations

import inspect
import json
from datetime import UTC, datetime

import msgspec
import pytest

from agent_identity.volcengine import models
from agent_identity.volcengine.models import (
    REDACTED,
    Brand,
    CheckPermissionRequest,
    ClientFilter,
    CompleteResourceTokenAuthRequest,
    CreateUserCredentialRequest,
    CreateUserPoolClientRequest,
    CreateUserPoolRequest,
    CreateWorkloadIdentityRequest,
    CredentialProviderFilter,
    CredentialProviderPage,
    CustomParameters,
    EntityRef,
    EntityReference,
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
    RefreshTokenSettings,
    ResourceOauth2Token,
    RoleCredentialProvider,
    RoleCredentialProviderFilter,
    RoleCredentials,
    RoleCredentialsResponse,
    RoleCredentialsResult,
    RoleRef,
    StsCredentials,
    Tag,
    TagFilter,
    UpdateUserPoolClientRequest,
    UserIdentifier,
    UserPool,
    UserPoolClient,
    UserPoolFilter,
    WireModel,
    WorkloadAccessToken,
)
from agent_identity.volcengine.timestamps import parse_timestamp
from agent_identity.volcengine.transport import encode_json_body

REQUESTS: dict[str, WireModel] = {
    "GetWorkloadAccessTokenForJWT": GetWorkloadAccessTokenForJWTRequest(
        user_token="eyJ.user.token",
        name="openclaw-agent",
        workload_pool_name="default",
        audience=["https://api.example.com"],
        duration_seconds=900,
    ),
    "CreateWorkloadIdentity": CreateWorkloadIdentityRequest(
        name="openclaw-agent",
        workload_pool_name="default",
        category="Agent",
        description="d",
        allowed_resource_oauth2_return_urls=["https://gw/return"],
        meta_data=[MetaDataEntry(key="team", values=["a", "b"])],
    ),
    "GetWorkloadIdentity": GetWorkloadIdentityRequest(
        name="openclaw-agent", workload_pool_name="default"
    ),
    "ListCredentialProviders": ListCredentialProvidersRequest(
        page_number=1,
        page_size=20,
        pool_name="default",
        sort_field="Name",
        sort_desc=False,
        filter=CredentialProviderFilter(type="oauth2", flow="M2M", vendor=0, binding_status=True),
    ),
    "ListRoleCredentialProviders": ListRoleCredentialProvidersRequest(
        page_number=1,
        page_size=10,
        sort_desc=True,
        filter=RoleCredentialProviderFilter(
            name="demo", pool_name="default", credential_provider_id="rp-1"
        ),
    ),
    "GetRoleCredentials": GetRoleCredentialsRequest(
        provider_name="demo-role",
        identity_token="tip.jwt",
        pool_name="default",
        requested_role_trn="trn:iam::1:role/r",
        role_session_name="s",
        duration_seconds=900,
        with_oidc=True,
    ),
    "GetResourceOauth2Token": GetResourceOauth2TokenRequest(
        provider_name="demo-oauth",
        identity_token="tip.jwt",
        flow="USER_FEDERATION",
        scopes=["profile"],
        pool_name="default",
        redirect_url="https://gw/cb",
        force_authentication=False,
        custom_parameters=CustomParameters(entries=[KeyValue(key="prompt", value="consent")]),
        resource_oauth2_return_url="https://gw/return",
        custom_state="st",
        session_uri="urn:x",
    ),
    "Oauth2Callback": Oauth2CallbackRequest(
        state="st", identity_token="tip.jwt", code="c0de", error="access_denied"
    ),
    "CompleteResourceTokenAuth": CompleteResourceTokenAuthRequest(
        session_uri="urn:x",
        pool_name="default",
        user_identifier=UserIdentifier(
            user_token="id.jwt", user_id="alice", identity_token="tip.jwt"
        ),
    ),
    "GetResourceApiKey": GetResourceApiKeyRequest(
        provider_name="openai", identity_token="tip.jwt", pool_name="default"
    ),
    "CreateUserCredential": CreateUserCredentialRequest(
        credential_data="s3cret", identity_token="tip.jwt", credential_id="pat", pool_name="default"
    ),
    "GetUserCredential": GetUserCredentialRequest(
        credential_id="pat", identity_token="tip.jwt", pool_name="default"
    ),
    "CheckPermission": CheckPermissionRequest(
        namespace_name="default",
        principal=EntityRef(type="user", id="alice"),
        operation=EntityRef(type="Action", id="invoke"),
        resource=EntityRef(type="agent", id="openclaw-agent"),
        original_callers=[EntityRef(type="agent", id="caller")],
        references=[
            EntityReference(
                entity=EntityRef(type="user", id="alice"), parents=[EntityRef(type="group", id="g")]
            )
        ],
        permission_point_id="pp",
        extra=PermissionExtra(run_id="run-1", session_id="sess-1"),
    ),
    "ListIdentityProviders": ListIdentityProvidersRequest(
        user_pool_uid="up-1",
        page_number=1,
        page_size=10,
        filter=IdentityProviderFilter(connection_type="oidc", exclude_connection_type="local"),
    ),
    "ListUserPools": ListUserPoolsRequest(
        page_number=1,
        page_size=1,
        filter=UserPoolFilter(name="agent-identity-dev"),
        sort_field="CreateTime",
        sort_direction="DESC",
        project_name="default",
        tag_filters=[TagFilter(key="env", values=["dev"])],
    ),
    "CreateUserPool": CreateUserPoolRequest(
        name="pool",
        description="d",
        self_sign_up_enabled=False,
        self_account_recovery_enabled=True,
        sms_passwordless_sign_in_enabled=False,
        sign_in_attributes=["email"],
        brand=Brand(name="B", logo_uri="https://logo"),
        project_name="default",
        tags=[Tag(key="k", value="v")],
    ),
    "GetUserPool": GetUserPoolRequest(user_pool_uid="up-1"),
    "ListUserPoolClients": ListUserPoolClientsRequest(
        user_pool_uid="up-1",
        page_number=1,
        page_size=1,
        filter=ClientFilter(name="openclaw-gateway", client_types=["WEB_APPLICATION"]),
    ),
    "GetUserPoolClient": GetUserPoolClientRequest(user_pool_uid="up-1", client_uid="c-1"),
    "CreateUserPoolClient": CreateUserPoolClientRequest(
        user_pool_uid="up-1",
        name="web",
        client_type="WEB_APPLICATION",
        allowed_callback_urls=["https://gw/cb"],
        device_flow_enabled=False,
        skip_consent_enabled=True,
    ),
    "UpdateUserPoolClient": UpdateUserPoolClientRequest(
        user_pool_uid="up-1",
        client_uid="c-1",
        allowed_callback_urls=["https://gw/cb"],
        allowed_web_origins=["https://gw"],
        id_token=IdTokenSettings(life_time_seconds=600),
        refresh_token=RefreshTokenSettings(rotation=True, idle_lifetime_seconds=86400),
    ),
}

EXPECTED = {
    "GetWorkloadAccessTokenForJWT": (
        '{"Audience":["https://api.example.com"],"DurationSeconds":900,"Name":"opencl'
        'aw-agent","UserToken":"eyJ.user.token","WorkloadPoolName":"default"}'
    ),
    "CreateWorkloadIdentity": (
        '{"AllowedResourceOauth2ReturnUrls":["https://gw/return"],"Category":"Agent",'
        '"Description":"d","MetaData":[{"Key":"team","Values":["a","b"]}],"Name":"ope'
        'nclaw-agent","WorkloadPoolName":"default"}'
    ),
    "GetWorkloadIdentity": '{"Name":"openclaw-agent","WorkloadPoolName":"default"}',
    "ListCredentialProviders": (
        '{"Filter":{"BindingStatus":true,"Flow":"M2M","Type":"oauth2","Vendor":0},"Pa'
        'geNumber":1,"PageSize":20,"PoolName":"default","SortDesc":false,"SortField":'
        '"Name"}'
    ),
    "ListRoleCredentialProviders": (
        '{"Filter":{"CredentialProviderId":"rp-1","Name":"demo","PoolName":"default"}'
        ',"PageNumber":1,"PageSize":10,"SortDesc":true}'
    ),
    "GetRoleCredentials": (
        '{"DurationSeconds":900,"IdentityToken":"tip.jwt","PoolName":"default","Provi'
        'derName":"demo-role","RequestedRoleTrn":"trn:iam::1:role/r","RoleSessionName'
        '":"s","WithOIDC":true}'
    ),
    "GetResourceOauth2Token": (
        '{"CustomParameters":{"Entries":[{"Key":"prompt","Value":"consent"}]},"Custom'
        'State":"st","Flow":"USER_FEDERATION","ForceAuthentication":false,"IdentityTo'
        'ken":"tip.jwt","PoolName":"default","ProviderName":"demo-oauth","RedirectUrl'
        '":"https://gw/cb","ResourceOauth2ReturnUrl":"https://gw/return","Scopes":["p'
        'rofile"],"SessionUri":"urn:x"}'
    ),
    "Oauth2Callback": (
        '{"Code":"c0de","Error":"access_denied","IdentityToken":"tip.jwt","State":"st"}'
    ),
    "CompleteResourceTokenAuth": (
        '{"PoolName":"default","SessionUri":"urn:x","UserIdentifier":{"IdentityToken"'
        ':"tip.jwt","UserID":"alice","UserToken":"id.jwt"}}'
    ),
    "GetResourceApiKey": (
        '{"IdentityToken":"tip.jwt","PoolName":"default","ProviderName":"openai"}'
    ),
    "CreateUserCredential": (
        '{"CredentialData":"s3cret","CredentialId":"pat","IdentityToken":"tip.jwt","P'
        'oolName":"default"}'
    ),
    "GetUserCredential": '{"CredentialId":"pat","IdentityToken":"tip.jwt","PoolName":"default"}',
    "CheckPermission": (
        '{"Extra":{"runID":"run-1","sessionID":"sess-1"},"NamespaceName":"default","O'
        'peration":{"Id":"invoke","Type":"Action"},"OriginalCallers":[{"Id":"caller",'
        '"Type":"agent"}],"PermissionPointId":"pp","Principal":{"Id":"alice","Type":"'
        'user"},"References":[{"Entity":{"Id":"alice","Type":"user"},"Parents":[{"Id"'
        ':"g","Type":"group"}]}],"Resource":{"Id":"openclaw-agent","Type":"agent"}}'
    ),
    "ListIdentityProviders": (
        '{"Filter":{"ConnectionType":"oidc","ExcludeConnectionType":"local"},"PageNum'
        'ber":1,"PageSize":10,"UserPoolUID":"up-1"}'
    ),
    "ListUserPools": (
        '{"Filter":{"Name":"agent-identity-dev"},"PageNumber":1,"PageSize":1,"Project'
        'Name":"default","SortDirection":"DESC","SortField":"CreateTime","TagFilters"'
        ':[{"Key":"env","Values":["dev"]}]}'
    ),
    "CreateUserPool": (
        '{"Brand":{"LogoUri":"https://logo","Name":"B"},"Description":"d","Name":"poo'
        'l","ProjectName":"default","SelfAccountRecoveryEnabled":true,"SelfSignUpEnab'
        'led":false,"SignInAttributes":["email"],"SmsPasswordlessSignInEnabled":false'
        ',"Tags":[{"Key":"k","Value":"v"}]}'
    ),
    "GetUserPool": '{"UserPoolUid":"up-1"}',
    "ListUserPoolClients": (
        '{"Filter":{"ClientTypes":["WEB_APPLICATION"],"Name":"openclaw-gateway"},"Pag'
        'eNumber":1,"PageSize":1,"UserPoolUid":"up-1"}'
    ),
    "GetUserPoolClient": '{"ClientUid":"c-1","UserPoolUid":"up-1"}',
    "CreateUserPoolClient": (
        '{"AllowedCallbackUrls":["https://gw/cb"],"ClientType":"WEB_APPLICATION","Dev'
        'iceFlowEnabled":false,"Name":"web","SkipConsentEnabled":true,"UserPoolUid":"'
        'up-1"}'
    ),
    "UpdateUserPoolClient": (
        '{"AllowedCallbackUrls":["https://gw/cb"],"AllowedWebOrigins":["https://gw"],'
        '"ClientUid":"c-1","IdToken":{"LifeTimeSeconds":600},"RefreshToken":{"IdleLif'
        'etimeSeconds":86400,"Rotation":true},"UserPoolUid":"up-1"}'
    ),
}


@pytest.mark.parametrize("action", sorted(REQUESTS))
def test_request_encodes_to_exact_json(action: str) -> None:
    assert encode_json_body(REQUESTS[action]).decode() == EXPECTED[action]


def test_every_action_has_an_example() -> None:
    assert len(REQUESTS) == 21


def test_body_is_compact_and_sorted() -> None:
    body = encode_json_body(REQUESTS["CheckPermission"])
    document = json.loads(body)
    assert body == json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
    assert encode_json_body(None) == b"{}"


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (GetWorkloadAccessTokenForJWTRequest(user_token="t"), '{"UserToken":"t"}'),
        (CreateWorkloadIdentityRequest(name="n"), '{"Name":"n"}'),
        (
            ListCredentialProvidersRequest(page_number=1, page_size=10),
            '{"PageNumber":1,"PageSize":10}',
        ),
        (
            GetResourceOauth2TokenRequest(provider_name="p", identity_token="t"),
            '{"IdentityToken":"t","ProviderName":"p"}',
        ),
        (CheckPermissionRequest(namespace_name="default"), '{"NamespaceName":"default"}'),
        (
            CheckPermissionRequest(namespace_name="d", extra=PermissionExtra(run_id="r")),
            '{"Extra":{"runID":"r"},"NamespaceName":"d"}',
        ),
        (
            ListIdentityProvidersRequest(user_pool_uid="u", page_number=1, page_size=1),
            '{"PageNumber":1,"PageSize":1,"UserPoolUID":"u"}',
        ),
        (
            UpdateUserPoolClientRequest(
                user_pool_uid="u", client_uid="c", id_token=IdTokenSettings()
            ),
            '{"ClientUid":"c","IdToken":{},"UserPoolUid":"u"}',
        ),
        (
            CompleteResourceTokenAuthRequest(
                session_uri="s", user_identifier=UserIdentifier(user_id="alice")
            ),
            '{"SessionUri":"s","UserIdentifier":{"UserID":"alice"}}',
        ),
        (
            GetRoleCredentialsRequest(provider_name="p", identity_token="t", with_oidc=False),
            '{"IdentityToken":"t","ProviderName":"p","WithOIDC":false}',
        ),
    ],
)
def test_unset_optionals_are_left_out(request_: WireModel, expected: str) -> None:
    assert encode_json_body(request_).decode() == expected


def test_role_credentials_response_quirks() -> None:
    body = {
        "VolcEngResponse": {
            "Credentials": {
                "AccessKeyId": "AKTPx",
                "SecretAccessKey": "sk-secret-value",
                "SessionToken": "st-secret-value",
                "Expiration": "2026-11-29T15:00:00+08:00",
                "CurrentTime": "2026-11-29T14:00:00+08:00",
            },
            "AssumedRoleUser": {"Trn": "trn:sts::1:assumed-role/r/s", "AssumedRoleId": "id:s"},
            "OIDCTokenInfo": {"Issuer": "https://iss", "Subject": "alice", "ClientIds": ["c"]},
            "Future": True,
        }
    }
    result = msgspec.json.decode(json.dumps(body), type=RoleCredentialsResult)
    response = result.volc_eng_response
    assert response is not None
    assert response.credentials is not None
    assert response.credentials.expires_at == datetime(2026, 11, 29, 7, 0, tzinfo=UTC)
    creds = response.credentials.signing_credentials()
    assert (creds.access_key_id, creds.session_token) == ("AKTPx", "st-secret-value")
    assert response.oidc_token_info is not None
    assert response.oidc_token_info.client_ids == ["c"]
    assert response.assumed_role_user is not None
    assert response.assumed_role_user.assumed_role_id == "id:s"


def test_user_pool_client_output_spells_lifetime_differently() -> None:
    body = {"Uid": "c", "IdToken": {"LifetimeSeconds": 3600}, "ClientSecret": "cs-secret-1"}
    client = msgspec.json.decode(json.dumps(body), type=UserPoolClient)
    assert client.id_token is not None
    assert client.id_token.lifetime_seconds == 3600
    update = UpdateUserPoolClientRequest.from_client("up", client)
    assert update.id_token == IdTokenSettings(life_time_seconds=3600)
    assert json.loads(encode_json_body(update))["IdToken"] == {"LifeTimeSeconds": 3600}
    # Nothing of the client's secret goes back in an update.
    assert b"cs-secret-1" not in encode_json_body(update)


def test_update_from_client_copies_settings() -> None:
    client = UserPoolClient(
        uid="c",
        name="web",
        description="",
        allowed_callback_urls=["https://a/cb"],
        allowed_web_origins=["https://a"],
        refresh_token=RefreshTokenSettings(rotation=True),
        skip_consent_enabled=True,
    )
    update = msgspec.structs.replace(
        UpdateUserPoolClientRequest.from_client("up", client),
        allowed_callback_urls=[*client.allowed_callback_urls, "https://b/cb"],
    )
    assert json.loads(encode_json_body(update)) == {
        "UserPoolUid": "up",
        "ClientUid": "c",
        "Name": "web",
        "Description": "",
        "LogoUri": "",
        "AllowedCallbackUrls": ["https://a/cb", "https://b/cb"],
        "AllowedLogoutUrls": [],
        "AllowedWebOrigins": ["https://a"],
        "AllowedCors": [],
        "RefreshToken": {"Rotation": True},
        "SkipConsentEnabled": True,
    }


def test_responses_tolerate_missing_and_extra_fields() -> None:
    pool = msgspec.json.decode(
        b'{"Uid":"u","Brand":{"Name":"x","Color":"red"},"X":1}', type=UserPool
    )
    assert (pool.uid, pool.name, pool.tags, pool.brand) == ("u", "", [], Brand(name="x"))
    page = msgspec.json.decode(b"{}", type=CredentialProviderPage)
    assert page.credential_providers == []
    token = msgspec.json.decode(
        b'{"WorkloadAccessToken":"t","ExpiresAt":"2025-09-15T07:59:24Z"}',
        type=WorkloadAccessToken,
    )
    assert token.expires_at_datetime == datetime(2025, 9, 15, 7, 59, 24, tzinfo=UTC)


def test_role_provider_config_shapes() -> None:
    body = {
        "Name": "demo-role",
        "Config": {
            "Metadata": {"k": "v"},
            "IdentityPool": {"AgentPool": {"PoolName": "default"}, "UserPool": {}},
            "RoleMapping": {
                "FromRole": {"RoleName": "r", "PolicyTemplate": ""},
                "FromRequest": {"AllowedRoles": [{"RoleName": "a"}]},
                "FromRule": {
                    "DefaultRole": {"RoleName": "d"},
                    "Rules": [{"Claim": "sub", "MatchType": "Equals", "Value": "x", "Role": "r"}],
                },
            },
        },
    }
    provider = msgspec.json.decode(json.dumps(body), type=RoleCredentialProvider)
    assert provider.config is not None
    mapping = provider.config.role_mapping
    assert mapping is not None
    assert mapping.from_role == RoleRef(role_name="r")
    assert mapping.from_request is not None
    assert mapping.from_request.allowed_roles == [RoleRef(role_name="a")]
    assert mapping.from_rule is not None
    assert mapping.from_rule.rules[0].claim == "sub"


# ---------------------------------------------------------------- secret masking

SECRET = "very-secret-value-0123456789"


def _secret_models() -> list[type[WireModel]]:
    found = []
    for _, cls in inspect.getmembers(models, inspect.isclass):
        if issubclass(cls, WireModel) and cls.__secret_fields__:
            found.append(cls)
    return found


def _instance(cls: type[WireModel]) -> WireModel:
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    values: dict[str, object] = {}
    for field in info.fields:
        if field.name in cls.__secret_fields__:
            values[field.name] = SECRET
        elif field.required:
            values[field.name] = "x" if not isinstance(field.type, msgspec.inspect.IntType) else 1
    return cls(**values)


def test_every_secret_bearing_model_is_covered() -> None:
    names = {cls.__name__ for cls in _secret_models()}
    assert names == {
        "GetWorkloadAccessTokenForJWTRequest",
        "WorkloadAccessToken",
        "GetResourceOauth2TokenRequest",
        "ResourceOauth2Token",
        "Oauth2CallbackRequest",
        "Oauth2CallbackResult",
        "UserIdentifier",
        "GetResourceApiKeyRequest",
        "ResourceApiKey",
        "GetRoleCredentialsRequest",
        "RoleCredentials",
        "CreateUserCredentialRequest",
        "GetUserCredentialRequest",
        "UserCredential",
        "UserPoolClient",
        "StsCredentials",
    }


@pytest.mark.parametrize("cls", _secret_models(), ids=lambda cls: cls.__name__)
def test_reprs_mask_secrets(cls: type[WireModel]) -> None:
    instance = _instance(cls)
    for text in (repr(instance), str(instance), f"{instance}", repr([instance])):
        assert SECRET not in text
        assert REDACTED in text
    rich = dict(instance.__rich_repr__())
    assert SECRET not in repr(rich)
    # The value itself is still there, and still goes on the wire.
    assert SECRET.encode() in encode_json_body(instance)


def test_nested_secrets_are_masked_and_empty_ones_shown() -> None:
    nested = CompleteResourceTokenAuthRequest(
        session_uri="urn:x", user_identifier=UserIdentifier(identity_token=SECRET)
    )
    assert SECRET not in repr(nested)
    assert "identity_token=<redacted>" in repr(nested)
    assert "user_token=None" in repr(nested)
    assert "access_token=None" in repr(ResourceOauth2Token(authorization_url="https://a"))
    result = RoleCredentialsResult(
        volc_eng_response=RoleCredentialsResponse(
            credentials=RoleCredentials(secret_access_key=SECRET, session_token=SECRET)
        )
    )
    assert SECRET not in repr(result)


def test_sts_credentials_and_timestamps() -> None:
    creds = StsCredentials(
        access_key_id="AK", secret_access_key=SECRET, session_token=SECRET, expired_time="x"
    )
    assert creds.signing_credentials().session_token == SECRET
    with pytest.raises(ValueError, match="Invalid isoformat"):
        _ = creds.expires_at
    assert parse_timestamp("2025-10-30T07:59:24") == datetime(2025, 10, 30, 7, 59, 24, tzinfo=UTC)
    assert parse_timestamp(" 2021-04-12T11:57:09+08:00 ") == datetime(
        2021, 4, 12, 3, 57, 9, tzinfo=UTC
    )
