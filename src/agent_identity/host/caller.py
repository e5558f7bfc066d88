"""Who is calling: the effective session key and sender, from trusted context only.

Every handler works for a :class:`Caller`, built here from what the host says about the
message (command context, tool factory context, hook contexts) or, for the local server, from
the socket's peer. Tool *params* come from the model and are never consulted: a model cannot
name another user's session. A context without a sender falls back to the sender that
``before_dispatch`` recorded for the same host session (:class:`SenderDirectory`), and
without that to the host key itself (a shared session, never someone else's).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from agent_identity.host.events import AgentContext, CommandContext, ToolContext, ToolHookContext
from agent_identity.host.senders import Sender, SenderDirectory
from agent_identity.host.session_keys import (
    MAIN_SESSION_KEY,
    build_effective_session_key,
    normalize_session_key,
)
from agent_identity.notify import NotifyContext

__all__ = [
    "Caller",
    "CallerKind",
    "caller_for_agent",
    "caller_for_command",
    "caller_for_local",
    "caller_for_tool",
    "caller_for_tool_hook",
    "effective_key",
]

CallerKind = Literal["command", "tool", "hook", "local"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Caller:
    """The identity a handler acts for.

    Attributes:
        session_key: The effective session key (what the session, TIP and credentials are
            stored under).
        host_session_key: The host's (normalised) session key.
        sender_id: The trusted sender id, when known.
        channel: The lower-case channel id, when known.
        agent_id: The host agent id, when known.
        operator: Whether the caller may see other sessions' summaries (an authorized sender
            of a command, the owner, or the local socket's owner).
        notify: Where a later follow-up goes (commands only).
        kind: Which interface the call came through.
    """

    session_key: str
    host_session_key: str
    sender_id: str | None = None
    channel: str | None = None
    agent_id: str | None = None
    operator: bool = False
    notify: NotifyContext | None = None
    kind: CallerKind = "command"


def _text(value: str | None) -> str | None:
    if value is None:
        return None
    stripped = value.strip()
    return stripped or None


def effective_key(
    session_key: str | None,
    *,
    sender_id: str | None,
    channel: str | None,
    personal_session_mode: bool,
) -> str:
    """:func:`build_effective_session_key`, with an over-long sender treated as no sender.

    A sender id longer than the host allows cannot come from a real channel; refusing it
    would fail the whole hook, so the host key is used instead (the shared, never another
    user's, session).
    """
    try:
        return build_effective_session_key(
            session_key,
            sender_id=sender_id,
            channel=channel,
            personal_session_mode=personal_session_mode,
        )
    except ValueError:
        return build_effective_session_key(session_key, personal_session_mode=personal_session_mode)


@dataclass(frozen=True, slots=True)
class _Trusted:
    """What a context says about who sent the message, before the effective key is derived."""

    session_key: str | None
    sender_id: str | None
    channel: str | None
    agent_id: str | None


def _build(
    trusted: _Trusted,
    senders: SenderDirectory | None,
    *,
    personal_session_mode: bool,
    kind: CallerKind,
    operator: bool = False,
    notify: NotifyContext | None = None,
) -> Caller:
    """Derive the caller: a missing sender falls back to the directory's, then none."""
    host_key = normalize_session_key(trusted.session_key)
    sender = _text(trusted.sender_id)
    surface = _text(trusted.channel)
    if sender is None and senders is not None:
        known: Sender | None = senders.lookup(host_key)
        if known is not None:
            sender = known.sender_id
            surface = surface or known.channel
    channel = surface.lower() if surface else None
    return Caller(
        session_key=effective_key(
            host_key, sender_id=sender, channel=channel, personal_session_mode=personal_session_mode
        ),
        host_session_key=host_key,
        sender_id=sender,
        channel=channel,
        agent_id=_text(trusted.agent_id),
        operator=operator,
        notify=notify,
        kind=kind,
    )


def caller_for_command(ctx: CommandContext, *, personal_session_mode: bool) -> Caller:
    """The caller of an ``/identity`` command (its context always names the sender)."""
    sender, channel = _text(ctx.sender_id), _text(ctx.channel)
    return _build(
        _Trusted(ctx.session_key, sender, channel, ctx.agent_id),
        None,
        personal_session_mode=personal_session_mode,
        kind="command",
        operator=ctx.is_authorized_sender or bool(ctx.sender_is_owner),
        notify=NotifyContext(
            channel=channel.lower() if channel else None,
            sender_id=sender,
            to=_text(ctx.to) or _text(ctx.from_),
            account_id=_text(ctx.account_id),
        ),
    )


def caller_for_tool(
    ctx: ToolContext, *, senders: SenderDirectory, personal_session_mode: bool
) -> Caller:
    """The caller of an ``identity_*`` tool (from the tool factory's trusted context)."""
    delivery = ctx.delivery_context
    channel = ctx.message_channel or (delivery.channel if delivery is not None else None)
    caller = _build(
        _Trusted(ctx.session_key, ctx.requester_sender_id, channel, ctx.agent_id),
        senders,
        personal_session_mode=personal_session_mode,
        kind="tool",
        operator=bool(ctx.sender_is_owner),
    )
    # The delivery context is the conversation the tool runs in: follow-ups go back there.
    notify = NotifyContext(
        channel=caller.channel,
        sender_id=caller.sender_id,
        to=_text(delivery.to) if delivery is not None else None,
        account_id=(_text(delivery.account_id) if delivery is not None else None)
        or _text(ctx.agent_account_id),
    )
    return replace(caller, notify=notify)


def caller_for_tool_hook(
    ctx: ToolHookContext, *, senders: SenderDirectory, personal_session_mode: bool
) -> Caller:
    """The caller of ``before_tool_call`` / ``after_tool_call``."""
    requester = ctx.requester
    sender_id = requester.sender_id if requester is not None else None
    channel = (requester.channel if requester is not None else None) or ctx.channel_id
    return _build(
        _Trusted(ctx.session_key, sender_id, channel, ctx.agent_id),
        senders,
        personal_session_mode=personal_session_mode,
        kind="hook",
        operator=bool(requester.sender_is_owner) if requester is not None else False,
    )


def caller_for_agent(
    ctx: AgentContext, *, senders: SenderDirectory, personal_session_mode: bool
) -> Caller:
    """The caller of ``before_agent_start``."""
    return _build(
        _Trusted(ctx.session_key, ctx.sender_id, ctx.channel or ctx.channel_id, ctx.agent_id),
        senders,
        personal_session_mode=personal_session_mode,
        kind="hook",
    )


def caller_for_local(session: str | None, *, personal_session_mode: bool) -> Caller:
    """The caller of the local identity server: the socket's owner, for ``session``.

    The local server is reachable only by the socket owner's processes (0600 plus peer
    checks), i.e. the operator of this gateway, so it may name any session; an empty or
    missing one means the main session.
    """
    key = _text(session) or MAIN_SESSION_KEY
    host_key = normalize_session_key(key)
    return Caller(
        session_key=MAIN_SESSION_KEY if personal_session_mode else host_key,
        host_session_key=host_key,
        operator=True,
        kind="local",
    )
