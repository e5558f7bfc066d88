"""What agent-identity hands back: hook results, approvals, replies, tool and gateway results.

The shapes follow host contract sections 2, 4, 5, 6 and 8. All are
:class:`~agent_identity.host.contract.WireStruct` subclasses, so
:func:`~agent_identity.host.contract.to_wire` (or ``msgspec.json.encode``) leaves out every
optional field that is unset: the host sees ``{"handled": true, "text": "…"}``, never
``"blockReason": null``.

Approval requests have hard limits on the host side: a ``title`` over 80 characters or a
``description`` outside 1..256 makes ``plugin.approval.request`` fail validation, and the tool
call then ends blocked (host contract 2.6). :func:`approval_request` clips both and clamps the
timeout, so a long command line in a description can never turn an approval into a block.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Final, Literal

from agent_identity.host.contract import WireStruct, truncate_utf16, utf16_len

__all__ = [
    "ALLOW_ALWAYS",
    "ALLOW_ONCE",
    "APPROVAL_DECISIONS",
    "APPROVAL_DESCRIPTION_MAX",
    "APPROVAL_TITLE_MAX",
    "CANCELLED",
    "DEFAULT_APPROVAL_TIMEOUT_MS",
    "DENY",
    "MAX_APPROVAL_TIMEOUT_MS",
    "TIMEOUT",
    "ApprovalDecision",
    "ApprovalSeverity",
    "BeforeAgentStartResult",
    "BeforeDispatchResult",
    "BeforeToolCallResult",
    "GatewayError",
    "GatewayErrorCode",
    "ReplyPayload",
    "RequireApproval",
    "SessionGetResult",
    "SessionPutResult",
    "TextContent",
    "TimeoutBehavior",
    "ToolResult",
    "approval_request",
    "clip_approval_text",
    "text_result",
]

ApprovalDecision = Literal["allow-once", "allow-always", "deny", "timeout", "cancelled"]
ALLOW_ONCE: Final = "allow-once"
ALLOW_ALWAYS: Final = "allow-always"
DENY: Final = "deny"
#: Reported to ``onResolution`` when nobody decided in time.
TIMEOUT: Final = "timeout"
#: Reported to ``onResolution`` when the run was aborted while waiting.
CANCELLED: Final = "cancelled"
APPROVAL_DECISIONS: Final[tuple[ApprovalDecision, ...]] = (
    ALLOW_ONCE,
    ALLOW_ALWAYS,
    DENY,
    TIMEOUT,
    CANCELLED,
)

ApprovalSeverity = Literal["info", "warning", "critical"]
TimeoutBehavior = Literal["allow", "deny"]

#: Longest approval title the host accepts (UTF-16 code units; the schema says 80).
APPROVAL_TITLE_MAX: Final = 80
#: Longest approval description every host accepts (256 in 2026.4.x, 512 later).
APPROVAL_DESCRIPTION_MAX: Final = 256
#: The host's approval timeout when none is given.
DEFAULT_APPROVAL_TIMEOUT_MS: Final = 120_000
#: The longest approval timeout the host honours.
MAX_APPROVAL_TIMEOUT_MS: Final = 600_000

_ELLIPSIS: Final = "…"


# ---------------------------------------------------------------- hook results


class BeforeDispatchResult(WireStruct, frozen=True, kw_only=True):
    """Claim result of ``before_dispatch``.

    ``handled=True`` ends the turn; ``text`` is then sent to the originating chat.
    """

    handled: bool
    text: str | None = None


class BeforeAgentStartResult(WireStruct, frozen=True, kw_only=True):
    """Result of the legacy ``before_agent_start``: it can only steer, never block.

    Prompt fields concatenate across plugins; the first model/provider override wins.
    """

    system_prompt: str | None = None
    prepend_context: str | None = None
    append_context: str | None = None
    prepend_system_context: str | None = None
    append_system_context: str | None = None
    model_override: str | None = None
    provider_override: str | None = None


class RequireApproval(WireStruct, frozen=True, kw_only=True):
    """Ask the user before a tool runs (``before_tool_call`` → ``requireApproval``).

    Build it with :func:`approval_request` to stay within the host's limits. ``timeout_behavior``
    is honoured by 2026.4.x hosts only; later hosts always deny on timeout.
    """

    title: str
    description: str
    severity: ApprovalSeverity | None = None
    timeout_ms: int | None = None
    timeout_behavior: TimeoutBehavior | None = None
    allowed_decisions: list[ApprovalDecision] | None = None


class BeforeToolCallResult(WireStruct, frozen=True, kw_only=True):
    """Result of ``before_tool_call``.

    ``params`` is shallow-merged over the call's params by the host (not a replacement);
    ``block=True`` is terminal; the first ``require_approval`` among plugins wins.
    """

    params: dict[str, Any] | None = None
    block: bool | None = None
    block_reason: str | None = None
    require_approval: RequireApproval | None = None


def clip_approval_text(text: str, limit: int) -> str:
    """Fit ``text`` into ``limit`` UTF-16 code units, as the host's schema counts.

    Counting UTF-16 units (JavaScript's ``length``) is never less than counting code points
    (what a JSON Schema validator may count), so the result passes either way. A clipped
    text ends with ``…`` so the user can see it was cut.

    Args:
        text: The title or description.
        limit: :data:`APPROVAL_TITLE_MAX`, :data:`APPROVAL_DESCRIPTION_MAX` or another limit.

    Returns:
        ``text`` unchanged when it fits, else its longest prefix that fits with ``…``.
    """
    if utf16_len(text) <= limit:
        return text
    if limit < len(_ELLIPSIS):
        return ""
    return truncate_utf16(text, limit - len(_ELLIPSIS)) + _ELLIPSIS


def approval_request(
    title: str,
    description: str,
    *,
    severity: ApprovalSeverity | None = None,
    timeout_ms: int | None = None,
    timeout_behavior: TimeoutBehavior | None = None,
    allowed_decisions: list[ApprovalDecision] | None = None,
) -> RequireApproval:
    """A :class:`RequireApproval` the host will accept whatever the inputs.

    The title and description are clipped (:func:`clip_approval_text`); an empty description
    becomes the title, since the host requires at least one character; the timeout is clamped
    to ``1 .. MAX_APPROVAL_TIMEOUT_MS``.
    """
    clipped_title = clip_approval_text(title, APPROVAL_TITLE_MAX)
    clipped_description = clip_approval_text(description or title or "-", APPROVAL_DESCRIPTION_MAX)
    clamped = None if timeout_ms is None else max(1, min(timeout_ms, MAX_APPROVAL_TIMEOUT_MS))
    return RequireApproval(
        title=clipped_title,
        description=clipped_description,
        severity=severity,
        timeout_ms=clamped,
        timeout_behavior=timeout_behavior,
        allowed_decisions=allowed_decisions,
    )


# ---------------------------------------------------------------- commands and tools


class ReplyPayload(WireStruct, frozen=True, kw_only=True):
    """A command's reply (``ReplyPayload``); chiefly ``text``.

    ``continue_agent`` (2026.4.x+) lets the agent process the message too; ``suppress_reply``
    exists from 2026.9.x.
    """

    text: str | None = None
    is_error: bool | None = None
    media_url: str | None = None
    media_urls: list[str] | None = None
    reply_to_id: str | None = None
    channel_data: dict[str, Any] | None = None
    continue_agent: bool | None = None
    suppress_reply: bool | None = None


class TextContent(WireStruct, frozen=True, kw_only=True, tag="text", tag_field="type"):
    """One text block of a tool result: ``{"type": "text", "text": …}``."""

    text: str


class ToolResult(WireStruct, frozen=True, kw_only=True):
    """A tool's result. Only ``content`` reaches the model; ``details`` is for UIs and logs.

    Failures are raised, not encoded here (host contract 5). Hosts from 2026.9.x grade a call
    by the ``details`` keys ``status``, ``ok``, ``success``, ``error``, ``timedOut`` and
    ``exitCode``, so use those only with their host meaning.
    """

    content: list[TextContent]
    # Required, never omitted: a host may read ``details.status`` without a guard.
    details: dict[str, Any]


def text_result(text: str, details: dict[str, Any] | None = None) -> ToolResult:
    """A tool result with one text block and optional details."""
    return ToolResult(content=[TextContent(text=text)], details=dict(details or {}))


# ---------------------------------------------------------------- gateway methods


class GatewayErrorCode(StrEnum):
    """Gateway error codes, as the host's ``ErrorCodes`` spells them.

    ``FORBIDDEN`` is a host constant only from 2026.8.1, but ``code`` is a free string, so
    older hosts relay it unchanged.
    """

    NOT_LINKED = "NOT_LINKED"
    NOT_PAIRED = "NOT_PAIRED"
    AGENT_TIMEOUT = "AGENT_TIMEOUT"
    INVALID_REQUEST = "INVALID_REQUEST"
    APPROVAL_NOT_FOUND = "APPROVAL_NOT_FOUND"
    UNAVAILABLE = "UNAVAILABLE"
    FORBIDDEN = "FORBIDDEN"


class GatewayError(WireStruct, frozen=True, kw_only=True):
    """The ``error`` of a gateway response frame: ``respond(False, None, error)``."""

    code: str
    message: str
    details: Any = None
    retryable: bool | None = None
    retry_after_ms: int | None = None


class SessionPutResult(WireStruct, frozen=True, kw_only=True):
    """Response of ``identity.session.put``. ``expires_at`` is epoch milliseconds (JS)."""

    sub: str
    expires_at: int
    effective_session_key: str
    has_tip: bool


class SessionGetResult(WireStruct, frozen=True, kw_only=True):
    """Response of ``identity.session.get``. The refresh token itself is never returned."""

    user_token: str
    sub: str
    expires_at: int
    effective_session_key: str
    has_refresh_token: bool
