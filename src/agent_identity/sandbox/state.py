"""The sandbox's in-memory world: everything the emulated services know, built from a seed.

Plain mutable dataclasses, owned by one sandbox and touched only from its trio thread, so no
locking is needed. Tests read (and occasionally poke) ``sb.state`` to assert on effects.
Times are wall-clock seconds from the injectable ``clock``: JWT ``iat``/``exp`` and key expiry
are wall-clock by nature. Secret fields are handed to :func:`record_secret` when an object is
created, so the test suite's leak check knows every value that must never be logged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agent_identity.sandbox.cedar import PolicyEngine
from agent_identity.sandbox.keys import KeyRing
from agent_identity.sandbox.secrets import record_secret

__all__ = [
    "ApiKeyProvider",
    "Client",
    "IdentityProvider",
    "OAuth2Provider",
    "OAuthSession",
    "Role",
    "RoleProvider",
    "SandboxState",
    "StoredToken",
    "TemporaryKey",
    "User",
    "UserCredential",
    "UserPool",
    "Workload",
    "WorkloadPool",
    "iso_z",
]


def iso_z(moment: float) -> str:
    """Format wall-clock seconds as the API's ISO-8601 ``Z`` string."""
    return datetime.fromtimestamp(int(moment), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class Role:
    """An IAM role of the root account."""

    name: str
    trn: str
    role_id: str
    description: str = ""


@dataclass(slots=True)
class Workload:
    """A workload identity."""

    name: str
    pool_name: str
    trn: str
    category: str = "Agent"
    description: str = ""
    source: str = "Custom"
    allowed_return_urls: list[str] = field(default_factory=list)
    metadata: list[dict[str, Any]] = field(default_factory=list)
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(slots=True)
class WorkloadPool:
    """A workload pool and its workloads, by name."""

    name: str
    id: str
    trn: str
    description: str = ""
    workloads: dict[str, Workload] = field(default_factory=dict)
    created_at: float = 0.0


@dataclass(slots=True)
class OAuth2Provider:
    """An OAuth2 credential provider, registered as a client at the demo OAuth2 provider."""

    name: str
    pool_name: str
    flow: str
    client_id: str
    client_secret: str
    scopes: list[str]
    trn: str
    vendor: int = 0
    created_at: float = 0.0

    type = "oauth2"

    def __post_init__(self) -> None:
        record_secret(self.client_secret)


@dataclass(slots=True)
class ApiKeyProvider:
    """An API-key credential provider."""

    name: str
    pool_name: str
    api_key: str
    metadata: list[dict[str, str]]
    trn: str
    vendor: int = 0
    created_at: float = 0.0

    type = "api_key"
    flow = ""

    def __post_init__(self) -> None:
        record_secret(self.api_key)


@dataclass(slots=True)
class RoleProvider:
    """A role credential provider: TIP in, STS keys of ``role`` out."""

    name: str
    pool_name: str
    role: Role
    provider_id: str
    trn: str
    vendor: int = 0
    user_pool_uid: str | None = None
    user_pool_name: str | None = None
    client_uid: str | None = None
    client_name: str | None = None
    created_at: float = 0.0


@dataclass(slots=True)
class Client:
    """A user pool client; ``uid`` is the OIDC client_id."""

    uid: str
    name: str
    secret: str
    client_type: str = "WEB_APPLICATION"
    description: str = ""
    logo_uri: str = ""
    allowed_callback_urls: list[str] = field(default_factory=list)
    allowed_logout_urls: list[str] = field(default_factory=list)
    allowed_web_origins: list[str] = field(default_factory=list)
    allowed_cors: list[str] = field(default_factory=list)
    id_token_lifetime: int = 3600
    refresh_token: dict[str, Any] = field(default_factory=dict)
    flags: dict[str, bool] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0

    def __post_init__(self) -> None:
        record_secret(self.secret)


@dataclass(slots=True)
class User:
    """A user who can log in to a user pool."""

    username: str
    password: str
    sub: str
    email: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        record_secret(self.password)


@dataclass(slots=True)
class IdentityProvider:
    """A login connection of a user pool."""

    uid: str
    name: str
    provider: str
    connection_type: str
    enabled: bool = True
    created_at: float = 0.0


@dataclass(slots=True)
class UserPool:
    """A user pool: clients by uid, users by username, connections."""

    uid: str
    name: str
    trn: str
    description: str = ""
    project_name: str = "default"
    flags: dict[str, Any] = field(default_factory=dict)
    clients: dict[str, Client] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    identity_providers: list[IdentityProvider] = field(default_factory=list)
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(slots=True)
class TemporaryKey:
    """An STS-issued access key: accepted until ``expires_at``, with its session token."""

    access_key_id: str
    secret_access_key: str
    session_token: str
    role: Role
    session_name: str
    expires_at: float

    def __post_init__(self) -> None:
        record_secret(self.secret_access_key)
        record_secret(self.session_token)


@dataclass(slots=True)
class StoredToken:
    """A third-party access token held for (pool, user sub, provider)."""

    access_token: str
    expires_at: float
    scopes: list[str]

    def __post_init__(self) -> None:
        record_secret(self.access_token)


@dataclass(slots=True)
class OAuthSession:
    """One 3LO authorization in flight, found by its ``state`` or its ``SessionUri``.

    ``status`` moves ``pending`` → ``completed`` (token stored), or ``pending`` →
    ``awaiting_binding`` (a ResourceOauth2ReturnUrl was given, so the token waits for
    CompleteResourceTokenAuth) → ``completed``, or ``pending`` → ``failed`` (the user denied).
    """

    state: str
    session_uri: str
    pool_name: str
    provider: str
    sub: str
    scopes: list[str]
    redirect_uri: str
    return_url: str | None
    custom_state: str | None
    expires_at: float
    status: str = "pending"
    token: StoredToken | None = None
    error: str | None = None


@dataclass(slots=True)
class UserCredential:
    """An opaque per-user secret (CreateUserCredential)."""

    credential_id: str
    data: str
    created_at: float
    updated_at: float

    def __post_init__(self) -> None:
        record_secret(self.data)


@dataclass(slots=True)
class SandboxState:
    """Everything the sandbox knows. Built by :func:`agent_identity.sandbox.world.build_state`."""

    region: str
    account_id: str
    root_access_key_id: str
    root_secret_access_key: str = field(repr=False)
    clock: Callable[[], float] = time.time
    base_url: str = "http://127.0.0.1"
    keys: KeyRing = field(default_factory=KeyRing)
    roles: dict[str, Role] = field(default_factory=dict)
    workload_pools: dict[str, WorkloadPool] = field(default_factory=dict)
    providers: dict[tuple[str, str], OAuth2Provider | ApiKeyProvider] = field(default_factory=dict)
    role_providers: dict[str, RoleProvider] = field(default_factory=dict)
    user_pools: dict[str, UserPool] = field(default_factory=dict)
    engines: dict[str, PolicyEngine] = field(default_factory=dict)
    temporary_keys: dict[str, TemporaryKey] = field(default_factory=dict)
    oauth_sessions: dict[str, OAuthSession] = field(default_factory=dict)
    oauth_tokens: dict[tuple[str, str, str], StoredToken] = field(default_factory=dict)
    user_credentials: dict[tuple[str, str, str], UserCredential] = field(default_factory=dict)

    def __post_init__(self) -> None:
        record_secret(self.root_secret_access_key)

    def now(self) -> float:
        """The wall-clock time, in seconds."""
        return self.clock()

    def role_trn(self, name: str) -> str:
        """The TRN of a role of this account."""
        return f"trn:iam::{self.account_id}:role/{name}"

    def workload_trn(self, pool: str, name: str) -> str:
        """The TRN of a workload identity."""
        return f"trn:id:{self.region}:{self.account_id}:workloadpool/{pool}/workload/{name}"

    def tip_issuer(self, pool: WorkloadPool) -> str:
        """The TIP issuer of a workload pool."""
        return f"{self.base_url}/workloadpool/{pool.id}"

    def user_pool_issuer(self, pool: UserPool) -> str:
        """The OIDC issuer of a user pool."""
        return f"{self.base_url}/userpool/{pool.uid}"

    def pool_by_id(self, pool_id: str) -> WorkloadPool | None:
        """Find a workload pool by its id."""
        return next((p for p in self.workload_pools.values() if p.id == pool_id), None)

    def user_pool(self, name_or_uid: str) -> UserPool | None:
        """Find a user pool by uid, else by name."""
        found = self.user_pools.get(name_or_uid)
        if found is not None:
            return found
        return next((p for p in self.user_pools.values() if p.name == name_or_uid), None)

    def add_user_pool(self, uid: str, name: str, description: str = "") -> UserPool:
        """Create and register a user pool."""
        now = self.now()
        pool = UserPool(
            uid=uid,
            name=name,
            trn=f"trn:id:{self.region}:{self.account_id}:userpool/{uid}",
            description=description,
            created_at=now,
            updated_at=now,
        )
        self.user_pools[uid] = pool
        return pool
