"""``agent-identity serve``: run the whole system standalone (:mod:`agent_identity.system.serve`).

Exit codes: 0 after a graceful stop (SIGINT/SIGTERM or ``ctl shutdown``), 1 when it cannot
start (another server runs on the same data folder, a port is taken, the store cannot be
decrypted) or fails (an actor keeps crashing and the supervision tree gives up: the reason is
printed), 2 for a bad command line or an invalid config (every problem printed).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TextIO

import trio

from agent_identity import __version__
from agent_identity.cli.app import (
    EXIT_FAILURE,
    EXIT_OK,
    Io,
    Subparsers,
    add_command,
    report_config_error,
)
from agent_identity.cli.config_command import default_config_path
from agent_identity.cli.logs import LogFormat, configure_logging
from agent_identity.config import ConfigError, LoadedConfig, load_config, secret_values
from agent_identity.kernel import ChildStartFailed, SupervisorGaveUp, lone_exception
from agent_identity.system.serve import ServerInfo, run_server
from agent_identity.transports.uds_socket import UnixListenerError

__all__ = ["add_server_options", "register", "serve_loaded"]

logger = logging.getLogger("agent_identity.serve")


def add_server_options(parser: argparse.ArgumentParser) -> None:
    """``--log-level`` and ``--log-format`` (shared with ``dev``)."""
    parser.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="least severe log level shown (default: info)",
    )
    parser.add_argument(
        "--log-format",
        default="text",
        choices=("text", "json"),
        help="text lines for people (default) or JSON lines for machines",
    )


def register(subparsers: Subparsers) -> None:
    """Add ``serve``."""
    parser = add_command(
        subparsers,
        "serve",
        help_text="run the identity server (callback, local socket, bridge, control)",
        handler=run_serve,
    )
    parser.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        type=Path,
        help="openclaw.json or a plugin config (default: $OPENCLAW_CONFIG_PATH, "
        "$OPENCLAW_STATE_DIR/openclaw.json, ~/.openclaw/openclaw.json)",
    )
    add_server_options(parser)


def run_serve(args: argparse.Namespace, io: Io) -> int:
    """Load the config and serve until stopped."""
    path: Path = args.config or default_config_path(io.environ)
    try:
        loaded = load_config(path)
    except ConfigError as exc:
        return report_config_error(exc, path, io.err)
    return serve_loaded(loaded, args, io)


def _banner(info: ServerInfo, out: TextIO) -> None:
    out.write(f"agent-identity {__version__} ready in {info.ready_seconds:.2f} s\n")
    out.writelines(line + "\n" for line in info.lines())
    out.flush()


def _run_unwrapped(main: Callable[[], Awaitable[None]]) -> None:
    # Nurseries wrap a start failure (a socket in use, a port taken) in nested one-member
    # groups; it is raised as itself so that serve_loaded can map it to an exit code.
    try:
        trio.run(main)
    except BaseExceptionGroup as group:
        lone = lone_exception(group)
        if lone is None:
            raise
        raise lone from group


def serve_loaded(
    loaded: LoadedConfig,
    args: argparse.Namespace,
    io: Io,
    *,
    on_ready: Callable[[ServerInfo], Awaitable[None]] | None = None,
) -> int:
    """Configure logging, run the server, and map failures to exit codes.

    Args:
        loaded: The validated config.
        args: ``--log-level`` and ``--log-format``.
        io: Where the banner and errors go.
        on_ready: Awaited once the server accepts (``dev`` prints its guide there).
    """
    fmt: LogFormat = args.log_format
    configure_logging(
        level=args.log_level,
        fmt=fmt,
        stream=io.err,
        secrets=secret_values(loaded.plugin) + secret_values(loaded.feishu),
    )

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            info: ServerInfo = await nursery.start(
                lambda task_status: run_server(loaded, environ=io.environ, task_status=task_status)
            )
            _banner(info, io.out)
            if on_ready is not None:
                await on_ready(info)

    try:
        _run_unwrapped(main)
    except UnixListenerError as exc:
        io.err.write(f"error: {exc}\n")
        return EXIT_FAILURE
    except ChildStartFailed as exc:
        io.err.write(f"error: the identity system could not start: {exc}\n")
        return EXIT_FAILURE
    except SupervisorGaveUp as exc:
        # Escalation past the root: the supervisors already logged the crash that tipped it.
        io.err.write(f"error: the identity system stopped: {exc}\n")
        return EXIT_FAILURE
    except OSError as exc:
        io.err.write(f"error: {exc.strerror or exc}\n")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_OK
    logger.info("stopped")
    sys.stderr.flush()
    return EXIT_OK
