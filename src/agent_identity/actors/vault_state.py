"""The state of one run of the credential vault, and the synchronous operations on it.

Only the vault's own tasks touch a :class:`VaultState` (the mailbox loop and the background
tasks in the vault's nursery), and every touch between two awaits is synchronous, so every
reader sees the state between two whole changes. A restart of the vault builds a new, empty
state: credentials are in memory only.

Two guards keep one session's data out of another's and out of a logged-out session:

* **Logout generations.** :meth:`VaultState.clear` bumps a counter and records it for the
  session; a request that started before (its ``started`` generation is older) stores
  nothing (:meth:`VaultState.store`).
* **Binding epochs.** Bindings are cached from the session store; every change bumps the
  session's epoch, and a load that overlapped a change is discarded and retried, so the cache
  is never older than the store.
"""

from __future__ import annotations

import collections
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import trio

from agent_identity.actors.session_store_messages import SessionStoreClient
from agent_identity.actors.vault_events import CredentialAdded, CredentialFlowFailed, VaultEvents
from agent_identity.actors.vault_leases import LeaseTable, env_overlay
from agent_identity.actors.vault_types import Credential, FetchFailure, FetchFlow, ProviderStatus
from agent_identity.kernel import ActorStopped, DeadlineExceeded
from agent_identity.volcengine.models import GetResourceOauth2TokenRequest, ResourceOauth2Token

__all__ = ["FlowEnd", "PendingFlow", "VaultCounters", "VaultState"]

logger = logging.getLogger("agent_identity.actors.credential_vault")

_FLOW_VALUES = frozenset(flow.value for flow in FetchFlow)

#: Starts a background task in the vault's nursery.
Spawn = Callable[[Callable[[], Awaitable[None]]], None]


@dataclass(slots=True)
class VaultCounters:
    """Lifetime counters of the vault (they survive restarts)."""

    fetches: int = 0
    polls: int = 0
    flows_completed: int = 0
    flows_failed: int = 0


@dataclass(eq=False, slots=True)
class PendingFlow:
    """A background 3LO flow: the request it repeats and the authorization it waits for.

    Attributes:
        session_key: The session it stores into.
        provider: The provider.
        request: The ``GetResourceOauth2Token`` request, repeated verbatim to poll.
        first: The first answer (its ``AuthorizationUrl`` and ``SessionUri``).
        state: The ``state`` of the authorization URL (what a callback brings back).
        deadline: When the flow gives up, on Trio's clock.
        context: Handed back in the flow's event.
        scope: Cancelled by a logout, a newer fetch or a completed callback.
    """

    session_key: str
    provider: str
    request: GetResourceOauth2TokenRequest = field(repr=False)
    first: ResourceOauth2Token = field(repr=False)
    state: str | None = field(repr=False)
    deadline: float
    context: Mapping[str, str] = field(default_factory=dict)
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)


@dataclass(frozen=True, slots=True)
class FlowEnd:
    """How a flow ended: a credential, or a failure and its user-safe message."""

    credential: Credential | None = None
    failure: FetchFailure = FetchFailure.SERVICE_ERROR
    message: str = ""


class VaultState:
    """Credentials, cached bindings, flows and leases of one run; see the module docstring.

    Args:
        sessions: The session store (bindings are loaded from it).
        events: Where flow outcomes are published.
        counters: The vault's lifetime counters.
        spawn: Starts a background task in the vault's nursery.
        lease_ttl: Seconds an unreleased lease lives.
        max_calls: Background requests served at once.
    """

    def __init__(
        self,
        sessions: SessionStoreClient,
        events: VaultEvents,
        counters: VaultCounters,
        spawn: Spawn,
        *,
        lease_ttl: float,
        max_calls: int,
    ) -> None:
        self.sessions = sessions
        self.events = events
        self.counters = counters
        self.spawn = spawn
        self.credentials: dict[str, dict[str, Credential]] = {}
        self.bindings: dict[str, dict[str, str]] = {}  # absent: not loaded yet
        self.binding_epochs: dict[str, int] = {}
        self.loading: dict[str, trio.Event] = {}
        self.flows: dict[tuple[str, str], PendingFlow] = {}
        self.leases = LeaseTable(lease_ttl)
        self.lease_added = trio.Event()
        #: When the lease sweeper wakes up next (``inf`` until it first runs).
        self.sweep_at = math.inf
        self.limiter = trio.CapacityLimiter(max_calls)
        self.clears = 0
        self.cleared_at: dict[str, int] = {}
        self.calls = 0

    # -- credentials ---------------------------------------------------------------------

    def cleared_since(self, session_key: str, started: int) -> bool:
        """Whether the session logged out after generation ``started``."""
        return self.cleared_at.get(session_key, -1) > started

    def store(self, session_key: str, credential: Credential, started: int) -> bool:
        """Store a credential unless the session logged out since ``started``."""
        if self.cleared_since(session_key, started):
            logger.info(
                "dropped a %s credential for %s: the session logged out meanwhile",
                credential.provider,
                session_key,
            )
            return False
        self.credentials.setdefault(session_key, {})[credential.provider] = credential
        logger.info(
            "stored a %s credential (%s) for %s", credential.provider, credential.kind, session_key
        )
        if session_key not in self.bindings and session_key not in self.loading:
            # Cache the bindings now, so the first tool call is answered from memory.
            self.spawn(lambda: self._prefetch_bindings(session_key))
        return True

    def credentials_of(self, session_key: str) -> dict[str, Credential]:
        """The session's credentials by provider (a live view; do not mutate)."""
        return self.credentials.get(session_key, {})

    def clear(self, session_key: str) -> int:
        """Forget a session: credentials, flows (cancelled), leases, cached bindings."""
        self.clears += 1
        self.cleared_at[session_key] = self.clears
        dropped = self.credentials.pop(session_key, {})
        for key in [key for key in self.flows if key[0] == session_key]:
            self.flows.pop(key).scope.cancel()
        leases = self.leases.drop_session(session_key)
        self.bindings.pop(session_key, None)
        self.bump_bindings(session_key)
        logger.info(
            "cleared %s: %d credentials dropped, %d leases released",
            session_key,
            len(dropped),
            leases,
        )
        return len(dropped)

    def status(
        self,
        name: str,
        kind: str,
        flow: FetchFlow | None,
        bindings: Mapping[str, str],
        session_key: str,
        now: float,
    ) -> ProviderStatus:
        """A provider's status for the session (``kind``/``flow`` from the control plane)."""
        credential = self.credentials_of(session_key).get(name)
        if credential is None:
            return ProviderStatus(name=name, type=kind, flow=flow, env_var=bindings.get(name))
        return ProviderStatus(
            name=name,
            type=kind or credential.kind.value,
            flow=flow,
            stored=True,
            expired=credential.expired(now),
            env_var=bindings.get(name),
            expires_in=credential.expires_in(now),
            source=credential.source,
        )

    def stored_status(
        self, name: str, bindings: Mapping[str, str], session_key: str, now: float
    ) -> ProviderStatus:
        """A provider's status from what the session holds (no control-plane data)."""
        credential = self.credentials_of(session_key).get(name)
        kind = credential.kind.value if credential is not None else ""
        flow = None
        if credential is not None and credential.source in _FLOW_VALUES:
            flow = FetchFlow(credential.source)
        return self.status(name, kind, flow, bindings, session_key, now)

    def kinds(self) -> dict[str, int]:
        """How many credentials are held, per kind."""
        counts = collections.Counter(
            credential.kind.value
            for credentials in self.credentials.values()
            for credential in credentials.values()
        )
        return dict(counts)

    # -- bindings ------------------------------------------------------------------------

    def bump_bindings(self, session_key: str) -> None:
        """Invalidate loads of the session's bindings that are in flight."""
        self.binding_epochs[session_key] = self.binding_epochs.get(session_key, 0) + 1

    def note_binding(self, session_key: str, provider: str, env_var: str | None) -> None:
        """Apply a persisted binding change (``None``: unbound) to the cache."""
        self.bump_bindings(session_key)
        cached = self.bindings.get(session_key)
        if cached is None:
            return
        rest = {name: var for name, var in cached.items() if name != provider}
        self.bindings[session_key] = rest if env_var is None else {**rest, provider: env_var}

    async def bindings_of(self, session_key: str) -> dict[str, str]:
        """The session's bindings, from the cache or (once, coalesced) from the store.

        Raises:
            ActorStopped: The session store is not running.
            DeadlineExceeded: The store did not answer in time.
        """
        while True:
            cached = self.bindings.get(session_key)
            if cached is not None:
                await trio.lowlevel.checkpoint()
                return cached
            loading = self.loading.get(session_key)
            if loading is not None:
                await loading.wait()
                continue
            done = trio.Event()
            self.loading[session_key] = done
            epoch = self.binding_epochs.get(session_key, 0)
            try:
                loaded = await self.sessions.bindings(session_key)
            finally:
                del self.loading[session_key]
                done.set()
            if self.binding_epochs.get(session_key, 0) == epoch:
                self.bindings[session_key] = loaded
                return loaded
            # A binding changed (or the session was cleared) during the load: load again.

    async def _prefetch_bindings(self, session_key: str) -> None:
        await trio.lowlevel.checkpoint()
        try:
            await self.bindings_of(session_key)
        except (ActorStopped, DeadlineExceeded):
            logger.warning("could not load the bindings of %s from the session store", session_key)

    # -- flows ---------------------------------------------------------------------------

    def add_flow(self, flow: PendingFlow) -> None:
        """Register a flow, replacing (and cancelling) the session's flow for that provider."""
        key = (flow.session_key, flow.provider)
        previous = self.flows.pop(key, None)
        if previous is not None:
            previous.scope.cancel()
        self.flows[key] = flow

    def flow_for_state(self, session_key: str, state: str) -> PendingFlow | None:
        """The session's running flow whose authorization URL carried ``state``."""
        for flow in self.flows.values():
            if flow.session_key == session_key and flow.state == state:
                return flow
        return None

    def end_flow(self, flow: PendingFlow, end: FlowEnd) -> bool:
        """Finish a flow once: store its credential, publish its event.

        Returns:
            False if the flow had already ended (completed, superseded or cleared).
        """
        key = (flow.session_key, flow.provider)
        if self.flows.get(key) is not flow:
            return False
        del self.flows[key]
        flow.scope.cancel()
        if end.credential is not None:
            # The flow is still registered, so the session has not logged out since it began.
            self.store(flow.session_key, end.credential, self.clears)
            self.counters.flows_completed += 1
            self.events.publish(CredentialAdded(flow.session_key, flow.provider, flow.context))
            return True
        self.counters.flows_failed += 1
        logger.info("3LO flow for %s of %s ended: %s", flow.provider, flow.session_key, end.failure)
        self.events.publish(
            CredentialFlowFailed(
                flow.session_key, flow.provider, end.failure, end.message, flow.context
            )
        )
        return True

    # -- leases --------------------------------------------------------------------------

    def grant(self, session_key: str, lease_id: str, bindings: Mapping[str, str]) -> dict[str, str]:
        """Compute the session's overlay and lease it under ``lease_id``.

        The overlay comes from this session's credentials and bindings only. Nothing is
        recorded when it is empty; it is refused (empty) when ``lease_id`` is held by another
        session.
        """
        now = trio.current_time()
        overlay = env_overlay(self.credentials_of(session_key), bindings, now)
        if not overlay:
            return {}
        if not self.leases.grant(lease_id, session_key, overlay, now):
            logger.warning("lease %r is held by another session; nothing injected", lease_id)
            return {}
        # Every lease lives the same TTL, so a new one never expires before the sweeper's
        # wake-up (even an idle sweeper wakes a TTL after it last ran): waking it on every
        # tool call would cost a task switch per call for nothing. The check stays for a
        # clock that jumped back.
        if self.leases.next_expiry() < self.sweep_at:
            self.lease_added.set()
        return overlay

    async def sweep_leases(self) -> None:
        """Drop leases whose TTL passed, waking at the next expiry (or when one is added)."""
        while True:
            upcoming = self.leases.next_expiry()
            # Idle (no lease): look again a TTL from now; no lease granted meanwhile can
            # expire before that.
            self.sweep_at = (
                upcoming if upcoming < math.inf else trio.current_time() + self.leases.ttl
            )
            with trio.move_on_at(self.sweep_at):
                await self.lease_added.wait()
            self.lease_added = trio.Event()
            swept = self.leases.sweep(trio.current_time())
            if swept:
                logger.debug("%d credential leases expired unreleased", swept)
