"""What the store keeps: session records, the views handed out, env bindings, snapshots.

Records are immutable msgspec Structs with camelCase names on disk. Their ``repr()`` masks
every token, so a record that ends up in a log line or a traceback leaks nothing.

A session's life has three stages, all decided by wall-clock time:

* **live**: its user token has not expired (:meth:`SessionRecord.expired` is false);
* **renewable**: the user token has expired but the session has a refresh token and expired
  less than :data:`RENEWAL_WINDOW_SECONDS` ago. It is kept, so a gateway that was down
  longer than an id token lives can still renew it silently on restart;
* **dead**: neither; it is pruned (:meth:`SessionRecord.prunable`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

import msgspec

from agent_identity.config import mask_secret

__all__ = ["RENEWAL_WINDOW_SECONDS", "BindingMap", "SessionRecord", "SessionView", "Snapshot"]

#: How long after its user token expired a session with a refresh token is kept for renewal.
#: Refresh tokens rarely outlive 30 days; past that a renewal would fail anyway, and keeping
#: the session longer would only keep a secret on disk for nothing.
RENEWAL_WINDOW_SECONDS: Final = 30 * 86_400.0

BindingMap = Mapping[str, Mapping[str, str]]
"""Env bindings: ``{sessionKey: {provider: envVar}}``, exactly the spec's file shape."""


class SessionRecord(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """One logged-in session, as stored (inside the encrypted ``sessions.json``).

    Attributes:
        session_key: The effective session key (``agent:main:main``, ...).
        sub: The user's subject (OIDC ``sub``).
        user_token: The OIDC id_token of the session (secret).
        expires_at: When the user token expires, in epoch seconds (wall clock).
        login_at: When the session was created, in epoch seconds (wall clock).
        refresh_token: The OIDC refresh token, if any (secret; only the OIDC client reads it).
        email: The ``email`` claim, if the token had one.
        name: The ``name`` claim, if the token had one.
    """

    session_key: str
    sub: str
    user_token: str
    expires_at: float
    login_at: float
    refresh_token: str | None = None
    email: str | None = None
    name: str | None = None

    def __repr__(self) -> str:
        refresh = "None" if self.refresh_token is None else repr(mask_secret(self.refresh_token))
        return (
            f"SessionRecord(session_key={self.session_key!r}, sub={self.sub!r}, "
            f"user_token={mask_secret(self.user_token)!r}, expires_at={self.expires_at!r}, "
            f"login_at={self.login_at!r}, refresh_token={refresh}, "
            f"email={self.email!r}, name={self.name!r})"
        )

    def expired(self, now: float) -> bool:
        """Whether the user token has expired at wall-clock time ``now`` (epoch seconds)."""
        return self.expires_at <= now

    def renewable(self, now: float) -> bool:
        """Whether a refresh token may still renew the session at ``now``.

        True when the session has a refresh token and its user token expired less than
        :data:`RENEWAL_WINDOW_SECONDS` ago (or has not expired yet). Whether the provider
        still honours the refresh token is only known by trying.
        """
        return self.refresh_token is not None and now < self.expires_at + RENEWAL_WINDOW_SECONDS

    def prunable(self, now: float) -> bool:
        """Whether the session is dead at ``now``: expired and no longer renewable."""
        # expired() and not renewable(), spelled out: the store scans every session with
        # this before each write, so two method calls per session add up at 100k sessions.
        expires_at = self.expires_at
        return expires_at <= now and (
            self.refresh_token is None or now >= expires_at + RENEWAL_WINDOW_SECONDS
        )

    def view(self) -> SessionView:
        """The record without its refresh token (what readers of the store get)."""
        return SessionView(
            session_key=self.session_key,
            sub=self.sub,
            user_token=self.user_token,
            expires_at=self.expires_at,
            login_at=self.login_at,
            has_refresh_token=self.refresh_token is not None,
            email=self.email,
            name=self.name,
        )


class SessionView(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A session as readers see it: the user token, never the refresh token.

    Attributes:
        session_key: The effective session key.
        sub: The user's subject.
        user_token: The OIDC id_token (secret; masked in ``repr()``).
        expires_at: When the user token expires, in epoch seconds.
        login_at: When the session was created, in epoch seconds.
        has_refresh_token: Whether a refresh token is stored for silent renewal.
        email: The ``email`` claim, if any.
        name: The ``name`` claim, if any.
    """

    session_key: str
    sub: str
    user_token: str
    expires_at: float
    login_at: float
    has_refresh_token: bool
    email: str | None = None
    name: str | None = None

    def expired(self, now: float) -> bool:
        """Whether the user token has expired at wall-clock time ``now`` (epoch seconds).

        A view read with ``renewable=True`` may be expired when it is handed out: it then
        needs a renewal before its user token is of any use.
        """
        return self.expires_at <= now

    def __repr__(self) -> str:
        return (
            f"SessionView(session_key={self.session_key!r}, sub={self.sub!r}, "
            f"user_token={mask_secret(self.user_token)!r}, expires_at={self.expires_at!r}, "
            f"login_at={self.login_at!r}, has_refresh_token={self.has_refresh_token!r}, "
            f"email={self.email!r}, name={self.name!r})"
        )


def _empty_sessions() -> Mapping[str, SessionRecord]:
    return MappingProxyType({})


def _empty_bindings() -> BindingMap:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the store persists, at one instant.

    A snapshot is what a backend loads and saves. The mappings are never mutated once a
    snapshot is built (the store copies its state into a new one for every write), so a
    writer can encode it in a thread while the store keeps changing its own state.

    Attributes:
        sessions: ``{sessionKey: record}``.
        bindings: ``{sessionKey: {provider: envVar}}``.
    """

    sessions: Mapping[str, SessionRecord] = field(default_factory=_empty_sessions)
    bindings: BindingMap = field(default_factory=_empty_bindings)

    def __repr__(self) -> str:
        return f"<Snapshot sessions={len(self.sessions)} bindings={len(self.bindings)}>"

    def pruned(self, now: float) -> tuple[Snapshot, int]:
        """Drop the sessions that are dead at ``now`` (:meth:`SessionRecord.prunable`).

        Expired sessions that a refresh token may still renew are kept (see the module
        docstring). Bindings are kept: they are the user's choice of env var names, which
        survive a re-login; only a logout (delete) removes them.

        Args:
            now: Wall-clock time in epoch seconds.

        Returns:
            The snapshot without dead sessions (``self`` if none was dead) and how many
            sessions were dropped.
        """
        dead = {key for key, record in self.sessions.items() if record.prunable(now)}
        if not dead:  # the common case: no copy of a mapping of every session
            return self, 0
        live = {key: record for key, record in self.sessions.items() if key not in dead}
        return Snapshot(sessions=live, bindings=self.bindings), len(dead)
