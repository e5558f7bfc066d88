"""The credential vault's messages and the typed client callers use.

Callers never build these envelopes: they hold a :class:`CredentialVaultClient`
(``CredentialVaultClient(vault.address)``) and call its methods. The envelopes are internal to
the process and never serialised; their ``repr`` hides TIPs, codes and imported values.

The session key and the TIP always come from trusted context (the host's session key, the
TIP cache), never from tool params or model output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from agent_identity.actors.vault_types import (
    BindingResult,
    CredentialListing,
    FetchResult,
    ProviderStatus,
    RoleCredentialsView,
    RoleListing,
    VaultStatistics,
)
from agent_identity.kernel import Address, Request

__all__ = [
    "ClearSession",
    "CompleteCallback",
    "CredentialVaultClient",
    "DescribeSession",
    "Fetch",
    "GetRole",
    "GetStatistics",
    "GrantLease",
    "ListCredentials",
    "ListRoles",
    "ReleaseLease",
    "SetBinding",
    "UnsetBinding",
    "VaultMsg",
]


@dataclass(frozen=True, slots=True)
class Fetch(Request[FetchResult]):
    """Obtain a credential (``/identity fetch``)."""

    session_key: str
    tip: str = field(repr=False)
    provider: str
    flow: str | None = None
    redirect_url: str | None = None
    scopes: str | Sequence[str] | None = None
    return_value: bool = False
    context: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CompleteCallback(Request[FetchResult]):
    """Complete a running 3LO flow with the code the app's own callback received."""

    session_key: str
    tip: str = field(repr=False)
    state: str = field(repr=False)
    code: str | None = field(default=None, repr=False)
    error: str | None = None
    return_value: bool = False


@dataclass(frozen=True, slots=True)
class ListCredentials(Request[CredentialListing]):
    """One page of providers with this session's status (``/identity list [page]``)."""

    session_key: str
    tip: str = field(repr=False)
    page: int = 1
    name: str | None = None
    flow: str | None = None
    kind: str | None = None


@dataclass(frozen=True, slots=True)
class ListRoles(Request[RoleListing]):
    """Role credential providers, optionally by name prefix (``/identity list-roles``)."""

    tip: str = field(repr=False)
    prefix: str | None = None


@dataclass(frozen=True, slots=True)
class GetRole(Request[RoleCredentialsView]):
    """STS keys of a role provider, stored for the session (``/identity get-role``)."""

    session_key: str
    tip: str = field(repr=False)
    provider: str
    use_tip: bool = False
    show_secrets: bool = False


@dataclass(frozen=True, slots=True)
class SetBinding(Request[BindingResult]):
    """Bind a provider's credential to an env var (``/identity set``).

    ``env_value`` is the gateway's value of ``env_var`` (if any), imported only when the
    session holds no credential for the provider.
    """

    session_key: str
    provider: str
    env_var: str
    env_value: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class UnsetBinding(Request[bool]):
    """Remove a provider's binding (``/identity unset``)."""

    session_key: str
    provider: str


@dataclass(frozen=True, slots=True)
class DescribeSession(Request[list[ProviderStatus]]):
    """The session's credentials and bindings, without any network call."""

    session_key: str


@dataclass(frozen=True, slots=True)
class ClearSession(Request[int]):
    """Forget a session's credentials, flows and leases (logout)."""

    session_key: str


@dataclass(frozen=True, slots=True)
class GrantLease(Request[dict[str, str]]):
    """The env overlay for one tool call, leased under ``lease_id``."""

    session_key: str
    lease_id: str


@dataclass(frozen=True, slots=True)
class ReleaseLease(Request[bool]):
    """Release a lease (``after_tool_call``)."""

    lease_id: str


@dataclass(frozen=True, slots=True)
class GetStatistics(Request[VaultStatistics]):
    """The vault's statistics."""


VaultMsg = (
    Fetch
    | CompleteCallback
    | ListCredentials
    | ListRoles
    | GetRole
    | SetBinding
    | UnsetBinding
    | DescribeSession
    | ClearSession
    | GrantLease
    | ReleaseLease
    | GetStatistics
)


class LeaseFastPath(Protocol):
    """What a vault serves synchronously in the caller's task (``before_tool_call``'s path)."""

    def lease_nowait(self, session_key: str, lease_id: str) -> dict[str, str] | None:
        """What ``GrantLease`` answers, if it needs no wait; ``None`` otherwise."""

    def release_nowait(self, lease_id: str) -> bool | None:
        """What ``ReleaseLease`` answers, if it needs no wait; ``None`` otherwise."""


class CredentialVaultClient:
    """Typed access to the credential vault through its address.

    Expected outcomes (not logged in, unknown provider, denied, invalid env var name, a
    control-plane error) are values in the results. The methods raise only for
    infrastructure failures: :class:`~agent_identity.kernel.ActorStopped` (the vault, or the
    session store behind a binding change, is not running) and
    :class:`~agent_identity.kernel.DeadlineExceeded` (the caller's deadline passed; for a
    mutating call the outcome is then unknown).

    Args:
        address: The vault's address (``vault.address``).
        leases: The vault's synchronous lease paths (the vault itself); without them
            :meth:`lease_nowait` and :meth:`release_nowait` always answer ``None``.
    """

    __slots__ = ("_address", "_leases")

    def __init__(self, address: Address[VaultMsg], *, leases: LeaseFastPath | None = None) -> None:
        self._address = address
        self._leases = leases

    def __repr__(self) -> str:
        return f"<CredentialVaultClient of {self._address.name!r}>"

    async def fetch(
        self,
        session_key: str,
        tip: str,
        provider: str,
        *,
        flow: str | None = None,
        redirect_url: str | None = None,
        scopes: str | Sequence[str] | None = None,
        return_value: bool = False,
        context: Mapping[str, str] | None = None,
    ) -> FetchResult:
        """Obtain a credential for ``provider`` and store it for the session.

        Args:
            session_key: The effective session key.
            tip: The session's current TIP (the ``IdentityToken`` of every call).
            provider: The credential provider's name.
            flow: ``oauth2-user``, ``oauth2-m2m`` or ``apikey``; inferred from
                ``ListCredentialProviders`` when None.
            redirect_url: Overrides the provider's OAuth2 redirect URL (``--redirectUrl``).
            scopes: Overrides its scopes (``--scopes``; a list, or commas/spaces).
            return_value: Also return the credential itself (API key or access token).
            context: Handed back in the :class:`CredentialAdded` event of a 3LO flow.

        Returns:
            Stored (API key, M2M, or a 3LO token the service already had), authorize (open
            ``auth_url``; the vault polls in the background and publishes an event when it
            ends), or failed.
        """
        return await self._address.ask(
            Fetch,
            session_key,
            tip,
            provider,
            flow,
            redirect_url,
            scopes,
            return_value,
            dict(context or {}),
        )

    async def complete_oauth2_callback(
        self,
        session_key: str,
        tip: str,
        state: str,
        code: str | None = None,
        *,
        error: str | None = None,
        return_value: bool = False,
    ) -> FetchResult:
        """Complete the session's 3LO flow whose authorization URL carried ``state``.

        For a fetch with its own ``redirect_url``: the app's callback receives ``code`` and
        ``state`` (or ``error``) and hands them over here; the vault calls
        ``Oauth2Callback``, stores the token and ends the background flow.
        """
        return await self._address.ask(
            CompleteCallback, session_key, tip, state, code, error, return_value
        )

    async def list_credentials(
        self,
        session_key: str,
        tip: str,
        page: int = 1,
        *,
        name: str | None = None,
        flow: str | None = None,
        type: str | None = None,  # noqa: A002 - the tool's parameter name
    ) -> CredentialListing:
        """One page (20 providers) of the control plane's providers, with the session's status."""
        return await self._address.ask(ListCredentials, session_key, tip, page, name, flow, type)

    async def list_roles(self, tip: str, prefix: str | None = None) -> RoleListing:
        """Role credential providers whose name starts with ``prefix`` (case-insensitive)."""
        return await self._address.ask(ListRoles, tip, prefix)

    async def get_role(
        self,
        session_key: str,
        tip: str,
        provider: str,
        *,
        use_tip: bool = False,
        show_secrets: bool = False,
    ) -> RoleCredentialsView:
        """Get STS keys of a role provider with the TIP, store them for the session.

        Args:
            session_key: The effective session key.
            tip: The session's TIP (always the ``IdentityToken``).
            provider: The role credential provider.
            use_tip: Bind the STS session to the TIP's identity (``WithOIDC``); the answer
                then names the subject the service read from the TIP.
            show_secrets: Show the keys unmasked.
        """
        return await self._address.ask(GetRole, session_key, tip, provider, use_tip, show_secrets)

    async def set_binding(
        self, session_key: str, provider: str, env_var: str, *, environ: Mapping[str, str]
    ) -> BindingResult:
        """Bind ``provider``'s credential to ``env_var`` for tool injection; persisted.

        Args:
            session_key: The effective session key.
            provider: The provider whose credential is injected.
            env_var: The variable name (``[A-Za-z_][A-Za-z0-9_]*``).
            environ: The gateway's environment; when the session holds no credential for
                ``provider``, ``environ[env_var]`` is imported as an API key. Only that one
                value is read.
        """
        value = environ.get(env_var)
        return await self._address.ask(SetBinding, session_key, provider, env_var, value)

    async def unset_binding(self, session_key: str, provider: str) -> bool:
        """Remove ``provider``'s binding; returns whether there was one. Persisted."""
        return await self._address.ask(UnsetBinding, session_key, provider)

    async def describe(self, session_key: str) -> list[ProviderStatus]:
        """The session's credentials and bindings (no network call; for ``status``)."""
        return await self._address.ask(DescribeSession, session_key)

    async def clear(self, session_key: str) -> int:
        """Forget the session's credentials, cancel its flows, drop its leases (logout).

        Bindings stay in the session store (its ``delete`` removes them at logout).

        Returns:
            How many credentials were dropped.
        """
        return await self._address.ask(ClearSession, session_key)

    async def lease(self, session_key: str, lease_id: str) -> dict[str, str]:
        """The env overlay for one tool call (``before_tool_call``), leased under ``lease_id``.

        Only the session's bound, present, unexpired credentials are in it. A lease id held
        by another session yields an empty overlay.
        """
        return await self._address.ask(GrantLease, session_key, lease_id)

    async def release(self, lease_id: str) -> bool:
        """Release a lease (``after_tool_call``); returns whether it was live."""
        return await self._address.ask(ReleaseLease, lease_id)

    def lease_nowait(self, session_key: str, lease_id: str) -> dict[str, str] | None:
        """:meth:`lease` in the caller's task when the vault can answer at once, else ``None``."""
        return None if self._leases is None else self._leases.lease_nowait(session_key, lease_id)

    def release_nowait(self, lease_id: str) -> bool | None:
        """:meth:`release` in the caller's task when the vault can answer at once, else ``None``."""
        return None if self._leases is None else self._leases.release_nowait(lease_id)

    async def statistics(self) -> VaultStatistics:
        """The vault's statistics."""
        return await self._address.ask(GetStatistics)
