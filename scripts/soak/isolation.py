#!/usr/bin/env python3
"""Isolation soak: many sessions at once, and no session ever sees another's identity.

Usage::

    python scripts/soak/isolation.py             # full: 1,000 sessions, 12 rounds each
    python scripts/soak/isolation.py --quick     # CI: 1,000 sessions, 3 rounds each

One process runs the sandbox and the whole system (``open_identity``) against it. Every session
logs in through the WebChat gateway method ``identity.session.put`` with its own sender and its
own user (a real id token from the sandbox's user pool), so half of them share the host key
``agent:main:main`` and are told apart only by the trusted sender (effective key
``agent:main:main:user:<sender>``), and the other half are Telegram DMs
(``agent:main:telegram:direct:<sender>``). Most sessions get a credential of their own: a
distinct API-key value imported from an environment mapping and bound to ``ISO_API_KEY``
(some also a second one, ``ISO_GITHUB_TOKEN``).

Then every session runs its rounds concurrently with all the others; each round is one of:

* a tool call: ``before_tool_call`` for ``exec`` (whose params carry another session's key and
  a model-chosen ``ISO_API_KEY``, which must both be ignored), then ``after_tool_call``; the env
  overlay must hold exactly the session's own bound values, or nothing when it has none;
* a TIP check: ``identity_get_tip_token`` through the host's tool path (trusted tool context),
  and the refresher's ``get_tip``; the TIP's ``sub`` claim and its session key must be the
  session's own;
* a re-login: ``/identity logout`` (a tool call right after must get no overlay), then a login
  as a *new* user under the same sender, then maybe a fresh binding.

A session's own rounds run one after the other (so what it should see is exact), while the
sessions run at the same time as each other. Output: one JSON line
``{"sessions", "tool_calls", "tip_checks", "logins", "logouts", "bindings", "violations",
"missing", "errors", "seconds", "examples"}`` where ``violations`` counts a TIP, credential or
env overlay of another session (or of the session's previous user), ``missing`` counts an own
value that was not delivered, and ``errors`` counts operations that failed or raised.
Exit status: 0 when all three are 0, else 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import trio

from agent_identity.actors.tip_messages import TipInfo
from agent_identity.config import parse_plugin_config
from agent_identity.host.results import BeforeToolCallResult
from agent_identity.sandbox import Sandbox, open_sandbox
from agent_identity.sandbox.devconfig import DEV_USER_POOL, dev_plugin_config
from agent_identity.system import Identity, open_identity

FULL_SESSIONS = 1000
FULL_ROUNDS = 12
QUICK_ROUNDS = 3
#: Operations in flight at once (the sandbox shares this process's CPU).
CONCURRENCY = 96
#: Seconds one operation may take before it counts as an error.
OP_DEADLINE = 30.0
BOUND_SHARE = 0.7
SECOND_PROVIDER_SHARE = 0.25
WEBCHAT_CLIENT: Mapping[str, Any] = {"connect": {"client": {"mode": "webchat"}}}
MAIN_KEY = "agent:main:main"
API_VAR = "ISO_API_KEY"
GITHUB_VAR = "ISO_GITHUB_TOKEN"
#: What the model puts into ``exec``'s env; it must be overridden or left alone, never leaked.
MODEL_VALUE = "model-chosen-value"
MAX_EXAMPLES = 10


@dataclass
class Session:
    """One simulated user conversation and what it should see."""

    index: int
    sender: str
    #: ``telegram`` for a DM session, ``None`` for a WebChat session on the shared main key.
    channel: str | None
    key: str = ""
    generation: int = 0
    sub: str = ""
    #: env var → the value this session bound (empty: nothing bound).
    bound: dict[str, str] = field(default_factory=dict)
    calls: int = 0

    @property
    def host_key(self) -> str:
        """The host's session key (shared by every WebChat session)."""
        return MAIN_KEY

    def tool_hook_ctx(self) -> dict[str, Any]:
        """The trusted hook context of one of this session's tool calls."""
        return {
            "sessionKey": self.host_key,
            "requester": {"senderId": self.sender, "channel": self.channel or "webchat"},
        }

    def tool_ctx(self) -> dict[str, Any]:
        """The trusted tool factory context of this session."""
        return {
            "sessionKey": self.host_key,
            "requesterSenderId": self.sender,
            "messageChannel": self.channel or "webchat",
        }

    def command_ctx(self, body: str) -> dict[str, Any]:
        """A command context of this session's sender."""
        return {
            "commandBody": body,
            "sessionKey": self.host_key,
            "senderId": self.sender,
            "channel": self.channel or "webchat",
        }


@dataclass
class Tally:
    """The run's counters and the first few problems (by session index, never a value)."""

    tool_calls: int = 0
    tip_checks: int = 0
    logins: int = 0
    logouts: int = 0
    bindings: int = 0
    violations: int = 0
    missing: int = 0
    errors: int = 0
    examples: list[str] = field(default_factory=list)

    def problem(self, kind: str, session: Session, what: str) -> None:
        """Count one problem and keep its description if there is room."""
        if kind == "violation":
            self.violations += 1
        elif kind == "missing":
            self.missing += 1
        else:
            self.errors += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"{kind}: session {session.index} ({session.key}): {what}")


class Run:
    """The sessions, the system and the bookkeeping of one soak run."""

    def __init__(
        self, ident: Identity, sb: Sandbox, sessions: list[Session], rng: random.Random
    ) -> None:
        self.ident = ident
        self.sb = sb
        self.sessions = sessions
        self.rng = rng
        self.tally = Tally()
        self.limiter = trio.CapacityLimiter(CONCURRENCY)
        #: Every value ever bound → (session index, generation), to name whose a leak was.
        self.owners: dict[str, tuple[int, int]] = {}
        self.subs: dict[str, int] = {}

    # ------------------------------------------------------------------ operations

    async def login(self, session: Session) -> None:
        """Log the session in as a new user (``identity.session.put``)."""
        session.generation += 1
        session.sub = f"iso-user-{session.index}-g{session.generation}"
        self.subs[session.sub] = session.index
        token = self.sb.issue_user_token(DEV_USER_POOL, session.sub)
        params: dict[str, Any] = {"sessionKey": session.host_key, "idToken": token}
        params["senderId"] = session.sender
        if session.channel is not None:
            params["channel"] = session.channel
        response = await self.ident.gateway_methods.call(
            "identity.session.put", params, WEBCHAT_CLIENT
        )
        if not response.ok or response.payload is None:
            self.tally.problem("error", session, f"session.put failed: {response.error}")
            return
        session.key = str(response.payload["effectiveSessionKey"])
        session.bound = {}
        self.tally.logins += 1
        if response.payload.get("sub") != session.sub:
            self.tally.problem("violation", session, "session.put answered another sub")

    async def bind(self, session: Session) -> None:
        """Bind distinct values of this session's own (imported from a private mapping)."""
        wanted = [("openai", API_VAR)]
        if self.rng.random() < SECOND_PROVIDER_SHARE:
            wanted.append(("github", GITHUB_VAR))
        for provider, var in wanted:
            nonce = f"{self.rng.getrandbits(48):012x}"
            value = f"sk-iso-{session.index}-g{session.generation}-{provider}-{nonce}"
            result = await self.ident.vault.set_binding(
                session.key, provider, var, environ={var: value}
            )
            if not result.ok or not result.imported:
                self.tally.problem("error", session, f"binding {provider} failed: {result.message}")
                continue
            self.owners[value] = (session.index, session.generation)
            session.bound[var] = value
            self.tally.bindings += 1

    async def tool_call(self, session: Session, *, expect_nothing: bool = False) -> None:
        """One ``exec`` call: the overlay must be exactly the session's own bound values."""
        session.calls += 1
        other = self.rng.choice(self.sessions)
        call_id = f"c{session.calls}"
        run_id = f"run-{session.index}"
        event = {
            "toolName": "exec",
            # The model names another session and picks its own value: both must be ignored.
            "params": {"command": "env", "sessionKey": other.key, "env": {API_VAR: MODEL_VALUE}},
            "runId": run_id,
            "toolCallId": call_id,
        }
        ctx = session.tool_hook_ctx()
        result = await self.ident.hooks.before_tool_call(event, ctx)
        self.tally.tool_calls += 1
        self.check_overlay(session, result, expect_nothing=expect_nothing)
        after = {"toolName": "exec", "params": event["params"], "runId": run_id}
        after["toolCallId"] = call_id
        await self.ident.hooks.after_tool_call(after, ctx)

    def check_overlay(
        self, session: Session, result: BeforeToolCallResult | None, *, expect_nothing: bool
    ) -> None:
        """Compare an env overlay with what the session bound."""
        if result is not None and result.block:
            self.tally.problem("error", session, f"tool call blocked: {result.block_reason}")
            return
        params = result.params if result is not None else None
        env = params.get("env") if params is not None else None
        overlay: dict[str, str] = dict(env) if isinstance(env, Mapping) else {}
        own = {} if expect_nothing else session.bound
        for var, value in overlay.items():
            if value == own.get(var) or (value == MODEL_VALUE and var not in own):
                continue
            owner = self.owners.get(value)
            whose = "unknown" if owner is None else f"session {owner[0]} generation {owner[1]}"
            self.tally.problem("violation", session, f"{var} held a value of {whose}")
        for var, value in own.items():
            if overlay.get(var) != value:
                self.tally.problem("missing", session, f"{var} was not injected")

    async def tip_check(self, session: Session) -> None:
        """The session's TIP, through the host's tool path and the refresher, is its own."""
        result = await self.ident.tools.execute("identity_get_tip_token", {}, session.tool_ctx())
        self.tally.tip_checks += 1
        details = result.details or {}
        token = details.get("token")
        if not isinstance(token, str):
            self.tally.problem("error", session, "identity_get_tip_token returned no token")
            return
        claims = jwt.decode(token, options={"verify_signature": False})
        self.check_sub(session, claims.get("sub"), "the tool's TIP")
        tip = await self.ident.tips.get_tip(session.key)
        if not isinstance(tip, TipInfo):
            self.tally.problem("error", session, f"get_tip: {tip}")
            return
        if tip.session_key != session.key:
            self.tally.problem("violation", session, f"get_tip answered for {tip.session_key}")
        self.check_sub(session, tip.sub, "get_tip's TipInfo")
        claims = jwt.decode(tip.token, options={"verify_signature": False})
        self.check_sub(session, claims.get("sub"), "get_tip's token")

    def check_sub(self, session: Session, sub: object, where: str) -> None:
        """A TIP's subject must be the session's current user."""
        if sub == session.sub:
            return
        owner = self.subs.get(str(sub))
        whose = "an unknown user" if owner is None else f"the user of session {owner}"
        self.tally.problem("violation", session, f"{where} belongs to {whose}")

    async def relogin(self, session: Session) -> None:
        """Log out, check nothing is injected any more, log in as a new user, maybe bind."""
        reply = await self.ident.commands.handle(session.command_ctx("/identity logout"))
        if reply.is_error:
            self.tally.problem("error", session, f"logout failed: {reply.text}")
            return
        self.tally.logouts += 1
        await self.tool_call(session, expect_nothing=True)
        session.bound = {}
        await self.login(session)
        if self.rng.random() < BOUND_SHARE:
            await self.bind(session)

    # ------------------------------------------------------------------ driving

    async def guarded(
        self, session: Session, what: str, op: Callable[[Session], Awaitable[None]]
    ) -> None:
        """Run one operation under the concurrency limit and the deadline; count failures."""
        async with self.limiter:
            try:
                with trio.fail_after(OP_DEADLINE):
                    await op(session)
            except trio.TooSlowError:
                self.tally.problem("error", session, f"{what} exceeded {OP_DEADLINE:g} s")
            except Exception as exc:  # noqa: BLE001 - any failure is counted and reported
                self.tally.problem("error", session, f"{what} raised {type(exc).__name__}: {exc}")

    async def setup(self, session: Session) -> None:
        """Log in, and bind a credential for most sessions."""
        await self.guarded(session, "login", self.login)
        if session.key and self.rng.random() < BOUND_SHARE:
            await self.guarded(session, "bind", self.bind)

    async def drive(self, session: Session, rounds: int) -> None:
        """The session's rounds, one after the other."""
        for _ in range(rounds):
            roll = self.rng.random()
            if roll < 0.6:
                await self.guarded(session, "tool call", self.tool_call)
            elif roll < 0.85:
                await self.guarded(session, "TIP check", self.tip_check)
            else:
                await self.guarded(session, "re-login", self.relogin)


def make_sessions(count: int) -> list[Session]:
    """Half WebChat sessions on the shared main key, half Telegram DMs."""
    return [
        Session(index=i, sender=f"iso-{i:05d}", channel="telegram" if i % 2 else None)
        for i in range(count)
    ]


async def soak(sessions: int, rounds: int, seed: int) -> dict[str, Any]:
    """Run the soak; return the summary."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible workload, not secrets
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="isolation-") as tmp:
        async with open_sandbox() as sb:
            plugin = parse_plugin_config(
                dev_plugin_config(
                    sb,
                    # Logins go through session.put: the callback route is never served.
                    callback_url="http://127.0.0.1:9/identity/oauth/callback",
                    data_dir=Path(tmp) / "data",
                    overrides={"identity": {"webchatSessionExchange": True}},
                )
            )
            async with open_identity(plugin, environ={}) as ident:
                run = Run(ident, sb, make_sessions(sessions), rng)
                async with trio.open_nursery() as nursery:
                    for session in run.sessions:
                        nursery.start_soon(run.setup, session)
                async with trio.open_nursery() as nursery:
                    for session in run.sessions:
                        nursery.start_soon(run.drive, session, rounds)
                # A last pass over everyone: every session still sees only its own.
                async with trio.open_nursery() as nursery:
                    for session in run.sessions:
                        if session.key:
                            nursery.start_soon(run.guarded, session, "tool call", run.tool_call)
    tally = run.tally
    return {
        "sessions": sessions,
        "rounds": rounds,
        "tool_calls": tally.tool_calls,
        "tip_checks": tally.tip_checks,
        "logins": tally.logins,
        "logouts": tally.logouts,
        "bindings": tally.bindings,
        "violations": tally.violations,
        "missing": tally.missing,
        "errors": tally.errors,
        "seconds": round(time.monotonic() - started, 2),
        "examples": tally.examples,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Isolation soak (see the module docstring).")
    parser.add_argument("--quick", action="store_true", help="CI mode: fewer rounds")
    parser.add_argument("--sessions", type=int, default=FULL_SESSIONS)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--seed", type=int, default=20261129)
    args = parser.parse_args(argv)
    rounds = args.rounds if args.rounds is not None else QUICK_ROUNDS if args.quick else FULL_ROUNDS
    # The system logs warnings for what it refuses; the soak's result is the JSON line.
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    summary = trio.run(soak, args.sessions, rounds, args.seed)
    print(json.dumps(summary), flush=True)
    clean = summary["violations"] == summary["missing"] == summary["errors"] == 0
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
