"""Which skills a system prompt offers, and whether a ``read`` tool call opens one's SKILL.md.

OpenClaw advertises skills lazily: the system prompt carries a compact index and the model
opens a skill's ``SKILL.md`` with the ``read`` tool when it picks one. The index
(``formatSkillsForPrompt``) is XML-ish, with XML-escaped values::

    <available_skills>
      <skill>
        <name>weather</name>
        <description>Get current weather &amp; forecasts</description>
        <location>/home/u/.openclaw/skills/weather/SKILL.md</location>
      </skill>
    </available_skills>

Compact prompts drop ``<description>``; some hosts write ``<skill name="…" location="…"/>``.
A plain list inside the block (``- weather: …``, ``weather (skills/weather/SKILL.md)``,
``weather, github``) is accepted too. ``skillReadCheck`` uses :func:`parse_available_skills`
in ``before_agent_start`` and :func:`skill_for_read` in ``before_tool_call`` to decide when a
``read`` needs a CheckPermission for resource type ``skill``.
"""

from __future__ import annotations

import html
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "READ_PATH_KEYS",
    "SKILL_FILE_NAME",
    "SkillEntry",
    "parse_available_skills",
    "parse_skill_entries",
    "skill_for_read",
]

#: The file a skill's instructions live in.
SKILL_FILE_NAME = "SKILL.md"
#: The ``read`` tool parameters that may hold the path (OpenClaw uses ``path``).
READ_PATH_KEYS = ("path", "file_path", "filePath", "file")

_BLOCK_RE = re.compile(
    r"<available_skills\s*>(.*?)(</available_skills\s*>|\Z)", re.DOTALL | re.IGNORECASE
)
_SKILL_RE = re.compile(r"<skill\b([^>]*?)(?:/>|>(.*?)</skill\s*>)", re.DOTALL | re.IGNORECASE)
_ATTR_RE = re.compile(r"""([\w-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_NAME = r"\w[\w.-]*"
_NAME_RE = re.compile(_NAME)
_BULLET_RE = re.compile(r"^(?:[-*+\u2022]|\d+[.)])\s+")
_LIST_ITEM_RE = re.compile(rf"^`?({_NAME})`?(?:\s*$|\s*[:(\u2014\u2013]|\s+-\s)(.*)$", re.DOTALL)
_BULLETED_ITEM_RE = re.compile(rf"^`?({_NAME})`?(?:\s|$|:)(.*)$", re.DOTALL)
_SKILL_PATH_RE = re.compile(r"([^\s()<>\"'`]*SKILL\.md)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class SkillEntry:
    """One skill of the prompt's index."""

    #: The skill's name (the CheckPermission resource id).
    name: str
    #: Where its SKILL.md is, when the index says.
    location: str | None = None


def parse_skill_entries(prompt: str | None) -> list[SkillEntry]:
    """Return the skills listed in every ``<available_skills>`` block, in order, deduplicated.

    ``<skill>`` elements (children or attributes) win; a block without any is read as a plain
    list, one skill per bulleted line or a comma-separated line of names. A block whose
    closing tag is missing (a truncated prompt) yields only its ``<skill>`` elements.
    Unparseable text is skipped, never an error.
    """
    if not prompt:
        return []
    entries: list[SkillEntry] = []
    seen: set[str] = set()
    for block in _BLOCK_RE.finditer(prompt):
        body, closed = block.group(1), bool(block.group(2))
        found = list(_skill_elements(body))
        if not found and closed:
            found = list(_plain_list(body))
        for entry in found:
            if entry.name not in seen:
                seen.add(entry.name)
                entries.append(entry)
    return entries


def parse_available_skills(prompt: str | None) -> list[str]:
    """Return the names of the skills a system prompt offers (see :func:`parse_skill_entries`)."""
    return [entry.name for entry in parse_skill_entries(prompt)]


def skill_for_read(
    params: Mapping[str, object] | None, skills: Iterable[str | SkillEntry]
) -> str | None:
    """Return the skill whose SKILL.md a ``read`` tool call opens, or ``None``.

    The path (``path``, ``file_path``, ``filePath`` or ``file``) must name a file called
    ``SKILL.md``, after normalising ``..`` segments and backslashes. It belongs to a skill
    when it is the skill's listed location (a ``~/`` or relative location matches any path
    that ends with it), otherwise when its folder is named like the skill (the OpenClaw
    layout ``skills/<name>/SKILL.md``). Matching on the folder name as well means a same-named
    copy elsewhere is still checked: for a permission gate, over-matching fails closed.

    Args:
        params: The ``read`` call's params.
        skills: The listed skills: names, or entries with locations.

    Returns:
        The skill's name, or ``None`` when the call reads no listed skill's SKILL.md.
    """
    path = _read_path(params)
    if path is None or posixpath.basename(path).lower() != SKILL_FILE_NAME.lower():
        return None
    entries = [s if isinstance(s, SkillEntry) else SkillEntry(s) for s in skills]
    for entry in entries:
        if entry.location is not None and _same_file(path, _normalise(entry.location)):
            return entry.name
    folder = posixpath.basename(posixpath.dirname(path))
    for entry in entries:
        if folder == entry.name:
            return entry.name
    return None


# ------------------------------------------------------------------------------ internals


def _text(value: str | None) -> str:
    return html.unescape(value or "").strip()


def _skill_elements(body: str) -> Iterable[SkillEntry]:
    for match in _SKILL_RE.finditer(body):
        attributes = {
            key.lower(): _text(double or single)
            for key, double, single in _ATTR_RE.findall(match.group(1) or "")
        }
        inner = match.group(2) or ""
        name = _child(inner, "name") or attributes.get("name", "")
        location = _child(inner, "location") or attributes.get("location") or None
        if name:
            yield SkillEntry(name, location)


def _child(inner: str, tag: str) -> str:
    found = re.search(rf"<{tag}\s*>(.*?)</{tag}\s*>", inner, re.DOTALL | re.IGNORECASE)
    return _text(found.group(1)) if found else ""


def _plain_list(body: str) -> Iterable[SkillEntry]:
    for raw in body.splitlines():
        line = _text(raw)
        if not line or line.startswith("<"):
            continue
        bullet = _BULLET_RE.match(line)
        if bullet is not None:
            line = line[bullet.end() :]
        pieces = [piece.strip().strip("`") for piece in line.split(",")]
        if len(pieces) > 1 and all(_NAME_RE.fullmatch(piece) for piece in pieces):
            yield from (SkillEntry(piece) for piece in pieces)
            continue
        item = (_BULLETED_ITEM_RE if bullet is not None else _LIST_ITEM_RE).match(line)
        if item is None:
            continue
        location = _SKILL_PATH_RE.search(item.group(2))
        yield SkillEntry(item.group(1), location.group(1) if location else None)


def _read_path(params: Mapping[str, object] | None) -> str | None:
    if params is None:
        return None
    for key in READ_PATH_KEYS:
        value = params.get(key)
        if isinstance(value, str) and value.strip():
            return _normalise(value)
    return None


def _normalise(path: str) -> str:
    path = path.strip()
    if path.lower().startswith("file://"):
        path = path[len("file://") :]
    path = path.replace("\\", "/")
    tilde = path.startswith("~/")
    normal = posixpath.normpath(path[1:] if tilde else path)
    if tilde:
        return f"~{normal}"
    return normal.removeprefix("./")


def _same_file(path: str, location: str) -> bool:
    if path == location:
        return True
    for one, other in ((path, location), (location, path)):
        if other.startswith("~/"):
            if one.endswith(other[1:]):
                return True
        elif not other.startswith("/") and one.endswith(f"/{other}"):
            return True
    return False
