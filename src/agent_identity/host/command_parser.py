"""The ``/identity`` (alias ``/id``) command line, parsed into typed commands.

:func:`parse_identity_args` turns the host's ``args`` string (the command word already split
off, host contract 4) into a command dataclass or a :class:`UsageError`, never an exception.

* **Host guards first**: :func:`sanitize_args` re-applies the host's ``sanitizeArgs``.
* **Shell-like tokens** (``shlex``; unbalanced quotes fall back to a whitespace split). Any
  Unicode space separates (CJK input methods type U+3000), curly double quotes count as ``"``
  and a leading en/em dash as ``--`` (phones turn ``--`` into ``—``).
* **Subcommands** are case-insensitive, ``_`` = ``-`` (as the host treats command names). No
  args, ``help``, ``-h``, ``--help`` → :class:`Help`; ``<sub> --help`` → its usage.
* **Options**: ``--name=value`` or ``--name value``, case-insensitive, ``-``/``_`` ignored in
  the name (``--redirectUrl`` = ``--redirect-url``), at most once, anywhere; ``--`` ends them.
  ``--scopes`` splits on commas and spaces.
* ``risk`` takes the rest of the line verbatim; only a rest that is one quoted string is
  unquoted.
"""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from agent_identity.host.contract import (
    COMMAND_ALIAS,
    COMMAND_NAME,
    COMMAND_NAMES,
    CREDENTIAL_FLOWS,
    Approve,
    Config,
    CredentialFlow,
    Fetch,
    GetRole,
    Help,
    IdentityCommand,
    ListCredentials,
    ListRoles,
    ListTips,
    Login,
    Logout,
    Reject,
    Risk,
    RiskPatterns,
    SetBinding,
    Status,
    UnsetBinding,
    Whoami,
    truncate_utf16,
)
from agent_identity.host.tool_specs import ENV_VAR_PATTERN, PROVIDER_NAME_MAX

__all__ = [
    "MAX_ARGS_LENGTH",
    "ParseResult",
    "UsageError",
    "help_text",
    "is_identity_command",
    "parse_identity_args",
    "sanitize_args",
    "split_command_body",
    "subcommand_name",
    "tokenize",
    "usage",
]


_MAX_ID_LENGTH: Final = 256
_SHOWN: Final = 40

#: The host's cap on plugin command arguments, in UTF-16 code units.
MAX_ARGS_LENGTH: Final = 4096

_CONTROL: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_COMMAND_BODY: Final = re.compile(r"/\s*(\S+)(?:\s+(.*))?", re.DOTALL)


def sanitize_args(args: str | None) -> str:
    """The host's ``sanitizeArgs``: cap at 4096 UTF-16 units, then drop control characters.

    Tab and newline are kept; every other C0 control character and DEL is removed.
    """
    return _CONTROL.sub("", truncate_utf16(args, MAX_ARGS_LENGTH)) if args else ""


def split_command_body(text: str) -> tuple[str, str] | None:
    """Split a slash command into its lower-cased name and trimmed args.

    Mirrors the host's ``matchPluginCommand``: ``/Identity  login`` → ``("identity",
    "login")``; ``None`` when the text is not a slash command.
    """
    match = _COMMAND_BODY.fullmatch(text.strip())
    if match is None:
        return None
    return match.group(1).lower(), (match.group(2) or "").strip()


def is_identity_command(text: str) -> bool:
    """Whether a message invokes ``/identity`` or ``/id``.

    ``before_dispatch`` sees every inbound text, commands included, so an auth gate must let
    these through (host contract 2.2).
    """
    split = split_command_body(text)
    return split is not None and split[0].replace("_", "-") in COMMAND_NAMES


@dataclass(frozen=True, slots=True)
class UsageError:
    """Input that is not a valid ``/identity`` command.

    Attributes:
        message: What is wrong, one line.
        usage: The usage line of the subcommand, or the whole help text.
        suggestion: The nearest subcommand, for an unknown one.
    """

    message: str
    usage: str
    suggestion: str | None = None

    def render(self) -> str:
        """The reply text: the message, then the usage."""
        return f"{self.message}\n{self.usage}"


ParseResult = IdentityCommand | UsageError


class _InvalidArgumentError(Exception):
    """Internal: a bad argument; becomes a :class:`UsageError`, never leaves this module."""


def _shown(text: str) -> str:
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def _name(what: str, limit: int) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not 0 < len(value.strip()) <= limit:
            raise _InvalidArgumentError(f"The {what} is empty or too long.")
        return value.strip()

    return check


def _page(value: str) -> int:
    # ASCII digits only (int() also takes "²" and other Unicode digits), and at most nine.
    if re.fullmatch(r"[0-9]{1,9}", value) is None or int(value) < 1:
        raise _InvalidArgumentError(f'The page must be a number from 1, not "{_shown(value)}".')
    return int(value)


def _env_var(value: str) -> str:
    if re.fullmatch(ENV_VAR_PATTERN, value.strip()) is None:
        raise _InvalidArgumentError(f'"{_shown(value)}" is not an env var name (A-Z, 0-9, _).')
    return value.strip()


_FLOW_LIST: Final = ", ".join(CREDENTIAL_FLOWS)


def _flow(value: str) -> CredentialFlow:
    wanted = value.lower().replace("_", "-").replace("api-key", "apikey")
    for flow in CREDENTIAL_FLOWS:
        if flow == wanted:
            return flow
    raise _InvalidArgumentError(f'Unknown flow "{_shown(value)}"; use one of {_FLOW_LIST}.')


def _url(value: str) -> str:
    try:
        parts = urlsplit(value)
    except ValueError:  # e.g. an unbalanced "[" in the host
        parts = urlsplit("")
    if parts.scheme.lower() not in {"http", "https"} or not parts.hostname:
        raise _InvalidArgumentError("--redirectUrl must be an http(s) URL.")
    return value


def _scopes(value: str) -> tuple[str, ...]:
    scopes = tuple(dict.fromkeys(s for s in re.split(r"[,\s]+", value) if s))
    if not scopes:
        raise _InvalidArgumentError("Option --scopes needs a value.")
    return scopes


#: Converters of each field, from the argument text.
_FIELDS: Final[Mapping[str, Callable[[str], object]]] = {
    "page": _page,
    "prefix": lambda value: value.strip() or None,
    "provider": _name("provider name", PROVIDER_NAME_MAX),
    "env_var": _env_var,
    "approval_id": _name("approval id", _MAX_ID_LENGTH),
    "flow": _flow,
    "redirect_url": _url,
    "scopes": _scopes,
}


@dataclass(frozen=True, slots=True)
class _Sub:
    """One subcommand: its class, help line and arguments."""

    make: Callable[..., IdentityCommand]
    synopsis: str
    description: str
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    #: Option key (lower case, no ``-``/``_``) → (field, whether it takes a value).
    options: Mapping[str, tuple[str, bool]] = field(default_factory=dict)


_FETCH_OPTIONS: Final = {
    "flow": ("flow", True),
    "redirecturl": ("redirect_url", True),
    "scopes": ("scopes", True),
    "scope": ("scopes", True),
}
_FETCH_SYNOPSIS: Final = (
    "<provider> [--flow=oauth2-user|oauth2-m2m|apikey] [--redirectUrl=<url>] [--scopes=a,b]"
)
_ROLE_OPTIONS: Final = {"usetip": ("use_tip", False), "showsecrets": ("show_secrets", False)}

#: Every subcommand, in help order.
_SUBS: Final[Mapping[str, _Sub]] = {
    "whoami": _Sub(Whoami, "", "Show who you are signed in as (sub, TIP)."),
    "login": _Sub(Login, "", "Sign in (sends a link to open), or refresh your TIP."),
    "status": _Sub(Status, "", "Show login, TIP, credentials and bindings."),
    "logout": _Sub(Logout, "", "Sign out and clear this session's TIP."),
    "list-tips": _Sub(ListTips, "", "List all valid TIP tokens and their bindings."),
    "config": _Sub(Config, "", "Show the plugin config (secrets hidden)."),
    "list-credentials": _Sub(
        ListCredentials, "[page]", "List providers and your credentials (short: list).",
        optional=("page",),
    ),
    "list-roles": _Sub(ListRoles, "[prefix]", "List STS role providers.", optional=("prefix",)),
    "get-role": _Sub(
        GetRole, "<provider> [--use-tip] [--show-secrets]", "Get temporary STS credentials.",
        ("provider",), options=_ROLE_OPTIONS,
    ),
    "fetch": _Sub(
        Fetch, _FETCH_SYNOPSIS, "Add a credential.", ("provider",), options=_FETCH_OPTIONS
    ),
    "set": _Sub(
        SetBinding, "<provider> <ENV_VAR>", "Bind a credential to an env var for tools.",
        ("provider", "env_var"),
    ),
    "unset": _Sub(UnsetBinding, "<provider>", "Remove an env var binding.", ("provider",)),
    "approve": _Sub(Approve, "<approval-id>", "Approve a pending tool call.", ("approval_id",)),
    "reject": _Sub(Reject, "<approval-id>", "Reject a pending tool call.", ("approval_id",)),
    "risk": _Sub(Risk, "<command>", "Rate the risk of a shell command."),
    "risk-patterns": _Sub(RiskPatterns, "", "List the risk rules."),
}  # fmt: skip
_ALIASES: Final = {"list": "list-credentials", "-h": "help", "--help": "help", "?": "help"}
_HELP: Final = frozenset({"-h", "--help"})


def subcommand_name(parsed: IdentityCommand) -> str:
    """The subcommand word a parsed command came from (``SetBinding`` → ``set``)."""
    for name, sub in _SUBS.items():
        if sub.make is type(parsed):
            return name
    return type(parsed).__name__.lower()


def help_text(command: str = COMMAND_NAME) -> str:
    """The help reply: one line per subcommand, plain text for any chat window."""
    alias = f" (alias /{COMMAND_ALIAS})" if command == COMMAND_NAME else ""
    lines = [f"/{command}{alias} — sign-in, credentials and approvals:"]
    for name, sub in _SUBS.items():
        lines.append(f"/{command} {name} {sub.synopsis}".rstrip() + f" — {sub.description}")
    return "\n".join(lines)


def usage(subcommand: str, command: str = COMMAND_NAME) -> str:
    """``Usage: /identity <subcommand> <synopsis>``; the help text for an unknown one."""
    name = _ALIASES.get(subcommand, subcommand)
    if name not in _SUBS:
        return help_text(command)
    return f"Usage: /{command} {name} {_SUBS[name].synopsis}".rstrip()


_TOKEN_SPACE: Final = re.compile(r"\s")
_CURLY_QUOTES: Final = str.maketrans(dict.fromkeys("“”„", '"'))
_LONG_DASH: Final = re.compile("^[\u2013\u2014]-?")


def tokenize(text: str) -> list[str]:
    """Split into shell-like tokens; never raises (unbalanced quotes → whitespace split)."""
    prepared = _TOKEN_SPACE.sub(" ", text).translate(_CURLY_QUOTES)
    try:
        tokens = shlex.split(prepared)
    except ValueError:  # unbalanced quote, or a backslash at the very end
        tokens = prepared.split()
    return [_LONG_DASH.sub("--", token) for token in tokens]


def _option(token: str, sub: _Sub, rest: Iterator[str], found: dict[str, object]) -> None:
    name, has_value, value = token.partition("=")
    key = name.lstrip("-").lower().replace("-", "").replace("_", "")
    if key not in sub.options:
        raise _InvalidArgumentError(f"Unknown option {_shown(name)}.")
    target, takes_value = sub.options[key]
    if target in found:
        raise _InvalidArgumentError(f"Option {name} is given twice.")
    if not takes_value:
        if has_value:
            raise _InvalidArgumentError(f"Option {name} takes no value.")
        found[target] = True
        return
    if not has_value:
        value = next(rest, "")
        if value.startswith("-"):
            value = ""
    if not value.strip():
        raise _InvalidArgumentError(f"Option {name} needs a value.")
    found[target] = _FIELDS[target](value.strip())


def _arguments(sub: _Sub, tokens: list[str]) -> IdentityCommand:
    positionals: list[str] = []
    found: dict[str, object] = {}
    rest = iter(tokens)
    for token in rest:
        if token == "--":  # noqa: S105 - the end-of-options marker, not a secret
            positionals.extend(rest)
        elif len(token) > 1 and token.startswith("-"):
            _option(token, sub, rest, found)
        else:
            positionals.append(token)
    if len(positionals) < len(sub.required):
        missing = sub.synopsis.split()[len(positionals)]
        raise _InvalidArgumentError(f"Missing {missing}.")
    names = (*sub.required, *sub.optional)
    if len(positionals) > len(names):
        raise _InvalidArgumentError(
            "Too many arguments." if names else "This subcommand takes no arguments."
        )
    for name, value in zip(names, positionals, strict=False):
        found[name] = _FIELDS[name](value)
    return sub.make(**found)


def _risk(text: str) -> Risk:
    rest = re.sub(r"^\s*\S+", "", text, count=1).strip()
    quoted = len(rest) > 1 and rest[0] == rest[-1] and rest[0] in "\"'"
    if quoted and len(tokens := tokenize(rest)) == 1:
        rest = tokens[0].strip()
    if not rest:
        raise _InvalidArgumentError("Missing <command>.")
    return Risk(rest)


def _unknown(word: str, command: str) -> UsageError:
    candidates = [*_SUBS, *_ALIASES, "help"]
    matches = difflib.get_close_matches(word[:_SHOWN].lower(), candidates, n=1)
    suggestion = _ALIASES.get(matches[0], matches[0]) if matches else None
    hint = f' Did you mean "{suggestion}"?' if suggestion else ""
    return UsageError(f'Unknown subcommand "{_shown(word)}".{hint}', help_text(command), suggestion)


def _canonical(word: str) -> str:
    normalised = word.lower().replace("_", "-")
    return _ALIASES.get(normalised, normalised)


def parse_identity_args(args: str | None, *, command: str = COMMAND_NAME) -> ParseResult:
    """Parse the arguments of ``/identity`` (the host has split off the command word).

    Args:
        args: The raw argument string; ``None`` or blank means no arguments.
        command: The command name used in usage lines (``id`` when invoked as ``/id``).

    Returns:
        The command, or a :class:`UsageError` whose :meth:`~UsageError.render` is the reply.
    """
    text = sanitize_args(args)
    tokens = tokenize(text)
    if not tokens:
        return Help()
    name = _canonical(tokens[0])
    if name == "help":
        if len(tokens) > 2:
            return UsageError("Give at most one subcommand.", f"Usage: /{command} help [topic]")
        topic = _canonical(tokens[-1])
        if topic == "help":
            return Help()
        return Help(topic=topic) if topic in _SUBS else _unknown(tokens[-1], command)
    if name not in _SUBS:
        return _unknown(tokens[0], command)
    # ``risk`` rates its rest verbatim, so only a lone ``risk --help`` asks for help there.
    flags = {token.lower() for token in tokens[1:]}
    if (name == "risk" and tokens[1:] == ["--help"]) or (name != "risk" and flags & _HELP):
        return Help(topic=name)
    try:
        return _risk(text) if name == "risk" else _arguments(_SUBS[name], tokens[1:])
    except _InvalidArgumentError as exc:
        return UsageError(str(exc), usage(name, command))
