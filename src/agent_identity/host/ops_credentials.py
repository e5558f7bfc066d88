"""The credential operations: list, fetch, set, unset (and the role ones from :mod:`.ops_roles`).

Each subcommand and its tool share one function, so both report the same facts:

* ``list [page]`` / ``identity_list_credentials(page, name, flow, type)``: one page of the
  control plane's OAuth2 and API-key providers with the caller's status (stored, expiry, the
  env var it is bound to), then the caller's other credentials (role keys, imported keys).
* ``fetch <provider> [--flow …]`` / ``identity_fetch``: the vault infers the flow from the
  provider unless one is given. An API key or an M2M token is stored at once; a 3LO provider
  answers a URL to open, and the vault completes the flow in the background. The reply never
  shows the credential; only the tool's ``returnValue: true`` returns it (``secret: true``).
* ``set <provider> <ENV_VAR>`` / ``identity_set_binding``: bind the stored credential, or
  import the gateway's own ``ENV_VAR`` when the session has none (the vault refuses
  PATH-like names and the gateway's keys; its sentence is shown as is).
* ``unset <provider>`` / ``identity_unset_binding``: remove the binding; none is not an error.

**Follow-ups** ("✓ Credential for X added."): a command run from a chat the notifier can push
to gets one. For an API key or M2M token the operation sends it itself, at once. A 3LO flow
ends later, in the vault, which publishes :class:`CredentialAdded` with the ``context`` the
fetch gave it: here the command's :class:`NotifyContext` as strings. The system turns that
into the message (:mod:`agent_identity.system.followups`); tools have no notify context (the
host tells a tool nothing about where to push), so they get none.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from agent_identity.actors.vault_types import (
    CredentialListing,
    FetchResult,
    FetchStatus,
    ProviderStatus,
)
from agent_identity.host import ops_roles
from agent_identity.host.caller import Caller
from agent_identity.host.contract import (
    Fetch,
    IdentityCommand,
    ListCredentials,
    SetBinding,
    UnsetBinding,
)
from agent_identity.host.deps import HostDeps
from agent_identity.host.ops_common import require_tip
from agent_identity.host.outcome import CommandHandler, OperationError, Outcome, ToolHandler

__all__ = [
    "COMMANDS",
    "TOOLS",
    "fetch",
    "list_credentials",
    "set_binding",
    "unset_binding",
]

logger = logging.getLogger(__name__)

_MINUTE: Final = 60
_HOUR: Final = 3600
_DAY: Final = 86400


# ---------------------------------------------------------------- list


def _expiry(seconds: int | None, *, expired: bool) -> str | None:
    if expired:
        return "expired"
    if seconds is None:
        return None
    if seconds >= _DAY:
        return f"expires in {seconds // _DAY}d"
    if seconds >= _HOUR:
        return f"expires in {seconds // _HOUR}h"
    return f"expires in {max(seconds // _MINUTE, 1)}m"


def _status_line(status: ProviderStatus) -> str:
    kind = ", ".join(part for part in (status.type, status.flow) if part)
    parts = [f"• {status.name}" + (f" ({kind})" if kind else "")]
    if status.stored:
        expiry = _expiry(status.expires_in, expired=status.expired)
        parts.append("stored" + (f", {expiry}" if expiry else ""))
    if status.env_var:
        parts.append(f"env {status.env_var}")
    return " · ".join(parts)


def _status_details(status: ProviderStatus) -> dict[str, Any]:
    return {
        "name": status.name,
        "type": status.type or None,
        "flow": status.flow.value if status.flow is not None else None,
        "stored": status.stored,
        "expired": status.expired,
        "envVar": status.env_var,
        "expiresIn": status.expires_in,
        "source": status.source,
    }


def _listing_outcome(listing: CredentialListing) -> Outcome:
    mine = [s for s in listing.providers if s.stored or s.env_var] + listing.stored_only
    next_page = listing.page + 1 if listing.has_more else None
    details = {
        "page": listing.page,
        "total": listing.total,
        "hasMore": listing.has_more,
        "nextPage": next_page,
        "providers": [_status_details(status) for status in listing.providers],
        "credentials": [_status_details(status) for status in mine],
    }
    if listing.providers:
        lines = [f"Credential providers (page {listing.page}, {listing.total} in total):"]
        lines.extend(_status_line(status) for status in listing.providers)
    elif listing.page > 1:
        lines = [f"No providers on page {listing.page} ({listing.total} in total)."]
    else:
        lines = ["No credential providers found."]
    if listing.stored_only:
        lines.append("Your other credentials:")
        lines.extend(_status_line(status) for status in listing.stored_only)
    if next_page is not None:
        lines.append(f"More: /identity list {next_page}")
    lines.append("Add one: /identity fetch <provider>")
    return Outcome("\n".join(lines), details)


async def list_credentials(
    deps: HostDeps,
    caller: Caller,
    page: int = 1,
    *,
    name: str | None = None,
    flow: str | None = None,
    kind: str | None = None,
) -> Outcome:
    """One page of providers with the caller's credentials and bindings.

    Args:
        deps: The handler dependencies.
        caller: Who calls.
        page: The page, from 1.
        name: Only providers whose name contains this.
        flow: Only providers fetched with this flow.
        kind: Only providers of this type (``api_key`` or ``oauth2``).

    Raises:
        OperationError: Not logged in, or the listing failed (``list_failed``).
    """
    tip = await require_tip(deps, caller)
    listing = await deps.vault.list_credentials(
        caller.session_key, tip, page, name=name, flow=flow, type=kind
    )
    if not listing.ok:
        raise OperationError(listing.message, code="list_failed")
    return _listing_outcome(listing)


async def _list_command(deps: HostDeps, caller: Caller, command: IdentityCommand) -> Outcome:
    if not isinstance(command, ListCredentials):  # the dispatcher routes by type
        raise TypeError(type(command).__name__)
    return await list_credentials(deps, caller, command.page)


async def _list_tool(deps: HostDeps, caller: Caller, params: Mapping[str, Any]) -> Outcome:
    return await list_credentials(
        deps,
        caller,
        int(params.get("page", 1)),  # the schema admits 2.0 for an integer
        name=params.get("name"),
        flow=params.get("flow"),
        kind=params.get("type"),
    )


# ---------------------------------------------------------------- fetch


def _fetch_outcome(result: FetchResult, *, pushed: bool, returned: bool) -> Outcome:
    details: dict[str, Any] = {
        **result.to_tool_result(),
        "provider": result.provider,
        "flow": result.flow.value if result.flow is not None else None,
    }
    if result.status is FetchStatus.AUTHORIZE:
        details.update(pending=True, followUp=pushed)
        then = (
            "You will get a message here once the credential is added."
            if pushed
            else "When you are done, check with /identity status."
        )
        return Outcome(
            f"Open this link to authorize {result.provider}:\n{result.auth_url}\n{then}", details
        )
    details["expiresIn"] = result.expires_in
    lines = [f"✓ {result.message}"]
    if returned and result.value is not None:
        details["secret"] = True
        lines.append(f"Value: {result.value}")
    lines.append(f"Inject it into tools: /identity set {result.provider} <ENV_VAR>")
    return Outcome("\n".join(lines), details)


async def fetch(
    deps: HostDeps,
    caller: Caller,
    provider: str,
    *,
    flow: str | None = None,
    redirect_url: str | None = None,
    scopes: tuple[str, ...] | list[str] | None = None,
    return_value: bool = False,
) -> Outcome:
    """Add a credential for ``provider`` to the caller's session.

    Args:
        deps: The handler dependencies.
        caller: Who calls; a command's notify context gets the follow-up.
        provider: The credential provider.
        flow: ``oauth2-user``, ``oauth2-m2m`` or ``apikey``; inferred when None.
        redirect_url: Overrides the provider's OAuth2 redirect URL.
        scopes: Override the provider's OAuth2 scopes.
        return_value: Put the credential itself in the outcome (the tool's ``returnValue``).

    Raises:
        OperationError: Not logged in, unknown provider, invalid flow, a service failure
            (the code is the vault's :class:`FetchFailure` value).
    """
    tip = await require_tip(deps, caller)
    notify = caller.notify
    result = await deps.vault.fetch(
        caller.session_key,
        tip,
        provider,
        flow=flow,
        redirect_url=redirect_url,
        scopes=scopes,
        return_value=return_value,
        # Handed back in the vault's CredentialAdded event when a 3LO flow completes.
        context=notify.to_context() if notify is not None else None,
    )
    if result.status is FetchStatus.FAILED:
        code = result.failure.value if result.failure is not None else "fetch_failed"
        raise OperationError(result.message, code=code)
    if result.status is FetchStatus.STORED and notify is not None:
        sent = await deps.notifier.credential_added(notify, result.provider)
        logger.debug("credential follow-up for %s: %s", result.provider, sent.status)
    return _fetch_outcome(result, pushed=deps.notifier.can_push(notify), returned=return_value)


async def _fetch_command(deps: HostDeps, caller: Caller, command: IdentityCommand) -> Outcome:
    if not isinstance(command, Fetch):
        raise TypeError(type(command).__name__)
    return await fetch(
        deps,
        caller,
        command.provider,
        flow=command.flow,
        redirect_url=command.redirect_url,
        scopes=command.scopes,
    )


async def _fetch_tool(deps: HostDeps, caller: Caller, params: Mapping[str, Any]) -> Outcome:
    scopes = params.get("scopes")
    return await fetch(
        deps,
        caller,
        str(params["provider"]),
        flow=params.get("flow"),
        redirect_url=params.get("redirectUrl"),
        scopes=list(scopes) if scopes else None,
        return_value=bool(params.get("returnValue", False)),
    )


# ---------------------------------------------------------------- set / unset


async def set_binding(deps: HostDeps, caller: Caller, provider: str, env_var: str) -> Outcome:
    """Bind ``provider``'s credential to ``env_var``, importing the gateway's value if needed.

    Raises:
        OperationError: Not logged in, or the vault refused (invalid or reserved name, a
            protected variable, nothing to import); the code is its :class:`BindingFailure`.
    """
    await require_tip(deps, caller)  # importing a gateway value is for signed-in users only
    result = await deps.vault.set_binding(
        caller.session_key, provider, env_var, environ=deps.environ
    )
    if not result.ok:
        code = result.failure.value if result.failure is not None else "binding_failed"
        raise OperationError(result.message, code=code)
    details = {
        "success": True,
        "provider": result.provider,
        "envVar": result.env_var,
        "imported": result.imported,
        "message": result.message,
    }
    return Outcome(f"✓ {result.message}", details)


async def unset_binding(deps: HostDeps, caller: Caller, provider: str) -> Outcome:
    """Remove ``provider``'s binding; an unknown one is reported, not an error."""
    name = provider.strip()
    bound = (await deps.sessions.bindings(caller.session_key)).get(name)
    removed = await deps.vault.unset_binding(caller.session_key, name)
    details = {"removed": removed, "provider": name, "envVar": bound if removed else None}
    if not removed:
        return Outcome(f"{name} has no env binding; nothing to remove.", details)
    was = f" ({bound})" if bound else ""
    return Outcome(f"✓ Removed the binding of {name}{was}; tools no longer get it.", details)


async def _set_command(deps: HostDeps, caller: Caller, command: IdentityCommand) -> Outcome:
    if not isinstance(command, SetBinding):
        raise TypeError(type(command).__name__)
    return await set_binding(deps, caller, command.provider, command.env_var)


async def _set_tool(deps: HostDeps, caller: Caller, params: Mapping[str, Any]) -> Outcome:
    return await set_binding(deps, caller, str(params["provider"]), str(params["envVar"]))


async def _unset_command(deps: HostDeps, caller: Caller, command: IdentityCommand) -> Outcome:
    if not isinstance(command, UnsetBinding):
        raise TypeError(type(command).__name__)
    return await unset_binding(deps, caller, command.provider)


async def _unset_tool(deps: HostDeps, caller: Caller, params: Mapping[str, Any]) -> Outcome:
    return await unset_binding(deps, caller, str(params["provider"]))


COMMANDS: Final[Mapping[type, CommandHandler]] = {
    ListCredentials: _list_command,
    Fetch: _fetch_command,
    SetBinding: _set_command,
    UnsetBinding: _unset_command,
    **ops_roles.COMMANDS,
}
TOOLS: Final[Mapping[str, ToolHandler]] = {
    "identity_list_credentials": _list_tool,
    "identity_fetch": _fetch_tool,
    "identity_set_binding": _set_tool,
    "identity_unset_binding": _unset_tool,
    **ops_roles.TOOLS,
}
