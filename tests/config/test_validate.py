"""Validation: every problem at once, each naming its JSON path and what is wrong."""

from __future__ import annotations

from typing import Any

import pytest

from agent_identity.config import (
    ConfigError,
    ConfigProblem,
    format_path,
    parse_plugin_config,
    validate_plugin_config,
)
from agent_identity.config.walk import describe_json_type, suggest_key

EXPLICIT: dict[str, Any] = {
    "discoveryUrl": "https://userpool.example.com",
    "clientId": "client",
    "clientSecret": "shh",
    "callbackUrl": "https://gateway.example.com/identity/oauth/callback",
    "scope": "openid profile email",
}
DYNAMIC: dict[str, Any] = {
    "userPoolName": "pool",
    "clientName": "gateway",
    "callbackUrl": "https://gateway.example.com/identity/oauth/callback",
}
LLM: dict[str, Any] = {"endpoint": "https://llm.example.com/v1", "model": "m"}


def problems(raw: object) -> list[str]:
    return [str(problem) for problem in validate_plugin_config(raw)]


def rejected(raw: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_plugin_config(raw)
    return [str(problem) for problem in info.value.problems]


# -- unknown keys -------------------------------------------------------------------------------


def test_misspelled_key_is_named_with_a_suggestion() -> None:
    raw = {"userpool": {**EXPLICIT, "clientSecrt": "x"}}
    assert rejected(raw) == [
        "userpool.clientSecrt: unknown key 'clientSecrt' (did you mean 'clientSecret'?)"
    ]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"identity": {"workload_name": "x"}}, "did you mean 'workloadName'?"),
        ({"identity": {"DurationSeconds": 5}}, "did you mean 'durationSeconds'?"),
        ({"userPool": {}}, "did you mean 'userpool'?"),
        ({"authz": {"toolChek": True}}, "did you mean 'toolCheck'?"),
        ({"endpoint": "https://a.example"}, "did you mean 'identity.endpoint'?"),
        ({"clientSecret": "x"}, "did you mean 'userpool.clientSecret'?"),
    ],
)
def test_suggestions(raw: dict[str, Any], expected: str) -> None:
    (message,) = problems(raw)
    assert message.endswith(f"({expected})")


def test_unknown_key_without_a_close_match() -> None:
    assert problems({"zzzzzz": 1}) == ["zzzzzz: unknown key 'zzzzzz'"]


def test_unknown_key_is_shown_safely() -> None:
    (message,) = problems({"bad\nkey" + "x" * 100: 1})
    assert "\n" not in message
    assert "..." in message


def test_suggest_key_directly() -> None:
    assert suggest_key("client_secret", ["clientId", "clientSecret"]) == "clientSecret"
    assert suggest_key("qqqq", ["clientId"]) is None


# -- many problems at once ----------------------------------------------------------------------


def test_reports_every_problem_at_once() -> None:
    raw = {
        "identity": {"durationSeconds": 0, "endpoint": "ftp://id.example", "audience": ["a", 3]},
        "userpool": {**EXPLICIT, "clientSecrt": "x", "scope": ""},
        "authz": {"toolCheck": "yes", "approvalTtlSeconds": -5, "lowRiskTools": "exec"},
        "typo": True,
    }
    found = rejected(raw)
    assert found == [
        "identity.durationSeconds: must be a positive integer, got 0",
        "identity.endpoint: must be an http(s) URL (the scheme must be http or https)",
        "identity.audience[1]: expected a string, got an integer",
        "userpool.scope: must not be empty (leave the key out to leave it unset)",
        "userpool.clientSecrt: unknown key 'clientSecrt' (did you mean 'clientSecret'?)",
        "authz.toolCheck: expected true or false, got a string",
        "authz.approvalTtlSeconds: must be a positive integer, got -5",
        "authz.lowRiskTools: expected an array, got a string",
        "typo: unknown key 'typo'",
    ]


def test_error_str_lists_every_problem() -> None:
    with pytest.raises(ConfigError) as info:
        parse_plugin_config({"a": 1, "b": 2})
    text = str(info.value)
    assert text.splitlines() == [
        "invalid configuration (2 problems):",
        "  a: unknown key 'a'",
        "  b: unknown key 'b'",
    ]
    single = ConfigError([ConfigProblem(("x",), "bad")], "f.json")
    assert str(single).splitlines()[0] == "invalid configuration in f.json (1 problem):"


# -- types and values ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ([], "expected an object, got an array"),
        ({"identity": "x"}, "identity: expected an object, got a string"),
        ({"identity": {"durationSeconds": 1.5}}, "got a decimal number"),
        ({"identity": {"durationSeconds": 3600.0}}, "got a decimal number"),
        ({"identity": {"durationSeconds": True}}, "expected an integer, got a boolean"),
        ({"identity": {"durationSeconds": "3600"}}, "expected an integer, got a string"),
        ({"identity": {"durationSeconds": 2**70}}, "identity.durationSeconds: is out of range"),
        ({"identity": {"durationSeconds": None}}, "expected an integer, got null"),
        ({"identity": {"personalSessionMode": 1}}, "expected true or false, got an integer"),
        ({"identity": {"audience": {}}}, "expected an array, got an object"),
        ({"authz": {"llmRiskCheck": {**LLM, "cacheTtlMs": -1}}}, "must be zero or more, got -1"),
        ({"authz": {"llmRiskCheck": {**LLM, "api": "grpc"}}}, "must be one of"),
        ({"authz": {"llmRiskCheck": {**LLM, "timeoutMs": 0}}}, "must be a positive integer"),
        ({"authz": {"llmRiskCheck": {"model": "m"}}}, "llmRiskCheck.endpoint: missing (required)"),
        ({"authz": {"llmRiskCheck": {"endpoint": "https://x.example"}}}, "model: missing"),
        ({"dataDir": ""}, "dataDir: must not be empty"),
        ({"localServerAllowlist": [""]}, "localServerAllowlist[0]: must not be empty"),
    ],
)
def test_type_and_value_problems(raw: object, expected: str) -> None:
    found = rejected(raw)
    assert len(found) == 1
    assert expected in found[0]


def test_nan_and_infinity_are_described() -> None:
    assert describe_json_type(float("nan")) == "NaN"
    assert describe_json_type(float("inf")) == "Infinity"
    assert describe_json_type(b"x") == "a Python bytes"


def test_non_string_keys_from_python_callers() -> None:
    assert problems({1: 2}) == ["keys must be strings, got an integer"]
    assert problems({"identity": {None: 2}}) == ["identity: keys must be strings, got null"]


def test_null_means_unset_for_optional_keys() -> None:
    config = parse_plugin_config({"identity": {"endpoint": None}, "userpool": None})
    assert config.identity.endpoint is None
    assert config.userpool is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("id.example.com", "the scheme must be http or https"),
        ("file:///etc/passwd", "the scheme must be http or https"),
        ("https://", "with a host"),
        ("https:///path", "with a host"),
        ("https://host name", "spaces or control characters"),
        ("https://[::1", "malformed"),
        ("https://h:99999", "malformed"),
    ],
)
@pytest.mark.parametrize(
    "where",
    [
        ("identity", "endpoint"),
        ("identity", "regionMetadataUrl"),
        ("identity", "credentialsMetadataUrl"),
        ("userpool", "discoveryUrl"),
        ("userpool", "callbackUrl"),
    ],
)
def test_urls_must_be_http_with_a_host(url: str, reason: str, where: tuple[str, str]) -> None:
    section, key = where
    base = dict(EXPLICIT) if section == "userpool" else {}
    raw = {section: {**base, key: url}}
    (message,) = rejected(raw)
    assert message.startswith(f"{section}.{key}: must be an http(s) URL")
    assert reason in message


def test_llm_endpoint_url_is_checked() -> None:
    raw = {"authz": {"llmRiskCheck": {**LLM, "endpoint": "llm.example"}}}
    assert rejected(raw) == [
        "authz.llmRiskCheck.endpoint: must be an http(s) URL (the scheme must be http or https)"
    ]


@pytest.mark.parametrize(
    "url",
    [
        "http://100.96.0.96/latest/region_id",
        "https://id.cn-beijing.volcengineapi.com",
        "http://[::1]:8080/x",
    ],
)
def test_good_urls(url: str) -> None:
    assert (
        parse_plugin_config({"identity": {"regionMetadataUrl": url}}).identity.region_metadata_url
        == url
    )


# -- userpool modes -----------------------------------------------------------------------------


def test_explicit_mode() -> None:
    config = parse_plugin_config({"userpool": EXPLICIT})
    assert config.userpool is not None
    assert config.userpool.mode == "explicit"
    assert config.login_available


def test_dynamic_mode() -> None:
    config = parse_plugin_config({"userpool": {**DYNAMIC, "autoCreate": False, "scope": "openid"}})
    assert config.userpool is not None
    assert config.userpool.mode == "dynamic"
    assert config.userpool.auto_create is False


@pytest.mark.parametrize(
    "missing", ["discoveryUrl", "clientId", "clientSecret", "callbackUrl", "scope"]
)
def test_explicit_mode_requires(missing: str) -> None:
    userpool = {k: v for k, v in EXPLICIT.items() if k != missing}
    assert rejected({"userpool": userpool}) == [
        f"userpool.{missing}: missing (required in explicit mode)"
    ]


@pytest.mark.parametrize("missing", ["userPoolName", "clientName", "callbackUrl"])
def test_dynamic_mode_requires(missing: str) -> None:
    userpool = {k: v for k, v in DYNAMIC.items() if k != missing}
    assert rejected({"userpool": userpool}) == [
        f"userpool.{missing}: missing (required in dynamic mode)"
    ]


def test_explicit_mode_reports_all_missing_keys() -> None:
    assert rejected({"userpool": {"discoveryUrl": "https://u.example"}}) == [
        "userpool.clientId: missing (required in explicit mode)",
        "userpool.clientSecret: missing (required in explicit mode)",
        "userpool.callbackUrl: missing (required in explicit mode)",
        "userpool.scope: missing (required in explicit mode)",
    ]


@pytest.mark.parametrize(
    ("extra", "listed"),
    [
        ({"userPoolName": "pool"}, "(userPoolName)"),
        ({"clientName": "gw", "userPoolName": "p"}, "(userPoolName, clientName)"),
    ],
)
def test_mixing_modes_is_an_error(extra: dict[str, Any], listed: str) -> None:
    (message,) = rejected({"userpool": {**EXPLICIT, **extra}})
    assert message.startswith(
        "userpool: mixes explicit-mode keys (discoveryUrl, clientId, clientSecret)"
    )
    assert f"with dynamic-mode keys {listed}" in message


def test_auto_create_is_allowed_in_explicit_mode() -> None:
    config = parse_plugin_config({"userpool": {**EXPLICIT, "autoCreate": False}})
    assert config.userpool is not None
    assert config.userpool.mode == "explicit"


def test_userpool_without_a_mode() -> None:
    (message,) = rejected({"userpool": {"callbackUrl": "https://g.example/cb", "scope": "openid"}})
    assert message.startswith("userpool: no login mode:")


def test_wrongly_typed_key_still_counts_as_present_for_mode_rules() -> None:
    assert rejected({"userpool": {**EXPLICIT, "clientSecret": 42}}) == [
        "userpool.clientSecret: expected a string, got an integer"
    ]


# -- authz --------------------------------------------------------------------------------------


def test_llm_risk_check_required_when_enabled() -> None:
    assert rejected({"authz": {"enableLlmRiskCheck": True}}) == [
        "authz.llmRiskCheck: missing (required when enableLlmRiskCheck is true)"
    ]
    config = parse_plugin_config({"authz": {"enableLlmRiskCheck": True, "llmRiskCheck": LLM}})
    assert config.authz.llm_risk_check is not None
    assert config.authz.llm_risk_check.model == "m"
    assert config.authz.enabled_checks == ("enableLlmRiskCheck",)


def test_llm_risk_check_may_be_given_while_disabled() -> None:
    config = parse_plugin_config({"authz": {"llmRiskCheck": {**LLM, "api": "anthropic-messages"}}})
    assert config.authz.llm_risk_check is not None
    assert config.authz.llm_risk_check.api == "anthropic-messages"


def test_enabled_checks_in_order() -> None:
    flags = {
        "agentCheck": True,
        "toolCheck": True,
        "skillReadCheck": True,
        "requireRiskApproval": True,
    }
    assert parse_plugin_config({"authz": flags}).authz.enabled_checks == tuple(flags)


# -- local server: under identity or at the top level -------------------------------------------


@pytest.mark.parametrize("place", ["identity", "top"])
def test_local_server_in_either_place(place: str) -> None:
    values = {
        "localServer": True,
        "localServerAllowlist": ["python*"],
        "localServerFailOpen": False,
    }
    raw: dict[str, Any] = {"identity": values} if place == "identity" else dict(values)
    settings = parse_plugin_config(raw).local_server_settings
    assert settings.enabled is True
    assert settings.allowlist == ("python*",)
    assert settings.fail_open is False


def test_local_server_split_across_places() -> None:
    raw = {"identity": {"localServer": True}, "localServerFailOpen": False}
    settings = parse_plugin_config(raw).local_server_settings
    assert (settings.enabled, settings.allowlist, settings.fail_open) == (True, (), False)


def test_local_server_same_value_in_both_places_is_fine() -> None:
    raw = {"identity": {"localServer": True}, "localServer": True}
    assert parse_plugin_config(raw).local_server_settings.enabled is True


def test_local_server_conflicts_are_errors() -> None:
    raw = {
        "identity": {
            "localServer": True,
            "localServerAllowlist": ["a"],
            "localServerFailOpen": True,
        },
        "localServer": False,
        "localServerAllowlist": ["b"],
        "localServerFailOpen": True,
    }
    found = rejected(raw)
    assert found == [
        "localServer: conflicts with identity.localServer: it is set in both places with "
        "different values (either place is accepted; keep one)",
        "localServerAllowlist: conflicts with identity.localServerAllowlist: it is set in both "
        "places with different values (either place is accepted; keep one)",
    ]


# -- paths --------------------------------------------------------------------------------------


def test_paths_are_prefixed() -> None:
    found = validate_plugin_config({"userpool": {**EXPLICIT, "clientSecrt": 1}}, ("plugins", "x"))
    assert [problem.where for problem in found] == ["plugins.x.userpool.clientSecrt"]


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ((), "(top level)"),
        (("a", "b"), "a.b"),
        (("a", 0, "b"), "a[0].b"),
        (("accounts", "my.bot"), 'accounts["my.bot"]'),
        (("plugins", "entries", "agent-identity"), "plugins.entries.agent-identity"),
        (("k", ""), 'k[""]'),
    ],
)
def test_format_path(path: tuple[str | int, ...], shown: str) -> None:
    assert format_path(path) == shown
