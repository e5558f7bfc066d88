"""``open_identity``: the whole system in the caller's Trio code, as an async context manager.

::

    async with open_identity(load_config("openclaw.json")) as ident:
        url = await ident.login_flow.start_login("agent:main:main")  # when userpool is set
        match await ident.tips.get_tip("agent:main:main"): ...
        app = ident.asgi_app  # mount under the gateway's ASGI server (or serve it)

On entry it builds the services (one shared HTTP client unless one is given, the credential
chain, the Identity client, the permission checker, the risk evaluator, the notifier), the
supervision tree (see :mod:`agent_identity.system.tree`) and, when ``userpool`` is
configured, the lazy login flow; then it opens a nursery, starts the tree there (ordered:
each child is ready before the next starts) and the login listener beside it (a
:class:`~agent_identity.actors.login_flow.LoginSucceeded` sends the login follow-up through
the notifier, to the chat given as the login's ``context``).

On exit (normal, error or cancellation) the tree is stopped gracefully in reverse start order,
each actor within its own grace period, the whole stop bounded by ``shutdown_grace`` seconds
(shielded from an outer cancellation), then whatever is left is cancelled, and the HTTP
client is closed if the system created it. A supervisor that gives up (restart intensity
exceeded) cancels the body and surfaces as an error of the ``async with`` (in an exception
group, as Trio reports nursery failures); an exception raised by the body itself is stopped
at, the system is stopped, and the exception is re-raised as it is (not in a group).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import httpx
import trio

from agent_identity.actors.login_flow import AcquireTip, LoginEvents, LoginSucceeded
from agent_identity.config import FeishuChannel, LoadedConfig, PluginConfig
from agent_identity.storage import SessionRecord
from agent_identity.system.followups import CredentialFollowups
from agent_identity.system.identity import Identity, LoginListener
from agent_identity.system.login import LazyLoginFlow, LazyOidc
from agent_identity.system.services import build_services, open_http_client
from agent_identity.system.tree import IdentityTree, build_tree
from agent_identity.transports.callback import CallbackApp

__all__ = ["DEFAULT_SHUTDOWN_GRACE", "open_identity"]

logger = logging.getLogger(__name__)

#: Seconds the graceful stop of the whole tree may take before the rest is cancelled.
DEFAULT_SHUTDOWN_GRACE = 15.0


@dataclass(frozen=True, slots=True)
class _Parts:
    plugin: PluginConfig
    feishu: FeishuChannel | None


def _split(config: LoadedConfig | PluginConfig) -> _Parts:
    if isinstance(config, LoadedConfig):
        return _Parts(config.plugin, config.feishu)
    return _Parts(config, None)


def _tip_hook(tree: IdentityTree) -> AcquireTip:
    tips = tree.tips

    async def acquire_tip(record: SessionRecord) -> None:
        await tips.refresh(record.session_key)

    return acquire_tip


async def _notify_logins(
    listener: LoginListener, events: trio.MemoryReceiveChannel[LoginSucceeded]
) -> None:
    """Send the login follow-up for every :class:`LoginSucceeded` (runs until cancelled)."""
    async with events:
        async for event in events:
            await listener.handle(event)


@asynccontextmanager
async def open_identity(
    config: LoadedConfig | PluginConfig,
    *,
    environ: Mapping[str, str] | None = None,
    http: httpx.AsyncClient | None = None,
    shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE,
) -> AsyncIterator[Identity]:
    """Run the identity system for the duration of the ``async with`` block.

    Args:
        config: The loaded config (with ``channels.feishu`` for notifications) or a bare
            plugin config.
        environ: The environment to read credentials and the store key from; ``os.environ``
            (copied once) when None.
        http: A shared HTTP client to use (the caller keeps owning it); a new one, closed on
            exit, when None.
        shutdown_grace: Seconds the graceful stop may take before the rest is cancelled.

    Yields:
        The handle of the running system.

    Raises:
        ConfigError: The environment is invalid (a malformed store key).
        ChildStartFailed: An actor failed to start (e.g. ``sessions.json`` cannot be
            decrypted); the actors already started are stopped first.
    """
    parts = _split(config)
    env_map: Mapping[str, str] = dict(os.environ) if environ is None else environ
    async with AsyncExitStack() as stack:
        if http is None:
            http = await stack.enter_async_context(open_http_client())
        services = await build_services(parts.plugin, parts.feishu, env_map, http)
        userpool = parts.plugin.userpool
        oidc = None if userpool is None else LazyOidc(userpool, http, services.identity_client)
        tree = build_tree(parts.plugin, services, renewer=oidc)
        events = LoginEvents()
        login_flow = (
            None
            if oidc is None
            else LazyLoginFlow(
                oidc, tree.logins, tree.sessions, events=events, acquire_tip=_tip_hook(tree)
            )
        )
        listener = LoginListener(services.notifier)
        body_error: Exception | None = None
        async with trio.open_nursery() as nursery:
            await nursery.start(tree.root.run)
            nursery.start_soon(_notify_logins, listener, events.subscribe())
            followups = CredentialFollowups(services.notifier)
            nursery.start_soon(followups.run, tree.credential_vault.events.subscribe())
            try:
                yield Identity(
                    plugin=parts.plugin,
                    services=services,
                    tree=tree,
                    login_flow=login_flow,
                    login_events=events,
                    asgi_app=None if login_flow is None else CallbackApp(login_flow),
                    listener=listener,
                    followups=followups,
                    oidc=oidc,
                    environ=env_map,
                )
            except Exception as exc:  # noqa: BLE001 - re-raised below as itself, not in a group
                body_error = exc
            finally:
                with trio.move_on_after(shutdown_grace) as scope:
                    scope.shield = True
                    await tree.root.stop()
                if scope.cancelled_caught:
                    logger.warning("the identity system did not stop in %ss", shutdown_grace)
                nursery.cancel_scope.cancel()
        if body_error is not None:
            raise body_error
