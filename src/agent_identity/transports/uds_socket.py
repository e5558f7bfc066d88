"""The local identity socket: creating it, accepting on it, ending connections.

:func:`open_unix_listener` binds, yields the listening socket, and on exit removes the file
if it is still the one it created (same device and inode). :func:`bind_unix_listener` is the
binding alone; its caller owns the file. How the socket appears with no window in which
anyone else can connect:

1. The folder is created 0700, or forced to 0700 if it exists and is ours. A folder of
   another user, or a shared one (sticky bit, like ``/tmp``), is refused: changing its mode
   would break everybody else using it.
2. The socket is bound to a temporary name in that folder, made 0600, starts listening, and
   is renamed onto the final name. Until ``listen`` every connect is refused; from then on
   the file is 0600 in a 0700 folder; and the final name only ever names a socket that
   already listens, so a connect there either reaches a live server or proves the file
   stale. (``umask(0o177)`` around ``bind`` is process-wide: a thread creating a file at
   that moment would get the wrong mode.)
3. An existing socket whose connect is refused is stale and the rename replaces it; one that
   accepts (or has a full backlog) means another instance runs: :class:`SocketInUseError`.
   Anything else (a file, a symlink, a folder) is never touched: :class:`SocketPathError`.

Checking and renaming happen under an exclusive ``flock`` on the folder, held for
microseconds, so two instances starting at once cannot both replace the same stale file;
removal takes the same lock.

Serving: :func:`accept_connections` takes every waiting connection per wake-up (trio's
``accept`` yields after each one, so a burst of new clients would each wait for a pass over
the busy ones); :func:`send_all` waits for room; :func:`shutdown_and_drain` ends a connection
so the client reads the last answer instead of a reset; :class:`Watchdog` enforces deadlines;
:class:`ConnectionGate` is the shape of the peer check (``transports.peer.PeerGate``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import math
import os
import secrets
import socket
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn, Protocol, TypeVar

import trio

__all__ = [
    "DEFAULT_BACKLOG",
    "ConnectionGate",
    "Deadline",
    "GateDecision",
    "SocketInUseError",
    "SocketPathError",
    "UnixListenerError",
    "Watchdog",
    "accept_connections",
    "bind_unix_listener",
    "open_unix_listener",
    "send_all",
    "shutdown_and_drain",
]

logger = logging.getLogger(__name__)

#: Pending connections the kernel queues before ``accept``.
DEFAULT_BACKLOG = 512
# sun_path holds 108 bytes including the terminating NUL.
_MAX_PATH_BYTES = 107
_SHARED_BITS = stat.S_ISVTX | stat.S_IWOTH
# Connections accepted per wake-up before the accept loop lets other tasks run.
_ACCEPT_BATCH = 64
# accept() failures that mean "out of resources for now", not "the listener is broken".
_ACCEPT_RETRY = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_ACCEPT_BACKOFF = 0.1
_LINGER_SECONDS = 1.0
_LINGER_BYTES = 1 << 16


class UnixListenerError(Exception):
    """The local socket cannot be created."""


class SocketInUseError(UnixListenerError):
    """Another process is already listening on the socket path."""


class SocketPathError(UnixListenerError):
    """The socket path or its folder cannot be used (and was left as it was)."""


def bind_unix_listener(
    path: str | os.PathLike[str], *, backlog: int = DEFAULT_BACKLOG
) -> trio.socket.SocketType:
    """Create a listening Unix socket at ``path`` with mode 0600 in a 0700 folder.

    The caller owns the socket and the file; :func:`open_unix_listener` also removes it.

    Args:
        path: Where the socket file goes. Give it a folder of its own: the folder is
            created if missing and made 0700 if it is not.
        backlog: Pending connections the kernel queues before ``accept``.

    Returns:
        The listening socket.

    Raises:
        SocketInUseError: A live server already listens at ``path``.
        SocketPathError: ``path`` exists and is not a socket, is too long, or its folder
            belongs to another user or is shared.
        OSError: The file system refused an operation.
    """
    sock, _ = _bind(Path(path), backlog)
    return sock


@contextlib.contextmanager
def open_unix_listener(
    path: str | os.PathLike[str], *, backlog: int = DEFAULT_BACKLOG
) -> Iterator[trio.socket.SocketType]:
    """Bind like :func:`bind_unix_listener`; on exit remove the file (if still ours) and close.

    The file is removed only if it is still the inode this call created: a file that a
    newer instance put at the same path is left alone.

    Args:
        path: Where the socket file goes; its folder is created if missing.
        backlog: Pending connections the kernel queues before ``accept``.

    Yields:
        The listening socket.

    Raises:
        SocketInUseError: A live server already listens at ``path``.
        SocketPathError: ``path`` exists and is not a socket, is too long, or its folder
            belongs to another user or is shared.
        OSError: The file system refused an operation.
    """
    target = Path(path)
    sock, identity = _bind(target, backlog)
    try:
        yield sock
    finally:
        # Unlink first, so nobody connects to a socket that is about to close.
        try:
            _remove_if_ours(target, identity)
        finally:
            sock.close()


def _bind(path: Path, backlog: int) -> tuple[trio.socket.SocketType, tuple[int, int]]:
    folder = path.parent
    temporary = folder / f".{secrets.token_hex(4)}.sock"
    for name in (path, temporary):
        if len(os.fsencode(name)) > _MAX_PATH_BYTES:
            raise SocketPathError(f"the socket path is too long for AF_UNIX: {name}")
    _make_private_folder(folder)
    with _folder_lock(folder):
        _check_existing(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(os.fspath(temporary))
            temporary.chmod(0o600)
            info = temporary.lstat()
            sock.listen(backlog)
            temporary.replace(path)
        except BaseException:
            sock.close()
            temporary.unlink(missing_ok=True)
            raise
    return trio.socket.from_stdlib_socket(sock), (info.st_dev, info.st_ino)


def _make_private_folder(folder: Path) -> None:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.stat()  # a folder: mkdir would have raised FileExistsError otherwise
    if info.st_uid != os.geteuid():
        raise SocketPathError(f"the socket folder belongs to another user: {folder}")
    if stat.S_IMODE(info.st_mode) != 0o700:
        if info.st_mode & _SHARED_BITS:
            raise SocketPathError(f"the socket folder is shared; use a private one: {folder}")
        folder.chmod(0o700)


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _check_existing(path: Path) -> None:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise SocketPathError(f"{path} exists and is not a socket; it was left untouched")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.setblocking(False)
    try:
        probe.connect(os.fspath(path))
    except ConnectionRefusedError:
        return  # stale: the rename will replace it
    except BlockingIOError:
        pass  # alive, with a full backlog
    except PermissionError as exc:
        raise SocketPathError(f"the existing socket cannot be checked: {path}") from exc
    finally:
        probe.close()
    raise SocketInUseError(f"already running: a server is listening on {path}")


def _remove_if_ours(path: Path, identity: tuple[int, int]) -> None:
    with contextlib.suppress(FileNotFoundError), _folder_lock(path.parent):
        info = path.lstat()
        if (info.st_dev, info.st_ino) == identity:
            path.unlink()


# --------------------------------------------------------------------------- serving


class GateDecision(Protocol):
    """A peer gate's verdict on a connection (``transports.peer.PeerDecision`` is one)."""

    @property
    def allowed(self) -> bool:
        """Whether the peer may be served."""
        ...

    @property
    def reason(self) -> str:
        """Why (sent to a refused client; never secret)."""
        ...

    @property
    def peer(self) -> object:
        """What is known about the peer (process, user), for the application."""
        ...

    def close(self) -> None:
        """Release what the decision holds (e.g. a pidfd); called when the connection ends."""
        ...


_D = TypeVar("_D", bound=GateDecision)


class ConnectionGate(Protocol[_D]):
    """Decides which local processes may use a connection (``transports.peer.PeerGate``)."""

    def admit(self, fd: int, /) -> _D:
        """Check the peer of a freshly accepted connection, before anything is read."""
        ...

    def confirm(self, decision: _D, /) -> _D:
        """Re-check ``admit``'s decision once each request has been read (PID reuse)."""
        ...


class Deadline:
    """One connection's deadline, enforced by a :class:`Watchdog` that cancels ``scope``.

    Attributes:
        deadline: When (on Trio's clock) the connection is overdue; ``inf``: never.
        phase: What the connection is doing, for its owner; the watchdog ignores it.
        scope: The cancel scope the connection runs in; cancelled when overdue.
    """

    __slots__ = ("deadline", "phase", "scope")

    def __init__(self) -> None:
        self.deadline = math.inf
        self.phase = 0
        self.scope = trio.CancelScope()


class Watchdog:
    """Enforces the deadlines of many connections from one task.

    Moving a Trio cancel scope's deadline costs about as much as parsing a request (it
    re-sorts the run's deadline heap); writing :attr:`Deadline.deadline` costs nothing. The
    price is precision: an overdue connection is cancelled up to ``tick`` seconds late.

    Args:
        tick: Seconds between checks.
    """

    def __init__(self, tick: float) -> None:
        self._tick = tick
        self._watched: set[Deadline] = set()

    def __len__(self) -> int:
        return len(self._watched)

    def watch(self) -> Deadline:
        """A new deadline (never, until set), checked until :meth:`forget`."""
        deadline = Deadline()
        self._watched.add(deadline)
        return deadline

    def forget(self, deadline: Deadline) -> None:
        """Stop checking ``deadline``."""
        self._watched.discard(deadline)

    async def run(self) -> NoReturn:
        """Check every ``tick`` seconds until cancelled."""
        while True:
            await trio.sleep(self._tick)
            now = trio.current_time()
            for watched in self._watched:
                if watched.deadline <= now:
                    watched.scope.cancel()


async def accept_connections(
    listener: trio.socket.SocketType, accepted: Callable[[socket.socket], object]
) -> NoReturn:
    """Accept connections until cancelled, handing each to ``accepted`` as it comes.

    Every connection already waiting is accepted per wake-up (up to a batch), on a duplicate
    of the listening descriptor; the listener itself is left open.

    Args:
        listener: A listening socket.
        accepted: Takes ownership of each connection: a plain, non-blocking socket.

    Raises:
        OSError: ``accept`` failed other than for a temporary lack of resources (those
            are logged and retried after a pause).
    """
    with socket.fromfd(listener.fileno(), listener.family, listener.type) as raw:
        raw.setblocking(False)
        while True:
            await trio.lowlevel.wait_readable(raw)
            for _ in range(_ACCEPT_BATCH):
                try:
                    conn, _ = raw.accept()
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno not in _ACCEPT_RETRY:
                        raise
                    logger.warning("accept failed (%s); retrying", exc)
                    await trio.sleep(_ACCEPT_BACKOFF)
                    break
                conn.setblocking(False)
                accepted(conn)


async def send_all(conn: socket.socket, data: bytes) -> None:
    """Send all of ``data`` on a non-blocking socket, waiting for room as needed.

    There is no time limit here: the caller sets one (a slow reader can take forever). A
    peer that has gone raises ``BrokenPipeError``, never ``SIGPIPE`` (an embedding process
    may not ignore that signal the way Python does).
    """
    view = memoryview(data)
    while True:
        await trio.lowlevel.wait_writable(conn)
        with contextlib.suppress(BlockingIOError):
            view = view[conn.send(view, socket.MSG_NOSIGNAL) :]
        if not view:
            return


async def shutdown_and_drain(conn: socket.socket) -> None:
    """Stop writing, then read and drop what the peer still sends, for a moment at most.

    Closing a Unix socket with unread input makes Linux reset the peer, which may then
    lose an answer it has not read yet (an error sent before its request was read in
    full); draining first avoids that. The caller closes the socket afterwards.
    """
    await trio.lowlevel.checkpoint_if_cancelled()
    with contextlib.suppress(OSError):  # the peer may be gone already
        conn.shutdown(socket.SHUT_WR)
        drained = 0
        with trio.move_on_after(_LINGER_SECONDS):
            while True:
                await trio.lowlevel.wait_readable(conn)
                with contextlib.suppress(BlockingIOError):
                    chunk = conn.recv(_LINGER_BYTES)
                    drained += len(chunk)
                    if not chunk or drained >= _LINGER_BYTES:
                        break
