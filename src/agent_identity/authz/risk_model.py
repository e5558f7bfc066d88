"""The vocabulary of risk evaluation: levels, rules and the assessment of one tool call.

A tool call is ``low``, ``medium`` or ``high`` risk. Rules (see :mod:`.risk_rules`) give the
first answer; an LLM may re-evaluate a ``medium`` (see :mod:`.llm_risk`). Only ``high`` asks the
user for approval (``authz.requireRiskApproval``), so ``medium`` is a cheap "worth a second look"
that never blocks on its own.

:class:`RiskAssessment` is what ``identity_risk_check`` returns; on the wire it is camelCase
(``risk``, ``reason``, ``source``, ``ruleIds``, ``llmError``) via :meth:`RiskAssessment.to_wire`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final, Literal, TypeGuard

import msgspec

__all__ = [
    "RISK_LEVELS",
    "RiskAssessment",
    "RiskLevel",
    "RiskRule",
    "RiskSource",
    "highest_level",
    "is_risk_level",
    "level_rank",
]

RiskLevel = Literal["low", "medium", "high"]
"""How risky a tool call is; ``high`` needs approval when ``requireRiskApproval`` is on."""

RiskSource = Literal["rules", "llm"]
"""Who decided the final level: the built-in rules or the LLM re-evaluation."""

RISK_LEVELS: Final[tuple[RiskLevel, ...]] = ("low", "medium", "high")
"""Every level, lowest first (the index is the rank)."""

_RANK: Final[dict[str, int]] = {level: rank for rank, level in enumerate(RISK_LEVELS)}


def is_risk_level(value: object) -> TypeGuard[RiskLevel]:
    """Whether ``value`` is exactly one of ``low``, ``medium``, ``high``."""
    return isinstance(value, str) and value in _RANK


def level_rank(level: RiskLevel) -> int:
    """The rank of a level: 0 for ``low`` up to 2 for ``high``."""
    return _RANK[level]


def highest_level(levels: Iterable[RiskLevel]) -> RiskLevel:
    """The highest of some levels; ``low`` when there are none."""
    best: RiskLevel = "low"
    for level in levels:
        if _RANK[level] > _RANK[best]:
            best = level
    return best


class RiskRule(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One entry of the rule table, as ``identity_list_risk_patterns`` shows it.

    The matching itself is code (shell commands need parsing, not a regex); the table holds
    what a person needs to understand a verdict.

    Attributes:
        id: Stable identifier, e.g. ``pipe-to-shell``; appears in assessments as a rule id.
        level: The level a call matching this rule gets (the highest match wins).
        reason: One line shown to the user when this rule decides the assessment.
        description: What the rule looks for, with examples.
        tools: The normalised tool names the rule applies to.
    """

    id: str
    level: RiskLevel
    reason: str
    description: str
    tools: tuple[str, ...]

    def to_wire(self) -> dict[str, Any]:
        """The rule as a JSON-ready mapping with camelCase keys."""
        wire: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(self))
        return wire


class RiskAssessment(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """The verdict on one tool call.

    Attributes:
        risk: The final level.
        reason: Why, in one line (the deciding rule's reason, or the LLM's).
        source: ``rules`` or ``llm``: who decided ``risk``.
        rule_ids: Every rule that matched, highest level first (may be empty for ``low``).
        rule_risk: The level the rules alone gave (differs from ``risk`` only when the LLM
            re-evaluated a ``medium``).
        llm_error: Why an attempted LLM re-evaluation was not used (a timeout, an HTTP status,
            a malformed answer); never contains secrets. ``None`` when the LLM was not asked
            or answered well.
    """

    risk: RiskLevel
    reason: str
    source: RiskSource = "rules"
    rule_ids: tuple[str, ...] = ()
    rule_risk: RiskLevel | None = None
    llm_error: str | None = None

    @property
    def is_high(self) -> bool:
        """Whether the call needs approval (when ``requireRiskApproval`` is on)."""
        return self.risk == "high"

    def to_wire(self) -> dict[str, Any]:
        """The assessment as ``identity_risk_check`` returns it (camelCase, no ``None`` values)."""
        # A JSON round trip gives plain lists (``to_builtins`` would keep the tuples).
        wire: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(self))
        return {key: value for key, value in wire.items() if value is not None}
