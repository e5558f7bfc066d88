"""The format of ``sessions.json``: an AES-256-GCM envelope, and the plaintext of older versions.

Current format (version 1), one JSON object::

    {"version": 1, "alg": "A256GCM", "kid": "<16 hex>", "nonce": "<b64>", "ciphertext": "<b64>"}

* ``kid`` is a short hash of the key (:class:`~agent_identity.storage._keys.StoreKey`), so a
  file encrypted with another key is reported as such.
* ``nonce`` is 96 random bits, fresh for every write (a random nonce per message is safe for
  far more writes than a session store will ever make under one key).
* The header ``{"version","alg","kid","nonce"}``, serialised compactly in that order, is the
  GCM associated data: changing any header field makes authentication fail.
* ``ciphertext`` (with the 16-byte tag appended, as ``AESGCM`` produces it) decrypts to
  ``{"sessions": [<SessionRecord>, ...]}`` with camelCase field names.

Legacy format (plaintext, written by older versions of the plugin)::

    {"<sessionKey>": {"userToken": "...", "sub": "...", "expiresAt": 1767225600000,
                      "refreshToken": "...", "loginAt": ..., "email": ..., "name": ...}, ...}

``expiresAt``/``loginAt`` may be epoch milliseconds or seconds (values above 10^11 are taken
as milliseconds); extra fields are ignored. A legacy file is migrated: the store rewrites it
in the current format at once.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec
from cryptography.exceptions import InvalidTag

from agent_identity.storage._errors import UnreadableFileError
from agent_identity.storage._keys import StoreKey
from agent_identity.storage._records import SessionRecord

__all__ = [
    "ALG",
    "FORMAT_VERSION",
    "NONCE_BYTES",
    "ParsedSessions",
    "encode_sessions",
    "parse_sessions_file",
    "parse_sessions_file_general",
    "seal",
    "seal_with_nonce",
]

FORMAT_VERSION = 1
ALG = "A256GCM"
NONCE_BYTES = 12

# Above this, a legacy timestamp is in milliseconds (10^11 s is the year 5138).
_MILLIS_THRESHOLD = 1e11
_ENVELOPE_FIELDS = frozenset({"version", "alg", "kid", "nonce", "ciphertext"})


class _Header(msgspec.Struct, frozen=True):
    """The authenticated header; its compact JSON (in this field order) is the GCM AAD."""

    version: int
    alg: str
    kid: str
    nonce: str


class _Envelope(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    version: int
    alg: str
    kid: str
    nonce: str
    ciphertext: str


class _SealedEnvelope(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An :class:`_Envelope` read in one pass, its ciphertext decoded from base64 on the way."""

    version: int
    alg: str
    kid: str
    nonce: str
    ciphertext: bytes


class _Payload(msgspec.Struct, frozen=True):
    sessions: list[SessionRecord]


class _LegacySession(msgspec.Struct, frozen=True, rename="camel"):
    user_token: str
    sub: str
    expires_at: float
    refresh_token: str | None = None
    login_at: float | None = None
    email: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedSessions:
    """What :func:`parse_sessions_file` found.

    Attributes:
        sessions: ``{sessionKey: record}``.
        plaintext: The decrypted payload (``None`` for a legacy file).
        legacy: Whether the file was a plaintext file of an older version.
        nonce: The envelope's nonce (``None`` for a legacy file): unique per write, it
            names this version of the file (the journal says which one it extends).
    """

    sessions: dict[str, SessionRecord]
    plaintext: bytes | None
    legacy: bool
    nonce: str | None = None


_payload_encoder = msgspec.json.Encoder()
_payload_decoder = msgspec.json.Decoder(_Payload)
_sealed_decoder = msgspec.json.Decoder(_SealedEnvelope)


def encode_sessions(records: Iterable[SessionRecord]) -> bytes:
    """Serialise records into the (not yet encrypted) payload."""
    return _payload_encoder.encode(_Payload(sessions=list(records)))


def seal(plaintext: bytes, key: StoreKey) -> bytes:
    """Encrypt a payload into the bytes of ``sessions.json``, with a fresh random nonce."""
    return seal_with_nonce(plaintext, key)[0]


def seal_with_nonce(plaintext: bytes, key: StoreKey) -> tuple[bytes, str]:
    """:func:`seal`, also returning the nonce (base64) that names this version of the file."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    header = _Header(FORMAT_VERSION, ALG, key.kid, _b64(nonce))
    ciphertext = key.aead.encrypt(nonce, plaintext, msgspec.json.encode(header))
    envelope = _Envelope(header.version, header.alg, header.kid, header.nonce, _b64(ciphertext))
    return msgspec.json.encode(envelope), header.nonce


def parse_sessions_file(data: bytes, key: StoreKey, *, now: float) -> ParsedSessions:
    """Read ``sessions.json`` in either format.

    Args:
        data: The file's content.
        key: The store key.
        now: Wall-clock time (epoch seconds): the login time given to legacy entries
            that have none.

    Returns:
        The sessions, and whether the file was a legacy one.

    Raises:
        UnreadableFileError: Not JSON, not either format, encrypted with another key,
            tampered with, or decrypted to something that is not a session list.
    """
    # The current format is read in one typed pass that decodes the ciphertext from base64 as
    # it goes (10k sessions are ~15 MB, read on every start), instead of a string copy and a
    # second pass. Whatever that pass refuses, other formats and damaged files included, gets
    # the verdict of the general path below, as before.
    try:
        sealed = _sealed_decoder.decode(data)
    except msgspec.DecodeError:
        pass
    else:
        return _decrypted_sessions(*_open_sealed(sealed, key))
    return parse_sessions_file_general(data, key, now=now)


def parse_sessions_file_general(data: bytes, key: StoreKey, *, now: float) -> ParsedSessions:
    """:func:`parse_sessions_file` without its one-pass read: the verdict of record.

    Every file the one-pass read refuses comes here; the tests check that both give the
    same sessions or the same error for what both read.
    """
    try:
        document = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise UnreadableFileError(f"not valid JSON ({exc})") from None
    if not isinstance(document, dict):
        raise UnreadableFileError("not a JSON object")
    if _ENVELOPE_FIELDS & document.keys() or any(
        not isinstance(value, dict) for value in document.values()
    ):
        return _decrypted_sessions(*_open_envelope(document, key))
    return ParsedSessions(sessions=_parse_legacy(document, now), plaintext=None, legacy=True)


def _decrypted_sessions(plaintext: bytes, nonce: str) -> ParsedSessions:
    try:
        payload = _payload_decoder.decode(plaintext)
    except msgspec.DecodeError as exc:
        raise UnreadableFileError(f"decrypted content is not a session list ({exc})") from None
    sessions = {record.session_key: record for record in payload.sessions}
    return ParsedSessions(sessions=sessions, plaintext=plaintext, legacy=False, nonce=nonce)


def _open_envelope(document: dict[str, Any], key: StoreKey) -> tuple[bytes, str]:
    try:
        envelope = msgspec.convert(document, _Envelope)
    except msgspec.ValidationError as exc:
        raise UnreadableFileError(f"not a valid encrypted envelope ({exc})") from None
    return _open_sealed(envelope, key)


def _open_sealed(envelope: _Envelope | _SealedEnvelope, key: StoreKey) -> tuple[bytes, str]:
    if envelope.version != FORMAT_VERSION:
        raise UnreadableFileError(f"unsupported format version {envelope.version}")
    if envelope.alg != ALG:
        raise UnreadableFileError(f"unsupported algorithm {envelope.alg!r}")
    if envelope.kid != key.kid:
        raise UnreadableFileError(
            f"encrypted with another key (key id {envelope.kid!r}; the current key from "
            f"{key.source} has key id {key.kid!r})"
        )
    nonce = _unb64(envelope.nonce, "nonce")
    if len(nonce) != NONCE_BYTES:
        raise UnreadableFileError(f"the nonce is {len(nonce)} bytes, not {NONCE_BYTES}")
    ciphertext = envelope.ciphertext
    if isinstance(ciphertext, str):
        ciphertext = _unb64(ciphertext, "ciphertext")
    header = _Header(envelope.version, envelope.alg, envelope.kid, envelope.nonce)
    try:
        return key.aead.decrypt(nonce, ciphertext, msgspec.json.encode(header)), envelope.nonce
    except InvalidTag:
        raise UnreadableFileError(
            "authentication failed: the file was modified, or encrypted with another key"
        ) from None


def _parse_legacy(document: dict[str, Any], now: float) -> dict[str, SessionRecord]:
    sessions: dict[str, SessionRecord] = {}
    for session_key, entry in document.items():
        try:
            old = msgspec.convert(entry, _LegacySession)
        except msgspec.ValidationError as exc:
            # The error names the field and type only, never a value.
            raise UnreadableFileError(f"a plaintext session entry is invalid ({exc})") from None
        sessions[session_key] = SessionRecord(
            session_key=session_key,
            sub=old.sub,
            user_token=old.user_token,
            expires_at=_epoch_seconds(old.expires_at),
            login_at=now if old.login_at is None else _epoch_seconds(old.login_at),
            refresh_token=old.refresh_token,
            email=old.email,
            name=old.name,
        )
    return sessions


def _epoch_seconds(value: float) -> float:
    return value / 1000 if value > _MILLIS_THRESHOLD else value


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    # msgspec decodes base64 about five times faster than binascii (the ciphertext of 10k
    # sessions is read on every start). It accepts a subset of what b64decode(validate=True)
    # accepts, with the same bytes; whatever it refuses gets b64decode's verdict, as before.
    with contextlib.suppress(msgspec.ValidationError):
        return msgspec.convert(text, bytes)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise UnreadableFileError(f"the {what} is not valid base64") from None
