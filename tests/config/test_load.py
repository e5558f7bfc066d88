"""Loading: openclaw.json vs standalone files, Feishu, file and syntax errors, duplicates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent_identity.config import (
    PLUGIN_CONFIG_PATH,
    ConfigError,
    FeishuChannel,
    PluginConfig,
    load_config,
    loads_config,
    parse_config_document,
    parse_feishu_channel,
)
from agent_identity.config import load as load_module

ENTRY = "plugins.entries.agent-identity.config"


def write(tmp_path: Path, data: object, name: str = "config.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def openclaw(config: object, **top: Any) -> dict[str, Any]:
    return {"plugins": {"entries": {"agent-identity": {"config": config}}}, **top}


def load_problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.source == str(path)
    return [str(problem) for problem in info.value.problems]


# -- the two formats ----------------------------------------------------------------------------


def test_standalone_file(tmp_path: Path) -> None:
    path = write(tmp_path, {"identity": {"workloadName": "bot"}})
    loaded = load_config(path)
    assert loaded.format == "standalone"
    assert loaded.source == path
    assert loaded.plugin.identity.workload_name == "bot"
    assert loaded.feishu is None


def test_openclaw_file(tmp_path: Path) -> None:
    path = write(tmp_path, openclaw({"identity": {"workloadName": "bot"}}, gateway={"port": 1}))
    loaded = load_config(str(path))
    assert loaded.format == "openclaw.json"
    assert loaded.plugin.identity.workload_name == "bot"


def test_paths_are_relative_to_the_file_root(tmp_path: Path) -> None:
    standalone = write(tmp_path, {"userpool": {"clientSecrt": "x"}}, "a.json")
    full = write(tmp_path, openclaw({"userpool": {"clientSecrt": "x"}}), "b.json")
    assert load_problems(standalone)[0].startswith("userpool.clientSecrt: unknown key")
    assert load_problems(full)[0].startswith(f"{ENTRY}.userpool.clientSecrt: unknown key")


def test_standalone_file_is_strict_about_openclaw_keys(tmp_path: Path) -> None:
    path = write(tmp_path, {"identity": {}, "channels": {}})
    assert load_problems(path) == ["channels: unknown key 'channels'"]


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"plugins": {}}, "plugins.entries: missing"),
        (
            {"plugins": {"entries": {}}},
            "plugins.entries.agent-identity: missing: this openclaw.json has no entry for the "
            "agent-identity plugin",
        ),
        ({"plugins": {"entries": {"other": {}}}}, "plugins.entries.agent-identity: missing"),
        (
            {"plugins": {"entries": {"agent-identity": {"enabled": True}}}},
            f"{ENTRY}: missing: the agent-identity plugin's settings go here",
        ),
        ({"plugins": []}, "plugins: expected an object, got an array"),
        (
            {"plugins": {"entries": {"agent-identity": None}}},
            "plugins.entries.agent-identity: expected an object, got null",
        ),
        (openclaw(None), f"{ENTRY}: expected an object, got null"),
        (openclaw([]), f"{ENTRY}: expected an object, got an array"),
    ],
)
def test_missing_or_malformed_entry_names_the_path(
    tmp_path: Path, document: object, expected: str
) -> None:
    found = load_problems(write(tmp_path, document))
    assert len(found) == 1
    assert found[0].startswith(expected)


def test_top_level_must_be_an_object(tmp_path: Path) -> None:
    assert load_problems(write(tmp_path, [1, 2])) == [
        "expected a JSON object at the top, got an array"
    ]


def test_parse_config_document_from_memory() -> None:
    loaded = parse_config_document(openclaw({}))
    assert loaded.source is None
    assert loaded.format == "openclaw.json"
    with pytest.raises(ConfigError) as info:
        parse_config_document({"typo": 1})
    assert info.value.source is None


def test_loads_config_without_a_source() -> None:
    assert loads_config("{}").source is None
    with pytest.raises(ConfigError) as info:
        loads_config('{"x": 1}')
    assert info.value.source is None


# -- feishu -------------------------------------------------------------------------------------


def test_feishu_channel_is_read_leniently(tmp_path: Path) -> None:
    feishu = {
        "appId": "cli_1",
        "appSecret": "s1",
        "encryptKey": "ignored",
        "dmPolicy": "pairing",
        "accounts": {"ops": {"appId": "cli_2", "appSecret": "s2", "name": "x", "domain": "lark"}},
    }
    path = write(tmp_path, openclaw({}, channels={"feishu": feishu, "telegram": {"x": 1}}))
    loaded = load_config(path)
    assert isinstance(loaded.feishu, FeishuChannel)
    assert loaded.feishu.app_id == "cli_1"
    assert loaded.feishu.accounts is not None
    assert loaded.feishu.accounts["ops"].domain == "lark"
    assert loaded.feishu.credentials_for(None) == ("cli_1", "s1")
    assert loaded.feishu.credentials_for("ops") == ("cli_2", "s2")
    assert loaded.feishu.credentials_for("unknown") == ("cli_1", "s1")


def test_feishu_account_falls_back_to_channel_credentials() -> None:
    channel = parse_feishu_channel({"appSecret": "s", "accounts": {"a": {"appId": "cli_a"}}})
    assert channel.credentials_for("a") == ("cli_a", "s")
    assert channel.credentials_for(None) is None
    assert parse_feishu_channel({}).credentials_for("a") is None


def test_feishu_problems_are_reported(tmp_path: Path) -> None:
    channels = {"feishu": {"appId": 5, "accounts": {"ops": {"appSecret": ["x"]}}}}
    path = write(tmp_path, openclaw({"typo": 1}, channels=channels))
    assert load_problems(path) == [
        f"{ENTRY}.typo: unknown key 'typo'",
        "channels.feishu.appId: expected a string, got an integer",
        "channels.feishu.accounts.ops.appSecret: expected a string, got an array",
    ]
    with pytest.raises(ConfigError):
        parse_feishu_channel([])


@pytest.mark.parametrize(
    ("accounts", "expected"),
    [
        ([], "channels.feishu.accounts: expected an object, got an array"),
        ({1: {}}, "channels.feishu.accounts: keys must be strings, got an integer"),
        ({"a": "x"}, "channels.feishu.accounts.a: expected an object, got a string"),
    ],
)
def test_feishu_accounts_shape(accounts: object, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_feishu_channel({"accounts": accounts})
    assert [str(problem) for problem in info.value.problems] == [expected]


@pytest.mark.parametrize("channels", [None, [], {"feishu": None}, {"slack": {}}])
def test_no_feishu(tmp_path: Path, channels: object) -> None:
    assert load_config(write(tmp_path, openclaw({}, channels=channels))).feishu is None


# -- file and syntax errors ---------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    assert load_problems(tmp_path / "nope.json") == ["file not found"]


def test_directory(tmp_path: Path) -> None:
    assert load_problems(tmp_path) == ["is a directory, not a file"]


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, {})

    def deny(*_args: object, **_kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "open", deny)
    assert load_problems(path) == ["permission denied"]


def test_other_os_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, {})

    def broken(*_args: object, **_kwargs: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(Path, "open", broken)
    assert load_problems(path) == ["cannot read the file: Input/output error"]


def test_file_too_large(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(load_module, "MAX_FILE_BYTES", 10)
    path = write(tmp_path, {"identity": {"workloadName": "long enough"}})
    assert load_problems(path) == ["file is larger than 10 bytes; not a config file"]


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_bytes(b'{"identity": {"workloadName": "\xff"}}')
    assert load_problems(path) == ["not UTF-8 text (bad byte at offset 31)"]


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_bytes(b"\xef\xbb\xbf{}")
    assert load_config(path).format == "standalone"


def test_bad_json_has_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(
        '{\n  "identity": {\n    "endpoint": "https://x.example"\n    "roleTrn": "r"\n  }\n}\n'
    )
    assert load_problems(path) == ["invalid JSON at line 4, column 5: expected ',' or '}'"]


def test_json5_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "openclaw.json"
    path.write_text(
        "// OpenClaw config\n{\n  plugins: { entries: { 'agent-identity': { config: {\n"
        "    identity: { durationSeconds: 0x10, }, /* hex */\n  } } } },\n}\n"
    )
    assert load_config(path).plugin.identity.duration_seconds == 16


def test_duplicate_keys_in_our_section_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(
        '{"plugins": {"entries": {"agent-identity": {"config": {\n'
        '"identity": {"workloadName": "a", "workloadName": "b"}}}}},\n'
        '"gateway": {"port": 1, "port": 2}}'
    )
    assert load_problems(path) == [
        f"{ENTRY}.identity.workloadName: duplicate key (again at line 2, column 35); "
        "only the last one takes effect, so keep one"
    ]


def test_duplicate_keys_in_a_standalone_file(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"dataDir": "/a", "dataDir": "/b"}')
    (message,) = load_problems(path)
    assert message.startswith("dataDir: duplicate key (again at line 1, column 19)")


def test_plugin_config_path_constant() -> None:
    assert PLUGIN_CONFIG_PATH == ("plugins", "entries", "agent-identity", "config")


def test_schema_gap_is_reported_as_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        load_module._convert({"identity": 5}, PluginConfig, ("x",))
    assert str(info.value.problems[0]) == "x: does not match the schema at `$.identity`"
