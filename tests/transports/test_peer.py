"""The peer gate against this very process: a real socketpair, real /proc, no children.

``socket.socketpair()`` records the creating process as each end's peer, so ``admit`` on one
end identifies the test process itself (a ``python3.11`` owned by the test's uid).
"""

from __future__ import annotations

import errno
import gc
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_identity.transports import peer_proc
from agent_identity.transports.peer import PeerGate, PeerInfo, PeerVerdict
from agent_identity.transports.peer_proc import inspect_process, kernel_support

SELF_EXE = str(Path("/proc/self/exe").readlink())
SELF_NAME = SELF_EXE.rpartition("/")[2]
#: The kernel's name for this process: "pytest" under the pytest script, not the exe's name.
SELF_COMM = Path("/proc/self/comm").read_text().rstrip("\n")


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    with a, b:
        yield a, b


@pytest.fixture
def no_pidfd(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the start-time fallback, as on a kernel older than 6.5."""
    monkeypatch.setattr(kernel_support, "peer_pidfd", False)


def open_fds() -> set[int]:
    """This process's open descriptors (less the one listdir used and closed)."""
    fds = set()
    for entry in Path("/proc/self/fd").iterdir():
        try:
            os.fstat(int(entry.name))
        except OSError:
            continue
        fds.add(int(entry.name))
    return fds


def self_start_time() -> int:
    raw = Path("/proc/self/stat").read_bytes()
    return int(raw[raw.rfind(b")") + 2 :].split()[19])


def test_socketpair_peer_is_this_process(pair: tuple[socket.socket, socket.socket]) -> None:
    with PeerGate(["python*"]).admit(pair[0].fileno()) as decision:
        assert decision.allowed
        assert decision.verdict is PeerVerdict.ALLOWLISTED
        assert decision.peer == PeerInfo(
            pid=os.getpid(),
            uid=os.geteuid(),
            gid=os.getegid(),
            exe=SELF_EXE,
            name=SELF_NAME,
            comm=Path("/proc/self/comm").read_text().rstrip("\n"),
            start_time=None,  # with a pidfd the stat file is not read
        )
        expected = f"allowlisted: pid={os.getpid()} uid={os.geteuid()} exe={SELF_EXE}"
        if SELF_NAME[:15] != SELF_COMM:
            expected += f" comm={SELF_COMM}"
        assert decision.reason == expected


@pytest.mark.parametrize("fail_open", [True, False])
def test_python_is_not_allowed_by_default(
    pair: tuple[socket.socket, socket.socket], fail_open: bool
) -> None:
    # A resolved peer is judged by the allowlist alone: fail-open does not rescue it.
    decision = PeerGate(fail_open=fail_open).admit(pair[0].fileno())
    assert not decision.allowed
    assert decision.verdict is PeerVerdict.NOT_ALLOWLISTED
    assert decision.reason.startswith(f"process not allowlisted: pid={os.getpid()} ")
    assert f"exe={SELF_EXE}" in decision.reason


@pytest.mark.parametrize(
    ("entries", "exe", "allowed"),
    [
        ((), "/usr/bin/curl", True),
        ((), "/home/me/bin/curl", True),
        ((), "/usr/bin/curl-config", False),
        ((), "/usr/bin/curl (deleted)", False),
        (("python*",), "/usr/bin/python3.11", True),
        (("python*",), "/usr/bin/ipython3", False),
        (("python",), "/usr/bin/python3.11", False),
        (("pyth",), "/usr/bin/python3.11", False),
        (("/usr/bin/python3.11",), "/usr/bin/python3.11", True),
        (("/usr/bin/python3.11",), "/tmp/bin/python3.11", False),
        (("/opt/tools/*",), "/opt/tools/bin/fetch", True),
        (("/opt/tools/*",), "/opt/toolsx/fetch", False),
        (("py*on",), "/usr/bin/python", False),
        (("py*on",), "/usr/bin/py*on", True),
        (("",), "/usr/bin/anything", False),
        (("node*",), "/usr/bin/node (deleted)", True),
    ],
)
def test_allowlist_matching(entries: tuple[str, ...], exe: str, allowed: bool) -> None:
    assert PeerGate(entries).allows(exe) is allowed


def test_allowlist_and_describe() -> None:
    gate = PeerGate(["python*", "curl", "", "python*"], fail_open=False, owner_uid=1000)
    assert gate.allowlist == ("curl", "python*")
    assert gate.owner_uid == 1000
    assert not gate.fail_open
    assert gate.describe() == "allow curl, python*; uids 0,1000; fail-closed"
    assert (
        PeerGate().describe()
        == f"allow curl; uids {','.join(sorted({'0', str(os.geteuid())}))}; fail-open"
    )


@pytest.mark.parametrize("fail_open", [True, False])
@pytest.mark.parametrize("family", [socket.AF_UNIX, socket.AF_INET])
def test_socket_without_credentials_is_unresolved(fail_open: bool, family: int) -> None:
    # Not connected (or not Unix): the kernel reports pid 0 and uid -1, i.e. nothing.
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        decision = PeerGate(fail_open=fail_open).admit(sock.fileno())
    assert decision.allowed is fail_open
    assert decision.peer is None
    if fail_open:
        assert decision.verdict is PeerVerdict.FAIL_OPEN
        assert decision.reason == "peer unidentified (no peer credentials); fail-open"
    else:
        assert decision.verdict is PeerVerdict.UNRESOLVED
        assert decision.reason == "peer unidentified (no peer credentials)"


def test_not_a_socket_is_a_caller_error() -> None:
    read_end, write_end = os.pipe()
    try:
        with pytest.raises(OSError, match="non-socket") as info:
            PeerGate().admit(read_end)
        assert info.value.errno == errno.ENOTSOCK
        # The borrowed descriptor is left open for its owner.
        os.fstat(read_end)
    finally:
        os.close(read_end)
        os.close(write_end)


def test_admit_leaves_the_descriptor_as_it_was(pair: tuple[socket.socket, socket.socket]) -> None:
    # A process-wide default timeout must not make the borrowed fd non-blocking.
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(5)
    try:
        fd = pair[0].fileno()
        assert os.get_blocking(fd)
        PeerGate().admit(fd)
        assert os.get_blocking(fd)
        os.set_blocking(fd, False)
        PeerGate().admit(fd)
        assert not os.get_blocking(fd)
    finally:
        socket.setdefaulttimeout(previous)
    assert pair[0].send(b"x") == 1  # still open and usable


def test_root_is_accepted_besides_the_owner(pair: tuple[socket.socket, socket.socket]) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    decision = PeerGate(["python*"], owner_uid=12345).admit(pair[0].fileno())
    assert decision.allowed
    decision.close()


def test_statistics_count_by_verdict(pair: tuple[socket.socket, socket.socket]) -> None:
    gate = PeerGate(fail_open=True)
    for _ in range(2):
        assert not gate.admit(pair[0].fileno()).allowed
    with socket.socket(socket.AF_UNIX) as lone:
        assert gate.admit(lone.fileno()).allowed
    stats = gate.statistics()
    assert stats.admitted == 1
    assert stats.fail_open == 1
    assert stats.refused == {PeerVerdict.NOT_ALLOWLISTED: 2}


def test_allowed_decision_holds_a_pidfd_until_closed(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    gate = PeerGate(["python*"])
    before = open_fds()
    decision = gate.admit(pair[0].fileno())
    (pidfd,) = open_fds() - before
    assert "anon_inode:[pidfd]" in str(Path(f"/proc/self/fd/{pidfd}").readlink())
    decision.close()
    decision.close()
    assert open_fds() == before
    with pytest.raises(ValueError, match="closed"):
        gate.confirm(decision)

    with gate.admit(pair[0].fileno()):
        assert len(open_fds() - before) == 1
    assert open_fds() == before

    # A forgotten decision does not leak its descriptor.
    gate.admit(pair[0].fileno())
    gc.collect()
    assert open_fds() == before

    # Refusals keep nothing open.
    PeerGate().admit(pair[0].fileno())
    assert open_fds() == before


def test_confirm_keeps_a_live_peer(pair: tuple[socket.socket, socket.socket]) -> None:
    gate = PeerGate(["python*"], fail_open=False)
    with gate.admit(pair[0].fileno()) as decision:
        assert gate.confirm(decision) is decision
    refused = PeerGate(fail_open=False).admit(pair[0].fileno())
    assert gate.confirm(refused) is refused


@pytest.mark.usefixtures("no_pidfd")
def test_start_time_fallback(pair: tuple[socket.socket, socket.socket]) -> None:
    gate = PeerGate(["python*"], fail_open=False)
    before = open_fds()
    with gate.admit(pair[0].fileno()) as decision:
        assert decision.allowed
        assert decision.peer is not None
        assert decision.peer.exe == SELF_EXE
        assert decision.peer.start_time == self_start_time()
        assert open_fds() == before  # nothing to hold without a pidfd
        assert gate.confirm(decision) is decision


class ScriptedSocket(socket.socket):
    """A real socket whose SO_PEERPIDFD answer is scripted (kernels this host is not)."""

    answer = errno.ENOPROTOOPT

    def getsockopt(self, level: int, option: int, buflen: int | None = None) -> object:  # type: ignore[override]
        if option == peer_proc.SO_PEERPIDFD:
            raise OSError(self.answer, os.strerror(self.answer))
        return (
            super().getsockopt(level, option)
            if buflen is None
            else super().getsockopt(level, option, buflen)
        )


def test_kernel_without_peer_pidfd_switches_to_start_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kernel_support, "peer_pidfd", True)
    a, b = socket.socketpair()
    with b, ScriptedSocket(fileno=a.detach()) as sock:
        seen = inspect_process(sock, os.getpid())
        assert seen.exe == SELF_EXE
        assert seen.start_time == self_start_time()
        assert not kernel_support.peer_pidfd  # probed once, remembered for the process


def test_older_kernel_refusing_a_pidfd_means_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernel_support, "peer_pidfd", True)
    monkeypatch.setattr(ScriptedSocket, "answer", errno.ESRCH)
    a, b = socket.socketpair()
    with b, ScriptedSocket(fileno=a.detach()) as sock:
        seen = inspect_process(sock, os.getpid())
    assert (seen.exe, seen.anchor, seen.problem) == (None, None, "exited")
    assert kernel_support.peer_pidfd


def test_describe_escapes_and_cuts_outside_text() -> None:
    evil = PeerInfo(7, 0, 0, exe="/tmp/x\nFAKE LOG LINE", name="x\nFAKE LOG LINE", comm="curl")
    text = evil.describe()
    assert "\n" not in text
    assert text == "pid=7 uid=0 exe=/tmp/x\\nFAKE LOG LINE comm=curl"
    long = PeerInfo(7, 0, 0, exe="/" + "a" * 500, name="a" * 500, comm="a" * 15)
    assert len(long.describe()) < 200
    assert long.describe().endswith("...")  # comm equals the name's first 15 chars: not shown
    assert PeerInfo(0, 0, 0).describe() == "pid=0 uid=0 exe=?"
