"""The vault's fetches: API keys, OAuth2 tokens (M2M and 3LO), and the 3LO flows' ends.

``fetch`` infers the flow from the provider's control-plane entry (unless one is forced),
then calls ``GetResourceApiKey`` or ``GetResourceOauth2Token``. A token or key is stored at
once; a 3LO answer (an ``AuthorizationUrl``) starts a background flow that polls until the
token arrives, the user denies, or the flow times out, unless
``complete_oauth2_callback`` (``Oauth2Callback``) ends it first.

Every method here runs in a background task of the vault's nursery (never in the mailbox
loop) and reads or changes :class:`~agent_identity.actors.vault_state.VaultState` only
synchronously between awaits. Control-plane errors become values (their text is safe: the
clients' errors never hold secrets); nothing secret is logged.
"""

from __future__ import annotations

import logging

import trio

from agent_identity.actors.vault_flows import (
    PollPolicy,
    PollVerdict,
    authorization_state,
    infer_flow,
    judge_poll,
    oauth2_request,
    parse_flow,
    parse_scopes,
    service_message,
)
from agent_identity.actors.vault_listings import lookup_provider
from agent_identity.actors.vault_messages import CompleteCallback, Fetch
from agent_identity.actors.vault_state import FlowEnd, PendingFlow, VaultState
from agent_identity.actors.vault_types import (
    LOGGED_OUT,
    NOT_LOGGED_IN,
    Credential,
    CredentialKind,
    FetchFailure,
    FetchFlow,
    FetchResult,
    FetchStatus,
)
from agent_identity.volcengine.errors import VolcengineError, is_not_found
from agent_identity.volcengine.identity import IdentityClient
from agent_identity.volcengine.models import (
    GetResourceApiKeyRequest,
    GetResourceOauth2TokenRequest,
    Oauth2CallbackRequest,
    ResourceOauth2Token,
)

__all__ = ["VaultFetcher"]

# The vault's own logger: these calls are the vault's work, wherever the code lives.
logger = logging.getLogger("agent_identity.actors.credential_vault")

_USER = FetchFlow.OAUTH2_USER


class VaultFetcher:
    """Obtains credentials for the vault: ``fetch`` and the 3LO flows it starts.

    Args:
        identity: The Identity client.
        pool_name: The workload pool of every call.
        poll: How background 3LO flows poll.
    """

    def __init__(self, identity: IdentityClient, *, pool_name: str, poll: PollPolicy) -> None:
        self.identity = identity
        self.pool = pool_name
        self.poll = poll

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
                found = await lookup_provider(self.identity, self.pool, provider)
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
