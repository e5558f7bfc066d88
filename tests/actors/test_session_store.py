"""The session store actor: reads from memory, durable group-committed writes, bindings."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from agent_identity.actors.session_store import SessionStore, SessionStoreClient
from agent_identity.actors.session_store_messages import PutSession
from agent_identity.kernel import MailboxFull, Reply
from agent_identity.storage import (
    FileBackend,
    MemoryBackend,
    SessionBackend,
    SessionRecord,
    Snapshot,
)

T0 = 1_800_000_000.0
KEY = bytes(range(32))


class WallClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def record(key: str, *, expires_in: float = 3600, refresh: bool = True) -> SessionRecord:
    return SessionRecord(
        session_key=key,
        sub=f"user-{key}",
        user_token=f"eyJ-id-{key}-SECRET-TOKEN",
        expires_at=T0 + expires_in,
        login_at=T0,
        refresh_token=f"refresh-{key}-SECRET-TOKEN" if refresh else None,
    )


class GatedBackend:
    """Wraps a backend; while ``gate`` is closed, saves wait before writing."""

    def __init__(self, inner: SessionBackend) -> None:
        self.inner = inner
        self.gate = trio.Event()
        self.gate.set()
        self.saved: list[Snapshot] = []
        self.fail_next: Exception | None = None

    def close(self) -> None:
        self.gate = trio.Event()

    async def load(self) -> Snapshot:
        return await self.inner.load()

    async def save(self, snapshot: Snapshot) -> None:
        self.saved.append(snapshot)
        await self.gate.wait()
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        await self.inner.save(snapshot)


@pytest.fixture
def clock() -> WallClock:
    return WallClock()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "identity"


def file_backend(data_dir: Path, clock: WallClock) -> FileBackend:
    return FileBackend(data_dir, key=KEY, now=clock)


async def start(nursery: trio.Nursery, backend: SessionBackend, clock: WallClock) -> SessionStore:
    store = SessionStore(backend, now=clock)
    await nursery.start(store.run)
    return store


# ------------------------------------------------------------------ basic operations


async def test_put_get_list_delete(nursery: trio.Nursery, data_dir: Path, clock: WallClock) -> None:
    store = await start(nursery, file_backend(data_dir, clock), clock)
    client = store.client
    assert await client.get("a") is None
    await client.put(record("b"))
    await client.put(record("a", refresh=False))
    view = await client.get("b")
    assert view is not None
    assert view.user_token == "eyJ-id-b-SECRET-TOKEN"
    assert view.has_refresh_token
    assert not hasattr(view, "refresh_token")
    assert [v.session_key for v in await client.list()] == ["a", "b"]
    assert await client.get_refresh_token("b") == "refresh-b-SECRET-TOKEN"
    assert await client.get_refresh_token("a") is None
    assert await client.get_refresh_token("zzz") is None
    assert await client.delete("b") is True
    assert await client.delete("b") is False
    assert await client.get("b") is None
    assert "session_store" in repr(client)


async def test_put_is_durable_when_it_returns(
    nursery: trio.Nursery, data_dir: Path, clock: WallClock
) -> None:
    store = await start(nursery, file_backend(data_dir, clock), clock)
    await store.client.put(record("a"))
    await store.client.set_binding("a", "google", "GOOGLE_TOKEN")
    # A second backend instance (as after a crash) sees it straight away.
    loaded = await file_backend(data_dir, clock).load()
    assert loaded.sessions["a"] == record("a")
    assert dict(loaded.bindings["a"]) == {"google": "GOOGLE_TOKEN"}
    assert await store.client.delete("a")
    loaded = await file_backend(data_dir, clock).load()
    assert dict(loaded.sessions) == {}
    assert dict(loaded.bindings) == {}


async def test_a_put_waits_for_its_write_but_reads_do_not(
    nursery: trio.Nursery, clock: WallClock
) -> None:
    backend = GatedBackend(MemoryBackend(now=clock))
    store = await start(nursery, backend, clock)
    client = store.client
    backend.close()
    done = trio.Event()

    async def put() -> None:
        await client.put(record("a"))
        done.set()

    nursery.start_soon(put)
    await trio.testing.wait_all_tasks_blocked()
    assert not done.is_set()
    # Reads are answered from memory while the write is held up.
    assert (await client.get("a")) is not None
    assert len(await client.list()) == 1
    assert await client.bindings("a") == {}
    stats = await client.statistics()
    assert stats.writing
    assert stats.pending_acks == 1
    assert (stats.changes, stats.durable_changes) == (1, 0)
    backend.gate.set()
    await done.wait()
    stats = await client.statistics()
    assert (stats.changes, stats.durable_changes, stats.pending_acks) == (1, 1, 0)
    assert not stats.writing
    assert stats.writes == 1
    assert stats.last_write_seconds is not None


async def test_a_burst_during_a_write_becomes_one_write(
    nursery: trio.Nursery, clock: WallClock
) -> None:
    backend = GatedBackend(MemoryBackend(now=clock))
    store = await start(nursery, backend, clock)
    client = store.client
    backend.close()
    acknowledged: list[str] = []

    async def put(key: str) -> None:
        await client.put(record(key))
        acknowledged.append(key)

    nursery.start_soon(put, "first")
    await trio.testing.wait_all_tasks_blocked()
    assert len(backend.saved) == 1  # the first write is in progress, held at the gate
    burst = [f"k{i:02}" for i in range(40)]
    for key in burst:
        nursery.start_soon(put, key)
    await trio.testing.wait_all_tasks_blocked()
    assert acknowledged == []
    backend.gate.set()
    with trio.fail_after(5):
        await client.flush()
    await trio.testing.wait_all_tasks_blocked()  # let the answered callers run
    assert sorted(acknowledged) == sorted(["first", *burst])
    # One write for "first", one for the whole burst.
    assert len(backend.saved) == 2
    assert set(backend.saved[1].sessions) == {"first", *burst}
    assert (await client.statistics()).writes == 2


async def test_concurrent_puts_on_files_are_coalesced_and_all_durable(
    nursery: trio.Nursery, data_dir: Path, clock: WallClock
) -> None:
    store = await start(nursery, file_backend(data_dir, clock), clock)
    client = store.client
    keys = [f"session-{i:03}" for i in range(100)]
    async with trio.open_nursery() as puts:
        for key in keys:
            puts.start_soon(client.put, record(key))
    stats = await client.statistics()
    assert stats.changes == 100
    assert stats.durable_changes == 100
    assert stats.writes < 100
    loaded = await file_backend(data_dir, clock).load()
    assert set(loaded.sessions) == set(keys)


# ------------------------------------------------------------------ expiry


async def test_expired_sessions_are_never_returned_and_pruned_before_save(
    nursery: trio.Nursery, data_dir: Path, clock: WallClock
) -> None:
    store = await start(nursery, file_backend(data_dir, clock), clock)
    client = store.client
    # Without a refresh token an expired session is dead (renewable ones: test_..._renewal).
    await client.put(record("short", expires_in=60, refresh=False))
    await client.put(record("long"))
    clock.now += 120
    assert await client.get("short") is None
    assert await client.get_refresh_token("short") is None
    assert [v.session_key for v in await client.list()] == ["long"]
    assert (await client.statistics()).sessions == 1
    # Deleting an expired session is not "a session was removed".
    await client.put(record("other"))
    loaded = await file_backend(data_dir, clock).load()
    assert set(loaded.sessions) == {"long", "other"}
    assert await client.delete("short") is False


async def test_expired_sessions_are_pruned_on_load(
    nursery: trio.Nursery, data_dir: Path, clock: WallClock
) -> None:
    first = file_backend(data_dir, clock)
    await first.load()
    dead = record("old", expires_in=5, refresh=False)
    await first.save(Snapshot(sessions={"old": dead, "new": record("new")}))
    clock.now += 10
    store = await start(nursery, file_backend(data_dir, clock), clock)
    assert [v.session_key for v in await store.client.list()] == ["new"]


# ------------------------------------------------------------------ bindings


async def test_bindings_set_unset_persist_and_go_with_the_session(
    nursery: trio.Nursery, data_dir: Path, clock: WallClock
) -> None:
    backend = file_backend(data_dir, clock)
    store = await start(nursery, backend, clock)
    client = store.client
    await client.put(record("s"))
    await client.set_binding("s", "google", "GOOGLE_TOKEN")
    await client.set_binding("s", "github", "GH_TOKEN")
    await client.set_binding("other", "google", "G2")
    assert await client.bindings("s") == {"google": "GOOGLE_TOKEN", "github": "GH_TOKEN"}
    # The answer is a copy.
    (await client.bindings("s"))["x"] = "y"
    assert "x" not in await client.bindings("s")
    writes = (await client.statistics()).writes
    await client.set_binding("s", "google", "GOOGLE_TOKEN")  # unchanged: no write
    assert (await client.statistics()).writes == writes
    assert await client.unset_binding("s", "github") is True
    assert await client.unset_binding("s", "github") is False
    assert await client.unset_binding("nobody", "github") is False
    assert await client.unset_binding("other", "google") is True
    loaded = await file_backend(data_dir, clock).load()
    assert {k: dict(v) for k, v in loaded.bindings.items()} == {"s": {"google": "GOOGLE_TOKEN"}}
    assert (await client.statistics()).bound_sessions == 1
    assert await client.delete("s") is True
    assert await client.bindings("s") == {}
    loaded = await file_backend(data_dir, clock).load()
    assert dict(loaded.bindings) == {}
    # Bindings without a session are removed by a delete too.
    await client.set_binding("lonely", "p", "V")
    assert await client.delete("lonely") is False
    assert await client.bindings("lonely") == {}


# ------------------------------------------------------------------ no-op changes, flush


async def test_a_no_op_is_answered_at_once_when_nothing_is_pending(
    nursery: trio.Nursery, clock: WallClock
) -> None:
    backend = GatedBackend(MemoryBackend(now=clock))
    store = await start(nursery, backend, clock)
    backend.close()  # any write would block
    with trio.fail_after(1):
        assert await store.client.delete("missing") is False
        assert await store.client.unset_binding("missing", "p") is False
        await store.client.flush()
    assert backend.saved == []


async def test_a_no_op_waits_for_the_pending_write_it_observed(
    nursery: trio.Nursery, clock: WallClock
) -> None:
    backend = GatedBackend(MemoryBackend(now=clock))
    store = await start(nursery, backend, clock)
    client = store.client
    backend.close()
    results: list[object] = []

    async def put_then_record() -> None:
        await client.put(record("a"))
        results.append("put")

    async def delete_missing() -> None:
        results.append(await client.delete("missing"))

    async def flush() -> None:
        await client.flush()
        results.append("flush")

    nursery.start_soon(put_then_record)
    await trio.testing.wait_all_tasks_blocked()
    nursery.start_soon(delete_missing)
    nursery.start_soon(flush)
    await trio.testing.wait_all_tasks_blocked()
    assert results == []  # they saw a state that is not durable yet
    backend.gate.set()
    await trio.testing.wait_all_tasks_blocked()
    assert sorted(map(str, results)) == ["False", "flush", "put"]
    assert len(backend.saved) == 1


# ------------------------------------------------------------------ stop and failures


async def test_a_graceful_stop_answers_every_parked_caller(clock: WallClock) -> None:
    backend = GatedBackend(MemoryBackend(now=clock))
    store = SessionStore(backend, now=clock)
    answers: list[str] = []

    async def put(key: str) -> None:
        await store.client.put(record(key))
        answers.append(key)

    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        backend.close()
        for key in ("a", "b", "c"):
            nursery.start_soon(put, key)
        await trio.testing.wait_all_tasks_blocked()
        store.request_stop()
        store.request_stop()  # idempotent
        await trio.testing.wait_all_tasks_blocked()
        assert answers == []
        assert store.statistics().running
        backend.gate.set()
    assert sorted(answers) == ["a", "b", "c"]
    assert set(backend.inner.snapshot.sessions) == {"a", "b", "c"}  # type: ignore[attr-defined]
    assert not store.statistics().running


async def test_a_stop_with_a_full_mailbox_still_flushes(clock: WallClock) -> None:
    backend = GatedBackend(MemoryBackend(now=clock))
    store = SessionStore(backend, now=clock)
    replies: list[Reply[None]] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        backend.close()
        await trio.testing.wait_all_tasks_blocked()  # the actor waits in its mailbox
        with pytest.raises(MailboxFull):  # noqa: PT012 - fill it up without a checkpoint
            while True:
                reply: Reply[None] = Reply()
                store.address.try_tell(PutSession(reply, record(f"k{len(replies)}")))
                replies.append(reply)
        store.request_stop()  # no room for the flush marker: the last message waits
        await trio.testing.wait_all_tasks_blocked()
        backend.gate.set()
    # The mailbox holds 64; one more went straight to the waiting actor.
    assert len(replies) == SessionStore.mailbox_size + 1
    assert all(reply.done for reply in replies)
    for reply in replies:
        await reply.wait()  # answered with a value, not failed
    assert len(backend.inner.snapshot.sessions) == len(replies)  # type: ignore[attr-defined]


async def test_running_twice_is_refused(nursery: trio.Nursery, clock: WallClock) -> None:
    store = await start(nursery, MemoryBackend(now=clock), clock)
    with pytest.raises(RuntimeError, match="already running"):
        await store.run()


def test_envelopes_do_not_show_tokens() -> None:
    message = PutSession(Reply(), record("a"))
    assert "SECRET" not in repr(message)
    assert isinstance(SessionStore(MemoryBackend()).client, SessionStoreClient)


def test_statistics_before_the_first_start() -> None:
    stats = SessionStore(MemoryBackend()).store_statistics()
    assert (stats.sessions, stats.changes, stats.writes, stats.loads) == (0, 0, 0, 0)
    assert not stats.actor.running
