"""The handle of a running identity system, and its statistics.

:class:`Identity` is what ``async with open_identity(config) as ident:`` yields: typed
clients of the actors (``sessions``, ``login_broker``, ``tips``, ``vault``, ``approvals``),
the shared services (``identity_client``, ``permission``, ``risk``, ``notifier``), the login
flow and the ASGI callback app (``None`` when no ``userpool`` is configured), and
:meth:`Identity.statistics`, a frozen snapshot of every actor and supervisor.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from agent_identity.actors.login_flow import LoginEvents, LoginSucceeded
from agent_identity.actors.session_store_messages import SessionStoreStatistics
from agent_identity.actors.tip_messages import TipRefresherStatistics
from agent_identity.actors.vault_types import VaultStatistics
from agent_identity.config import PluginConfig
from agent_identity.host.senders import SenderDirectory
from agent_identity.kernel import ActorStatistics, SupervisorStatistics
from agent_identity.notify import Notifier, NotifierStatistics, NotifyContext, SendStatus
from agent_identity.system.services import Services
from agent_identity.system.tree import IdentityTree
from agent_identity.volcengine.credentials import CredentialStatistics
from agent_identity.volcengine.transport import TransportStatistics

if TYPE_CHECKING:
    import httpx

    from agent_identity.actors.approval_messages import ApprovalBrokerClient
    from agent_identity.actors.login_messages import LoginBrokerClient
    from agent_identity.actors.session_store_messages import SessionStoreClient
    from agent_identity.actors.tip_messages import TipRefresherClient
    from agent_identity.actors.vault_messages import CredentialVaultClient
    from agent_identity.authz import PermissionChecker, RiskEvaluator
    from agent_identity.host.api import HostApi
    from agent_identity.host.commands import IdentityCommands
    from agent_identity.host.deps import HostDeps
    from agent_identity.host.gateway import IdentityGatewayMethods
    from agent_identity.host.hooks import IdentityHooks
    from agent_identity.host.tools import IdentityTools
    from agent_identity.system.followups import CredentialFollowups
    from agent_identity.system.login import LazyLoginFlow, LazyOidc
    from agent_identity.transports.callback import CallbackApp
    from agent_identity.volcengine.identity import IdentityClient

__all__ = ["Identity", "LoginListener", "LoginListenerStatistics", "SystemStatistics"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LoginListenerStatistics:
    """What the login listener did (lifetime)."""

    #: Login events handled.
    events: int
    #: Follow-ups the notifier sent.
    sent: int
    #: Follow-ups it skipped (no push to that channel) or failed to send.
    not_sent: int
    #: Events dropped because the listener's channel was full.
    dropped: int


class LoginListener:
    """Turns :class:`LoginSucceeded` events into login follow-ups (``Notifier.login_succeeded``).

    Args:
        notifier: The notifier.
    """

    def __init__(self, notifier: Notifier) -> None:
        self._notifier = notifier
        self.events = 0
        self.sent = 0
        self.not_sent = 0

    async def handle(self, event: LoginSucceeded) -> None:
        """Send the follow-up of one login (the notifier never raises)."""
        self.events += 1
        context = NotifyContext.from_command(event.context)
        result = await self._notifier.login_succeeded(context, event.sub)
        if result.status is SendStatus.SENT:
            self.sent += 1
        else:
            self.not_sent += 1

    def statistics(self, dropped: int = 0) -> LoginListenerStatistics:
        """A snapshot of the counters (``dropped``: the fan-out's drop count)."""
        return LoginListenerStatistics(self.events, self.sent, self.not_sent, dropped)


@dataclass(frozen=True, slots=True, kw_only=True)
class SystemStatistics:
    """A snapshot of the whole system (for ``/status``, ``ctl status`` and metrics).

    Attributes:
        root: The root supervisor and its children (restarts per child).
        services: The services supervisor and its children.
        session_store: The session store.
        login_broker: The login broker's actor counters.
        tip_refresher: The TIP refresher.
        credential_vault: The credential vault.
        approval_broker: The approval broker's actor counters.
        identity_client: Control-plane calls, retries and errors.
        credentials: The credential chain's resolutions.
        notifier: Follow-ups sent and skipped.
        login_listener: Login events turned into follow-ups.
        oidc_opened: Whether the OIDC client has been opened (None: no ``userpool``).
    """

    root: SupervisorStatistics
    services: SupervisorStatistics
    session_store: SessionStoreStatistics
    login_broker: ActorStatistics
    tip_refresher: TipRefresherStatistics
    credential_vault: VaultStatistics
    approval_broker: ActorStatistics
    identity_client: TransportStatistics
    credentials: CredentialStatistics
    notifier: NotifierStatistics
    login_listener: LoginListenerStatistics
    oidc_opened: bool | None


@dataclass(frozen=True, kw_only=True)
class Identity:
    """A running identity system; see the module docstring.

    Attributes:
        plugin: The plugin config it runs.
        services: The shared services.
        tree: The actors and supervisors (for diagnostics and tests).
        login_flow: The login flow, or None when no ``userpool`` is configured.
        login_events: Where :class:`LoginSucceeded` is published (subscribe for more
            listeners).
        asgi_app: The OIDC callback app bound to the login flow (None without ``userpool``).
        listener: The login listener that sends follow-ups.
        followups: Sends "credential added" follow-ups when a 3LO flow completes.
        oidc: The lazily opened OIDC client (None without ``userpool``).
        environ: The environment the system was started with.
        senders: sessionKey → sender, recorded by ``before_dispatch``.
    """

    plugin: PluginConfig
    services: Services
    tree: IdentityTree
    login_flow: LazyLoginFlow | None
    login_events: LoginEvents
    asgi_app: CallbackApp | None
    listener: LoginListener
    followups: CredentialFollowups
    oidc: LazyOidc | None = None
    environ: Mapping[str, str] = field(default_factory=dict)
    senders: SenderDirectory = field(default_factory=SenderDirectory)

    @cached_property
    def host(self) -> HostApi:
        """The gateway-facing handlers (built once, on first use)."""
        # Imported on first use, like the handlers are built (import time of serve).
        from agent_identity.host.api import build_host_api  # noqa: PLC0415

        return build_host_api(self.deps)

    @property
    def hooks(self) -> IdentityHooks:
        """The five hooks (``hooks.as_mapping()`` gives name → handler to register)."""
        return self.host.hooks

    @property
    def commands(self) -> IdentityCommands:
        """The ``/identity`` command and its ``/id`` alias."""
        return self.host.commands

    @property
    def tools(self) -> IdentityTools:
        """The ``identity_*`` tools (``tools.for_context(ctx)`` is the host's tool factory)."""
        return self.host.tools

    @property
    def gateway_methods(self) -> IdentityGatewayMethods:
        """``identity.session.put`` / ``identity.session.get`` (with webchatSessionExchange)."""
        return self.host.gateway_methods

    @cached_property
    def deps(self) -> HostDeps:
        """What the host handlers (hooks, commands, tools, gateway methods) work with."""
        # Imported on first use, with the handlers (import time of serve).
        from agent_identity.host.deps import HostDeps  # noqa: PLC0415

        return HostDeps(
            plugin=self.plugin,
            sessions=self.sessions,
            tips=self.tips,
            vault=self.vault,
            approvals=self.approvals,
            permission=self.permission,
            risk=self.risk,
            notifier=self.notifier,
            login=self.login_flow,
            id_tokens=self.oidc,
            senders=self.senders,
            environ=self.environ,
            statistics=self.statistics,
        )

    @property
    def sessions(self) -> SessionStoreClient:
        """The session store's client."""
        return self.tree.sessions

    @property
    def login_broker(self) -> LoginBrokerClient:
        """The login broker's client."""
        return self.tree.logins

    @property
    def tips(self) -> TipRefresherClient:
        """The TIP refresher's client."""
        return self.tree.tips

    @property
    def vault(self) -> CredentialVaultClient:
        """The credential vault's client."""
        return self.tree.vault

    @property
    def approvals(self) -> ApprovalBrokerClient:
        """The approval broker's client."""
        return self.tree.approvals

    @property
    def http(self) -> httpx.AsyncClient:
        """The shared HTTP client."""
        return self.services.http

    @property
    def identity_client(self) -> IdentityClient:
        """The Identity control-plane client (credentials resolve lazily, per call)."""
        return self.services.identity_client

    @property
    def permission(self) -> PermissionChecker:
        """The CheckPermission checker."""
        return self.services.permission

    @property
    def risk(self) -> RiskEvaluator:
        """The tool-call risk evaluator."""
        return self.services.risk

    @property
    def notifier(self) -> Notifier:
        """The notifier."""
        return self.services.notifier

    def statistics(self) -> SystemStatistics:
        """Return a snapshot of every actor, supervisor and client (synchronous, no I/O)."""
        tree = self.tree
        return SystemStatistics(
            root=tree.root.statistics(),
            services=tree.services.statistics(),
            session_store=tree.session_store.store_statistics(),
            login_broker=tree.login_broker.statistics(),
            tip_refresher=tree.tip_refresher.tip_statistics(),
            credential_vault=tree.credential_vault.vault_statistics(),
            approval_broker=tree.approval_broker.statistics(),
            identity_client=self.services.identity_client.statistics(),
            credentials=self.services.credentials.statistics(),
            notifier=self.services.notifier.statistics(),
            login_listener=self.listener.statistics(self.login_events.dropped),
            oidc_opened=None if self.login_flow is None else self.login_flow.oidc.opened,
        )
