"""What the kernel says about a Unix-socket peer: SO_PEERCRED, SO_PEERPIDFD and ``/proc``.

This module only reads; :mod:`agent_identity.transports.peer` decides.

**Credentials.** ``SO_PEERCRED`` returns the pid, uid and gid the kernel recorded when the
peer called ``connect()``. They never change afterwards: a child that inherits the socket,
or the connector after a ``setuid()``, still shows the connector's connect-time values. The
pid is the thread-group id (what ``/proc/<pid>`` is named after), translated into this pid
namespace, or 0 when the connector is not visible in it.

**PID reuse.** The pid is only a number: once the connector has exited and been reaped, the
kernel may hand it to an unrelated process, and ``/proc/<pid>`` then describes that one.
Two defences, the first where the kernel offers it:

* ``SO_PEERPIDFD`` (Linux >= 6.5, option 77, absent from Python 3.11's :mod:`socket`) gives a
  pidfd for the connector itself. After the ``/proc`` reads the pidfd is polled: it turns
  readable once that process has exited (zombie or reaped), and a process that is still
  running now was running throughout the reads, so its pid was never free to be reused and
  the reads described it. Polling is used rather than ``pidfd_send_signal(pidfd, 0)``
  because a signal to a zombie still succeeds. Recent kernels (6.18 here) hand out a pidfd
  even for a connector that is already reaped; it simply polls readable, so that case is
  caught by the same check (older ones refuse the option, reported here as "exited").
* Otherwise the process start time (field 22 of ``/proc/<pid>/stat``, in clock ticks since
  boot) is read before and after the reads and must not change, and the process must not be
  a zombie. This cannot notice a pid that was reused *before* the first read; only the pidfd
  closes that window.

**Files read.** ``/proc/<pid>/exe`` (readlink: the executable the kernel mapped; changing it
needs ``CAP_SYS_RESOURCE``: ``prctl(PR_SET_MM_EXE_FILE)``) and ``/proc/<pid>/comm``
(informational: any process can rewrite it with ``prctl(PR_SET_NAME)``); without a pidfd
also ``/proc/<pid>/stat`` twice (state and start time). With a pidfd the stat file is not
read (it is the costliest file, ~10 µs), so the start time is then unknown.
``/proc/<pid>/status`` is never read: its ``Name`` is the same kernel field as ``comm``, and
its ``Uid`` is the process's current identity, whereas the connect-time ``SO_PEERCRED`` uid
is what the kernel vouches for; it would add ~10 µs per connection and change no decision.
Nothing is cached between calls.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
from dataclasses import dataclass
from typing import Final

__all__ = [
    "SO_PEERPIDFD",
    "Inspection",
    "KernelSupport",
    "ProcStat",
    "ProcessAnchor",
    "inspect_process",
    "kernel_support",
    "peer_credentials",
    "pidfd_exited",
    "read_comm",
    "read_stat",
]

#: ``SO_PEERPIDFD`` from ``<asm-generic/socket.h>``; Python 3.11's :mod:`socket` lacks it.
SO_PEERPIDFD: Final = 77

#: Linux only; elsewhere every peer is unresolved and ``localServerFailOpen`` decides.
_SO_PEERCRED: Final[int | None] = getattr(socket, "SO_PEERCRED", None)
#: ``struct ucred``: ``pid_t`` is signed, ``uid_t`` and ``gid_t`` are not.
_UCRED: Final = struct.Struct("=iII")
#: ``(uid_t) -1``: the kernel's "no credentials" (an unconnected or non-Unix socket).
_NO_UID: Final = 0xFFFFFFFF
#: ``/proc/<pid>/stat`` states of a process that has exited (zombie, dead).
_EXITED_STATES: Final = frozenset({"Z", "X", "x"})


@dataclass
class KernelSupport:
    """Kernel features probed at run time (what the kernel is, never what a peer is).

    Attributes:
        peer_pidfd: ``SO_PEERPIDFD`` may work; cleared for good the first time the kernel
            answers ``ENOPROTOOPT`` (it then does so for every socket). Tests clear it to run
            the start-time fallback on a kernel that has pidfds.
    """

    peer_pidfd: bool = True


#: The one process-wide probe result.
kernel_support = KernelSupport()


@dataclass(frozen=True, slots=True)
class ProcStat:
    """The two fields of ``/proc/<pid>/stat`` used here.

    Attributes:
        state: Field 3, e.g. ``R``, ``S``, ``Z``.
        start_time: Field 22, the start time in clock ticks since boot.
    """

    state: str
    start_time: int

    @property
    def exited(self) -> bool:
        """The process has exited and only its entry is left."""
        return self.state in _EXITED_STATES


def peer_credentials(sock: socket.socket) -> tuple[int, int, int] | None:
    """The ``(pid, uid, gid)`` recorded at ``connect()``, or ``None`` when there are none.

    There are none on a socket that is not a connected ``AF_UNIX`` stream or seqpacket
    socket: the kernel then reports pid 0 and uid ``(uid_t) -1`` (it never fails the call).

    Raises:
        OSError: ``sock`` is not an open socket (a caller bug, never a peer's doing).
    """
    if _SO_PEERCRED is None:
        return None
    raw = sock.getsockopt(socket.SOL_SOCKET, _SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    if uid == _NO_UID:
        return None
    return pid, uid, gid


def _peer_pidfd(sock: socket.socket) -> int | None:
    """A pidfd for the connector; ``None`` when the kernel has no ``SO_PEERPIDFD``.

    Raises:
        ProcessLookupError: The kernel has the option but no live connector to point at.
    """
    if not kernel_support.peer_pidfd:
        return None
    try:
        return sock.getsockopt(socket.SOL_SOCKET, SO_PEERPIDFD)
    except OSError as exc:
        if exc.errno == errno.ENOPROTOOPT:
            kernel_support.peer_pidfd = False
            return None
        # Older kernels answer EINVAL/ESRCH for a reaped connector: the peer is gone.
        raise ProcessLookupError(exc.errno, "peer process gone") from exc


def pidfd_exited(pidfd: int) -> bool:
    """Whether the process behind ``pidfd`` has exited (a pidfd polls readable then)."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(0))


def _read_small(path: str) -> bytes | None:
    """A small ``/proc`` file's bytes, or ``None`` when it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return os.read(fd, 4096)
        finally:
            os.close(fd)
    except OSError:  # gone (ENOENT, or ESRCH between open and read) or not ours to read
        return None


def read_stat(pid: int) -> ProcStat | None:
    """State and start time from ``/proc/<pid>/stat``, or ``None`` when unreadable."""
    raw = _read_small(f"/proc/{pid}/stat")
    if raw is None:
        return None
    # Field 2 is "(comm)" and comm may hold spaces and parentheses: split after the last ")";
    # what follows is kernel ABI (numbers and the one-letter state), so it parses as is.
    fields = raw[raw.rfind(b")") + 2 :].split()
    return ProcStat(fields[0].decode("ascii"), int(fields[19]))


def read_comm(pid: int) -> str | None:
    """``/proc/<pid>/comm`` (at most 15 bytes, set by the process itself), or ``None``."""
    raw = _read_small(f"/proc/{pid}/comm")
    return None if raw is None else os.fsdecode(raw.removesuffix(b"\n"))


class ProcessAnchor:
    """Ties a decision to one process: its pidfd, or else its pid and start time.

    Owns the pidfd: :meth:`close` releases it, and so does garbage collection as a safety
    net (one descriptor per open connection, never shared).
    """

    __slots__ = ("_pidfd", "_uses_pidfd", "pid", "start_time")

    def __init__(self, pid: int, *, pidfd: int | None, start_time: int | None) -> None:
        self.pid = pid
        self.start_time = start_time
        self._pidfd = pidfd
        self._uses_pidfd = pidfd is not None

    def exited(self) -> bool:
        """Whether the anchored process has exited, or its pid now names another process.

        Raises:
            ValueError: The anchor was closed.
        """
        if self._uses_pidfd:
            if self._pidfd is None:
                raise ValueError("process anchor is closed")
            return pidfd_exited(self._pidfd)
        stat = read_stat(self.pid)
        return stat is None or stat.exited or stat.start_time != self.start_time

    def close(self) -> None:
        """Release the pidfd, if any; safe to call more than once."""
        fd, self._pidfd = self._pidfd, None
        if fd is not None:
            os.close(fd)

    def __del__(self) -> None:
        # getattr: __init__ may not have run if construction failed.
        if getattr(self, "_pidfd", None) is not None:
            self.close()


@dataclass(frozen=True, slots=True)
class Inspection:
    """What ``/proc`` says about a connector, checked against PID reuse.

    Attributes:
        exe: ``/proc/<pid>/exe``, or ``None`` when unknown (then see ``problem``).
        comm: ``/proc/<pid>/comm``, or ``None``.
        start_time: Start time in clock ticks since boot, or ``None``.
        anchor: For a live, identified process: what later re-checks use. ``None`` otherwise.
        problem: Why the process is unidentified (``exited``, ``/proc unreadable (EACCES)``).
    """

    exe: str | None
    comm: str | None
    start_time: int | None
    anchor: ProcessAnchor | None
    problem: str | None


_GONE: Final = Inspection(None, None, None, None, "exited")


def inspect_process(sock: socket.socket, pid: int) -> Inspection:
    """Read the connector of ``sock`` (pid ``pid``) from ``/proc`` and prove it was the one.

    Everything read is discarded when the process turns out to have exited during the
    reads: it may then have described a process that reused the pid.
    """
    try:
        pidfd = _peer_pidfd(sock)
    except ProcessLookupError:
        return _GONE
    if pidfd is None:
        return _inspect_by_start_time(pid)
    # The anchor owns the pidfd from here on, so no path below can leak it.
    anchor = ProcessAnchor(pid, pidfd=pidfd, start_time=None)
    exe, comm, problem = _read_identity(pid)
    # Still running now means running throughout the reads: the pid was never reusable.
    # The start time is not read here: the pidfd is the defence, and stat costs ~10 µs.
    gone = anchor.exited()
    if gone or exe is None:
        anchor.close()
        return _GONE if gone else Inspection(None, comm, None, None, problem)
    return Inspection(exe, comm, None, anchor, None)


def _inspect_by_start_time(pid: int) -> Inspection:
    """:func:`inspect_process` without a pidfd: the start time must not change."""
    before = read_stat(pid)
    if before is None or before.exited:
        return _GONE
    exe, comm, problem = _read_identity(pid)
    after = read_stat(pid)
    if after is None or after.exited or after.start_time != before.start_time:
        return _GONE
    if exe is None:
        return Inspection(None, comm, after.start_time, None, problem)
    anchor = ProcessAnchor(pid, pidfd=None, start_time=after.start_time)
    return Inspection(exe, comm, after.start_time, anchor, None)


def _read_identity(pid: int) -> tuple[str | None, str | None, str | None]:
    """``(exe, comm, problem)`` of ``pid``; ``problem`` says why ``exe`` is ``None``."""
    try:
        # os.readlink, not Path.readlink: this runs per connection and a Path costs ~2 µs.
        exe = os.readlink(f"/proc/{pid}/exe")  # noqa: PTH115
    except FileNotFoundError:
        # No such process, or no executable mapped any more (it is exiting).
        return None, None, "exited"
    except OSError as exc:
        return (
            None,
            read_comm(pid),
            f"/proc unreadable ({errno.errorcode.get(exc.errno or 0, '?')})",
        )
    return exe, read_comm(pid), None
