"""File primitives: private folder, atomic writes, stale temps, corrupt files kept aside."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from agent_identity.storage import UnsafePermissionsError
from agent_identity.storage._files import (
    ensure_private_dir,
    keep_aside,
    read_data_file,
    remove_stale_temps,
    temp_name,
    write_atomic,
)

from .helpers import T0


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_data_dir_is_created_0700_with_parents(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "identity"
    old = os.umask(0o022)
    try:
        ensure_private_dir(target)
    finally:
        os.umask(old)
    assert target.is_dir()
    assert mode(target) == 0o700


def test_an_open_data_dir_is_tightened_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    target = tmp_path / "identity"
    target.mkdir()
    target.chmod(0o755)
    with caplog.at_level(logging.WARNING, "agent_identity.storage"):
        ensure_private_dir(target)
    assert mode(target) == 0o700
    assert "0755" in caplog.text


def test_a_data_dir_of_another_user_is_refused(tmp_path: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to chown")
    target = tmp_path / "identity"
    target.mkdir(mode=0o700)
    os.chown(target, 12345, -1)
    with pytest.raises(UnsafePermissionsError, match="owned by uid 12345") as info:
        ensure_private_dir(target)
    assert info.value.path == target


def test_a_data_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "identity"
    target.write_text("x")
    with pytest.raises(NotADirectoryError):
        ensure_private_dir(target)


def test_atomic_write_creates_a_0600_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "f.json"
    write_atomic(target, b"one")
    write_atomic(target, b"two" * 100_000)
    assert target.read_bytes() == b"two" * 100_000
    assert mode(target) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "f.json"
    write_atomic(target, b"old")

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space"):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_stale_temps_of_our_files_are_removed_and_nothing_else(tmp_path: Path) -> None:
    ours = [tmp_path / temp_name("sessions.json"), tmp_path / temp_name("bindings.json")]
    others = [tmp_path / "sessions.json", tmp_path / ".other.abc.tmp", tmp_path / "x.tmp"]
    for path in ours + others:
        path.write_text("x")
    assert remove_stale_temps(tmp_path, ["sessions.json", "bindings.json"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in others)
    assert remove_stale_temps(tmp_path, ["sessions.json"]) == 0


def test_keep_aside_never_overwrites(tmp_path: Path) -> None:
    first = tmp_path / "sessions.json"
    first.write_text("1")
    kept1 = keep_aside(first, T0)
    first.write_text("2")
    kept2 = keep_aside(first, T0)
    assert kept1.name == "sessions.json.corrupt-20270115T080000Z"
    assert kept2.name == "sessions.json.corrupt-20270115T080000Z-1"
    assert (kept1.read_text(), kept2.read_text()) == ("1", "2")
    assert not first.exists()


def test_read_data_file_tightens_an_open_mode(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    target = tmp_path / "f.json"
    assert read_data_file(target) is None
    target.write_bytes(b"data")
    target.chmod(0o644)
    with caplog.at_level(logging.WARNING, "agent_identity.storage"):
        assert read_data_file(target) == b"data"
    assert mode(target) == 0o600
    assert "0644" in caplog.text
