"""Configuration problems and the one error that carries all of them.

Validation never stops at the first mistake: it collects a :class:`ConfigProblem` per mistake and
raises a single :class:`ConfigError` holding the whole list, so an operator fixes a file in one
pass. A problem names the JSON path of the offending key (relative to the file's root) and says
what is wrong. Messages never contain a configured value (only key names, JSON types and numbers),
so an error can be printed or logged without leaking a secret.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

__all__ = ["ConfigError", "ConfigProblem", "JsonPath", "format_path"]

JsonPath: TypeAlias = tuple[str | int, ...]
"""A location in a JSON document: object keys (str) and array indices (int), from the root."""

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_$-]+")
ROOT_LABEL = "(top level)"


def format_path(path: JsonPath) -> str:
    """Render a JSON path the way an operator writes it: ``userpool.clientSecret``.

    Keys are joined with dots, array indices are shown as ``[2]``, and a key that is not a plain
    identifier (dots, spaces, empty) is shown quoted: ``accounts["my.bot"]``.

    Args:
        path: The path segments from the document root.

    Returns:
        The dotted form, or ``"(top level)"`` for the root itself.
    """
    out: list[str] = []
    for segment in path:
        if isinstance(segment, int):
            out.append(f"[{segment}]")
        elif _PLAIN_KEY.fullmatch(segment):
            out.append(f".{segment}" if out else segment)
        else:
            out.append(f"[{json.dumps(segment)}]")
    return "".join(out) or ROOT_LABEL


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with a configuration.

    Attributes:
        path: Where it is, as a JSON path from the file's root (see :func:`format_path`).
        message: What is wrong, without echoing any configured value.
    """

    path: JsonPath
    message: str

    @property
    def where(self) -> str:
        """The path in its printed form, e.g. ``plugins.entries.agent-identity.config.identity``."""
        return format_path(self.path)

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.path else self.message


class ConfigError(Exception):
    """A configuration could not be read or is invalid; carries every problem found.

    Attributes:
        problems: Every problem, in the order found (document order, then cross-key rules).
        source: The file the configuration came from, when there was one.
    """

    def __init__(self, problems: Iterable[ConfigProblem], source: str | None = None) -> None:
        self.problems: Sequence[ConfigProblem] = tuple(problems)
        self.source = source
        super().__init__(self._render())

    def _render(self) -> str:
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        origin = f" in {self.source}" if self.source else ""
        lines = [f"invalid configuration{origin} ({count} {noun}):"]
        lines.extend(f"  {problem}" for problem in self.problems)
        return "\n".join(lines)

    def with_source(self, source: str) -> ConfigError:
        """Return the same problems attributed to a file.

        Args:
            source: The file name to show.

        Returns:
            A new error with the same problems.
        """
        return ConfigError(self.problems, source)
