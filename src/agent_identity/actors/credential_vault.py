"""The credential vault actor: per-session credentials in memory, fetch flows, bindings, leases.

What it holds, per effective session key, in memory only (lost on restart, dropped on logout):
API keys, OAuth2 access tokens (with their expiry) and STS role keys. Bindings (which
provider's credential is injected as which env var) are persisted through the session store
and cached here. Nothing secret is ever logged; every ``repr`` masks secrets::

    vault = CredentialVault(identity_client, store.client, pool_name="default")
    services = Supervisor([vault.child_spec(), ...])
    creds = vault.client
    result = await creds.fetch(session_key, tip, "google")          # FetchResult
    overlay = await creds.lease(session_key, f"{run_id}:{call_id}")  # before_tool_call
    await creds.release(f"{run_id}:{call_id}")                       # after_tool_call

The mailbox never waits for the network or the disk. A request that needs a control-plane
call or the session store is answered by a task in the vault's own nursery (beside the
mailbox loop, like the session store's writer); the caller's deadline travels with it. The
hot path, :meth:`CredentialVaultClient.lease`, is answered from memory in one hop once the
session's bindings are cached (they are loaded as soon as the session stores a credential).

This module routes messages and runs the background tasks; the work itself lives beside it,
one concern each: :mod:`~agent_identity.actors.vault_fetch` (fetches and 3LO flows),
:mod:`~agent_identity.actors.vault_listings` (``/identity list``),
:mod:`~agent_identity.actors.vault_roles` (role providers and their keys),
:mod:`~agent_identity.actors.vault_bindings` (bindings) and
:mod:`~agent_identity.actors.vault_state` (the state and its synchronous operations).

Flows (see :mod:`agent_identity.actors.vault_flows` for inference and polling):

* **API key** (``GetResourceApiKey``) and **M2M** (``GetResourceOauth2Token``, ``Flow=M2M``)
  store the credential at once and answer ``success``/``message`` (``value`` only when
  ``return_value`` is asked for).
* **3LO** (``Flow=USER_FEDERATION``) answers the ``AuthorizationUrl``; a background flow then
  polls ``GetResourceOauth2Token`` with identical parameters (backoff on Trio's clock) until
  the token arrives, the service drops the authorization (denied) or the flow times out
  (5 minutes by default). A flow can also be completed by
  :meth:`CredentialVaultClient.complete_oauth2_callback` (``Oauth2Callback``) when the fetch
  used the app's own ``redirect_url``. Its end is published on :class:`VaultEvents`:
  :class:`CredentialAdded` or :class:`CredentialFlowFailed`. One flow per session and
  provider: a new fetch replaces the running one.
* **Role keys** (``GetRoleCredentials`` with the TIP) are stored by ``get_role``; bound, they
  are injected as ``P_ACCESS_KEY``/``P_SECRET_KEY``/``P_SESSION_TOKEN`` (see
  :mod:`agent_identity.actors.vault_leases`).

Logout: :meth:`CredentialVaultClient.clear` drops the session's credentials, cancels its
flows and drops its leases; a request of that session still in flight stores nothing.

Failures: expected outcomes are values. A control-plane error is reported in the result
(its text is safe: the clients' errors never hold secrets). An unexpected exception in the
mailbox loop or in a background task crashes the vault (its supervisor restarts it, empty);
callers still waiting get :class:`~agent_identity.kernel.ActorStopped`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import ClassVar, TypeVar, assert_never, final

import trio

from agent_identity.actors.session_store_messages import SessionStoreClient
from agent_identity.actors.vault_bindings import VaultBindings, binding_refusal
from agent_identity.actors.vault_events import VaultEvents
from agent_identity.actors.vault_fetch import VaultFetcher
from agent_identity.actors.vault_flows import DEFAULT_POLL_POLICY, PollPolicy
from agent_identity.actors.vault_leases import DEFAULT_LEASE_TTL
from agent_identity.actors.vault_listings import VaultListings
from agent_identity.actors.vault_messages import (
    ClearSession,
    CompleteCallback,
    CredentialVaultClient,
    DescribeSession,
    Fetch,
    GetRole,
    GetStatistics,
    GrantLease,
    ListCredentials,
    ListRoles,
    ReleaseLease,
    SetBinding,
    UnsetBinding,
    VaultMsg,
)
from agent_identity.actors.vault_roles import VaultRoles
from agent_identity.actors.vault_state import VaultCounters, VaultState
from agent_identity.actors.vault_types import ProviderStatus, VaultStatistics
from agent_identity.kernel import ActorStopped, DeadlineExceeded, NurseryActor, Reply
from agent_identity.volcengine.identity import IdentityClient

__all__ = [
    "DEFAULT_MAX_CONCURRENT_CALLS",
    "DEFAULT_PAGE_SIZE",
    "CredentialVault",
    "CredentialVaultClient",
    "VaultEvents",
]

T = TypeVar("T")

#: Providers per page of ``/identity list``.
DEFAULT_PAGE_SIZE = 20
#: Control-plane / store calls served at once; more wait (outside the mailbox).
DEFAULT_MAX_CONCURRENT_CALLS = 32


@final
class CredentialVault(NurseryActor[VaultMsg]):
    """The credential vault actor; see the module docstring.

    Talk to it through ``CredentialVaultClient(vault.address)`` (or :attr:`client`).

    Args:
        identity: The Identity control-plane client.
        sessions: The session store, where bindings are persisted.
        pool_name: The workload pool (``identity.workloadPoolName``) of every call.
        user_pool_name: When set, ``list_roles`` shows only role providers of this user pool
            (or of none).
        events: Where flow outcomes are published; a new one by default.
        poll: How background 3LO flows poll.
        lease_ttl: Seconds an unreleased lease lives.
        page_size: Providers per page of ``list_credentials``.
        max_concurrent_calls: Background requests served at once.
        wall: Wall-clock seconds, to convert the service's timestamps to Trio's clock.
        name: The actor's name.

    Raises:
        ValueError: A non-positive TTL, page size or concurrency.
    """

    mailbox_size: ClassVar[int] = 64

    def __init__(
        self,
        identity: IdentityClient,
        sessions: SessionStoreClient,
        *,
        pool_name: str = "default",
        user_pool_name: str | None = None,
        events: VaultEvents | None = None,
        poll: PollPolicy = DEFAULT_POLL_POLICY,
        lease_ttl: float = DEFAULT_LEASE_TTL,
        page_size: int = DEFAULT_PAGE_SIZE,
        max_concurrent_calls: int = DEFAULT_MAX_CONCURRENT_CALLS,
        wall: Callable[[], float] = time.time,
        name: str = "credential_vault",
    ) -> None:
        super().__init__(name=name)
        if lease_ttl <= 0 or page_size < 1 or max_concurrent_calls < 1:
            raise ValueError("lease_ttl, page_size and max_concurrent_calls must be positive")
        self._sessions = sessions
        self.events = events if events is not None else VaultEvents()
        self._fetcher = VaultFetcher(identity, pool_name=pool_name, poll=poll)
        self._listings = VaultListings(identity, pool_name=pool_name, page_size=page_size)
        self._roles = VaultRoles(
            identity, pool_name=pool_name, user_pool_name=user_pool_name, wall=wall
        )
        self._bindings = VaultBindings(sessions)
        self._lease_ttl = lease_ttl
        self._max_calls = max_concurrent_calls
        self._counters = VaultCounters()
        self._state: VaultState | None = None

    @property
    def client(self) -> CredentialVaultClient:
        """A typed client of this vault."""
        return CredentialVaultClient(self.address, leases=self)

    async def on_start(self) -> None:
        """Start every run empty: credentials are in memory only."""
        await trio.lowlevel.checkpoint()
        state = VaultState(
            self._sessions,
            self.events,
            self._counters,
            self._spawn,
            lease_ttl=self._lease_ttl,
            max_calls=self._max_calls,
        )
        self._state = state
        self._spawn(state.sweep_leases)

    async def handle(self, msg: VaultMsg) -> None:
        """Answer from memory, or hand the request to a background task."""
        await trio.lowlevel.checkpoint()  # some branches never await
        state = self._state
        if state is None:  # pragma: no cover - on_start installs it before the mailbox opens
            raise RuntimeError("credential vault state missing")
        started = state.clears
        fetcher, listings = self._fetcher, self._listings
        roles, bindings = self._roles, self._bindings
        match msg:
            case Fetch(reply=reply):
                self._counters.fetches += 1
                self._serve(state, reply, functools.partial(fetcher.fetch, state, msg, started))
            case CompleteCallback(reply=reply):
                op = functools.partial(fetcher.complete_callback, state, msg, started)
                self._serve(state, reply, op)
            case ListCredentials(reply=reply):
                self._serve(state, reply, functools.partial(listings.list_credentials, state, msg))
            case ListRoles(reply=reply):
                self._serve(state, reply, functools.partial(roles.list_roles, msg))
            case GetRole(reply=reply):
                self._serve(state, reply, functools.partial(roles.get_role, state, msg, started))
            case SetBinding():
                self._set_binding(state, msg, started)
            case UnsetBinding(reply=reply, session_key=key, provider=provider):
                self._serve(state, reply, functools.partial(bindings.unbind, state, key, provider))
            case DescribeSession(reply=reply, session_key=key):
                self._serve(state, reply, functools.partial(self._describe, state, key))
            case ClearSession(reply=reply, session_key=key):
                reply.set(state.clear(key))
            case GrantLease(reply=reply, session_key=key, lease_id=lease_id):
                self._lease(state, reply, key, lease_id)
            case ReleaseLease(reply=reply, lease_id=lease_id):
                reply.set(state.leases.release(lease_id))
            case GetStatistics(reply=reply):
                reply.set(self.vault_statistics())
            case _:
                assert_never(msg)

    def vault_statistics(self) -> VaultStatistics:
        """Return the vault's statistics (what ``CredentialVaultClient.statistics`` answers)."""
        state = self._state
        if state is None:  # before the first start: an empty vault
            state = VaultState(
                self._sessions, self.events, self._counters, self._spawn, lease_ttl=1, max_calls=1
            )
        kinds = state.kinds()
        leases = state.leases
        counters = self._counters
        return VaultStatistics(
            actor=self.statistics(),
            sessions=sum(1 for credentials in state.credentials.values() if credentials),
            credentials=sum(kinds.values()),
            credentials_by_kind=kinds,
            bound_sessions=sum(1 for bindings in state.bindings.values() if bindings),
            flows_running=len(state.flows),
            flows_completed=counters.flows_completed,
            flows_failed=counters.flows_failed,
            calls_running=state.calls,
            leases_active=len(leases),
            leases_granted=leases.granted,
            leases_released=leases.released,
            leases_expired=leases.expired,
            fetches=counters.fetches,
            polls=counters.polls,
            events_dropped=self.events.dropped,
        )

    # -- background tasks ----------------------------------------------------------------

    def _spawn(self, fn: Callable[[], Awaitable[None]]) -> None:
        nursery = self._nursery
        if nursery is None:  # pragma: no cover - run() opens it before on_start
            raise RuntimeError("credential vault nursery missing")
        nursery.start_soon(fn)

    def _serve(self, state: VaultState, reply: Reply[T], op: Callable[[], Awaitable[T]]) -> None:
        """Answer ``reply`` from a background task running ``op`` under the caller's deadline."""

        async def serve() -> None:
            state.calls += 1
            try:
                await self._answer(state, reply, op)
            finally:
                state.calls -= 1

        self._spawn(serve)

    async def _answer(
        self, state: VaultState, reply: Reply[T], op: Callable[[], Awaitable[T]]
    ) -> None:
        with trio.move_on_at(reply.deadline):
            await trio.lowlevel.checkpoint()  # a deadline already passed ends here
            try:
                async with state.limiter:
                    value = await op()
            except (ActorStopped, DeadlineExceeded) as exc:  # the session store's, passed on
                reply.fail(exc)
            else:
                reply.set(value)
            return
        reply.fail(DeadlineExceeded(self.name, reply.deadline))

    # -- bindings ------------------------------------------------------------------------

    async def _describe(self, state: VaultState, key: str) -> list[ProviderStatus]:
        bindings = await state.bindings_of(key)
        names = sorted(set(state.credentials_of(key)) | set(bindings))
        now = trio.current_time()
        return [state.stored_status(name, bindings, key, now) for name in names]

    def _set_binding(self, state: VaultState, msg: SetBinding, started: int) -> None:
        # Bad names are refused from the mailbox at once; only a valid binding needs the store.
        provider = msg.provider.strip()
        refused = binding_refusal(provider, msg.env_var)
        if refused is not None:
            msg.reply.set(refused)
            return
        op = functools.partial(self._bindings.bind, state, msg, provider, started)
        self._serve(state, msg.reply, op)

    # -- leases --------------------------------------------------------------------------

    def _lease(
        self, state: VaultState, reply: Reply[dict[str, str]], key: str, lease_id: str
    ) -> None:
        granted = self._lease_from_memory(state, key, lease_id)
        if granted is not None:
            reply.set(granted)
            return

        async def after_load() -> dict[str, str]:
            return state.grant(key, lease_id, await state.bindings_of(key))

        self._serve(state, reply, after_load)

    @staticmethod
    def _lease_from_memory(state: VaultState, key: str, lease_id: str) -> dict[str, str] | None:
        """The lease when the session's bindings are in memory; ``None``: load them first."""
        if not state.credentials_of(key):
            return {}  # nothing to inject, nothing to record
        cached = state.bindings.get(key)
        return None if cached is None else state.grant(key, lease_id, cached)

    def lease_nowait(self, session_key: str, lease_id: str) -> dict[str, str] | None:
        """``GrantLease`` in the caller's task, when it needs no wait (``before_tool_call``).

        A mailbox round trip costs more than the rest of the hook. This does what the
        handler does when the session's bindings are in memory, synchronously: Trio runs
        one task at a time, so it runs between two whole steps of the vault, like a message
        handled at once.

        Returns:
            The overlay, or ``None`` when the answer needs the actor: the vault is not
            running (or restarting), or the session's bindings are not loaded yet.
        """
        state = self._state
        if state is None or not self.running:
            return None
        return self._lease_from_memory(state, session_key, lease_id)

    def release_nowait(self, lease_id: str) -> bool | None:
        """``ReleaseLease`` in the caller's task (``after_tool_call``); ``None``: not running."""
        state = self._state
        if state is None or not self.running:
            return None
        return state.leases.release(lease_id)
