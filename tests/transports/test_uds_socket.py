"""Creating, replacing and removing the local identity socket file."""

from __future__ import annotations

import os
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from agent_identity.transports.uds_socket import (
    SocketInUseError,
    SocketPathError,
    bind_unix_listener,
    open_unix_listener,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def connects(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(os.fspath(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def inode(path: Path) -> int:
    return path.lstat().st_ino


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def exists(path: Path) -> bool:
    return path.exists()


def remove(path: Path) -> None:
    path.unlink()


def stale_socket(path: Path) -> int:
    """A socket file whose process is gone (bound, never unlinked); returns its inode."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(os.fspath(path))
    dead.close()
    return path.lstat().st_ino


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "identity" / "identity.sock"


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that hides nothing: the modes must come from the code, not from the umask."""
    previous = os.umask(0)
    yield
    os.umask(previous)


@pytest.mark.usefixtures("open_umask")
async def test_a_private_folder_and_an_owner_only_socket(path: Path) -> None:
    with open_unix_listener(path) as listener:
        assert mode(path.parent) == 0o700
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
        assert mode(path) == 0o600
        assert listener.family == socket.AF_UNIX
        assert connects(path)
        assert names(path.parent) == ["identity.sock"]  # no temporary name left behind
    assert not exists(path)


@pytest.fixture
def open_folder(path: Path) -> None:
    path.parent.mkdir(mode=0o755)
    path.parent.chmod(0o755)


@pytest.mark.usefixtures("open_folder")
async def test_an_existing_open_folder_is_made_private(path: Path) -> None:
    with open_unix_listener(path):
        assert mode(path.parent) == 0o700


def test_a_shared_folder_is_refused_and_left_alone(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    with pytest.raises(SocketPathError, match="shared"):
        bind_unix_listener(shared / "identity.sock")
    assert mode(shared) == 0o1777
    assert list(shared.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand a folder to another user")
def test_a_folder_of_another_user_is_refused(path: Path) -> None:
    path.parent.mkdir(mode=0o700)
    os.chown(path.parent, 4242, 4242)
    with pytest.raises(SocketPathError, match="another user"):
        bind_unix_listener(path)
    assert list(path.parent.iterdir()) == []


async def test_a_stale_socket_is_replaced(path: Path) -> None:
    old = stale_socket(path)
    assert not connects(path)
    with open_unix_listener(path):
        assert inode(path) != old
        assert connects(path)


async def test_a_live_socket_is_never_taken_over(path: Path) -> None:
    with open_unix_listener(path):
        before = inode(path)
        with pytest.raises(SocketInUseError, match="already running"):
            bind_unix_listener(path)
        assert inode(path) == before
        assert connects(path)
        assert names(path.parent) == ["identity.sock"]


def test_a_live_socket_with_a_full_backlog_counts_as_live(path: Path) -> None:
    path.parent.mkdir(mode=0o700)
    busy = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    waiting: list[socket.socket] = []
    try:
        busy.bind(os.fspath(path))
        busy.listen(0)
        while True:  # fill the backlog: further connects would block
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.setblocking(False)
            waiting.append(client)
            try:
                client.connect(os.fspath(path))
            except BlockingIOError:
                break
        with pytest.raises(SocketInUseError):
            bind_unix_listener(path)
    finally:
        for client in waiting:
            client.close()
        busy.close()


@pytest.mark.parametrize("kind", ["file", "symlink", "folder"])
def test_something_else_at_the_path_is_never_touched(path: Path, kind: str) -> None:
    path.parent.mkdir(mode=0o700)
    target = path.parent / "target"
    target.write_text("keep me")
    if kind == "file":
        path.write_text("precious")
    elif kind == "symlink":
        path.symlink_to(target)
    else:
        path.mkdir()
    with pytest.raises(SocketPathError, match="not a socket"):
        bind_unix_listener(path)
    if kind == "file":
        assert path.read_text() == "precious"
    elif kind == "symlink":
        assert path.is_symlink()
    else:
        assert path.is_dir()
    assert target.read_text() == "keep me"
    assert names(path.parent) == sorted([path.name, "target"])


def replace_file(path: Path) -> int:
    """Someone put another socket at the path (e.g. an instance that thought ours dead)."""
    path.unlink()
    return stale_socket(path)


async def test_only_our_own_socket_file_is_removed(path: Path) -> None:
    with open_unix_listener(path):
        newer = replace_file(path)
    assert inode(path) == newer


async def test_a_socket_file_already_gone_is_fine(path: Path) -> None:
    with open_unix_listener(path):
        remove(path)
    assert not exists(path)


def test_a_path_too_long_for_af_unix(tmp_path: Path) -> None:
    with pytest.raises(SocketPathError, match="too long"):
        bind_unix_listener(tmp_path / ("d" * 100) / "identity.sock")


async def test_bind_leaves_the_socket_to_its_caller(path: Path) -> None:
    listener = bind_unix_listener(path)
    try:
        assert connects(path)
    finally:
        listener.close()
    assert exists(path)  # bind_unix_listener's caller owns the file
    with open_unix_listener(path):  # and it is stale now, so the next start replaces it
        assert connects(path)


def reset(path: Path) -> None:
    path.unlink(missing_ok=True)
    stale_socket(path)


Outcome = trio.socket.SocketType | SocketInUseError


def start(path: Path, barrier: threading.Barrier, outcomes: list[Outcome]) -> None:
    barrier.wait()
    try:
        outcomes.append(bind_unix_listener(path))
    except SocketInUseError as exc:
        outcomes.append(exc)


async def test_two_instances_starting_at_once_cannot_both_win(path: Path) -> None:
    for _ in range(20):
        reset(path)  # both will see the same stale file
        barrier = threading.Barrier(2)
        outcomes: list[Outcome] = []
        async with trio.open_nursery() as nursery:
            for _ in range(2):
                nursery.start_soon(trio.to_thread.run_sync, start, path, barrier, outcomes)
        winners = [o for o in outcomes if not isinstance(o, SocketInUseError)]
        assert len(winners) == 1, outcomes
        winners[0].close()
