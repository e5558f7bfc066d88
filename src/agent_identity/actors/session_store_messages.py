"""The session store's messages, its statistics, and the typed client callers use.

Callers never build these envelopes themselves: they hold a :class:`SessionStoreClient`
(``SessionStoreClient(store.address)``) and call its methods. The envelopes are internal to the
process and never serialised; their ``repr()`` masks tokens (records mask themselves).
"""

from __future__ import annotations

from dataclasses import dataclass

from agent_identity.kernel import ActorStatistics, Address, Request
from agent_identity.storage import SessionRecord, SessionView

__all__ = [
    "DeleteSession",
    "Flush",
    "GetBindings",
    "GetRefreshToken",
    "GetSession",
    "GetStatistics",
    "ListSessions",
    "PutSession",
    "SessionStoreClient",
    "SessionStoreMsg",
    "SessionStoreStatistics",
    "SetBinding",
    "StopFlush",
    "UnsetBinding",
]


@dataclass(frozen=True, slots=True)
class SessionStoreStatistics:
    """A snapshot of the session store, for ``/status``, ``ctl status`` and metrics."""

    #: The kernel's view of the actor (mailbox depth, handled, restarts, ...).
    actor: ActorStatistics
    #: Sessions held in memory that have not expired.
    sessions: int
    #: Expired sessions kept because a refresh token may still renew them.
    renewable_sessions: int
    #: Sessions with at least one env binding.
    bound_sessions: int
    #: Changes applied in memory during the current run.
    changes: int
    #: How many of those changes are known to be durable on disk.
    durable_changes: int
    #: Callers waiting for their change to become durable.
    pending_acks: int
    #: Whether a write is in progress.
    writing: bool
    #: Completed backend writes (``save`` calls), over the store's lifetime.
    writes: int
    #: Backend loads (one per start), over the store's lifetime.
    loads: int
    #: Duration of the last completed write, in seconds of Trio's clock.
    last_write_seconds: float | None


@dataclass(frozen=True, slots=True)
class GetSession(Request[SessionView | None]):
    """The live session of ``key`` (without its refresh token), or ``None``.

    With ``renewable``, also an expired session that a refresh token may still renew.
    """

    key: str
    renewable: bool = False


@dataclass(frozen=True, slots=True)
class GetRefreshToken(Request[str | None]):
    """The refresh token of the live or renewable session of ``key`` (for renewals only)."""

    key: str


@dataclass(frozen=True, slots=True)
class PutSession(Request[None]):
    """Create or replace a session; answered once the change is durable."""

    record: SessionRecord


@dataclass(frozen=True, slots=True)
class DeleteSession(Request[bool]):
    """Remove a session and its bindings; answered once durable."""

    key: str


@dataclass(frozen=True, slots=True)
class ListSessions(Request[list[SessionView]]):
    """Every live session, sorted by key."""


@dataclass(frozen=True, slots=True)
class GetBindings(Request[dict[str, str]]):
    """The env bindings of ``key``: ``{provider: envVar}``."""

    key: str


@dataclass(frozen=True, slots=True)
class SetBinding(Request[None]):
    """Bind ``provider``'s credential to ``env_var`` for ``key``; answered once durable."""

    key: str
    provider: str
    env_var: str


@dataclass(frozen=True, slots=True)
class UnsetBinding(Request[bool]):
    """Remove ``provider``'s binding for ``key``; answered once durable."""

    key: str
    provider: str


@dataclass(frozen=True, slots=True)
class Flush(Request[None]):
    """Answered once every change accepted so far is durable."""


@dataclass(frozen=True, slots=True)
class GetStatistics(Request[SessionStoreStatistics]):
    """The store's statistics."""


@dataclass(frozen=True, slots=True)
class StopFlush:
    """Internal: queued by ``request_stop`` so the last turn waits for the last write."""


SessionStoreMsg = (
    GetSession
    | GetRefreshToken
    | PutSession
    | DeleteSession
    | ListSessions
    | GetBindings
    | SetBinding
    | UnsetBinding
    | Flush
    | GetStatistics
    | StopFlush
)


class SessionStoreClient:
    """Typed access to a session store through its address.

    Reads are answered from memory and never wait for a disk write. Every mutating call
    returns only once its change is durable on disk (a crash afterwards cannot lose it).
    If a call is cancelled or times out, the change may or may not have been applied.

    All methods may raise :class:`~agent_identity.kernel.ActorStopped` (the store is not
    running, or stopped or crashed before answering) and
    :class:`~agent_identity.kernel.DeadlineExceeded`.

    Args:
        address: The store's address (``store.address``).
    """

    __slots__ = ("_address",)

    def __init__(self, address: Address[SessionStoreMsg]) -> None:
        self._address = address

    def __repr__(self) -> str:
        return f"<SessionStoreClient of {self._address.name!r}>"

    async def get(self, key: str, *, renewable: bool = False) -> SessionView | None:
        """Return the session of ``key`` without its refresh token, or ``None``.

        Args:
            key: The effective session key.
            renewable: Also return a session whose user token has expired but whose refresh
                token may still renew it (check :meth:`SessionView.expired`). For the
                renewal path of the TIP refresher; everyone else wants a usable user token
                and leaves it False.

        Returns:
            The live session (or, with ``renewable``, the renewable one), else ``None``.
        """
        return await self._address.ask(GetSession, key, renewable)

    async def get_refresh_token(self, key: str) -> str | None:
        """Return the refresh token of the session of ``key``, if it has one.

        Answers for live sessions and for expired ones that are still renewable (that is
        when a renewal is needed most). For the OIDC client's silent renewal only: nothing
        else should ever see a refresh token (the spec never returns it to users, tools or
        other processes).
        """
        return await self._address.ask(GetRefreshToken, key)

    async def put(self, record: SessionRecord) -> None:
        """Create or replace the session ``record.session_key``; returns once durable."""
        await self._address.ask(PutSession, record)

    async def delete(self, key: str) -> bool:
        """Remove the session of ``key`` and its env bindings; returns once durable.

        Returns:
            Whether a live session was removed.
        """
        return await self._address.ask(DeleteSession, key)

    async def list(self) -> list[SessionView]:
        """Return every live session (without refresh tokens), sorted by key."""
        return await self._address.ask(ListSessions)

    async def bindings(self, key: str) -> dict[str, str]:
        """Return the env bindings of ``key`` as ``{provider: envVar}`` (a copy)."""
        return await self._address.ask(GetBindings, key)

    async def set_binding(self, key: str, provider: str, env_var: str) -> None:
        """Bind ``provider``'s credential to ``env_var`` for ``key``; returns once durable."""
        await self._address.ask(SetBinding, key, provider, env_var)

    async def unset_binding(self, key: str, provider: str) -> bool:
        """Remove ``provider``'s binding for ``key``; returns once durable.

        Returns:
            Whether there was such a binding.
        """
        return await self._address.ask(UnsetBinding, key, provider)

    async def flush(self) -> None:
        """Return once every change the store has accepted so far is durable."""
        await self._address.ask(Flush)

    async def statistics(self) -> SessionStoreStatistics:
        """Return the store's statistics."""
        return await self._address.ask(GetStatistics)
