"""The vault's role credential providers: ``/identity list-roles`` and ``get-role``.

``list_roles`` lists the pool's role providers whose name starts with a prefix (only those of
the configured user pool, when one is set). ``get_role`` gets temporary STS keys with the
TIP (``GetRoleCredentials``) and stores them for the session, so a binding injects them into
tool calls (see :mod:`agent_identity.actors.vault_leases`).

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
    expiry_from_timestamp,
    role_info,
    role_view,
    service_message,
)
from agent_identity.actors.vault_leases import role_env_names
from agent_identity.actors.vault_messages import GetRole, ListRoles
from agent_identity.actors.vault_state import VaultState
from agent_identity.actors.vault_types import (
    LOGGED_OUT,
    NOT_LOGGED_IN,
    Credential,
    CredentialKind,
    RoleCredentialsView,
    RoleListing,
)
from agent_identity.volcengine.errors import VolcengineError, is_not_found
from agent_identity.volcengine.identity import IdentityClient
from agent_identity.volcengine.models import (
    GetRoleCredentialsRequest,
    ListRoleCredentialProvidersRequest,
    RoleCredentialProvider,
    RoleCredentialProviderFilter,
)

__all__ = ["VaultRoles"]

# The vault's own logger: these calls are the vault's work, wherever the code lives.
logger = logging.getLogger("agent_identity.actors.credential_vault")

# list_roles pages through every match (a prefix can match many), up to a bound.
_ROLE_PAGE_SIZE = 100
_MAX_ROLE_PAGES = 10


class VaultRoles:
    """Lists role providers and gets their STS keys for the vault.

    Args:
        identity: The Identity client.
        pool_name: The workload pool of every call.
        user_pool_name: When set, role listings keep only this user pool's providers.
        wall: Wall-clock seconds (to convert the service's timestamps).
    """

    def __init__(
        self,
        identity: IdentityClient,
        *,
        pool_name: str,
        user_pool_name: str | None,
        wall: Callable[[], float],
    ) -> None:
        self.identity = identity
        self.pool = pool_name
        self.user_pool = user_pool_name
        self.wall = wall

    async def list_roles(self, msg: ListRoles) -> RoleListing:
        """Serve ``list_roles``: role providers whose name starts with the prefix."""
        await trio.lowlevel.checkpoint()
        if not msg.tip:
            return RoleListing(ok=False, message=NOT_LOGGED_IN)
        prefix = (msg.prefix or "").strip()
        found: list[RoleCredentialProvider] = []
        try:
            for number in range(1, _MAX_ROLE_PAGES + 1):
                page = await self.identity.list_role_credential_providers(
                    ListRoleCredentialProvidersRequest(
                        page_number=number,
                        page_size=_ROLE_PAGE_SIZE,
                        sort_field="Name",
                        filter=RoleCredentialProviderFilter(
                            name=prefix or None, pool_name=self.pool
                        ),
                    )
                )
                found.extend(page.role_credential_providers)
                last = number * _ROLE_PAGE_SIZE >= page.total_count
                if last or not page.role_credential_providers:
                    break
        except VolcengineError as exc:
            return RoleListing(ok=False, message=service_message("Listing role providers", exc))
        roles = [role_info(entry) for entry in found]
        roles = [role for role in roles if role.name.lower().startswith(prefix.lower())]
        if self.user_pool:
            roles = [role for role in roles if role.user_pool_name in {"", self.user_pool}]
        return RoleListing(roles=roles)

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
