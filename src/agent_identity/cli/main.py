"""Entry point of the ``agent-identity`` command (replaced by the CLI skeleton)."""

from __future__ import annotations

import sys

from agent_identity import __version__


def main(argv: list[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` when None.

    Returns:
        The process exit code.
    """
    args = sys.argv[1:] if argv is None else argv
    if args == ["--version"]:
        print(f"agent-identity {__version__}")  # noqa: T201
        return 0
    return 2
