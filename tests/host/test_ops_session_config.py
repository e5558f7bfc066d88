"""``/identity config``, ``identity_config`` and ``identity_config_suggest``."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

import pytest

from agent_identity.config import parse_plugin_config
from agent_identity.host import ops_config, ops_session
from agent_identity.host.caller import Caller
from agent_identity.host.commands import IdentityCommands
from agent_identity.host.contract import Config
from agent_identity.host.outcome import OperationError, Outcome
from agent_identity.host.tool_specs import CONFIG_SUGGEST_INTENTS, CONFIG_SUGGEST_LANGS
from agent_identity.host.tools import IdentityTools, ToolError
from agent_identity.sandbox.devconfig import dev_plugin_config

from .conftest import MAIN, Stack, StackOpener

STS_TOKEN = "sts-session-token-SECRET-0123456789"
LLM_KEY = "llm-api-key-SECRET-abcdefghijkl"
URL_PASSWORD = "url-password-SECRET-zyxw"
SECRET_SECTIONS: dict[str, Any] = {
    "identity": {
        "sessionToken": STS_TOKEN,
        "credentialsMetadataUrl": f"https://meta:{URL_PASSWORD}@metadata.example.com/creds",
    },
    "authz": {
        "enableLlmRiskCheck": True,
        "llmRiskCheck": {
            "endpoint": "https://llm.example.com/v1",
            "model": "m1",
            "apiKey": LLM_KEY,
        },
    },
}
WHO = Caller(session_key=MAIN, host_session_key=MAIN)


def shown(outcome: Outcome) -> str:
    return outcome.text + json.dumps(outcome.details, ensure_ascii=False)


def configured_secrets(stack: Stack) -> list[str]:
    userpool = stack.deps.plugin.userpool
    assert userpool is not None
    assert userpool.client_secret is not None
    return [stack.sb.secret_access_key, userpool.client_secret, STS_TOKEN, LLM_KEY, URL_PASSWORD]


async def suggest(stack: Stack, **params: str) -> Outcome:
    return await ops_session.TOOLS["identity_config_suggest"](stack.deps, WHO, params)


def plugin_config(outcome: Outcome) -> Mapping[str, Any]:
    snippet = outcome.details["snippet"]
    config: Mapping[str, Any] = snippet["plugins"]["entries"]["agent-identity"]["config"]
    assert config == outcome.details["config"]
    return config


def current_config(stack: Stack) -> dict[str, Any]:
    """The raw plugin config the stack runs (what an operator has in ``openclaw.json``)."""
    userpool = stack.deps.plugin.userpool
    assert userpool is not None
    assert userpool.callback_url is not None
    return dev_plugin_config(stack.sb, callback_url=userpool.callback_url, data_dir=stack.data_dir)


def merged(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        current = out.get(key)
        out[key] = merged(current, value) if isinstance(current, Mapping) else value
    return out


# ---------------------------------------------------------------- config


async def test_config_shows_the_effective_config_and_no_secret(open_stack: StackOpener) -> None:
    async with open_stack(**SECRET_SECTIONS) as stack:
        by_command = await ops_session.COMMANDS[Config](stack.deps, WHO, Config())
        by_tool = await ops_session.TOOLS["identity_config"](stack.deps, WHO, {})
        reply = await IdentityCommands(stack.deps, ops_session.COMMANDS).handle({"args": "config"})

        assert by_command == by_tool
        text = by_tool.text
        assert text.splitlines()[0] == "agent-identity config (secrets redacted):"
        assert f"identity.endpoint: {stack.sb.base_url}" in text.splitlines()
        assert "authz.llmRiskCheck.model: m1" in text.splitlines()
        assert "identity.roleTrn" not in text  # unset values are left out of the text
        config = by_tool.details["config"]
        assert config["identity"]["secretAccessKey"].startswith("***")
        assert config["authz"]["llmRiskCheck"]["apiKey"].startswith("***")
        assert config["identity"]["credentialsMetadataUrl"].startswith("https://***@metadata")
        assert by_tool.details["path"] == "plugins.entries.agent-identity.config"
        assert reply.text == text
        for secret in configured_secrets(stack):
            assert secret not in shown(by_tool)


# ---------------------------------------------------------------- config suggest


async def test_every_intent_and_lang_suggests_valid_config_keys(stack: Stack) -> None:
    for intent in CONFIG_SUGGEST_INTENTS:
        for lang in CONFIG_SUGGEST_LANGS:
            outcome = await suggest(stack, intent=intent, lang=lang)
            # Merged into the gateway's config as the text says, the result is a valid
            # config (the parser rejects unknown keys: the snippet uses the spec's names).
            parse_plugin_config(merged(current_config(stack), plugin_config(outcome)))
            assert outcome.details["intent"] == intent
            assert outcome.details["lang"] == lang
            assert outcome.details["notes"]
            assert json.loads(outcome.text[outcome.text.index("{") :]) == outcome.details["snippet"]


async def test_each_intent_suggests_its_own_section(stack: Stack) -> None:
    identity = plugin_config(await suggest(stack, intent="identity"))
    userpool = plugin_config(await suggest(stack, intent="userpool"))
    authz = plugin_config(await suggest(stack, intent="authz"))
    llm = plugin_config(await suggest(stack, intent="llm_risk"))
    full = plugin_config(await suggest(stack, intent="full"))

    assert set(identity) == {"identity"}
    assert identity["identity"]["endpoint"] == stack.sb.base_url  # filled in from the config
    assert identity["identity"]["workloadName"] == "openclaw-agent"
    assert set(userpool) == {"userpool"}
    assert userpool["userpool"]["callbackUrl"] == current_config(stack)["userpool"]["callbackUrl"]
    assert authz == {
        "authz": {
            "agentCheck": False,
            "toolCheck": True,
            "skillReadCheck": False,
            "requireRiskApproval": True,
            "namespaceName": "default",
            "lowRiskBypass": True,
            "approvalTtlSeconds": 300,
        }
    }
    assert llm["authz"]["enableLlmRiskCheck"] is True
    assert llm["authz"]["llmRiskCheck"]["model"] == "<model-id>"
    assert llm["authz"]["llmRiskCheck"]["apiKey"] == "<api-key>"
    assert set(full) == {"identity", "userpool", "authz"}
    assert full["authz"]["toolCheck"] is True
    assert full["authz"]["enableLlmRiskCheck"] is True


async def test_suggestions_default_to_full_in_english_and_speak_chinese(stack: Stack) -> None:
    default = await suggest(stack)
    chinese = await suggest(stack, intent="authz", lang="zh")

    assert default.details["intent"] == "full"
    assert default.text.startswith("Suggested config (full): merge into openclaw.json under ")
    assert chinese.text.startswith("建议配置（authz）")  # noqa: RUF001 - Chinese punctuation
    assert "审批" in chinese.text


async def test_suggestions_never_carry_or_overwrite_configured_secrets(
    open_stack: StackOpener,
) -> None:
    async with open_stack(**SECRET_SECTIONS) as stack:
        outcome = await suggest(stack, intent="full")
        config = plugin_config(outcome)

        for secret in configured_secrets(stack):
            assert secret not in shown(outcome)
        # A placeholder merged over a configured secret would break the config: left out.
        assert "clientSecret" not in config["userpool"]
        assert "apiKey" not in config["authz"]["llmRiskCheck"]
        assert config["authz"]["llmRiskCheck"]["model"] == "m1"
        assert (
            outcome.details["notes"][-1]
            == "Secrets already configured are left out, so merging keeps them."
        )


async def test_suggestions_for_a_gateway_without_userpool_use_placeholders(
    open_stack: StackOpener,
) -> None:
    async with open_stack(userpool=None, identity={"roleTrn": "trn:iam::2100:role/agent"}) as stack:
        config = plugin_config(await suggest(stack, intent="full"))

        assert config["userpool"]["clientId"] == "<client-id>"
        assert config["userpool"]["clientSecret"] == "<client-secret>"
        # workloadName outranks roleTrn: suggesting one would change which name is used.
        assert "workloadName" not in config["identity"]


async def test_suggest_refuses_unknown_intents(stack: Stack) -> None:
    with pytest.raises(ToolError) as raised:
        await IdentityTools(stack.deps, ops_session.TOOLS).execute_for(
            WHO, "identity_config_suggest", {"intent": "everything"}
        )
    assert raised.value.code == "invalid_params"
    with pytest.raises(OperationError) as failed:
        await ops_config.TOOLS["identity_config_suggest"](stack.deps, WHO, {"lang": "fr"})
    assert failed.value.code == "invalid_params"


async def test_suggestions_complete_a_dynamic_userpool_instead_of_switching(stack: Stack) -> None:
    dynamic = parse_plugin_config(
        {
            "userpool": {
                "userPoolName": "agent-identity-dev",
                "clientName": "openclaw-gateway",
                "callbackUrl": "https://gw.example.com/identity/oauth/callback",
            }
        }
    )
    deps = dataclasses.replace(stack.deps, plugin=dynamic)

    outcome = ops_config.suggest_config(deps, intent="userpool", lang="en")

    assert plugin_config(outcome) == {
        "userpool": {
            "userPoolName": "agent-identity-dev",
            "clientName": "openclaw-gateway",
            "callbackUrl": "https://gw.example.com/identity/oauth/callback",
        }
    }
