"""What the wiring layer needs from the running system, as one value.

The handlers of hooks, ``/identity`` commands, ``identity_*`` tools and gateway methods live in
:mod:`agent_identity.host`, which sits *below* :mod:`agent_identity.system` (the composition
root): they cannot import :class:`~agent_identity.system.Identity`. The composition root
builds a :class:`HostDeps` from the tree instead, and tests can build one from the real actors
they start. The login flow and the id-token verifier are Protocols so the host layer does not
depend on how the system makes them lazy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from agent_identity.actors.approval_messages import ApprovalBrokerClient
from agent_identity.actors.session_store_messages import SessionStoreClient
from agent_identity.actors.tip_messages import TipRefresherClient
from agent_identity.actors.vault_messages import CredentialVaultClient
from agent_identity.authz import PermissionChecker, RiskEvaluator
from agent_identity.config import PluginConfig
from agent_identity.host.senders import SenderDirectory
from agent_identity.notify import Notifier
from agent_identity.oidc import IdTokenClaims

__all__ = ["HostDeps", "IdTokenVerifier", "LoginStarter"]


class LoginStarter(Protocol):
    """Starts an OIDC login (the system's lazy login flow)."""

    async def start_login(
        self, session_key: str, *, context: Mapping[str, str] | None = None
    ) -> str:
        """Record a pending login for the effective ``session_key``; return the URL to open.

        Raises:
            OidcError: The provider could not be reached.
        """
        ...


class IdTokenVerifier(Protocol):
    """Verifies an id token of the configured user pool (signature, iss, aud, exp)."""

    async def validate_id_token(self, token: str, *, nonce: str | None = None) -> IdTokenClaims:
        """Return the verified claims.

        Raises:
            OidcError: The token is invalid (the error's text never contains the token).
        """
        ...


def _no_statistics() -> object:
    return {}


@dataclass(frozen=True, slots=True, kw_only=True)
class HostDeps:
    """The actors and services the host handlers use.

    Attributes:
        plugin: The plugin config.
        sessions: The session store.
        tips: The TIP refresher.
        vault: The credential vault.
        approvals: The approval broker.
        permission: CheckPermission.
        risk: The tool-call risk evaluator.
        notifier: Follow-up messages (Feishu).
        login: The login flow; None when no ``userpool`` is configured.
        id_tokens: The id-token verifier of the user pool; None without ``userpool``.
        senders: sessionKey → sender, remembered from ``before_dispatch``.
        environ: The process environment ``/identity set`` may import a value from when the
            provider has no credential (filtered by the vault: never PATH-like names).
        statistics: A zero-argument function returning the system's statistics snapshot
            (for status views).
    """

    plugin: PluginConfig
    sessions: SessionStoreClient
    tips: TipRefresherClient
    vault: CredentialVaultClient
    approvals: ApprovalBrokerClient
    permission: PermissionChecker
    risk: RiskEvaluator
    notifier: Notifier
    login: LoginStarter | None = None
    id_tokens: IdTokenVerifier | None = None
    senders: SenderDirectory = field(default_factory=SenderDirectory)
    environ: Mapping[str, str] = field(default_factory=dict)
    statistics: Callable[[], object] = _no_statistics
