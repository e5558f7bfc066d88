"""The result of one ``/identity`` operation, shaped once and rendered for commands and tools.

A subcommand and its tool report the same facts (issue contract), so each operation returns
an :class:`Outcome`: ``text`` for people (the command's reply, the tool's one text block) and
``details`` for programs (the tool's ``details``). A failure the user can act on is an
:class:`OperationError`: the command shows it as a warning reply, the tool raises it, as the
host expects tools to do (host contract 5). Its message must never contain a secret.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from agent_identity.host.results import ReplyPayload, ToolResult, text_result

if TYPE_CHECKING:
    from agent_identity.host.caller import Caller
    from agent_identity.host.contract import IdentityCommand
    from agent_identity.host.deps import HostDeps

__all__ = ["CommandHandler", "OperationError", "Outcome", "ToolHandler"]

_WARNING = "⚠️ "


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an operation found or did.

    Attributes:
        text: Short plain text, readable in a chat window.
        details: JSON-ready facts for programs (never more secret than ``text``).
    """

    text: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def reply(self) -> ReplyPayload:
        """The command reply."""
        return ReplyPayload(text=self.text)

    def tool_result(self) -> ToolResult:
        """The tool result."""
        return text_result(self.text, dict(self.details))


class OperationError(Exception):
    """A failure to report to the user (not a bug): not logged in, unknown provider and such.

    Args:
        message: A sentence for people; never a secret.
        code: A stable machine-readable reason (``not_logged_in``, ``unknown_provider`` …).
    """

    def __init__(self, message: str, *, code: str = "failed") -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def reply(self) -> ReplyPayload:
        """The command reply for this failure."""
        return ReplyPayload(text=_WARNING + self.message, is_error=True)


CommandHandler: TypeAlias = "Callable[[HostDeps, Caller, IdentityCommand], Awaitable[Outcome]]"
"""Runs one parsed ``/identity`` subcommand for a caller."""

ToolHandler: TypeAlias = "Callable[[HostDeps, Caller, Mapping[str, Any]], Awaitable[Outcome]]"
"""Runs one ``identity_*`` tool with already validated params for a caller."""
