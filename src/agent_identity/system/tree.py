"""The supervision tree: the actors of the system and the supervisors that run them.

::

    root (rest_for_one)
    ├── session_store      sessions.json + bindings; owns all disk writes
    ├── login_broker       pending OIDC logins
    ├── login_sweeper      sweeps expired logins (a Ticker)
    └── services (one_for_one)
        ├── tip_refresher
        ├── credential_vault
        ├── approval_broker
        └── approval_sweeper

``rest_for_one`` at the root: everything depends on the session store, so its restart
restarts the rest (in start order, after the store is ready again); a login-broker restart
restarts its sweeper and the services; a crash inside ``services`` restarts only that actor.
Actors keep their :class:`~agent_identity.kernel.Address` across restarts, so the clients
handed out once stay valid.

:func:`build_tree` only builds objects; the caller runs :attr:`IdentityTree.root` with
``nursery.start`` (ready when every child is) and stops it with :meth:`Supervisor.stop`.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent_identity.actors.approval_broker import ApprovalBroker
from agent_identity.actors.approval_messages import ApprovalBrokerClient
from agent_identity.actors.credential_vault import CredentialVault
from agent_identity.actors.login_broker import LoginBroker
from agent_identity.actors.login_messages import LoginBrokerClient
from agent_identity.actors.session_store import SessionStore
from agent_identity.actors.session_store_messages import SessionStoreClient
from agent_identity.actors.tip_messages import TipRefresherClient
from agent_identity.actors.tip_mint import IdentityTipMinter
from agent_identity.actors.tip_refresher import TipRefresher
from agent_identity.actors.tip_session import UserTokenRenewer
from agent_identity.actors.vault_messages import CredentialVaultClient
from agent_identity.config import PluginConfig
from agent_identity.kernel import Strategy, Supervisor
from agent_identity.storage import FileBackend
from agent_identity.system.services import Services

__all__ = ["ROOT_INTENSITY", "SERVICES_INTENSITY", "IdentityTree", "build_tree"]

#: Restarts the root allows (count, seconds) before it gives up.
ROOT_INTENSITY = (3, 30.0)
#: Restarts the services supervisor allows (count, seconds) before it escalates to the root.
SERVICES_INTENSITY = (5, 30.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class IdentityTree:
    """The actors and supervisors of one system (built, not yet running).

    Attributes:
        root: The root supervisor (``rest_for_one``); run it, stop it.
        services: The ``one_for_one`` supervisor of the per-session services.
        backend: The session store's files.
        session_store: The session store actor.
        login_broker: The login broker actor.
        tip_refresher: The TIP refresher actor.
        minter: The refresher's TIP minter.
        credential_vault: The credential vault actor.
        approval_broker: The approval broker actor.
    """

    root: Supervisor
    services: Supervisor
    backend: FileBackend
    session_store: SessionStore
    login_broker: LoginBroker
    tip_refresher: TipRefresher
    minter: IdentityTipMinter
    credential_vault: CredentialVault
    approval_broker: ApprovalBroker

    @property
    def sessions(self) -> SessionStoreClient:
        """The session store's client."""
        return self.session_store.client

    @property
    def logins(self) -> LoginBrokerClient:
        """The login broker's client."""
        return LoginBrokerClient(self.login_broker.address)

    @property
    def tips(self) -> TipRefresherClient:
        """The TIP refresher's client."""
        return self.tip_refresher.client

    @property
    def vault(self) -> CredentialVaultClient:
        """The credential vault's client."""
        return self.credential_vault.client

    @property
    def approvals(self) -> ApprovalBrokerClient:
        """The approval broker's client."""
        return ApprovalBrokerClient(self.approval_broker.address)


def build_tree(
    plugin: PluginConfig,
    services: Services,
    *,
    renewer: UserTokenRenewer | None = None,
) -> IdentityTree:
    """Build the actors and supervisors of the config (nothing runs yet).

    Args:
        plugin: The plugin config.
        services: The shared services (the Identity client, the environment).
        renewer: Renews user tokens with refresh tokens (the lazy OIDC client), if login
            is configured.

    Returns:
        The tree.
    """
    backend = FileBackend.from_config(plugin, services.env)
    store = SessionStore(backend)
    broker = LoginBroker()
    minter = IdentityTipMinter.from_config(services.identity_client, plugin.identity)
    refresher = TipRefresher(minter, store.client, config=plugin.identity, renewer=renewer)
    userpool = plugin.userpool
    vault = CredentialVault(
        services.identity_client,
        store.client,
        pool_name=plugin.identity.workload_pool_name,
        user_pool_name=userpool.user_pool_name if userpool is not None else None,
    )
    approvals = ApprovalBroker.from_config(plugin.authz)
    services_max, services_period = SERVICES_INTENSITY
    services_sup = Supervisor(
        [
            refresher.child_spec("tip_refresher"),
            vault.child_spec("credential_vault"),
            approvals.child_spec("approval_broker"),
            approvals.sweeper().child_spec("approval_sweeper"),
        ],
        strategy=Strategy.ONE_FOR_ONE,
        max_restarts=services_max,
        period=services_period,
        name="services",
    )
    root_max, root_period = ROOT_INTENSITY
    root = Supervisor(
        [
            store.child_spec("session_store"),
            broker.child_spec("login_broker"),
            broker.sweeper().child_spec("login_sweeper"),
            services_sup.child_spec("services"),
        ],
        strategy=Strategy.REST_FOR_ONE,
        max_restarts=root_max,
        period=root_period,
        name="root",
    )
    return IdentityTree(
        root=root,
        services=services_sup,
        backend=backend,
        session_store=store,
        login_broker=broker,
        tip_refresher=refresher,
        minter=minter,
        credential_vault=vault,
        approval_broker=approvals,
    )
