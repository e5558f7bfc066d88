"""The authentication gate: ``before_dispatch``, ``before_agent_start`` and ``subagent_spawned``.

``before_dispatch`` is the pre-LLM gate (spec "Hooks"): it sees every inbound message before
commands and the model (host contract 2.2). It remembers who sent the message (tool contexts
of hosts before 2026.8.1 carry no sender), lets slash commands through (``/identity login``
must work for a user who is not logged in), and claims every other message of a session
without a TIP, answering with an OIDC login URL: no model runs, no token is spent. With
``authz.agentCheck`` it also asks CheckPermission whether the user may invoke the agent.

``before_agent_start`` is the fallback for hosts without ``before_dispatch``. It cannot block
(host contract 2.4), so it steers: the model is told the user must log in first, with the
URL. Once ``before_dispatch`` has run, the host has it, and this hook no longer authenticates.

``subagent_spawned`` hands the parent's TIP and session to a child session when
``identity.subagentTipPropagation`` is on. It is an observer: it never raises.

Nothing here talks to an LLM. Errors are logged by type only (an exception's text may carry
anything, a URL with state included); the gate then fails closed with a generic answer.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import trio

from agent_identity.actors.tip_messages import NoTip, TipInfo
from agent_identity.authz import SkillEntry, parse_skill_entries
from agent_identity.host.caller import Caller, caller_for_agent
from agent_identity.host.command_parser import split_command_body
from agent_identity.host.contract import PayloadError
from agent_identity.host.deps import HostDeps
from agent_identity.host.events import (
    BEFORE_AGENT_START,
    BEFORE_DISPATCH,
    SUBAGENT_SPAWNED,
    AgentContext,
    BeforeAgentStartEvent,
    BeforeDispatchContext,
    BeforeDispatchEvent,
    SubagentContext,
    SubagentSpawnedEvent,
    decode_context,
    decode_event,
)
from agent_identity.host.hook_guard import guarded
from agent_identity.host.results import BeforeAgentStartResult, BeforeDispatchResult
from agent_identity.host.senders import Sender
from agent_identity.host.session_keys import normalize_session_key

__all__ = [
    "AuthGate",
    "SkillIndex",
    "is_slash_command",
    "message_texts",
]

logger = logging.getLogger(__name__)

# The host's command-name rule (``^[a-z][a-z0-9_-]*$``, matched case-insensitively), with the
# ``@botname`` suffix Telegram adds in groups. A message like "/usr/bin/ls, is that safe?" is
# not a command and must not slip past the gate to the model.
_COMMAND_NAME: Final = re.compile(r"[a-z][a-z0-9_-]*(?:@\S+)?", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class _Texts:
    """What the gate says: to the user (``before_dispatch``) or to the model (the fallback)."""

    login: str  # {url}
    no_login: str
    unavailable: str  # {reason}
    denied: str  # {reason}


_REPLIES: Final = _Texts(
    login=(
        "🔒 Please sign in before talking to this agent: {url}\n"
        "The link is valid for 5 minutes. After signing in, send your message again."
    ),
    no_login=(
        "🔒 This agent needs you to sign in, but login is not configured on this gateway "
        "(no userpool). Please ask the operator."
    ),
    unavailable=(
        "⚠️ Your identity could not be checked right now ({reason}). Please try again shortly."
    ),
    denied="⛔ You may not use this agent ({reason}).",
)
_MODEL_NOTES: Final = _Texts(
    login=(
        "[agent-identity] The user is not signed in. Do not work on their request and do not "
        "call any tool. Tell them to sign in first by opening {url} (or by sending /identity "
        "login), then to send their message again."
    ),
    no_login=(
        "[agent-identity] The user is not signed in, and login is not configured on this "
        "gateway. Do not work on their request and do not call any tool; tell them to ask the "
        "operator."
    ),
    unavailable=(
        "[agent-identity] The user's identity could not be checked ({reason}). Do not call any "
        "tool; tell them to try again shortly."
    ),
    denied=(
        "[agent-identity] The user may not use this agent ({reason}). Do not work on their "
        "request and do not call any tool; tell them they lack permission."
    ),
)
_FAILED_REPLY: Final = "⚠️ Your identity could not be checked right now. Please try again shortly."

#: Host sessions whose skill index is remembered at once.
DEFAULT_SKILL_SESSIONS: Final = 10_000


def is_slash_command(text: str) -> bool:
    """Whether a message is a slash command the gate must let through.

    ``/identity …``, ``/id …``, ``/approve …`` and the host's own commands all qualify; text
    that merely starts with a slash but whose first word is no command name does not.
    """
    split = split_command_body(text)
    return split is not None and _COMMAND_NAME.fullmatch(split[0]) is not None


class SkillIndex:
    """The skills each host session's prompt offers, for ``skillReadCheck``.

    ``before_agent_start`` records what it parses; ``before_tool_call`` uses the entries to
    name the skill a ``read`` of a SKILL.md opens. Bounded: least recently used sessions go
    first (a forgotten session only falls back to naming a skill by its folder).

    Args:
        capacity: Sessions kept.
    """

    def __init__(self, capacity: int = DEFAULT_SKILL_SESSIONS) -> None:
        self._capacity = max(1, capacity)
        self._entries: OrderedDict[str, tuple[SkillEntry, ...]] = OrderedDict()

    def record(self, session_key: str, entries: Iterable[SkillEntry]) -> None:
        """Remember the skills of a host session (replacing what was there)."""
        self._entries[session_key] = tuple(entries)
        self._entries.move_to_end(session_key)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def lookup(self, session_key: str) -> tuple[SkillEntry, ...]:
        """The recorded skills of a host session (empty when none were seen)."""
        return self._entries.get(session_key, ())


def message_texts(messages: list[Any] | None) -> Iterable[str]:
    """The texts of a run's messages: a string ``content``, or the ``text`` of its blocks.

    Anything else (a non-mapping, an image block) is skipped: the host's message shapes vary.
    """
    for message in messages or ():
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, str):
            yield content
        elif isinstance(content, list):
            for block in content:
                if isinstance(block, Mapping) and isinstance(block.get("text"), str):
                    yield block["text"]


class AuthGate:
    """The three session-level hooks; see the module docstring.

    Args:
        deps: The running system.
        skills: Where the skills offered to each session are recorded.
    """

    def __init__(self, deps: HostDeps, skills: SkillIndex) -> None:
        self._deps = deps
        self._skills = skills
        self._dispatch_seen = False

    @property
    def dispatch_active(self) -> bool:
        """Whether ``before_dispatch`` has run, i.e. the host has it and it does the gating."""
        return self._dispatch_seen

    def _caller(self, ctx: AgentContext) -> Caller:
        return caller_for_agent(
            ctx,
            senders=self._deps.senders,
            personal_session_mode=self._deps.plugin.identity.personal_session_mode,
        )

    # ------------------------------------------------------------------ before_dispatch

    async def before_dispatch(self, event: object, ctx: object) -> BeforeDispatchResult | None:
        """Gate one inbound message; ``None`` lets it through (see the module docstring)."""
        self._dispatch_seen = True
        failed = BeforeDispatchResult(handled=True, text=_FAILED_REPLY)  # the gate fails closed
        return await guarded(BEFORE_DISPATCH, failed, self._dispatch, event, ctx)

    async def _dispatch(self, raw_event: object, raw_ctx: object) -> BeforeDispatchResult | None:
        event = decode_event(BEFORE_DISPATCH, raw_event)
        ctx = decode_context(BEFORE_DISPATCH, raw_ctx)
        if isinstance(event, PayloadError) or isinstance(ctx, PayloadError):
            bad = event if isinstance(event, PayloadError) else ctx
            logger.warning("before_dispatch got a malformed payload: %s", bad)
            await trio.lowlevel.checkpoint()
            return BeforeDispatchResult(handled=True, text=_FAILED_REPLY)
        caller = self._record_sender(event, ctx)
        if is_slash_command(event.content):
            await trio.lowlevel.checkpoint()
            return None
        tip = await self._deps.tips.get_tip(caller.session_key)
        if not isinstance(tip, TipInfo):
            text = await self._sign_in(
                caller, tip, _REPLIES, to=ctx.conversation_id, accountId=ctx.account_id
            )
            return BeforeDispatchResult(handled=True, text=text)
        denial = await self._agent_denial(tip, caller)
        if denial is not None:
            return BeforeDispatchResult(handled=True, text=_REPLIES.denied.format(reason=denial))
        return None

    def _record_sender(self, event: BeforeDispatchEvent, ctx: BeforeDispatchContext) -> Caller:
        host_key = ctx.session_key or event.session_key
        sender_id = (ctx.sender_id or event.sender_id or "").strip()
        channel = (event.channel or ctx.channel_id or "").strip().lower() or None
        if sender_id:
            self._deps.senders.record(normalize_session_key(host_key), Sender(sender_id, channel))
        return self._caller(
            AgentContext(session_key=host_key, sender_id=sender_id or None, channel=channel)
        )

    async def _sign_in(self, caller: Caller, tip: NoTip, texts: _Texts, **where: str | None) -> str:
        """Why there is no TIP, with a login URL when logging in would help.

        Args:
            caller: Whose session has no TIP.
            tip: Why.
            texts: What to say, and to whom.
            **where: Where the login's follow-up goes (``to``, ``accountId``).
        """
        if tip.code == "unavailable":
            # The user is logged in; the control plane is not answering. A login won't help.
            await trio.lowlevel.checkpoint()
            return texts.unavailable.format(reason=tip.reason)
        login = self._deps.login
        if login is None:
            await trio.lowlevel.checkpoint()
            return texts.no_login
        context = {"channel": caller.channel, "senderId": caller.sender_id, **where}
        url = await login.start_login(
            caller.session_key, context={k: v for k, v in context.items() if v}
        )
        return texts.login.format(url=url)

    async def _agent_denial(
        self, tip: TipInfo, caller: Caller, *, run_id: str | None = None
    ) -> str | None:
        """The reason the user may not invoke the agent, or ``None`` (also when unchecked)."""
        if not self._deps.plugin.authz.agent_check:
            await trio.lowlevel.checkpoint()
            return None
        # The outermost actor of the TIP's delegation chain is the agent (spec "agentCheck").
        decision = await self._deps.permission.check_agent(
            tip.token, session_key=caller.session_key, run_id=run_id
        )
        return None if decision.allowed else decision.reason

    # ------------------------------------------------------------------ before_agent_start

    async def before_agent_start(self, event: object, ctx: object) -> BeforeAgentStartResult | None:
        """Steer the model of a session without a TIP (or denied the agent); never raises."""
        # This hook cannot block: on failure, tell the model not to go on.
        failed = BeforeAgentStartResult(
            prepend_context=_MODEL_NOTES.unavailable.format(reason="internal error")
        )
        return await guarded(BEFORE_AGENT_START, failed, self._agent_start, event, ctx)

    async def _agent_start(
        self, raw_event: object, raw_ctx: object
    ) -> BeforeAgentStartResult | None:
        event = decode_event(BEFORE_AGENT_START, raw_event)
        ctx = decode_context(BEFORE_AGENT_START, raw_ctx)
        if isinstance(event, PayloadError) or isinstance(ctx, PayloadError):
            bad = event if isinstance(event, PayloadError) else ctx
            logger.warning("before_agent_start got a malformed payload: %s", bad)
            await trio.lowlevel.checkpoint()
            return None
        caller = self._caller(ctx)
        self._record_skills(caller.host_session_key, event)
        if self._dispatch_seen:
            # before_dispatch already authenticated this turn (spec "Hooks").
            await trio.lowlevel.checkpoint()
            return None
        tip = await self._deps.tips.get_tip(caller.session_key)
        if not isinstance(tip, TipInfo):
            return BeforeAgentStartResult(
                prepend_context=await self._sign_in(caller, tip, _MODEL_NOTES)
            )
        denial = await self._agent_denial(tip, caller, run_id=ctx.run_id or event.run_id)
        if denial is not None:
            return BeforeAgentStartResult(prepend_context=_MODEL_NOTES.denied.format(reason=denial))
        return None

    def _record_skills(self, host_key: str, event: BeforeAgentStartEvent) -> None:
        if not self._deps.plugin.authz.skill_read_check:
            return
        texts = [event.prompt, *message_texts(event.messages)]
        entries = parse_skill_entries("\n".join(texts))
        if entries:
            self._skills.record(host_key, entries)

    # ------------------------------------------------------------------ subagent_spawned

    async def subagent_spawned(self, event: object, ctx: object) -> None:
        """Propagate the parent's TIP and session to the child session; never raises."""
        await guarded(SUBAGENT_SPAWNED, None, self._spawned, event, ctx)

    async def _spawned(self, raw_event: object, raw_ctx: object) -> None:
        if not self._deps.plugin.identity.subagent_tip_propagation:
            await trio.lowlevel.checkpoint()
            return
        event = decode_event(SUBAGENT_SPAWNED, raw_event)
        ctx = decode_context(SUBAGENT_SPAWNED, raw_ctx)
        if isinstance(event, PayloadError) or isinstance(ctx, PayloadError):
            bad = event if isinstance(event, PayloadError) else ctx
            logger.warning("subagent_spawned got a malformed payload: %s", bad)
            await trio.lowlevel.checkpoint()
            return
        await self._propagate(event, ctx)

    async def _propagate(self, event: SubagentSpawnedEvent, ctx: SubagentContext) -> None:
        if not ctx.requester_session_key:
            logger.info("subagent_spawned without a requester session: nothing to propagate")
            await trio.lowlevel.checkpoint()
            return
        # The parent's effective key: its host key plus the sender before_dispatch recorded.
        parent = self._caller(AgentContext(session_key=ctx.requester_session_key)).session_key
        child = normalize_session_key(event.child_session_key)
        outcome = await self._deps.tips.propagate(parent, child, agent_id=event.agent_id)
        if isinstance(outcome, NoTip):
            logger.info("no TIP propagated to a subagent session (%s)", outcome.code)
