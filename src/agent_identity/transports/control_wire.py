"""The control socket's wire: typed messages and length-prefixed frames (sans-IO).

Every message is a frame: a 4-byte big-endian length, then that many bytes of msgspec JSON.
A request or a reply is a tagged union (``{"type": "revoke", "sessionKey": "..."}``): the
``type`` field picks the Struct, unknown fields are refused, and names are camelCase like
every other JSON the project speaks. This module is the only schema of what crosses the
socket; :mod:`agent_identity.transports.control` moves the bytes.

Replies carry counts, names, keys and times, never a token or a key: the system layer
builds them from statistics and listings that leave secrets out, and there is no field
here a secret could travel in.
"""

from __future__ import annotations

import struct
from typing import Final, Literal, TypeAlias

import msgspec

__all__ = [
    "HEADER_SIZE",
    "MAX_REPLY_SIZE",
    "MAX_REQUEST_SIZE",
    "ActorRow",
    "ApprovalRow",
    "ApprovalsReply",
    "ApprovalsRequest",
    "ApproveRequest",
    "ControlReply",
    "ControlRequest",
    "DecisionReply",
    "ErrorCode",
    "ErrorReply",
    "FlushTipsReply",
    "FlushTipsRequest",
    "FrameReader",
    "FrameTooLargeError",
    "MalformedMessageError",
    "RejectRequest",
    "ReloadReply",
    "ReloadRequest",
    "RevokeReply",
    "RevokeRequest",
    "SessionRow",
    "SessionsReply",
    "SessionsRequest",
    "ShutdownReply",
    "ShutdownRequest",
    "StatusReply",
    "StatusRequest",
    "SupervisorRow",
    "TipCacheRow",
    "decode_reply",
    "decode_request",
    "encode_frame",
]

_HEADER: Final = struct.Struct(">I")
#: Bytes of the length prefix.
HEADER_SIZE: Final = _HEADER.size
#: The largest request body the server reads (requests are a few hundred bytes).
MAX_REQUEST_SIZE: Final = 64 * 1024
#: The largest reply body the client reads (a session listing grows with the sessions).
MAX_REPLY_SIZE: Final = 64 * 1024 * 1024

# Why a request failed: a malformed message, a frame over the limit, a peer that is not the
# owner, too many connections, an actor not running (or too slow), a hook the daemon was
# started without, or an unexpected failure (its details only in the daemon's log).
ErrorCode = Literal["bad_request", "frame_too_large", "forbidden", "busy", "unavailable",
                    "unsupported", "internal"]  # fmt: skip


class _Wire(msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """Shared options: immutable, camelCase, strict."""


class _Message(_Wire, frozen=True, kw_only=True, tag_field="type"):
    """A top-level message: tagged by ``type``."""


# ------------------------------------------------------------------------------ requests


class StatusRequest(_Message, frozen=True, kw_only=True, tag="status"):
    """Actor statistics, counts, the TIP cache summary and the pending approvals."""


class SessionsRequest(_Message, frozen=True, kw_only=True, tag="sessions"):
    """Every live session."""


class RevokeRequest(_Message, frozen=True, kw_only=True, tag="revoke"):
    """Log a session out: its session, TIP, credentials, bindings and approvals."""

    session_key: str


class FlushTipsRequest(_Message, frozen=True, kw_only=True, tag="flush-tips"):
    """Drop every cached TIP (the next demand mints a new one)."""


class ReloadRequest(_Message, frozen=True, kw_only=True, tag="reload"):
    """Re-read the configuration; an invalid one is rejected and the old one kept."""


class ApprovalsRequest(_Message, frozen=True, kw_only=True, tag="approvals"):
    """The live approvals, oldest first."""


class ApproveRequest(_Message, frozen=True, kw_only=True, tag="approve"):
    """Approve a pending approval by id (the operator may decide any session's)."""

    approval_id: str


class RejectRequest(_Message, frozen=True, kw_only=True, tag="reject"):
    """Reject a pending approval by id."""

    approval_id: str


class ShutdownRequest(_Message, frozen=True, kw_only=True, tag="shutdown"):
    """Stop the daemon gracefully."""


ControlRequest: TypeAlias = (
    StatusRequest
    | SessionsRequest
    | RevokeRequest
    | FlushTipsRequest
    | ReloadRequest
    | ApprovalsRequest
    | ApproveRequest
    | RejectRequest
    | ShutdownRequest
)
"""Everything an operator can ask."""

# ------------------------------------------------------------------------------- replies


class ActorRow(_Wire, frozen=True, kw_only=True):
    """One actor, as the kernel sees it."""

    name: str
    running: bool
    mailbox_depth: int
    mailbox_size: int
    peak_depth: int
    handled: int
    restarts: int
    busy: bool


class SupervisorRow(_Wire, frozen=True, kw_only=True):
    """One supervisor: its restart decisions and its intensity (restarts per period)."""

    name: str
    strategy: str
    running: bool
    restarts: int
    max_restarts: int
    period: float
    children: int


class TipCacheRow(_Wire, frozen=True, kw_only=True):
    """The TIP cache: sizes and lifetime counters (no token, no session key)."""

    cached: int
    hits: int
    misses: int
    mints: int
    refreshes: int
    failures: int
    logged_out: int
    held_back: int = 0  # a default: a newer `ctl` still reads an older server's reply
    renewals: int
    scheduled: int
    in_flight: int
    linked: int


class ApprovalRow(_Wire, frozen=True, kw_only=True):
    """One approval of a risky tool call (its params are never kept, only their digest)."""

    id: str
    session_key: str
    tool_name: str
    risk: str
    reason: str
    summary: str
    status: str
    #: Seconds until it expires (negative once past).
    expires_in: float
    decided_by: str | None = None


class SessionRow(_Wire, frozen=True, kw_only=True):
    """One live session: who, until when, its TIP's expiry and its env bindings."""

    session_key: str
    sub: str
    name: str | None = None
    email: str | None = None
    #: When the user logged in, epoch seconds.
    login_at: float
    #: Seconds until the user token expires.
    expires_in: float
    #: Whether a refresh token allows silent renewal.
    renewable: bool
    #: Seconds until the cached TIP expires; None when no TIP is cached.
    tip_expires_in: float | None = None
    #: provider → env var name (names only, never values).
    bindings: dict[str, str] = msgspec.field(default_factory=dict)


class StatusReply(_Message, frozen=True, kw_only=True, tag="status"):
    """The answer to :class:`StatusRequest`."""

    version: str
    pid: int
    uptime: float
    actors: tuple[ActorRow, ...]
    supervisors: tuple[SupervisorRow, ...]
    sessions: int
    bound_sessions: int
    pending_logins: int
    credentials: int
    tips: TipCacheRow
    approvals: tuple[ApprovalRow, ...]


class SessionsReply(_Message, frozen=True, kw_only=True, tag="sessions"):
    """The answer to :class:`SessionsRequest`, sorted by session key."""

    sessions: tuple[SessionRow, ...]


class RevokeReply(_Message, frozen=True, kw_only=True, tag="revoke"):
    """What a revoke removed (all zero/False: there was nothing to revoke)."""

    session_key: str
    session_removed: bool
    tip_dropped: bool
    credentials_dropped: int
    bindings_removed: int
    approvals_cancelled: int


class FlushTipsReply(_Message, frozen=True, kw_only=True, tag="flush-tips"):
    """How many cached TIPs were dropped."""

    dropped: int


class ReloadReply(_Message, frozen=True, kw_only=True, tag="reload"):
    """Whether the new configuration was applied; ``problems`` say why not (no values)."""

    ok: bool
    message: str
    problems: tuple[str, ...] = ()


class ApprovalsReply(_Message, frozen=True, kw_only=True, tag="approvals"):
    """The answer to :class:`ApprovalsRequest`."""

    approvals: tuple[ApprovalRow, ...]


class DecisionReply(_Message, frozen=True, kw_only=True, tag="decision"):
    """The answer to an approve or reject; ``refusal`` says why it was refused."""

    ok: bool
    approval_id: str
    message: str
    refusal: str | None = None
    approval: ApprovalRow | None = None


class ShutdownReply(_Message, frozen=True, kw_only=True, tag="shutdown"):
    """The daemon is stopping."""

    message: str


class ErrorReply(_Message, frozen=True, kw_only=True, tag="error"):
    """A request that could not be served; the message is safe to show."""

    code: ErrorCode
    message: str


ControlReply: TypeAlias = (
    StatusReply
    | SessionsReply
    | RevokeReply
    | FlushTipsReply
    | ReloadReply
    | ApprovalsReply
    | DecisionReply
    | ShutdownReply
    | ErrorReply
)
"""Everything the daemon answers."""

# -------------------------------------------------------------------------------- frames

_ENCODER: Final = msgspec.json.Encoder()
_REQUESTS: Final[msgspec.json.Decoder[ControlRequest]] = msgspec.json.Decoder(ControlRequest)
_REPLIES: Final[msgspec.json.Decoder[ControlReply]] = msgspec.json.Decoder(ControlReply)
# msgspec names the field and the expected type, and may quote a bad tag value: capped, so
# an error reply stays small whatever was sent.
_PROBLEM: Final = 200


class FrameTooLargeError(Exception):
    """A frame's length prefix is over the limit; the stream cannot be trusted any more."""

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(f"a frame of {length} bytes is over the limit of {limit} bytes")
        self.length = length
        self.limit = limit


class MalformedMessageError(Exception):
    """A frame whose body is not a known message (the stream itself is still in step)."""


def encode_frame(message: ControlRequest | ControlReply) -> bytes:
    """Encode one message as a frame: its 4-byte big-endian length, then its JSON."""
    body = _ENCODER.encode(message)
    return _HEADER.pack(len(body)) + body


def decode_request(body: bytes) -> ControlRequest:
    """Decode a frame body as a request.

    Raises:
        MalformedMessageError: Not JSON, an unknown ``type``, or fields that do not fit;
            the message is msgspec's (what and where, e.g. ``at `$.sessionKey```), capped.
    """
    try:
        return _REQUESTS.decode(body)
    # msgspec raises UnicodeDecodeError, not DecodeError, for bad UTF-8 inside a string.
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise MalformedMessageError(f"malformed request: {str(exc)[:_PROBLEM]}") from None


def decode_reply(body: bytes) -> ControlReply:
    """Decode a frame body as a reply.

    Raises:
        MalformedMessageError: Not a reply this client understands.
    """
    try:
        return _REPLIES.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise MalformedMessageError(f"malformed reply: {str(exc)[:_PROBLEM]}") from None


class FrameReader:
    """Splits a byte stream into frame bodies (sans-IO: feed bytes, take frames).

    Args:
        max_size: The largest body accepted.
    """

    __slots__ = ("_buffer", "_max_size")

    def __init__(self, max_size: int) -> None:
        self._buffer = bytearray()
        self._max_size = max_size

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a frame (0: at a frame boundary)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> None:
        """Append received bytes."""
        self._buffer += data

    def next_frame(self) -> bytes | None:
        """Return the next complete frame body, or None if more bytes are needed.

        Raises:
            FrameTooLargeError: The next frame's length prefix is over ``max_size``; checked
                as soon as the prefix is in, before its body is buffered.
        """
        if len(self._buffer) < HEADER_SIZE:
            return None
        (length,) = _HEADER.unpack_from(self._buffer)
        if length > self._max_size:
            raise FrameTooLargeError(length, self._max_size)
        end = HEADER_SIZE + length
        if len(self._buffer) < end:
            return None
        body = bytes(self._buffer[HEADER_SIZE:end])
        del self._buffer[:end]
        return body
