"""``agent-identity serve``: the whole system standalone, until a signal or ``ctl shutdown``.

:func:`run_server` runs, inside one :func:`~agent_identity.system.open_identity`:

* the OIDC callback route (hypercorn) on the host and port of ``userpool.callbackUrl``;
* the local identity server on ``<dataDir>/identity.sock`` when ``localServer`` is on
  (peer gate: ``localServerAllowlist`` + curl, ``localServerFailOpen``);
* the gateway bridge on ``<dataDir>/gateway.sock`` (owner only, see
  :mod:`agent_identity.system.bridge`);
* the operator control socket on ``<dataDir>/control.sock`` (owner only).

The first SIGINT/SIGTERM (or ``ctl shutdown``) drains: the listeners stop accepting and close,
the actors stop in reverse order (the session store flushes), the socket files are removed.
A second signal cancels whatever is left. ``ctl reload`` re-reads the config file: an invalid
one is rejected and the running one kept; a valid one applies the local server's allowlist
and fail-open mode at once and names the other changed sections, which take a restart.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import trio

from agent_identity.config import LoadedConfig, PluginConfig
from agent_identity.system.bridge import BridgeApp
from agent_identity.system.control import ControlService, ReloadResult, config_file_reloader
from agent_identity.system.identity import Identity
from agent_identity.system.local_server import LocalServerApp
from agent_identity.system.metrics import RequestMetrics
from agent_identity.system.runtime import DEFAULT_SHUTDOWN_GRACE, open_identity
from agent_identity.transports.callback import serve_callback_app
from agent_identity.transports.control import serve_control
from agent_identity.transports.peer import PeerDecision, PeerGate
from agent_identity.transports.uds_http import serve_uds_http
from agent_identity.transports.uds_socket import open_unix_listener

__all__ = [
    "BRIDGE_SOCKET",
    "CONTROL_SOCKET",
    "IDENTITY_SOCKET",
    "ServerInfo",
    "SwappableGate",
    "run_server",
]

logger = logging.getLogger(__name__)

IDENTITY_SOCKET = "identity.sock"
BRIDGE_SOCKET = "gateway.sock"
CONTROL_SOCKET = "control.sock"


class SwappableGate:
    """A peer gate whose policy a reload can replace (connections in flight keep theirs)."""

    def __init__(self, gate: PeerGate) -> None:
        self.gate = gate

    def admit(self, fd: int, /) -> PeerDecision:
        """Admit with the current policy."""
        return self.gate.admit(fd)

    def confirm(self, decision: PeerDecision, /) -> PeerDecision:
        """Re-check with the current policy."""
        return self.gate.confirm(decision)


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """Where a running server listens (``run_server`` reports it when ready).

    Attributes:
        identity: The running system.
        data_dir: The data folder.
        callback_url: The callback route's base URL (None without ``userpool``).
        identity_socket: The local identity server's socket (None when off).
        bridge_socket: The gateway bridge's socket.
        control_socket: The control socket.
        ready_seconds: Seconds from the start of :func:`run_server` to accepting.
        stop: Starts the graceful stop (like SIGTERM).
    """

    identity: Identity
    data_dir: Path
    callback_url: str | None
    identity_socket: Path | None
    bridge_socket: Path
    control_socket: Path
    ready_seconds: float
    stop: Callable[[], None] = field(repr=False)

    def lines(self) -> list[str]:
        """What listens where, for the startup banner."""
        plugin = self.identity.plugin
        settings = plugin.local_server_settings
        allow = ", ".join(("curl", *settings.allowlist))
        mode = "fail-open" if settings.fail_open else "fail-closed"
        rows = [
            ("data", f"{self.data_dir} (sessions.json, AES-256-GCM)"),
            ("callback", self.callback_url or "(no userpool: login is off)"),
            (
                "local",
                f"{self.identity_socket} (allow {allow}; {mode})"
                if self.identity_socket is not None
                else "(localServer is off)",
            ),
            ("bridge", f"{self.bridge_socket} (owner only)"),
            ("control", f"{self.control_socket} (owner only: agent-identity ctl status)"),
        ]
        return [f"  {name:<9}{value}" for name, value in rows]


def _local_gate(plugin: PluginConfig) -> PeerGate:
    settings = plugin.local_server_settings
    return PeerGate(settings.allowlist, fail_open=settings.fail_open)


def _changed_sections(old: PluginConfig, new: PluginConfig) -> list[str]:
    names = ("identity", "userpool", "authz", "data_dir", "local_server")
    changed = [name for name in names if getattr(old, name) != getattr(new, name)]
    return ["dataDir" if name == "data_dir" else name for name in changed]


def _reloader(
    path: Path, current: list[PluginConfig], gate: SwappableGate
) -> Callable[[LoadedConfig], Awaitable[ReloadResult]]:
    async def apply(loaded: LoadedConfig) -> ReloadResult:
        await trio.lowlevel.checkpoint()
        old, new = current[0], loaded.plugin
        gate.gate = _local_gate(new)
        current[0] = new
        restart = _changed_sections(old, new)
        message = f"reloaded {path}: local server allowlist and fail-open mode applied"
        if restart:
            message += "; restart to apply changes in " + ", ".join(restart)
        logger.info("%s", message)
        return ReloadResult(ok=True, message=message)

    return apply


async def _signals(stop: trio.Event, cancel: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as received:
        async for signum in received:
            if stop.is_set():
                logger.warning("second signal (%s): cancelling", signal.Signals(signum).name)
                cancel.cancel()
                return
            logger.info("%s: stopping gracefully", signal.Signals(signum).name)
            stop.set()


async def run_server(
    loaded: LoadedConfig,
    *,
    environ: Mapping[str, str] | None = None,
    handle_signals: bool = True,
    shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE,
    task_status: trio.TaskStatus[ServerInfo] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the standalone server until it is told to stop (see the module docstring).

    Args:
        loaded: The validated configuration (its ``source`` is re-read by ``reload``).
        environ: The environment (``os.environ`` when None).
        handle_signals: Stop on SIGINT/SIGTERM (only in the main thread).
        shutdown_grace: Seconds the actors may take to stop.
        task_status: Receives the :class:`ServerInfo` once every socket accepts.

    Raises:
        SocketInUseError: Another server runs on the same data folder.
        OSError: The callback address cannot be bound.
        ChildStartFailed: An actor failed to start (e.g. an undecryptable store).
    """
    started = time.perf_counter()
    plugin = loaded.plugin
    data_dir = plugin.data_path()
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    stop = trio.Event()
    env = dict(os.environ) if environ is None else environ
    async with open_identity(loaded, environ=env, shutdown_grace=shutdown_grace) as ident:
        with trio.CancelScope() as everything, ExitStack() as sockets:
            async with trio.open_nursery() as nursery:
                if handle_signals:
                    nursery.start_soon(_signals, stop, everything)
                callback_url = None
                userpool = plugin.userpool
                if ident.asgi_app is not None and userpool is not None and userpool.callback_url:
                    parts = urlsplit(str(userpool.callback_url))
                    host = parts.hostname or "127.0.0.1"
                    port = parts.port or (443 if parts.scheme == "https" else 80)
                    base: str = await nursery.start(serve_callback_app, ident.asgi_app, host, port)
                    callback_url = f"{base}{parts.path}"
                identity_socket = None
                gate = SwappableGate(_local_gate(plugin))
                if plugin.local_server_settings.enabled:
                    identity_socket = data_dir / IDENTITY_SOCKET
                    listener = sockets.enter_context(open_unix_listener(identity_socket))
                    app = LocalServerApp(ident, RequestMetrics())
                    await nursery.start(partial(serve_uds_http, listener, app, gate=gate))
                bridge_socket = data_dir / BRIDGE_SOCKET
                bridge = sockets.enter_context(open_unix_listener(bridge_socket))
                # Owner only: any executable of the socket owner (or root), nobody else.
                owner_gate = PeerGate(("*",), fail_open=False)
                await nursery.start(
                    partial(serve_uds_http, bridge, BridgeApp(ident), gate=owner_gate)
                )
                control_socket = data_dir / CONTROL_SOCKET
                control = sockets.enter_context(open_unix_listener(control_socket))
                current = [plugin]
                reload = None
                if loaded.source is not None:
                    apply = _reloader(loaded.source, current, gate)
                    reload = config_file_reloader(loaded.source, apply)
                service = ControlService(ident, reload=reload, shutdown=stop.set)
                await nursery.start(serve_control, control, service.handle)
                info = ServerInfo(
                    identity=ident,
                    data_dir=data_dir,
                    callback_url=callback_url,
                    identity_socket=identity_socket,
                    bridge_socket=bridge_socket,
                    control_socket=control_socket,
                    ready_seconds=time.perf_counter() - started,
                    stop=stop.set,
                )
                logger.info("ready in %.3f s", info.ready_seconds)
                task_status.started(info)
                await stop.wait()
                nursery.cancel_scope.cancel()
        logger.info("listeners closed; stopping the actors")
