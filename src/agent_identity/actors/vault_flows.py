"""The pure parts of the vault's flows: flow names, inference, requests, polling, role views.

No I/O here: the actor (:mod:`agent_identity.actors.credential_vault`) makes the calls and
uses these helpers to build requests and to read answers.

Flow inference (``/identity fetch <provider>`` without ``--flow``): the provider's entry of
``ListCredentialProviders`` decides: ``Type=api_key`` is :attr:`FetchFlow.APIKEY`,
``Type=oauth2`` with ``Flow=M2M`` is :attr:`FetchFlow.OAUTH2_M2M`, any other ``oauth2`` is
:attr:`FetchFlow.OAUTH2_USER` (3LO).

3LO polling (:class:`PollPolicy`): after ``GetResourceOauth2Token`` answered an
``AuthorizationUrl``, the vault calls it again with identical parameters, first after
``initial`` seconds, then each wait ``factor`` times longer up to ``maximum``, on Trio's
clock, until the token arrives or ``timeout`` seconds have passed since the flow started
(default 5 minutes, the approval/login TTL). :func:`judge_poll` reads each answer: a token
ends the flow; the same authorization (same ``SessionUri``, or the same URL when the service
sends no session) means the user has not decided yet; a *different* authorization means the
service dropped the first one (the user denied it, or it failed or expired), which ends the
flow without a credential.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

from agent_identity.actors.vault_types import (
    MASK,
    FetchFlow,
    RoleCredentialsView,
    RoleProviderInfo,
    mask_access_key_id,
)
from agent_identity.volcengine.errors import VolcengineError
from agent_identity.volcengine.models import (
    CredentialProvider,
    CredentialProviderFilter,
    GetResourceOauth2TokenRequest,
    ResourceOauth2Token,
    RoleCredentialProvider,
    RoleCredentials,
)
from agent_identity.volcengine.timestamps import parse_timestamp

__all__ = [
    "API_FLOWS",
    "DEFAULT_POLL_POLICY",
    "PollPolicy",
    "PollVerdict",
    "authorization_state",
    "expiry_from_timestamp",
    "infer_flow",
    "judge_poll",
    "listing_filter",
    "oauth2_request",
    "parse_flow",
    "parse_scopes",
    "role_info",
    "role_view",
    "service_message",
]

#: The control plane's ``Flow`` value of each OAuth2 fetch flow.
API_FLOWS = {FetchFlow.OAUTH2_USER: "USER_FEDERATION", FetchFlow.OAUTH2_M2M: "M2M"}

_FLOW_ALIASES = {
    "oauth2-user": FetchFlow.OAUTH2_USER,
    "oauth2_user": FetchFlow.OAUTH2_USER,
    "user": FetchFlow.OAUTH2_USER,
    "3lo": FetchFlow.OAUTH2_USER,
    "user_federation": FetchFlow.OAUTH2_USER,
    "oauth2-m2m": FetchFlow.OAUTH2_M2M,
    "oauth2_m2m": FetchFlow.OAUTH2_M2M,
    "m2m": FetchFlow.OAUTH2_M2M,
    "apikey": FetchFlow.APIKEY,
    "api_key": FetchFlow.APIKEY,
    "api-key": FetchFlow.APIKEY,
}
_TYPES = {"api_key": "api_key", "apikey": "api_key", "api-key": "api_key", "oauth2": "oauth2"}
_FLOW_CHOICES = "oauth2-user, oauth2-m2m or apikey"


def parse_flow(text: str | None) -> FetchFlow | None:
    """Read a ``--flow`` value (None stays None: infer it).

    Raises:
        ValueError: Not a known flow; the message is user-safe.
    """
    if text is None or not text.strip():
        return None
    flow = _FLOW_ALIASES.get(text.strip().lower())
    if flow is None:
        raise ValueError(f"Unknown flow {text[:40]!r}: use {_FLOW_CHOICES}.")
    return flow


def parse_scopes(scopes: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """Read ``--scopes``: a sequence, or one string separated by commas and/or spaces."""
    if scopes is None:
        return None
    items = scopes.replace(",", " ").split() if isinstance(scopes, str) else scopes
    found = tuple(item.strip() for item in items if item.strip())
    return found or None


def infer_flow(provider: CredentialProvider) -> FetchFlow | None:
    """The flow a control-plane provider is fetched with (None for an unknown type)."""
    kind = provider.type.lower()
    if kind == "api_key":
        return FetchFlow.APIKEY
    if kind == "oauth2":
        return FetchFlow.OAUTH2_M2M if provider.flow.upper() == "M2M" else FetchFlow.OAUTH2_USER
    return None


def listing_filter(
    name: str | None, flow: str | None, kind: str | None
) -> CredentialProviderFilter | None:
    """The ``ListCredentialProviders`` filter of ``list``'s name / flow / type options.

    ``flow`` takes the fetch flow names (``oauth2-user``...) or the API's (``M2M``...);
    ``apikey`` means ``Type=api_key``. ``kind`` is ``api_key`` or ``oauth2``.

    Raises:
        ValueError: An unknown flow or type; the message is user-safe.
    """
    api_type: str | None = None
    api_flow: str | None = None
    if kind is not None and kind.strip():
        api_type = _TYPES.get(kind.strip().lower())
        if api_type is None:
            raise ValueError(f"Unknown type {kind[:40]!r}: use api_key or oauth2.")
    parsed = parse_flow(flow)
    if parsed is FetchFlow.APIKEY:
        api_type = "api_key"
    elif parsed is not None:
        api_flow = API_FLOWS[parsed]
    name = name.strip() if name else None
    if not (name or api_type or api_flow):
        return None
    return CredentialProviderFilter(name=name or None, type=api_type, flow=api_flow)


def oauth2_request(
    provider: str,
    tip: str,
    flow: FetchFlow,
    *,
    pool_name: str,
    redirect_url: str | None,
    scopes: Sequence[str] | None,
) -> GetResourceOauth2TokenRequest:
    """The ``GetResourceOauth2Token`` request of an OAuth2 fetch (reused verbatim to poll)."""
    return GetResourceOauth2TokenRequest(
        provider_name=provider,
        identity_token=tip,
        flow=API_FLOWS[flow],
        scopes=list(scopes) if scopes else None,
        pool_name=pool_name,
        redirect_url=redirect_url or None,
    )


def authorization_state(url: str) -> str | None:
    """The ``state`` parameter of an authorization URL (what a callback comes back with)."""
    values = parse_qs(urlsplit(url).query).get("state")
    return values[0] if values else None


class PollVerdict(enum.Enum):
    """What one poll answer means for a 3LO flow."""

    #: The access token arrived.
    TOKEN = "token"  # noqa: S105 - a verdict name, not a credential
    #: Still the same authorization: the user has not decided yet.
    WAIT = "wait"
    #: The service started a new authorization: the first one was denied, failed or expired.
    ABANDONED = "abandoned"


def judge_poll(first: ResourceOauth2Token, answer: ResourceOauth2Token) -> PollVerdict:
    """Compare a poll's answer with the flow's first answer (see the module docstring)."""
    if answer.access_token:
        return PollVerdict.TOKEN
    if first.session_uri and answer.session_uri:
        same = first.session_uri == answer.session_uri
    else:
        same = first.authorization_url == answer.authorization_url
    return PollVerdict.WAIT if same else PollVerdict.ABANDONED


@dataclass(frozen=True, slots=True)
class PollPolicy:
    """How a background 3LO flow polls (see the module docstring).

    Attributes:
        initial: Seconds before the first poll.
        factor: How much longer each next wait is.
        maximum: The longest wait between two polls.
        timeout: Seconds after which the flow gives up.
    """

    initial: float = 2.0
    factor: float = 1.5
    maximum: float = 15.0
    timeout: float = 300.0

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum <= 0 or self.timeout <= 0:
            raise ValueError("poll waits and the timeout must be > 0")
        if self.factor < 1:
            raise ValueError(f"factor must be >= 1, got {self.factor}")

    def delays(self) -> Iterator[float]:
        """The waits before each poll, forever (the caller stops at the timeout)."""
        delay = min(self.initial, self.maximum)
        while True:
            yield delay
            delay = min(delay * self.factor, self.maximum)


#: The default: 2 s, then x1.5 up to 15 s, for 5 minutes.
DEFAULT_POLL_POLICY = PollPolicy()


def service_message(action: str, exc: VolcengineError) -> str:
    """A user-safe sentence for a failed control-plane call (errors never hold secrets)."""
    return f"{action} failed: {exc.code}: {exc.message}"


def expiry_from_timestamp(text: str, *, trio_now: float, wall_now: float) -> float | None:
    """Convert the service's ``Expiration`` timestamp to Trio's clock (None if unreadable)."""
    try:
        moment: datetime = parse_timestamp(text)
    except ValueError:
        return None
    return trio_now + (moment.timestamp() - wall_now)


def role_info(provider: RoleCredentialProvider) -> RoleProviderInfo:
    """The ``list-roles`` line of a role credential provider."""
    config = provider.config
    role_name = ""
    user_pool = ""
    if config is not None:
        mapping = config.role_mapping
        if mapping is not None and mapping.from_role is not None:
            role_name = mapping.from_role.role_name
        pool = config.identity_pool
        if pool is not None and pool.user_pool is not None:
            user_pool = pool.user_pool.pool_name
    return RoleProviderInfo(
        name=provider.name,
        role_name=role_name,
        pool_name=provider.pool_name,
        trn=provider.credential_provider_trn,
        user_pool_name=user_pool,
    )


def role_view(
    provider: str,
    keys: RoleCredentials,
    *,
    show_secrets: bool,
    role_trn: str = "",
    oidc_subject: str = "",
    env_vars: tuple[str, ...] = (),
) -> RoleCredentialsView:
    """What ``get-role`` shows: masked keys unless ``show_secrets``."""
    if show_secrets:
        access, secret, token = keys.access_key_id, keys.secret_access_key, keys.session_token
    else:
        access = mask_access_key_id(keys.access_key_id)
        secret = MASK if keys.secret_access_key else ""
        token = MASK if keys.session_token else ""
    where = f" Bound for tools as {', '.join(env_vars)}." if env_vars else ""
    return RoleCredentialsView(
        provider=provider,
        ok=True,
        message=f"Temporary credentials for {provider} (expire {keys.expiration}).{where}",
        access_key_id=access,
        secret_access_key=secret,
        session_token=token,
        expiration=keys.expiration,
        role_trn=role_trn,
        oidc_subject=oidc_subject,
        env_vars=env_vars,
    )
