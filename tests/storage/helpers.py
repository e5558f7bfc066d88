"""Shared helpers of the storage tests: a settable wall clock, keys and record factories."""

from __future__ import annotations

from pathlib import Path

from agent_identity.storage import SessionRecord
from agent_identity.storage._envelope import parse_sessions_file
from agent_identity.storage._keys import StoreKey

T0 = 1_800_000_000.0
"""The fake wall clock's start (2027-01-15), epoch seconds."""

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


class WallClock:
    """A settable stand-in for ``time.time``."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def token(label: str) -> str:
    """A recognisable fake token (long enough to be masked with a tail)."""
    return f"eyJ-{label}-SECRET-TOKEN-VALUE-0123456789"


def record(
    key: str,
    *,
    expires_in: float = 3600,
    now: float = T0,
    refresh: bool = True,
    sub: str | None = None,
) -> SessionRecord:
    return SessionRecord(
        session_key=key,
        sub=sub or f"user-{key}",
        user_token=token(f"id-{key}"),
        expires_at=now + expires_in,
        login_at=now,
        refresh_token=token(f"refresh-{key}") if refresh else None,
        email=f"{key}@example.com",
        name=f"User {key}",
    )


def decrypt_sessions(data_dir: Path, key: bytes | None = None) -> dict[str, SessionRecord]:
    """Read ``sessions.json`` without changing anything (the key from ``store.key`` if None)."""
    raw_key = key if key is not None else (data_dir / "store.key").read_bytes()
    data = (data_dir / "sessions.json").read_bytes()
    parsed = parse_sessions_file(data, StoreKey(raw_key, source="test"), now=0.0)
    assert not parsed.legacy
    return parsed.sessions
