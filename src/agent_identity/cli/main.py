"""Entry point of the ``agent-identity`` command."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from agent_identity import __version__
from agent_identity.cli.app import EXIT_OK, EXIT_USAGE, Handler, Io, Registrar

__all__ = ["COMMANDS", "PROG", "build_parser", "main"]

PROG = "agent-identity"

COMMANDS: Final[Mapping[str, str]] = {
    "serve": "agent_identity.cli.serve",
    "dev": "agent_identity.cli.dev",
    "config": "agent_identity.cli.config_command",
    "ctl": "agent_identity.cli.ctl",
    "token": "agent_identity.cli.token",
}
"""The top-level commands, in help order: the command word and the module whose ``register``
adds it.

A module is imported only when its command may run (import time: ``serve`` is timed from
process start to ready, and ``ctl`` need not load the whole system): a command line that
starts with a command registers that one only; any other (``--help``, ``--version``, an
unknown command) registers them all.
"""


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """Build the argument parser with the commands ``argv`` may run registered.

    Args:
        argv: The arguments to be parsed (without the program name): when they start with
            a command, only that one is registered; otherwise (or when None) every command.

    Returns:
        The top-level parser.
    """
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="User identity for AI-agent gateways (OpenClaw agent-identity plugin).",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in _commands_for(argv):
        register: Registrar = importlib.import_module(COMMANDS[name]).register
        register(subparsers)
    return parser


def _commands_for(argv: Sequence[str] | None) -> Iterable[str]:
    # The top-level options (--help, --version) end the run where they stand: only a command
    # named first is sure to be the one that runs.
    if argv and argv[0] in COMMANDS:
        return (argv[0],)
    return COMMANDS


def main(argv: list[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` when None.

    Returns:
        The process exit code: 0 success, 1 run-time failure, 2 usage or configuration error.
    """
    io = Io(out=sys.stdout, err=sys.stderr, environ=os.environ)
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(argv)
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
