"""CheckPermission for agents, tools and skills: cached briefly, single-flight, fail closed.

The three checks of ``authz`` (spec "authz config") all ask the Identity control plane the
same question, *may this user do this to that?* (the mapping to CheckPermission is in
:mod:`agent_identity.authz.permission_wire`).

Decisions (allow and deny alike) are cached for :attr:`PermissionChecker.cache_ttl` seconds
(30 s by default) on Trio's clock, keyed by the session key, the user, the delegation chain,
the resource and the action: a tool loop does not call the control plane on every step, a
policy change takes effect within the TTL (or at once after :meth:`PermissionChecker.clear`),
and two users (or one session that changed user) never share an entry. Concurrent checks of
one key share a single control-plane call.

A failed control-plane call (after the Identity client's own retries) **denies**, with a
reason that names the error code and HTTP status. By default such a deny is *not* cached:
the next check asks again, so service comes back as soon as the control plane does; the
retry policy's backoff and the single flight keep a failing control plane from being
hammered. ``failure_ttl`` > 0 caches failure denies that long instead, for deployments that
prefer to shed load during an outage.

No reason, error or statistic ever contains the TIP: CheckPermission is sent only the user's
``sub`` and the actors' names, and a TIP that cannot be read is reported without its text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

import trio

from agent_identity.authz.permission_cache import DecisionCache, DecisionKey
from agent_identity.authz.permission_model import (
    ACTION_CALL,
    ACTION_INVOKE,
    ACTION_READ,
    RESOURCE_AGENT,
    RESOURCE_SKILL,
    RESOURCE_TOOL,
    PermissionBackend,
    PermissionDecision,
    PermissionStatistics,
)
from agent_identity.authz.permission_skills import (
    SkillEntry,
    parse_available_skills,
    parse_skill_entries,
    skill_for_read,
)
from agent_identity.authz.permission_wire import (
    allowed_or_denied,
    check_request,
    describe,
    extra_of,
    failed_closed,
)
from agent_identity.authz.tip_claims import TipClaims, TipClaimsError, decode_tip_claims
from agent_identity.config import AuthzConfig
from agent_identity.volcengine.errors import VolcengineError
from agent_identity.volcengine.models import (
    CheckPermissionRequest,
    PermissionExtra,
)

__all__ = [
    "ACTION_CALL",
    "ACTION_INVOKE",
    "ACTION_READ",
    "DEFAULT_CACHE_TTL",
    "DEFAULT_FAILURE_TTL",
    "DEFAULT_MAX_ENTRIES",
    "RESOURCE_AGENT",
    "RESOURCE_SKILL",
    "RESOURCE_TOOL",
    "PermissionBackend",
    "PermissionChecker",
    "PermissionDecision",
    "PermissionStatistics",
    "SkillEntry",
    "parse_available_skills",
    "parse_skill_entries",
    "skill_for_read",
]

#: Seconds a decision of the control plane is reused.
DEFAULT_CACHE_TTL = 30.0
#: Seconds a fail-closed deny is reused (0: never cached).
DEFAULT_FAILURE_TTL = 0.0
#: Decisions kept at most; the oldest go first.
DEFAULT_MAX_ENTRIES = 10_000


class _Flight:
    """One control-plane call that concurrent checks of the same key wait for."""

    __slots__ = ("done", "result")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.result: PermissionDecision | None = None


class PermissionChecker:
    """Runs the agent, tool and skill-read checks; see the module docstring for the rules.

    Plain object, not an actor: a check runs in the caller's task (so the caller's deadline
    and cancellation apply) and the shared state is touched only between checkpoints.

    Args:
        identity_client: The control plane (an :class:`IdentityClient`).
        namespace: The Cedar policy namespace (``authz.namespaceName``).
        cache_ttl: Seconds a decision is reused; 0 disables the cache.
        failure_ttl: Seconds a fail-closed deny is reused; 0 (the default) never caches it.
        max_entries: Decisions kept at most.
        clock: The clock of the cache (Trio's by default; injectable for tests).

    Raises:
        ValueError: A TTL is negative, ``max_entries`` is below 1, or the namespace is empty.
    """

    def __init__(
        self,
        identity_client: PermissionBackend,
        namespace: str = "default",
        *,
        cache_ttl: float = DEFAULT_CACHE_TTL,
        failure_ttl: float = DEFAULT_FAILURE_TTL,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        if cache_ttl < 0 or failure_ttl < 0:
            raise ValueError("cache TTLs must not be negative")
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        if not namespace:
            raise ValueError("the permission namespace must not be empty")
        self._client = identity_client
        self.namespace = namespace
        self.cache_ttl = cache_ttl
        self.failure_ttl = failure_ttl
        self.max_entries = max_entries
        self._cache: DecisionCache[PermissionDecision] = DecisionCache(max_entries, clock)
        self._flights: dict[DecisionKey, _Flight] = {}
        self._checks = 0
        self._allowed = 0
        self._denied = 0
        self._hits = 0
        self._coalesced = 0
        self._calls = 0
        self._failures = 0
        self._invalid = 0

    @classmethod
    def from_config(
        cls,
        identity_client: PermissionBackend,
        config: AuthzConfig,
        *,
        cache_ttl: float = DEFAULT_CACHE_TTL,
        failure_ttl: float = DEFAULT_FAILURE_TTL,
        clock: Callable[[], float] = trio.current_time,
    ) -> PermissionChecker:
        """Build a checker for the ``authz`` config (its ``namespaceName``)."""
        return cls(
            identity_client,
            config.namespace_name,
            cache_ttl=cache_ttl,
            failure_ttl=failure_ttl,
            clock=clock,
        )

    # ---------------------------------------------------------------------- the checks

    async def check_agent(
        self,
        tip: str | TipClaims,
        agent_id: str | None = None,
        *,
        session_key: str | None = None,
        run_id: str | None = None,
        session_id: str | None = None,
    ) -> PermissionDecision:
        """Check that the TIP's user may ``invoke`` the agent (``agentCheck``).

        Args:
            tip: The session's TIP (or its decoded claims).
            agent_id: The agent; by default the outermost actor of the TIP's chain, which is
                the current agent. When given, the whole chain counts as callers.
            session_key: The effective session key (part of the cache key).
            run_id: ``Extra.runID``, for the control plane's audit trail.
            session_id: ``Extra.sessionID``, for the control plane's audit trail.
        """
        claims = self._claims(tip)
        if isinstance(claims, PermissionDecision):
            return await self._answer_now(claims)
        if agent_id is None:
            if claims.chain.current is None:
                return await self._answer_now(
                    self._invalid_input("the TIP names no agent (no act claim) to check")
                )
            agent_id, callers = claims.chain.current, claims.chain.callers
        else:
            callers = claims.chain.actors
        return await self._check(
            claims,
            RESOURCE_AGENT,
            agent_id,
            ACTION_INVOKE,
            callers,
            session_key=session_key,
            extra=extra_of(run_id, session_id),
        )

    async def check_tool(
        self,
        tip: str | TipClaims,
        tool_name: str,
        *,
        session_key: str | None = None,
        run_id: str | None = None,
        session_id: str | None = None,
    ) -> PermissionDecision:
        """Check that the TIP's user may ``call`` the tool (``toolCheck``); see ``check_agent``."""
        claims = self._claims(tip)
        if isinstance(claims, PermissionDecision):
            return await self._answer_now(claims)
        return await self._check(
            claims,
            RESOURCE_TOOL,
            tool_name,
            ACTION_CALL,
            claims.chain.actors,
            session_key=session_key,
            extra=extra_of(run_id, session_id),
        )

    async def check_skill_read(
        self,
        tip: str | TipClaims,
        skill_name: str,
        *,
        session_key: str | None = None,
        run_id: str | None = None,
        session_id: str | None = None,
    ) -> PermissionDecision:
        """Check that the TIP's user may ``read`` the skill (``skillReadCheck``).

        Arguments as for :meth:`check_agent`.
        """
        claims = self._claims(tip)
        if isinstance(claims, PermissionDecision):
            return await self._answer_now(claims)
        return await self._check(
            claims,
            RESOURCE_SKILL,
            skill_name,
            ACTION_READ,
            claims.chain.actors,
            session_key=session_key,
            extra=extra_of(run_id, session_id),
        )

    def check_tool_nowait(
        self, claims: TipClaims | str, tool_name: str, *, session_key: str | None = None
    ) -> PermissionDecision | None:
        """:meth:`check_tool`'s answer if the cache has it, in the caller's task; else ``None``.

        ``before_tool_call``'s fast path: a cache hit needs no checkpoint and no deadline.
        ``None`` means "await :meth:`check_tool`": nothing cached, an empty name, or a TIP
        not decoded yet (a string; the awaited check decodes it or says why it cannot).
        """
        return self._cached(claims, RESOURCE_TOOL, tool_name, ACTION_CALL, session_key)

    def check_skill_read_nowait(
        self, claims: TipClaims | str, skill_name: str, *, session_key: str | None = None
    ) -> PermissionDecision | None:
        """:meth:`check_skill_read`'s answer if the cache has it; see :meth:`check_tool_nowait`."""
        return self._cached(claims, RESOURCE_SKILL, skill_name, ACTION_READ, session_key)

    def _cached(
        self,
        claims: TipClaims | str,
        resource_type: str,
        resource_id: str,
        action: str,
        session_key: str | None,
    ) -> PermissionDecision | None:
        if not isinstance(claims, TipClaims):
            return None
        # Tools and skills alike list every actor of the chain as callers (see check_tool).
        key = _key(session_key, claims, claims.chain.actors, resource_type, resource_id, action)
        decision = self._cache.get(key) if resource_id else None
        if decision is None:
            return None
        self._checks += 1
        self._hits += 1
        return self._count(decision)

    # ------------------------------------------------------------------ cache control

    def invalidate(self, *, session_key: str | None = None, sub: str | None = None) -> int:
        """Forget cached decisions of a session key and/or a user; return how many.

        With neither argument, forgets everything (like :meth:`clear`). Checks in flight
        are not affected.
        """
        if session_key is None and sub is None:
            return self.clear()
        return self._cache.invalidate(session_key=session_key, sub=sub)

    def clear(self) -> int:
        """Forget every cached decision (e.g. after a policy change); return how many."""
        return self._cache.clear()

    def statistics(self) -> PermissionStatistics:
        """Return the checker's counters."""
        return PermissionStatistics(
            checks=self._checks,
            allowed=self._allowed,
            denied=self._denied,
            cache_hits=self._hits,
            coalesced=self._coalesced,
            control_plane_calls=self._calls,
            failures=self._failures,
            invalid=self._invalid,
            cache_size=len(self._cache),
            in_flight=len(self._flights),
        )

    # ---------------------------------------------------------------------- internals

    def _claims(self, tip: str | TipClaims) -> TipClaims | PermissionDecision:
        self._checks += 1
        if isinstance(tip, TipClaims):
            return tip
        try:
            return decode_tip_claims(tip)
        except TipClaimsError as error:
            return self._invalid_input(f"the TIP cannot be read ({error})")

    def _invalid_input(self, why: str) -> PermissionDecision:
        self._invalid += 1
        return PermissionDecision(allowed=False, reason=f"permission denied: {why}")

    async def _answer_now(self, decision: PermissionDecision) -> PermissionDecision:
        await trio.lowlevel.checkpoint()
        return self._count(decision)

    def _count(self, decision: PermissionDecision) -> PermissionDecision:
        if decision.allowed:
            self._allowed += 1
        else:
            self._denied += 1
        return decision

    async def _check(
        self,
        claims: TipClaims,
        resource_type: str,
        resource_id: str,
        action: str,
        callers: Iterable[str],
        *,
        session_key: str | None,
        extra: PermissionExtra | None,
    ) -> PermissionDecision:
        if not resource_id:
            return await self._answer_now(self._invalid_input(f"no {resource_type} name given"))
        callers = tuple(callers)
        key = _key(session_key, claims, callers, resource_type, resource_id, action)
        what = describe(claims.sub, action, resource_type, resource_id)
        while True:
            cached = self._cache.get(key)
            if cached is not None:
                self._hits += 1
                return await self._answer_now(cached)
            flight = self._flights.get(key)
            if flight is None:
                break
            self._coalesced += 1
            await flight.done.wait()
            if flight.result is not None:
                return self._count(replace(flight.result, cached=True))
            # The caller that made the call was cancelled before it had an answer: try again.
        request = check_request(
            self.namespace, claims.sub, action, resource_type, resource_id, callers, extra
        )
        flight = _Flight()
        self._flights[key] = flight
        try:
            decision = await self._ask(request, what)
            flight.result = decision
        finally:
            del self._flights[key]
            flight.done.set()
        ttl = self.failure_ttl if decision.failed else self.cache_ttl
        if ttl > 0:
            self._cache.store(key, replace(decision, cached=True), ttl)
        return self._count(decision)

    async def _ask(self, request: CheckPermissionRequest, what: str) -> PermissionDecision:
        self._calls += 1
        try:
            answer = await self._client.check_permission(request)
        except VolcengineError as error:
            self._failures += 1
            failure = failed_closed(error, what)
        else:
            return allowed_or_denied(answer, what)
        # A client may fail without reaching a checkpoint; a check always is one.
        await trio.lowlevel.checkpoint()
        return failure


def _key(
    session_key: str | None,
    claims: TipClaims,
    callers: tuple[str, ...],
    resource_type: str,
    resource_id: str,
    action: str,
) -> DecisionKey:
    return (session_key or "", claims.sub, callers, resource_type, resource_id, action)
