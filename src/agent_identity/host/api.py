"""Everything a gateway registers, built from one :class:`HostDeps`.

:func:`build_host_api` gathers the operation handlers of the ``ops_*`` modules into the
``/identity`` command, the ``identity_*`` tools, the hooks and the gateway methods. The
system exposes the result as ``ident.hooks``, ``ident.commands``, ``ident.tools`` and
``ident.gateway_methods``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from agent_identity.host import ops_credentials, ops_risk, ops_session
from agent_identity.host.commands import IdentityCommands
from agent_identity.host.deps import HostDeps
from agent_identity.host.gateway import IdentityGatewayMethods
from agent_identity.host.hooks import IdentityHooks
from agent_identity.host.outcome import CommandHandler, ToolHandler
from agent_identity.host.tools import IdentityTools

__all__ = ["HostApi", "build_host_api", "command_handlers", "tool_handlers"]

_K = TypeVar("_K")
_V = TypeVar("_V")


def _merge(tables: Iterable[Mapping[_K, _V]]) -> dict[_K, _V]:
    merged: dict[_K, _V] = {}
    for table in tables:
        overlap = merged.keys() & table.keys()
        if overlap:  # two modules claiming one command would make dispatch order-dependent
            msg = f"handled twice: {sorted(map(str, overlap))}"
            raise ValueError(msg)
        merged.update(table)
    return merged


def command_handlers() -> dict[type, CommandHandler]:
    """Every ``/identity`` subcommand's handler, by command type."""
    return _merge((ops_session.COMMANDS, ops_credentials.COMMANDS, ops_risk.COMMANDS))


def tool_handlers() -> dict[str, ToolHandler]:
    """Every ``identity_*`` tool's handler, by tool name."""
    return _merge((ops_session.TOOLS, ops_credentials.TOOLS, ops_risk.TOOLS))


@dataclass(frozen=True, slots=True)
class HostApi:
    """The gateway-facing surface of a running system.

    Attributes:
        hooks: ``before_dispatch``, ``before_agent_start``, ``subagent_spawned``,
            ``before_tool_call``, ``after_tool_call``.
        commands: ``/identity`` and ``/id``.
        tools: The ``identity_*`` tools.
        gateway_methods: ``identity.session.put`` / ``identity.session.get`` (registered only
            with ``identity.webchatSessionExchange``).
    """

    hooks: IdentityHooks
    commands: IdentityCommands
    tools: IdentityTools
    gateway_methods: IdentityGatewayMethods


def build_host_api(deps: HostDeps) -> HostApi:
    """Build the hooks, commands, tools and gateway methods over ``deps``."""
    return HostApi(
        hooks=IdentityHooks(deps),
        commands=IdentityCommands(deps, command_handlers()),
        tools=IdentityTools(deps, tool_handlers()),
        gateway_methods=IdentityGatewayMethods(deps),
    )
