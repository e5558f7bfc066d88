"""``OidcClient``: the relying party of one OIDC client at one provider.

It builds authorization URLs (code flow, PKCE S256, state, nonce), redeems codes and refresh
tokens at the token endpoint, and validates ID tokens against the provider's JWKS. Discovery
and keys are fetched lazily and cached, so constructing a client does no I/O.

Two UserPool-specific authorization parameters, whose exact semantics are not documented
(section 9 of the API notes), are sent as follows:

- ``identity_provider``: the configured ``identityProvider``; else the name of the first
  enabled entry of ``ListIdentityProviders`` for the pool, looked up once and cached. That
  needs the pool uid (known in dynamic mode; in explicit mode read from a service or sandbox
  issuer URL, see :func:`user_pool_uid_from_url`) and an Identity client. When either is
  missing the parameter is omitted and the provider shows its default login. A failed lookup
  is logged and retried at the next login instead of failing this one.
- The relay (``useRelayCallback``): the provider, not the gateway, is the ``redirect_uri``:
  we send ``redirect_uri=<relay endpoint>`` and ``redirect_relay_uri=<callbackUrl>``. The relay
  endpoint is the discovery document's ``redirect_relay_endpoint``, else ``<issuer>/relay``.
  After login the provider's relay forwards ``code``, ``state`` and ``iss`` to the callback;
  the code is then redeemed with ``redirect_uri=<relay endpoint>``, the URI it was issued to.
  The callback URL must still be an allowed callback of the client. The sandbox implements
  exactly this; a real deployment may differ and is easy to adapt here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
import trio

from agent_identity.oidc.discovery import DiscoveryCache, ProviderMetadata
from agent_identity.oidc.errors import OidcError
from agent_identity.oidc.id_token import DEFAULT_LEEWAY, IdTokenClaims, IdTokenValidator
from agent_identity.oidc.jwks import JwksCache, JwksStatistics, http_jwks_fetcher
from agent_identity.oidc.login import LoginSecrets
from agent_identity.oidc.tokens import (
    RefreshNotValidatedError,
    TokenResponse,
    TokenSet,
    request_tokens,
)
from agent_identity.oidc.userpool import user_pool_uid_from_url
from agent_identity.volcengine import IdentityClient, VolcengineError
from agent_identity.volcengine.models import ListIdentityProvidersRequest

__all__ = ["DEFAULT_SCOPE", "OidcClient", "OidcSettings"]

logger = logging.getLogger(__name__)

DEFAULT_SCOPE = "openid profile email"
_RESERVED_PARAMS = frozenset(
    {
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "nonce",
        "code_challenge",
        "code_challenge_method",
        "identity_provider",
        "redirect_relay_uri",
    }
)
_IDP_PAGE_SIZE = 20


@dataclass(frozen=True, slots=True)
class OidcSettings:
    """Everything an :class:`OidcClient` needs, already resolved (see ``open_oidc_client``).

    Attributes:
        discovery_url: The issuer or its discovery document URL.
        client_id: The OIDC client id.
        redirect_uri: The gateway's callback URL (``callbackUrl``).
        client_secret: The client secret; None for a public client (PKCE only).
        scope: Space-separated scopes; ``openid`` is added when missing.
        identity_provider: Fixed ``identity_provider`` parameter; None to look it up.
        use_relay_callback: Use the provider's relay (see the module docstring).
        user_pool_uid: The pool uid, for the identity-provider lookup; None to derive it
            from the discovery URL when possible.
        extra_authorize_params: More authorization parameters (e.g. ``prompt``); they may
            not replace the ones this client sets.
    """

    discovery_url: str
    client_id: str
    redirect_uri: str
    client_secret: str | None = field(default=None, repr=False)
    scope: str = DEFAULT_SCOPE
    identity_provider: str | None = None
    use_relay_callback: bool = False
    user_pool_uid: str | None = None
    extra_authorize_params: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        clash = sorted({name for name, _ in self.extra_authorize_params} & _RESERVED_PARAMS)
        if clash:
            raise ValueError(f"extra_authorize_params may not set {', '.join(clash)}")

    @property
    def scopes(self) -> str:
        """The scope actually requested: the configured one, with ``openid`` first if absent."""
        parts = self.scope.split()
        return " ".join(parts if "openid" in parts else ["openid", *parts])


class OidcClient:
    """The relying party for one client at one provider.

    Args:
        settings: The resolved settings.
        http: The shared HTTP client (its timeouts apply to every call).
        identity_client: For the ``identity_provider`` lookup; optional.
        discovery: A shared discovery cache; by default one of its own.
        leeway: Clock skew tolerated on ID-token times, in seconds.
        jwks_min_refetch_interval: Minimum seconds between JWKS refetches for unknown kids.
        clock: Monotonic seconds (Trio's clock) for the caches.
        now: Wall-clock seconds for ID-token ``exp``/``iat``.
    """

    def __init__(
        self,
        settings: OidcSettings,
        http: httpx.AsyncClient,
        *,
        identity_client: IdentityClient | None = None,
        discovery: DiscoveryCache | None = None,
        leeway: float = DEFAULT_LEEWAY,
        jwks_min_refetch_interval: float = 30.0,
        clock: Callable[[], float] = trio.current_time,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._http = http
        self._identity = identity_client
        self._discovery = discovery or DiscoveryCache(http, clock=clock)
        self._leeway = leeway
        self._jwks_interval = jwks_min_refetch_interval
        self._clock = clock
        self._now = now
        self._validator: IdTokenValidator | None = None
        self._jwks_uri: str | None = None
        self._idp: str | None = None
        self._idp_resolved = False
        self._idp_lock = trio.Lock()

    def __repr__(self) -> str:
        return f"OidcClient({self.settings!r})"

    async def metadata(self) -> ProviderMetadata:
        """The provider's metadata (cached).

        Raises:
            OidcError: ``discovery_failed`` or ``discovery_invalid``.
        """
        return await self._discovery.get(self.settings.discovery_url)

    def jwks_statistics(self) -> JwksStatistics | None:
        """The JWKS cache's counters, or None before the first validation."""
        return self._validator.keys.statistics() if self._validator is not None else None

    def redirect_uri_for(self, metadata: ProviderMetadata) -> str:
        """The ``redirect_uri`` sent to the provider: the callback, or the relay endpoint."""
        if not self.settings.use_relay_callback:
            return self.settings.redirect_uri
        return metadata.redirect_relay_endpoint or f"{metadata.issuer}/relay"

    async def identity_provider(self) -> str | None:
        """The ``identity_provider`` parameter to send, or None to omit it."""
        if self.settings.identity_provider:
            await trio.lowlevel.checkpoint()
            return self.settings.identity_provider
        async with self._idp_lock:
            if not self._idp_resolved:
                uid = self.settings.user_pool_uid or user_pool_uid_from_url(
                    self.settings.discovery_url
                )
                if uid is None or self._identity is None:
                    self._idp_resolved = True
                else:
                    await self._lookup_identity_provider(self._identity, uid)
            return self._idp

    async def _lookup_identity_provider(self, identity: IdentityClient, uid: str) -> None:
        request = ListIdentityProvidersRequest(
            user_pool_uid=uid, page_number=1, page_size=_IDP_PAGE_SIZE
        )
        try:
            page = await identity.list_identity_providers(request)
        except VolcengineError as exc:
            # Not cached: the next login tries again; this one goes without the parameter.
            logger.warning("identity providers of user pool %s unavailable: %s", uid, exc)
            await trio.lowlevel.checkpoint()
            return
        first = next((idp for idp in page.data if idp.enabled is not False and idp.name), None)
        self._idp = first.name if first is not None else None
        self._idp_resolved = True

    async def authorization_url(self, secrets: LoginSecrets) -> str:
        """The URL to send the user to, for this login's secrets.

        Raises:
            OidcError: Discovery failed.
        """
        metadata = await self.metadata()
        params = [
            ("response_type", "code"),
            ("client_id", self.settings.client_id),
            ("redirect_uri", self.redirect_uri_for(metadata)),
            ("scope", self.settings.scopes),
            ("state", secrets.state),
            ("nonce", secrets.nonce),
            ("code_challenge", secrets.code_challenge),
            ("code_challenge_method", "S256"),
        ]
        idp = await self.identity_provider()
        if idp is not None:
            params.append(("identity_provider", idp))
        if self.settings.use_relay_callback:
            params.append(("redirect_relay_uri", self.settings.redirect_uri))
        params.extend(self.settings.extra_authorize_params)
        parts = urlsplit(metadata.authorization_endpoint)
        query = f"{parts.query}&{urlencode(params)}" if parts.query else urlencode(params)
        return urlunsplit(parts._replace(query=query))

    async def _id_token_validator(self) -> IdTokenValidator:
        metadata = await self.metadata()
        validator = self._validator
        if (
            validator is None
            or validator.issuer != metadata.issuer
            or (self._jwks_uri != metadata.jwks_uri)
        ):
            keys = JwksCache(
                http_jwks_fetcher(self._http, metadata.jwks_uri),
                min_refetch_interval=self._jwks_interval,
                clock=self._clock,
            )
            validator = IdTokenValidator(
                issuer=metadata.issuer,
                client_id=self.settings.client_id,
                keys=keys,
                leeway=self._leeway,
                now=self._now,
            )
            self._validator, self._jwks_uri = validator, metadata.jwks_uri
        return validator

    async def validate_id_token(self, token: str, *, nonce: str | None = None) -> IdTokenClaims:
        """Validate an ID token of this provider for this client.

        Args:
            token: The compact JWT.
            nonce: The login's nonce; None skips the nonce check (refresh, session restore).

        Raises:
            OidcError: One of the ``id_token_*`` reasons, ``jwks_failed`` or a discovery one.
        """
        validator = await self._id_token_validator()
        return await validator.validate(token, nonce=nonce)

    async def exchange_code(
        self, code: str, *, code_verifier: str, nonce: str, iss: str | None = None
    ) -> TokenSet:
        """Redeem an authorization code and validate the ID token that comes back.

        Args:
            code: The callback's ``code``.
            code_verifier: The login's PKCE verifier.
            nonce: The login's nonce (the ID token must carry it).
            iss: The callback's ``iss`` parameter (RFC 9207), if it had one. Pass it through:
                when the provider advertises ``iss`` support, a callback without it is refused.

        Returns:
            The tokens and the validated claims.

        Raises:
            OidcError: ``callback_issuer_mismatch`` / ``callback_issuer_missing``, a token
                endpoint reason, ``id_token_missing`` or an ``id_token_*`` reason.
        """
        metadata = await self.metadata()
        if iss is not None and iss != metadata.issuer:
            raise OidcError(
                "callback_issuer_mismatch",
                "The login response came from another identity provider than the one this "
                "login was sent to; it was refused (RFC 9207 mix-up protection).",
            )
        if iss is None and metadata.authorization_response_iss_parameter_supported:
            raise OidcError(
                "callback_issuer_missing",
                "The login response lacks the issuer (iss) parameter its provider promises; "
                "it was refused (RFC 9207 mix-up protection).",
            )
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri_for(metadata),
            "code_verifier": code_verifier,
        }
        response = await self._request(metadata, form, (code, code_verifier))
        if response.id_token is None:
            raise OidcError("id_token_missing", "The identity provider returned no ID token.")
        return await self._token_set(response, nonce=nonce, previous_refresh=None)

    async def refresh(self, refresh_token: str, *, expected_sub: str | None = None) -> TokenSet:
        """Use a refresh token; validate the new ID token if one comes back.

        Args:
            refresh_token: The refresh token (spent when the provider rotates).
            expected_sub: The session's user; a new ID token for anyone else is refused.

        Returns:
            The new tokens; ``refresh_token`` is the rotated one, or this one when the
            provider did not issue a new one.

        Raises:
            RefreshNotValidatedError: The provider answered, but its new ID token could not be
                validated (``jwks_failed`` during a key rotation, say): the refresh token it
                rotated is in the error and must be kept, as ``refresh_token`` is spent.
            OidcError: ``invalid_grant`` when the token is spent, expired or revoked (log in
                again), another token endpoint reason, or ``id_token_subject_changed``.
        """
        metadata = await self.metadata()
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        response = await self._request(metadata, form, (refresh_token,))
        try:
            tokens = await self._token_set(response, nonce=None, previous_refresh=refresh_token)
        except OidcError as exc:
            # The provider has already spent a rotating ``refresh_token``: losing the new one
            # with this error would log the session out at its next renewal.
            unvalidated = TokenSet(
                access_token=response.access_token,
                id_token=response.id_token,
                refresh_token=response.refresh_token or refresh_token,
                expires_in=response.expires_in,
                token_type=response.token_type,
                scope=response.scope,
            )
            rotated = response.refresh_token is not None and response.refresh_token != refresh_token
            raise RefreshNotValidatedError(exc, unvalidated, rotated=rotated) from exc
        if (
            expected_sub is not None
            and tokens.claims is not None
            and tokens.claims.sub != expected_sub
        ):
            raise OidcError(
                "id_token_subject_changed",
                "The refreshed ID token is for another user than the session's.",
            )
        return tokens

    async def _request(
        self, metadata: ProviderMetadata, form: dict[str, str], secrets: tuple[str, ...]
    ) -> TokenResponse:
        return await request_tokens(
            self._http,
            metadata,
            client_id=self.settings.client_id,
            client_secret=self.settings.client_secret,
            form=form,
            secrets=secrets,
        )

    async def _token_set(
        self, response: TokenResponse, *, nonce: str | None, previous_refresh: str | None
    ) -> TokenSet:
        claims = None
        if response.id_token is not None:
            validator = await self._id_token_validator()
            claims = await validator.validate(
                response.id_token, nonce=nonce, access_token=response.access_token
            )
        else:
            await trio.lowlevel.checkpoint()
        return TokenSet(
            access_token=response.access_token,
            id_token=response.id_token,
            refresh_token=response.refresh_token or previous_refresh,
            expires_in=response.expires_in,
            claims=claims,
            token_type=response.token_type,
            scope=response.scope,
        )
