"""``IdentityClient``: one typed async method per Identity ("id") action the system uses.

Each method takes the action's request model and returns its result model (see
:mod:`agent_identity.volcengine.models`); signing, retries and envelope parsing are the
transport's. Every failure is a :class:`~agent_identity.volcengine.errors.VolcengineError`;
use :func:`~agent_identity.volcengine.errors.is_not_found` and
:func:`~agent_identity.volcengine.errors.is_conflict` to branch on 404/409-style answers.

Example:
    >>> client = IdentityClient(http, endpoint=endpoint, credentials=chain.get)  # doctest: +SKIP
    >>> tip = await client.get_workload_access_token_for_jwt(  # doctest: +SKIP
    ...     GetWorkloadAccessTokenForJWTRequest(user_token=id_token, name="openclaw-agent")
    ... )
"""

from __future__ import annotations

import random
from typing import TypeVar

import httpx
import trio

from agent_identity.volcengine.endpoint import signing_region_for
from agent_identity.volcengine.models import (
    CheckPermissionRequest,
    CompleteResourceTokenAuthRequest,
    CreateUserCredentialRequest,
    CreateUserCredentialResult,
    CreateUserPoolClientRequest,
    CreateUserPoolRequest,
    CreateWorkloadIdentityRequest,
    CredentialProviderPage,
    EmptyResult,
    GetResourceApiKeyRequest,
    GetResourceOauth2TokenRequest,
    GetRoleCredentialsRequest,
    GetUserCredentialRequest,
    GetUserPoolClientRequest,
    GetUserPoolRequest,
    GetWorkloadAccessTokenForJWTRequest,
    GetWorkloadIdentityRequest,
    IdentityProviderPage,
    ListCredentialProvidersRequest,
    ListIdentityProvidersRequest,
    ListRoleCredentialProvidersRequest,
    ListUserPoolClientsRequest,
    ListUserPoolsRequest,
    Oauth2CallbackRequest,
    Oauth2CallbackResult,
    PermissionDecision,
    ResourceApiKey,
    ResourceOauth2Token,
    RoleCredentialProviderPage,
    RoleCredentialsResult,
    UpdateUserPoolClientRequest,
    UserCredential,
    UserPool,
    UserPoolClient,
    UserPoolClientPage,
    UserPoolPage,
    WireModel,
    WorkloadAccessToken,
    WorkloadIdentity,
)
from agent_identity.volcengine.retry import DEFAULT_RETRY_POLICY, RetryPolicy
from agent_identity.volcengine.transport import (
    Clock,
    CredentialsSource,
    SignedTransport,
    Sleep,
    TransportStatistics,
    utc_now,
)

__all__ = ["ID_SERVICE", "ID_VERSION", "IdentityClient"]

R = TypeVar("R")

ID_SERVICE = "id"
ID_VERSION = "2025-10-30"


class IdentityClient:
    """The Identity control-plane client.

    Args:
        http: The shared HTTP client.
        endpoint: The resolved Identity endpoint (see :func:`resolve_endpoint`).
        credentials: Returns signing credentials per attempt (e.g. ``CredentialChain.get``).
        region: The signing region; inferred from the endpoint's host when None.
        retry: The retry policy.
        rng: The jitter source.
        now: The wall clock used for signing.
        sleep: Waits between attempts.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        endpoint: str,
        credentials: CredentialsSource,
        region: str | None = None,
        retry: RetryPolicy = DEFAULT_RETRY_POLICY,
        rng: random.Random | None = None,
        now: Clock = utc_now,
        sleep: Sleep = trio.sleep,
    ) -> None:
        self.transport = SignedTransport(
            http,
            endpoint=endpoint,
            service=ID_SERVICE,
            version=ID_VERSION,
            region=region or signing_region_for(endpoint),
            credentials=credentials,
            retry=retry,
            rng=rng,
            now=now,
            sleep=sleep,
        )

    def statistics(self) -> TransportStatistics:
        """Call, retry and error counters."""
        return self.transport.statistics()

    # -- workloads and TIPs --------------------------------------------------------------

    async def get_workload_access_token_for_jwt(
        self, request: GetWorkloadAccessTokenForJWTRequest
    ) -> WorkloadAccessToken:
        """Mint a TIP for a user token (404 when the workload does not exist)."""
        return await self._call("GetWorkloadAccessTokenForJWT", request, WorkloadAccessToken)

    async def create_workload_identity(
        self, request: CreateWorkloadIdentityRequest
    ) -> WorkloadIdentity:
        """Create a workload identity (409-style conflict when it exists)."""
        return await self._call("CreateWorkloadIdentity", request, WorkloadIdentity)

    async def get_workload_identity(self, request: GetWorkloadIdentityRequest) -> WorkloadIdentity:
        """Read a workload identity."""
        return await self._call("GetWorkloadIdentity", request, WorkloadIdentity)

    # -- outbound credentials ------------------------------------------------------------

    async def list_credential_providers(
        self, request: ListCredentialProvidersRequest
    ) -> CredentialProviderPage:
        """List OAuth2 and API-key credential providers."""
        return await self._call("ListCredentialProviders", request, CredentialProviderPage)

    async def list_role_credential_providers(
        self, request: ListRoleCredentialProvidersRequest
    ) -> RoleCredentialProviderPage:
        """List role credential providers."""
        return await self._call("ListRoleCredentialProviders", request, RoleCredentialProviderPage)

    async def get_role_credentials(
        self, request: GetRoleCredentialsRequest
    ) -> RoleCredentialsResult:
        """Exchange a TIP for STS keys of a role provider's role."""
        return await self._call("GetRoleCredentials", request, RoleCredentialsResult)

    async def get_resource_oauth2_token(
        self, request: GetResourceOauth2TokenRequest
    ) -> ResourceOauth2Token:
        """Get an OAuth2 access token, or the URL where the user must consent first."""
        return await self._call("GetResourceOauth2Token", request, ResourceOauth2Token)

    async def oauth2_callback(self, request: Oauth2CallbackRequest) -> Oauth2CallbackResult:
        """Complete a 3LO authorization with the code the app received."""
        return await self._call("Oauth2Callback", request, Oauth2CallbackResult)

    async def complete_resource_token_auth(
        self, request: CompleteResourceTokenAuthRequest
    ) -> EmptyResult:
        """Bind a consented 3LO session to the logged-in user."""
        return await self._call("CompleteResourceTokenAuth", request, EmptyResult)

    async def get_resource_api_key(self, request: GetResourceApiKeyRequest) -> ResourceApiKey:
        """Get a provider's API key and where to put it."""
        return await self._call("GetResourceApiKey", request, ResourceApiKey)

    async def create_user_credential(
        self, request: CreateUserCredentialRequest
    ) -> CreateUserCredentialResult:
        """Store an opaque secret for the TIP's user."""
        return await self._call("CreateUserCredential", request, CreateUserCredentialResult)

    async def get_user_credential(self, request: GetUserCredentialRequest) -> UserCredential:
        """Read a stored secret of the TIP's user."""
        return await self._call("GetUserCredential", request, UserCredential)

    # -- authorization -------------------------------------------------------------------

    async def check_permission(self, request: CheckPermissionRequest) -> PermissionDecision:
        """Ask the policy engine for a decision."""
        return await self._call("CheckPermission", request, PermissionDecision)

    # -- user pools ------------------------------------------------------------------------

    async def list_identity_providers(
        self, request: ListIdentityProvidersRequest
    ) -> IdentityProviderPage:
        """List a user pool's identity providers."""
        return await self._call("ListIdentityProviders", request, IdentityProviderPage)

    async def list_user_pools(self, request: ListUserPoolsRequest) -> UserPoolPage:
        """List user pools."""
        return await self._call("ListUserPools", request, UserPoolPage)

    async def create_user_pool(self, request: CreateUserPoolRequest) -> UserPool:
        """Create a user pool."""
        return await self._call("CreateUserPool", request, UserPool)

    async def get_user_pool(self, request: GetUserPoolRequest) -> UserPool:
        """Read a user pool."""
        return await self._call("GetUserPool", request, UserPool)

    async def list_user_pool_clients(
        self, request: ListUserPoolClientsRequest
    ) -> UserPoolClientPage:
        """List a user pool's clients (without secrets)."""
        return await self._call("ListUserPoolClients", request, UserPoolClientPage)

    async def get_user_pool_client(self, request: GetUserPoolClientRequest) -> UserPoolClient:
        """Read a user pool client, its secret included."""
        return await self._call("GetUserPoolClient", request, UserPoolClient)

    async def create_user_pool_client(self, request: CreateUserPoolClientRequest) -> UserPoolClient:
        """Create a user pool client; the result carries its secret."""
        return await self._call("CreateUserPoolClient", request, UserPoolClient)

    async def update_user_pool_client(self, request: UpdateUserPoolClientRequest) -> UserPoolClient:
        """Update a user pool client (given fields replace the stored ones)."""
        return await self._call("UpdateUserPoolClient", request, UserPoolClient)

    async def _call(self, action: str, request: WireModel, result_type: type[R]) -> R:
        return await self.transport.call_json(action, request, result_type)
