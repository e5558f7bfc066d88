"""Building the sandbox's in-memory world from a seed.

The seed is declarative and human-edited (names, camelCase JSON); the state is what the
handlers need (TRNs, ids, objects linked to each other). This module is the one translation.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from agent_identity.sandbox.seed import OAuth2ProviderSeed, Seed, build_engines
from agent_identity.sandbox.state import (
    ApiKeyProvider,
    Client,
    IdentityProvider,
    OAuth2Provider,
    Role,
    RoleProvider,
    SandboxState,
    User,
    Workload,
    WorkloadPool,
)

__all__ = ["build_state"]


def build_state(seed: Seed, *, clock: Callable[[], float] = time.time) -> SandboxState:
    """Build the world a (validated) seed describes.

    Args:
        seed: The seed (already validated by :func:`load_seed`).
        clock: Wall-clock seconds for timestamps, token times and key expiry.

    Returns:
        The state.
    """
    now = clock()
    account = seed.account
    state = SandboxState(
        region=seed.region,
        account_id=account.account_id,
        root_access_key_id=account.access_key_id,
        root_secret_access_key=account.secret_access_key,
        clock=clock,
    )
    for index, role in enumerate(seed.roles):
        state.roles[role.name] = Role(
            role.name, state.role_trn(role.name), f"{1000 + index}", role.description
        )
    for pool_seed in seed.workload_pools:
        pool = WorkloadPool(
            name=pool_seed.name,
            id=pool_seed.id,
            trn=f"trn:id:{seed.region}:{account.account_id}:workloadpool/{pool_seed.name}",
            description=pool_seed.description,
            created_at=now,
        )
        for w in pool_seed.workloads:
            pool.workloads[w.name] = Workload(
                name=w.name,
                pool_name=pool.name,
                trn=state.workload_trn(pool.name, w.name),
                category=w.category,
                description=w.description,
                allowed_return_urls=list(w.allowed_resource_oauth2_return_urls),
                created_at=now,
                updated_at=now,
            )
        state.workload_pools[pool.name] = pool
    _add_providers(state, seed, now)
    for up_seed in seed.user_pools:
        up = state.add_user_pool(up_seed.uid, up_seed.name, up_seed.description)
        for c in up_seed.clients:
            up.clients[c.uid] = Client(
                uid=c.uid,
                name=c.name,
                secret=c.secret,
                client_type=c.type,
                allowed_callback_urls=list(c.allowed_callback_urls),
                allowed_logout_urls=list(c.allowed_logout_urls),
                created_at=now,
                updated_at=now,
            )
        for u in up_seed.users:
            up.users[u.username] = User(u.username, u.password, u.sub, u.email, u.name)
        for index, idp in enumerate(up_seed.identity_providers):
            uid = idp.uid or f"idp-{up.uid}-{index}"
            up.identity_providers.append(
                IdentityProvider(uid, idp.name, idp.provider, idp.connection_type, idp.enabled, now)
            )
    _link_role_providers(state, seed)
    state.engines = build_engines(seed.authz)
    return state


def _add_providers(state: SandboxState, seed: Seed, now: float) -> None:
    prefix = f"trn:id:{seed.region}:{seed.account.account_id}"
    for p in seed.credential_providers:
        trn = f"{prefix}:workloadpool/{p.pool_name}/credentialprovider/{p.name}"
        provider: OAuth2Provider | ApiKeyProvider
        if isinstance(p, OAuth2ProviderSeed):
            provider = OAuth2Provider(
                name=p.name,
                pool_name=p.pool_name,
                flow=p.flow,
                client_id=p.client_id,
                client_secret=p.client_secret,
                scopes=list(p.scopes),
                trn=trn,
                vendor=p.vendor,
                created_at=now,
            )
        else:
            provider = ApiKeyProvider(
                name=p.name,
                pool_name=p.pool_name,
                api_key=p.api_key,
                metadata=[
                    {"Location": m.location, "ParameterName": m.parameter_name, "Prefix": m.prefix}
                    for m in p.api_key_metadata
                ],
                trn=trn,
                vendor=p.vendor,
                created_at=now,
            )
        state.providers[(p.pool_name, p.name)] = provider


def _link_role_providers(state: SandboxState, seed: Seed) -> None:
    prefix = f"trn:id:{seed.region}:{seed.account.account_id}"
    for index, rp in enumerate(seed.role_credential_providers):
        user_pool = state.user_pool(rp.user_pool) if rp.user_pool else None
        client = None
        if user_pool is not None and rp.user_pool_client:
            client = next(
                (c for c in user_pool.clients.values() if rp.user_pool_client in {c.uid, c.name}),
                None,
            )
        state.role_providers[rp.name] = RoleProvider(
            name=rp.name,
            pool_name=rp.pool_name,
            role=state.roles[rp.role],
            provider_id=f"rcp-{index + 1:04d}",
            trn=f"{prefix}:workloadpool/{rp.pool_name}/rolecredentialprovider/{rp.name}",
            vendor=rp.vendor,
            user_pool_uid=user_pool.uid if user_pool else None,
            user_pool_name=user_pool.name if user_pool else None,
            client_uid=client.uid if client else None,
            client_name=client.name if client else None,
            created_at=state.now(),
        )
