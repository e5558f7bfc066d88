"""``open_oidc_client``: an :class:`OidcClient` from the ``userpool`` config, in either mode.

Explicit mode takes ``discoveryUrl`` (issuer or discovery document URL), ``clientId``,
``clientSecret`` and ``callbackUrl`` as given. Dynamic mode resolves ``userPoolName`` +
``clientName`` through the Identity control plane first (see :mod:`.userpool`), which needs an
:class:`IdentityClient`. Either way ``scope`` defaults to ``openid profile email``.

The function does control-plane I/O in dynamic mode only; discovery and keys are fetched by
the client on first use.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import trio

from agent_identity.config import UserPoolConfig
from agent_identity.oidc.client import DEFAULT_SCOPE, OidcClient, OidcSettings
from agent_identity.oidc.discovery import DiscoveryCache
from agent_identity.oidc.errors import OidcError
from agent_identity.oidc.id_token import DEFAULT_LEEWAY
from agent_identity.oidc.userpool import resolve_user_pool, user_pool_uid_from_url
from agent_identity.volcengine import IdentityClient

__all__ = ["open_oidc_client", "settings_from_config"]


def _explicit(config: UserPoolConfig) -> OidcSettings:
    missing = [
        key
        for key, value in (
            ("discoveryUrl", config.discovery_url),
            ("clientId", config.client_id),
            ("callbackUrl", config.callback_url),
        )
        if not value
    ]
    if missing or config.discovery_url is None or config.client_id is None:
        raise OidcError("config_incomplete", f"userpool needs {', '.join(missing)} for OIDC login.")
    return OidcSettings(
        discovery_url=config.discovery_url,
        client_id=config.client_id,
        client_secret=config.client_secret,
        redirect_uri=config.callback_url or "",
        scope=config.scope or DEFAULT_SCOPE,
        identity_provider=config.identity_provider,
        use_relay_callback=config.use_relay_callback,
        user_pool_uid=user_pool_uid_from_url(config.discovery_url),
    )


async def settings_from_config(
    config: UserPoolConfig, identity_client: IdentityClient | None
) -> OidcSettings:
    """Resolve the ``userpool`` config to client settings (dynamic mode calls the API).

    Raises:
        OidcError: ``config_incomplete``, or a dynamic-mode resolution reason.
    """
    if config.mode == "explicit":
        await trio.lowlevel.checkpoint()
        return _explicit(config)
    if identity_client is None:
        raise OidcError(
            "config_incomplete",
            "userpool dynamic mode (userPoolName + clientName) needs Identity API access.",
        )
    if not config.callback_url or not config.user_pool_name or not config.client_name:
        raise OidcError(
            "config_incomplete",
            "userpool dynamic mode needs userPoolName, clientName and callbackUrl for OIDC login.",
        )
    resolved = await resolve_user_pool(
        identity_client,
        config.user_pool_name,
        config.client_name,
        config.callback_url,
        config.auto_create,
    )
    return OidcSettings(
        discovery_url=resolved.discovery_url,
        client_id=resolved.client_id,
        client_secret=resolved.client_secret,
        redirect_uri=config.callback_url,
        scope=config.scope or DEFAULT_SCOPE,
        identity_provider=config.identity_provider,
        use_relay_callback=config.use_relay_callback,
        user_pool_uid=resolved.user_pool_uid,
    )


async def open_oidc_client(
    config: UserPoolConfig,
    http: httpx.AsyncClient,
    identity_client: IdentityClient | None = None,
    *,
    discovery: DiscoveryCache | None = None,
    leeway: float = DEFAULT_LEEWAY,
    jwks_min_refetch_interval: float = 30.0,
    clock: Callable[[], float] = trio.current_time,
    now: Callable[[], float] = time.time,
) -> OidcClient:
    """Build the OIDC client the ``userpool`` config describes.

    Args:
        config: The ``userpool`` section.
        http: The shared HTTP client.
        identity_client: The Identity client: required in dynamic mode; in either mode it
            enables the ``identity_provider`` lookup.
        discovery: A shared discovery cache.
        leeway: Clock skew tolerated on ID-token times, in seconds.
        jwks_min_refetch_interval: Minimum seconds between JWKS refetches for unknown kids.
        clock: Monotonic seconds (Trio's clock) for the caches.
        now: Wall-clock seconds for ID-token ``exp``/``iat``.

    Returns:
        The client.

    Raises:
        OidcError: ``config_incomplete``, ``user_pool_not_found``,
            ``user_pool_client_not_found``, ``callback_registration_failed`` or
            ``user_pool_lookup_failed``.
    """
    settings = await settings_from_config(config, identity_client)
    return OidcClient(
        settings,
        http,
        identity_client=identity_client,
        discovery=discovery,
        leeway=leeway,
        jwks_min_refetch_interval=jwks_min_refetch_interval,
        clock=clock,
        now=now,
    )
