"""FileBackend in journal mode: appends, replay, compaction, torn tails, stale and bad journals."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from agent_identity.config import EnvSettings, PluginConfig
from agent_identity.storage import JOURNAL_FILE, FileBackend, Snapshot, StoreKey
from agent_identity.storage._errors import UnreadableFileError
from agent_identity.storage._journal import MAGIC, Change, Journal, diff_sessions, read_journal

from .helpers import KEY, OTHER_KEY, WallClock, decrypt_sessions, record, token


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "plugins" / "identity"


@pytest.fixture
def clock() -> WallClock:
    return WallClock()


def journaled(
    data_dir: Path, clock: WallClock, *, key: bytes = KEY, compact_min_bytes: int = 1 << 20
) -> FileBackend:
    return FileBackend(
        data_dir, key=key, now=clock, journal=True, compact_min_bytes=compact_min_bytes
    )


def snapshot(*keys: str) -> Snapshot:
    return Snapshot(sessions={k: record(k) for k in keys})


def make_dir(path: Path) -> None:
    path.mkdir(parents=True, mode=0o700)


def corrupt(data_dir: Path, name: str) -> list[Path]:
    return sorted(data_dir.glob(f"{name}.corrupt-*"))


async def started(data_dir: Path, clock: WallClock, *keys: str) -> FileBackend:
    """A journal backend whose sessions.json holds ``keys`` and whose journal is empty."""
    store = journaled(data_dir, clock)
    await store.load()
    await store.save(snapshot(*keys))
    return store


async def test_from_config_turns_the_journal_on(tmp_path: Path) -> None:
    config = PluginConfig(data_dir=str(tmp_path / "d"))
    store = FileBackend.from_config(config, EnvSettings.from_environ({}))
    assert store.journaling
    assert store.journal_path == tmp_path / "d" / JOURNAL_FILE
    assert not FileBackend(tmp_path / "d").journaling


async def test_a_save_appends_and_leaves_sessions_json_alone(
    data_dir: Path, clock: WallClock
) -> None:
    store = await started(data_dir, clock, "a", "b")
    assert not store.journal_path.exists()  # the first save wrote the base snapshot
    base = (data_dir / "sessions.json").read_bytes()
    sessions = dict(snapshot("a", "b").sessions)
    sessions["c"] = record("c")
    await store.save(Snapshot(sessions=sessions))
    del sessions["a"]
    await store.save(Snapshot(sessions=sessions))
    assert (data_dir / "sessions.json").read_bytes() == base
    stats = store.statistics()
    assert (stats.session_writes, stats.journal_appends) == (1, 2)
    raw = store.journal_path.read_bytes()
    assert raw.startswith(MAGIC)
    for secret in (token("id-c"), token("refresh-c"), "SECRET"):
        assert secret.encode() not in raw
    fresh = journaled(data_dir, clock)
    loaded = await fresh.load()
    assert set(loaded.sessions) == {"b", "c"}
    assert loaded.sessions["c"] == record("c")
    assert fresh.statistics().journal_replayed == 2
    # Appending goes on after a reload, and a third instance sees all of it.
    await fresh.save(Snapshot(sessions={**loaded.sessions, "d": record("d")}))
    assert set((await journaled(data_dir, clock).load()).sessions) == {"b", "c", "d"}


async def test_an_unchanged_state_appends_nothing(data_dir: Path, clock: WallClock) -> None:
    store = await started(data_dir, clock, "a")
    skips = store.statistics().unchanged_skips
    await store.save(snapshot("a"))  # equal records, other objects
    assert store.statistics().unchanged_skips == skips + 2  # bindings and sessions
    assert store.statistics().journal_appends == 0
    assert not store.journal_path.exists()


async def test_the_journal_is_compacted_once_as_large_as_the_snapshot(
    data_dir: Path, clock: WallClock
) -> None:
    store = journaled(data_dir, clock, compact_min_bytes=1)
    await store.load()
    await store.save(snapshot("a"))
    sessions = dict(snapshot("a").sessions)
    appended = 0
    while store.statistics().session_writes == 1:
        sessions[f"k{appended}"] = record(f"k{appended}")
        await store.save(Snapshot(sessions=dict(sessions)))
        appended += 1
    assert appended > 1
    assert not store.journal_path.exists()
    assert decrypt_sessions(data_dir, KEY).keys() == sessions.keys()
    assert set((await journaled(data_dir, clock).load()).sessions) == set(sessions)


async def test_a_torn_tail_is_cut_off_and_appending_goes_on(
    data_dir: Path, clock: WallClock, caplog: pytest.LogCaptureFixture
) -> None:
    store = await started(data_dir, clock, "a")
    await store.save(snapshot("a", "b"))
    whole = store.journal_path.stat().st_size
    await store.save(snapshot("a", "b", "c"))
    raw = store.journal_path.read_bytes()
    store.journal_path.write_bytes(raw[:-7])  # the last frame cut short by a crash
    fresh = journaled(data_dir, clock)
    with caplog.at_level(logging.WARNING, "agent_identity.storage"):
        loaded = await fresh.load()
    assert set(loaded.sessions) == {"a", "b"}
    assert fresh.statistics().torn_tails == 1
    assert "interrupted write" in caplog.text
    assert store.journal_path.stat().st_size == whole
    await fresh.save(snapshot("a", "b", "d"))
    assert set((await journaled(data_dir, clock).load()).sessions) == {"a", "b", "d"}


@pytest.mark.parametrize("tail", [b"\0" * 300, b"\0\0", b"\x00\x00\x01\x00abc"])
async def test_zeros_or_a_partial_frame_after_the_last_frame_are_a_torn_tail(
    data_dir: Path, clock: WallClock, tail: bytes
) -> None:
    store = await started(data_dir, clock, "a")
    await store.save(snapshot("a", "b"))
    with store.journal_path.open("ab") as file:
        file.write(tail)
    fresh = journaled(data_dir, clock)
    assert set((await fresh.load()).sessions) == {"a", "b"}
    assert fresh.statistics().torn_tails == 1


@pytest.mark.parametrize("content", [b"AI", b"", MAGIC + b"\x00\x00\x00\x50{"])
async def test_a_journal_cut_short_in_its_header_is_removed(
    data_dir: Path, clock: WallClock, content: bytes
) -> None:
    await started(data_dir, clock, "a")
    (data_dir / JOURNAL_FILE).write_bytes(content)
    fresh = journaled(data_dir, clock)
    assert set((await fresh.load()).sessions) == {"a"}
    assert not (data_dir / JOURNAL_FILE).exists()
    await fresh.save(snapshot("a", "b"))
    assert set((await journaled(data_dir, clock).load()).sessions) == {"a", "b"}


async def test_a_tampered_frame_sets_journal_and_snapshot_aside(
    data_dir: Path, clock: WallClock, caplog: pytest.LogCaptureFixture
) -> None:
    store = await started(data_dir, clock, "a")
    await store.save(snapshot("a", "b"))
    await store.save(snapshot("a"))  # b logged out: the snapshot alone would bring it back
    raw = bytearray(store.journal_path.read_bytes())
    raw[-20] ^= 0x01
    store.journal_path.write_bytes(bytes(raw))
    with caplog.at_level(logging.ERROR, "agent_identity.storage"):
        loaded = await journaled(data_dir, clock).load()
    assert dict(loaded.sessions) == {}
    assert len(corrupt(data_dir, JOURNAL_FILE)) == 1
    assert len(corrupt(data_dir, "sessions.json")) == 1
    assert "frame 1 failed authentication" in caplog.text
    assert "SECRET" not in caplog.text


async def test_a_journal_of_another_key_is_set_aside(
    data_dir: Path, clock: WallClock, caplog: pytest.LogCaptureFixture
) -> None:
    store = await started(data_dir, clock, "a")
    await store.save(snapshot("a", "b"))
    with caplog.at_level(logging.ERROR, "agent_identity.storage"):
        loaded = await journaled(data_dir, clock, key=OTHER_KEY).load()
    assert dict(loaded.sessions) == {}
    assert len(corrupt(data_dir, JOURNAL_FILE)) == 1
    assert "encrypted with another key" in caplog.text


async def test_a_stale_journal_from_a_cut_short_compaction_is_removed(
    data_dir: Path, clock: WallClock
) -> None:
    store = await started(data_dir, clock, "a")
    await store.save(snapshot("a", "b"))
    old = store.journal_path.read_bytes()
    # Compact (a whole-file backend folds the journal in), then put the old journal back:
    # the state of a crash between the new sessions.json and the journal's removal.
    assert set((await FileBackend(data_dir, key=KEY, now=clock).load()).sessions) == {"a", "b"}
    assert not store.journal_path.exists()
    store.journal_path.write_bytes(old)
    fresh = journaled(data_dir, clock)
    assert set((await fresh.load()).sessions) == {"a", "b"}
    assert fresh.statistics().stale_journals == 1
    assert not store.journal_path.exists()


async def test_a_journal_without_its_snapshot_is_set_aside(
    data_dir: Path, clock: WallClock, caplog: pytest.LogCaptureFixture
) -> None:
    store = await started(data_dir, clock, "a")
    await store.save(snapshot("a", "b"))
    (data_dir / "sessions.json").unlink()
    with caplog.at_level(logging.ERROR, "agent_identity.storage"):
        loaded = await journaled(data_dir, clock).load()
    assert dict(loaded.sessions) == {}
    assert len(corrupt(data_dir, JOURNAL_FILE)) == 1
    assert "missing or could not be read" in caplog.text


async def test_expired_sessions_are_pruned_through_the_journal(
    data_dir: Path, clock: WallClock
) -> None:
    store = journaled(data_dir, clock)
    await store.load()
    dead = record("short", expires_in=60, refresh=False)
    await store.save(Snapshot(sessions={"short": dead, "long": record("long")}))
    clock.advance(120)
    fresh = journaled(data_dir, clock)
    assert set((await fresh.load()).sessions) == {"long"}
    assert (fresh.statistics().pruned, fresh.statistics().journal_appends) == (1, 1)
    assert set((await journaled(data_dir, clock).load()).sessions) == {"long"}


async def test_a_plaintext_file_is_migrated_in_journal_mode(
    data_dir: Path, clock: WallClock
) -> None:
    make_dir(data_dir)
    legacy = '{"k": {"userToken": "eyJ-SECRET", "sub": "u", "expiresAt": 1900000000}}'
    (data_dir / "sessions.json").write_text(legacy)
    store = journaled(data_dir, clock)
    assert set((await store.load()).sessions) == {"k"}
    assert set(decrypt_sessions(data_dir, KEY)) == {"k"}
    assert store.statistics().session_writes == 1


def test_garbage_and_malformed_journals_are_unreadable() -> None:
    key = StoreKey(KEY, source="test")
    with pytest.raises(UnreadableFileError, match="not a session journal"):
        read_journal(b"garbage that is long enough", key, "base")
    bad_header = MAGIC + b"\x00\x00\x00\x02{}"
    with pytest.raises(UnreadableFileError, match="header is invalid"):
        read_journal(bad_header, key, "base")
    for field, message in (
        (b'"version":2', "format version 2"),
        (b'"alg":"X"', "unsupported algorithm"),
    ):
        header = b'{"version":1,"alg":"A256GCM","kid":"%s","base":"b","id":"i"}' % key.kid.encode()
        header = header.replace(b'"version":1', field) if b"version" in field else header
        header = header.replace(b'"alg":"A256GCM"', field) if b"alg" in field else header
        data = MAGIC + len(header).to_bytes(4, "big") + header
        with pytest.raises(UnreadableFileError, match=message):
            read_journal(data, key, "b")


async def test_a_short_frame_or_an_undecodable_one_is_unreadable(tmp_path: Path) -> None:
    key = StoreKey(KEY, source="test")
    journal = Journal(tmp_path / JOURNAL_FILE, key, "base")
    journal.append(Change(delete=["x"]))
    raw = (tmp_path / JOURNAL_FILE).read_bytes()
    with pytest.raises(UnreadableFileError, match="too short"):
        read_journal(raw + b"\x00\x00\x00\x05abcde", key, "base")
    contents = read_journal(raw, key, "base")
    assert [c.delete for c in contents.changes] == [["x"]]
    assert read_journal(raw, key, "other").stale


def test_appending_where_it_cannot_write_raises_and_retries_from_scratch(tmp_path: Path) -> None:
    key = StoreKey(KEY, source="test")
    folder = tmp_path / "missing"
    journal = Journal(folder / JOURNAL_FILE, key, "base")
    with pytest.raises(FileNotFoundError):
        journal.append(Change(delete=["x"]))
    folder.mkdir()
    journal.append(Change(delete=["x"]))
    assert journal.frames == 1
    contents = read_journal((folder / JOURNAL_FILE).read_bytes(), key, "base")
    assert len(contents.changes) == 1
    # Once it exists a failed append leaves the journal as it was.
    (folder / JOURNAL_FILE).unlink()
    folder.rmdir()
    with pytest.raises(FileNotFoundError):
        journal.append(Change(delete=["y"]))
    assert journal.frames == 1


def test_an_authentic_frame_that_is_not_a_change_is_unreadable(tmp_path: Path) -> None:
    key = StoreKey(KEY, source="test")
    Journal(tmp_path / JOURNAL_FILE, key, "base").append(Change(delete=["x"]))
    raw = (tmp_path / JOURNAL_FILE).read_bytes()
    size = int.from_bytes(raw[4:8], "big")
    header = raw[8 : 8 + size]
    nonce = bytes(12)
    sealed = nonce + key.aead.encrypt(nonce, b'{"put": 5}', header + (1).to_bytes(8, "big"))
    data = raw + len(sealed).to_bytes(4, "big") + sealed
    with pytest.raises(UnreadableFileError, match="frame 1 is not a change"):
        read_journal(data, key, "base")


def test_diff_and_change() -> None:
    a, b = record("a"), record("b")
    assert not diff_sessions({"a": a}, {"a": record("a")})  # equal, not identical
    relogin = diff_sessions({"a": a, "b": b}, {"a": record("a", sub="again"), "b": b})
    assert ([r.sub for r in relogin.put], relogin.delete) == (["again"], [])
    change = diff_sessions({"a": a, "b": b}, {"b": record("b", sub="other"), "c": record("c")})
    assert [r.session_key for r in change.put] == ["b", "c"]
    assert change.delete == ["a"]
    assert "SECRET" not in repr(change)
    sessions = {"a": a, "b": b}
    change.apply(sessions)
    assert set(sessions) == {"b", "c"}
