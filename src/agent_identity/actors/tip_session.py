"""The user side of a mint: a session's user token, and its renewal with the refresh token.

The TIP refresher reads the session's user token (an OIDC id_token) from the session store.
When that token is about to expire, or the control plane refuses it, and the session has a
refresh token, :class:`SessionTokens` renews it through the OIDC client and writes the renewed
record back through the store (which keeps the rotated refresh token, encrypted). Only the
refresher's single flight of a session ever renews it, so a rotating refresh token is never
spent twice by this process.

A refresh the provider answered but whose new ID token cannot be validated yet (its JWKS
endpoint fails during a key rotation, say) has still spent a rotating refresh token: the
rotated one (carried by :class:`~agent_identity.oidc.RefreshNotValidatedError`) is written to the
store with the old user token, and the renewal is a transient failure, tried again later with
the new refresh token, not a logout. A rotated refresh token the store cannot take at that
moment (it is restarting) is kept in memory, and used instead of the spent one the store still
holds, until a later write succeeds.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol, final

import trio

from agent_identity.actors.session_store_messages import SessionStoreClient
from agent_identity.kernel import KernelError
from agent_identity.oidc import OidcError, RefreshNotValidatedError, TokenSet
from agent_identity.storage import SessionRecord, SessionView

__all__ = ["RenewFailed", "SessionTokens", "UserTokenRenewer", "token_fingerprint"]

# OIDC failures after which the refresh token is useless: the user must log in again.
_FINAL_REASONS = frozenset({"invalid_grant", "id_token_subject_changed"})


class UserTokenRenewer(Protocol):
    """Renews a user token with a refresh token; :class:`~agent_identity.oidc.OidcClient` is one."""

    async def refresh(self, refresh_token: str, *, expected_sub: str | None = None) -> TokenSet:
        """Redeem ``refresh_token``; refuse an ID token for another user than ``expected_sub``.

        Raises:
            RefreshNotValidatedError: The provider answered, but the new ID token could not be
                validated; the error carries the refresh token to use next time.
            OidcError: The provider refused (``invalid_grant``: log in again) or failed.
        """
        ...


@dataclass(frozen=True, slots=True)
class RenewFailed:
    """A renewal that did not produce a new user token."""

    #: Why, for people (never a token).
    reason: str
    #: Whether no later attempt can succeed (no or a spent refresh token): a logout.
    final: bool


def token_fingerprint(token: str) -> str:
    """A short digest of a token, to recognise it later without keeping it."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:32]


@final
class SessionTokens:
    """Reads user tokens from the session store and renews them.

    Args:
        sessions: The session store client.
        renewer: The OIDC client; None when refresh tokens cannot be used.
    """

    __slots__ = ("_renewer", "_sessions", "_unsaved", "renewals")

    def __init__(self, sessions: SessionStoreClient, renewer: UserTokenRenewer | None) -> None:
        self._sessions = sessions
        self._renewer = renewer
        # Session key -> (fingerprint of the spent refresh token the store still holds, the
        # rotated one to use instead): rotated tokens the store could not take yet.
        self._unsaved: dict[str, tuple[str, str]] = {}
        #: Successful renewals, over the object's lifetime.
        self.renewals = 0

    def __repr__(self) -> str:
        return f"<SessionTokens renewer={self._renewer is not None}>"

    @property
    def can_renew(self) -> bool:
        """Whether an OIDC client is available for renewals."""
        return self._renewer is not None

    async def get(self, key: str) -> SessionView | None:
        """The session of ``key`` (live, or expired but renewable with its refresh token), or None.

        Raises:
            KernelError: The session store is not running or missed the deadline.
        """
        return await self._sessions.get(key, renewable=True)

    async def renew(self, view: SessionView) -> SessionView | RenewFailed:
        """Renew the session's user token with its refresh token and store the result.

        Args:
            view: The session as read from the store.

        Returns:
            The renewed session, or why it could not be renewed.
        """
        renewer = self._renewer
        if renewer is None or not view.has_refresh_token:
            await trio.lowlevel.checkpoint()
            return RenewFailed("the session has no refresh token to renew its user token", True)
        key = view.session_key
        try:
            stored = await self._sessions.get_refresh_token(key)
        except KernelError:
            await trio.lowlevel.checkpoint()  # the failed call may not have been one
            return RenewFailed("the session store is not available", False)
        if stored is None:
            self._unsaved.pop(key, None)
            return RenewFailed("the session ended while its user token was being renewed", True)
        refresh_token = self._current(key, stored)
        try:
            tokens = await renewer.refresh(refresh_token, expected_sub=view.sub)
        except RefreshNotValidatedError as exc:
            return await self._keep_rotated(view, stored, refresh_token, exc)
        except OidcError as exc:
            await trio.lowlevel.checkpoint()  # the failed call may not have been one
            final = exc.reason_code in _FINAL_REASONS
            if final:
                self._unsaved.pop(key, None)
            return RenewFailed(f"renewing the user token failed: {exc.message}", final)
        claims = tokens.claims
        record = SessionRecord(
            session_key=view.session_key,
            sub=view.sub,
            user_token=tokens.id_token if claims is not None and tokens.id_token else "",
            expires_at=float(claims.exp) if claims is not None else view.expires_at,
            login_at=view.login_at,
            refresh_token=tokens.refresh_token,
            email=(claims.email if claims is not None else None) or view.email,
            name=(claims.name if claims is not None else None) or view.name,
        )
        if not record.user_token:
            # The provider rotated the refresh token but issued no ID token: keep the rotated
            # refresh token with the old user token, which cannot be renewed this way.
            await self._store(record_with(view, refresh_token=tokens.refresh_token), stored)
            return RenewFailed("the identity provider issued no new ID token", True)
        failed = await self._store(record, stored)
        if failed is not None:
            return failed
        self.renewals += 1
        return record.view()

    def _current(self, key: str, stored: str) -> str:
        """The refresh token to redeem: ``stored``, or a rotated one the store has not taken."""
        unsaved = self._unsaved.get(key)
        if unsaved is None:
            return stored
        if unsaved[0] == token_fingerprint(stored):
            return unsaved[1]  # the store still holds the spent one
        del self._unsaved[key]  # the store moved on (a new login): its token is the one
        return stored

    async def _keep_rotated(
        self, view: SessionView, stored: str, spent: str, error: RefreshNotValidatedError
    ) -> RenewFailed:
        """Keep the refresh token of a refresh whose ID token could not be validated yet.

        The provider answered, so it may have spent ``spent``; the refresh token it returned
        is stored with the current user token and the next renewal uses it. Transient: the
        validation may work next time (the JWKS endpoint is back, say).
        """
        reason = f"renewing the user token failed: {error.message}"
        kept = error.tokens.refresh_token
        if kept is None or kept == spent:
            await trio.lowlevel.checkpoint()
            return RenewFailed(reason, False)
        failed = await self._store(record_with(view, refresh_token=kept), stored)
        if failed is not None:
            return RenewFailed(
                f"{reason}; {failed.reason} (the rotated refresh token is kept in memory)", False
            )
        return RenewFailed(f"{reason} (the rotated refresh token was kept)", False)

    async def _store(self, record: SessionRecord, stored: str) -> RenewFailed | None:
        """Write a renewal's record; remember its rotated refresh token if the store fails.

        Args:
            record: The record to write.
            stored: The refresh token the store holds (now spent when ``record`` has another).
        """
        key = record.session_key
        if record.refresh_token is not None and record.refresh_token != stored:
            # Remembered before the write: a write that fails, or is cancelled (the flight's
            # timeout), must not lose the token the provider rotated to.
            self._unsaved[key] = (token_fingerprint(stored), record.refresh_token)
        failed = await self._put(record)
        if failed is None:
            self._unsaved.pop(key, None)
        return failed

    async def _put(self, record: SessionRecord) -> RenewFailed | None:
        try:
            await self._sessions.put(record)
        except KernelError:
            await trio.lowlevel.checkpoint()  # the failed call may not have been one
            return RenewFailed("the session store is not available to keep the renewal", False)
        return None


def record_with(view: SessionView, *, refresh_token: str | None) -> SessionRecord:
    """The stored record of ``view`` with another refresh token."""
    return SessionRecord(
        session_key=view.session_key,
        sub=view.sub,
        user_token=view.user_token,
        expires_at=view.expires_at,
        login_at=view.login_at,
        refresh_token=refresh_token,
        email=view.email,
        name=view.name,
    )
