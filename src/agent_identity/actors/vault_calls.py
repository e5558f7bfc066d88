"""The vault's control-plane work: fetch, 3LO flows and callbacks, listings, role keys.

Every method here runs in a background task of the vault's nursery (never in the mailbox
loop) and reads or changes :class:`~agent_identity.actors.vault_state.VaultState` only
synchronously between awaits. Control-plane errors become values (their text is safe: the
clients' errors never hold secrets); nothing secret is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from agent_identity.actors.vault_flows import (
    PollPolicy,
    PollVerdict,
    authorization_state,
    expiry_from_timestamp,
    infer_flow,
    judge_poll,
    listing_filter,
    oauth2_request,
    parse_flow,
    parse_scopes,
    role_info,
    role_view,
    service_message,
)
from agent_identity.actors.vault_leases import role_env_names
from agent_identity.actors.vault_messages import (
    CompleteCallback,
    Fetch,
    GetRole,
    ListCredentials,
    ListRoles,
)
from agent_identity.actors.vault_state import FlowEnd, PendingFlow, VaultState
from agent_identity.actors.vault_types import (
    Credential,
    CredentialKind,
    CredentialListing,
    FetchFailure,
    FetchFlow,
    FetchResult,
    FetchStatus,
    ProviderStatus,
    RoleCredentialsView,
    RoleListing,
)
from agent_identity.volcengine.errors import VolcengineError, is_not_found
from agent_identity.volcengine.identity import IdentityClient
from agent_identity.volcengine.models import (
    CredentialProvider,
    CredentialProviderFilter,
    GetResourceApiKeyRequest,
    GetResourceOauth2TokenRequest,
    GetRoleCredentialsRequest,
    ListCredentialProvidersRequest,
    ListRoleCredentialProvidersRequest,
    Oauth2CallbackRequest,
    ResourceOauth2Token,
    RoleCredentialProvider,
    RoleCredentialProviderFilter,
)

__all__ = ["LOGGED_OUT", "NOT_LOGGED_IN", "VaultCalls"]

logger = logging.getLogger("agent_identity.actors.credential_vault")

#: What a request of a session that is not logged in (no TIP) is told.
NOT_LOGGED_IN = "Log in first with /identity login."
#: What a request whose session logged out while it ran is told.
LOGGED_OUT = "The session logged out meanwhile; nothing was stored."
_LOOKUP_PAGE_SIZE = 100
_MAX_LOOKUP_PAGES = 10
_MAX_STORED_ONLY_LOOKUPS = 20
_MAX_PAGE = 10_000
_USER = FetchFlow.OAUTH2_USER


class VaultCalls:
    """The control-plane operations of the vault.

    Args:
        identity: The Identity client.
        pool_name: The workload pool of every call.
        user_pool_name: When set, role listings keep only this user pool's providers.
        poll: How background 3LO flows poll.
        page_size: Providers per page of ``list_credentials``.
        wall: Wall-clock seconds (to convert the service's timestamps).
    """

    def __init__(
        self,
        identity: IdentityClient,
        *,
        pool_name: str,
        user_pool_name: str | None,
        poll: PollPolicy,
        page_size: int,
        wall: Callable[[], float],
    ) -> None:
        self.identity = identity
        self.pool = pool_name
        self.user_pool = user_pool_name
        self.poll = poll
        self.page_size = page_size
        self.wall = wall

    # -- fetch ---------------------------------------------------------------------------

    async def fetch(self, state: VaultState, msg: Fetch, started: int) -> FetchResult:
        """Serve ``fetch``: infer the flow, call the service, store or start a 3LO flow."""
        await trio.lowlevel.checkpoint()
        provider = msg.provider.strip()
        if not provider:
            return _failed(provider, FetchFailure.INVALID_REQUEST, "Name a credential provider.")
        if not msg.tip:
            return _failed(provider, FetchFailure.NOT_LOGGED_IN, NOT_LOGGED_IN)
        try:
            flow = parse_flow(msg.flow)
        except ValueError as exc:
            return _failed(provider, FetchFailure.INVALID_FLOW, str(exc))
        try:
            if flow is None:
                found = await self.lookup_provider(provider)
                flow = infer_flow(found) if found is not None else None
                if flow is None:
                    return _failed(
                        provider,
                        FetchFailure.UNKNOWN_PROVIDER,
                        f"There is no OAuth2 or API key provider named {provider!r} "
                        f"in pool {self.pool!r}.",
                    )
            if flow is FetchFlow.APIKEY:
                return await self._fetch_api_key(state, msg, provider, started)
            return await self._fetch_oauth2(state, msg, provider, flow, started)
        except VolcengineError as exc:
            logger.info("fetching %s for %s failed: %s", provider, msg.session_key, exc.code)
            failure = FetchFailure.SERVICE_ERROR
            if is_not_found(exc):
                failure = FetchFailure.UNKNOWN_PROVIDER
            return _failed(provider, failure, service_message("Fetching the credential", exc), flow)

    async def lookup_provider(self, provider: str) -> CredentialProvider | None:
        """The control plane's entry of ``provider`` (exact name), if it exists."""
        await trio.lowlevel.checkpoint()
        for number in range(1, _MAX_LOOKUP_PAGES + 1):
            page = await self.identity.list_credential_providers(
                ListCredentialProvidersRequest(
                    page_number=number,
                    page_size=_LOOKUP_PAGE_SIZE,
                    pool_name=self.pool,
                    sort_field="Name",
                    filter=CredentialProviderFilter(name=provider),
                )
            )
            for entry in page.credential_providers:
                if entry.name == provider:
                    return entry
            if not page.credential_providers or number * _LOOKUP_PAGE_SIZE >= page.total_count:
                break
        return None

    async def _fetch_api_key(
        self, state: VaultState, msg: Fetch, provider: str, started: int
    ) -> FetchResult:
        result = await self.identity.get_resource_api_key(
            GetResourceApiKeyRequest(
                provider_name=provider, identity_token=msg.tip, pool_name=self.pool
            )
        )
        if not result.api_key:
            text = "The service returned no API key."
            return _failed(provider, FetchFailure.NO_TOKEN, text, FetchFlow.APIKEY)
        credential = Credential(
            provider,
            CredentialKind.API_KEY,
            FetchFlow.APIKEY.value,
            result.api_key,
            obtained_at=trio.current_time(),
        )
        return _stored(state, msg, credential, FetchFlow.APIKEY, started)

    async def _fetch_oauth2(
        self, state: VaultState, msg: Fetch, provider: str, flow: FetchFlow, started: int
    ) -> FetchResult:
        request = oauth2_request(
            provider,
            msg.tip,
            flow,
            pool_name=self.pool,
            redirect_url=msg.redirect_url,
            scopes=parse_scopes(msg.scopes),
        )
        answer = await self.identity.get_resource_oauth2_token(request)
        if answer.access_token:
            credential = oauth2_credential(provider, flow, answer)
            return _stored(state, msg, credential, flow, started)
        if flow is not _USER or not answer.authorization_url:
            text = "The service returned neither a token nor an authorization URL."
            return _failed(provider, FetchFailure.NO_TOKEN, text, flow)
        if state.cleared_since(msg.session_key, started):
            return _failed(provider, FetchFailure.LOGGED_OUT, LOGGED_OUT, flow)
        self._start_flow(state, msg, provider, request, answer)
        return FetchResult(
            FetchStatus.AUTHORIZE,
            provider,
            f"Open the link to authorize {provider}. The credential is added once you approve.",
            flow=flow,
            auth_url=answer.authorization_url,
        )

    # -- background 3LO flows ------------------------------------------------------------

    def _start_flow(
        self,
        state: VaultState,
        msg: Fetch,
        provider: str,
        request: GetResourceOauth2TokenRequest,
        first: ResourceOauth2Token,
    ) -> None:
        flow = PendingFlow(
            session_key=msg.session_key,
            provider=provider,
            request=request,
            first=first,
            state=authorization_state(first.authorization_url or ""),
            deadline=trio.current_time() + self.poll.timeout,
            context=dict(msg.context),
        )
        state.add_flow(flow)
        state.spawn(lambda: self.run_flow(state, flow))
        logger.info("started a 3LO flow for %s of %s", provider, msg.session_key)

    async def run_flow(self, state: VaultState, flow: PendingFlow) -> None:
        """Poll until the flow ends, then end it (store and publish)."""
        with flow.scope:  # cancelled by a logout, a newer fetch or a completed callback
            with trio.move_on_at(flow.deadline):
                state.end_flow(flow, await self._poll(state, flow))
                return
            minutes = self.poll.timeout / 60
            state.end_flow(
                flow,
                FlowEnd(
                    failure=FetchFailure.TIMEOUT,
                    message=f"The authorization for {flow.provider} was not completed within "
                    f"{minutes:g} minutes. Run /identity fetch {flow.provider} again.",
                ),
            )

    async def _poll(self, state: VaultState, flow: PendingFlow) -> FlowEnd:
        delays = self.poll.delays()
        while True:
            await trio.sleep(next(delays))
            state.counters.polls += 1
            try:
                answer = await self.identity.get_resource_oauth2_token(flow.request)
            except VolcengineError as exc:
                if exc.retryable:
                    logger.info("polling %s failed (%s); trying again", flow.provider, exc.code)
                    continue
                return FlowEnd(
                    failure=FetchFailure.SERVICE_ERROR,
                    message=service_message("Completing the authorization", exc),
                )
            verdict = judge_poll(flow.first, answer)
            if verdict is PollVerdict.TOKEN:
                return FlowEnd(oauth2_credential(flow.provider, _USER, answer))
            if verdict is PollVerdict.ABANDONED:
                return FlowEnd(
                    failure=FetchFailure.DENIED,
                    message=f"The authorization for {flow.provider} was denied or has ended. "
                    f"Run /identity fetch {flow.provider} to try again.",
                )

    async def complete_callback(
        self, state: VaultState, msg: CompleteCallback, started: int
    ) -> FetchResult:
        """Serve ``complete_oauth2_callback``: ``Oauth2Callback``, then end the flow."""
        await trio.lowlevel.checkpoint()
        flow = state.flow_for_state(msg.session_key, msg.state)
        if flow is None:
            return _failed(
                "",
                FetchFailure.UNKNOWN_STATE,
                "No authorization of this session is waiting for that callback "
                "(it may have completed or expired).",
            )
        provider = flow.provider
        if not msg.tip:
            return _failed(provider, FetchFailure.NOT_LOGGED_IN, NOT_LOGGED_IN, _USER)
        if not msg.code and not msg.error:
            text = "The callback has no code."
            return _failed(provider, FetchFailure.INVALID_REQUEST, text, _USER)
        try:
            result = await self.identity.oauth2_callback(
                Oauth2CallbackRequest(
                    state=msg.state, identity_token=msg.tip, code=msg.code, error=msg.error
                )
            )
        except VolcengineError as exc:
            denied = bool(msg.error) or "Denied" in exc.code
            failure = FetchFailure.DENIED if denied else FetchFailure.SERVICE_ERROR
            text = (
                f"The authorization for {provider} was denied."
                if denied
                else service_message("Completing the authorization", exc)
            )
            state.end_flow(flow, FlowEnd(failure=failure, message=text))
            return _failed(provider, failure, text, _USER)
        if not result.access_token:
            text = "The service returned no access token."
            state.end_flow(flow, FlowEnd(failure=FetchFailure.NO_TOKEN, message=text))
            return _failed(provider, FetchFailure.NO_TOKEN, text, _USER)
        if state.cleared_since(msg.session_key, started):
            return _failed(provider, FetchFailure.LOGGED_OUT, LOGGED_OUT, _USER)
        credential = Credential(
            provider,
            CredentialKind.OAUTH2,
            _USER.value,
            result.access_token,
            obtained_at=trio.current_time(),
        )
        # If the poll got there first, the credential is already stored: same outcome.
        state.end_flow(flow, FlowEnd(credential))
        return FetchResult(
            FetchStatus.STORED,
            provider,
            f"Access token for {provider} stored.",
            flow=_USER,
            value=result.access_token if msg.return_value else None,
        )

    # -- listings ------------------------------------------------------------------------

    async def list_credentials(self, state: VaultState, msg: ListCredentials) -> CredentialListing:
        """Serve ``list_credentials``: one page of providers with the session's status."""
        await trio.lowlevel.checkpoint()
        if not msg.tip:
            return CredentialListing(page=msg.page, ok=False, message=NOT_LOGGED_IN)
        if not 1 <= msg.page <= _MAX_PAGE:
            text = "Pages are numbered from 1 (list, list 2, ...)."
            return CredentialListing(page=msg.page, ok=False, message=text)
        try:
            filters = listing_filter(msg.name, msg.flow, msg.kind)
        except ValueError as exc:
            return CredentialListing(page=msg.page, ok=False, message=str(exc))
        try:
            page = await self.identity.list_credential_providers(
                ListCredentialProvidersRequest(
                    page_number=msg.page,
                    page_size=self.page_size,
                    pool_name=self.pool,
                    sort_field="Name",
                    filter=filters,
                )
            )
            bindings = await state.bindings_of(msg.session_key)
            now = trio.current_time()
            providers = [
                state.status(
                    entry.name, entry.type, infer_flow(entry), bindings, msg.session_key, now
                )
                for entry in page.credential_providers
            ]
            has_more = msg.page * self.page_size < page.total_count
            stored_only: list[ProviderStatus] = []
            if msg.page == 1 and (
                filters is None or (filters.type is None and filters.flow is None)
            ):
                listed = {status.name for status in providers}
                complete = filters is None and not has_more
                stored_only = await self._stored_only(state, msg, listed, complete=complete)
        except VolcengineError as exc:
            text = service_message("Listing providers", exc)
            return CredentialListing(page=msg.page, ok=False, message=text)
        return CredentialListing(
            providers=providers,
            stored_only=stored_only,
            page=msg.page,
            has_more=has_more,
            total=page.total_count,
        )

    async def _stored_only(
        self, state: VaultState, msg: ListCredentials, listed: set[str], *, complete: bool
    ) -> list[ProviderStatus]:
        """The session's credentials and bindings for providers the control plane lacks.

        With ``complete`` (page 1 holds every provider) anything not listed qualifies;
        otherwise each candidate is looked up by name (role credentials never are).
        """
        credentials = state.credentials_of(msg.session_key)
        bindings = await state.bindings_of(msg.session_key)
        needle = (msg.name or "").strip().lower()
        candidates = sorted(
            name
            for name in set(credentials) | set(bindings)
            if name not in listed and needle in name.lower()
        )
        now = trio.current_time()
        found: list[ProviderStatus] = []
        for number, name in enumerate(candidates):
            credential = credentials.get(name)
            is_role = credential is not None and credential.kind is CredentialKind.ROLE
            if not (is_role or complete):
                if number >= _MAX_STORED_ONLY_LOOKUPS:
                    continue
                if await self.lookup_provider(name) is not None:
                    continue
            found.append(state.stored_status(name, bindings, msg.session_key, now))
        return found

    async def list_roles(self, msg: ListRoles) -> RoleListing:
        """Serve ``list_roles``: role providers whose name starts with the prefix."""
        await trio.lowlevel.checkpoint()
        if not msg.tip:
            return RoleListing(ok=False, message=NOT_LOGGED_IN)
        prefix = (msg.prefix or "").strip()
        found: list[RoleCredentialProvider] = []
        try:
            for number in range(1, _MAX_LOOKUP_PAGES + 1):
                page = await self.identity.list_role_credential_providers(
                    ListRoleCredentialProvidersRequest(
                        page_number=number,
                        page_size=_LOOKUP_PAGE_SIZE,
                        sort_field="Name",
                        filter=RoleCredentialProviderFilter(
                            name=prefix or None, pool_name=self.pool
                        ),
                    )
                )
                found.extend(page.role_credential_providers)
                last = number * _LOOKUP_PAGE_SIZE >= page.total_count
                if last or not page.role_credential_providers:
                    break
        except VolcengineError as exc:
            return RoleListing(ok=False, message=service_message("Listing role providers", exc))
        roles = [role_info(entry) for entry in found]
        roles = [role for role in roles if role.name.lower().startswith(prefix.lower())]
        if self.user_pool:
            roles = [role for role in roles if role.user_pool_name in {"", self.user_pool}]
        return RoleListing(roles=roles)

    # -- role credentials ----------------------------------------------------------------

    async def get_role(self, state: VaultState, msg: GetRole, started: int) -> RoleCredentialsView:
        """Serve ``get_role``: STS keys with the TIP, stored for the session."""
        await trio.lowlevel.checkpoint()
        provider = msg.provider.strip()
        if not provider:
            return RoleCredentialsView(provider, ok=False, message="Name a role provider.")
        if not msg.tip:
            return RoleCredentialsView(provider, ok=False, message=NOT_LOGGED_IN)
        bindings = await state.bindings_of(msg.session_key)
        try:
            result = await self.identity.get_role_credentials(
                GetRoleCredentialsRequest(
                    provider_name=provider,
                    identity_token=msg.tip,
                    pool_name=self.pool,
                    with_oidc=True if msg.use_tip else None,
                )
            )
        except VolcengineError as exc:
            logger.info("role keys of %s for %s failed: %s", provider, msg.session_key, exc.code)
            text = service_message("Getting role credentials", exc)
            if is_not_found(exc):
                text = f"There is no role credential provider named {provider!r}."
            return RoleCredentialsView(provider, ok=False, message=text)
        response = result.volc_eng_response
        keys = response.credentials if response is not None else None
        if response is None or keys is None or not keys.access_key_id:
            text = "The service returned no role credentials."
            return RoleCredentialsView(provider, ok=False, message=text)
        now = trio.current_time()
        credential = Credential(
            provider,
            CredentialKind.ROLE,
            "role",
            keys.access_key_id,
            expires_at=expiry_from_timestamp(keys.expiration, trio_now=now, wall_now=self.wall()),
            obtained_at=now,
            secret_access_key=keys.secret_access_key or None,
            session_token=keys.session_token or None,
        )
        if not state.store(msg.session_key, credential, started):
            return RoleCredentialsView(provider, ok=False, message=LOGGED_OUT)
        bound = bindings.get(provider)
        user = response.assumed_role_user
        oidc = response.oidc_token_info
        return role_view(
            provider,
            keys,
            show_secrets=msg.show_secrets,
            role_trn=user.trn if user is not None else "",
            oidc_subject=oidc.subject if oidc is not None else "",
            env_vars=role_env_names(bound) if bound else (),
        )


def oauth2_credential(provider: str, flow: FetchFlow, answer: ResourceOauth2Token) -> Credential:
    """The credential of an ``AccessToken`` answer (expiry from ``ExpiresIn``)."""
    now = trio.current_time()
    expires_in = answer.expires_in
    return Credential(
        provider,
        CredentialKind.OAUTH2,
        flow.value,
        answer.access_token or "",
        expires_at=now + expires_in if expires_in else None,
        obtained_at=now,
    )


def _failed(
    provider: str, failure: FetchFailure, message: str, flow: FetchFlow | None = None
) -> FetchResult:
    return FetchResult(FetchStatus.FAILED, provider, message, flow=flow, failure=failure)


def _stored(
    state: VaultState, msg: Fetch, credential: Credential, flow: FetchFlow, started: int
) -> FetchResult:
    if not state.store(msg.session_key, credential, started):
        return _failed(credential.provider, FetchFailure.LOGGED_OUT, LOGGED_OUT, flow)
    what = "API key" if credential.kind is CredentialKind.API_KEY else "Access token"
    return FetchResult(
        FetchStatus.STORED,
        credential.provider,
        f"{what} for {credential.provider} stored.",
        flow=flow,
        value=credential.value if msg.return_value else None,
        expires_in=credential.expires_in(trio.current_time()),
    )
