"""Authorization: CheckPermission decisions, risk rules, LLM risk re-evaluation."""

from agent_identity.authz.permission import (
    PermissionBackend,
    PermissionChecker,
    PermissionDecision,
    PermissionStatistics,
    SkillEntry,
    parse_available_skills,
    parse_skill_entries,
    skill_for_read,
)
from agent_identity.authz.tip_claims import (
    DelegationChain,
    TipClaims,
    TipClaimsError,
    decode_tip_claims,
    delegation_chain,
)

__all__ = [
    "DelegationChain",
    "PermissionBackend",
    "PermissionChecker",
    "PermissionDecision",
    "PermissionStatistics",
    "SkillEntry",
    "TipClaims",
    "TipClaimsError",
    "decode_tip_claims",
    "delegation_chain",
    "parse_available_skills",
    "parse_skill_entries",
    "skill_for_read",
]
