"""The plugin configuration: ``plugins.entries.agent-identity.config`` as immutable Structs.

Key names on the wire are exactly the seed plugin's (camelCase); the Python attribute names are
their snake_case twins (``clientSecret`` ↔ ``client_secret``). Defaults are the spec's. Build
these through :func:`agent_identity.config.parse_plugin_config` or
:func:`agent_identity.config.load_config`, which validate the whole document first and report
every problem at once; constructing them directly skips the cross-key rules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import msgspec

from agent_identity.config._base import (
    ConfigStruct,
    NonNegativeInt,
    PositiveInt,
    Secret,
    Text,
    Url,
)

__all__ = [
    "DEFAULT_DATA_DIR",
    "DEFAULT_LLM_API",
    "LOCAL_SERVER_KEYS",
    "AuthzConfig",
    "IdentityConfig",
    "LlmApi",
    "LlmRiskCheckConfig",
    "LocalServerSettings",
    "PluginConfig",
    "UserPoolConfig",
    "UserPoolMode",
]

DEFAULT_DATA_DIR = "~/.openclaw/plugins/identity"
"""Where sessions, bindings, the store key and the sockets live (``~`` expanded at use time)."""

LlmApi = Literal["openai-completions", "anthropic-messages"]
"""Wire protocols the LLM risk check can speak (OpenClaw's model ``api`` names)."""
DEFAULT_LLM_API: LlmApi = "openai-completions"

UserPoolMode = Literal["explicit", "dynamic"]

_T = TypeVar("_T")

LOCAL_SERVER_KEYS = ("localServer", "localServerAllowlist", "localServerFailOpen")
"""The local-server keys, accepted both under ``identity`` and at the top level."""


class IdentityConfig(ConfigStruct, frozen=True, kw_only=True):
    """``identity``: platform access (Identity API, AK/SK, TIP workload).

    Attributes:
        endpoint: Identity API base URL; highest priority for the API host.
        region_metadata_url: URL returning a plain-text region id; used when ``endpoint`` is unset.
        access_key_id: Volcengine access key (else env, metadata URL or credentials file).
        secret_access_key: Volcengine secret key.
        session_token: STS session token.
        workload_pool_name: Workload pool for TIP and credential calls.
        workload_name: Workload name for TIP; ``None`` means decided at run time
            (``roleTrn`` if set, else the session's agent id or ``openclaw-agent``).
        audience: TIP token audience.
        duration_seconds: TIP token lifetime.
        role_trn: Role TRN for STS AssumeRole.
        credentials_file: Path to a VeFaaS-style credential JSON file.
        credentials_metadata_url: URL for remote credential fetch (with ``roleTrn``).
        subagent_tip_propagation: Propagate TIP and session to subagents.
        webchat_session_exchange: Enable the ``identity.session.put/get`` gateway methods.
        personal_session_mode: Single-user mode: everything stored under ``agent:main:main``.
        local_server: Enable the UDS identity server (as written here; ``None`` if unset).
            Read :attr:`PluginConfig.local_server_settings` for the effective value.
        local_server_allowlist: Extra process names/paths allowed on the UDS server, as written.
        local_server_fail_open: Allow peers that cannot be identified, as written.
    """

    endpoint: Url | None = None
    region_metadata_url: Url | None = None
    access_key_id: Secret | None = None
    secret_access_key: Secret | None = None
    session_token: Secret | None = None
    workload_pool_name: Text = "default"
    workload_name: Text | None = None
    audience: tuple[Text, ...] | None = None
    duration_seconds: PositiveInt = 3600
    role_trn: Text | None = None
    credentials_file: Text | None = None
    credentials_metadata_url: Url | None = None
    subagent_tip_propagation: bool = False
    webchat_session_exchange: bool = False
    personal_session_mode: bool = False
    local_server: bool | None = None
    local_server_allowlist: tuple[Text, ...] | None = None
    local_server_fail_open: bool | None = None


EXPLICIT_KEYS = ("discoveryUrl", "clientId", "clientSecret")
"""Keys that only make sense in explicit userpool mode (and so select it)."""
DYNAMIC_KEYS = ("userPoolName", "clientName")
"""Keys that only make sense in dynamic userpool mode (and so select it). ``autoCreate`` is not
one: it has a default, so the full wire form of an explicit-mode config carries it too."""
EXPLICIT_REQUIRED = ("discoveryUrl", "clientId", "clientSecret", "callbackUrl", "scope")
DYNAMIC_REQUIRED = ("userPoolName", "clientName", "callbackUrl")


class UserPoolConfig(ConfigStruct, frozen=True, kw_only=True):
    """``userpool``: OIDC login against a UserPool, in explicit or dynamic mode.

    Explicit mode names the OIDC client directly (``discoveryUrl``, ``clientId``,
    ``clientSecret``, ``callbackUrl``, ``scope``); dynamic mode resolves it from
    ``userPoolName`` + ``clientName`` (``callbackUrl`` required, client created when missing if
    ``autoCreate``). See :attr:`mode`.

    Attributes:
        discovery_url: OIDC issuer / discovery base URL (explicit mode).
        client_id: OIDC client id (explicit mode).
        client_secret: OIDC client secret (explicit mode).
        callback_url: Public URL of ``/identity/oauth/callback`` on the gateway.
        scope: Requested scopes, typically ``openid profile email``; optional in dynamic mode.
        identity_provider: IdP name for the ``identity_provider`` authorize parameter; when unset
            the first entry of ListIdentityProviders is used.
        use_relay_callback: Use the UserPool relay (``redirect_relay_uri``) for the callback.
        user_pool_name: UserPool name (dynamic mode).
        client_name: UserPool client name (dynamic mode).
        auto_create: Create the client when it does not exist (dynamic mode).
    """

    discovery_url: Url | None = None
    client_id: Text | None = None
    client_secret: Secret | None = None
    callback_url: Url | None = None
    scope: Text | None = None
    identity_provider: Text | None = None
    use_relay_callback: bool = False
    user_pool_name: Text | None = None
    client_name: Text | None = None
    auto_create: bool = True

    @property
    def mode(self) -> UserPoolMode:
        """``"explicit"`` when the OIDC client is named directly, else ``"dynamic"``."""
        explicit = (self.discovery_url, self.client_id, self.client_secret)
        if any(value is not None for value in explicit) or self.user_pool_name is None:
            return "explicit"
        return "dynamic"


class LlmRiskCheckConfig(ConfigStruct, frozen=True, kw_only=True):
    """``authz.llmRiskCheck``: the LLM that re-evaluates "medium" rule results.

    Attributes:
        endpoint: Base URL of the model API (required).
        api: Wire protocol of that API; default ``openai-completions`` (OpenAI-compatible
            chat completions).
        model: Model id (required).
        api_key: API key, if the endpoint needs one.
        timeout_ms: Timeout of one evaluation; default 10000 (10 s).
        cache_ttl_ms: How long a verdict for the same call is reused; default 300000 (5 min);
            0 disables the cache.
    """

    endpoint: Url
    api: LlmApi = DEFAULT_LLM_API
    model: Text
    api_key: Secret | None = None
    timeout_ms: PositiveInt = 10_000
    cache_ttl_ms: NonNegativeInt = 300_000


class AuthzConfig(ConfigStruct, frozen=True, kw_only=True):
    """``authz``: permission checks and risk approval; each flag is independent.

    Attributes:
        agent_check: CheckPermission for the agent (resource type ``agent``).
        tool_check: CheckPermission for tools (resource type ``tool``).
        skill_read_check: CheckPermission for reads of ``SKILL.md`` (resource type ``skill``).
        require_risk_approval: Require user approval for high-risk tool calls.
        namespace_name: Cedar policy namespace for CheckPermission.
        low_risk_bypass: Skip TIP + CheckPermission for built-in low-risk tools.
        low_risk_tools: Extra tool names treated as low-risk.
        enable_llm_risk_check: Re-evaluate "medium" rule results with an LLM.
        llm_risk_check: The LLM settings; required when ``enable_llm_risk_check``.
        approval_ttl_seconds: Lifetime of an approval link/command.
    """

    agent_check: bool = False
    tool_check: bool = False
    skill_read_check: bool = False
    require_risk_approval: bool = False
    namespace_name: Text = "default"
    low_risk_bypass: bool = True
    low_risk_tools: tuple[Text, ...] = ()
    enable_llm_risk_check: bool = False
    llm_risk_check: LlmRiskCheckConfig | None = None
    approval_ttl_seconds: PositiveInt = 300

    @property
    def enabled_checks(self) -> tuple[str, ...]:
        """Wire names of the check flags that are on, e.g. ``("toolCheck",)``."""
        flags = {
            "agentCheck": self.agent_check,
            "toolCheck": self.tool_check,
            "skillReadCheck": self.skill_read_check,
            "requireRiskApproval": self.require_risk_approval,
            "enableLlmRiskCheck": self.enable_llm_risk_check,
        }
        return tuple(name for name, on in flags.items() if on)


class LocalServerSettings(ConfigStruct, frozen=True, kw_only=True):
    """The effective local (UDS) identity server settings, wherever they were written.

    Attributes:
        enabled: Run the server; default False.
        allowlist: Extra process names/paths allowed (``curl`` is always allowed); default empty.
        fail_open: Allow peers that cannot be identified; default True.
    """

    enabled: bool = False
    allowlist: tuple[str, ...] = ()
    fail_open: bool = True


class PluginConfig(ConfigStruct, frozen=True, kw_only=True):
    """The whole plugin configuration (``plugins.entries.agent-identity.config``).

    Only ``identity`` matters for TIP; without ``userpool`` the login features are unavailable;
    without ``authz`` every check is off (its defaults).

    Attributes:
        identity: Platform access settings.
        userpool: OIDC login settings, or ``None`` when login is not configured.
        authz: Permission-check settings (defaults when the section is absent).
        local_server: ``localServer`` as written at the top level (``None`` if unset).
        local_server_allowlist: ``localServerAllowlist`` as written at the top level.
        local_server_fail_open: ``localServerFailOpen`` as written at the top level.
        data_dir: Plugin data folder; ``~`` is expanded by :meth:`data_path`.
    """

    identity: IdentityConfig = msgspec.field(default_factory=IdentityConfig)
    userpool: UserPoolConfig | None = None
    authz: AuthzConfig = msgspec.field(default_factory=AuthzConfig)
    local_server: bool | None = None
    local_server_allowlist: tuple[Text, ...] | None = None
    local_server_fail_open: bool | None = None
    data_dir: Text = DEFAULT_DATA_DIR

    @property
    def local_server_settings(self) -> LocalServerSettings:
        """The effective local-server settings: the top level if set, else ``identity``'s."""
        ident = self.identity
        enabled = _first(self.local_server, ident.local_server, default=False)
        allowlist = _first(self.local_server_allowlist, ident.local_server_allowlist, default=())
        fail_open = _first(self.local_server_fail_open, ident.local_server_fail_open, default=True)
        return LocalServerSettings(enabled=enabled, allowlist=allowlist, fail_open=fail_open)

    @property
    def login_available(self) -> bool:
        """Whether OIDC login is configured (a ``userpool`` section is present)."""
        return self.userpool is not None

    def data_path(self) -> Path:
        """The data folder with ``~`` expanded (against the current ``HOME``).

        Returns:
            The expanded path (not resolved, not created).
        """
        return Path(self.data_dir).expanduser()

    def display_overrides(self, shown: dict[str, Any]) -> dict[str, Any]:
        """Show the effective local-server values once, at the top level.

        Args:
            shown: The generic redacted display of this config.

        Returns:
            The display with ``identity.localServer*`` folded into the top-level keys.
        """
        identity = {k: v for k, v in shown["identity"].items() if k not in LOCAL_SERVER_KEYS}
        effective = self.local_server_settings
        out = dict(shown, identity=identity)
        out["localServer"] = effective.enabled
        out["localServerAllowlist"] = list(effective.allowlist)
        out["localServerFailOpen"] = effective.fail_open
        return out


def _first(*values: _T | None, default: _T) -> _T:
    for value in values:
        if value is not None:
            return value
    return default
