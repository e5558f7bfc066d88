"""Configuration: the plugin's config keys as Structs, loading, validation and redaction.

The lowest layer: it imports only the standard library and msgspec.

- :func:`load_config` reads an ``openclaw.json`` (plugin config at
  ``plugins.entries.agent-identity.config``, Feishu credentials at ``channels.feishu``) or a
  standalone plugin config file, and returns a :class:`LoadedConfig`;
  :func:`parse_plugin_config` does the same for data already in memory (the host's
  ``api.pluginConfig``).
- Validation reports every problem at once as one :class:`ConfigError` holding
  :class:`ConfigProblem` s with JSON paths; messages never contain configured values.
- :func:`redact` is the only way configuration is displayed; ``repr()`` of every config object
  goes through it.
- :class:`EnvSettings` is a typed snapshot of the environment variables the plugin reads.
"""

from agent_identity.config.env import EnvSettings
from agent_identity.config.errors import ConfigError, ConfigProblem, JsonPath, format_path
from agent_identity.config.feishu import FeishuAccount, FeishuChannel
from agent_identity.config.load import (
    PLUGIN_CONFIG_PATH,
    PLUGIN_ID,
    ConfigFormat,
    LoadedConfig,
    load_config,
    loads_config,
    parse_config_document,
    parse_feishu_channel,
    parse_plugin_config,
)
from agent_identity.config.model import (
    DEFAULT_DATA_DIR,
    AuthzConfig,
    IdentityConfig,
    LlmApi,
    LlmRiskCheckConfig,
    LocalServerSettings,
    PluginConfig,
    UserPoolConfig,
    UserPoolMode,
)
from agent_identity.config.redact import mask_secret, redact, secret_values
from agent_identity.config.validate import validate_plugin_config

__all__ = [
    "DEFAULT_DATA_DIR",
    "PLUGIN_CONFIG_PATH",
    "PLUGIN_ID",
    "AuthzConfig",
    "ConfigError",
    "ConfigFormat",
    "ConfigProblem",
    "EnvSettings",
    "FeishuAccount",
    "FeishuChannel",
    "IdentityConfig",
    "JsonPath",
    "LlmApi",
    "LlmRiskCheckConfig",
    "LoadedConfig",
    "LocalServerSettings",
    "PluginConfig",
    "UserPoolConfig",
    "UserPoolMode",
    "format_path",
    "load_config",
    "loads_config",
    "mask_secret",
    "parse_config_document",
    "parse_feishu_channel",
    "parse_plugin_config",
    "redact",
    "secret_values",
    "validate_plugin_config",
]
