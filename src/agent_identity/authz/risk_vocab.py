"""Shared vocabulary of the command rules: kinds of commands, options, critical targets.

The sets are command *names* as :mod:`.risk_shell` normalises them (lower-cased basenames).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

from agent_identity.authz.risk_paths import classify_path, normalize_path
from agent_identity.authz.risk_shell import Command, placeholder_index

__all__ = [
    "DECODERS",
    "FETCHERS",
    "INTERPRETERS",
    "NETWORK_SINKS",
    "PRIVILEGE_WRAPPERS",
    "READERS",
    "SHELLS",
    "Checker",
    "CommandContext",
    "Options",
    "credential_args",
    "is_critical_target",
    "is_decoder",
    "is_disk_device",
    "is_secret_source",
    "parse_options",
    "reads_code_from_stdin",
    "write_targets",
]

SHELLS: Final = frozenset(
    {"sh", "bash", "zsh", "ksh", "dash", "ash", "fish", "csh", "tcsh", "mksh"}
)
INTERPRETERS: Final = frozenset(
    {"python", "python2", "python3", "perl", "ruby", "node", "nodejs", "php", "lua", "deno", "bun"}
)
FETCHERS: Final = frozenset(
    {"curl", "wget", "fetch", "http", "https", "xh", "aria2c", "lwp-request", "get", "iwr"}
)
NETWORK_SINKS: Final = FETCHERS | frozenset(
    {"nc", "ncat", "netcat", "socat", "telnet", "ssh", "scp", "sftp", "ftp", "rsync", "mail"}
    | {"mailx", "sendmail", "mutt", "openssl", "aws", "gsutil", "rclone", "s3cmd"}
)
# Commands that show or copy a file's contents.
READERS: Final = frozenset(
    {"cat", "tac", "less", "more", "head", "tail", "nl", "bat", "base64", "base32", "xxd"}
    | {"od", "hexdump", "strings", "grep", "egrep", "fgrep", "rg", "awk", "sed", "cut", "sort"}
    | {"uniq", "jq", "yq", "diff", "cp", "tar", "zip", "7z", "gzip", "vi", "vim", "nvim"}
    | {"nano", "emacs", "code", "dd", "openssl"}
)
PRIVILEGE_WRAPPERS: Final = frozenset({"sudo", "doas", "pkexec", "run0"})
DECODERS: Final = frozenset({"base64", "base32", "xxd", "openssl", "uudecode", "basenc"})
# Options whose value is a credential *used* for authentication, not sent anywhere.
_AUTH_FILE_OPTIONS: Final = frozenset(
    {"-i", "--key", "--cert", "-E", "--cacert", "--capath", "--netrc-file", "-K", "--config"}
)
_CRITICAL_EXACT: Final = frozenset({"/", "~", ".", "..", "*", ".*", "~/.*"})
_CRITICAL_DIRS: Final = frozenset(
    {"/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/opt", "/proc"}
    | {"/root", "/sbin", "/srv", "/sys", "/usr", "/usr/bin", "/usr/lib", "/usr/local"}
    | {"/usr/sbin", "/var", "/var/lib", "/var/log", "/system", "/users", "/applications"}
    | {"/library", "/private", "~/.ssh", "~/.aws", "~/.config", "~/documents", "~/desktop"}
)
# A leading ``$VAR``/``${VAR}`` other than HOME may expand to nothing (``rm -rf "$DIR/"``).
_UNKNOWN_VAR_RE: Final = re.compile(r"^\$\{?(?!home\b)[a-z_][a-z0-9_]*\}?", re.IGNORECASE)
_DISK_RE: Final = re.compile(
    r"^/dev/(?:sd[a-z]|hd[a-z]|vd[a-z]|xvd[a-z]|nvme\d|mmcblk\d|r?disk\d|md\d|dm-\d|loop\d"
    r"|mapper/|sr\d|mem$|kmem$|port$)"
)


@dataclass(frozen=True, slots=True)
class Options:
    """A command's arguments split the getopt way.

    Attributes:
        short: Letters of short options (``-rf`` gives ``r`` and ``f``; ``-9`` gives ``9``).
        long: Long option names without dashes or ``=value``.
        positional: Everything else, in order (all words after ``--``).
    """

    short: frozenset[str]
    long: frozenset[str]
    positional: tuple[str, ...]

    def has(self, short: str = "", *long: str) -> bool:
        """Whether any of the short letters or long names is present."""
        return any(letter in self.short for letter in short) or any(
            name in self.long for name in long
        )


@dataclass(frozen=True, slots=True)
class CommandContext:
    """What a checker knows beyond its command.

    Attributes:
        fetch_subs: Indexes of substitutions whose commands fetch from the network.
        decode_subs: Indexes of substitutions that decode data (``base64 -d`` …).
        secret_subs: Indexes of substitutions that print secrets.
        nested: Analyses a piece of text as a script of its own (depth-limited).
    """

    fetch_subs: frozenset[int]
    decode_subs: frozenset[int]
    secret_subs: frozenset[int]
    nested: Callable[[str], set[str]]

    def code_rules(self, code: str) -> set[str]:
        """Rules for text a shell will run: its own analysis plus what its substitutions are."""
        found = self.nested(code)
        refs = placeholder_index(code)
        if any(ref in self.fetch_subs for ref in refs):
            found.add("remote-code-eval")
        if any(ref in self.decode_subs for ref in refs):
            found.add("decode-to-shell")
        return found


Checker = Callable[[Command, CommandContext], Iterator[str]]
"""A rule checker: the rule ids one command matches."""


def parse_options(args: tuple[str, ...] | list[str]) -> Options:
    """Split arguments into short letters, long names and positionals (no value options)."""
    short: set[str] = set()
    long: set[str] = set()
    positional: list[str] = []
    rest = False
    for arg in args:
        if rest or arg == "-" or not arg.startswith("-"):
            positional.append(arg)
        elif arg == "--":
            rest = True
        elif arg.startswith("--"):
            long.add(arg[2:].split("=", 1)[0].lower())
        else:
            short.update(arg[1:])
    return Options(frozenset(short), frozenset(long), tuple(positional))


def is_disk_device(path: str) -> bool:
    """Whether a path is a raw disk (or memory) device, where a write destroys data."""
    return _DISK_RE.match(normalize_path(path)) is not None


def is_critical_target(target: str) -> bool:
    """Whether deleting/chmod-ing ``target`` recursively would wreck a system or a home.

    ``/``, ``~``, ``.``, ``..``, ``*``, top-level system folders and key home folders count,
    also with a trailing ``/*``, behind a possibly empty variable (``$DIR/``), or as a
    glob in the first component of an absolute path (``/e*``).
    """
    text = target.strip().strip("'\"")
    text = _UNKNOWN_VAR_RE.sub("", text)
    if not text:
        return False
    normal = normalize_path(text)
    while normal.endswith(("/*", "/.*")) and normal not in _CRITICAL_EXACT:
        normal = normal.rsplit("/", 1)[0] or "/"
    if normal in _CRITICAL_EXACT or normal in _CRITICAL_DIRS:
        return True
    first = normal[1:].split("/", 1)[0] if normal.startswith("/") else ""
    return any(char in first for char in "*?[")


def _path_candidates(arg: str) -> list[str]:
    """The path-like parts of one argument: itself, after ``=``, after a leading ``@``."""
    found = [arg.removeprefix("@")]
    if "=" in arg:
        found.append(arg.split("=", 1)[1].removeprefix("@"))
    return found


def credential_args(command: Command) -> list[str]:
    """Arguments naming a credential file (authentication options like ``ssh -i`` excluded)."""
    found: list[str] = []
    skip_next = False
    for arg in command.args:
        if skip_next:
            skip_next = False
            continue
        if arg in _AUTH_FILE_OPTIONS:
            skip_next = True
            continue
        if arg.split("=", 1)[0] in _AUTH_FILE_OPTIONS:
            continue
        if any(classify_path(part) == "credential" for part in _path_candidates(arg)):
            found.append(arg)
    return found


def is_decoder(command: Command) -> bool:
    """Whether the command decodes data (``base64 -d``, ``xxd -r``, ``openssl enc -d`` …)."""
    options = parse_options(command.args)
    if command.name in {"base64", "base32", "basenc"}:
        return options.has("dD", "decode")
    if command.name == "xxd":
        return options.has("r", "revert")
    if command.name == "openssl":
        return "-d" in command.args  # openssl's options are single-dash words
    return command.name == "uudecode"


def is_secret_source(command: Command) -> bool:
    """Whether the command prints secrets: the environment, history or a credential file."""
    if command.name == "" and "env" in command.wrappers:
        return True  # a bare ``env`` prints the environment
    if command.name in {"printenv", "history"}:
        return True
    if command.name == "gpg" and any(arg.startswith("--export-secret") for arg in command.args):
        return True
    if command.name == "security" and any(
        arg in {"dump-keychain", "find-generic-password", "find-internet-password"}
        for arg in command.args
    ):
        return True
    if any(op == "<" and classify_path(target) == "credential" for op, target in command.redirects):
        return True
    return command.name in READERS and bool(credential_args(command))


def reads_code_from_stdin(command: Command) -> bool:
    """Whether a shell or interpreter takes its program from standard input."""
    if command.name in {"source", "."}:
        return not command.args or command.args[0] in {"/dev/stdin", "-"}
    if command.name in SHELLS:
        args: list[str] = []
        skip = False
        for arg in command.args:
            # ``-o pipefail`` / ``+o posix``: the value is not a script file.
            if not skip and arg not in {"-o", "-O", "+o", "+O"} and not arg.startswith("+"):
                args.append(arg)
            skip = arg in {"-o", "-O", "+o", "+O"} and not skip
        options = parse_options(args)
        if options.has("s"):
            return True
        if options.has("c"):
            return False
    elif command.name in INTERPRETERS:
        options = parse_options(command.args)
        if options.has("cerpm", "eval", "print"):
            return False
    else:
        return False
    return not options.positional or options.positional[0] in {"-", "/dev/stdin", ""}


_LAST_ARG_WRITERS: Final = frozenset({"cp", "install", "rsync", "scp", "ln"})
_ALL_ARG_WRITERS: Final = frozenset(
    {"rm", "rmdir", "unlink", "shred", "truncate", "touch", "mkdir", "mv", "tee", "chattr"}
    | {"setfacl", "vi", "vim", "nvim", "nano", "emacs", "ed"}
)
_OUTPUT_OPTIONS: Final = frozenset(
    {"-o", "--output", "-O", "--output-document", "-P", "--directory-prefix", "-C", "--directory"}
)


def write_targets(command: Command) -> list[str]:
    """Paths the command writes, deletes or replaces (redirections included)."""
    targets = [target for op, target in command.redirects if op not in {"<", "<<", "<<<", "<&"}]
    options = parse_options(command.args)
    name = command.name
    if name in _ALL_ARG_WRITERS:
        targets.extend(options.positional)
    elif name in _LAST_ARG_WRITERS and options.positional:
        targets.append(options.positional[-1])
    elif name in {"sed", "perl", "ruby"} and any(a.startswith("-i") for a in command.args):
        targets.extend(options.positional)
    elif name == "dd":
        targets.extend(a[3:] for a in command.args if a.startswith("of="))
    extracting = name == "unzip" or (
        name == "tar" and (options.has("x", "extract", "get") or "x" in (command.args or ("",))[0])
    )
    if name in FETCHERS or extracting:
        args = list(command.args)
        for index, arg in enumerate(args):
            key, _, value = arg.partition("=")
            if key in _OUTPUT_OPTIONS or (extracting and key == "-d"):
                if value:
                    targets.append(value)
                elif index + 1 < len(args):
                    targets.append(args[index + 1])
    return targets
