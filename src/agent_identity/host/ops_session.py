"""Session operations: whoami, login, status, logout, list-tips and the two raw tokens.

Each operation works for the trusted :class:`Caller` only (its effective session key); params
and command arguments never name a session. ``list-tips`` is the one view across sessions,
and only for an operator caller. Times in ``details`` are ISO-8601 UTC strings, durations
whole seconds; the names follow the original plugin's SKILL (``tipChain``,
``tipExpiresInSeconds``, ``credentialProviders`` …).

The TIP and the user token appear only in ``identity_get_tip_token`` and
``identity_get_session_token``, whose purpose they are, marked ``details.secret``. Nothing
here logs. The tables include :mod:`~agent_identity.host.ops_config`'s handlers.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from agent_identity.actors.login_broker import DEFAULT_LOGIN_TTL
from agent_identity.actors.tip_messages import LoggedOut, TipInfo, TipSummary
from agent_identity.actors.vault_types import ProviderStatus
from agent_identity.host import ops_config
from agent_identity.host.caller import Caller
from agent_identity.host.contract import IdentityCommand, ListTips, Login, Logout, Status, Whoami
from agent_identity.host.deps import HostDeps
from agent_identity.host.ops_common import no_tip_error, require_tip_info
from agent_identity.host.outcome import CommandHandler, OperationError, Outcome, ToolHandler
from agent_identity.notify.notifier import NotifyContext
from agent_identity.oidc import OidcError
from agent_identity.storage import SessionView

__all__ = [
    "COMMANDS",
    "TOOLS",
    "get_session_token",
    "get_tip_token",
    "list_tips",
    "login",
    "logout",
    "status",
    "whoami",
]

Operation = Callable[[HostDeps, Caller], Awaitable[Outcome]]

#: The camelCase keys of a host command context that :meth:`NotifyContext.from_command` reads.
_CONTEXT_KEYS: Final = ("channel", "senderId", "to", "accountId")
_NOT_LOGGED_IN: Final = "Not logged in. Run /identity login to sign in."
_CONFIDENTIAL: Final = "This is a secret: never show or share it unless the user asked for it."


# ---------------------------------------------------------------- shaping


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC).isoformat(timespec="seconds")


def _duration(seconds: float) -> str:
    total = int(seconds)
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m" if minutes else f"{secs}s"


def _expiry(expires_at: float, now: float) -> str:
    left = expires_at - now
    return f"expires in {_duration(left)}" if left > 0 else "expired"


def _who(view: SessionView) -> str:
    return f"{view.sub} ({view.email})" if view.email else view.sub


def _chain(actors: list[str]) -> str:
    # The outermost (current) agent first, as DelegationChain prints it.
    return " <- ".join(actors) if actors else "(none)"


def _prefixed(prefix: str, facts: Mapping[str, Any]) -> dict[str, Any]:
    """Flat detail names, as the original's whoami has them: ``tip`` + ``expiresAt``."""
    return {prefix + name[0].upper() + name[1:]: value for name, value in facts.items()}


def _tip(tip: TipInfo | TipSummary, now: float) -> dict[str, Any]:
    return {
        "issuedAt": _iso(tip.issued_at),
        "expiresAt": _iso(tip.expires_at),
        "expiresInSeconds": max(0, int(tip.expires_at - now)),
        "chain": tip.chain.to_list(),
        "workload": tip.workload,
    }


def _session(view: SessionView) -> dict[str, Any]:
    return {"loginAt": _iso(view.login_at), "expiresAt": _iso(view.expires_at)}


def _tip_line(tip: TipInfo, now: float) -> str:
    return f"TIP: valid, {_expiry(tip.expires_at, now)}; chain: {_chain(tip.chain.to_list())}"


def _provider(status: ProviderStatus) -> dict[str, Any]:
    facts = dataclasses.asdict(status)
    # snake_case fields to the camelCase of every other detail (env_var -> envVar).
    return {re.sub(r"_(\w)", lambda m: m[1].upper(), name): v for name, v in facts.items()}


def _provider_text(status: ProviderStatus) -> str:
    state = "expired" if status.expired else None
    env = f"env {status.env_var}" if status.env_var else None
    facts = (status.type, state if status.stored else "no credential", env)
    return f"{status.name} ({', '.join(fact for fact in facts if fact)})"


# ---------------------------------------------------------------- whoami, status


async def whoami(deps: HostDeps, caller: Caller) -> Outcome:
    """The session's user and the cached TIP (no network call: a missing TIP is not minted).

    Not being logged in is an answer (``loggedIn: false``), not an error.
    """
    key = caller.session_key
    view = await deps.sessions.get(key)
    if view is None:
        return Outcome(_NOT_LOGGED_IN, {"loggedIn": False, "hasTip": False, "sessionKey": key})
    tip = await deps.tips.peek(key)
    now = time.time()
    details: dict[str, Any] = {"loggedIn": True, "sub": view.sub, "email": view.email}
    details.update(name=view.name, sessionKey=key, **_prefixed("session", _session(view)))
    details["hasTip"] = isinstance(tip, TipInfo)
    lines = [f"Logged in as {_who(view)}", f"Session {key}, {_expiry(view.expires_at, now)}"]
    if isinstance(tip, TipInfo):
        details.update(_prefixed("tip", _tip(tip, now)))
        lines.append(_tip_line(tip, now))
    else:
        lines.append("TIP: none cached. Run /identity status or /identity login to get one.")
    return Outcome("\n".join(lines), details)


async def status(deps: HostDeps, caller: Caller) -> Outcome:
    """Login, TIP (obtained or refreshed when a session exists), credentials and bindings."""
    key = caller.session_key
    view = await deps.sessions.get(key)
    tip = (
        None
        if view is None
        else await deps.tips.get_tip(
            key,
        )
    )
    providers = await deps.vault.describe(key)
    now = time.time()
    details: dict[str, Any] = {
        "loggedIn": view is not None,
        "sub": None if view is None else view.sub,
        "sessionKey": key,
        "hasTip": isinstance(tip, TipInfo),
        "session": None if view is None else _session(view),
        "tip": _tip(tip, now) if isinstance(tip, TipInfo) else None,
        "credentialProviders": [_provider(p) for p in providers],
        "bindings": {p.name: p.env_var for p in providers if p.env_var},
    }
    lines = [_NOT_LOGGED_IN]
    if view is not None:
        lines = [f"Logged in as {_who(view)}; session {_expiry(view.expires_at, now)}."]
    if isinstance(tip, TipInfo):
        lines.append(_tip_line(tip, now))
    elif tip is not None:
        details["tipError"] = {"code": tip.code, "reason": tip.reason}
        lines.append(f"TIP: none ({tip.reason})")
    listed = ", ".join(_provider_text(p) for p in providers) or "none"
    lines.append(f"Credentials: {listed}")
    return Outcome("\n".join(lines), details)


# ---------------------------------------------------------------- login, logout


def _login_route(caller: Caller) -> NotifyContext:
    """Where the login follow-up goes: the caller's route, else its channel and sender."""
    return caller.notify or NotifyContext(channel=caller.channel, sender_id=caller.sender_id)


async def _start_login(deps: HostDeps, caller: Caller, note: str) -> Outcome:
    if deps.login is None:
        raise OperationError(
            "Login is not configured: the plugin config has no userpool section.",
            code="login_not_configured",
        )
    route = _login_route(caller)
    try:
        url = await deps.login.start_login(caller.session_key, context=route.to_context())
    except OidcError as exc:
        raise OperationError(
            "Login is not available right now: the identity provider could not be reached "
            f"({exc.reason_code}).",
            code="login_unavailable",
        ) from None
    follow_up = deps.notifier.can_push(route)
    after = (
        "You will get a message here once you are logged in."
        if follow_up
        else "No message will arrive here when you are done: run /identity status to check."
    )
    minutes = int(DEFAULT_LOGIN_TTL // 60)
    text = f"{note}Open this link to log in (valid for {minutes} minutes):\n{url}\n{after}"
    details: dict[str, Any] = {"loggedIn": False, "sessionKey": caller.session_key}
    details |= {"authUrl": url, "expiresInSeconds": int(DEFAULT_LOGIN_TTL), "followUp": follow_up}
    return Outcome(text, details)


async def login(deps: HostDeps, caller: Caller) -> Outcome:
    """Refresh the TIP of a logged-in session; else return the login URL to open.

    A session whose user token can no longer mint (:class:`LoggedOut`) gets a new login URL.

    Raises:
        OperationError: ``login_not_configured`` (no ``userpool``), ``login_unavailable``
            (the provider cannot be reached), ``no_tip`` (logged in, but the TIP could not be
            refreshed; the cached one, if any, is still served).
    """
    key = caller.session_key
    view = await deps.sessions.get(key)
    note = ""
    if view is not None:
        tip = await deps.tips.refresh(
            key,
        )
        if isinstance(tip, TipInfo):
            now = time.time()
            details: dict[str, Any] = {"loggedIn": True, "refreshed": True, "sub": view.sub}
            details |= {"sessionKey": key, "tip": _tip(tip, now)}
            expiry = _expiry(tip.expires_at, now)
            return Outcome(f"Already logged in as {_who(view)}. TIP refreshed, {expiry}.", details)
        if isinstance(tip, LoggedOut):
            note = "Your login has expired or was revoked; log in again.\n"
        elif tip.code != "no_session":  # no_session: logged out meanwhile, so just log in
            raise no_tip_error(tip)
    return await _start_login(deps, caller, note)


async def logout(deps: HostDeps, caller: Caller) -> Outcome:
    """Clear the session, its TIP, credentials, bindings and pending approvals.

    The session goes first, so a TIP mint racing the logout finds no user token; every other
    piece is then cleared even if there was no session (a binding set before login, say).
    Not being logged in is an answer, not an error.
    """
    key = caller.session_key
    view = await deps.sessions.get(key)
    bindings = await deps.sessions.bindings(key)
    had_session = await deps.sessions.delete(key)  # also removes the bindings
    had_tip = await deps.tips.forget(key)
    credentials = await deps.vault.clear(key)
    approvals = await deps.approvals.discard(key)
    counts = {"credential": credentials, "binding": len(bindings), "pending approval": approvals}
    parts = [label for label, done in (("session", had_session), ("TIP", had_tip)) if done]
    parts += [f"{n} {noun}{'' if n == 1 else 's'}" for noun, n in counts.items() if n]
    cleared = {"session": had_session, "tip": had_tip, "credentials": credentials}
    cleared |= {"bindings": len(bindings), "approvals": approvals}
    sub = None if view is None else view.sub
    if had_session:
        text = f"Logged out {sub}. Cleared: {', '.join(parts)}."
    elif parts:
        text = f"You were not logged in. Cleared: {', '.join(parts)}."
    else:
        text = "You were not logged in; there was nothing to clear."
    details = {"loggedOut": had_session, "sub": sub, "sessionKey": key, "cleared": cleared}
    return Outcome(text, details)


# ---------------------------------------------------------------- list-tips


def _own(summaries: list[TipSummary], key: str) -> list[TipSummary]:
    """The caller's TIP and those of its subagents (linked, at any depth, to its session)."""
    mine = {key}
    grew = True
    while grew:  # parents may sort after their children, so repeat until nothing is added
        before = len(mine)
        mine |= {s.session_key for s in summaries if s.parent_key in mine}
        grew = len(mine) != before
    return [s for s in summaries if s.session_key in mine]


async def list_tips(deps: HostDeps, caller: Caller) -> Outcome:
    """Every valid TIP with chain, expiry and bindings: all sessions for an operator, else own."""
    summaries = await deps.tips.list_tips()
    scope = "all" if caller.operator else "own"
    if not caller.operator:
        summaries = _own(summaries, caller.session_key)
    now = time.time()
    tips: list[dict[str, Any]] = []
    lines: list[str] = []
    for summary in summaries:
        bindings = await deps.sessions.bindings(summary.session_key)
        facts = _tip(summary, now) | {"refreshAt": _iso(summary.refresh_at)}
        entry = {"sessionKey": summary.session_key, "sub": summary.sub, **_prefixed("tip", facts)}
        entry |= {"parentKey": summary.parent_key, "refreshFailures": summary.failures}
        entry |= {"lastError": summary.last_error, "bindings": bindings}
        tips.append(entry)
        env = ", ".join(f"{var}<-{provider}" for provider, var in sorted(bindings.items()))
        lines.append(
            f"{summary.session_key}: {summary.sub}, {_expiry(summary.expires_at, now)}, "
            f"chain {_chain(entry['tipChain'])}, env {env or 'none'}"
        )
    if not lines:
        text = "No valid TIPs." if caller.operator else "No valid TIP for this session."
    else:
        header = "Valid TIPs (all sessions):" if caller.operator else "Valid TIPs of this session:"
        text = "\n".join([header, *lines])
    return Outcome(text, {"scope": scope, "count": len(tips), "tips": tips})


# ---------------------------------------------------------------- raw tokens (tools only)


def _secret(what: str, value: str, sub: str, expires_at: float, facts: dict[str, Any]) -> Outcome:
    text = f"{what} of {sub}, {_expiry(expires_at, time.time())}. {_CONFIDENTIAL}\n{value}"
    return Outcome(text, {"secret": True, "warning": _CONFIDENTIAL, "sub": sub, **facts})


async def get_tip_token(deps: HostDeps, caller: Caller) -> Outcome:
    """The session's raw TIP JWT (minted if needed): a secret, returned because asked for.

    Raises:
        OperationError: ``not_logged_in``, ``logged_out`` or ``tip_unavailable``.
    """
    tip = await require_tip_info(deps, caller)
    facts = {"token": tip.token, **_prefixed("tip", _tip(tip, time.time()))}
    return _secret("TIP token", tip.token, tip.sub, tip.expires_at, facts)


async def get_session_token(deps: HostDeps, caller: Caller) -> Outcome:
    """The session's OIDC user token (never the refresh token): a secret, returned because asked.

    Raises:
        OperationError: ``not_logged_in``.
    """
    view = await deps.sessions.get(caller.session_key)
    if view is None:
        raise OperationError(_NOT_LOGGED_IN, code="not_logged_in")
    facts: dict[str, Any] = {"userToken": view.user_token, "expiresAt": _iso(view.expires_at)}
    facts["hasRefreshToken"] = view.has_refresh_token
    return _secret("Session token", view.user_token, view.sub, view.expires_at, facts)


# ---------------------------------------------------------------- tables


def _command(operation: Operation) -> CommandHandler:
    async def handle(deps: HostDeps, caller: Caller, command: IdentityCommand) -> Outcome:
        del command  # these subcommands take no arguments
        return await operation(deps, caller)

    return handle


def _tool(operation: Operation) -> ToolHandler:
    async def handle(deps: HostDeps, caller: Caller, params: Mapping[str, Any]) -> Outcome:
        del params  # these tools take no params (the schemas allow none)
        return await operation(deps, caller)

    return handle


_OPERATIONS: Final[tuple[tuple[type | None, str, Operation], ...]] = (
    (Whoami, "identity_whoami", whoami),
    (Status, "identity_status", status),
    (Login, "identity_login", login),
    (Logout, "identity_logout", logout),
    (ListTips, "identity_list_tips", list_tips),
    (None, "identity_get_tip_token", get_tip_token),  # tools only: no subcommand shows a token
    (None, "identity_get_session_token", get_session_token),
)

COMMANDS: Final[Mapping[type, CommandHandler]] = {
    **{kind: _command(op) for kind, _, op in _OPERATIONS if kind is not None},
    **ops_config.COMMANDS,
}
"""The ``/identity`` subcommands handled here (with ``config``)."""

TOOLS: Final[Mapping[str, ToolHandler]] = {
    **{name: _tool(op) for _, name, op in _OPERATIONS},
    **ops_config.TOOLS,
}
"""The ``identity_*`` tools handled here (with ``identity_config`` and its suggestions)."""
