"""FileBackend: encryption at rest, corrupt files kept aside, migration, pruning, durability."""

from __future__ import annotations

import base64
import json
import logging
import stat
from pathlib import Path
from typing import Any

import pytest

from agent_identity.config import EnvSettings, PluginConfig
from agent_identity.storage import (
    FileBackend,
    MemoryBackend,
    Snapshot,
    StorageError,
    StoreKey,
    UnsafePermissionsError,
)
from agent_identity.storage._envelope import seal
from agent_identity.storage._files import temp_name

from .helpers import KEY, OTHER_KEY, T0, WallClock, decrypt_sessions, record, token

SECRETS_OF = ("id-", "refresh-")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "plugins" / "identity"


@pytest.fixture
def clock() -> WallClock:
    return WallClock()


def backend(data_dir: Path, clock: WallClock, key: bytes | None = KEY) -> FileBackend:
    return FileBackend(data_dir, key=key, now=clock)


def snapshot(*keys: str, bindings: dict[str, dict[str, str]] | None = None) -> Snapshot:
    return Snapshot(sessions={k: record(k) for k in keys}, bindings=bindings or {})


def envelope(data_dir: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((data_dir / "sessions.json").read_text())
    return doc


def write_envelope(data_dir: Path, doc: dict[str, Any]) -> None:
    (data_dir / "sessions.json").write_text(json.dumps(doc))


def corrupt_files(data_dir: Path, name: str = "sessions.json") -> list[Path]:
    return sorted(data_dir.glob(f"{name}.corrupt-*"))


def make_dir(path: Path) -> None:
    path.mkdir(parents=True, mode=0o700)


def listing(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ------------------------------------------------------------------ encryption at rest


async def test_sessions_are_encrypted_on_disk(data_dir: Path, clock: WallClock) -> None:
    store = backend(data_dir, clock)
    await store.load()
    await store.save(snapshot("agent:main:main", "feishu:ou_1"))
    raw = (data_dir / "sessions.json").read_bytes()
    for key in ("agent:main:main", "feishu:ou_1"):
        assert token(f"id-{key}").encode() not in raw
        assert token(f"refresh-{key}").encode() not in raw
        assert key.encode() not in raw
    assert b"SECRET" not in raw
    doc = envelope(data_dir)
    assert list(doc) == ["version", "alg", "kid", "nonce", "ciphertext"]
    assert doc["version"] == 1
    assert doc["alg"] == "A256GCM"
    assert len(base64.b64decode(doc["nonce"])) == 12
    assert set(decrypt_sessions(data_dir, KEY)) == {"agent:main:main", "feishu:ou_1"}


async def test_every_write_uses_a_fresh_nonce(data_dir: Path, clock: WallClock) -> None:
    store = backend(data_dir, clock)
    await store.load()
    nonces = set()
    for i in range(5):
        await store.save(snapshot(*(f"k{j}" for j in range(i + 1))))
        nonces.add(envelope(data_dir)["nonce"])
    assert len(nonces) == 5


async def test_files_are_0600_and_the_folder_0700(data_dir: Path, clock: WallClock) -> None:
    store = backend(data_dir, clock, key=None)
    await store.load()
    await store.save(snapshot("k", bindings={"k": {"google": "GOOGLE_TOKEN"}}))
    assert mode(data_dir) == 0o700
    names = listing(data_dir)
    assert names == ["credential-env-bindings.json", "sessions.json", "store.key"]
    for name in names:
        assert mode(data_dir / name) == 0o600, name


async def test_durable_save_is_read_by_a_fresh_instance(data_dir: Path, clock: WallClock) -> None:
    first = backend(data_dir, clock, key=None)
    await first.load()
    saved = snapshot("a", "b", bindings={"a": {"google": "GOOGLE_TOKEN", "gh": "GH_TOKEN"}})
    await first.save(saved)
    loaded = await backend(data_dir, clock, key=None).load()
    assert dict(loaded.sessions) == dict(saved.sessions)
    assert {k: dict(v) for k, v in loaded.bindings.items()} == {
        "a": {"google": "GOOGLE_TOKEN", "gh": "GH_TOKEN"}
    }


async def test_bindings_file_is_the_spec_shape(data_dir: Path, clock: WallClock) -> None:
    store = backend(data_dir, clock)
    await store.load()
    await store.save(snapshot(bindings={"s1": {"google": "G"}, "s2": {}}))
    doc = json.loads((data_dir / "credential-env-bindings.json").read_text())
    assert doc == {"s1": {"google": "G"}}


async def test_unchanged_files_are_not_rewritten(data_dir: Path, clock: WallClock) -> None:
    store = backend(data_dir, clock)
    await store.load()
    await store.save(snapshot("a"))
    stats = store.statistics()
    assert (stats.session_writes, stats.binding_writes) == (1, 0)
    await store.save(snapshot("a"))
    await store.save(snapshot("a", bindings={"a": {"p": "V"}}))
    stats = store.statistics()
    assert (stats.session_writes, stats.binding_writes) == (1, 1)
    assert stats.unchanged_skips == 4  # bindings of the 1st and 2nd, sessions of 2nd and 3rd
    assert stats.loads == 1


async def test_save_before_load_is_an_error(data_dir: Path, clock: WallClock) -> None:
    with pytest.raises(StorageError, match="before load"):
        await backend(data_dir, clock).save(snapshot("a"))


def test_from_config_uses_data_dir_and_env_key(tmp_path: Path) -> None:
    config = PluginConfig(data_dir=str(tmp_path / "d"))
    env = EnvSettings.from_environ(
        {"AGENT_IDENTITY_STORE_KEY": base64.b64encode(KEY).decode("ascii")}
    )
    store = FileBackend.from_config(config, env)
    assert store.data_dir == tmp_path / "d"
    assert store.sessions_path == tmp_path / "d" / "sessions.json"
    assert store.bindings_path == tmp_path / "d" / "credential-env-bindings.json"
    assert str(tmp_path / "d") in repr(store)


# ------------------------------------------------------------------ unreadable files


async def prepared(data_dir: Path, clock: WallClock) -> None:
    store = backend(data_dir, clock)
    await store.load()
    await store.save(snapshot("a", "b", bindings={"a": {"google": "G"}}))


def assert_kept_aside(
    data_dir: Path, caplog: pytest.LogCaptureFixture, reason: str, original: bytes
) -> None:
    kept = corrupt_files(data_dir)
    assert len(kept) == 1, kept
    assert kept[0].read_bytes() == original  # never deleted, never changed
    assert not (data_dir / "sessions.json").exists()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    message = errors[0].getMessage()
    assert str(kept[0]) in message
    assert reason in message
    assert "SECRET" not in caplog.text
    assert KEY.hex() not in caplog.text


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("kid", "0000000000000000"),
        ("nonce", base64.b64encode(b"\x00" * 12).decode()),
        ("version", 2),
        ("alg", "A128GCM"),
    ],
)
async def test_a_tampered_header_is_kept_aside_and_the_store_starts_empty(
    data_dir: Path, clock: WallClock, caplog: pytest.LogCaptureFixture, field: str, value: object
) -> None:
    await prepared(data_dir, clock)
    doc = envelope(data_dir)
    doc[field] = value
    write_envelope(data_dir, doc)
    original = (data_dir / "sessions.json").read_bytes()
    with caplog.at_level(logging.INFO, "agent_identity.storage"):
        loaded = await backend(data_dir, clock).load()
    assert dict(loaded.sessions) == {}
    # The bindings file was readable and is kept.
    assert dict(loaded.bindings["a"]) == {"google": "G"}
    reasons = {
        "kid": "encrypted with another key",
        "nonce": "authentication failed",
        "version": "unsupported format version 2",
        "alg": "unsupported algorithm",
    }
    assert_kept_aside(data_dir, caplog, reasons[field], original)


async def test_a_header_field_change_breaks_authentication(
    data_dir: Path, clock: WallClock, caplog: pytest.LogCaptureFixture
) -> None:
    # The header is the AAD: moving a valid nonce of another write onto this ciphertext fails.
    await prepared(data_dir, clock)
    first = envelope(data_dir)
    await backend(data_dir, clock).load()
    store = backend(data_dir, clock)
    await store.load()
    await store.save(snapshot("c"))
    second = envelope(data_dir)
    write_envelope(data_dir, {**second, "nonce": first["nonce"]})
    original = (data_dir / "sessions.json").read_bytes()
    with caplog.at_level(logging.ERROR, "agent_identity.storage"):
        loaded = await backend(data_dir, clock).load()
    assert dict(loaded.sessions) == {}
    assert_kept_aside(data_dir, caplog, "authentication failed", original)


@pytest.mark.parametrize("position", [0, 17, -1])
async def test_a_tampered_ciphertext_is_kept_aside(
    data_dir: Path, clock: WallClock, caplog: pytest.LogCaptureFixture, position: int
) -> None:
    await prepared(data_dir, clock)
    doc = envelope(data_dir)
    blob = bytearray(base64.b64decode(doc["ciphertext"]))
    blob[position] ^= 0x01
    doc["ciphertext"] = base64.b64encode(bytes(blob)).decode()
    write_envelope(data_dir, doc)
    original = (data_dir / "sessions.json").read_bytes()
    with caplog.at_level(logging.ERROR, "agent_identity.storage"):
        loaded = await backend(data_dir, clock).load()
    assert dict(loaded.sessions) == {}
    assert_kept_aside(data_dir, caplog, "authentication failed", original)


async def test_the_wrong_key_is_reported_as_such(
    data_dir: Path, clock: WallClock, caplog: pytest.LogCaptureFixture
) -> None:
    await prepared(data_dir, clock)
    original = (data_dir / "sessions.json").read_bytes()
    with caplog.at_level(logging.ERROR, "agent_identity.storage"):
        loaded = await backend(data_dir, clock, key=OTHER_KEY).load()
    assert dict(loaded.sessions) == {}
    assert_kept_aside(data_dir, caplog, "encrypted with another key", original)
    assert "AGENT_IDENTITY_STORE_KEY" in caplog.text
    assert OTHER_KEY.hex() not in caplog.text


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"version": 1, "alg": "A256GCM"}', "not a valid encrypted envelope"),
        (b'{"version": 1, "alg": "A256GCM", "kid": "x", "nonce": "!!", "ciphertext": "x"}', ""),
        (b'{"k": {"userToken": 5, "sub": "u", "expiresAt": 1}}', "plaintext session entry"),
        (b"", "not valid JSON"),
    ],
)
async def test_unparsable_files_are_kept_aside(
    data_dir: Path,
    clock: WallClock,
    caplog: pytest.LogCaptureFixture,
    content: bytes,
    reason: str,
) -> None:
    make_dir(data_dir)
    (data_dir / "sessions.json").write_bytes(content)
    with caplog.at_level(logging.ERROR, "agent_identity.storage"):
        loaded = await backend(data_dir, clock).load()
    assert dict(loaded.sessions) == {}
    assert_kept_aside(data_dir, caplog, reason, content)


async def test_bad_base64_and_short_nonce_are_reported(
    data_dir: Path, clock: WallClock, caplog: pytest.LogCaptureFixture
) -> None:
    await prepared(data_dir, clock)
    doc = envelope(data_dir)
    write_envelope(data_dir, {**doc, "nonce": "not base64!"})
    with caplog.at_level(logging.ERROR, "agent_identity.storage"):
        await backend(data_dir, clock).load()
    assert "nonce is not valid base64" in caplog.text
    write_envelope(data_dir, {**doc, "nonce": base64.b64encode(b"123").decode()})
    await backend(data_dir, clock).load()
    assert "nonce is 3 bytes" in caplog.text
    assert len(corrupt_files(data_dir)) == 2


async def test_a_corrupt_bindings_file_is_kept_aside_too(
    data_dir: Path, clock: WallClock, caplog: pytest.LogCaptureFixture
) -> None:
    await prepared(data_dir, clock)
    path = data_dir / "credential-env-bindings.json"
    path.write_text('{"a": {"google": 42}}')
    with caplog.at_level(logging.ERROR, "agent_identity.storage"):
        loaded = await backend(data_dir, clock).load()
    assert dict(loaded.bindings) == {}
    assert set(loaded.sessions) == {"a", "b"}
    kept = corrupt_files(data_dir, "credential-env-bindings.json")
    assert len(kept) == 1
    assert kept[0].read_text() == '{"a": {"google": 42}}'
    assert "not a valid bindings file" in caplog.text
    assert str(kept[0]) in caplog.text


async def test_after_a_corrupt_file_the_store_writes_a_fresh_one(
    data_dir: Path, clock: WallClock
) -> None:
    make_dir(data_dir)
    (data_dir / "sessions.json").write_bytes(b"garbage")
    store = backend(data_dir, clock)
    await store.load()
    await store.save(snapshot("new"))
    assert set(decrypt_sessions(data_dir, KEY)) == {"new"}
    assert len(corrupt_files(data_dir)) == 1


# ------------------------------------------------------------------ migration


def legacy_entry(key: str, expires_at: float, **extra: Any) -> dict[str, Any]:
    return {"userToken": token(f"id-{key}"), "sub": f"user-{key}", "expiresAt": expires_at, **extra}


async def test_a_plaintext_file_is_migrated_and_no_plaintext_is_left(
    data_dir: Path, clock: WallClock, caplog: pytest.LogCaptureFixture
) -> None:
    make_dir(data_dir)
    legacy = {
        "agent:main:main": legacy_entry(
            "agent:main:main",
            (T0 + 3600) * 1000,  # milliseconds
            refreshToken=token("refresh-agent:main:main"),
            loginAt=(T0 - 60) * 1000,
            email="m@example.com",
            somethingOld=True,
        ),
        "feishu:ou_1": legacy_entry("feishu:ou_1", T0 + 7200),  # seconds
        "gone": legacy_entry("gone", T0 - 1),  # expired
    }
    path = data_dir / "sessions.json"
    path.write_text(json.dumps(legacy))
    path.chmod(0o644)
    with caplog.at_level(logging.INFO, "agent_identity.storage"):
        loaded = await backend(data_dir, clock).load()
    assert set(loaded.sessions) == {"agent:main:main", "feishu:ou_1"}
    main = loaded.sessions["agent:main:main"]
    assert main.expires_at == T0 + 3600
    assert main.login_at == T0 - 60
    assert main.refresh_token == token("refresh-agent:main:main")
    assert main.email == "m@example.com"
    other = loaded.sessions["feishu:ou_1"]
    assert (other.expires_at, other.login_at, other.refresh_token) == (T0 + 7200, T0, None)
    raw = path.read_bytes()
    assert b"SECRET" not in raw
    assert envelope(data_dir)["alg"] == "A256GCM"
    assert mode(path) == 0o600
    assert set(decrypt_sessions(data_dir, KEY)) == {"agent:main:main", "feishu:ou_1"}
    assert listing(data_dir) == ["sessions.json"]
    assert "plaintext format" in caplog.text
    stats = (await _stats_after_load(data_dir, clock)).statistics()
    assert stats.migrated == 0  # the second load finds the encrypted file


async def _stats_after_load(data_dir: Path, clock: WallClock) -> FileBackend:
    store = backend(data_dir, clock)
    await store.load()
    return store


async def test_an_empty_plaintext_file_is_migrated(data_dir: Path, clock: WallClock) -> None:
    make_dir(data_dir)
    (data_dir / "sessions.json").write_text("{}")
    store = backend(data_dir, clock)
    assert dict((await store.load()).sessions) == {}
    assert envelope(data_dir)["version"] == 1
    assert store.statistics().migrated == 0
    assert store.statistics().session_writes == 1


# ------------------------------------------------------------------ pruning and temps


async def test_expired_sessions_are_pruned_on_load(data_dir: Path, clock: WallClock) -> None:
    store = backend(data_dir, clock)
    await store.load()
    # Without a refresh token an expired session is dead (a renewable one is kept).
    dead = record("short", expires_in=60, refresh=False)
    await store.save(Snapshot(sessions={"short": dead, "long": record("long")}))
    clock.advance(120)
    fresh = backend(data_dir, clock)
    loaded = await fresh.load()
    assert set(loaded.sessions) == {"long"}
    # ... and the file no longer holds the expired token.
    assert set(decrypt_sessions(data_dir, KEY)) == {"long"}
    assert fresh.statistics().pruned == 1


async def test_expired_sessions_are_pruned_on_save(data_dir: Path, clock: WallClock) -> None:
    store = backend(data_dir, clock)
    await store.load()
    clock.advance(120)
    dead = record("short", expires_in=60, refresh=False)
    await store.save(Snapshot(sessions={"short": dead, "long": record("long")}))
    assert set(decrypt_sessions(data_dir, KEY)) == {"long"}
    assert store.statistics().pruned == 1


async def test_temp_files_left_by_a_crash_are_removed_on_load(
    data_dir: Path, clock: WallClock
) -> None:
    await prepared(data_dir, clock)
    stale = [
        data_dir / temp_name("sessions.json"),
        data_dir / temp_name("credential-env-bindings.json"),
    ]
    for path in stale:
        path.write_bytes(b"half a write")
    unrelated = data_dir / "notes.txt"
    unrelated.write_text("keep me")
    loaded = await backend(data_dir, clock).load()
    assert set(loaded.sessions) == {"a", "b"}
    assert not any(path.exists() for path in stale)
    assert unrelated.exists()


async def test_unsafe_key_file_refuses_to_load(data_dir: Path, clock: WallClock) -> None:
    store = backend(data_dir, clock, key=None)
    await store.load()
    (data_dir / "store.key").chmod(0o640)
    with pytest.raises(UnsafePermissionsError, match="0640"):
        await backend(data_dir, clock, key=None).load()


async def test_memory_backend_keeps_the_last_snapshot_without_expired(clock: WallClock) -> None:
    dead = record("a", expires_in=10, refresh=False)
    store = MemoryBackend(Snapshot(sessions={"a": dead}), now=clock)
    assert set((await store.load()).sessions) == {"a"}
    clock.advance(20)
    await store.save(Snapshot(sessions={"a": dead}))
    assert dict(store.snapshot.sessions) == {}
    assert store.saves == 1
    assert "MemoryBackend" in repr(store)
    assert dict((await MemoryBackend().load()).sessions) == {}


async def test_an_authentic_file_with_a_bad_payload_is_kept_aside(
    data_dir: Path, clock: WallClock, caplog: pytest.LogCaptureFixture
) -> None:
    make_dir(data_dir)
    content = seal(b'{"sessions": [{"sessionKey": 1}]}', StoreKey(KEY, source="test"))
    (data_dir / "sessions.json").write_bytes(content)
    with caplog.at_level(logging.ERROR, "agent_identity.storage"):
        loaded = await backend(data_dir, clock).load()
    assert dict(loaded.sessions) == {}
    assert_kept_aside(data_dir, caplog, "decrypted content is not a session list", content)
