"""The sandbox seed: the small world the emulator starts with, as strict msgspec Structs.

A seed is JSON with camelCase keys; unknown keys are an error, so a typo never silently turns
into a default. :func:`load_seed` also checks what the types cannot: unique names, references
between sections (a role provider's role, a metadata role) and the Cedar policies against the
schema. The shipped ``default_seed.json`` is what ``agent-identity dev`` shows a newcomer.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import msgspec

from agent_identity.sandbox.cedar import CedarError, PolicyEngine

__all__ = [
    "AccountSeed",
    "ApiKeyMetadataSeed",
    "ApiKeyProviderSeed",
    "AuthzSeed",
    "ClientSeed",
    "IdentityProviderSeed",
    "MetadataSeed",
    "NamespaceSeed",
    "OAuth2ProviderSeed",
    "RoleProviderSeed",
    "RoleSeed",
    "Seed",
    "SeedError",
    "UserPoolSeed",
    "UserSeed",
    "WorkloadPoolSeed",
    "WorkloadSeed",
    "build_engines",
    "load_seed",
]

SeedSource = str | os.PathLike[str] | Mapping[str, Any] | None


class SeedError(ValueError):
    """A seed that cannot be used; the message names the problem and where it is."""


class _Struct(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    pass


class AccountSeed(_Struct):
    """The root account and its long-lived access key."""

    account_id: str
    access_key_id: str
    secret_access_key: str


class RoleSeed(_Struct):
    """An IAM role assumable through STS; its TRN is ``trn:iam::<account>:role/<name>``."""

    name: str
    description: str = ""


class WorkloadSeed(_Struct):
    """A workload identity (an agent) in a workload pool."""

    name: str
    category: str = "Agent"
    description: str = ""
    allowed_resource_oauth2_return_urls: list[str] = []


class WorkloadPoolSeed(_Struct):
    """A workload pool; its id names the TIP issuer ``<base>/workloadpool/<id>``."""

    name: str
    id: str
    description: str = ""
    workloads: list[WorkloadSeed] = []


class ApiKeyMetadataSeed(_Struct):
    """Where a client should put an API key (header name and prefix)."""

    location: str = "header"
    parameter_name: str = "Authorization"
    prefix: str = "Bearer "


class OAuth2ProviderSeed(_Struct, tag="oauth2", tag_field="type"):
    """An OAuth2 credential provider backed by the sandbox's demo OAuth2 provider."""

    name: str
    flow: Literal["USER_FEDERATION", "M2M"]
    client_id: str
    client_secret: str
    scopes: list[str] = []
    pool_name: str = "default"
    vendor: int = 0


class ApiKeyProviderSeed(_Struct, tag="api_key", tag_field="type"):
    """An API-key credential provider holding the key value."""

    name: str
    api_key: str
    api_key_metadata: list[ApiKeyMetadataSeed] = []
    pool_name: str = "default"
    vendor: int = 0


class RoleProviderSeed(_Struct):
    """A role credential provider: a TIP is exchanged for STS keys of ``role``."""

    name: str
    role: str
    pool_name: str = "default"
    vendor: int = 0
    user_pool: str | None = None
    user_pool_client: str | None = None


class ClientSeed(_Struct):
    """A user pool client (the OIDC ``client_id`` is its uid)."""

    uid: str
    name: str
    secret: str
    type: str = "WEB_APPLICATION"
    allowed_callback_urls: list[str] = []
    allowed_logout_urls: list[str] = []


class UserSeed(_Struct):
    """A user of a user pool, who logs in with username and password."""

    username: str
    password: str
    sub: str
    email: str | None = None
    name: str | None = None


class IdentityProviderSeed(_Struct):
    """A login connection of a user pool (``ListIdentityProviders``)."""

    name: str
    uid: str | None = None
    provider: str = "userpool"
    connection_type: str = "local"
    enabled: bool = True


class UserPoolSeed(_Struct):
    """A user pool: an OIDC provider at ``<base>/userpool/<uid>``."""

    name: str
    uid: str
    description: str = ""
    clients: list[ClientSeed] = []
    users: list[UserSeed] = []
    identity_providers: list[IdentityProviderSeed] = []


class NamespaceSeed(_Struct):
    """A permission namespace and its Cedar policies (one statement per list item)."""

    name: str
    cedar_namespace: str | None = None
    policies: list[str] = []

    @property
    def cedar_name(self) -> str:
        """The Cedar namespace: explicit, else the API name capitalised (``default``)."""
        return self.cedar_namespace or self.name[:1].upper() + self.name[1:]


class AuthzSeed(_Struct):
    """The Cedar schema (shared by every namespace) and the namespaces."""

    schema: str | list[str]
    namespaces: list[NamespaceSeed] = []

    @property
    def schema_text(self) -> str:
        """The schema as one text (a list is joined by newlines for readable JSON)."""
        return self.schema if isinstance(self.schema, str) else "\n".join(self.schema)


class MetadataSeed(_Struct):
    """The instance-metadata answers: region id and the role behind the credentials."""

    region: str | None = None
    credentials_role: str | None = None


class Seed(_Struct):
    """The whole seed."""

    account: AccountSeed
    region: str = "cn-beijing"
    roles: list[RoleSeed] = []
    workload_pools: list[WorkloadPoolSeed] = []
    credential_providers: list[OAuth2ProviderSeed | ApiKeyProviderSeed] = []
    role_credential_providers: list[RoleProviderSeed] = []
    user_pools: list[UserPoolSeed] = []
    authz: AuthzSeed | None = None
    metadata: MetadataSeed = msgspec.field(default_factory=MetadataSeed)


def _unique(what: str, names: Iterable[str]) -> None:
    duplicates = sorted(name for name, count in Counter(names).items() if count > 1)
    if duplicates:
        raise SeedError(f"duplicate {what}: {', '.join(duplicates)}")


def build_engines(authz: AuthzSeed | None) -> dict[str, PolicyEngine]:
    """Build (and so validate) one policy engine per namespace.

    Args:
        authz: The seed's authz section.

    Returns:
        The engines by ``NamespaceName``.

    Raises:
        SeedError: The schema or a namespace's policies are invalid.
    """
    if authz is None:
        return {}
    engines = {}
    for namespace in authz.namespaces:
        try:
            engines[namespace.name] = PolicyEngine(
                namespace.name,
                namespace.cedar_name,
                authz.schema_text,
                "\n".join(namespace.policies),
            )
        except CedarError as exc:
            raise SeedError(f"invalid Cedar in the seed's authz section: {exc}") from exc
    return engines


def _check_references(seed: Seed) -> None:
    role_names = {role.name for role in seed.roles}
    pool_names = {pool.name for pool in seed.workload_pools}
    _unique("role names", (role.name for role in seed.roles))
    _unique("workload pool names", (pool.name for pool in seed.workload_pools))
    _unique("workload pool ids", (pool.id for pool in seed.workload_pools))
    for pool in seed.workload_pools:
        _unique(f"workload names in pool {pool.name!r}", (w.name for w in pool.workloads))
    _unique(
        "credential provider names",
        (f"{p.pool_name}/{p.name}" for p in seed.credential_providers),
    )
    _unique("role credential provider names", (p.name for p in seed.role_credential_providers))
    _unique("user pool names", (pool.name for pool in seed.user_pools))
    _unique("user pool uids", (pool.uid for pool in seed.user_pools))
    _unique("client uids", (c.uid for pool in seed.user_pools for c in pool.clients))
    for provider in (*seed.credential_providers, *seed.role_credential_providers):
        if provider.pool_name not in pool_names:
            raise SeedError(
                f"credential provider {provider.name!r} names unknown workload pool "
                f"{provider.pool_name!r}"
            )
    for role_provider in seed.role_credential_providers:
        if role_provider.role not in role_names:
            raise SeedError(
                f"role credential provider {role_provider.name!r} names unknown role "
                f"{role_provider.role!r}"
            )
    user_pools = {pool.name: pool for pool in seed.user_pools}
    user_pools.update({pool.uid: pool for pool in seed.user_pools})
    for role_provider in seed.role_credential_providers:
        if role_provider.user_pool is None:
            continue
        linked = user_pools.get(role_provider.user_pool)
        if linked is None:
            raise SeedError(
                f"role credential provider {role_provider.name!r} names unknown user pool "
                f"{role_provider.user_pool!r}"
            )
        client = role_provider.user_pool_client
        if client is not None and client not in {c.name for c in linked.clients} | {
            c.uid for c in linked.clients
        }:
            raise SeedError(
                f"role credential provider {role_provider.name!r} names unknown client {client!r}"
            )
    for user_pool in seed.user_pools:
        _unique(f"usernames in user pool {user_pool.name!r}", (u.username for u in user_pool.users))
        _unique(f"subs in user pool {user_pool.name!r}", (u.sub for u in user_pool.users))
    role = seed.metadata.credentials_role
    if role is not None and role not in role_names:
        raise SeedError(f"metadata.credentialsRole names unknown role {role!r}")


def validate_seed(seed: Seed) -> Seed:
    """Check a decoded seed's cross references and Cedar policies.

    Args:
        seed: The decoded seed.

    Returns:
        The same seed.

    Raises:
        SeedError: Naming the first problem found.
    """
    _check_references(seed)
    build_engines(seed.authz)
    return seed


def load_seed(seed: SeedSource = None) -> Seed:
    """Load and validate a seed.

    Args:
        seed: A path to a JSON file, an already-parsed mapping, or None for the default seed
            shipped in the package (``sandbox/default_seed.json``).

    Returns:
        The validated seed.

    Raises:
        SeedError: The file is missing or not JSON, a key is unknown or mistyped (the message
            carries msgspec's JSON path, e.g. ``$.userPools[0]``), or a check fails.
    """
    if seed is None:
        where = "the default seed"
    elif isinstance(seed, Mapping):
        where = "the seed mapping"
    else:
        where = f"seed file {os.fspath(seed)!r}"
    try:
        if seed is None:
            raw = resources.files("agent_identity.sandbox").joinpath("default_seed.json")
            decoded = msgspec.json.decode(raw.read_bytes(), type=Seed)
        elif isinstance(seed, Mapping):
            decoded = msgspec.convert(seed, type=Seed)
        else:
            decoded = msgspec.json.decode(Path(seed).read_bytes(), type=Seed)
    except OSError as exc:
        raise SeedError(f"cannot read the seed: {exc}") from exc
    except msgspec.ValidationError as exc:
        raise SeedError(f"invalid {where}: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise SeedError(f"{where} is not valid JSON: {exc}") from exc
    try:
        return validate_seed(decoded)
    except SeedError as exc:
        raise SeedError(f"invalid {where}: {exc}") from exc
