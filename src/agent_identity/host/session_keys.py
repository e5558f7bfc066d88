"""Session keys: the host's key shapes and the effective key agent-identity stores under.

The host (OpenClaw) names every conversation with a canonical, lower-case session key
``agent:<agentId>:<rest>`` (host contract, section 3). agent-identity stores the OIDC session,
the TIP and the credentials of a user under an *effective* key derived from that key and the
trusted sender context, so that users who share a host session (every DM of an agent shares
``agent:main:main`` under the default ``dmScope``) never share an identity.

:func:`build_effective_session_key` applies these rules, in this order:

1. **Normalise** the host key like the host's ``toAgentStoreSessionKey``: strip surrounding
   white space and lower-case; empty or ``main`` becomes ``agent:main:main``; a key starting
   with ``agent:`` is kept; anything else becomes ``agent:main:<key>``.
2. **Subagent keys are kept**: a key whose rest starts with ``subagent:``
   (``agent:<id>:subagent:<uuid>``, nested ones included) is returned as normalised, whatever
   the sender, channel or ``personal_session_mode``. A subagent acts for the session that
   spawned it, which is resolved elsewhere.
3. **Personal mode collapses**: with ``personal_session_mode`` every other key becomes
   ``agent:main:main`` (single-user deployments: one identity for everything).
4. **No sender, no promotion**: without a sender id (``None``, empty or white space) the
   normalised key is returned.
5. **Main sessions are promoted per sender**: the main key of an agent
   (``agent:<id>:main``) becomes

   * ``agent:<id>:<channel>:direct:<sender>`` when ``channel`` is one of
     :data:`SENDABLE_CHANNELS` (the same key the host itself uses for that DM under
     ``dmScope: per-channel-peer``, so a login survives a change of ``dmScope``);
   * ``agent:<id>:main:user:<sender>`` otherwise (WebChat, TUI, an unknown or missing
     channel). This is the README's effective key; no such host key exists.
6. **Every other key is kept**: DM keys that are already per peer
   (``…:direct:<peer>``, ``…:<channel>:direct:<peer>``), group and channel keys
   (``…:group:<id>``, ``…:channel:<id>``, threads and topics), ACP and cron keys, and keys
   that are already effective (so the function is idempotent). Group and channel sessions are
   therefore shared by their members, as the host shares the conversation itself; deployments
   that need per-member identities in groups must route those members to DMs.

Sender ids are embedded in a key with :func:`encode_sender_id`: white space around the id is
dropped, the id is lower-cased (the host lower-cases whole keys, so ids that differ only in
case are the same peer to it too), and every character other than ``a-z 0-9 - . _ ~ @ +`` is
percent-encoded as the lower-case hex of its UTF-8 bytes (``:`` → ``%3a``, ``%`` → ``%25``).
The encoding is injective, so a sender id containing ``:`` (a Matrix id such as
``@alice:example.org``, or a hostile WebChat client id such as ``x:user:y``) can never
produce another sender's key or change the shape of the key. Sender ids longer than
:data:`MAX_SENDER_ID_LENGTH` characters are refused with :class:`ValueError`.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

__all__ = [
    "MAIN_SESSION_KEY",
    "MAX_SENDER_ID_LENGTH",
    "SENDABLE_CHANNELS",
    "WEBCHAT_DEFAULT_SENDER_ID",
    "ParsedSessionKey",
    "build_effective_session_key",
    "encode_sender_id",
    "is_main_session_key",
    "is_subagent_key",
    "normalize_session_key",
    "parse_session_key",
    "subagent_depth",
]

#: The main session of the default agent.
MAIN_SESSION_KEY = "agent:main:main"

#: The sender id WebChat / Control UI clients have when they do not send one.
WEBCHAT_DEFAULT_SENDER_ID = "openclaw-control-ui"

#: Channels with an outbound adapter, i.e. a DM there has a per-channel-peer host key.
#: WebChat and the TUI are not sendable; a key from there is promoted to ``…:main:user:…``.
SENDABLE_CHANNELS: frozenset[str] = frozenset(
    {
        "discord",
        "feishu",
        "googlechat",
        "imessage",
        "line",
        "matrix",
        "mattermost",
        "msteams",
        "signal",
        "slack",
        "telegram",
        "whatsapp",
    }
)

#: The longest sender id accepted (characters, before encoding).
MAX_SENDER_ID_LENGTH = 256

_AGENT_PREFIX = "agent:"
_DEFAULT_AGENT_ID = "main"
_MAIN_KEY = "main"
_SUBAGENT_PREFIX = "subagent:"
_SUBAGENT_SEGMENT = ":subagent:"
_SENDER_SAFE = frozenset(string.ascii_lowercase + string.digits + "-._~@+")


@dataclass(frozen=True, slots=True)
class ParsedSessionKey:
    """A canonical key ``agent:<agent_id>:<rest>`` split into its parts."""

    #: The agent id (second segment), e.g. ``main``.
    agent_id: str
    #: Everything after the agent id, e.g. ``main`` or ``telegram:direct:123``.
    rest: str

    @property
    def key(self) -> str:
        """The key the parts were parsed from."""
        return f"{_AGENT_PREFIX}{self.agent_id}:{self.rest}"


def normalize_session_key(session_key: str | None) -> str:
    """Normalise a request key the way the host's ``toAgentStoreSessionKey`` does.

    Empty, ``None`` or ``main`` → ``agent:main:main``; ``agent:…`` is kept; anything else
    becomes ``agent:main:<key>``. The result is stripped and lower-cased.
    """
    key = (session_key or "").strip().lower()
    if not key or key == _MAIN_KEY:
        return MAIN_SESSION_KEY
    if key.startswith(_AGENT_PREFIX):
        return key
    return f"{_AGENT_PREFIX}{_DEFAULT_AGENT_ID}:{key}"


def parse_session_key(session_key: str) -> ParsedSessionKey | None:
    """Split a canonical key into agent id and rest (host contract, section 8 item 5).

    The key is split on ``:``; part 0 must be ``agent``, part 1 is the agent id and the
    remaining parts joined are the rest. Both must be non-empty. The key is taken as given
    (normalise it first for request keys).

    Returns:
        The parts, or ``None`` if the key is not of that shape.
    """
    prefix, _, tail = session_key.partition(":")
    if prefix != "agent":
        return None
    agent_id, _, rest = tail.partition(":")
    if not agent_id or not rest:
        return None
    return ParsedSessionKey(agent_id, rest)


def is_subagent_key(session_key: str) -> bool:
    """Whether a key names a subagent session (its rest starts with ``subagent:``)."""
    parsed = parse_session_key(normalize_session_key(session_key))
    return parsed is not None and parsed.rest.startswith(_SUBAGENT_PREFIX)


def subagent_depth(session_key: str) -> int:
    """How deeply nested a subagent key is: the number of ``:subagent:`` segments.

    ``agent:main:main`` → 0, ``agent:main:subagent:a`` → 1,
    ``agent:main:subagent:a:subagent:b`` → 2.
    """
    return normalize_session_key(session_key).count(_SUBAGENT_SEGMENT)


def is_main_session_key(session_key: str) -> bool:
    """Whether a (normalised) key is the main session of its agent, ``agent:<id>:main``."""
    parsed = parse_session_key(normalize_session_key(session_key))
    return parsed is not None and parsed.rest == _MAIN_KEY


def encode_sender_id(sender_id: str) -> str:
    """Encode a sender id for use as one key segment (see the module docstring).

    Strips and lower-cases the id, then percent-encodes (UTF-8, lower-case hex) every
    character outside ``a-z 0-9 - . _ ~ @ +``. Injective on stripped, lower-cased ids.

    Raises:
        ValueError: The id is empty (after stripping) or longer than
            :data:`MAX_SENDER_ID_LENGTH`.
    """
    text = sender_id.strip().lower()
    if not text:
        raise ValueError("the sender id is empty")
    if len(text) > MAX_SENDER_ID_LENGTH:
        raise ValueError(f"the sender id is longer than {MAX_SENDER_ID_LENGTH} characters")
    return "".join(
        char if char in _SENDER_SAFE else "".join(f"%{byte:02x}" for byte in char.encode())
        for char in text
    )


def build_effective_session_key(
    session_key: str | None,
    *,
    sender_id: str | None = None,
    channel: str | None = None,
    personal_session_mode: bool = False,
) -> str:
    """Return the key agent-identity stores a user's session, TIP and credentials under.

    The rules are listed in the module docstring. The result is lower-case, starts with
    ``agent:`` and depends only on the arguments.

    Args:
        session_key: The host's session key (trusted context, never tool params).
        sender_id: The trusted, channel-scoped sender id, if known. WebChat callers pass
            :data:`WEBCHAT_DEFAULT_SENDER_ID` when the client sent none.
        channel: The lower-case channel id (``telegram``, ``feishu``, ``webchat``, …).
        personal_session_mode: Single-user mode: everything but subagents under
            ``agent:main:main``.

    Returns:
        The effective key.

    Raises:
        ValueError: The sender id is longer than :data:`MAX_SENDER_ID_LENGTH`.
    """
    key = normalize_session_key(session_key)
    parsed = parse_session_key(key)
    if parsed is not None and parsed.rest.startswith(_SUBAGENT_PREFIX):
        return key
    if personal_session_mode:
        return MAIN_SESSION_KEY
    if sender_id is None or not sender_id.strip():
        return key
    if parsed is None or parsed.rest != _MAIN_KEY:
        return key
    sender = encode_sender_id(sender_id)
    surface = (channel or "").strip().lower()
    if surface in SENDABLE_CHANNELS:
        return f"{_AGENT_PREFIX}{parsed.agent_id}:{surface}:direct:{sender}"
    return f"{_AGENT_PREFIX}{parsed.agent_id}:{_MAIN_KEY}:user:{sender}"
