"""Properties: any JSON-ish input gives a config or a ConfigError (never a crash), and valid
configs round-trip through their wire form without losing anything."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_identity.config import (
    AuthzConfig,
    ConfigError,
    IdentityConfig,
    LlmRiskCheckConfig,
    PluginConfig,
    UserPoolConfig,
    loads_config,
    parse_config_document,
    parse_plugin_config,
    redact,
)

KNOWN_KEYS = sorted(
    {
        field.encode_name
        for cls in (PluginConfig, IdentityConfig, UserPoolConfig, AuthzConfig, LlmRiskCheckConfig)
        for field in msgspec.structs.fields(cls)
    }
)
URLS = ["https://id.example.com", "http://10.0.0.1:8080/x", "ftp://x", "https://", "nope", ""]

keys = st.sampled_from(KNOWN_KEYS) | st.text(max_size=6)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from([*URLS, "openai-completions", "anthropic-messages"])
)
json_like = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=6),
    max_leaves=30,
)
plugin_like = st.dictionaries(
    st.sampled_from(["identity", "userpool", "authz", "localServer", "dataDir"]) | keys,
    st.dictionaries(keys, json_like, max_size=6) | json_like,
    max_size=5,
)


def outcome(call: Any, *args: object) -> object:
    """Call, turning a ConfigError into a value; any other exception fails the test."""
    try:
        result: object = call(*args)
    except ConfigError as exc:
        result = exc
    if isinstance(result, ConfigError):
        assert result.problems
        assert all("\n" not in str(problem) for problem in result.problems)
    return result


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plugin_like)
def test_plugin_config_never_crashes(raw: dict[Any, Any]) -> None:
    result = outcome(parse_plugin_config, raw)
    assert isinstance(result, PluginConfig | ConfigError)
    if isinstance(result, PluginConfig):
        json.dumps(redact(result))


@settings(max_examples=200, deadline=None)
@given(json_like, json_like)
def test_documents_never_crash(plugin_entry: object, channels: object) -> None:
    document = {
        "plugins": {"entries": {"agent-identity": {"config": plugin_entry}}},
        "channels": channels,
    }
    outcome(parse_config_document, document)
    outcome(parse_config_document, plugin_entry)
    outcome(loads_config, json.dumps(document))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_text_never_crashes(text: str) -> None:
    outcome(loads_config, text)


# -- valid configs ------------------------------------------------------------------------------

names = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=12)
urls = st.sampled_from(
    ["https://id.cn-beijing.volcengineapi.com", "http://127.0.0.1:18789/cb", "https://[::1]/x"]
)
secrets = st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=30)
positive = st.integers(min_value=1, max_value=2**62)
local_server = {
    "localServer": st.booleans(),
    "localServerAllowlist": st.lists(names, max_size=3),
    "localServerFailOpen": st.booleans(),
}
identity = st.fixed_dictionaries(
    {},
    optional={
        "endpoint": urls,
        "regionMetadataUrl": urls,
        "accessKeyId": secrets,
        "secretAccessKey": secrets,
        "sessionToken": secrets,
        "workloadPoolName": names,
        "workloadName": names,
        "audience": st.lists(names, max_size=3),
        "durationSeconds": positive,
        "roleTrn": names,
        "credentialsFile": names,
        "credentialsMetadataUrl": urls,
        "subagentTipPropagation": st.booleans(),
        "webchatSessionExchange": st.booleans(),
        "personalSessionMode": st.booleans(),
        **local_server,
    },
)
shared_userpool = {"identityProvider": names, "useRelayCallback": st.booleans()}
explicit = st.fixed_dictionaries(
    {
        "discoveryUrl": urls,
        "clientId": names,
        "clientSecret": secrets,
        "callbackUrl": urls,
        "scope": names,
    },
    optional=shared_userpool,
)
dynamic = st.fixed_dictionaries(
    {"userPoolName": names, "clientName": names, "callbackUrl": urls},
    optional={**shared_userpool, "scope": names, "autoCreate": st.booleans()},
)
llm = st.fixed_dictionaries(
    {"endpoint": urls, "model": names},
    optional={
        "api": st.sampled_from(["openai-completions", "anthropic-messages"]),
        "apiKey": secrets,
        "timeoutMs": positive,
        "cacheTtlMs": st.integers(min_value=0, max_value=2**40),
    },
)
authz = st.fixed_dictionaries(
    {},
    optional={
        "agentCheck": st.booleans(),
        "toolCheck": st.booleans(),
        "skillReadCheck": st.booleans(),
        "requireRiskApproval": st.booleans(),
        "namespaceName": names,
        "lowRiskBypass": st.booleans(),
        "lowRiskTools": st.lists(names, max_size=3),
        "llmRiskCheck": llm,
        "approvalTtlSeconds": positive,
    },
).flatmap(
    lambda section: (
        st.just(section)
        if "llmRiskCheck" not in section
        else st.booleans().map(lambda on: {**section, "enableLlmRiskCheck": on})
    )
)


@st.composite
def valid_configs(draw: st.DrawFn) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    if draw(st.booleans()):
        raw["identity"] = draw(identity)
    if draw(st.booleans()):
        raw["userpool"] = draw(explicit | dynamic)
    if draw(st.booleans()):
        raw["authz"] = draw(authz)
    if draw(st.booleans()):
        raw["dataDir"] = draw(names)
    inner = raw.get("identity", {})
    for key in draw(st.lists(st.sampled_from(sorted(local_server)), unique=True)):
        raw[key] = inner[key] if key in inner else draw(local_server[key])
    return raw


def wire(config: PluginConfig) -> dict[str, Any]:
    data = json.loads(msgspec.json.encode(config))
    assert isinstance(data, dict)
    return data


@settings(max_examples=300, deadline=None)
@given(valid_configs())
def test_valid_configs_round_trip(raw: dict[str, Any]) -> None:
    config = parse_plugin_config(raw)
    data = wire(config)
    for section, value in raw.items():
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, dict):
                    assert {k: data[section][key][k] for k in item} == item
                else:
                    assert data[section][key] == item
        else:
            assert data[section] == value
    assert parse_plugin_config(data) == config
    assert parse_plugin_config(msgspec.to_builtins(config)) == config
    assert loads_config(msgspec.json.encode(config).decode()).plugin == config
    document = {"plugins": {"entries": {"agent-identity": {"config": raw}}}}
    assert loads_config(json.dumps(document)).plugin == config
    if config.userpool is not None:
        assert config.userpool.mode == (
            "dynamic" if "userPoolName" in raw["userpool"] else "explicit"
        )
