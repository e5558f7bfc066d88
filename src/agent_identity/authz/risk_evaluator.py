"""The risk evaluator: rules first, then (when enabled) the LLM for ``medium`` verdicts.

This is what ``before_tool_call`` (risk approval), ``identity_risk_check`` and
``/identity risk <command>`` use. ``low`` and ``high`` rule verdicts are final: the LLM only
settles the grey zone, so a failing or slow model can never turn a rule's ``high`` into an
unapproved call, nor cost latency on the clear cases.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx
import trio

from agent_identity.authz.llm_risk import LlmRiskChecker, LlmRiskStatistics
from agent_identity.authz.risk_model import RiskAssessment, RiskRule
from agent_identity.authz.risk_rules import evaluate_rules, list_risk_patterns
from agent_identity.authz.risk_tools import is_low_risk, normalize_tool_name
from agent_identity.config import AuthzConfig

__all__ = ["RiskEvaluator"]


class RiskEvaluator:
    """Assesses tool calls.

    Args:
        authz: The authz config (for ``lowRiskTools``); ``None`` means defaults.
        llm: The LLM re-evaluator, or ``None`` to use the rules alone.
    """

    def __init__(
        self, authz: AuthzConfig | None = None, *, llm: LlmRiskChecker | None = None
    ) -> None:
        self._authz = authz
        self._llm = llm

    @classmethod
    def from_config(
        cls,
        authz: AuthzConfig,
        http: httpx.AsyncClient | None = None,
        *,
        clock: Callable[[], float] = trio.current_time,
    ) -> RiskEvaluator:
        """An evaluator as ``authz`` configures it.

        Args:
            authz: The authz config; the LLM is used when ``enableLlmRiskCheck`` is on and
                ``llmRiskCheck`` is set.
            http: The shared HTTP client; required when the LLM is used.
            clock: The cache clock of the LLM checker.

        Raises:
            ValueError: The LLM check is enabled but no HTTP client was given.
        """
        settings = authz.llm_risk_check
        if not authz.enable_llm_risk_check or settings is None:
            return cls(authz)
        if http is None:
            raise ValueError("the LLM risk check needs an HTTP client")
        return cls(authz, llm=LlmRiskChecker(settings, http, clock=clock))

    @property
    def llm_enabled(self) -> bool:
        """Whether ``medium`` verdicts go to the LLM."""
        return self._llm is not None

    def llm_statistics(self) -> LlmRiskStatistics | None:
        """The LLM checker's counters (``None`` without one)."""
        return self._llm.statistics() if self._llm is not None else None

    def is_low_risk(self, tool_name: str) -> bool:
        """Whether the tool is low-risk (built in or in ``lowRiskTools``)."""
        return is_low_risk(tool_name, self._authz)

    @staticmethod
    def risk_patterns() -> tuple[RiskRule, ...]:
        """The rule table (``identity_list_risk_patterns``)."""
        return list_risk_patterns()

    async def assess(
        self, tool_name: str, params: Mapping[str, Any] | None = None
    ) -> RiskAssessment:
        """Assess one tool call.

        Args:
            tool_name: The tool (``bash``/``apply-patch`` are normalised).
            params: The call's params.

        Returns:
            The rules' assessment, or the LLM's for a ``medium`` one when enabled (the
            rules' one with ``llm_error`` if the LLM failed).
        """
        await trio.lowlevel.checkpoint()
        tool, safe_params = _sanitized(tool_name, params)
        rules = evaluate_rules(tool, safe_params)
        if rules.risk != "medium" or self._llm is None:
            return rules
        return await self._llm.reevaluate(tool, safe_params, rules)

    def assess_nowait(
        self, tool_name: str, params: Mapping[str, Any] | None = None
    ) -> RiskAssessment | None:
        """:meth:`assess` in the caller's task when the rules settle it; ``None``: await it.

        Only a ``medium`` verdict with the LLM check on needs the LLM (and a wait).
        """
        tool, safe_params = _sanitized(tool_name, params)
        rules = evaluate_rules(tool, safe_params)
        return None if rules.risk == "medium" and self._llm is not None else rules

    async def assess_command(self, command: str) -> RiskAssessment:
        """Assess a shell command as an ``exec`` call (``/identity risk <command>``)."""
        return await self.assess("exec", {"command": command})


def _sanitized(tool_name: object, params: object) -> tuple[str, Mapping[str, Any]]:
    # The host always sends a string; anything else (an in-process bug) has no rules.
    tool = normalize_tool_name(tool_name) if isinstance(tool_name, str) else ""
    return tool, params if isinstance(params, Mapping) else {}
