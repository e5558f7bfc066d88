"""What every subcommand shares: exit codes, the I/O bundle, and how a command registers.

A command module exposes ``register(subparsers)``; it adds its parser(s) with
:func:`add_command`, which binds a handler ``(args, io) -> exit code``. ``main`` lists the
command modules in :data:`agent_identity.cli.main.COMMANDS` (and imports one only when its
command may run), so a new command is one module plus one line there.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO, TypeAlias

if TYPE_CHECKING:
    from agent_identity.config import ConfigError

__all__ = [
    "EXIT_CONFIG",
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_USAGE",
    "Handler",
    "Io",
    "Registrar",
    "Subparsers",
    "add_command",
    "report_config_error",
]

EXIT_OK = 0
EXIT_FAILURE = 1
"""Something went wrong at run time."""
EXIT_USAGE = 2
"""Bad command line (argparse's own code)."""
EXIT_CONFIG = 2
"""The configuration is missing, unreadable or invalid."""


@dataclass(frozen=True, slots=True)
class Io:
    """Where a command writes, and the environment it may read.

    Attributes:
        out: Standard output (results).
        err: Standard error (diagnostics).
        environ: The process environment (read here, at the edge, and passed down).
    """

    out: TextIO
    err: TextIO
    environ: Mapping[str, str]


Handler: TypeAlias = Callable[[argparse.Namespace, Io], int]
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Registrar: TypeAlias = Callable[[Subparsers], None]


def add_command(
    subparsers: Subparsers,
    name: str,
    *,
    help_text: str,
    handler: Handler,
    description: str | None = None,
) -> argparse.ArgumentParser:
    """Add a (sub)command whose handler ``main`` will run.

    Args:
        subparsers: The group to add to (from ``add_subparsers``).
        name: The command word.
        help_text: One line for the parent's help listing.
        handler: Runs the command; returns the exit code.
        description: Longer text for the command's own ``--help`` (defaults to ``help_text``).

    Returns:
        The command's parser, to add arguments to.
    """
    parser = subparsers.add_parser(name, help=help_text, description=description or help_text)
    parser.set_defaults(handler=handler)
    return parser


def report_config_error(exc: ConfigError, where: object, err: TextIO) -> int:
    """Print every problem of an invalid config; the exit code to return.

    Args:
        exc: The config's problems.
        where: What each line names: the file's path, or the error's source.
        err: Where to print.
    """
    err.writelines(f"error: {where}: {problem}\n" for problem in exc.problems)
    return EXIT_CONFIG
