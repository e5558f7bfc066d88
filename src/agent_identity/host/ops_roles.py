"""``/identity list-roles`` and ``get-role``, and their tools; plus the TIP every operation needs.

Role credential providers hand out temporary Volcengine STS keys for a TIP (the control
plane's ``GetRoleCredentials``); the vault stores them for the session, so a binding
(``/identity set <role-provider> <PREFIX>_ACCESS_KEY``) injects them into tool calls.

* ``list-roles [prefix]`` / ``identity_list_roles(prefix)``: the role providers, one line each.
* ``get-role <provider> [--use-tip] [--show-secrets]``: the keys, **masked** unless
  ``--show-secrets`` (the AccessKeyId keeps four characters at each end, the secret key and
  the session token are ``***``). ``identity_get_role_credentials(providerName, useTip)`` has
  no such switch: the tool exists to hand the keys to the agent, so it returns them unmasked
  and says so (``secret: true`` in ``details``); its description tells the model never to
  show them.

:func:`require_tip` is shared by every credential operation: the caller's TIP, or an
:class:`OperationError` telling them to run ``/identity login``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from agent_identity.actors.vault_types import RoleCredentialsView, RoleProviderInfo
from agent_identity.host.caller import Caller
from agent_identity.host.contract import GetRole, IdentityCommand, ListRoles
from agent_identity.host.deps import HostDeps
from agent_identity.host.ops_common import require_tip
from agent_identity.host.outcome import CommandHandler, OperationError, Outcome, ToolHandler

__all__ = [
    "COMMANDS",
    "TOOLS",
    "get_role",
    "get_role_command",
    "get_role_tool",
    "list_roles",
    "list_roles_command",
    "list_roles_tool",
]


# ---------------------------------------------------------------- list-roles


def _role_line(role: RoleProviderInfo) -> str:
    extra = [f"role {role.role_name}"] if role.role_name else []
    if role.user_pool_name:
        extra.append(f"user pool {role.user_pool_name}")
    return f"• {role.name}" + (f" — {', '.join(extra)}" if extra else "")


def _role_details(role: RoleProviderInfo) -> dict[str, Any]:
    return {
        "name": role.name,
        "roleName": role.role_name or None,
        "poolName": role.pool_name or None,
        "trn": role.trn or None,
        "userPoolName": role.user_pool_name or None,
    }


async def list_roles(deps: HostDeps, caller: Caller, prefix: str | None) -> Outcome:
    """List the role credential providers whose name starts with ``prefix``.

    Raises:
        OperationError: Not logged in, or the control plane failed (``list_failed``).
    """
    tip = await require_tip(deps, caller)
    wanted = (prefix or "").strip() or None
    listing = await deps.vault.list_roles(tip, wanted)
    if not listing.ok:
        raise OperationError(listing.message, code="list_failed")
    matching = f' starting with "{wanted}"' if wanted else ""
    details = {"prefix": wanted, "roles": [_role_details(role) for role in listing.roles]}
    if not listing.roles:
        return Outcome(f"No role credential providers{matching}.", details)
    lines = [f"Role credential providers{matching}:"]
    lines.extend(_role_line(role) for role in listing.roles)
    lines.append("Get temporary keys: /identity get-role <provider>")
    return Outcome("\n".join(lines), details)


async def list_roles_command(deps: HostDeps, caller: Caller, command: IdentityCommand) -> Outcome:
    """``/identity list-roles [prefix]``."""
    if not isinstance(command, ListRoles):  # the dispatcher routes by type; guard the table
        raise TypeError(type(command).__name__)
    return await list_roles(deps, caller, command.prefix)


async def list_roles_tool(deps: HostDeps, caller: Caller, params: Mapping[str, Any]) -> Outcome:
    """``identity_list_roles(prefix?)``."""
    return await list_roles(deps, caller, params.get("prefix"))


# ---------------------------------------------------------------- get-role


def _role_text(view: RoleCredentialsView, *, shown: bool, use_tip: bool) -> str:
    lines = [
        view.message,
        f"AccessKeyId: {view.access_key_id}",
        f"SecretAccessKey: {view.secret_access_key or '(none)'}",
        f"SessionToken: {view.session_token or '(none)'}",
    ]
    if view.role_trn:
        lines.append(f"Assumed role: {view.role_trn}")
    if use_tip and view.oidc_subject:
        lines.append(f"Bound to the TIP's subject: {view.oidc_subject}")
    if not shown:
        lines.append(f"Show the keys: /identity get-role {view.provider} --show-secrets")
    if not view.env_vars:
        lines.append(f"Inject them into tools: /identity set {view.provider} <PREFIX>_ACCESS_KEY")
    return "\n".join(lines)


async def get_role(
    deps: HostDeps, caller: Caller, provider: str, *, use_tip: bool, show_secrets: bool
) -> Outcome:
    """Get temporary STS keys of a role provider and store them for the caller's session.

    Args:
        deps: The handler dependencies.
        caller: Who calls.
        provider: The role credential provider.
        use_tip: Bind the STS session to the TIP's identity (the answer names the subject).
        show_secrets: Show the keys unmasked (text and details alike).

    Raises:
        OperationError: Not logged in, unknown provider or a service failure
            (``get_role_failed``; the vault's message says which).
    """
    tip = await require_tip(deps, caller)
    view = await deps.vault.get_role(
        caller.session_key, tip, provider, use_tip=use_tip, show_secrets=show_secrets
    )
    if not view.ok:
        raise OperationError(view.message, code="get_role_failed")
    details: dict[str, Any] = {
        "success": True,
        "provider": view.provider,
        "message": view.message,
        "accessKeyId": view.access_key_id,
        "secretAccessKey": view.secret_access_key,
        "sessionToken": view.session_token,
        "expiration": view.expiration or None,
        "roleTrn": view.role_trn or None,
        "oidcSubject": view.oidc_subject or None,
        "envVars": list(view.env_vars),
        "masked": not show_secrets,
        "secret": show_secrets,
    }
    return Outcome(_role_text(view, shown=show_secrets, use_tip=use_tip), details)


async def get_role_command(deps: HostDeps, caller: Caller, command: IdentityCommand) -> Outcome:
    """``/identity get-role <provider> [--use-tip] [--show-secrets]``."""
    if not isinstance(command, GetRole):
        raise TypeError(type(command).__name__)
    return await get_role(
        deps,
        caller,
        command.provider,
        use_tip=command.use_tip,
        show_secrets=command.show_secrets,
    )


async def get_role_tool(deps: HostDeps, caller: Caller, params: Mapping[str, Any]) -> Outcome:
    """``identity_get_role_credentials(providerName, useTip?)``: the keys, unmasked."""
    return await get_role(
        deps,
        caller,
        str(params["providerName"]),
        use_tip=bool(params.get("useTip", False)),
        show_secrets=True,
    )


COMMANDS: Final[Mapping[type, CommandHandler]] = {
    ListRoles: list_roles_command,
    GetRole: get_role_command,
}
TOOLS: Final[Mapping[str, ToolHandler]] = {
    "identity_list_roles": list_roles_tool,
    "identity_get_role_credentials": get_role_tool,
}
