"""The local identity server's peer gate: which local process may talk to the Unix socket.

The server calls :meth:`PeerGate.admit` right after ``accept()``, before reading a byte, and
:meth:`PeerGate.confirm` once the request has been read. Both are synchronous and cheap
(measured here, best of 7: ``admit`` ~19 µs with a pidfd, ~36 µs without; ``confirm``
~1 µs with a pidfd, ~10 µs without), and nothing is cached between connections.

Rules, in order (the spec's "Local Identity Server (UDS)" section):

1. **Credentials.** ``SO_PEERCRED`` gives the connector's pid, uid and gid. Without them the
   peer is *unresolved* (rule 4).
2. **Uid.** Only the socket owner's uid (``owner_uid``, default the server's euid) and root
   may connect; any other uid is refused whatever the allowlist and ``fail_open`` say, even
   when the process cannot be inspected, because the kernel vouches for the uid.
3. **Process.** ``/proc/<pid>/exe`` names the executable, re-checked against PID reuse (see
   :mod:`agent_identity.transports.peer_proc`). The allowlist is ``curl`` plus
   ``localServerAllowlist``; an entry matches the executable's *basename* (``name``) or its
   full *path* (``exe``) exactly, and an entry ending in ``*`` matches any basename or path
   that starts with the rest (``python*`` matches ``python3.11``, ``/opt/tools/*`` anything
   under it). Other glob characters are literal. ``comm`` is never matched: a process sets
   it itself with ``prctl(PR_SET_NAME)``, so a Python renamed to ``curl`` is refused. A
   deleted executable reads as ``<path> (deleted)`` and matches only an entry allowing that.
   Names are only names: any binary called ``curl`` passes, as the spec wants; list full
   paths to pin executables down.
4. **Unresolved peers** (no credentials, pid not visible in this namespace, process exited
   or a zombie, ``/proc`` unreadable) are allowed when ``fail_open`` (the default: the
   socket's 0600 mode is then the boundary) and refused otherwise.

**The request may come from another process.** Credentials name the *connector*. A client
that forks after connecting and exits hands the socket to its child, which the kernel never
reports. If the connector is gone by :meth:`~PeerGate.admit`, the peer is unresolved (rule
4). If it is still running then, it is checked and admitted; :meth:`~PeerGate.confirm`
later polls its pidfd (or re-reads its start time) and, if it has exited or its pid now
names another process, treats the connection as unresolved again: refused with verdict
``exited`` when fail-closed, allowed with verdict ``fail-open`` when fail-open. An
unresolved peer admitted by fail-open, and any refusal, is returned unchanged.

So with fail-open the allowlist is advisory against a hostile same-uid process (it can exit
after forking, or, against a non-root server, make itself undumpable so ``exe`` is
unreadable); ``fail_open=False`` makes it binding.
"""

from __future__ import annotations

import os
import socket
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import TracebackType

from agent_identity.transports.peer_proc import ProcessAnchor, inspect_process, peer_credentials

__all__ = [
    "BUILTIN_ALLOWLIST",
    "PeerDecision",
    "PeerGate",
    "PeerInfo",
    "PeerStatistics",
    "PeerVerdict",
]

#: Always allowed, whatever ``localServerAllowlist`` says.
BUILTIN_ALLOWLIST = ("curl",)
#: Longest rendering of outside text (an executable path) in reasons and logs.
_MAX_TEXT = 160


def _printable(text: str) -> str:
    """``text`` safe for one log line or a 403 body: escaped when odd, cut when long."""
    if not text.isprintable():
        # A path may hold newlines or undecodable bytes; never let it forge a log line.
        text = text.encode("unicode_escape", "backslashreplace").decode("ascii")
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 3] + "..."


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """Who is on the other end of the socket.

    Attributes:
        pid: The connector's pid (``SO_PEERCRED``); 0 when not visible in this namespace.
        uid: Its uid at ``connect()``.
        gid: Its gid at ``connect()``.
        exe: ``/proc/<pid>/exe``, or ``None`` when unknown.
        name: Basename of ``exe``, the name the allowlist matches, or ``None``.
        comm: ``/proc/<pid>/comm``, for logs only (the process sets it), or ``None``.
        start_time: Start time in clock ticks since boot, read only where it is the PID-reuse
            defence (kernels without ``SO_PEERPIDFD``); ``None`` otherwise.
    """

    pid: int
    uid: int
    gid: int
    exe: str | None = None
    name: str | None = None
    comm: str | None = None
    start_time: int | None = None

    def describe(self) -> str:
        """A short log form, e.g. ``pid=12 uid=0 exe=/usr/bin/curl``."""
        text = f"pid={self.pid} uid={self.uid} exe={_printable(self.exe or '?')}"
        # A comm that differs from the executable's name is how a disguise shows up in logs.
        if self.comm is not None and self.comm != (self.name or "")[:15]:
            text += f" comm={_printable(self.comm)}"
        return text


class PeerVerdict(StrEnum):
    """Why a peer was allowed or refused (also the key of the refusal statistics)."""

    ALLOWLISTED = "allowlisted"
    FAIL_OPEN = "fail-open"
    UID = "uid"
    NOT_ALLOWLISTED = "not-allowlisted"
    UNRESOLVED = "unresolved"
    EXITED = "exited"


@dataclass(frozen=True)
class PeerDecision:
    """The gate's answer for one connection.

    A decision from :meth:`PeerGate.admit` that allowed an identified process holds that
    process's pidfd for :meth:`PeerGate.confirm`: close it (:meth:`close`, or use the
    decision as a context manager) when the connection ends. Garbage collection closes it
    too, as a safety net.

    Attributes:
        allowed: Serve the connection.
        reason: One short line for a 403 body or a log (pid, uid, exe; no secrets).
        peer: The peer, or ``None`` when the kernel gave no credentials.
        verdict: The rule that decided.
    """

    allowed: bool
    reason: str
    peer: PeerInfo | None
    verdict: PeerVerdict = field(kw_only=True)
    _anchor: ProcessAnchor | None = field(default=None, kw_only=True, repr=False, compare=False)

    def close(self) -> None:
        """Release the pidfd held for :meth:`PeerGate.confirm`; idempotent."""
        if self._anchor is not None:
            self._anchor.close()

    def __enter__(self) -> PeerDecision:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class PeerStatistics:
    """Counters since the gate was made.

    Attributes:
        admitted: :meth:`PeerGate.admit` calls that allowed the peer (fail-open included).
        fail_open: Allowances, by ``admit`` or ``confirm``, that rested on fail-open alone.
        refused: Refusals by ``admit`` or ``confirm``, by verdict.
    """

    admitted: int
    fail_open: int
    refused: Mapping[PeerVerdict, int]


class PeerGate:
    """Decides whether a Unix-socket peer may use the local identity server.

    Args:
        allowlist: ``localServerAllowlist``: names, paths or ``prefix*`` entries added to
            ``curl``. Empty entries are ignored.
        fail_open: ``localServerFailOpen``: allow peers that cannot be identified.
        owner_uid: The uid that owns the socket; default this process's effective uid.
            Root is accepted as well.
    """

    def __init__(
        self,
        allowlist: Sequence[str] = (),
        *,
        fail_open: bool = True,
        owner_uid: int | None = None,
    ) -> None:
        entries = tuple(dict.fromkeys(e for e in (*BUILTIN_ALLOWLIST, *allowlist) if e))
        self._allowlist = entries
        self._exact = frozenset(e for e in entries if not e.endswith("*"))
        self._prefixes = tuple(e[:-1] for e in entries if e.endswith("*"))
        self._owner_uid = os.geteuid() if owner_uid is None else owner_uid
        self._uids = frozenset({self._owner_uid, 0})
        self._fail_open = fail_open
        self._admitted = 0
        self._fail_open_passes = 0
        self._refused: Counter[PeerVerdict] = Counter()

    @property
    def allowlist(self) -> tuple[str, ...]:
        """The effective entries, ``curl`` first."""
        return self._allowlist

    @property
    def fail_open(self) -> bool:
        """Whether unidentified peers are allowed."""
        return self._fail_open

    @property
    def owner_uid(self) -> int:
        """The uid accepted besides root."""
        return self._owner_uid

    def allows(self, exe: str) -> bool:
        """Whether the executable at path ``exe`` is allowlisted (uid and liveness aside)."""
        name = exe.rpartition("/")[2]
        if name in self._exact or exe in self._exact:
            return True
        return any(name.startswith(p) or exe.startswith(p) for p in self._prefixes)

    def admit(self, sock_fd: int) -> PeerDecision:
        """Decide on a freshly accepted connection, before reading from it.

        Args:
            sock_fd: The accepted ``AF_UNIX`` socket; borrowed, never closed here.

        Returns:
            The decision; close it when the connection ends (see :class:`PeerDecision`).

        Raises:
            OSError: ``sock_fd`` is not an open socket.
        """
        # Borrow the descriptor; detach() below keeps the socket object from closing it.
        # SOCK_NONBLOCK only tells Python "timeout 0": without it, a process-wide
        # socket.setdefaulttimeout() would make the constructor switch the fd's mode.
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK, 0, sock_fd)
        try:
            decision = self._decide(sock)
        finally:
            sock.detach()
        if decision.allowed:
            self._admitted += 1
        self._count(decision)
        return decision

    def confirm(self, decision: PeerDecision) -> PeerDecision:
        """Re-check, once the request is read, that the admitted connector still exists.

        Returns ``decision`` itself when it was a refusal, a fail-open allowance, or the
        connector is still running. When the connector has exited (or, without a pidfd, its
        pid now names another process), whoever sent the request is unknown: the result is
        then a new decision, refused with verdict ``exited`` when fail-closed, allowed with
        verdict ``fail-open`` otherwise. The pidfd stays with ``decision``.

        Raises:
            ValueError: ``decision`` was closed.
        """
        anchor = decision._anchor
        if not decision.allowed or anchor is None or not anchor.exited():
            return decision
        who = "" if decision.peer is None else f": {decision.peer.describe()}"
        if self._fail_open:
            result = PeerDecision(
                True,
                f"connector exited; fail-open{who}",
                decision.peer,
                verdict=PeerVerdict.FAIL_OPEN,
            )
        else:
            result = PeerDecision(
                False, f"connector exited{who}", decision.peer, verdict=PeerVerdict.EXITED
            )
        self._count(result)
        return result

    def statistics(self) -> PeerStatistics:
        """Admissions and refusals so far."""
        return PeerStatistics(self._admitted, self._fail_open_passes, dict(self._refused))

    def describe(self) -> str:
        """One line for the startup log, e.g. ``allow curl, python*; uids 0,1000; fail-open``."""
        entries = ", ".join(_printable(e) for e in self._allowlist)
        uids = ",".join(str(u) for u in sorted(self._uids))
        mode = "fail-open" if self._fail_open else "fail-closed"
        return f"allow {entries}; uids {uids}; {mode}"

    def _count(self, decision: PeerDecision) -> None:
        if not decision.allowed:
            self._refused[decision.verdict] += 1
        elif decision.verdict is PeerVerdict.FAIL_OPEN:
            self._fail_open_passes += 1

    def _decide(self, sock: socket.socket) -> PeerDecision:
        creds = peer_credentials(sock)
        if creds is None:
            return self._unresolved(None, "no peer credentials")
        pid, uid, gid = creds
        if uid not in self._uids:
            peer = PeerInfo(pid, uid, gid)
            return PeerDecision(
                False, f"uid not allowed: {peer.describe()}", peer, verdict=PeerVerdict.UID
            )
        if pid <= 0:
            return self._unresolved(PeerInfo(pid, uid, gid), "pid not visible")
        seen = inspect_process(sock, pid)
        exe = seen.exe
        name = None if exe is None else exe.rpartition("/")[2]
        peer = PeerInfo(pid, uid, gid, exe, name, seen.comm, seen.start_time)
        if exe is None or seen.anchor is None:
            return self._unresolved(peer, seen.problem or "exited")
        if not self.allows(exe):
            seen.anchor.close()
            return PeerDecision(
                False,
                f"process not allowlisted: {peer.describe()}",
                peer,
                verdict=PeerVerdict.NOT_ALLOWLISTED,
            )
        return PeerDecision(
            True,
            f"allowlisted: {peer.describe()}",
            peer,
            verdict=PeerVerdict.ALLOWLISTED,
            _anchor=seen.anchor,
        )

    def _unresolved(self, peer: PeerInfo | None, why: str) -> PeerDecision:
        who = "" if peer is None else f": {peer.describe()}"
        if self._fail_open:
            return PeerDecision(
                True,
                f"peer unidentified ({why}); fail-open{who}",
                peer,
                verdict=PeerVerdict.FAIL_OPEN,
            )
        return PeerDecision(
            False, f"peer unidentified ({why}){who}", peer, verdict=PeerVerdict.UNRESOLVED
        )
