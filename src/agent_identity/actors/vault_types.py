"""The credential vault's vocabulary: credentials, flows, results and statistics.

Everything here is a plain value. Secrets (API keys, access tokens, STS keys) live only in
:class:`Credential` and in the few result fields that return them on request; every ``repr``
masks them, so a value that ends up in a log line, an assertion message or a traceback leaks
nothing. The actor is :mod:`agent_identity.actors.credential_vault`; its envelopes and typed
client are in :mod:`agent_identity.actors.vault_messages`, the events it publishes in
:mod:`agent_identity.actors.vault_events`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from agent_identity.kernel import ActorStatistics

__all__ = [
    "LOGGED_OUT",
    "MASK",
    "NOT_LOGGED_IN",
    "BindingFailure",
    "BindingResult",
    "Credential",
    "CredentialKind",
    "CredentialListing",
    "FetchFailure",
    "FetchFlow",
    "FetchResult",
    "FetchStatus",
    "ProviderStatus",
    "RoleCredentialsView",
    "RoleListing",
    "RoleProviderInfo",
    "VaultStatistics",
    "mask_access_key_id",
]

#: What a secret is replaced with in results that do not show secrets.
MASK = "***"
#: What a request of a session that is not logged in (no TIP) is told.
NOT_LOGGED_IN = "Log in first with /identity login."
#: What a request whose session logged out while it ran is told.
LOGGED_OUT = "The session logged out meanwhile; nothing was stored."
_SHOWN_KEY_CHARS = 4


class FetchFlow(enum.StrEnum):
    """How a credential is obtained (the ``--flow`` values of ``/identity fetch``)."""

    #: OAuth2 3LO (``USER_FEDERATION``): the user consents in a browser.
    OAUTH2_USER = "oauth2-user"
    #: OAuth2 client credentials (``M2M``): a token straight away.
    OAUTH2_M2M = "oauth2-m2m"
    #: ``GetResourceApiKey``: the provider's API key straight away.
    APIKEY = "apikey"


class CredentialKind(enum.StrEnum):
    """What a stored credential is."""

    #: An API key (from ``GetResourceApiKey`` or imported from the gateway's environment).
    API_KEY = "api_key"
    #: An OAuth2 access token (M2M or 3LO).
    OAUTH2 = "oauth2"
    #: Temporary STS keys of a role credential provider (``GetRoleCredentials``).
    ROLE = "role"


@dataclass(frozen=True, slots=True)
class Credential:
    """One credential of one session, held in memory only.

    ``repr`` never shows a secret. For :attr:`CredentialKind.ROLE`, :attr:`value` is the
    AccessKeyId and the two other keys are in :attr:`secret_access_key` and
    :attr:`session_token`.

    Attributes:
        provider: The credential provider's name (the key of the session's credentials).
        kind: What the credential is.
        source: How it was obtained: a :class:`FetchFlow` value, ``"environment"`` (imported
            by ``set``) or ``"role"``.
        value: The API key, the access token, or the AccessKeyId.
        expires_at: When it expires on Trio's clock, or None if unknown / never.
        obtained_at: When it was stored, on Trio's clock.
        secret_access_key: The STS secret key (role credentials only).
        session_token: The STS session token (role credentials only).
    """

    provider: str
    kind: CredentialKind
    source: str
    value: str = field(repr=False)
    expires_at: float | None = None
    obtained_at: float = 0.0
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)

    def expired(self, now: float) -> bool:
        """Whether the credential has expired at ``now`` (Trio's clock)."""
        return self.expires_at is not None and self.expires_at <= now

    def expires_in(self, now: float) -> int | None:
        """Whole seconds left (0 once expired), or None if the expiry is unknown."""
        if self.expires_at is None:
            return None
        return max(int(self.expires_at - now), 0)

    def secrets(self) -> tuple[str, ...]:
        """Every secret value the credential holds (for leak checks)."""
        found = (self.value, self.secret_access_key, self.session_token)
        return tuple(value for value in found if value)


class FetchStatus(enum.StrEnum):
    """What a fetch (or a callback completion) ended with."""

    #: The credential is stored for the session.
    STORED = "stored"
    #: The user must open :attr:`FetchResult.auth_url`; the vault completes in the background.
    AUTHORIZE = "authorize"
    #: Nothing was stored; :attr:`FetchResult.failure` says why.
    FAILED = "failed"


class FetchFailure(enum.StrEnum):
    """Why a fetch, a background 3LO flow or a callback completion stored nothing."""

    NOT_LOGGED_IN = "not_logged_in"
    INVALID_FLOW = "invalid_flow"
    INVALID_REQUEST = "invalid_request"
    UNKNOWN_PROVIDER = "unknown_provider"
    SERVICE_ERROR = "service_error"
    NO_TOKEN = "no_token"  # noqa: S105 - a reason code, not a credential
    DENIED = "denied"
    TIMEOUT = "timeout"
    UNKNOWN_STATE = "unknown_state"
    LOGGED_OUT = "logged_out"


@dataclass(frozen=True, slots=True)
class FetchResult:
    """The answer of ``fetch`` and ``complete_oauth2_callback``.

    Attributes:
        status: Stored, authorize (open :attr:`auth_url`), or failed.
        provider: The provider asked for.
        message: A user-safe sentence.
        flow: The flow used (inferred or forced); None if it could not be decided.
        auth_url: Where the user consents (status ``authorize`` only).
        value: The credential itself, only when ``return_value`` was asked for.
        failure: Why nothing was stored (status ``failed`` only).
        expires_in: Seconds the stored credential lives, when known.
    """

    status: FetchStatus
    provider: str
    message: str
    flow: FetchFlow | None = None
    auth_url: str | None = None
    value: str | None = field(default=None, repr=False)
    failure: FetchFailure | None = None
    expires_in: int | None = None

    @property
    def success(self) -> bool:
        """Whether a credential was stored."""
        return self.status is FetchStatus.STORED

    def to_tool_result(self) -> dict[str, object]:
        """The ``identity_fetch`` tool's answer (spec section 7).

        ``{"authUrl", "message"}`` for a pending 3LO flow, else ``{"success", "message"}``
        plus ``"value"`` when it was asked for.
        """
        if self.status is FetchStatus.AUTHORIZE:
            return {"authUrl": self.auth_url, "message": self.message}
        shown: dict[str, object] = {"success": self.success, "message": self.message}
        if self.value is not None:
            shown["value"] = self.value
        return shown


@dataclass(frozen=True, slots=True)
class ProviderStatus:
    """One provider as ``/identity list`` shows it, with this session's credential status.

    Attributes:
        name: The provider's name.
        type: ``api_key``, ``oauth2`` or ``role`` (the control plane's ``Type``).
        flow: The flow ``fetch`` would use, if known.
        stored: Whether this session holds a credential for it.
        expired: Whether that credential has expired.
        env_var: The env var it is bound to for tool injection, if any.
        expires_in: Seconds the credential has left, when known.
        source: How the stored credential was obtained.
    """

    name: str
    type: str
    flow: FetchFlow | None = None
    stored: bool = False
    expired: bool = False
    env_var: str | None = None
    expires_in: int | None = None
    source: str | None = None


@dataclass(frozen=True, slots=True)
class CredentialListing:
    """A page of ``/identity list``: control-plane providers plus the session's own.

    Attributes:
        providers: The control plane's providers on this page, with the session's status.
        stored_only: Credentials and bindings of the session for providers that are not
            control-plane OAuth2 / API-key providers (role credentials, imported keys);
            given on page 1 only.
        page: The 1-based page number.
        has_more: Whether a later page exists (``list <page + 1>``).
        total: How many providers match in the control plane.
        ok: False when the listing failed (``message`` says why).
        message: Empty on success.
    """

    providers: list[ProviderStatus] = field(default_factory=list)
    stored_only: list[ProviderStatus] = field(default_factory=list)
    page: int = 1
    has_more: bool = False
    total: int = 0
    ok: bool = True
    message: str = ""


@dataclass(frozen=True, slots=True)
class RoleProviderInfo:
    """One role credential provider (``/identity list-roles``).

    Attributes:
        name: The provider's name (what ``get-role`` takes).
        role_name: The role it maps to (``FromRole``), if fixed.
        pool_name: Its workload pool.
        trn: Its TRN.
        user_pool_name: The user pool whose users it serves, if any.
    """

    name: str
    role_name: str = ""
    pool_name: str = ""
    trn: str = ""
    user_pool_name: str = ""


@dataclass(frozen=True, slots=True)
class RoleListing:
    """The answer of ``list_roles``."""

    roles: list[RoleProviderInfo] = field(default_factory=list)
    ok: bool = True
    message: str = ""


@dataclass(frozen=True, slots=True)
class RoleCredentialsView:
    """Temporary STS keys of a role provider, as ``/identity get-role`` shows them.

    Unless ``show_secrets`` was asked for, the AccessKeyId is partially masked and the two
    secrets are ``***``. ``repr`` masks them always.

    Attributes:
        provider: The role provider.
        ok: Whether keys were obtained (and stored for the session).
        message: A user-safe sentence.
        access_key_id: The AccessKeyId (partially masked unless shown).
        secret_access_key: The secret key (``***`` unless shown).
        session_token: The session token (``***`` unless shown).
        expiration: The service's ``Expiration`` timestamp.
        role_trn: The assumed role's TRN.
        oidc_subject: Who the service read from the TIP (with ``use_tip``).
        env_vars: The env vars the keys are injected as, when the provider is bound.
    """

    provider: str
    ok: bool
    message: str
    access_key_id: str = field(default="", repr=False)
    secret_access_key: str = field(default="", repr=False)
    session_token: str = field(default="", repr=False)
    expiration: str = ""
    role_trn: str = ""
    oidc_subject: str = ""
    env_vars: tuple[str, ...] = ()


class BindingFailure(enum.StrEnum):
    """Why ``set`` did not bind."""

    INVALID_NAME = "invalid_name"
    INVALID_PROVIDER = "invalid_provider"
    RESERVED_NAME = "reserved_name"
    NOT_IN_ENVIRONMENT = "not_in_environment"
    PROTECTED_VARIABLE = "protected_variable"
    LOGGED_OUT = "logged_out"


@dataclass(frozen=True, slots=True)
class BindingResult:
    """The answer of ``set_binding``.

    Attributes:
        ok: Whether the binding is persisted.
        provider: The provider.
        env_var: The env var name asked for.
        message: A user-safe sentence.
        imported: Whether the credential was imported from the gateway's environment.
        failure: Why it was refused.
    """

    ok: bool
    provider: str
    env_var: str
    message: str
    imported: bool = False
    failure: BindingFailure | None = None


@dataclass(frozen=True, slots=True)
class VaultStatistics:
    """A snapshot of the vault, for ``/status``, ``ctl status`` and metrics.

    Attributes:
        actor: The kernel's view of the actor (mailbox depth, handled, restarts, ...).
        sessions: Sessions holding at least one credential.
        credentials: Credentials held, all sessions together.
        credentials_by_kind: The same, per :class:`CredentialKind` value.
        bound_sessions: Sessions whose bindings are cached in memory.
        flows_running: Background 3LO flows in progress.
        flows_completed: Background flows that stored a credential (lifetime).
        flows_failed: Background flows that ended without one (lifetime).
        calls_running: Requests being served in the background (network or store).
        leases_active: Live per-tool-call leases.
        leases_granted: Leases granted (lifetime).
        leases_released: Leases released by ``after_tool_call`` (lifetime).
        leases_expired: Leases dropped by the TTL sweep (lifetime).
        fetches: ``fetch`` requests (lifetime).
        polls: ``GetResourceOauth2Token`` polls of background flows (lifetime).
        events_dropped: Events a full subscriber missed (lifetime).
    """

    actor: ActorStatistics
    sessions: int
    credentials: int
    credentials_by_kind: dict[str, int]
    bound_sessions: int
    flows_running: int
    flows_completed: int
    flows_failed: int
    calls_running: int
    leases_active: int
    leases_granted: int
    leases_released: int
    leases_expired: int
    fetches: int
    polls: int
    events_dropped: int


def mask_access_key_id(value: str) -> str:
    """Show the first and last four characters of an AccessKeyId (all masked if short)."""
    if len(value) < 3 * _SHOWN_KEY_CHARS:
        return MASK
    return f"{value[:_SHOWN_KEY_CHARS]}{MASK}{value[-_SHOWN_KEY_CHARS:]}"
