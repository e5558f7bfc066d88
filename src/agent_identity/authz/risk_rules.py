"""Rule-based risk evaluation of one tool call: :func:`evaluate_rules`.

What each tool's params are checked for:

* ``exec`` — ``command`` (also ``cmd``/``script``; a list of words is joined) is analysed as a
  shell command line (:mod:`.risk_exec`); ``elevated: true`` is ``exec-elevated``.
* ``process`` — text sent to a running process (``data``, ``text``, ``input``, ``keys``,
  ``command``) is analysed like a command: it usually lands in a shell.
* ``write`` / ``edit`` — the target path (``path``, ``file_path``, ``filePath``, ``file``).
* ``apply_patch`` — every path the patch touches (``*** Add/Update/Delete File:``,
  ``*** Move to:``, ``---``/``+++``, ``diff --git``); deleting a file is ``patch-delete-file``.
* ``read`` — a credential file is ``credential-read``.
* Any other tool (browser, message, web_fetch …) has no rules and is ``low``.

The assessment's level is the highest matched; its reason is that of the first such rule in
:data:`~.risk_table.RULES`. Evaluation never raises, whatever the params hold.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from typing import Any, Final

from agent_identity.authz.risk_exec import analyze_command
from agent_identity.authz.risk_model import RiskAssessment, RiskRule, level_rank
from agent_identity.authz.risk_paths import classify_path
from agent_identity.authz.risk_table import RULE_ORDER, RULES, RULES_BY_ID
from agent_identity.authz.risk_tools import normalize_tool_name

__all__ = [
    "LOW_REASON",
    "NO_RULES_REASON",
    "assessment_from_rule_ids",
    "evaluate_command",
    "evaluate_rules",
    "list_risk_patterns",
    "patch_paths",
]

LOW_REASON: Final = "No risky pattern recognised"
NO_RULES_REASON: Final = "No risk rules apply to this tool"

_COMMAND_KEYS: Final = ("command", "cmd", "script")
_PROCESS_KEYS: Final = ("data", "text", "input", "keys", "command")
_PATH_KEYS: Final = ("path", "file_path", "filePath", "file")
_PATCH_KEYS: Final = ("input", "patch", "patch_text", "patchText")
_RULED_TOOLS: Final = frozenset({"exec", "process", "write", "edit", "apply_patch", "read"})
_PATCH_FILE_RE: Final = re.compile(
    r"^\*\*\* (?P<op>Add|Update|Delete) File:\s*(?P<path>.+?)\s*$"
    r"|^\*\*\* Move to:\s*(?P<moved>.+?)\s*$"
    r"|^(?:---|\+\+\+) (?:[ab]/)?(?P<diff>\S+)"
    r"|^diff --git a/(?P<git_a>\S+) b/(?P<git_b>\S+)"
    r"|^rename (?:from|to) (?P<renamed>.+?)\s*$",
    re.MULTILINE,
)


def list_risk_patterns() -> tuple[RiskRule, ...]:
    """Every rule (id, level, reason, description, tools), for ``identity_list_risk_patterns``."""
    return RULES


def assessment_from_rule_ids(
    rule_ids: Iterable[str], *, low_reason: str = LOW_REASON
) -> RiskAssessment:
    """The assessment for a set of matched rule ids (unknown ids are ignored).

    Args:
        rule_ids: Matched rule ids, in any order.
        low_reason: The reason when nothing matched.
    """
    rules = sorted(
        (RULES_BY_ID[rule_id] for rule_id in set(rule_ids) if rule_id in RULES_BY_ID),
        key=lambda rule: (-level_rank(rule.level), RULE_ORDER[rule.id]),
    )
    if not rules:
        return RiskAssessment(risk="low", reason=low_reason, rule_risk="low")
    top = rules[0]
    return RiskAssessment(
        risk=top.level,
        reason=top.reason,
        rule_ids=tuple(rule.id for rule in rules),
        rule_risk=top.level,
    )


def _texts(value: object) -> list[str]:
    """The command text(s) in a param value: a string, or a list of words joined."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
        return [shlex.join(value)]
    return []


def _first_texts(params: Mapping[str, Any], keys: Iterable[str]) -> list[str]:
    found: list[str] = []
    for key in keys:
        found.extend(_texts(params.get(key)))
    return found


def patch_paths(patch: str) -> tuple[list[str], bool]:
    """The paths a patch touches, and whether it deletes a file.

    Understands the ``apply_patch`` envelope (``*** Update File: path``) and unified diffs.
    """
    paths: list[str] = []
    deletes = False
    for match in _PATCH_FILE_RE.finditer(patch):
        groups = match.groupdict()
        if groups["op"] == "Delete":
            deletes = True
        for key in ("path", "moved", "diff", "git_a", "git_b", "renamed"):
            value = groups[key]
            if value == "/dev/null":
                deletes = deletes or match.group(0).startswith("+++")
            elif value:
                paths.append(value)
    return paths, deletes


def _rule_ids(tool: str, params: Mapping[str, Any]) -> set[str]:
    found: set[str] = set()
    if tool == "exec":
        for text in _first_texts(params, _COMMAND_KEYS):
            found |= analyze_command(text)
        if params.get("elevated") is True:
            found.add("exec-elevated")
    elif tool == "process":
        for text in _first_texts(params, _PROCESS_KEYS):
            found |= analyze_command(text)
    elif tool in {"write", "edit"}:
        paths = [p for key in _PATH_KEYS if isinstance(p := params.get(key), str)]
        if any(classify_path(path) is not None for path in paths):
            found.add("sensitive-path-write")
    elif tool == "apply_patch":
        for text in _first_texts(params, _PATCH_KEYS):
            paths, deletes = patch_paths(text)
            if deletes:
                found.add("patch-delete-file")
            if any(classify_path(path) is not None for path in paths):
                found.add("sensitive-path-write")
    elif tool == "read":
        paths = [p for key in _PATH_KEYS if isinstance(p := params.get(key), str)]
        if any(classify_path(path) == "credential" for path in paths):
            found.add("credential-read")
    return found


def evaluate_rules(tool_name: str, params: Mapping[str, Any] | None = None) -> RiskAssessment:
    """Assess a tool call with the built-in rules; never raises.

    Args:
        tool_name: The tool (normalised here as the host does: ``bash`` → ``exec``).
        params: The call's params as the model sent them (anything non-mapping is ignored).

    Returns:
        The assessment with ``source="rules"``; ``low`` for tools without rules.
    """
    tool = normalize_tool_name(tool_name) if isinstance(tool_name, str) else ""
    if tool not in _RULED_TOOLS:
        return assessment_from_rule_ids((), low_reason=NO_RULES_REASON)
    safe_params: Mapping[str, Any] = params if isinstance(params, Mapping) else {}
    return assessment_from_rule_ids(_rule_ids(tool, safe_params))


def evaluate_command(command: str) -> RiskAssessment:
    """Assess a shell command as an ``exec`` call (``/identity risk <command>``)."""
    return evaluate_rules("exec", {"command": command})
