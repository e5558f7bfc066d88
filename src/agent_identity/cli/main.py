"""Entry point of the ``agent-identity`` command."""

from __future__ import annotations

import argparse
import os
import sys

from agent_identity import __version__
from agent_identity.cli import config_command, ctl, dev, serve, token
from agent_identity.cli.app import EXIT_OK, EXIT_USAGE, Handler, Io, Registrar

__all__ = ["COMMANDS", "PROG", "build_parser", "main"]

PROG = "agent-identity"

COMMANDS: tuple[Registrar, ...] = (
    serve.register,
    dev.register,
    config_command.register,
    ctl.register,
    token.register,
)
"""Registrars of the top-level commands, in help order."""


def build_parser(commands: tuple[Registrar, ...] = COMMANDS) -> argparse.ArgumentParser:
    """Build the argument parser with every command registered.

    Args:
        commands: The registrars to call.

    Returns:
        The top-level parser.
    """
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="User identity for AI-agent gateways (OpenClaw agent-identity plugin).",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for register in commands:
        register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` when None.

    Returns:
        The process exit code: 0 success, 1 run-time failure, 2 usage or configuration error.
    """
    io = Io(out=sys.stdout, err=sys.stderr, environ=os.environ)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return _exit_code(exc.code)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_usage(io.err)
        io.err.write(f"{PROG}: error: a command is required (see {PROG} --help)\n")
        return EXIT_USAGE
    return handler(args, io)


def _exit_code(code: str | int | None) -> int:
    if code is None:
        return EXIT_OK
    return code if isinstance(code, int) else EXIT_USAGE
