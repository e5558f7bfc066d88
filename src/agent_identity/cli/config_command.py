"""``agent-identity config check|show``: validate or display a configuration file.

``check`` prints a one-line summary and exits 0, or prints every problem (one per line, on
stderr) and exits 2. ``show`` prints the effective configuration as JSON with defaults filled in
and every secret masked (through :func:`agent_identity.config.redact`, the only display path).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path

from agent_identity.cli.app import (
    EXIT_OK,
    Io,
    Subparsers,
    add_command,
    report_config_error,
)
from agent_identity.config import ConfigError, LoadedConfig, load_config, redact

__all__ = ["default_config_path", "register", "run_check", "run_show", "summarize"]

CONFIG_PATH_VAR = "OPENCLAW_CONFIG_PATH"
STATE_DIR_VAR = "OPENCLAW_STATE_DIR"
DEFAULT_CONFIG_FILE = "~/.openclaw/openclaw.json"

_CONFIG_HELP = (
    "an openclaw.json or a standalone plugin config file (JSON or JSON5); default: "
    f"${CONFIG_PATH_VAR}, else ${STATE_DIR_VAR}/openclaw.json, else {DEFAULT_CONFIG_FILE}"
)


def register(subparsers: Subparsers) -> None:
    """Add ``config check`` and ``config show``.

    Args:
        subparsers: The top-level command group.
    """
    parser = subparsers.add_parser(
        "config",
        help="check or show the plugin configuration",
        description="Check or show the agent-identity plugin configuration.",
    )
    inner = parser.add_subparsers(
        title="subcommands", metavar="SUBCOMMAND", dest="config_command", required=True
    )
    check = add_command(
        inner,
        "check",
        help_text="validate a config file and print a one-line summary",
        description="Validate a config file. Exit 0 with a summary, or 2 with every problem.",
        handler=run_check,
    )
    show = add_command(
        inner,
        "show",
        help_text="print the effective config as JSON, secrets masked",
        handler=run_show,
    )
    for command in (check, show):
        command.add_argument("--config", "-c", metavar="FILE", type=Path, help=_CONFIG_HELP)


def default_config_path(environ: Mapping[str, str]) -> Path:
    """Where OpenClaw keeps its config when ``--config`` is not given.

    Args:
        environ: The process environment.

    Returns:
        ``$OPENCLAW_CONFIG_PATH``, else ``$OPENCLAW_STATE_DIR/openclaw.json``, else
        ``~/.openclaw/openclaw.json``.
    """
    if explicit := environ.get(CONFIG_PATH_VAR, "").strip():
        return Path(explicit).expanduser()
    if state_dir := environ.get(STATE_DIR_VAR, "").strip():
        return Path(state_dir).expanduser() / "openclaw.json"
    return Path(DEFAULT_CONFIG_FILE).expanduser()


def summarize(loaded: LoadedConfig) -> str:
    """One line describing what a configuration turns on.

    Args:
        loaded: A validated configuration.

    Returns:
        E.g. ``openclaw.json, userpool explicit, authz: toolCheck, localServer off``.
    """
    plugin = loaded.plugin
    parts: list[str] = [loaded.format]
    userpool = plugin.userpool
    parts.append(f"userpool {userpool.mode}" if userpool else "no userpool (login unavailable)")
    checks = plugin.authz.enabled_checks
    parts.append(f"authz: {'+'.join(checks)}" if checks else "authz: off")
    parts.append("localServer on" if plugin.local_server_settings.enabled else "localServer off")
    if loaded.feishu is not None:
        parts.append("feishu")
    return ", ".join(parts)


def run_check(args: argparse.Namespace, io: Io) -> int:
    """``config check``: validate and summarize.

    Args:
        args: Parsed arguments (``config``).
        io: Output streams and environment.

    Returns:
        0 when valid, 2 otherwise.
    """
    path = _config_path(args, io)
    try:
        loaded = load_config(path)
    except ConfigError as exc:
        return report_config_error(exc, path, io.err)
    io.out.write(f"ok: {path} ({summarize(loaded)})\n")
    return EXIT_OK


def run_show(args: argparse.Namespace, io: Io) -> int:
    """``config show``: print the redacted effective configuration as JSON.

    Args:
        args: Parsed arguments (``config``).
        io: Output streams and environment.

    Returns:
        0 when valid, 2 otherwise.
    """
    path = _config_path(args, io)
    try:
        loaded = load_config(path)
    except ConfigError as exc:
        return report_config_error(exc, path, io.err)
    io.out.write(json.dumps(redact(loaded), indent=2, ensure_ascii=False) + "\n")
    return EXIT_OK


def _config_path(args: argparse.Namespace, io: Io) -> Path:
    given: Path | None = args.config
    return given if given is not None else default_config_path(io.environ)
