"""The session store actor: sessions and env bindings in memory, durable through a backend.

It is the only writer of the store's files. Reads are answered from memory; writes are
group-committed by a writer task so the mailbox never waits for a disk::

    backend = FileBackend.from_config(config, env)
    store = SessionStore(backend)
    root = Supervisor([store.child_spec("session_store"), ...], strategy=Strategy.REST_FOR_ONE)
    ...
    sessions = SessionStoreClient(store.address)
    await sessions.put(record)  # returns once the record is on disk
    view = await sessions.get(record.session_key)

How a change becomes durable (group commit):

1. The handler applies the change to memory at once (so later reads see it), bumps the run's
   change counter and parks the caller's reply with the counter value it needs.
2. The writer task, a sibling of the mailbox loop in the store's own nursery, wakes up, takes
   a snapshot of the whole state (and the counter value it covers) in one synchronous step,
   and awaits ``backend.save(snapshot)``, which runs in a worker thread.
3. When the save returns, every parked reply whose change the snapshot covers is answered.
   Changes that arrived during the save are all covered by the *next* snapshot: a burst of N
   changes costs at most two writes, however large N is.

A change that changes nothing (deleting a missing session, setting a binding to its current
value) is answered as soon as the state it observed is durable: at once if nothing is
pending, else with the write that covers the pending changes.

Failures: if a save raises, the writer's error crashes the store (its supervisor restarts
it, which reloads from disk); the callers still waiting get
:class:`~agent_identity.kernel.ActorStopped`: their change may or may not be on disk. A
graceful stop (``request_stop``) handles the queued messages, waits for the last write and
answers everyone before :meth:`SessionStore.run` returns.

Expiry (see :mod:`agent_identity.storage._records`): a session whose user token has expired
is never returned by ``get`` and ``list``, but while its refresh token may still renew it
(:meth:`~agent_identity.storage.SessionRecord.renewable`) it is kept, on disk too, and the
TIP refresher can read it with ``get(key, renewable=True)`` and its refresh token with
``get_refresh_token``. That is how a gateway that was down longer than an id token lives
renews its sessions silently on restart. Dead sessions (expired and no longer renewable) are
dropped by the backend on load, from memory before each write, and are never returned.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import ClassVar, TypeVar, assert_never, final

import trio

from agent_identity.actors.session_store_messages import (
    DeleteSession,
    Flush,
    GetBindings,
    GetRefreshToken,
    GetSession,
    GetStatistics,
    ListSessions,
    PutSession,
    SessionStoreClient,
    SessionStoreMsg,
    SessionStoreStatistics,
    SetBinding,
    StopFlush,
    UnsetBinding,
)
from agent_identity.kernel import Actor, ActorStopped, MailboxFull, Reply, StatusRelay
from agent_identity.storage import SessionBackend, SessionRecord, SessionView, Snapshot

__all__ = ["SessionStore", "SessionStoreClient", "SessionStoreStatistics"]

T = TypeVar("T")


@final
class _Run:
    """The state of one run of the store: what it holds and how much of it is durable.

    Only the store's own tasks (the mailbox loop and the writer) touch it, and each touch is
    synchronous, so every reader sees the state between two whole changes.
    """

    __slots__ = ("acks", "bindings", "changed", "durable", "sessions", "version", "writing")

    def __init__(self, snapshot: Snapshot) -> None:
        self.sessions: dict[str, SessionRecord] = dict(snapshot.sessions)
        # Inner dicts are replaced, never mutated, so a snapshot can share them.
        self.bindings: dict[str, dict[str, str]] = {
            key: dict(providers) for key, providers in snapshot.bindings.items()
        }
        #: Changes applied in memory, and how many of them the last completed write covers.
        self.version = 0
        self.durable = 0
        #: Replies waiting for a write, as (version needed, answer), in version order.
        self.acks: deque[tuple[int, Callable[[], None]]] = deque()
        self.changed = trio.Event()
        self.writing = False

    def live(self, key: str, now: float) -> SessionRecord | None:
        """The session of ``key`` if its user token is still valid."""
        record = self.sessions.get(key)
        return None if record is None or record.expired(now) else record

    def kept(self, key: str, now: float) -> SessionRecord | None:
        """The session of ``key`` if it is live or still renewable (i.e. not dead)."""
        record = self.sessions.get(key)
        return None if record is None or record.prunable(now) else record

    def changed_by(self, reply: Reply[T], value: T) -> None:
        """Record one applied change; answer ``reply`` once it is durable."""
        self.version += 1
        self.changed.set()
        self.acks.append((self.version, functools.partial(reply.set, value)))

    def unchanged(self, reply: Reply[T], value: T) -> None:
        """Answer ``reply`` once the state it observed (the current version) is durable."""
        if self.durable >= self.version:
            reply.set(value)
        else:
            self.acks.append((self.version, functools.partial(reply.set, value)))

    def take_snapshot(self, now: float) -> tuple[int, Snapshot]:
        """Drop dead sessions, then copy the state for a write (synchronous on purpose)."""
        dead = [key for key, record in self.sessions.items() if record.prunable(now)]
        for key in dead:
            del self.sessions[key]
        return self.version, Snapshot(sessions=dict(self.sessions), bindings=dict(self.bindings))

    def mark_durable(self, version: int) -> None:
        """A write covering changes up to ``version`` completed: answer their callers."""
        self.durable = version
        while self.acks and self.acks[0][0] <= version:
            _, answer = self.acks.popleft()
            answer()


@final
class SessionStore(Actor[SessionStoreMsg]):
    """The session store actor; see the module docstring.

    Talk to it through ``SessionStoreClient(store.address)``.

    Args:
        backend: Where the state is persisted; loaded at every start of the actor.
        now: Wall-clock time in epoch seconds, for session expiry (injectable for tests).
        name: The actor's name.
    """

    mailbox_size: ClassVar[int] = 64

    def __init__(
        self,
        backend: SessionBackend,
        *,
        now: Callable[[], float] = time.time,
        name: str = "session_store",
    ) -> None:
        super().__init__(name=name)
        self._backend = backend
        self._now = now
        self._state: _Run | None = None
        self._stopping = False
        self._writes = 0
        self._loads = 0
        self._last_write_seconds: float | None = None

    @property
    def client(self) -> SessionStoreClient:
        """A typed client of this store."""
        return SessionStoreClient(self.address)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Load the backend, then serve the mailbox with the writer task beside it.

        The load happens before the nursery opens, so a load failure (unsafe permissions,
        an unusable key) reaches whoever starts the store as itself, not wrapped in a group.

        Raises:
            RuntimeError: The store is already running.
            StorageError: The backend cannot be loaded (a start failure).
            OSError: The file system failed while loading.
        """
        if self.statistics().running:
            raise RuntimeError(f"actor {self.name!r} is already running")
        snapshot = await self._backend.load()
        self._loads += 1
        state = _Run(snapshot)
        self._state = state
        self._stopping = False

        def ready(_value: object) -> None:
            task_status.started()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._write_loop, state)
            await super().run(task_status=StatusRelay(ready))
            # Normally StopFlush already waited; this covers a stop that could not queue it.
            await self._settled(state)
            nursery.cancel_scope.cancel()

    def request_stop(self) -> None:
        """Stop gracefully: handle what is queued, finish the last write, then return."""
        self._stopping = True
        # The flush marker goes last in the queue; if the queue is full, the last queued
        # message does the waiting instead (see handle).
        with contextlib.suppress(MailboxFull, ActorStopped):
            self.address.try_tell(StopFlush())
        super().request_stop()

    def store_statistics(self) -> SessionStoreStatistics:
        """Return the store's statistics (what ``SessionStoreClient.statistics`` answers)."""
        # Before the first start there is no run state yet: report an empty one.
        state = self._state if self._state is not None else _Run(Snapshot())
        now = self._now()
        return SessionStoreStatistics(
            actor=self.statistics(),
            sessions=sum(not record.expired(now) for record in state.sessions.values()),
            renewable_sessions=sum(
                record.expired(now) and record.renewable(now) for record in state.sessions.values()
            ),
            bound_sessions=len(state.bindings),
            changes=state.version,
            durable_changes=state.durable,
            pending_acks=len(state.acks),
            writing=state.writing,
            writes=self._writes,
            loads=self._loads,
            last_write_seconds=self._last_write_seconds,
        )

    async def handle(self, msg: SessionStoreMsg) -> None:
        """Apply one message to the in-memory state; park replies that need a write."""
        await trio.lowlevel.checkpoint()  # some branches never await
        state = self._state
        if state is None:  # pragma: no cover - run() installs it before the mailbox opens
            raise RuntimeError("session store state missing")
        self._apply(state, msg)
        if self._stopping and self.statistics().mailbox_depth == 0:
            # The last message of a graceful stop: nothing can arrive any more, so waiting
            # here lets every parked caller get its answer before the run ends.
            await self._settled(state)

    def _apply(self, state: _Run, msg: SessionStoreMsg) -> None:
        now = self._now()
        match msg:
            case GetSession(reply=reply, key=key, renewable=renewable):
                record = state.kept(key, now) if renewable else state.live(key, now)
                reply.set(None if record is None else record.view())
            case GetRefreshToken(reply=reply, key=key):
                # Not only live sessions: renewing an expired user token is what it is for.
                record = state.kept(key, now)
                reply.set(None if record is None else record.refresh_token)
            case ListSessions(reply=reply):
                reply.set(_views(state.sessions.values(), now))
            case GetBindings(reply=reply, key=key):
                reply.set(dict(state.bindings.get(key, {})))
            case PutSession(reply=reply, record=record):
                state.sessions[record.session_key] = record
                state.changed_by(reply, None)
            case DeleteSession(reply=reply, key=key):
                self._delete(state, reply, key, now)
            case SetBinding(reply=reply, key=key, provider=provider, env_var=env_var):
                current = state.bindings.get(key, {})
                if current.get(provider) == env_var:
                    state.unchanged(reply, None)
                else:
                    state.bindings[key] = {**current, provider: env_var}
                    state.changed_by(reply, None)
            case UnsetBinding(reply=reply, key=key, provider=provider):
                self._unset(state, reply, key, provider)
            case Flush(reply=reply):
                state.unchanged(reply, None)
            case GetStatistics(reply=reply):
                reply.set(self.store_statistics())
            case StopFlush():
                pass
            case _:
                assert_never(msg)

    @staticmethod
    def _delete(state: _Run, reply: Reply[bool], key: str, now: float) -> None:
        removed = state.sessions.pop(key, None)
        unbound = state.bindings.pop(key, None)
        # Logging out of a session that was only waiting for its renewal is a logout too.
        live = removed is not None and not removed.prunable(now)
        if removed is None and unbound is None:
            state.unchanged(reply, live)
        else:
            state.changed_by(reply, live)

    @staticmethod
    def _unset(state: _Run, reply: Reply[bool], key: str, provider: str) -> None:
        current = state.bindings.get(key, {})
        if provider not in current:
            state.unchanged(reply, False)
            return
        rest = {name: var for name, var in current.items() if name != provider}
        if rest:
            state.bindings[key] = rest
        else:
            del state.bindings[key]
        state.changed_by(reply, True)

    async def _write_loop(self, state: _Run) -> None:
        """The writer task: one save at a time, each covering everything changed before it."""
        while True:
            await state.changed.wait()
            state.changed = trio.Event()
            version, snapshot = state.take_snapshot(self._now())
            state.writing = True
            started = trio.current_time()
            await self._backend.save(snapshot)
            state.writing = False
            self._writes += 1
            self._last_write_seconds = trio.current_time() - started
            state.mark_durable(version)

    @staticmethod
    async def _settled(state: _Run) -> None:
        """Wait until every change applied so far is durable."""
        done: Reply[None] = Reply()
        state.unchanged(done, None)
        await done.wait()


def _views(records: Iterable[SessionRecord], now: float) -> list[SessionView]:
    live = [record.view() for record in records if not record.expired(now)]
    return sorted(live, key=lambda view: view.session_key)
