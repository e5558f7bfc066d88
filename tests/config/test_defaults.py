"""Every default is the spec's (a table test), and the spec's example loads as documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_identity.config import (
    DEFAULT_DATA_DIR,
    AuthzConfig,
    IdentityConfig,
    LlmRiskCheckConfig,
    PluginConfig,
    UserPoolConfig,
    load_config,
    parse_plugin_config,
)

EMPTY = parse_plugin_config({})
DYNAMIC = parse_plugin_config(
    {"userpool": {"userPoolName": "p", "clientName": "c", "callbackUrl": "https://g.example/cb"}}
)
LLM = parse_plugin_config(
    {
        "authz": {
            "enableLlmRiskCheck": True,
            "llmRiskCheck": {"endpoint": "https://llm.example/v1", "model": "m"},
        }
    }
).authz.llm_risk_check


@pytest.mark.parametrize(
    ("attribute", "expected"),
    [
        # identity (spec: "identity config (required vs optional)")
        ("endpoint", None),
        ("region_metadata_url", None),
        ("access_key_id", None),
        ("secret_access_key", None),
        ("session_token", None),
        ("workload_pool_name", "default"),
        ("workload_name", None),  # effective default decided at run time
        ("audience", None),
        ("duration_seconds", 3600),
        ("role_trn", None),
        ("credentials_file", None),
        ("credentials_metadata_url", None),
        ("subagent_tip_propagation", False),
        ("webchat_session_exchange", False),
        ("personal_session_mode", False),
        ("local_server", None),  # as written; effective value below
        ("local_server_allowlist", None),
        ("local_server_fail_open", None),
    ],
)
def test_identity_defaults(attribute: str, expected: object) -> None:
    assert getattr(EMPTY.identity, attribute) == expected
    assert getattr(IdentityConfig(), attribute) == expected


@pytest.mark.parametrize(
    ("attribute", "expected"),
    [
        ("agent_check", False),
        ("tool_check", False),
        ("skill_read_check", False),
        ("require_risk_approval", False),
        ("namespace_name", "default"),
        ("low_risk_bypass", True),
        ("low_risk_tools", ()),
        ("enable_llm_risk_check", False),
        ("llm_risk_check", None),
        ("approval_ttl_seconds", 300),
    ],
)
def test_authz_defaults(attribute: str, expected: object) -> None:
    assert getattr(EMPTY.authz, attribute) == expected
    assert getattr(AuthzConfig(), attribute) == expected


@pytest.mark.parametrize(
    ("attribute", "expected"),
    [
        ("use_relay_callback", False),
        ("auto_create", True),
        ("scope", None),
        ("identity_provider", None),
        ("discovery_url", None),
        ("client_id", None),
        ("client_secret", None),
    ],
)
def test_userpool_defaults(attribute: str, expected: object) -> None:
    assert DYNAMIC.userpool is not None
    assert getattr(DYNAMIC.userpool, attribute) == expected


@pytest.mark.parametrize(
    ("attribute", "expected"),
    [
        ("api", "openai-completions"),
        ("api_key", None),
        ("timeout_ms", 10_000),
        ("cache_ttl_ms", 300_000),
    ],
)
def test_llm_risk_check_defaults(attribute: str, expected: object) -> None:
    assert LLM is not None
    assert getattr(LLM, attribute) == expected


def test_top_level_defaults() -> None:
    assert EMPTY.userpool is None
    assert not EMPTY.login_available
    assert EMPTY.authz == AuthzConfig()
    assert EMPTY.identity == IdentityConfig()
    assert EMPTY.data_dir == DEFAULT_DATA_DIR == "~/.openclaw/plugins/identity"
    assert PluginConfig() == EMPTY
    settings = EMPTY.local_server_settings
    assert (settings.enabled, settings.allowlist, settings.fail_open) == (False, (), True)


def test_data_dir_is_expanded_at_use_time(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert EMPTY.data_path() == tmp_path / ".openclaw" / "plugins" / "identity"
    assert parse_plugin_config({"dataDir": "/srv/id"}).data_path() == Path("/srv/id")


def test_only_identity_is_valid() -> None:
    config = parse_plugin_config({"identity": {"workloadName": "bot"}})
    assert config.identity.workload_name == "bot"
    assert config.userpool is None


def test_spec_example_values(example_path: Path) -> None:
    loaded = load_config(example_path)
    assert loaded.format == "openclaw.json"
    assert loaded.source == example_path
    assert loaded.feishu is None
    plugin = loaded.plugin
    assert plugin.identity.endpoint == "https://id.cn-beijing.volcengineapi.com"
    assert plugin.identity.workload_pool_name == "default"
    assert plugin.identity.workload_name == "openclaw-agent"
    userpool = plugin.userpool
    assert isinstance(userpool, UserPoolConfig)
    assert userpool.mode == "explicit"
    assert userpool.client_id == "<client-id>"
    assert userpool.client_secret == "<client-secret>"
    assert userpool.scope == "openid profile email"
    assert plugin.authz == AuthzConfig()
    assert plugin.authz.enabled_checks == ()
    assert (plugin.local_server, plugin.local_server_allowlist) == (False, ())
    assert plugin.local_server_fail_open is True


def test_llm_config_requires_endpoint_and_model() -> None:
    with pytest.raises(TypeError):
        LlmRiskCheckConfig()  # type: ignore[call-arg]
    config = LlmRiskCheckConfig(endpoint="https://x.example", model="m")
    assert config.api == "openai-completions"
