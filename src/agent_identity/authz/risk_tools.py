"""Tool names: the host's normalisation and the built-in list of low-risk (read-only) tools.

``authz.lowRiskBypass`` (default on) skips TIP + CheckPermission for low-risk tools, so the list
is deliberately strict: a tool is here only when calling it cannot change anything — no file
writes, no process, no message to anyone, no credential handed out. What stays out, and why:

* ``write``, ``edit``, ``apply_patch``, ``exec``, ``process``, ``code_execution``: change files or
  run code.
* ``sessions_send``, ``sessions_spawn``, ``sessions_yield``, ``subagents``, ``message``: talk to or
  steer other sessions and people.
* ``browser``, ``canvas``, ``nodes``, ``cron``, ``gateway``: act on pages, devices, schedules and
  the gateway itself.
* ``update_plan``: harmless bookkeeping, but it writes state; read-only means read-only.
* ``image_generate``, ``music_generate``, ``video_generate``, ``tts``: spend money on providers.
* ``identity_login``/``identity_logout``/``identity_fetch``/``identity_set_binding``/
  ``identity_unset_binding``/``identity_approve_tool``: change the session;
  ``identity_get_tip_token``/``identity_get_session_token``/``identity_get_role_credentials``:
  hand out secrets.

``image`` *is* in: it only describes an image with the configured vision model, like ``read``
reads a file. ``web_fetch`` is in as the host classifies it (an HTTP GET), accepting that a GET
can carry data out in its URL — the same is true of ``web_search``.
"""

from __future__ import annotations

from typing import Final

from agent_identity.config import AuthzConfig

__all__ = [
    "BUILTIN_LOW_RISK_TOOLS",
    "HOST_LOW_RISK_TOOLS",
    "PLUGIN_LOW_RISK_TOOLS",
    "is_low_risk",
    "low_risk_tools",
    "normalize_tool_name",
    "should_bypass_checks",
]

HOST_LOW_RISK_TOOLS: Final[frozenset[str]] = frozenset(
    {
        "read",
        "web_search",
        "web_fetch",
        "x_search",
        "memory_search",
        "memory_get",
        "sessions_list",
        "sessions_history",
        "session_status",
        "agents_list",
        "image",
    }
)
"""Read-only core tools of the OpenClaw host (from its tool catalog)."""

PLUGIN_LOW_RISK_TOOLS: Final[frozenset[str]] = frozenset(
    {
        "identity_whoami",
        "identity_status",
        "identity_list_credentials",
        "identity_list_roles",
        "identity_list_tips",
        "identity_config",
        "identity_config_suggest",
        "identity_risk_check",
        "identity_list_risk_patterns",
    }
)
"""This plugin's own read-only tools (they show state, never change it or reveal secrets)."""

BUILTIN_LOW_RISK_TOOLS: Final[frozenset[str]] = HOST_LOW_RISK_TOOLS | PLUGIN_LOW_RISK_TOOLS
"""Every built-in low-risk tool."""

# The host normalises these spellings before ``before_tool_call`` sees them; doing the same
# here means a caller that forgot (or a config entry written the other way) still matches.
_ALIASES: Final[dict[str, str]] = {"bash": "exec", "apply-patch": "apply_patch"}


def normalize_tool_name(name: str) -> str:
    """The host's normalised tool name.

    Trimmed and lower-cased, with ``bash`` → ``exec`` and ``apply-patch`` → ``apply_patch``.
    """
    lowered = name.strip().lower()
    return _ALIASES.get(lowered, lowered)


def low_risk_tools(authz: AuthzConfig | None = None) -> frozenset[str]:
    """The built-in low-risk tools plus ``authz.lowRiskTools`` (normalised).

    Args:
        authz: The authz config; ``None`` means the built-in list only.
    """
    if authz is None or not authz.low_risk_tools:
        return BUILTIN_LOW_RISK_TOOLS
    extra = {normalize_tool_name(name) for name in authz.low_risk_tools}
    return BUILTIN_LOW_RISK_TOOLS | extra


def is_low_risk(tool_name: str, authz: AuthzConfig | None = None) -> bool:
    """Whether a tool is classified low-risk (built in, or listed in ``lowRiskTools``).

    This is classification only; the risk rules still evaluate every call of ``exec`` and
    friends even if a config lists them here.

    Args:
        tool_name: The tool name, normalised or not.
        authz: The authz config; ``None`` means the built-in list only.
    """
    return normalize_tool_name(tool_name) in low_risk_tools(authz)


def should_bypass_checks(tool_name: str, authz: AuthzConfig) -> bool:
    """Whether TIP + CheckPermission are skipped for this tool (``lowRiskBypass`` and low-risk)."""
    return authz.low_risk_bypass and is_low_risk(tool_name, authz)
