"""Redaction: no secret ever appears in a display form, a repr, or an error message."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent_identity.config import (
    ConfigError,
    EnvSettings,
    IdentityConfig,
    load_config,
    loads_config,
    mask_secret,
    parse_plugin_config,
    redact,
)
from agent_identity.config._base import ConfigStruct
from agent_identity.config.redact import MASK, REVEAL_MIN_LENGTH

AssertNoSecret = Callable[[str], None]

LONG = "Qm8Zr3Xt6Wv1Kp9Ln4Bj7Hd2"
SHORT = "Gh5Tr2Wq9L"


@pytest.mark.parametrize(
    ("secret", "shown"),
    [
        ("a" * (REVEAL_MIN_LENGTH - 1), MASK),
        (SHORT, MASK),
        (LONG, MASK + LONG[-4:]),
        (b"\x00" * 32, MASK),
    ],
)
def test_mask_secret(secret: str | bytes, shown: str) -> None:
    assert mask_secret(secret) == shown


def test_mask_secret_without_tail() -> None:
    assert mask_secret(LONG, reveal_tail=False) == MASK


def test_show_form_of_the_secrets_fixture(
    secrets_path: Path, assert_no_secret: AssertNoSecret
) -> None:
    loaded = load_config(secrets_path)
    shown = redact(loaded)
    text = json.dumps(shown)
    assert_no_secret(text)
    identity = shown["plugin"]["identity"]
    assert identity["secretAccessKey"] == "***c7Jf"
    assert identity["accessKeyId"].startswith(MASK)
    assert shown["plugin"]["userpool"]["clientSecret"].startswith(MASK)
    assert shown["plugin"]["authz"]["llmRiskCheck"]["apiKey"].startswith(MASK)
    assert shown["feishu"]["appSecret"].startswith(MASK)
    assert shown["feishu"]["accounts"]["ops"]["appSecret"].startswith(MASK)
    assert "encryptKey" not in shown["feishu"]  # keys of another plugin are not carried


def test_show_form_has_effective_local_server_at_the_top(secrets_path: Path) -> None:
    shown = redact(load_config(secrets_path))["plugin"]
    assert "localServer" not in shown["identity"]
    assert shown["localServer"] is True
    assert shown["localServerAllowlist"] == ["python*", "/usr/local/bin/agent"]
    assert shown["localServerFailOpen"] is True


def test_show_form_is_a_valid_config_again() -> None:
    raw = {
        "identity": {"endpoint": "https://id.example", "localServer": True},
        "userpool": {"userPoolName": "p", "clientName": "c", "callbackUrl": "https://g.example/cb"},
        "authz": {"toolCheck": True},
    }
    config = parse_plugin_config(raw)
    again = parse_plugin_config(redact(config))
    assert again.local_server_settings == config.local_server_settings
    assert again.userpool == config.userpool
    assert again.authz == config.authz


def test_repr_and_str_never_leak(secrets_path: Path, assert_no_secret: AssertNoSecret) -> None:
    loaded = load_config(secrets_path)
    assert loaded.feishu is not None
    objects: list[object] = [
        loaded,
        loaded.plugin,
        loaded.plugin.identity,
        loaded.plugin.userpool,
        loaded.plugin.authz,
        loaded.plugin.authz.llm_risk_check,
        loaded.feishu,
        *(loaded.feishu.accounts or {}).values(),
    ]
    for obj in objects:
        assert_no_secret(repr(obj))
        assert_no_secret(str(obj))
        assert_no_secret(f"{obj!r} {obj}")
        assert_no_secret(repr(obj.__rich_repr__()))  # type: ignore[attr-defined]
    assert repr(loaded.plugin.identity).startswith("IdentityConfig({")
    assert_no_secret(repr([loaded.plugin]))


def test_repr_of_a_directly_built_struct() -> None:
    identity = IdentityConfig(secret_access_key=LONG, access_key_id=SHORT)
    text = repr(identity)
    assert LONG[:-4] not in text
    assert SHORT not in text
    assert '"secretAccessKey": "***' in text


def test_url_credentials_are_masked() -> None:
    config = parse_plugin_config({"identity": {"endpoint": f"https://user:{LONG}@id.example/x"}})
    shown = redact(config)["identity"]["endpoint"]
    assert shown == "https://***@id.example/x"
    assert LONG not in repr(config)


def test_malformed_url_is_shown_as_is() -> None:
    assert redact(IdentityConfig(endpoint="https://[::1"))["endpoint"] == "https://[::1"


class _Unmarked(ConfigStruct, frozen=True, kw_only=True):
    refresh_token: str = LONG
    label: str = "plain"


def test_unmarked_fields_that_look_secret_are_masked() -> None:
    assert redact(_Unmarked()) == {"refreshToken": MASK + LONG[-4:], "label": "plain"}


def test_plain_mappings_are_masked_by_key_name() -> None:
    shown = redact(
        {"clientSecret": LONG, "nested": {"apiKey": SHORT, "name": "n"}, "p": Path("/x")}
    )
    assert shown == {
        "clientSecret": MASK + LONG[-4:],
        "nested": {"apiKey": MASK, "name": "n"},
        "p": "/x",
    }


def test_odd_values_are_shown_safely() -> None:
    shown = redact(
        {"tokens": [LONG], "blob": b"raw", "when": 1.5, "set": frozenset({1}), "obj": object}
    )
    assert shown["tokens"] == [MASK + LONG[-4:]]
    assert shown["blob"] == MASK
    assert shown["when"] == 1.5
    assert shown["set"] == [1]
    assert shown["obj"] == str(object)
    assert redact({"secretThing": {"a": [1, None]}}) == {"secretThing": {"a": [MASK, None]}}


def test_env_snapshot_never_leaks() -> None:
    store_key = "q" * 43 + "="
    env = EnvSettings.from_environ(
        {
            "VOLCENGINE_ACCESS_KEY": SHORT,
            "VOLCENGINE_SECRET_KEY": LONG,
            "AGENT_IDENTITY_STORE_KEY": store_key,
        }
    )
    text = repr(env) + str(env) + json.dumps(redact(env))
    assert LONG[:-4] not in text
    assert SHORT not in text
    assert store_key[-8:] not in text
    assert redact(env)["AGENT_IDENTITY_STORE_KEY"] == MASK


# -- error messages -----------------------------------------------------------------------------

SECRET_KEYS_BY_SECTION: list[tuple[str, str]] = [
    ("identity", "accessKeyId"),
    ("identity", "secretAccessKey"),
    ("identity", "sessionToken"),
    ("userpool", "clientSecret"),
]


def bad_documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for section, key in SECRET_KEYS_BY_SECTION:
        docs.extend(
            [
                {section: {key: [LONG]}},  # wrong type holding the secret
                {section: {key: {"v": LONG}}},
                {section: {key + "x": LONG}},  # misspelled key holding the secret
            ]
        )
    docs.extend(
        [
            {"identity": {"endpoint": f"ftp://{LONG}@host"}},
            {"identity": {"endpoint": f"https://{LONG} x"}},
            {"userpool": {"discoveryUrl": LONG, "userPoolName": LONG}},
            {"authz": {"llmRiskCheck": {"endpoint": LONG, "model": "m", "apiKey": 5, "api": LONG}}},
            {
                "authz": {
                    "llmRiskCheck": {
                        "endpoint": "https://l.example",
                        "model": "m",
                        "apiKey": [LONG],
                    }
                }
            },
            {"identity": {"localServer": LONG}, "localServer": True},
            {"dataDir": [LONG]},
        ]
    )
    return docs


@pytest.mark.parametrize("raw", bad_documents())
def test_error_messages_never_contain_values(raw: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_plugin_config(raw)
    assert LONG[:6] not in str(info.value)
    for problem in info.value.problems:
        assert LONG[:6] not in str(problem)


@pytest.mark.parametrize(
    "text",
    [
        '{"identity": {"secretAccessKey": ' + LONG + "}}",  # unquoted secret
        '{"identity": {"secretAccessKey": "' + LONG + '\n"}}',  # line break in a string
        '{"identity": {"secretAccessKey": "' + LONG,  # unterminated
        '{"identity": {"secretAccessKey": "' + LONG + '" "x": 1}}',
    ],
)
def test_syntax_errors_never_quote_the_text(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        loads_config(text)
    assert LONG[:6] not in str(info.value)
