# ruff: noqa: RUF001 - the Chinese notes use full-width punctuation, as Chinese text does
"""Config operations: show the effective config (redacted) and suggest config to merge.

``/identity config`` and ``identity_config`` show the plugin config through
:func:`~agent_identity.config.redact`, the project's only display path for configuration, so
no secret is ever shown (long ones keep at most their last four characters, as everywhere).

``identity_config_suggest`` answers "how do I turn on X": a snippet under
``plugins.entries.agent-identity.config`` with the spec's exact keys, to merge into
``openclaw.json``, and short notes in English or Chinese. Values already configured are
filled in from the *redacted* config, so a suggestion can never carry a secret; a secret key
is left out when one is configured (merging a placeholder over it would break the config)
and given as a ``<placeholder>`` when it is not.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any, Final, Literal, cast

import trio

from agent_identity.config import redact
from agent_identity.host.caller import Caller
from agent_identity.host.contract import Config
from agent_identity.host.deps import HostDeps
from agent_identity.host.outcome import CommandHandler, OperationError, Outcome, ToolHandler
from agent_identity.host.tool_specs import CONFIG_SUGGEST_INTENTS, CONFIG_SUGGEST_LANGS

__all__ = ["COMMANDS", "CONFIG_PATH", "TOOLS", "Intent", "Lang", "show_config", "suggest_config"]

Intent = Literal["identity", "userpool", "authz", "llm_risk", "full"]
Lang = Literal["en", "zh"]

#: Where the plugin config lives in ``openclaw.json``.
CONFIG_PATH: Final = "plugins.entries.agent-identity.config"

_Section = dict[str, Any]
_Notes = Mapping[Lang, tuple[str, ...]]

_NOTES: Final[Mapping[str, _Notes]] = {
    "identity": {
        "en": (
            "identity.endpoint: the Identity API base URL; without it regionMetadataUrl or "
            "https://id.cn-beijing.volcengineapi.com is used.",
            "AK/SK: set VOLCENGINE_ACCESS_KEY and VOLCENGINE_SECRET_KEY, or accessKeyId/"
            "secretAccessKey, a credentialsFile, or credentialsMetadataUrl + roleTrn.",
            "identity.workloadPoolName / workloadName: the workload TIPs are issued for "
            "(defaults: default, openclaw-agent).",
        ),
        "zh": (
            "identity.endpoint：Identity API 地址；不填时使用 regionMetadataUrl 或默认的 "
            "https://id.cn-beijing.volcengineapi.com。",
            "AK/SK：设置环境变量 VOLCENGINE_ACCESS_KEY 和 VOLCENGINE_SECRET_KEY，或配置 "
            "accessKeyId/secretAccessKey、credentialsFile、credentialsMetadataUrl + roleTrn。",
            "identity.workloadPoolName / workloadName：签发 TIP 的工作负载（默认 default、"
            "openclaw-agent）。",
        ),
    },
    "userpool": {
        "en": (
            "userpool (explicit mode): discoveryUrl, clientId, clientSecret, callbackUrl, scope.",
            "Dynamic mode instead: userPoolName + clientName + callbackUrl (autoCreate "
            "defaults to true).",
            "callbackUrl must be the gateway's public /identity/oauth/callback URL.",
        ),
        "zh": (
            "userpool（显式模式）：discoveryUrl、clientId、clientSecret、callbackUrl、scope。",
            "也可用动态模式：userPoolName + clientName + callbackUrl（autoCreate 默认为 true）。",
            "callbackUrl 必须是网关对外可访问的 /identity/oauth/callback 地址。",
        ),
    },
    "authz": {
        "en": (
            "authz flags are independent: toolCheck runs CheckPermission for each tool, "
            "agentCheck for the agent, skillReadCheck for reading SKILL.md.",
            "authz.requireRiskApproval asks the user before high-risk tool calls; "
            "approvalTtlSeconds is how long an approval stays valid.",
            "authz.lowRiskBypass skips the checks for built-in low-risk tools (lowRiskTools "
            "adds more).",
        ),
        "zh": (
            "authz 各开关相互独立：toolCheck 对每个工具调用 CheckPermission，agentCheck 校验"
            "智能体，skillReadCheck 校验读取 SKILL.md。",
            "authz.requireRiskApproval：高风险工具调用前需要用户审批；approvalTtlSeconds 为审批"
            "有效期（秒）。",
            "authz.lowRiskBypass：内置低风险工具跳过校验（lowRiskTools 可追加工具名）。",
        ),
    },
    "llm_risk": {
        "en": (
            "authz.enableLlmRiskCheck lets an LLM re-evaluate tool calls the rules rate "
            "medium; authz.llmRiskCheck is then required.",
            "llmRiskCheck: endpoint, api (openai-completions or anthropic-messages), model, "
            "apiKey, timeoutMs, cacheTtlMs.",
        ),
        "zh": (
            "authz.enableLlmRiskCheck：规则判定为中风险时由 LLM 复核；开启后必须配置 "
            "authz.llmRiskCheck。",
            "llmRiskCheck：endpoint、api（openai-completions 或 anthropic-messages）、model、"
            "apiKey、timeoutMs、cacheTtlMs。",
        ),
    },
}

_TITLES: Final[Mapping[Lang, str]] = {
    "en": "Suggested config ({intent}): merge into openclaw.json under {path}.",
    "zh": "建议配置（{intent}）：合并到 openclaw.json 的 {path} 下。",
}
_SECRET_KEPT: Final[Mapping[Lang, str]] = {
    "en": "Secrets already configured are left out, so merging keeps them.",
    "zh": "已配置的密钥未列出，合并后保持不变。",
}


# ---------------------------------------------------------------- config


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _lines(value: object, path: str) -> Iterator[str]:
    """``a.b: value`` lines of the display dict; unset values are left out."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _lines(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        yield f"{path}: {', '.join(_scalar(item) for item in value) or '(none)'}"
    elif value is not None:
        yield f"{path}: {_scalar(value)}"


async def show_config(deps: HostDeps, caller: Caller) -> Outcome:
    """The effective plugin config, secrets redacted (``details.config`` as JSON)."""
    del caller  # the config is the gateway's, the same for everyone
    await trio.lowlevel.checkpoint()
    shown = redact(deps.plugin)
    text = "\n".join(["agent-identity config (secrets redacted):", *_lines(shown, "")])
    return Outcome(text, {"path": CONFIG_PATH, "config": shown})


# ---------------------------------------------------------------- suggestions


def _pick(shown: Mapping[str, Any], key: str, default: object) -> object:
    value = shown.get(key)
    return default if value is None else value


def _secret(section: _Section, shown: Mapping[str, Any], key: str, placeholder: str) -> bool:
    """Add a placeholder for an unset secret; report whether a configured one was left out."""
    if shown.get(key) is None:
        section[key] = placeholder
        return False
    return True


def _identity(shown: Mapping[str, Any]) -> tuple[_Section, bool]:
    ident = shown["identity"]
    section = {
        "endpoint": _pick(ident, "endpoint", "https://id.cn-beijing.volcengineapi.com"),
        "workloadPoolName": _pick(ident, "workloadPoolName", "default"),
    }
    if ident.get("roleTrn") is None or ident.get("workloadName") is not None:
        # workloadName outranks roleTrn: suggesting one would silently switch a roleTrn
        # setup from the role's name to a workload name.
        section["workloadName"] = _pick(ident, "workloadName", "openclaw-agent")
    return {"identity": section}, False


def _userpool(shown: Mapping[str, Any]) -> tuple[_Section, bool]:
    pool: Mapping[str, Any] = shown.get("userpool") or {}
    callback = _pick(pool, "callbackUrl", "https://gateway.example.com/identity/oauth/callback")
    if pool.get("userPoolName") is not None and pool.get("discoveryUrl") is None:
        # Dynamic mode is configured: suggest completing it rather than switching modes.
        section = {
            "userPoolName": pool["userPoolName"],
            "clientName": _pick(pool, "clientName", "openclaw-gateway"),
            "callbackUrl": callback,
        }
        return {"userpool": section}, False
    section = {
        "discoveryUrl": _pick(
            pool, "discoveryUrl", "https://userpool-xxx.userpool.auth.id.cn-beijing.volces.com"
        ),
        "clientId": _pick(pool, "clientId", "<client-id>"),
    }
    kept = _secret(section, pool, "clientSecret", "<client-secret>")
    section.update(callbackUrl=callback, scope=_pick(pool, "scope", "openid profile email"))
    return {"userpool": section}, kept


def _authz(shown: Mapping[str, Any]) -> tuple[_Section, bool]:
    authz = shown["authz"]
    section = {
        "agentCheck": authz["agentCheck"],
        "toolCheck": True,
        "skillReadCheck": authz["skillReadCheck"],
        "requireRiskApproval": True,
        "namespaceName": authz["namespaceName"],
        "lowRiskBypass": authz["lowRiskBypass"],
        "approvalTtlSeconds": authz["approvalTtlSeconds"],
    }
    return {"authz": section}, False


def _llm_risk(shown: Mapping[str, Any]) -> tuple[_Section, bool]:
    llm: Mapping[str, Any] = shown["authz"].get("llmRiskCheck") or {}
    section = {
        "endpoint": _pick(llm, "endpoint", "https://ark.cn-beijing.volces.com/api/v3"),
        "api": _pick(llm, "api", "openai-completions"),
        "model": _pick(llm, "model", "<model-id>"),
    }
    kept = _secret(section, llm, "apiKey", "<api-key>")
    section.update(
        timeoutMs=_pick(llm, "timeoutMs", 10_000), cacheTtlMs=_pick(llm, "cacheTtlMs", 300_000)
    )
    authz = {"requireRiskApproval": True, "enableLlmRiskCheck": True, "llmRiskCheck": section}
    return {"authz": authz}, kept


_BUILDERS: Final = {
    "identity": _identity,
    "userpool": _userpool,
    "authz": _authz,
    "llm_risk": _llm_risk,
}


def _merge(base: _Section, extra: Mapping[str, Any]) -> _Section:
    merged = dict(base)
    for key, value in extra.items():
        current = merged.get(key)
        merged[key] = _merge(current, value) if isinstance(current, dict) else value
    return merged


def suggest_config(deps: HostDeps, *, intent: Intent = "full", lang: Lang = "en") -> Outcome:
    """A config snippet for ``intent`` with notes in ``lang``.

    Args:
        deps: The running system (its config fills in values already set).
        intent: ``identity``, ``userpool``, ``authz``, ``llm_risk`` or ``full`` (all four).
        lang: ``en`` or ``zh``.

    Returns:
        ``details``: ``intent``, ``lang``, ``path``, ``snippet`` (the whole ``openclaw.json``
        fragment), ``config`` (the plugin config part), ``notes``.
    """
    shown = redact(deps.plugin)
    parts = list(_BUILDERS) if intent == "full" else [intent]
    config: _Section = {}
    notes: list[str] = []
    secrets_kept = False
    for part in parts:
        section, kept = _BUILDERS[part](shown)
        config = _merge(config, section)
        notes.extend(_NOTES[part][lang])
        secrets_kept = secrets_kept or kept
    if secrets_kept:
        notes.append(_SECRET_KEPT[lang])
    snippet = {"plugins": {"entries": {"agent-identity": {"config": config}}}}
    title = _TITLES[lang].format(intent=intent, path=CONFIG_PATH)
    body = json.dumps(snippet, indent=2, ensure_ascii=False)
    text = "\n".join([title, *(f"- {note}" for note in notes), body])
    details = {
        "intent": intent,
        "lang": lang,
        "path": CONFIG_PATH,
        "snippet": snippet,
        "config": config,
        "notes": notes,
    }
    return Outcome(text, details)


# ---------------------------------------------------------------- tables


async def _config_command(deps: HostDeps, caller: Caller, command: object) -> Outcome:
    del command
    return await show_config(deps, caller)


async def _config_tool(deps: HostDeps, caller: Caller, params: Mapping[str, Any]) -> Outcome:
    del params
    return await show_config(deps, caller)


async def _suggest_tool(deps: HostDeps, caller: Caller, params: Mapping[str, Any]) -> Outcome:
    del caller
    intent = params.get("intent", "full")
    lang = params.get("lang", "en")
    # The dispatcher validated the params against the schema's enums; checked again because
    # a Literal is only as good as the value behind it.
    if intent not in CONFIG_SUGGEST_INTENTS or lang not in CONFIG_SUGGEST_LANGS:
        raise OperationError(
            "Unknown intent or lang for the config suggestion.", code="invalid_params"
        )
    await trio.lowlevel.checkpoint()
    return suggest_config(deps, intent=cast("Intent", intent), lang=cast("Lang", lang))


COMMANDS: Final[Mapping[type, CommandHandler]] = {Config: _config_command}
"""``/identity config``."""

TOOLS: Final[Mapping[str, ToolHandler]] = {
    "identity_config": _config_tool,
    "identity_config_suggest": _suggest_tool,
}
"""``identity_config`` and ``identity_config_suggest``."""
