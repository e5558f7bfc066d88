"""The store key: env key, store.key created 0600 with O_EXCL, unsafe key files refused."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from agent_identity.storage import StoreKey, StoreKeyError, UnsafePermissionsError
from agent_identity.storage._keys import _read_after_race, load_store_key

from .helpers import KEY, OTHER_KEY


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "identity"
    path.mkdir(mode=0o700)
    return path


def test_key_file_is_created_exclusively_with_mode_0600(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, int, int]] = []
    real_open = os.open

    def recording_open(path: str | os.PathLike[str], flags: int, mode: int = 0o777) -> int:
        calls.append((os.fspath(path), flags, mode))
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", recording_open)
    old_umask = os.umask(0)  # the mode must come from os.open, not from the umask
    try:
        key = load_store_key(data_dir, None)
    finally:
        os.umask(old_umask)
    path = data_dir / "store.key"
    creates = [(flags, mode) for p, flags, mode in calls if p == str(path) and flags & os.O_CREAT]
    assert len(creates) == 1
    flags, mode = creates[0]
    assert flags & os.O_EXCL
    assert flags & os.O_NOFOLLOW
    assert mode == 0o600
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_bytes()) == 32
    # The next load reads the same key instead of creating one.
    assert load_store_key(data_dir, None).kid == key.kid
    assert key.source == str(path)


def test_the_env_key_wins_and_no_key_file_is_created(data_dir: Path) -> None:
    key = load_store_key(data_dir, KEY)
    assert key.source == "AGENT_IDENTITY_STORE_KEY"
    assert key.kid == StoreKey(KEY, source="x").kid
    assert not (data_dir / "store.key").exists()


def test_key_ids_differ_between_keys_and_repr_shows_no_key() -> None:
    key = StoreKey(KEY, source="env")
    other = StoreKey(OTHER_KEY, source="env")
    assert key.kid != other.kid
    assert len(key.kid) == 16
    assert repr(key) == f"<StoreKey kid={key.kid} from env>"
    assert KEY.hex() not in repr(key)


def test_a_key_of_the_wrong_size_is_refused(data_dir: Path) -> None:
    with pytest.raises(StoreKeyError, match="16 bytes, not 32"):
        StoreKey(b"x" * 16, source="env")
    path = data_dir / "store.key"
    path.write_bytes(b"k" * 31)
    path.chmod(0o600)
    with pytest.raises(StoreKeyError, match="31 bytes long"):
        load_store_key(data_dir, None)
    path.write_bytes(b"k" * 64)
    with pytest.raises(StoreKeyError, match="more than 32 bytes long"):
        load_store_key(data_dir, None)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o700 | 0o007])
def test_a_key_file_open_to_group_or_others_is_refused(data_dir: Path, mode: int) -> None:
    path = data_dir / "store.key"
    secret = os.urandom(32)
    path.write_bytes(secret)
    path.chmod(mode)
    with pytest.raises(UnsafePermissionsError) as info:
        load_store_key(data_dir, None)
    message = str(info.value)
    assert str(path) in message
    assert f"{mode:04o}" in message
    assert "chmod 600" in message
    assert secret.hex() not in message
    assert info.value.path == path
    # Refused, not "fixed": the operator decides whether the key was exposed.
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_a_key_file_owned_by_another_user_is_refused(data_dir: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to chown")
    path = data_dir / "store.key"
    path.write_bytes(os.urandom(32))
    path.chmod(0o600)
    os.chown(path, 12345, -1)
    with pytest.raises(UnsafePermissionsError, match="owned by uid 12345"):
        load_store_key(data_dir, None)


def test_a_symlinked_or_special_key_file_is_refused(data_dir: Path, tmp_path: Path) -> None:
    real = tmp_path / "elsewhere.key"
    real.write_bytes(os.urandom(32))
    real.chmod(0o600)
    link = data_dir / "store.key"
    link.symlink_to(real)
    with pytest.raises(UnsafePermissionsError, match="symbolic link"):
        load_store_key(data_dir, None)
    link.unlink()
    link.mkdir(mode=0o700)
    with pytest.raises(UnsafePermissionsError, match="not a regular file"):
        load_store_key(data_dir, None)


def test_an_empty_key_file_left_by_an_interrupted_creation_is_replaced(data_dir: Path) -> None:
    path = data_dir / "store.key"
    path.touch(mode=0o600)
    key = load_store_key(data_dir, None)
    assert len(path.read_bytes()) == 32
    assert load_store_key(data_dir, None).kid == key.kid


def test_losing_the_creation_race_reads_the_winners_key(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = data_dir / "store.key"
    winner = os.urandom(32)
    real_open = os.open

    def racing_open(p: str | os.PathLike[str], flags: int, mode: int = 0o777) -> int:
        if os.fspath(p) == str(path) and flags & os.O_EXCL and not path.exists():
            # Another process creates the file between our read and our create.
            path.write_bytes(winner)
            path.chmod(0o600)
        return real_open(p, flags, mode)

    monkeypatch.setattr(os, "open", racing_open)
    key = load_store_key(data_dir, None)
    assert key.kid == StoreKey(winner, source="x").kid
    # If the winner has not written its key yet, we do not delete its file.
    path.write_bytes(b"")
    monkeypatch.setattr(
        "agent_identity.storage._keys._read_key_file",
        lambda p, *, replace_empty=True: None,
    )
    with pytest.raises(StoreKeyError, match="vanished"):
        _read_after_race(path)
