"""The session journal: an encrypted append log of changes since the last ``sessions.json``.

Rewriting the whole of ``sessions.json`` for every login costs time in proportion to the
number of sessions (encrypting and ``fsync``-ing 15 MB for 10k sessions). With the journal a
save appends one sealed *frame* holding only what changed (sessions put, session keys
deleted) and ``fdatasync``-s it; ``sessions.json`` becomes the base snapshot the journal
extends, and is rewritten only when the journal has grown as large as it (compaction).

File format (``sessions.journal``, mode 0600)::

    "AIJ1" u32 len  header JSON     {"version":1,"alg":"A256GCM","kid":..,"base":..,"id":..}
    u32 len  nonce(12) ciphertext   frame 0: AES-256-GCM of {"put":[record..],"delete":[key..]}
    u32 len  nonce(12) ciphertext   frame 1 ...

* ``base`` is the nonce of the ``sessions.json`` the journal extends (unique per write of
  it): after a compaction cut short between the new ``sessions.json`` and the removal of the
  journal, the journal names an older base and is *stale* (its changes are all in the
  snapshot); ``id`` is random per journal.
* Every frame is authenticated with the associated data ``header JSON || u64 frame index``:
  frames cannot be reordered, moved between journals, or have their header changed.
* A frame is appended with one ``write`` and acknowledged only after ``fdatasync``. A crash
  may leave a *torn tail* (a frame cut short, or zeros): it was never acknowledged, so
  :func:`read_journal` reports where the whole frames end and the backend truncates there. A
  whole frame that fails authentication is not a torn write: it is reported as unreadable.

Everything here blocks; the backend runs it in a worker thread.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import struct
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, final

import msgspec
from cryptography.exceptions import InvalidTag

from agent_identity.storage._envelope import ALG, FORMAT_VERSION, NONCE_BYTES
from agent_identity.storage._errors import UnreadableFileError
from agent_identity.storage._files import FILE_MODE, fsync_dir
from agent_identity.storage._keys import StoreKey
from agent_identity.storage._records import SessionRecord

__all__ = [
    "JOURNAL_FILE",
    "MAGIC",
    "Change",
    "Journal",
    "JournalContents",
    "diff_sessions",
    "read_journal",
    "remove",
    "replay",
    "truncate",
]

JOURNAL_FILE: Final = "sessions.journal"
"""The journal's file name in ``dataDir``."""
MAGIC: Final = b"AIJ1"

_LENGTH = struct.Struct(">I")
_INDEX = struct.Struct(">Q")
_TAG_BYTES = 16
_MIN_FRAME = NONCE_BYTES + _TAG_BYTES


class _Header(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    version: int
    alg: str
    kid: str
    base: str
    id: str


class Change(msgspec.Struct, frozen=True, omit_defaults=True):
    """One frame's content: sessions created or replaced, and session keys removed.

    Attributes:
        put: The new records (their keys are not in ``delete``).
        delete: The removed session keys.
    """

    put: list[SessionRecord] = msgspec.field(default_factory=list)
    delete: list[str] = msgspec.field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.put or self.delete)

    def __repr__(self) -> str:  # records mask their tokens; keys are not secret
        return f"Change(put={[r.session_key for r in self.put]!r}, delete={self.delete!r})"

    def apply(self, sessions: MutableMapping[str, SessionRecord]) -> None:
        """Apply the change to ``sessions`` in place."""
        for key in self.delete:
            sessions.pop(key, None)
        for record in self.put:
            sessions[record.session_key] = record


_change_encoder = msgspec.json.Encoder()
_change_decoder = msgspec.json.Decoder(Change)


def diff_sessions(
    before: Mapping[str, SessionRecord], after: Mapping[str, SessionRecord]
) -> Change:
    """What turns ``before`` into ``after``.

    Records are immutable and the store replaces a record to change it, so an identical
    object is unchanged; a different but equal one is unchanged too (a re-put of the same
    values), at the cost of a field comparison.
    """
    put = [
        record
        for key, record in after.items()
        if (old := before.get(key)) is not record and old != record
    ]
    added = sum(record.session_key not in before for record in put)
    if len(before) + added == len(after):  # every key of before is still there
        return Change(put=put)
    return Change(put=put, delete=[key for key in before if key not in after])


@dataclass(frozen=True, slots=True)
class JournalContents:
    """What :func:`read_journal` found.

    Attributes:
        stale: The journal extends another snapshot than the current one (ignore it).
        changes: The frames' changes, in order.
        end: Where the last whole frame ends (the length to keep).
        torn: Bytes after ``end`` that are not a whole frame (a write cut short).
        header: The header frame, to append more frames after ``end``.
    """

    stale: bool = False
    changes: list[Change] = field(default_factory=list)
    end: int = 0
    torn: bool = False
    header: bytes = b""


def read_journal(data: bytes, key: StoreKey, base: str | None) -> JournalContents:
    """Parse a journal that should extend the snapshot whose nonce is ``base``.

    Args:
        data: The file's content.
        key: The store key.
        base: The current ``sessions.json``'s nonce (None: there is no readable one).

    Returns:
        The changes and where they end; ``stale`` if the journal names another base; an
        empty, torn result if even the header was cut short (the journal's creation was
        interrupted, before anything was acknowledged).

    Raises:
        UnreadableFileError: Not a journal, another key, another format, or a whole frame
            that fails authentication or does not hold a change.
    """
    if len(data) < len(MAGIC) + _LENGTH.size or data[: len(MAGIC)] != MAGIC:
        if MAGIC.startswith(data[: len(MAGIC)]) or not data.strip(b"\0"):
            return JournalContents(torn=True)
        raise UnreadableFileError("not a session journal")
    (size,) = _LENGTH.unpack_from(data, len(MAGIC))
    start = len(MAGIC) + _LENGTH.size
    if start + size > len(data):
        return JournalContents(torn=True)
    raw_header = data[start : start + size]
    header = _parse_header(raw_header, key)
    if header.base != base:
        return JournalContents(stale=True)
    changes: list[Change] = []
    offset = start + size
    while offset < len(data):
        frame = _frame_at(data, offset)
        if frame is None:
            return JournalContents(
                changes=changes, end=offset, torn=True, header=data[: start + size]
            )
        aad = raw_header + _INDEX.pack(len(changes))
        try:
            plaintext = key.aead.decrypt(frame[:NONCE_BYTES], frame[NONCE_BYTES:], aad)
        except InvalidTag:
            raise UnreadableFileError(
                f"frame {len(changes)} failed authentication: the journal was modified"
            ) from None
        try:
            changes.append(_change_decoder.decode(plaintext))
        except msgspec.DecodeError as exc:
            raise UnreadableFileError(f"frame {len(changes)} is not a change ({exc})") from None
        offset += _LENGTH.size + len(frame)
    return JournalContents(changes=changes, end=offset, header=data[: start + size])


def _parse_header(raw: bytes, key: StoreKey) -> _Header:
    try:
        header = msgspec.json.decode(raw, type=_Header)
    except msgspec.DecodeError as exc:
        raise UnreadableFileError(f"the journal header is invalid ({exc})") from None
    if header.version != FORMAT_VERSION:
        raise UnreadableFileError(f"unsupported journal format version {header.version}")
    if header.alg != ALG:
        raise UnreadableFileError(f"unsupported algorithm {header.alg!r}")
    if header.kid != key.kid:
        raise UnreadableFileError(
            f"encrypted with another key (key id {header.kid!r}; the current key from "
            f"{key.source} has key id {key.kid!r})"
        )
    return header


def _frame_at(data: bytes, offset: int) -> bytes | None:
    """The frame (nonce + ciphertext) at ``offset``, or None if the rest is a torn tail."""
    rest = len(data) - offset
    if rest < _LENGTH.size or not data[offset:].strip(b"\0"):
        return None
    (size,) = _LENGTH.unpack_from(data, offset)
    if size > rest - _LENGTH.size:
        return None
    if size < _MIN_FRAME:
        raise UnreadableFileError(f"a frame of {size} bytes is too short")
    return data[offset + _LENGTH.size : offset + _LENGTH.size + size]


@final
class Journal:
    """Appends frames to ``sessions.journal`` for one base snapshot (blocking).

    Args:
        path: The journal file.
        key: The store key.
        base: The nonce of the ``sessions.json`` it extends.
        contents: A journal already on disk (read and, if torn, truncated at ``end``), to
            append after; None to create a new one with the first append.
    """

    def __init__(
        self, path: Path, key: StoreKey, base: str, contents: JournalContents | None = None
    ) -> None:
        self._path = path
        self._key = key
        self._base = base
        self._header = b"" if contents is None else contents.header
        self.frames = 0 if contents is None else len(contents.changes)
        self.size = 0 if contents is None else contents.end

    def append(self, change: Change) -> int:
        """Seal ``change`` as the next frame and append it durably; returns its size.

        Raises:
            OSError: Writing failed; nothing after the previous frame counts (a partial
                frame is a torn tail, dropped on the next load).
        """
        created = not self._header
        if created:
            header = _Header(FORMAT_VERSION, ALG, self._key.kid, self._base, secrets.token_hex(8))
            raw = msgspec.json.encode(header)
            self._header = MAGIC + _LENGTH.pack(len(raw)) + raw
        raw_header = self._header[len(MAGIC) + _LENGTH.size :]
        nonce = secrets.token_bytes(NONCE_BYTES)
        aad = raw_header + _INDEX.pack(self.frames)
        sealed = nonce + self._key.aead.encrypt(nonce, _change_encoder.encode(change), aad)
        frame = _LENGTH.pack(len(sealed)) + sealed
        data = self._header + frame if created else frame
        flags = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
        if created:
            flags |= os.O_CREAT | os.O_TRUNC
        try:
            _write_durably(self._path, data, flags)
        except BaseException:
            if created:
                self._header = b""  # the next append creates it again, from scratch
            raise
        if created:
            fsync_dir(self._path.parent)  # the new file's name must survive a crash too
        self.frames += 1
        self.size += len(data)
        return len(data)


def _write_durably(path: Path, data: bytes, flags: int) -> None:
    fd = os.open(path, flags, FILE_MODE)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fdatasync(fd)
    finally:
        os.close(fd)


def truncate(path: Path, length: int) -> None:
    """Cut a torn tail off the journal, durably."""
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.ftruncate(fd, length)
        os.fsync(fd)
    finally:
        os.close(fd)


def remove(path: Path) -> None:
    """Delete the journal (after a compaction) durably, if it exists."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
        fsync_dir(path.parent)


def replay(sessions: dict[str, SessionRecord], changes: Iterable[Change]) -> int:
    """Apply the changes in order to ``sessions``; returns how many were applied."""
    count = 0
    for change in changes:
        change.apply(sessions)
        count += 1
    return count
