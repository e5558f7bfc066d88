"""Session keys: the effective-key table and its properties."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
from hypothesis import example, given

from agent_identity.host.session_keys import (
    MAIN_SESSION_KEY,
    MAX_SENDER_ID_LENGTH,
    SENDABLE_CHANNELS,
    WEBCHAT_DEFAULT_SENDER_ID,
    ParsedSessionKey,
    build_effective_session_key,
    encode_sender_id,
    is_main_session_key,
    is_subagent_key,
    normalize_session_key,
    parse_session_key,
    subagent_depth,
)

SUB = "agent:main:subagent:3f2a9c1e-0000-4000-8000-000000000001"

# (session_key, sender_id, channel, personal_session_mode, expected effective key)
TABLE: list[tuple[str | None, str | None, str | None, bool, str]] = [
    # 1. normalisation only (no sender)
    (None, None, None, False, "agent:main:main"),
    ("", None, None, False, "agent:main:main"),
    ("   ", None, None, False, "agent:main:main"),
    ("main", None, None, False, "agent:main:main"),
    ("MAIN", None, None, False, "agent:main:main"),
    ("agent:main:main", None, None, False, "agent:main:main"),
    ("Agent:Main:Main", None, None, False, "agent:main:main"),
    ("Telegram:Direct:42", None, None, False, "agent:main:telegram:direct:42"),
    ("agent:ops:main", None, "telegram", False, "agent:ops:main"),
    # 2. main session promoted per sender
    (
        "agent:main:main",
        "openclaw-control-ui",
        "webchat",
        False,
        "agent:main:main:user:openclaw-control-ui",
    ),
    ("main", WEBCHAT_DEFAULT_SENDER_ID, None, False, "agent:main:main:user:openclaw-control-ui"),
    ("", "ou_abc123", "tui", False, "agent:main:main:user:ou_abc123"),
    ("agent:main:main", "123456789", "telegram", False, "agent:main:telegram:direct:123456789"),
    ("agent:main:main", "ou_7d8a6e", "feishu", False, "agent:main:feishu:direct:ou_7d8a6e"),
    ("agent:main:main", "ou_7d8a6e", " Feishu ", False, "agent:main:feishu:direct:ou_7d8a6e"),
    ("agent:main:main", "U012ABCDEF", "slack", False, "agent:main:slack:direct:u012abcdef"),
    ("agent:main:main", "998877", "discord", False, "agent:main:discord:direct:998877"),
    (
        "agent:main:main",
        "+15551234567",
        "whatsapp",
        False,
        "agent:main:whatsapp:direct:+15551234567",
    ),
    ("agent:main:main", "42", "irc", False, "agent:main:main:user:42"),
    ("agent:ops:main", "42", "telegram", False, "agent:ops:telegram:direct:42"),
    ("agent:ops:main", "42", None, False, "agent:ops:main:user:42"),
    ("agent:main:main", "  42  ", "telegram", False, "agent:main:telegram:direct:42"),
    ("agent:main:main", "", "telegram", False, "agent:main:main"),
    ("agent:main:main", "   ", "webchat", False, "agent:main:main"),
    # 2b. senders that could change the key's shape are escaped
    (
        "agent:main:main",
        "@alice:example.org",
        "matrix",
        False,
        "agent:main:matrix:direct:@alice%3aexample.org",
    ),
    ("agent:main:main", "x:user:y", "webchat", False, "agent:main:main:user:x%3auser%3ay"),
    ("agent:main:main", "a%3ab", None, False, "agent:main:main:user:a%253ab"),
    ("agent:main:main", "a b/c", None, False, "agent:main:main:user:a%20b%2fc"),
    ("agent:main:main", "Zoë", None, False, "agent:main:main:user:zo%c3%ab"),
    # 3. keys that are already per peer, groups, channels, threads: kept
    ("agent:main:telegram:direct:123", "456", "telegram", False, "agent:main:telegram:direct:123"),
    ("agent:main:direct:123", "123", "telegram", False, "agent:main:direct:123"),
    (
        "agent:main:feishu:default:direct:ou_x",
        "ou_x",
        "feishu",
        False,
        "agent:main:feishu:default:direct:ou_x",
    ),
    ("agent:main:feishu:group:oc_1", "ou_x", "feishu", False, "agent:main:feishu:group:oc_1"),
    ("agent:main:discord:channel:777", "1", "discord", False, "agent:main:discord:channel:777"),
    (
        "agent:main:slack:channel:c1:thread:1.2",
        "u1",
        "slack",
        False,
        "agent:main:slack:channel:c1:thread:1.2",
    ),
    (
        "agent:main:telegram:group:-100:topic:7",
        "9",
        "telegram",
        False,
        "agent:main:telegram:group:-100:topic:7",
    ),
    ("agent:main:cron:nightly", "9", None, False, "agent:main:cron:nightly"),
    ("agent:main:acp:0a1b", "9", None, False, "agent:main:acp:0a1b"),
    (
        "agent:main:main:user:openclaw-control-ui",
        "openclaw-control-ui",
        "webchat",
        False,
        "agent:main:main:user:openclaw-control-ui",
    ),
    ("agent:", "9", "telegram", False, "agent:"),
    # 4. subagents are never changed
    (SUB, "42", "telegram", False, SUB),
    (SUB, None, None, True, SUB),
    (SUB.upper(), "42", None, True, SUB),
    (f"{SUB}:subagent:abc", "42", "telegram", True, f"{SUB}:subagent:abc"),
    # 5. personal mode collapses everything else to agent:main:main
    ("agent:main:main", "42", "telegram", True, MAIN_SESSION_KEY),
    ("agent:main:telegram:direct:42", "42", "telegram", True, MAIN_SESSION_KEY),
    ("agent:main:feishu:group:oc_1", "ou_x", "feishu", True, MAIN_SESSION_KEY),
    ("agent:ops:main", None, None, True, MAIN_SESSION_KEY),
    ("whatever", "x", "webchat", True, MAIN_SESSION_KEY),
]


@pytest.mark.parametrize(("key", "sender", "channel", "personal", "expected"), TABLE)
def test_effective_key_table(
    key: str | None, sender: str | None, channel: str | None, personal: bool, expected: str
) -> None:
    assert (
        build_effective_session_key(
            key, sender_id=sender, channel=channel, personal_session_mode=personal
        )
        == expected
    )


def test_table_is_large_enough() -> None:
    assert len(TABLE) >= 25


@pytest.mark.parametrize(
    ("key", "parsed"),
    [
        ("agent:main:main", ParsedSessionKey("main", "main")),
        ("agent:ops:telegram:direct:1", ParsedSessionKey("ops", "telegram:direct:1")),
        ("agent:main:main:user:x%3ay", ParsedSessionKey("main", "main:user:x%3ay")),
        ("agent:main", None),
        ("agent::main", None),
        ("agent:main:", None),
        ("agents:main:main", None),
        ("main", None),
        ("", None),
    ],
)
def test_parse_session_key(key: str, parsed: ParsedSessionKey | None) -> None:
    assert parse_session_key(key) == parsed
    if parsed is not None:
        assert parsed.key == key


@pytest.mark.parametrize(
    ("key", "subagent", "depth", "main"),
    [
        ("agent:main:main", False, 0, True),
        ("main", False, 0, True),
        ("agent:ops:main", False, 0, True),
        ("agent:main:main:user:x", False, 0, False),
        ("agent:main:subagent:a", True, 1, False),
        ("AGENT:Main:SubAgent:A", True, 1, False),
        ("agent:main:subagent:a:subagent:b", True, 2, False),
        ("agent:main:subagent:a:subagent:b:subagent:c", True, 3, False),
        ("agent:main:telegram:direct:subagent", False, 0, False),
        ("subagent:x", True, 1, False),
        ("agent:", False, 0, False),
    ],
)
def test_subagent_and_main_helpers(key: str, subagent: bool, depth: int, main: bool) -> None:
    assert is_subagent_key(key) is subagent
    assert subagent_depth(key) == depth
    assert is_main_session_key(key) is main


def test_sendable_channels_exclude_webchat_and_tui() -> None:
    assert {"feishu", "telegram", "discord", "slack", "whatsapp", "signal", "matrix"} <= (
        SENDABLE_CHANNELS
    )
    assert "webchat" not in SENDABLE_CHANNELS
    assert "tui" not in SENDABLE_CHANNELS
    assert all(channel == channel.lower() and ":" not in channel for channel in SENDABLE_CHANNELS)


def test_over_long_or_empty_sender_is_refused() -> None:
    with pytest.raises(ValueError, match="longer than"):
        build_effective_session_key("main", sender_id="x" * (MAX_SENDER_ID_LENGTH + 1))
    with pytest.raises(ValueError, match="empty"):
        encode_sender_id("  ")
    # The limit applies only where the sender would be embedded.
    assert (
        build_effective_session_key("agent:main:feishu:group:g", sender_id="x" * 1000)
        == "agent:main:feishu:group:g"
    )
    assert build_effective_session_key("main", sender_id="x" * MAX_SENDER_ID_LENGTH).endswith(
        "x" * MAX_SENDER_ID_LENGTH
    )


def test_normalize_matches_to_agent_store_session_key() -> None:
    assert normalize_session_key(None) == "agent:main:main"
    assert normalize_session_key(" Agent:Foo:Bar ") == "agent:foo:bar"
    assert normalize_session_key("discord:group:1") == "agent:main:discord:group:1"


# ----------------------------------------------------------------------- properties

session_keys = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "",
            "main",
            "MAIN",
            "agent:main:main",
            "agent:ops:main",
            "agent:main:telegram:direct:1",
            "agent:main:feishu:group:oc_1",
            SUB,
            "agent:",
            "agent:x",
        ]
    ),
    st.text(max_size=40),
)
senders = st.one_of(st.none(), st.text(max_size=40))
channels = st.one_of(
    st.none(), st.sampled_from(sorted(SENDABLE_CHANNELS | {"webchat", "tui", "irc", ""}))
)
real_senders = st.text(min_size=1, max_size=40).filter(lambda s: bool(s.strip()))


@given(session_keys, senders, channels, st.booleans())
def test_result_is_lower_case_canonical_and_deterministic(
    key: str | None, sender: str | None, channel: str | None, personal: bool
) -> None:
    first = build_effective_session_key(
        key, sender_id=sender, channel=channel, personal_session_mode=personal
    )
    again = build_effective_session_key(
        key, sender_id=sender, channel=channel, personal_session_mode=personal
    )
    assert first == again
    assert first == first.lower()
    assert first.startswith("agent:")
    # Idempotent: an effective key maps to itself under the same context.
    assert (
        build_effective_session_key(
            first, sender_id=sender, channel=channel, personal_session_mode=personal
        )
        == first
    )


@given(real_senders, real_senders, channels, st.sampled_from(["main", "agent:main:main", ""]))
@example("a:b", "a%3ab", None, "main")
@example("x", "x:user:y", "webchat", "main")
@example("1", "1:thread:2", "telegram", "main")
def test_a_sender_never_gets_another_senders_key(
    one: str, other: str, channel: str | None, key: str
) -> None:
    """Injective in the sender (ids are case-insensitive and trimmed, like host keys)."""
    mine = build_effective_session_key(key, sender_id=one, channel=channel)
    theirs = build_effective_session_key(key, sender_id=other, channel=channel)
    same_sender = one.strip().lower() == other.strip().lower()
    assert (mine == theirs) is same_sender
    # The sender occupies exactly one segment: the key's shape is fixed by the context.
    prefix = mine.rsplit(":", 1)[0]
    assert prefix in {
        "agent:main:main:user",
        *(f"agent:main:{c}:direct" for c in SENDABLE_CHANNELS),
    }
    assert not is_subagent_key(mine)
    assert subagent_depth(mine) == 0


@given(real_senders, real_senders, channels)
def test_a_promoted_key_never_equals_a_promotion_on_another_surface(
    one: str, other: str, channel: str | None
) -> None:
    """WebChat sender X and Telegram sender Y never share a key, whatever X and Y are."""
    webchat = build_effective_session_key("main", sender_id=one, channel="webchat")
    sendable = build_effective_session_key("main", sender_id=other, channel="telegram")
    assert webchat != sendable
    if channel not in SENDABLE_CHANNELS:
        assert build_effective_session_key("main", sender_id=one, channel=channel) == webchat


@given(st.text(min_size=1, max_size=60))
def test_sender_encoding_is_reversible(sender: str) -> None:
    from urllib.parse import unquote

    if not sender.strip():
        return
    encoded = encode_sender_id(sender)
    assert ":" not in encoded
    assert encoded == encoded.lower()
    assert encoded.isascii()
    assert unquote(encoded) == sender.strip().lower()
