"""Authorization: CheckPermission decisions, risk rules, LLM risk re-evaluation."""

from agent_identity.authz.llm_protocol import LlmVerdict
from agent_identity.authz.llm_risk import LlmRiskChecker, LlmRiskStatistics
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
from agent_identity.authz.risk_evaluator import RiskEvaluator
from agent_identity.authz.risk_model import (
    RISK_LEVELS,
    RiskAssessment,
    RiskLevel,
    RiskRule,
    RiskSource,
)
from agent_identity.authz.risk_rules import evaluate_command, evaluate_rules, list_risk_patterns
from agent_identity.authz.risk_tools import (
    BUILTIN_LOW_RISK_TOOLS,
    is_low_risk,
    normalize_tool_name,
    should_bypass_checks,
)
from agent_identity.authz.tip_claims import (
    DelegationChain,
    TipClaims,
    TipClaimsError,
    decode_tip_claims,
    delegation_chain,
)

__all__ = [
    "BUILTIN_LOW_RISK_TOOLS",
    "RISK_LEVELS",
    "DelegationChain",
    "LlmRiskChecker",
    "LlmRiskStatistics",
    "LlmVerdict",
    "PermissionBackend",
    "PermissionChecker",
    "PermissionDecision",
    "PermissionStatistics",
    "RiskAssessment",
    "RiskEvaluator",
    "RiskLevel",
    "RiskRule",
    "RiskSource",
    "SkillEntry",
    "TipClaims",
    "TipClaimsError",
    "decode_tip_claims",
    "delegation_chain",
    "evaluate_command",
    "evaluate_rules",
    "is_low_risk",
    "list_risk_patterns",
    "normalize_tool_name",
    "parse_available_skills",
    "parse_skill_entries",
    "should_bypass_checks",
    "skill_for_read",
]
