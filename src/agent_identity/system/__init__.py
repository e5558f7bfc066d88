"""The composition root: builds the supervision tree, wires addresses, handles signals.

:func:`open_identity` runs the whole system inside the caller's Trio code::

    async with open_identity(load_config("openclaw.json")) as ident:
        ...  # ident.sessions, ident.tips, ident.vault, ident.approvals, ident.login_flow

See :mod:`agent_identity.system.runtime` (lifecycle), :mod:`agent_identity.system.tree`
(the supervision tree), :mod:`agent_identity.system.services` (shared clients),
:mod:`agent_identity.system.login` (the lazy OIDC login flow) and
:mod:`agent_identity.system.identity` (the handle and its statistics).
"""

from agent_identity.system.identity import (
    Identity,
    LoginListener,
    LoginListenerStatistics,
    SystemStatistics,
)
from agent_identity.system.login import LazyLoginFlow, LazyOidc
from agent_identity.system.runtime import DEFAULT_SHUTDOWN_GRACE, open_identity
from agent_identity.system.services import Services, build_services, open_http_client
from agent_identity.system.tree import IdentityTree, build_tree

__all__ = [
    "DEFAULT_SHUTDOWN_GRACE",
    "Identity",
    "IdentityTree",
    "LazyLoginFlow",
    "LazyOidc",
    "LoginListener",
    "LoginListenerStatistics",
    "Services",
    "SystemStatistics",
    "build_services",
    "build_tree",
    "open_http_client",
    "open_identity",
]
