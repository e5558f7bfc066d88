r"""A forgiving shell-command parser for risk rules: what runs, with which words, fed by what.

The rules must see through the ways a model (or a prompt injection) spells a command, so this
errs towards seeing *more* commands, never fewer:

* ``$(...)``, backticks and process substitutions ``<(...)``/``>(...)`` are cut out first
  (quote-aware, nested) and replaced by a placeholder word; their text is returned so the rules
  analyse it as a script of its own and know which word it fed.
* Unquoted newlines separate commands, ``\``-newline joins lines, and a ``#`` that starts a word
  starts a comment (so ``curl x#|sh`` still pipes to ``sh``).
* The rest is tokenised with :mod:`shlex` in POSIX mode with punctuation splitting, which undoes
  quoting and escapes (``r''m``, ``"rm"``, ``\rm`` all become ``rm``). A command that shlex
  rejects (an unclosed quote) is retried with the quote closed, then split crudely on
  whitespace and operators.
* Commands split on ``;``, ``&&``, ``||``, ``&``, newlines and ``|``/``|&`` (pipeline stages).
  A quoted ``"|"`` also splits, which can only add commands to look at.
* Each stage drops grouping words, leading ``NAME=value`` assignments, ``2>``-style fd numbers and
  redirections (kept apart as ``(operator, target)``), then strips wrappers that run another
  command (``sudo``, ``env``, ``nohup``, ``timeout 5``, ``xargs -0``, ``busybox`` …), recording
  them. The command name is the lower-cased basename, so ``/bin/rm`` and ``RM`` are ``rm``.

Here-document bodies are not recognised: their lines are analysed as commands, which errs on the
side of caution (``bash <<EOF`` really does run them).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Final

__all__ = [
    "Command",
    "Pipeline",
    "Script",
    "command_from_words",
    "parse_script",
    "placeholder_index",
]

_PLACEHOLDER: Final = "__sub{}__"
_PLACEHOLDER_RE: Final = re.compile(r"__sub(\d+)__")
_SEPARATORS: Final = frozenset({";", "&&", "||", "&", ";;", ";&", ";;&"})
_PIPES: Final = frozenset({"|", "|&"})
_REDIRECTS: Final = frozenset(
    {">", ">>", ">|", "<", "<<", "<<<", "<<-", "&>", "&>>", ">&", "<&", "<>"}
)
_GROUPING: Final = frozenset({"(", ")", "{", "}", "!", "[[", "]]", "((", "))"})
_KEYWORDS: Final = frozenset({"if", "then", "else", "elif", "fi", "do", "done", "while", "until"})
# Compound-command heads whose words are not a command (``for x in a b``).
_NOT_COMMANDS: Final = frozenset({"for", "case", "esac", "select", "function", "in"})
_ASSIGNMENT_RE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\+?=")
_CRUDE_RE: Final = re.compile(r"\|\||&&|\|&|[|;&<>()]+|[^\s|;&<>()]+")

# Wrappers: name → options that take a value. ``None`` value options means "any leading
# option-looking word is skipped".
_WRAPPERS: Final[dict[str, frozenset[str]]] = {
    "sudo": frozenset({"-u", "-g", "-h", "-p", "-C", "-D", "-r", "-t", "-U", "-T"}),
    "doas": frozenset({"-u", "-C"}),
    "pkexec": frozenset({"--user"}),
    "run0": frozenset({"-u", "--user", "-D"}),
    "env": frozenset({"-u", "--unset", "-C", "--chdir", "-S", "--split-string"}),
    "nohup": frozenset(),
    "time": frozenset({"-f", "-o"}),
    "nice": frozenset({"-n", "--adjustment"}),
    "ionice": frozenset({"-c", "-n", "-p"}),
    "timeout": frozenset({"-s", "--signal", "-k", "--kill-after"}),
    "stdbuf": frozenset({"-i", "-o", "-e"}),
    "command": frozenset(),
    "builtin": frozenset(),
    "exec": frozenset({"-a"}),
    "xargs": frozenset({"-I", "-i", "-n", "-P", "-d", "-E", "-e", "-L", "-l", "-s", "-a"}),
    "busybox": frozenset(),
    "watch": frozenset({"-n", "--interval", "-d"}),
    "chroot": frozenset(),
    "unbuffer": frozenset(),
    "caffeinate": frozenset(),
    "strace": frozenset({"-o", "-e", "-p", "-s"}),
}
# Wrappers whose first plain word is an argument of theirs, not the command.
_FIRST_WORD_IS_ARG: Final = frozenset({"timeout", "chroot"})


@dataclass(frozen=True, slots=True)
class Command:
    """One simple command, normalised.

    Attributes:
        name: Lower-cased basename of the command word (``""`` for a bare redirection).
        args: The words after the command word (redirections removed).
        redirects: ``(operator, target)`` pairs, e.g. ``(">", "/dev/sda")``.
        wrappers: Wrapper commands stripped in front of it, e.g. ``("sudo", "env")``.
    """

    name: str
    args: tuple[str, ...] = ()
    redirects: tuple[tuple[str, str], ...] = ()
    wrappers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Pipeline:
    """Commands joined by ``|``: each stage reads the previous one's output."""

    stages: tuple[Command, ...]


@dataclass(frozen=True, slots=True)
class Script:
    """A parsed command line.

    Attributes:
        pipelines: Every pipeline, in order (a lone command is a one-stage pipeline).
        substitutions: Texts of ``$(...)``, backticks and process substitutions; the word
            ``__subN__`` in a command stands for ``substitutions[N]``.
    """

    pipelines: tuple[Pipeline, ...]
    substitutions: tuple[str, ...]

    @property
    def commands(self) -> tuple[Command, ...]:
        """Every command of every pipeline."""
        return tuple(stage for pipeline in self.pipelines for stage in pipeline.stages)


def placeholder_index(word: str) -> list[int]:
    """The substitution indexes a word refers to (``"$(x)y"`` was rewritten to ``__sub0__y``)."""
    return [int(match) for match in _PLACEHOLDER_RE.findall(word)]


def _find_close(text: str, start: int, opener: str, closer: str) -> int:
    """Index of the ``closer`` that balances an opener just before ``start`` (or ``len``)."""
    depth = 1
    quote = ""
    i = start
    while i < len(text):
        char = text[i]
        if char == "\\" and quote != "'":
            i += 2
            continue
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == opener:
            depth += 1
        elif char == closer:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return len(text)


def _extract(text: str) -> tuple[str, list[str]]:
    """Cut out substitutions and comments; turn unquoted newlines into ``;``."""
    out: list[str] = []
    subs: list[str] = []
    quote = ""
    last = ""  # the last non-blank character kept, for line continuations
    i = 0
    while i < len(text):
        char = text[i]
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if char == "\\" and quote != "'":
            if nxt != "\n":  # backslash-newline joins lines
                out.append(text[i : i + 2])
                last = "\\"
            i += 2
            continue
        end = -1
        if char == "$" and nxt == "(" and quote != "'":
            end = _find_close(text, i + 2, "(", ")")
            subs.append(text[i + 2 : end])
            out.append(_PLACEHOLDER.format(len(subs) - 1))
        elif char == "`" and quote != "'":
            found = text.find("`", i + 1)
            end = len(text) if found < 0 else found
            subs.append(text[i + 1 : end])
            out.append(_PLACEHOLDER.format(len(subs) - 1))
        elif char in "<>" and nxt == "(" and not quote:
            # A process substitution is a word of its own (a /dev/fd path), not a redirection.
            end = _find_close(text, i + 2, "(", ")")
            subs.append(text[i + 2 : end])
            out.append(" " + _PLACEHOLDER.format(len(subs) - 1) + " ")
        if end >= 0:
            last = "_"
            i = end + 1
            continue
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (not out or out[-1][-1:] in " \t;&|()"):
            found = text.find("\n", i)
            i = len(text) if found < 0 else found
            continue
        elif char == "\n":
            # A line ending in ``|``, ``&&`` or ``||`` continues on the next one.
            char = " " if last in {"|", "&"} else ";"
        out.append(char)
        if not char.isspace():
            last = char
        i += 1
    return "".join(out), subs


def _tokenize(text: str) -> list[str]:
    """Shell words and operators; never raises."""
    for suffix in ("", '"', "'", "\"'", "'\""):
        lexer = shlex.shlex(text + suffix, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = ""  # comments were handled by _extract, word-start only
        try:
            return list(lexer)
        except ValueError:
            continue
    # Past every repair: crude split, quotes and escapes dropped.
    return [token.strip("'\"\\") for token in _CRUDE_RE.findall(text.replace("\\", ""))]


def _basename(word: str) -> str:
    name = word.rsplit("/", 1)[-1].rsplit("\\", 1)[-1].lower()
    return name.removesuffix(".exe")


def _skip_options(words: list[str], takes_value: frozenset[str]) -> list[str]:
    """Drop a wrapper's leading options (and their values) and ``NAME=value`` words."""
    i = 0
    while i < len(words):
        word = words[i]
        if word == "--":
            return words[i + 1 :]
        if word in takes_value:
            i += 2
        elif (word.startswith("-") and len(word) > 1) or _ASSIGNMENT_RE.match(word):
            i += 1
        else:
            break
    return words[i:]


def command_from_words(words: list[str]) -> Command | None:
    """Normalise one stage's words into a command (``None`` when there is nothing to run)."""
    redirects: list[tuple[str, str]] = []
    plain: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word in _REDIRECTS:
            if plain and plain[-1].isdigit():
                plain.pop()  # ``2>``: the 2 is a file descriptor, not an argument
            redirects.append((word, words[i + 1] if i + 1 < len(words) else ""))
            i += 2
            continue
        if word not in _GROUPING:
            plain.append(word)
        i += 1
    while plain and (plain[0] in _KEYWORDS or _ASSIGNMENT_RE.match(plain[0])):
        plain.pop(0)
    if plain and plain[0] in _NOT_COMMANDS:
        return None
    wrappers: list[str] = []
    while plain and _basename(plain[0]) in _WRAPPERS:
        wrapper = _basename(plain[0])
        if wrapper == "command" and len(plain) > 1 and plain[1] in {"-v", "-V"}:
            return None  # ``command -v rm`` looks a name up; it runs nothing
        wrappers.append(wrapper)
        plain = _skip_options(plain[1:], _WRAPPERS[wrapper])
        if wrapper in _FIRST_WORD_IS_ARG and plain:
            plain = plain[1:]
    if not plain and not redirects and not wrappers:
        return None
    name = _basename(plain[0]) if plain else ""
    return Command(name, tuple(plain[1:]), tuple(redirects), tuple(wrappers))


def parse_script(text: str) -> Script:
    """Parse a command line into pipelines of normalised commands; never raises.

    Args:
        text: The command as the ``exec`` tool would run it.

    Returns:
        The pipelines and the substitution texts (not parsed; the caller recurses).
    """
    cleaned, subs = _extract(text)
    pipelines: list[Pipeline] = []
    stages: list[Command] = []
    words: list[str] = []

    def end_stage() -> None:
        command = command_from_words(words)
        words.clear()
        if command is not None:
            stages.append(command)

    for token in _tokenize(cleaned):
        if token in _PIPES:
            end_stage()
        elif token in _SEPARATORS:
            end_stage()
            if stages:
                pipelines.append(Pipeline(tuple(stages)))
            stages.clear()
        else:
            words.append(token)
    end_stage()
    if stages:
        pipelines.append(Pipeline(tuple(stages)))
    return Script(tuple(pipelines), tuple(subs))
