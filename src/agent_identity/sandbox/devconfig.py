"""The ``openclaw.json`` that points a gateway at a running sandbox (``agent-identity dev``).

:func:`dev_openclaw_json` writes what an operator would write for a real deployment, with
the sandbox's addresses and demo credentials: the control plane endpoint and its AK/SK, the
seeded user pool's discovery URL and client, the callback URL (registered with the sandbox's
client so the provider accepts it), the Feishu app for follow-ups, and the LLM stand-in for
risk re-evaluation. Tests use the same function, so ``dev`` and the test suite run the same
configuration.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from agent_identity.sandbox.server import Sandbox

__all__ = [
    "DEV_CLIENT_NAME",
    "DEV_USER",
    "DEV_USER_PASSWORD",
    "DEV_USER_POOL",
    "DevUser",
    "dev_openclaw_json",
    "dev_plugin_config",
]

#: The user pool of the default seed.
DEV_USER_POOL: Final = "agent-identity-dev"
#: Its OAuth client for the gateway.
DEV_CLIENT_NAME: Final = "openclaw-gateway"
#: The seeded user and password a person types into the login form.
DEV_USER: Final = "alice"
DEV_USER_PASSWORD: Final = "alice-password"  # noqa: S105 - the seed's public demo password


class DevUser:
    """A user of the seeded pool (name and password), for printing and the demo."""

    def __init__(self, name: str = DEV_USER, password: str = DEV_USER_PASSWORD) -> None:
        self.name = name
        self.password = password

    def __repr__(self) -> str:
        return f"DevUser({self.name!r})"


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        current = merged.get(key)
        if isinstance(value, Mapping) and isinstance(current, dict):
            merged[key] = _merge(current, value)
        else:
            merged[key] = value
    return merged


def dev_plugin_config(
    sb: Sandbox,
    *,
    callback_url: str,
    data_dir: Path,
    overrides: Mapping[str, Any] | None = None,
    pool: str = DEV_USER_POOL,
    client_name: str = DEV_CLIENT_NAME,
) -> dict[str, Any]:
    """The plugin config (``plugins.entries.agent-identity.config``) for ``sb``.

    The callback URL is added to the pool client's allowed callbacks (the sandbox checks
    redirect URIs like a real provider).

    Args:
        sb: The running sandbox.
        callback_url: Where the provider redirects after login.
        data_dir: The data folder (sessions, key, sockets).
        overrides: Sections merged in depth (``{"authz": {"toolCheck": True}}``).
        pool: The user pool name.
        client_name: The pool client's name.

    Raises:
        LookupError: The pool or client is not in the sandbox's seed.
    """
    user_pool = sb.state.user_pool(pool)
    if user_pool is None:
        msg = f"the sandbox has no user pool {pool!r}"
        raise LookupError(msg)
    found = next(((u, c) for u, c in user_pool.clients.items() if c.name == client_name), None)
    if found is None:
        msg = f"user pool {pool!r} has no client {client_name!r}"
        raise LookupError(msg)
    client_id, client = found
    if callback_url not in client.allowed_callback_urls:
        client.allowed_callback_urls.append(callback_url)
    config: dict[str, Any] = {
        "identity": {
            "endpoint": sb.base_url,
            "accessKeyId": sb.access_key_id,
            "secretAccessKey": sb.secret_access_key,
        },
        "userpool": {
            "discoveryUrl": sb.user_pool_discovery_url(pool),
            "clientId": client_id,
            "clientSecret": client.secret,
            "callbackUrl": callback_url,
            "scope": "openid profile email",
        },
        "dataDir": str(data_dir),
    }
    return _merge(config, overrides or {})


def dev_openclaw_json(
    sb: Sandbox,
    *,
    callback_url: str,
    data_dir: Path,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A whole ``openclaw.json``: the plugin entry plus ``channels.feishu`` of the sandbox.

    The Feishu app is the sandbox's own (its ``/open-apis/`` stand-in at ``sb.base_url``), so
    follow-ups of commands "from Feishu" land in ``sb.feishu``.
    """
    app = next(iter(sb.feishu.apps.items()), None)
    channels: dict[str, Any] = {}
    if app is not None:
        app_id, app_secret = app
        channels["feishu"] = {"appId": app_id, "appSecret": app_secret, "domain": sb.base_url}
    return {
        "plugins": {
            "entries": {
                "agent-identity": {
                    "config": dev_plugin_config(
                        sb, callback_url=callback_url, data_dir=data_dir, overrides=overrides
                    )
                }
            }
        },
        "channels": channels,
    }
