"""Loading the configuration from a file: an ``openclaw.json`` or a standalone plugin config.

A document with a top-level ``plugins`` key is an ``openclaw.json``: the plugin config is taken
from ``plugins.entries.agent-identity.config`` and the Feishu app credentials from
``channels.feishu``. Any other object is a standalone file holding just the plugin config. Both
are read as JSON5 (OpenClaw's format; plain JSON is a subset). Problem paths are relative to the
file's root, so they point at the exact key to fix.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, TypeVar

import msgspec

from agent_identity.config._base import ConfigStruct
from agent_identity.config.errors import ConfigError, ConfigProblem, JsonPath
from agent_identity.config.feishu import FeishuChannel
from agent_identity.config.json5_reader import DuplicateKey, JsonSyntaxError, parse_json5
from agent_identity.config.model import PluginConfig
from agent_identity.config.validate import validate_feishu_channel, validate_plugin_config
from agent_identity.config.walk import describe_json_type

__all__ = [
    "FEISHU_PATH",
    "MAX_FILE_BYTES",
    "PLUGIN_CONFIG_PATH",
    "PLUGIN_ID",
    "ConfigFormat",
    "LoadedConfig",
    "load_config",
    "loads_config",
    "parse_config_document",
    "parse_feishu_channel",
    "parse_plugin_config",
]

PLUGIN_ID = "agent-identity"
"""The plugin's id: its key under ``plugins.entries``."""
PLUGIN_CONFIG_PATH: JsonPath = ("plugins", "entries", PLUGIN_ID, "config")
"""Where the plugin config sits in ``openclaw.json``."""
FEISHU_PATH: JsonPath = ("channels", "feishu")
"""Where the Feishu channel settings sit in ``openclaw.json``."""
MAX_FILE_BYTES = 16 * 1024 * 1024
"""Largest config file read (a bigger one is certainly not a config file)."""

ConfigFormat = Literal["openclaw.json", "standalone"]

_S = TypeVar("_S", bound=msgspec.Struct)


class LoadedConfig(ConfigStruct, frozen=True, kw_only=True):
    """A validated configuration and where it came from.

    Attributes:
        source: The file it was read from (``None`` when parsed from memory).
        format: ``"openclaw.json"`` or ``"standalone"``.
        plugin: The plugin config, defaults filled in.
        feishu: ``channels.feishu`` when the file is an ``openclaw.json`` that has it.
    """

    source: Path | None = None
    format: ConfigFormat = "standalone"
    plugin: PluginConfig
    feishu: FeishuChannel | None = None


def load_config(path: str | os.PathLike[str]) -> LoadedConfig:
    """Read, parse and validate a config file.

    Args:
        path: An ``openclaw.json`` or a standalone plugin config file (JSON or JSON5).

    Returns:
        The validated configuration.

    Raises:
        ConfigError: The file cannot be read, is not valid JSON5, or is not a valid config;
            carries every problem found, attributed to the file.
    """
    source = Path(path)
    text = _read_text(source)
    return loads_config(text, source)


def loads_config(text: str, source: Path | None = None) -> LoadedConfig:
    """Parse and validate config text.

    Args:
        text: The document (JSON or JSON5).
        source: The file it came from, for messages and :attr:`LoadedConfig.source`.

    Returns:
        The validated configuration.

    Raises:
        ConfigError: The text is not valid JSON5 or not a valid config.
    """
    label = str(source) if source is not None else None
    try:
        document = parse_json5(text)
    except JsonSyntaxError as exc:
        problem = ConfigProblem(
            (), f"invalid JSON at line {exc.line}, column {exc.column}: {exc.message}"
        )
        raise ConfigError([problem], label) from None
    try:
        return parse_config_document(document.value, source, duplicates=document.duplicates)
    except ConfigError as exc:
        if label is None:
            raise
        raise exc.with_source(label) from None


def parse_config_document(
    document: object,
    source: Path | None = None,
    *,
    duplicates: tuple[DuplicateKey, ...] = (),
) -> LoadedConfig:
    """Validate a parsed document: an ``openclaw.json`` object or a standalone plugin config.

    Args:
        document: The parsed data.
        source: The file it came from, if any.
        duplicates: Duplicate keys the parser saw; those inside the plugin config are problems.

    Returns:
        The validated configuration.

    Raises:
        ConfigError: Every problem found.
    """
    if not isinstance(document, Mapping):
        got = describe_json_type(document)
        raise ConfigError([ConfigProblem((), f"expected a JSON object at the top, got {got}")])
    if "plugins" not in document:
        plugin = parse_plugin_config(document, duplicates=duplicates)
        return LoadedConfig(plugin=plugin, format="standalone", source=source)
    problems: list[ConfigProblem] = []
    found, raw_plugin = _descend(document, PLUGIN_CONFIG_PATH, problems)
    raw_feishu = _feishu_section(document)
    if found:
        problems.extend(validate_plugin_config(raw_plugin, PLUGIN_CONFIG_PATH))
        problems.extend(_duplicate_problems(duplicates, PLUGIN_CONFIG_PATH))
    if raw_feishu is not None:
        problems.extend(validate_feishu_channel(raw_feishu, FEISHU_PATH))
    if problems:
        raise ConfigError(problems)
    plugin = _convert(raw_plugin, PluginConfig, PLUGIN_CONFIG_PATH)
    feishu = _convert(raw_feishu, FeishuChannel, FEISHU_PATH) if raw_feishu is not None else None
    return LoadedConfig(plugin=plugin, feishu=feishu, format="openclaw.json", source=source)


def parse_plugin_config(
    raw: object,
    path: JsonPath = (),
    *,
    duplicates: tuple[DuplicateKey, ...] = (),
) -> PluginConfig:
    """Validate and decode a plugin config object (e.g. the host's ``api.pluginConfig``).

    Args:
        raw: The parsed plugin config data.
        path: Where it sits in its document, for problem paths.
        duplicates: Duplicate keys seen by the parser, reported when inside ``path``.

    Returns:
        The config with defaults filled in.

    Raises:
        ConfigError: Every problem found.
    """
    problems = validate_plugin_config(raw, path)
    problems.extend(_duplicate_problems(duplicates, path))
    if problems:
        raise ConfigError(problems)
    return _convert(raw, PluginConfig, path)


def parse_feishu_channel(raw: object, path: JsonPath = FEISHU_PATH) -> FeishuChannel:
    """Validate and decode ``channels.feishu`` (e.g. from the host's ``api.config``).

    Args:
        raw: The parsed ``channels.feishu`` data.
        path: Where it sits in its document.

    Returns:
        The channel settings (keys we do not use are dropped).

    Raises:
        ConfigError: A key we use has the wrong type.
    """
    problems = validate_feishu_channel(raw, path)
    if problems:
        raise ConfigError(problems)
    return _convert(raw, FeishuChannel, path)


def _read_text(source: Path) -> str:
    label = str(source)
    try:
        with source.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError([ConfigProblem((), "file not found")], label) from None
    except IsADirectoryError:
        raise ConfigError([ConfigProblem((), "is a directory, not a file")], label) from None
    except PermissionError:
        raise ConfigError([ConfigProblem((), "permission denied")], label) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError([ConfigProblem((), f"cannot read the file: {reason}")], label) from None
    if len(data) > MAX_FILE_BYTES:
        message = f"file is larger than {MAX_FILE_BYTES} bytes; not a config file"
        raise ConfigError([ConfigProblem((), message)], label)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        message = f"not UTF-8 text (bad byte at offset {exc.start})"
        raise ConfigError([ConfigProblem((), message)], label) from None


def _descend(
    document: Mapping[object, object], path: JsonPath, problems: list[ConfigProblem]
) -> tuple[bool, object]:
    """Follow ``path`` down; on a dead end record why and return ``(False, None)``."""
    node: object = document
    for depth, key in enumerate(path):
        if not isinstance(node, Mapping):
            got = describe_json_type(node)
            problems.append(ConfigProblem(path[:depth], f"expected an object, got {got}"))
            return False, None
        if key not in node:
            problems.append(ConfigProblem(path[: depth + 1], _missing_message(key)))
            return False, None
        node = node[key]
    return True, node


def _missing_message(key: str | int) -> str:
    if key == PLUGIN_ID:
        return f"missing: this openclaw.json has no entry for the {PLUGIN_ID} plugin"
    if key == "config":
        return f"missing: the {PLUGIN_ID} plugin's settings go here"
    return "missing"


def _feishu_section(document: Mapping[object, object]) -> object | None:
    channels = document.get("channels")
    if not isinstance(channels, Mapping):
        return None  # not ours to judge: OpenClaw validates its own channels section
    return channels.get("feishu")


def _duplicate_problems(
    duplicates: tuple[DuplicateKey, ...], within: JsonPath
) -> list[ConfigProblem]:
    return [
        ConfigProblem(
            (*dup.path, dup.key),
            f"duplicate key (again at line {dup.line}, column {dup.column}); "
            "only the last one takes effect, so keep one",
        )
        for dup in duplicates
        if dup.path[: len(within)] == within
    ]


def _convert(raw: object, cls: type[_S], path: JsonPath) -> _S:
    try:
        return msgspec.convert(raw, cls)
    except msgspec.ValidationError as exc:  # the walker should have caught it first
        where = str(exc).rpartition(" - at ")[2] or "$"
        message = f"does not match the schema at {where}"
        raise ConfigError([ConfigProblem(path, message)]) from None
