"""Validation of the plugin config: structure (via :mod:`.walk`) plus the cross-key rules.

The rules the Structs cannot express on their own:

- ``userpool`` is in exactly one mode. Explicit mode needs ``discoveryUrl``, ``clientId``,
  ``clientSecret``, ``callbackUrl`` and ``scope``; dynamic mode needs ``userPoolName``,
  ``clientName`` and ``callbackUrl``. Keys that select one mode (``discoveryUrl``/``clientId``/
  ``clientSecret`` vs ``userPoolName``/``clientName``) may not be mixed. (``autoCreate`` only
  matters in dynamic mode but is allowed in both, being part of every full wire form.)
- ``authz.enableLlmRiskCheck: true`` needs ``authz.llmRiskCheck``.
- ``localServer``, ``localServerAllowlist`` and ``localServerFailOpen`` may be written under
  ``identity`` (the spec's table) or at the top level (the spec's example), but not in both
  places with different values.

Every rule works on the raw data, so all problems are reported together; a key that is present
with the wrong type counts as present here (its type problem is reported by the walker).
"""

from __future__ import annotations

from collections.abc import Mapping

from agent_identity.config.errors import ConfigProblem, JsonPath
from agent_identity.config.feishu import FeishuChannel
from agent_identity.config.model import (
    DYNAMIC_KEYS,
    DYNAMIC_REQUIRED,
    EXPLICIT_KEYS,
    EXPLICIT_REQUIRED,
    LOCAL_SERVER_KEYS,
    PluginConfig,
)
from agent_identity.config.walk import check_value

__all__ = ["validate_feishu_channel", "validate_plugin_config"]


def validate_plugin_config(raw: object, path: JsonPath = ()) -> list[ConfigProblem]:
    """Find every problem in a raw plugin config (the object under ``...agent-identity.config``).

    Args:
        raw: The parsed JSON data.
        path: Where the plugin config sits in its file (``()`` for a standalone file).

    Returns:
        Every problem: structural ones in document order, then the cross-key rules.
    """
    problems = check_value(raw, PluginConfig, path)
    if isinstance(raw, Mapping):
        problems.extend(_userpool_rules(raw.get("userpool"), (*path, "userpool")))
        problems.extend(_authz_rules(raw.get("authz"), (*path, "authz")))
        problems.extend(_local_server_rules(raw, path))
    return problems


def validate_feishu_channel(raw: object, path: JsonPath) -> list[ConfigProblem]:
    """Find the problems in ``channels.feishu`` that matter to us (unknown keys are fine).

    Args:
        raw: The parsed ``channels.feishu`` data.
        path: Where it sits in its file.

    Returns:
        Type problems of the keys agent-identity reads.
    """
    return check_value(raw, FeishuChannel, path)


def _present(section: Mapping[object, object], key: str) -> bool:
    return section.get(key) is not None


def _userpool_rules(section: object, path: JsonPath) -> list[ConfigProblem]:
    if not isinstance(section, Mapping):
        return []
    explicit = [key for key in EXPLICIT_KEYS if _present(section, key)]
    dynamic = [key for key in DYNAMIC_KEYS if _present(section, key)]
    if explicit and dynamic:
        return [
            ConfigProblem(
                path,
                f"mixes explicit-mode keys ({', '.join(explicit)}) with dynamic-mode keys "
                f"({', '.join(dynamic)}); use one mode: explicit "
                f"({', '.join(EXPLICIT_REQUIRED)}) or dynamic ({', '.join(DYNAMIC_REQUIRED)})",
            )
        ]
    if not explicit and not dynamic:
        return [
            ConfigProblem(
                path,
                f"no login mode: set {', '.join(EXPLICIT_REQUIRED)} (explicit mode) or "
                f"{', '.join(DYNAMIC_REQUIRED)} (dynamic mode), or remove the section",
            )
        ]
    mode, required = ("explicit", EXPLICIT_REQUIRED) if explicit else ("dynamic", DYNAMIC_REQUIRED)
    return [
        ConfigProblem((*path, key), f"missing (required in {mode} mode)")
        for key in required
        if not _present(section, key)
    ]


def _authz_rules(section: object, path: JsonPath) -> list[ConfigProblem]:
    if not isinstance(section, Mapping):
        return []
    if section.get("enableLlmRiskCheck") is True and not _present(section, "llmRiskCheck"):
        return [
            ConfigProblem(
                (*path, "llmRiskCheck"), "missing (required when enableLlmRiskCheck is true)"
            )
        ]
    return []


def _local_server_rules(raw: Mapping[object, object], path: JsonPath) -> list[ConfigProblem]:
    identity = raw.get("identity")
    if not isinstance(identity, Mapping):
        return []
    return [
        ConfigProblem(
            (*path, key),
            f"conflicts with identity.{key}: it is set in both places with different values "
            "(either place is accepted; keep one)",
        )
        for key in LOCAL_SERVER_KEYS
        if _present(raw, key) and _present(identity, key) and raw[key] != identity[key]
    ]
