"""The ``/identity`` command (alias ``/id``): parse, run for the trusted caller, reply.

:class:`IdentityCommands` is what a gateway registers: :meth:`IdentityCommands.definitions`
gives the two registrations (``identity`` and ``id``, both ``acceptsArgs``), and
:meth:`IdentityCommands.handle` runs one invocation. The caller comes from the command
context (:func:`~agent_identity.host.caller.caller_for_command`); the subcommand's work is
done by the operation handlers (``ops_*`` modules), whose :class:`Outcome` becomes the reply.

Registrations use ``requireAuth: false``: every chat user must be able to log in. Being an
*authorized sender* (the host's allowlist) only widens what ``list-tips`` shows.

Failures never escape: bad input gets the usage text, an :class:`OperationError` its
message, and an unexpected exception a generic warning (logged with its type only, since
its text could carry anything), the way the host itself answers a thrown handler.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import trio

from agent_identity.host.caller import caller_for_command
from agent_identity.host.command_parser import (
    UsageError,
    help_text,
    parse_identity_args,
    split_command_body,
    subcommand_name,
    usage,
)
from agent_identity.host.contract import (
    COMMAND_ALIAS,
    COMMAND_NAME,
    Help,
    PayloadError,
    decode_as,
)
from agent_identity.host.deps import HostDeps
from agent_identity.host.events import CommandContext
from agent_identity.host.outcome import CommandHandler, OperationError
from agent_identity.host.results import ReplyPayload

__all__ = ["CommandDefinition", "IdentityCommands"]

logger = logging.getLogger(__name__)

_DESCRIPTION = "Sign in, show your identity, manage credentials and approvals."
_FAILED = "⚠️ /{command} {sub} failed. Please try again later."


@dataclass(frozen=True, slots=True)
class CommandDefinition:
    """One command registration, shaped like the host's ``registerCommand`` argument.

    Attributes:
        name: The command word, without the slash.
        description: What the host's command menu shows.
        accepts_args: Always True: subcommands are arguments.
        require_auth: False: unauthorized senders must still be able to log in.
    """

    name: str
    description: str
    accepts_args: bool = True
    require_auth: bool = False

    def to_wire(self) -> dict[str, Any]:
        """The registration as camelCase JSON (for a bridge to a JavaScript host)."""
        return {
            "name": self.name,
            "description": self.description,
            "acceptsArgs": self.accepts_args,
            "requireAuth": self.require_auth,
        }


class IdentityCommands:
    """Runs ``/identity`` and ``/id``.

    Args:
        deps: The running system's handler dependencies.
        handlers: Command type → operation handler (see ``ops_*``).
    """

    def __init__(self, deps: HostDeps, handlers: Mapping[type, CommandHandler]) -> None:
        self._deps = deps
        self._handlers = dict(handlers)
        self.handled = 0
        self.failed = 0

    @property
    def definitions(self) -> tuple[CommandDefinition, ...]:
        """The registrations: ``identity`` and its alias ``id``."""
        return (
            CommandDefinition(COMMAND_NAME, _DESCRIPTION),
            CommandDefinition(COMMAND_ALIAS, f"Alias of /{COMMAND_NAME}. {_DESCRIPTION}"),
        )

    async def handle(self, ctx: CommandContext | Mapping[str, Any]) -> ReplyPayload:
        """Run one invocation and return its reply.

        Args:
            ctx: The host's command context (Struct or camelCase mapping). ``args`` is used
                when present, else the arguments are split off ``commandBody``; the command
                word of ``commandBody`` picks the name used in usage lines (``/id``).

        Returns:
            The reply; never raises for anything a user or host can send.
        """
        await trio.lowlevel.checkpoint()
        decoded = decode_as(CommandContext, ctx, kind="command context")
        if isinstance(decoded, PayloadError):
            logger.warning("/%s: %s", COMMAND_NAME, decoded)
            return ReplyPayload(text=f"⚠️ {decoded}", is_error=True)
        name, args = _split(decoded)
        parsed = parse_identity_args(args, command=name)
        self.handled += 1
        if isinstance(parsed, UsageError):
            return ReplyPayload(text=parsed.render(), is_error=True)
        if isinstance(parsed, Help):
            text = help_text(name) if parsed.topic is None else usage(parsed.topic, name)
            return ReplyPayload(text=text)
        handler = self._handlers.get(type(parsed))
        sub = subcommand_name(parsed)
        if handler is None:
            self.failed += 1
            return ReplyPayload(text=f"⚠️ /{name} {sub} is not available.", is_error=True)
        caller = caller_for_command(
            decoded, personal_session_mode=self._deps.plugin.identity.personal_session_mode
        )
        try:
            outcome = await handler(self._deps, caller, parsed)
        except OperationError as exc:
            return exc.reply()
        except Exception as exc:  # noqa: BLE001 - a command must always answer; the type is logged
            self.failed += 1
            logger.error("/%s %s failed: %s", name, sub, type(exc).__name__)  # noqa: TRY400
            return ReplyPayload(text=_FAILED.format(command=name, sub=sub), is_error=True)
        return outcome.reply()


def _split(ctx: CommandContext) -> tuple[str, str]:
    """The command word used (``identity`` or ``id``) and the argument string."""
    name = COMMAND_NAME
    body_args = ""
    split = split_command_body(ctx.command_body) if ctx.command_body else None
    if split is not None:
        word, body_args = split
        if word.replace("_", "-") == COMMAND_ALIAS:
            name = COMMAND_ALIAS
    args = ctx.args if ctx.args is not None else body_args
    return name, args
