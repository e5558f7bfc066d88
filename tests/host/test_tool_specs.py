"""The ``identity_*`` tool specs: schema structure, visibility, and the params validator."""

from __future__ import annotations

import re
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import given

from agent_identity.authz.risk_tools import PLUGIN_LOW_RISK_TOOLS
from agent_identity.host.tool_specs import (
    TOOL_SPECS,
    ToolSpec,
    _compile,
    agent_tools,
    tool_spec,
    validate_params,
)

NAMES = [
    "identity_whoami",
    "identity_status",
    "identity_login",
    "identity_logout",
    "identity_list_credentials",
    "identity_list_roles",
    "identity_fetch",
    "identity_get_role_credentials",
    "identity_get_tip_token",
    "identity_get_session_token",
    "identity_config",
    "identity_config_suggest",
    "identity_set_binding",
    "identity_unset_binding",
    "identity_risk_check",
    "identity_list_risk_patterns",
    "identity_list_tips",
    "identity_approve_tool",
]
NO_PARAMS = [
    "identity_whoami",
    "identity_status",
    "identity_login",
    "identity_logout",
    "identity_get_tip_token",
    "identity_get_session_token",
    "identity_config",
    "identity_list_risk_patterns",
    "identity_list_tips",
]
# Every keyword a schema may use: the validator implements exactly these.
KEYWORDS = {
    "type",
    "description",
    "properties",
    "required",
    "additionalProperties",
    "enum",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "items",
}
TYPES = {"object", "array", "string", "boolean", "integer", "number"}


def spec(name: str) -> ToolSpec:
    found = tool_spec(name)
    assert found is not None
    return found


def test_every_tool_is_specified_once() -> None:
    assert [s.name for s in TOOL_SPECS] == NAMES
    assert tool_spec("identity_nope") is None
    assert tool_spec("whoami") is None


def test_the_agent_never_gets_the_approve_tool() -> None:
    offered = [s.name for s in agent_tools()]
    assert "identity_approve_tool" not in offered
    assert offered == [n for n in NAMES if n != "identity_approve_tool"]
    assert spec("identity_approve_tool").agent_visible is False


def test_low_risk_list_names_only_known_tools() -> None:
    assert set(PLUGIN_LOW_RISK_TOOLS) <= set(NAMES)


def _check_property(path: str, schema: dict[str, Any]) -> None:
    assert set(schema) <= KEYWORDS, path
    assert schema.get("type") in TYPES, path
    if "enum" in schema:
        assert schema["enum"], path
        assert all(isinstance(v, str) for v in schema["enum"]), path
        assert len(set(schema["enum"])) == len(schema["enum"]), path
    if "pattern" in schema:
        re.compile(schema["pattern"])
        assert schema["pattern"].startswith("^"), path
        assert schema["pattern"].endswith("$"), path
    if schema["type"] == "array":
        _check_property(f"{path}[]", schema["items"])
    if schema["type"] == "object" and "properties" in schema:
        _check_object(path, schema)


def _check_object(path: str, schema: dict[str, Any]) -> None:
    assert schema["type"] == "object"
    assert isinstance(schema["properties"], dict)
    assert isinstance(schema["required"], list)
    assert set(schema["required"]) <= set(schema["properties"]), path
    assert schema["additionalProperties"] is False, path
    for name, prop in schema["properties"].items():
        assert re.fullmatch(r"[a-z][A-Za-z_]*", name), name
        assert isinstance(prop.get("description"), str), f"{path}.{name}"
        assert prop["description"], f"{path}.{name}"
        _check_property(f"{path}.{name}", prop)


@pytest.mark.parametrize("tool", TOOL_SPECS, ids=lambda s: s.name)
def test_schema_structure(tool: ToolSpec) -> None:
    assert re.fullmatch(r"identity_[a-z_]+", tool.name)
    assert tool.label
    assert 20 <= len(tool.description) <= 400
    assert set(tool.parameters) == {"type", "properties", "required", "additionalProperties"}
    _check_object(tool.name, dict(tool.parameters))
    for group in tool.one_of_required:
        assert set(group) <= set(tool.parameters["properties"])


def test_json_schema_is_a_private_copy() -> None:
    fetch = spec("identity_fetch")
    copy = fetch.json_schema()
    copy["properties"]["flow"]["enum"].append("bogus")
    copy["required"].clear()
    assert fetch.parameters["properties"]["flow"]["enum"] == ["oauth2-user", "oauth2-m2m", "apikey"]
    assert fetch.parameters["required"] == ["provider"]


@pytest.mark.parametrize("name", NO_PARAMS)
def test_tools_without_params(name: str) -> None:
    tool = spec(name)
    assert validate_params(tool, {}) == []
    assert validate_params(tool, None) == []
    assert validate_params(tool, {"x": 1}) == ["x: unknown parameter"]
    assert validate_params(tool, []) == ["params: expected object, got array"]


# (tool, params, expected errors)
CASES: list[tuple[str, object, list[str]]] = [
    # identity_list_credentials
    ("identity_list_credentials", {}, []),
    (
        "identity_list_credentials",
        {"page": 2, "name": "goo", "flow": "oauth2-m2m", "type": "oauth2"},
        [],
    ),
    ("identity_list_credentials", {"page": 2.0}, []),
    ("identity_list_credentials", {"page": 2.5}, ["page: expected integer, got number"]),
    ("identity_list_credentials", {"page": "2"}, ["page: expected integer, got string"]),
    ("identity_list_credentials", {"page": True}, ["page: expected integer, got boolean"]),
    ("identity_list_credentials", {"page": 0}, ["page: must be at least 1"]),
    ("identity_list_credentials", {"type": "password"}, ["type: must be one of api_key, oauth2"]),
    (
        "identity_list_credentials",
        {"flow": "3lo"},
        ["flow: must be one of oauth2-user, oauth2-m2m, apikey"],
    ),
    ("identity_list_credentials", {"pageSize": 50}, ["pageSize: unknown parameter"]),
    # identity_list_roles
    ("identity_list_roles", {"prefix": "prod-"}, []),
    ("identity_list_roles", {"prefix": None}, ["prefix: expected string, got null"]),
    # identity_fetch
    ("identity_fetch", {"provider": "google"}, []),
    (
        "identity_fetch",
        {
            "provider": "google",
            "flow": "oauth2-user",
            "redirectUrl": "https://x/cb",
            "scopes": ["openid", "email"],
            "returnValue": False,
        },
        [],
    ),
    ("identity_fetch", {}, ["provider: required"]),
    ("identity_fetch", {"provider": ""}, ["provider: must not be empty"]),
    ("identity_fetch", {"provider": "p" * 129}, ["provider: longer than 128 characters"]),
    (
        "identity_fetch",
        {"provider": "g", "flow": "m2m"},
        ["flow: must be one of oauth2-user, oauth2-m2m, apikey"],
    ),
    (
        "identity_fetch",
        {"provider": "g", "scopes": "openid"},
        ["scopes: expected array, got string"],
    ),
    (
        "identity_fetch",
        {"provider": "g", "scopes": ["a", 1, ""]},
        ["scopes[1]: expected string, got number", "scopes[2]: must not be empty"],
    ),
    (
        "identity_fetch",
        {"provider": "g", "returnValue": "yes"},
        ["returnValue: expected boolean, got string"],
    ),
    ("identity_fetch", {"provider": "g", "redirect_url": "x"}, ["redirect_url: unknown parameter"]),
    # identity_get_role_credentials
    ("identity_get_role_credentials", {"providerName": "ops", "useTip": True}, []),
    (
        "identity_get_role_credentials",
        {"provider": "ops"},
        ["providerName: required", "provider: unknown parameter"],
    ),
    (
        "identity_get_role_credentials",
        {"providerName": "ops", "useTip": 1},
        ["useTip: expected boolean, got number"],
    ),
    # identity_config_suggest
    ("identity_config_suggest", {}, []),
    ("identity_config_suggest", {"intent": "llm_risk", "lang": "zh"}, []),
    (
        "identity_config_suggest",
        {"intent": "everything"},
        ["intent: must be one of identity, userpool, authz, llm_risk, full"],
    ),
    ("identity_config_suggest", {"lang": "fr"}, ["lang: must be one of en, zh"]),
    # identity_set_binding
    ("identity_set_binding", {"provider": "openai", "envVar": "OPENAI_API_KEY"}, []),
    ("identity_set_binding", {"provider": "openai", "envVar": "_k9"}, []),
    ("identity_set_binding", {"provider": "openai"}, ["envVar: required"]),
    ("identity_set_binding", {"envVar": "K"}, ["provider: required"]),
    (
        "identity_set_binding",
        {"provider": "o", "envVar": "9KEY"},
        ["envVar: does not match ^[A-Za-z_][A-Za-z0-9_]*$"],
    ),
    (
        "identity_set_binding",
        {"provider": "o", "envVar": "MY-KEY"},
        ["envVar: does not match ^[A-Za-z_][A-Za-z0-9_]*$"],
    ),
    (
        "identity_set_binding",
        {"provider": "o", "envVar": "KEY\n"},
        ["envVar: does not match ^[A-Za-z_][A-Za-z0-9_]*$"],
    ),
    (
        "identity_set_binding",
        {"provider": "o", "envVar": ""},
        ["envVar: does not match ^[A-Za-z_][A-Za-z0-9_]*$"],
    ),
    (
        "identity_set_binding",
        {"provider": "o", "envVar": "K", "value": "sk"},
        ["value: unknown parameter"],
    ),
    # identity_unset_binding
    ("identity_unset_binding", {"provider": "openai"}, []),
    ("identity_unset_binding", {"provider": 5}, ["provider: expected string, got number"]),
    # identity_risk_check
    ("identity_risk_check", {"command": "rm -rf /"}, []),
    ("identity_risk_check", {"toolName": "write", "params": {"path": "/etc/passwd"}}, []),
    ("identity_risk_check", {}, ["one of command, toolName is required"]),
    ("identity_risk_check", {"params": {}}, ["one of command, toolName is required"]),
    (
        "identity_risk_check",
        {"toolName": "exec", "params": "ls"},
        ["params: expected object, got string"],
    ),
    ("identity_risk_check", {"command": ""}, ["command: must not be empty"]),
    # identity_approve_tool
    ("identity_approve_tool", {"approval_id": "apr_1"}, []),
    ("identity_approve_tool", {}, ["approval_id: required"]),
    (
        "identity_approve_tool",
        {"approvalId": "apr_1"},
        ["approval_id: required", "approvalId: unknown parameter"],
    ),
    # not an object at all
    ("identity_fetch", "google", ["params: expected object, got string"]),
    ("identity_fetch", 3, ["params: expected object, got number"]),
    ("identity_fetch", True, ["params: expected object, got boolean"]),
]


@pytest.mark.parametrize(("name", "params", "errors"), CASES)
def test_validate_params(name: str, params: object, errors: list[str]) -> None:
    assert validate_params(spec(name), params) == errors


def test_errors_never_echo_values() -> None:
    secret = "sk-live-0123456789"
    errors = validate_params(
        spec("identity_set_binding"), {"provider": secret * 10, "envVar": secret, secret: 1}
    )
    assert errors
    assert all(secret not in error for error in errors[:-1])
    assert errors[-1] == f"{secret}: unknown parameter"  # a key the model invented is named


def test_integer_minimum_accepts_floats_of_whole_numbers() -> None:
    assert validate_params(spec("identity_list_credentials"), {"page": 1.0}) == []
    assert validate_params(spec("identity_list_credentials"), {"page": 0.0}) == [
        "page: must be at least 1"
    ]


def test_validator_on_a_nested_open_schema() -> None:
    # Shapes no identity tool has today, so the validator is known to handle them tomorrow.
    nested = ToolSpec(
        name="identity_test",
        label="Test",
        description="A schema exercising nesting and open objects.",
        parameters={
            "type": "object",
            "properties": {
                "filter": {
                    "type": "object",
                    "description": "Nested.",
                    "properties": {"name": {"type": "string", "minLength": 2}},
                    "required": ["name"],
                },
                "any": {"description": "No type: anything goes."},
            },
            "required": [],
        },
    )
    assert (
        validate_params(nested, {"filter": {"name": "ab", "extra": 1}, "any": b"x", "more": 1})
        == []
    )
    assert validate_params(nested, {"filter": {"name": "a"}}) == ["filter.name: too short"]
    assert validate_params(nested, {"filter": {}}) == ["filter.name: required"]
    assert validate_params(nested, {"filter": {"name": b"ab"}}) == [
        "filter.name: expected string, got bytes"
    ]


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [("^a$", "a", True), ("^a$", "a\n", False), (r"^a\$", "a$", True), ("a", "xay", True)],
)
def test_patterns_follow_javascript_end_anchors(pattern: str, text: str, matches: bool) -> None:
    assert (_compile(pattern).search(text) is not None) is matches


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
_KEYS = st.sampled_from(
    ["provider", "flow", "scopes", "page", "envVar", "command", "toolName", "params", "intent", "x"]
)


@given(st.sampled_from(TOOL_SPECS), st.dictionaries(_KEYS, _JSON, max_size=5) | _JSON)
def test_validator_never_raises(tool: ToolSpec, params: object) -> None:
    errors = validate_params(tool, params)
    assert isinstance(errors, list)
    assert all(isinstance(error, str) and error for error in errors)
