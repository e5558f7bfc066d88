"""Analysis of a shell command line: which risk rules it matches.

:func:`analyze_command` parses the text (:mod:`.risk_shell`), recurses into substitutions,
``sh -c`` strings, ``eval`` text, inline interpreter code and text echoed into a shell (up to
:data:`MAX_DEPTH` levels), then applies three kinds of checks:

* pipeline checks — what feeds a shell (``curl … | sh``, ``base64 -d | bash``), what feeds a
  network sink (``cat ~/.ssh/id_rsa | curl …``); across a script, a file a fetcher saved and a
  later command runs (``curl -o i.sh … && bash i.sh``);
* per-command checks (:mod:`.risk_commands`) and the generic ones every command gets:
  privilege wrappers, redirections to disks and sensitive paths, credential files as arguments;
* a few whole-text patterns no parse can make sense of: fork bombs, ``/dev/tcp`` reverse shells
  and Python socket-plus-shell one-liners.

Arguments of ``echo``/``printf`` are data: ``echo rm -rf /`` is low. Only when that output is
piped into a shell is it analysed as a command (``echo 'rm -rf /' | sh`` is high).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from agent_identity.authz.risk_commands import check_command
from agent_identity.authz.risk_paths import classify_path
from agent_identity.authz.risk_shell import Command, Pipeline, parse_script, placeholder_index
from agent_identity.authz.risk_vocab import (
    FETCHERS,
    INTERPRETERS,
    NETWORK_SINKS,
    PRIVILEGE_WRAPPERS,
    READERS,
    SHELLS,
    CommandContext,
    credential_args,
    is_decoder,
    is_disk_device,
    is_secret_source,
    parse_options,
    reads_code_from_stdin,
    write_targets,
)

__all__ = ["MAX_COMMAND_CHARS", "MAX_DEPTH", "MAX_SUBSTITUTIONS", "analyze_command"]

MAX_COMMAND_CHARS: Final = 64 * 1024
"""Only this much of a command is analysed (a longer one is also flagged ``oversized``)."""
MAX_DEPTH: Final = 4
"""Nesting levels of substitutions / ``sh -c`` / ``eval`` followed; deeper is ``shell-eval``."""

# Bounded repeats and a word-start lookbehind keep this linear on long input.
MAX_SUBSTITUTIONS: Final = 1000
"""Substitutions analysed per script; past that the script is ``shell-eval``."""

_FORK_BOMB_RE: Final = re.compile(
    r"(?<![\w:.-])([\w:.-]{1,64})\s*\(\s*\)\s*\{[^}]{0,64}?\1\s*\|\s*\1\s*&[^}]{0,64}\}"
)
_DEV_NET_RE: Final = re.compile(r"/dev/(?:tcp|udp)/", re.IGNORECASE)
_SOCKET_RE: Final = re.compile(r"\bsocket\b", re.IGNORECASE)
_SPAWN_RE: Final = re.compile(r"pty\.spawn|dup2\s*\(|subprocess|/bin/(?:ba)?sh", re.IGNORECASE)
_WRITE_OPS: Final = frozenset({">", ">>", ">|", "&>", "&>>", "<>"})
# Commands whose sensitive targets their own checker judges (``chmod 600 ~/.ssh/id_rsa``).
_OWN_PATH_RULES: Final = frozenset({"chmod", "chown", "chgrp"})
_PRINTERS: Final = frozenset({"echo", "printf"})


@dataclass(slots=True)
class _Result:
    """Rules matched by a script, and what kind of output it produces (for its user)."""

    rules: set[str] = field(default_factory=set)
    fetches: bool = False
    decodes: bool = False
    secrets: bool = False


def analyze_command(text: str) -> set[str]:
    """The ids of every rule a shell command line matches; never raises.

    Args:
        text: The command, as the ``exec`` tool would run it.

    Returns:
        Rule ids (possibly empty: nothing risky was recognised).
    """
    result = _analyze(text[:MAX_COMMAND_CHARS], 0)
    if len(text) > MAX_COMMAND_CHARS:
        result.rules.add("oversized")
    return result.rules


def _analyze(text: str, depth: int) -> _Result:
    result = _Result()
    if depth > MAX_DEPTH:
        result.rules.add("shell-eval")
        return result
    if _FORK_BOMB_RE.search(text):
        result.rules.add("fork-bomb")
    if _DEV_NET_RE.search(text) or (_SOCKET_RE.search(text) and _SPAWN_RE.search(text)):
        result.rules.add("reverse-shell")
    script = parse_script(text)
    fetch: set[int] = set()
    decode: set[int] = set()
    secret: set[int] = set()
    seen: dict[str, _Result] = {}
    for index, sub in enumerate(script.substitutions):
        if index >= MAX_SUBSTITUTIONS:
            result.rules.add("shell-eval")  # too many to follow: dynamic code we did not see
            break
        inner = seen.get(sub) or seen.setdefault(sub, _analyze(sub, depth + 1))
        result.rules |= inner.rules
        _flag(index, inner.fetches, fetch)
        _flag(index, inner.decodes, decode)
        _flag(index, inner.secrets, secret)
    ctx = CommandContext(
        frozenset(fetch),
        frozenset(decode),
        frozenset(secret),
        lambda nested: _analyze(nested, depth + 1).rules,
    )
    downloaded: set[str] = set()
    for pipeline in script.pipelines:
        result.rules |= _pipeline_rules(pipeline, ctx)
        for command in pipeline.stages:
            result.rules |= _command_rules(command, ctx)
            # ``curl -o i.sh URL && bash i.sh`` is a pipe-to-shell in two steps.
            if downloaded and _runs_file(command) & downloaded:
                result.rules.add("remote-code-eval")
            if command.name in FETCHERS:
                downloaded |= _downloads(command)
            refs = {ref for arg in command.args for ref in placeholder_index(arg)}
            result.fetches |= command.name in NETWORK_SINKS or bool(refs & fetch)
            result.decodes |= is_decoder(command) or bool(refs & decode)
            result.secrets |= is_secret_source(command) or bool(refs & secret)
    return result


def _base(word: str) -> str:
    return word.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0].lower()


def _downloads(command: Command) -> set[str]:
    """Basenames of the files a fetcher saves (``-o``/``-O``/``>``, or wget's URL name)."""
    names = {_base(target) for target in write_targets(command)}
    if command.name == "wget" and not any(
        a.startswith(("-O", "--output-document")) for a in command.args
    ):
        names |= {_base(arg) for arg in command.args if "://" in arg}
    return names - {"", "-", "null"}


def _runs_file(command: Command) -> set[str]:
    """Basenames of script files the command runs (``bash x.sh``, ``./x.sh``, ``. x.sh``)."""
    if command.name in SHELLS | INTERPRETERS | {"source", "."}:
        positional = parse_options(command.args).positional
        return {_base(positional[0])} if positional else set()
    return {command.name}


def _flag(index: int, condition: bool, into: set[int]) -> None:
    if condition:
        into.add(index)


def _refers(command: Command, indexes: frozenset[int]) -> bool:
    return any(ref in indexes for arg in command.args for ref in placeholder_index(arg))


def _pipeline_rules(pipeline: Pipeline, ctx: CommandContext) -> set[str]:
    found: set[str] = set()
    # What the stages so far produce, carried along (a long pipeline stays linear).
    fetched = decoded = secret = False
    printed: list[str] = []
    for position, stage in enumerate(pipeline.stages):
        if position and reads_code_from_stdin(stage):
            if fetched:
                found.add("pipe-to-shell")
            elif decoded:
                found.add("decode-to-shell")
            else:
                found.add("pipe-into-shell")
            for text in printed:
                found |= ctx.nested(text)
        if position and secret and stage.name in NETWORK_SINKS:
            found.add("credential-exfiltration")
        fetched = fetched or stage.name in NETWORK_SINKS or _refers(stage, ctx.fetch_subs)
        decoded = decoded or is_decoder(stage) or _refers(stage, ctx.decode_subs)
        secret = secret or is_secret_source(stage) or _refers(stage, ctx.secret_subs)
        if stage.name in _PRINTERS:
            printed.append(" ".join(stage.args))
    return found


def _command_rules(command: Command, ctx: CommandContext) -> set[str]:
    found = set(check_command(command, ctx))
    if PRIVILEGE_WRAPPERS.intersection(command.wrappers):
        found.add("privilege-escalation")
    for op, target in command.redirects:
        if op in _WRITE_OPS and is_disk_device(target):
            found.add("disk-overwrite")
    if command.name not in _OWN_PATH_RULES and any(
        classify_path(target) is not None for target in write_targets(command)
    ):
        found.add("sensitive-path-write")
    secret_input = any(
        op == "<" and classify_path(target) == "credential" for op, target in command.redirects
    )
    if credential_args(command) or secret_input:
        if command.name in NETWORK_SINKS:
            found.add("credential-exfiltration")
        elif command.name in READERS or secret_input:
            found.add("credential-read")
        else:
            found.add("sensitive-path-access")
    if command.name in NETWORK_SINKS and _refers(command, ctx.secret_subs):
        found.add("credential-exfiltration")
    return found
