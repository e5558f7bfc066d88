"""Rules that look at one command at a time: deletes, permissions, code a shell runs.

Each checker takes a normalised :class:`~.risk_shell.Command` and a
:class:`~.risk_vocab.CommandContext` and yields the ids of the rules it matched (see
:mod:`.risk_table` for what each id means); system administration, network and package checkers
live in :mod:`.risk_system`. :func:`check_command` dispatches by command name.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from typing import Final

from agent_identity.authz.risk_paths import classify_path
from agent_identity.authz.risk_shell import Command, command_from_words
from agent_identity.authz.risk_system import SYSTEM_CHECKERS, packages
from agent_identity.authz.risk_vocab import (
    INTERPRETERS,
    SHELLS,
    Checker,
    CommandContext,
    is_critical_target,
    is_disk_device,
    parse_options,
)

__all__ = ["CHECKERS", "check_command"]

_VERSION_RE: Final = re.compile(r"^\d+(?:\.\d+)*$")
_STRING_LITERAL_RE: Final = re.compile(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"")
_NUMERIC_MODE_RE: Final = re.compile(r"^[0-7]{3,4}$")
_SYMBOLIC_MODE_RE: Final = re.compile(r"^[ugoa]*[-+=][rwxXstugo]*(?:,[ugoa]*[-+=][rwxXstugo]*)*$")
_FIND_TESTS: Final = frozenset(
    {"-name", "-iname", "-path", "-ipath", "-regex", "-iregex", "-type", "-mtime", "-mmin"}
    | {"-atime", "-amin", "-ctime", "-cmin", "-newer", "-size", "-empty", "-user", "-group"}
)


def _rm(command: Command, _ctx: CommandContext) -> Iterator[str]:
    options = parse_options(command.args)
    recursive = options.has("rR", "recursive")
    if "no-preserve-root" in options.long:
        yield "rm-critical"
    if recursive and any(is_critical_target(t) for t in options.positional):
        yield "rm-critical"
    yield "rm-recursive" if recursive else "rm-file"


def _delete_files(command: Command, _ctx: CommandContext) -> Iterator[str]:
    if command.name == "shred" and any(is_disk_device(a) for a in command.args):
        yield "disk-overwrite"
    yield "rm-file"


def _find(command: Command, ctx: CommandContext) -> Iterator[str]:
    args = list(command.args)
    roots = args[: next((i for i, a in enumerate(args) if a[:1] in "-(!"), len(args))]
    deletes = "-delete" in args
    for flag in ("-exec", "-execdir", "-ok", "-okdir"):
        if flag in args:
            words = args[args.index(flag) + 1 :]
            inner = command_from_words(words)
            if inner is not None:
                deletes = deletes or inner.name in {"rm", "shred", "unlink"}
                yield from ctx.nested(shlex.join(words))
    if deletes:
        # ``find . -name '*.pyc' -delete`` is selective housekeeping in the working directory;
        # an unfiltered ``find . -delete`` or any delete under /, ~ or a system folder is not.
        filtered = any(a in _FIND_TESTS for a in args)
        critical = any(
            is_critical_target(root) and not (filtered and root in {".", "./", ".."})
            for root in roots or ["."]
        )
        yield "rm-critical" if critical else "rm-recursive"


def _mode_flags(mode: str) -> tuple[bool, bool, bool]:
    """``(setuid/setgid, world-writable, restrictive)`` for a chmod mode."""
    if _NUMERIC_MODE_RE.match(mode):
        digits = mode.zfill(4)
        special = digits[0] in "234567"  # setuid (4) or setgid (2); 1 is the sticky bit
        return special, digits[3] in "2367", digits[2:] == "00"
    if _SYMBOLIC_MODE_RE.match(mode):
        clauses = mode.split(",")
        special = any("s" in c and re.search(r"[+=]", c) for c in clauses)
        world = any(re.match(r"^(?:[ugo]*[oa][ugo]*|)[+=][^,]*w", c) for c in clauses)
        restrictive = all(re.match(r"^(?:[ugoa]*-|u[+=])", c) for c in clauses)
        return special, world, restrictive
    return False, False, False


def _permissions(command: Command, _ctx: CommandContext) -> Iterator[str]:
    options = parse_options(command.args)
    targets = list(options.positional)
    special = world = restrictive = False
    if command.name == "chmod" and targets:
        special, world, restrictive = _mode_flags(targets.pop(0))
    elif command.name in {"chown", "chgrp"} and targets:
        targets.pop(0)
        restrictive = True  # changing the owner grants nobody new access
    critical = any(is_critical_target(t) for t in targets)
    if special or (critical and (world or options.has("R", "recursive"))):
        yield "permission-critical"
    for target in targets:
        kind = classify_path(target)
        # ``chmod 600 ~/.ssh/id_rsa`` tightens a key; only loosening a home secret is high.
        home = not target.startswith("/") or target.startswith(("~", "$HOME", "${HOME}"))
        if kind is not None and not (restrictive and home):
            yield "sensitive-path-write"
    yield "chmod"


def _shell(command: Command, ctx: CommandContext) -> Iterator[str]:
    args = list(command.args)
    if "-c" in args and args.index("-c") + 1 < len(args):
        yield from ctx.code_rules(args[args.index("-c") + 1])
    positional = parse_options(args).positional
    if positional and "-c" not in args:
        yield from ctx.code_rules(positional[0])  # ``bash <(curl …)``: the script file


def _interpreter(command: Command, ctx: CommandContext) -> Iterator[str]:
    args = list(command.args)
    for flag in ("-c", "-e", "-r", "-p", "--eval"):
        if flag in args and args.index(flag) + 1 < len(args):
            code = args[args.index(flag) + 1]
            yield from ctx.code_rules(code)
            # Strings inside inline code are often commands (``os.system('rm -rf /')``).
            for single, double in _STRING_LITERAL_RE.findall(code):
                yield from ctx.nested(single or double)
    positional = parse_options(args).positional
    if positional:
        yield from ctx.code_rules(positional[0])


def _eval(command: Command, ctx: CommandContext) -> Iterator[str]:
    code = " ".join(command.args)
    yield from ctx.code_rules(code)
    if command.name == "eval" and "$" in code:
        yield "shell-eval"


def _su(command: Command, ctx: CommandContext) -> Iterator[str]:
    yield "privilege-escalation"
    args = list(command.args)
    for flag in ("-c", "--command"):
        if flag in args and args.index(flag) + 1 < len(args):
            yield from ctx.code_rules(args[args.index(flag) + 1])


def _dd(command: Command, _ctx: CommandContext) -> Iterator[str]:
    if any(a.startswith("of=") and is_disk_device(a[3:]) for a in command.args):
        yield "disk-overwrite"


def _python_module(command: Command, ctx: CommandContext) -> Iterator[str]:
    args = list(command.args)
    if "-m" in args and args.index("-m") + 1 < len(args):
        module = args[args.index("-m") + 1]
        if module in {"pip", "pip3", "pipx", "ensurepip"}:
            yield from packages(Command(module, tuple(args[args.index("-m") + 2 :])), ctx)
            return
    yield from _interpreter(command, ctx)


CHECKERS: Final[dict[str, Checker]] = {
    **SYSTEM_CHECKERS,
    "rm": _rm,
    "rmdir": _delete_files,
    "unlink": _delete_files,
    "shred": _delete_files,
    "find": _find,
    "chmod": _permissions,
    "chown": _permissions,
    "chgrp": _permissions,
    "eval": _eval,
    "source": _eval,
    ".": _eval,
    "su": _su,
    "dd": _dd,
    **dict.fromkeys(SHELLS, _shell),
    **dict.fromkeys(INTERPRETERS, _interpreter),
    **dict.fromkeys(("python", "python3"), _python_module),
}
"""Checkers by command name (``mkfs.ext4`` is looked up as ``mkfs``)."""


def check_command(command: Command, ctx: CommandContext) -> Iterator[str]:
    """The rule ids the command's own checker matches (none for unknown commands)."""
    name = command.name
    checker = CHECKERS.get(name)
    prefix, _, suffix = name.partition(".")
    # ``mkfs.ext4`` and versioned names (``python3.11``, ``pip3.12``), not ``get.sh``.
    if checker is None and (prefix == "mkfs" or _VERSION_RE.match(suffix)):
        checker = CHECKERS.get(prefix)
    if checker is not None:
        yield from checker(command, ctx)
