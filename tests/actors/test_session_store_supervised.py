"""The session store under a Supervisor: crashes, restarts that reload from disk, start failures."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from agent_identity.actors.session_store import SessionStore
from agent_identity.kernel import ActorStopped, ChildStartFailed, Supervisor
from agent_identity.storage import FileBackend, SessionRecord, Snapshot, UnsafePermissionsError

T0 = 1_800_000_000.0


def clock() -> float:
    return T0


def record(key: str) -> SessionRecord:
    return SessionRecord(
        session_key=key,
        sub=f"user-{key}",
        user_token=f"id-token-{key}",
        expires_at=T0 + 3600,
        login_at=T0,
        refresh_token=f"refresh-{key}",
    )


class FlakyFileBackend:
    """A FileBackend whose next save can be made to fail (like a full disk)."""

    def __init__(self, data_dir: Path) -> None:
        self.inner = FileBackend(data_dir, now=clock)
        self.fail_next = False
        self.loads = 0

    async def load(self) -> Snapshot:
        self.loads += 1
        return await self.inner.load()

    async def save(self, snapshot: Snapshot) -> None:
        if self.fail_next:
            self.fail_next = False
            await trio.lowlevel.checkpoint()
            raise OSError(28, "No space left on device")
        await self.inner.save(snapshot)


async def wait_running(store: SessionStore) -> None:
    with trio.fail_after(5):
        while not store.statistics().running:  # noqa: ASYNC110 - polls a kernel statistic
            await trio.sleep(0.001)


async def test_a_crashed_store_restarts_and_reloads_its_sessions(tmp_path: Path) -> None:
    backend = FlakyFileBackend(tmp_path / "identity")
    store = SessionStore(backend, now=clock)
    sup = Supervisor([store.child_spec()], max_restarts=3, period=10, name="root")
    client = store.client
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await client.put(record("a"))
        await client.put(record("b"))
        await client.set_binding("a", "google", "GOOGLE_TOKEN")
        backend.fail_next = True
        # The write of "c" fails: the store crashes, its caller learns the outcome is unknown.
        with pytest.raises(ActorStopped):
            await client.put(record("c"))
        await wait_running(store)
        # The restarted store reloaded what was durable.
        assert [v.session_key for v in await client.list()] == ["a", "b"]
        assert await client.bindings("a") == {"google": "GOOGLE_TOKEN"}
        assert await client.get_refresh_token("a") == "refresh-a"
        stats = await client.statistics()
        assert stats.loads == 2
        assert stats.actor.restarts == 1
        assert sup.statistics().restarts == 1
        # And it keeps working.
        await client.put(record("c"))
        assert await client.get("c") is not None
        await sup.stop()
    assert set((await FileBackend(tmp_path / "identity", now=clock).load()).sessions) == {
        "a",
        "b",
        "c",
    }


async def test_a_supervised_stop_flushes_pending_writes(tmp_path: Path) -> None:
    store = SessionStore(FileBackend(tmp_path / "identity", now=clock), now=clock)
    sup = Supervisor([store.child_spec()], name="root")
    acknowledged: list[str] = []
    refused: list[str] = []

    async def put(key: str) -> None:
        try:
            await store.client.put(record(key))
        except ActorStopped:
            refused.append(key)
        else:
            acknowledged.append(key)

    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        async with trio.open_nursery() as puts:
            for i in range(20):
                puts.start_soon(put, f"k{i}")
            await trio.lowlevel.checkpoint()
            sup.request_stop()
    loaded = await FileBackend(tmp_path / "identity", now=clock).load()
    # Everything acknowledged is on disk; callers not acknowledged got ActorStopped.
    assert set(acknowledged) <= set(loaded.sessions)
    assert len(acknowledged) + len(refused) == 20


async def test_an_unsafe_key_file_is_a_start_failure(tmp_path: Path) -> None:
    data_dir = tmp_path / "identity"
    await FileBackend(data_dir, now=clock).load()
    (data_dir / "store.key").chmod(0o644)
    store = SessionStore(FileBackend(data_dir, now=clock), now=clock)
    # Started directly, the error comes out bare.
    async with trio.open_nursery() as nursery:
        with pytest.raises(UnsafePermissionsError, match="0644"):
            await nursery.start(store.run)
    # Under a supervisor, it is the cause of the start failure.
    sup = Supervisor([store.child_spec()], name="root")
    async with trio.open_nursery() as nursery:
        with pytest.raises(ChildStartFailed) as info:
            await nursery.start(sup.run)
    assert isinstance(info.value.__cause__, UnsafePermissionsError)
