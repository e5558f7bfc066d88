"""The services of the system: the clients and evaluators the actors and hooks share.

Everything here is plain objects (no tasks): one shared :class:`httpx.AsyncClient`, the
signing-credentials chain, the Identity control-plane client, the permission checker, the
risk evaluator and the notifier. :func:`build_services` builds them from the config::

    services = await build_services(plugin, feishu, environ, http)
    services.identity_client  # always built: the chain resolves keys lazily, per call

The credential chain is always built, whether or not keys are configured: it resolves them
on first use (config, then environment, then metadata URL, then credentials file), so a
system without keys starts fine and only the calls that need the control plane fail.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.request import getproxies

import httpx
import trio

from agent_identity.authz import PermissionChecker, RiskEvaluator
from agent_identity.config import EnvSettings, FeishuChannel, PluginConfig
from agent_identity.notify import Notifier
from agent_identity.volcengine.credentials import CredentialChain
from agent_identity.volcengine.endpoint import resolve_endpoint, signing_region_for
from agent_identity.volcengine.identity import IdentityClient

__all__ = [
    "DEFAULT_HTTP_TIMEOUT",
    "DeferredTransport",
    "Services",
    "build_services",
    "open_http_client",
]

#: The timeout of the shared HTTP client, in seconds (connect, read, write, pool).
DEFAULT_HTTP_TIMEOUT = 30.0
#: Connection limits of the shared HTTP client.
_HTTP_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


class DeferredTransport(httpx.AsyncBaseTransport):
    """httpx's default transport, built on the first request instead of with the client.

    Building it imports httpcore and loads the CA bundle into an SSL context, which costs
    more than everything else ``serve`` does between its imports and ready; nothing is sent
    at start, so that cost moves to the first request (once, on the event loop).

    Args:
        limits: The connection limits of the transport.
    """

    def __init__(self, *, limits: httpx.Limits) -> None:
        self._limits = limits
        self._transport: httpx.AsyncHTTPTransport | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send through the default transport (built now if this is the first request)."""
        if self._transport is None:
            self._transport = httpx.AsyncHTTPTransport(limits=self._limits)
        return await self._transport.handle_async_request(request)

    async def aclose(self) -> None:
        """Close the default transport, if it was built."""
        if self._transport is None:
            await trio.lowlevel.checkpoint()
        else:
            await self._transport.aclose()


def open_http_client() -> httpx.AsyncClient:
    """Return a new shared HTTP client with the system's timeouts and limits.

    Its transport is built on the first request (:class:`DeferredTransport`), unless the
    environment names a proxy: httpx routes through ``HTTP_PROXY``/``HTTPS_PROXY``/
    ``ALL_PROXY`` only with the transports it builds itself.

    The caller owns it (``async with`` it, or ``await client.aclose()``).
    """
    proxies = getproxies()
    if any(proxies.get(scheme) for scheme in ("http", "https", "all")):
        return httpx.AsyncClient(timeout=DEFAULT_HTTP_TIMEOUT, limits=_HTTP_LIMITS)
    transport = DeferredTransport(limits=_HTTP_LIMITS)
    return httpx.AsyncClient(timeout=DEFAULT_HTTP_TIMEOUT, transport=transport)


@dataclass(frozen=True, slots=True, kw_only=True)
class Services:
    """The shared, task-free services of one system.

    Attributes:
        http: The shared HTTP client.
        env: The environment snapshot (store key, STS debug, ...).
        endpoint: The resolved Identity endpoint.
        credentials: The signing-credentials chain (resolves lazily, cached).
        identity_client: The Identity control-plane client.
        permission: The CheckPermission checker for ``authz``.
        risk: The tool-call risk evaluator for ``authz``.
        notifier: Follow-ups to the chat a command came from (Feishu, or skipped).
    """

    http: httpx.AsyncClient
    env: EnvSettings
    endpoint: str
    credentials: CredentialChain
    identity_client: IdentityClient
    permission: PermissionChecker
    risk: RiskEvaluator
    notifier: Notifier


def build_credentials(
    plugin: PluginConfig, env: EnvSettings, environ: Mapping[str, str], http: httpx.AsyncClient
) -> CredentialChain:
    """Build the signing-credentials chain of the ``identity`` config and the environment.

    Args:
        plugin: The plugin config.
        env: The environment snapshot (``IDENTITY_STS_DEBUG``).
        environ: The environment the chain reads its keys and files from.
        http: The shared HTTP client (metadata and STS).

    Returns:
        The chain; nothing is resolved yet.
    """
    identity = plugin.identity
    return CredentialChain(
        http,
        access_key_id=identity.access_key_id,
        secret_access_key=identity.secret_access_key,
        session_token=identity.session_token,
        role_trn=identity.role_trn,
        credentials_metadata_url=identity.credentials_metadata_url,
        credentials_file=identity.credentials_file,
        env=environ,
        sts_debug=env.sts_debug,
    )


async def build_services(
    plugin: PluginConfig,
    feishu: FeishuChannel | None,
    environ: Mapping[str, str],
    http: httpx.AsyncClient,
) -> Services:
    """Build every shared service of the config.

    Only the endpoint resolution may touch the network (the region metadata URL, when no
    ``endpoint`` is configured).

    Args:
        plugin: The plugin config.
        feishu: ``channels.feishu`` of the host config, if any.
        environ: The environment to read (credentials, store key).
        http: The shared HTTP client.

    Returns:
        The services.

    Raises:
        ConfigError: The environment is invalid (e.g. a malformed store key).
        ValueError: The LLM risk check is enabled without an HTTP client (never here).
    """
    env = EnvSettings.from_environ(environ)
    identity = plugin.identity
    endpoint = await resolve_endpoint(identity.endpoint, identity.region_metadata_url, http)
    credentials = build_credentials(plugin, env, environ, http)
    client = IdentityClient(
        http,
        endpoint=endpoint,
        credentials=credentials.get,
        region=signing_region_for(endpoint),
    )
    return Services(
        http=http,
        env=env,
        endpoint=endpoint,
        credentials=credentials,
        identity_client=client,
        permission=PermissionChecker.from_config(client, plugin.authz),
        risk=RiskEvaluator.from_config(plugin.authz, http),
        notifier=Notifier.for_channel(http, feishu),
    )
