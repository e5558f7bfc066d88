"""The vocabulary of CheckPermission checks: actions, resource types, decisions, statistics.

Shared by :mod:`agent_identity.authz.permission` (the checker) and its callers; see that
module for how the three checks map onto CheckPermission.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Protocol

from agent_identity.volcengine.models import CheckPermissionRequest
from agent_identity.volcengine.models import PermissionDecision as WirePermissionDecision

__all__ = [
    "ACTION_CALL",
    "ACTION_INVOKE",
    "ACTION_READ",
    "RESOURCE_AGENT",
    "RESOURCE_SKILL",
    "RESOURCE_TOOL",
    "PermissionBackend",
    "PermissionDecision",
    "PermissionStatistics",
]

#: ``Operation.Id`` of the agent check.
ACTION_INVOKE: Final = "invoke"
#: ``Operation.Id`` of the tool check.
ACTION_CALL: Final = "call"
#: ``Operation.Id`` of the skill-read check.
ACTION_READ: Final = "read"
#: ``Resource.Type`` of the agent check.
RESOURCE_AGENT: Final = "agent"
#: ``Resource.Type`` of the tool check.
RESOURCE_TOOL: Final = "tool"
#: ``Resource.Type`` of the skill-read check.
RESOURCE_SKILL: Final = "skill"


class PermissionBackend(Protocol):
    """What the checker needs of the control plane: :class:`IdentityClient` satisfies it."""

    async def check_permission(self, request: CheckPermissionRequest) -> WirePermissionDecision:
        """Decide one CheckPermission request; raise :class:`VolcengineError` on failure."""
        ...


@dataclass(frozen=True, slots=True)
class PermissionDecision:
    """The answer of a check: a value, never an exception."""

    #: Whether the action may go ahead; anything but an explicit allow is ``False``.
    allowed: bool
    #: Why, in a sentence fit for a block reason or a log line (never contains a token).
    reason: str
    #: Whether the answer came from the cache (or was shared with a concurrent check).
    cached: bool = False
    #: Whether this is a fail-closed deny because the control plane could not be asked.
    failed: bool = False


@dataclass(frozen=True, slots=True)
class PermissionStatistics:
    """Counters of a :class:`PermissionChecker` (lifetime)."""

    #: Checks asked for.
    checks: int
    #: Checks that allowed.
    allowed: int
    #: Checks that denied (by policy, by failure or for bad input).
    denied: int
    #: Checks answered from the cache.
    cache_hits: int
    #: Checks that waited for a concurrent identical check instead of calling.
    coalesced: int
    #: CheckPermission calls made.
    control_plane_calls: int
    #: Calls that failed (each one a fail-closed deny).
    failures: int
    #: Checks denied before any call: unreadable TIP, no agent, empty name.
    invalid: int
    #: Decisions cached right now (expired ones included until swept).
    cache_size: int
    #: Control-plane calls in flight right now.
    in_flight: int
