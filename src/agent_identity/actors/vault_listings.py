"""The vault's ``/identity list``: control-plane providers with the session's own status.

:meth:`VaultListings.list_credentials` pages through the pool's OAuth2 and API-key providers
and marks what this session holds and binds; page 1 also lists what the session holds for
providers the control plane does not list (role keys, imported keys).
:func:`lookup_provider` finds one provider's entry by exact name (fetch uses it to infer a
flow).

Every method here runs in a background task of the vault's nursery (never in the mailbox
loop) and reads :class:`~agent_identity.actors.vault_state.VaultState` only synchronously
between awaits. Control-plane errors become values (their text is safe: the clients' errors
never hold secrets).
"""

from __future__ import annotations

import trio

from agent_identity.actors.vault_flows import infer_flow, listing_filter, service_message
from agent_identity.actors.vault_messages import ListCredentials
from agent_identity.actors.vault_state import VaultState
from agent_identity.actors.vault_types import (
    NOT_LOGGED_IN,
    CredentialKind,
    CredentialListing,
    ProviderStatus,
)
from agent_identity.volcengine.errors import VolcengineError
from agent_identity.volcengine.identity import IdentityClient
from agent_identity.volcengine.models import (
    CredentialProvider,
    CredentialProviderFilter,
    ListCredentialProvidersRequest,
)

__all__ = ["VaultListings", "lookup_provider"]

_LOOKUP_PAGE_SIZE = 100
_MAX_LOOKUP_PAGES = 10
_MAX_STORED_ONLY_LOOKUPS = 20
_MAX_PAGE = 10_000


async def lookup_provider(
    identity: IdentityClient, pool_name: str, provider: str
) -> CredentialProvider | None:
    """The control plane's entry of ``provider`` (exact name) in the pool, if it exists."""
    await trio.lowlevel.checkpoint()
    for number in range(1, _MAX_LOOKUP_PAGES + 1):
        page = await identity.list_credential_providers(
            ListCredentialProvidersRequest(
                page_number=number,
                page_size=_LOOKUP_PAGE_SIZE,
                pool_name=pool_name,
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


class VaultListings:
    """Lists the pool's credential providers for the vault, with a session's status.

    Args:
        identity: The Identity client.
        pool_name: The workload pool of every call.
        page_size: Providers per page of ``list_credentials``.
    """

    def __init__(self, identity: IdentityClient, *, pool_name: str, page_size: int) -> None:
        self.identity = identity
        self.pool = pool_name
        self.page_size = page_size

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
                if await lookup_provider(self.identity, self.pool, name) is not None:
                    continue
            found.append(state.stored_status(name, bindings, msg.session_key, now))
        return found
