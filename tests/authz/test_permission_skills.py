"""Skill names from the system prompt's ``<available_skills>``, and SKILL.md reads."""

from __future__ import annotations

import pytest

from agent_identity.authz.permission import (
    SkillEntry,
    parse_available_skills,
    parse_skill_entries,
    skill_for_read,
)

OPENCLAW_PROMPT = """You are a personal assistant running inside OpenClaw.

## Skills (mandatory)
Before replying: scan <available_skills> <description> entries.
- If exactly one skill clearly applies: read its SKILL.md at <location> with `read`, then follow it.

The following skills provide specialized instructions for specific tasks.
Use the read tool to load a skill's file when the task matches its description.

<available_skills>
  <skill>
    <name>weather</name>
    <description>Get current weather &amp; forecasts (no API key required).</description>
    <location>/home/u/.openclaw/skills/weather/SKILL.md</location>
  </skill>
  <skill>
    <name>github</name>
    <description>Use the &lt;gh&gt; CLI for issues, PRs &amp; runs.</description>
    <location>~/.openclaw/workspace/skills/github/SKILL.md</location>
  </skill>
  <skill>
    <name>identity</name>
    <description>UserPool login, TIP token.</description>
    <location>skills/identity/SKILL.md</location>
  </skill>
</available_skills>

## Tools
- read: Read file contents
"""


@pytest.mark.parametrize(
    ("prompt", "names"),
    [
        (OPENCLAW_PROMPT, ["weather", "github", "identity"]),
        # Compact form: name and location only, on one line, other casing and spacing.
        (
            "<AVAILABLE_SKILLS><skill><name> notion </name><location>/s/notion/SKILL.md"
            "</location></skill><skill ><name>slack</name></skill ></AVAILABLE_SKILLS>",
            ["notion", "slack"],
        ),
        # Attribute form, self-closing and not.
        (
            '<available_skills>\n<skill name="weather" location="/s/weather/SKILL.md"/>\n'
            "<skill name='tmux' description=\"x &amp; y\"></skill>\n</available_skills>",
            ["weather", "tmux"],
        ),
        # Plain list forms inside the block.
        (
            "<available_skills>\n- weather: Get the weather\n* github — GitHub via gh\n"
            "+ `notion` (skills/notion/SKILL.md)\n1. slack\n2) trello - boards\n"
            "\u2022 summarize\n</available_skills>",
            ["weather", "github", "notion", "slack", "trello", "summarize"],
        ),
        (
            "<available_skills>\nweather, github , `notion`\n</available_skills>",
            ["weather", "github", "notion"],
        ),
        (
            "<available_skills>\nThe following skills are available:\nweather: forecasts\n"
            "coding-agent (~/.openclaw/skills/coding-agent/SKILL.md)\n"
            "my.skill_2\n</available_skills>",
            ["weather", "coding-agent", "my.skill_2"],
        ),
        # Two blocks: merged in order, duplicates dropped.
        (
            "<available_skills><skill><name>a</name></skill><skill><name>b</name></skill>"
            "</available_skills> text <available_skills>- b\n- c\n</available_skills>",
            ["a", "b", "c"],
        ),
        # A truncated prompt: the unclosed block yields its complete <skill> elements only.
        (
            "<available_skills>\n<skill><name>weather</name></skill>\n<skill><name>git",
            ["weather"],
        ),
        ("<available_skills>\n- weather\n", []),
        # Nothing to find.
        ("", []),
        (None, []),
        ("You are a helpful assistant. Skills: none.", []),
        ("<available_skills></available_skills>", []),
        (
            "<available_skills><skill><description>no name</description></skill>"
            "</available_skills>",
            [],
        ),
    ],
)
def test_parse_available_skills(prompt: str | None, names: list[str]) -> None:
    assert parse_available_skills(prompt) == names


def test_entries_carry_unescaped_locations() -> None:
    entries = parse_skill_entries(OPENCLAW_PROMPT)
    assert entries == [
        SkillEntry("weather", "/home/u/.openclaw/skills/weather/SKILL.md"),
        SkillEntry("github", "~/.openclaw/workspace/skills/github/SKILL.md"),
        SkillEntry("identity", "skills/identity/SKILL.md"),
    ]
    plain = parse_skill_entries(
        "<available_skills>\n- notion (skills/notion/SKILL.md)\n- slack\n</available_skills>"
    )
    assert plain == [SkillEntry("notion", "skills/notion/SKILL.md"), SkillEntry("slack")]
    escaped = parse_skill_entries(
        '<available_skills><skill name="a&amp;b" location="/x/a&amp;b/SKILL.md"/>'
        "</available_skills>"
    )
    assert escaped == [SkillEntry("a&b", "/x/a&b/SKILL.md")]


ENTRIES = parse_skill_entries(OPENCLAW_PROMPT)
NAMES = [entry.name for entry in ENTRIES]


@pytest.mark.parametrize(
    ("params", "skills", "expected"),
    [
        # The listed location, exactly.
        ({"path": "/home/u/.openclaw/skills/weather/SKILL.md"}, ENTRIES, "weather"),
        # A ~ location matches the expanded path, and the other way round.
        ({"path": "/home/u/.openclaw/workspace/skills/github/SKILL.md"}, ENTRIES, "github"),
        ({"path": "~/.openclaw/skills/weather/SKILL.md"}, ENTRIES, "weather"),
        # A relative location matches an absolute path ending with it.
        ({"path": "/srv/agent/skills/identity/SKILL.md"}, ENTRIES, "identity"),
        # Other parameter spellings, file URLs, backslashes, dot segments.
        ({"file_path": "/home/u/.openclaw/skills/weather/SKILL.md"}, ENTRIES, "weather"),
        ({"filePath": "file:///home/u/.openclaw/skills/weather/SKILL.md"}, ENTRIES, "weather"),
        ({"file": "C:\\Users\\u\\skills\\weather\\SKILL.md"}, NAMES, "weather"),
        ({"path": "/home/u/.openclaw/skills/other/../weather/./SKILL.md"}, ENTRIES, "weather"),
        # The case of the file name does not matter.
        ({"path": "/home/u/.openclaw/skills/weather/skill.md"}, ENTRIES, "weather"),
        # Names only: the folder decides.
        ({"path": "/anywhere/skills/github/SKILL.md"}, NAMES, "github"),
        # A same-named copy elsewhere is still that skill (over-matching fails closed).
        ({"path": "/tmp/copy/weather/SKILL.md"}, ENTRIES, "weather"),
        # Not a SKILL.md, not a listed skill, no path.
        ({"path": "/home/u/.openclaw/skills/weather/README.md"}, ENTRIES, None),
        ({"path": "/home/u/.openclaw/skills/weather"}, ENTRIES, None),
        ({"path": "/home/u/.openclaw/skills/secret/SKILL.md"}, ENTRIES, None),
        ({"path": "/home/u/.openclaw/skills/weather/../secret/SKILL.md"}, ENTRIES, None),
        ({"path": ""}, ENTRIES, None),
        ({"path": 42}, ENTRIES, None),
        ({"command": "cat SKILL.md"}, ENTRIES, None),
        ({}, ENTRIES, None),
        (None, ENTRIES, None),
        ({"path": "/x/weather/SKILL.md"}, [], None),
    ],
)
def test_skill_for_read(
    params: dict[str, object] | None, skills: list[str | SkillEntry], expected: str | None
) -> None:
    assert skill_for_read(params, skills) == expected


def test_location_match_wins_over_folder_name() -> None:
    skills = [SkillEntry("alpha", "/x/beta/SKILL.md"), SkillEntry("beta", "/y/beta/SKILL.md")]
    assert skill_for_read({"path": "/x/beta/SKILL.md"}, skills) == "alpha"
    assert skill_for_read({"path": "/z/beta/SKILL.md"}, skills) == "beta"
