"""The vault's bindings: which provider's credential is injected as which env var.

A binding (``/identity set <provider> <ENV_VAR>``) is persisted through the session store and
cached in :class:`~agent_identity.actors.vault_state.VaultState`; leases then inject the
bound credential into tool calls (see :mod:`agent_identity.actors.vault_leases`). Binding a
provider the session holds no credential for imports the gateway's own value of the env var
as that provider's API key, unless the variable holds the gateway's own keys.

:func:`binding_refusal` runs in the mailbox loop (no I/O); the :class:`VaultBindings`
methods run in background tasks of the vault's nursery and touch the state only
synchronously between awaits. Nothing secret is logged.
"""

from __future__ import annotations

import logging

import trio

from agent_identity.actors.session_store_messages import SessionStoreClient
from agent_identity.actors.vault_leases import PROTECTED_IMPORTS, check_env_var
from agent_identity.actors.vault_messages import SetBinding
from agent_identity.actors.vault_state import VaultState
from agent_identity.actors.vault_types import (
    LOGGED_OUT,
    BindingFailure,
    BindingResult,
    Credential,
    CredentialKind,
)

__all__ = ["VaultBindings", "binding_refusal"]

# The vault's own logger: this is the vault's work, wherever the code lives.
logger = logging.getLogger("agent_identity.actors.credential_vault")


def binding_refusal(provider: str, env_var: str) -> BindingResult | None:
    """Why ``set`` cannot bind ``provider`` (already stripped) to ``env_var``, if it cannot.

    Checks only the names; whether there is a credential to inject is decided by
    :meth:`VaultBindings.bind`.
    """
    problem = check_env_var(env_var)
    if not provider:
        problem = (BindingFailure.INVALID_PROVIDER, "Name a credential provider.")
    if problem is None:
        return None
    failure, text = problem
    return BindingResult(False, provider, env_var, text, failure=failure)


class VaultBindings:
    """Persists and drops a session's bindings for the vault.

    Args:
        sessions: The session store, where bindings are persisted.
    """

    def __init__(self, sessions: SessionStoreClient) -> None:
        self._sessions = sessions

    async def bind(
        self, state: VaultState, msg: SetBinding, provider: str, started: int
    ) -> BindingResult:
        """Serve ``set_binding`` once :func:`binding_refusal` passed: persist, maybe import.

        Args:
            state: The vault's state.
            msg: The request.
            provider: Its provider, stripped.
            started: The logout generation when the request arrived.
        """
        await trio.lowlevel.checkpoint()
        key, env_var = msg.session_key, msg.env_var
        if provider not in state.credentials_of(key):
            refused = _import_refusal(provider, env_var, msg.env_value)
            if refused is not None:
                return refused
        if state.cleared_since(key, started):
            failure = BindingFailure.LOGGED_OUT
            return BindingResult(False, provider, env_var, LOGGED_OUT, failure=failure)
        await self._sessions.set_binding(key, provider, env_var)
        state.note_binding(key, provider, env_var)
        imported = False
        if provider not in state.credentials_of(key) and msg.env_value:
            credential = Credential(
                provider,
                CredentialKind.API_KEY,
                "environment",
                msg.env_value,
                obtained_at=trio.current_time(),
            )
            imported = state.store(key, credential, started)
        logger.info("bound %s to %s for %s (imported: %s)", provider, env_var, key, imported)
        text = f"{provider}'s credential is injected as {env_var} into tool calls."
        if imported:
            text = (
                f"Imported {env_var} from the gateway's environment as {provider}'s "
                f"credential; it is injected as {env_var} into tool calls."
            )
        return BindingResult(True, provider, env_var, text, imported)

    async def unbind(self, state: VaultState, key: str, provider: str) -> bool:
        """Serve ``unset_binding``: drop the binding; whether there was one."""
        provider = provider.strip()
        removed = await self._sessions.unset_binding(key, provider)
        state.note_binding(key, provider, None)
        logger.info("unbound %s for %s (was bound: %s)", provider, key, removed)
        return removed


def _import_refusal(provider: str, env_var: str, value: str | None) -> BindingResult | None:
    """Why ``set`` cannot import ``env_var`` as ``provider``'s credential, if it cannot."""
    if env_var.upper() in PROTECTED_IMPORTS:
        return BindingResult(
            False,
            provider,
            env_var,
            f"{env_var} holds the gateway's own keys and is never imported. "
            f"Fetch a credential for {provider} first (/identity fetch {provider}).",
            failure=BindingFailure.PROTECTED_VARIABLE,
        )
    if not value:
        return BindingResult(
            False,
            provider,
            env_var,
            f"No credential for {provider} is stored and the gateway has no {env_var} to "
            f"import. Fetch one first (/identity fetch {provider}).",
            failure=BindingFailure.NOT_IN_ENVIRONMENT,
        )
    return None
