"""The peer gate when the connector exits, hands the socket to a child, or loses its pid.

Every ordering is forced with pipes and process waits: the connector is reaped (or known
to be a zombie) before the gate looks. PID reuse is produced for real by rewinding
``/proc/sys/kernel/ns_last_pid`` (root only), retrying if another process wins the pid.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio

from agent_identity.transports.peer import PeerGate, PeerVerdict
from agent_identity.transports.peer_proc import SO_PEERPIDFD, kernel_support

PYTHON = str(Path(sys.executable).resolve())
CAT = str(Path(shutil.which("cat") or "/usr/bin/cat").resolve())
NS_LAST_PID = Path("/proc/sys/kernel/ns_last_pid")

#: Connects and exits at once.
CONNECT_AND_EXIT = """
import socket, sys
socket.socket(socket.AF_UNIX).connect(sys.argv[1])
"""
#: Connects, then exits when the server sends a byte.
CONNECT_AND_WAIT = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.recv(1)
"""
#: A subreaper (so no orphan is left behind) whose child connects, forks a sender and exits
#: on a line on stdin; the sender sends "GET" when the server says "go". Prints the pids.
FORKING_CLIENT = """
import ctypes, os, socket, sys
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: adopt the sender
connector = os.fork()
if connector == 0:
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    sender = os.fork()
    if sender == 0:
        if s.recv(2) == b"go":
            s.sendall(b"GET")
            s.recv(1)
        os._exit(0)
    print("sender", sender, flush=True)
    sys.stdin.readline()
    os._exit(0)
print("connector", connector, flush=True)
os.waitpid(connector, 0)
print("reaped", connector, flush=True)
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
"""


@pytest.fixture(params=[True, False], ids=["pidfd", "start-time"])
def pidfd(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Run with SO_PEERPIDFD, then with the start-time fallback of older kernels."""
    use = bool(request.param)
    if use and not kernel_has_peer_pidfd():
        pytest.skip("kernel without SO_PEERPIDFD")
    monkeypatch.setattr(kernel_support, "peer_pidfd", use)
    return use


def kernel_has_peer_pidfd() -> bool:
    a, b = socket.socketpair()
    with a, b:
        try:
            os.close(a.getsockopt(socket.SOL_SOCKET, SO_PEERPIDFD))
        except OSError:
            return False
    return True


@dataclass
class Endpoint:
    path: Path
    listener: trio.socket.SocketType
    children: list[trio.Process] = field(default_factory=list)

    async def spawn(self, argv: list[str]) -> trio.Process:
        proc = await trio.lowlevel.open_process(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        self.children.append(proc)
        return proc

    async def client(self, script: str) -> trio.Process:
        return await self.spawn([PYTHON, "-I", "-S", "-c", script, str(self.path)])

    async def accept(self) -> trio.socket.SocketType:
        conn, _ = await self.listener.accept()
        return conn


@pytest.fixture
async def endpoint(tmp_path: Path) -> AsyncIterator[Endpoint]:
    listener = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with listener:
        await listener.bind(str(tmp_path / "identity.sock"))
        listener.listen()
        endpoint = Endpoint(tmp_path / "identity.sock", listener)
        try:
            yield endpoint
        finally:
            with trio.move_on_after(10) as cleanup:
                cleanup.shield = True  # reap the children even when the test was cancelled
                for proc in endpoint.children:
                    if proc.returncode is None:
                        proc.kill()
                    await proc.wait()
                    for stream in (proc.stdin, proc.stdout):
                        if stream is not None:
                            await stream.aclose()


class Lines:
    """Reads ``key value`` lines from a child's stdout."""

    def __init__(self, proc: trio.Process) -> None:
        assert proc.stdout is not None
        self._stream = proc.stdout
        self._buffer = b""
        self.values: dict[str, int] = {}

    async def want(self, *keys: str) -> None:
        while not all(key in self.values for key in keys):
            chunk = await self._stream.receive_some()
            assert chunk, f"child ended before printing {keys}"
            self._buffer += chunk
            *lines, self._buffer = self._buffer.split(b"\n")
            for line in lines:
                key, value = line.decode().split()
                self.values[key] = int(value)


async def until_zombie(pid: int) -> None:
    """Wait until ``pid`` has exited without reaping it (a pidfd polls readable then)."""
    pidfd = os.pidfd_open(pid)
    try:
        await trio.lowlevel.wait_readable(pidfd)
    finally:
        os.close(pidfd)


def proc_state(pid: int) -> str:
    raw = Path(f"/proc/{pid}/stat").read_bytes()
    return raw[raw.rfind(b")") + 2 :].split()[0].decode()


def exe_of(pid: int) -> str:
    return str(Path(f"/proc/{pid}/exe").readlink())


def start_time(pid: int) -> int | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return None
    return int(raw[raw.rfind(b")") + 2 :].split()[19])


def rewind_pids(pid: int) -> None:
    """Make ``pid`` the next pid the kernel hands out (if free by then)."""
    try:
        NS_LAST_PID.write_text(str(pid - 1))
    except OSError as exc:
        pytest.skip(f"cannot rewind pids: {exc}")


async def occupy(endpoint: Endpoint, pid: int, *, not_started_at: int | None) -> trio.Process:
    """Start ``cat`` under the freed ``pid`` (with another start time than the connector)."""
    for _ in range(200):
        rewind_pids(pid)
        proc = await endpoint.spawn([CAT])
        if proc.pid == pid and start_time(pid) != not_started_at:
            return proc
        proc.kill()
        await proc.wait()
    pytest.fail(f"pid {pid} could not be reused")


@pytest.mark.parametrize("fail_open", [True, False])
@pytest.mark.usefixtures("pidfd")
async def test_connector_gone_before_admit(endpoint: Endpoint, fail_open: bool) -> None:
    proc = await endpoint.client(CONNECT_AND_EXIT)
    await proc.wait()  # exited and reaped: nothing left in /proc
    with await endpoint.accept() as conn:
        decision = PeerGate(["python*"], fail_open=fail_open).admit(conn.fileno())
    assert decision.allowed is fail_open
    assert decision.verdict is (PeerVerdict.FAIL_OPEN if fail_open else PeerVerdict.UNRESOLVED)
    assert decision.peer is not None
    assert decision.peer.pid == proc.pid
    assert decision.peer.exe is None
    assert "peer unidentified (exited)" in decision.reason


@pytest.mark.usefixtures("pidfd")
async def test_zombie_connector_is_gone_at_confirm(endpoint: Endpoint) -> None:
    proc = await endpoint.client(CONNECT_AND_WAIT)
    gate = PeerGate(["python*"], fail_open=False)
    with await endpoint.accept() as conn:
        decision = gate.admit(conn.fileno())
        assert decision.allowed
        await conn.send(b"x")
        await until_zombie(proc.pid)
        assert proc_state(proc.pid) == "Z"  # exited, not reaped: kill(pid, 0) would succeed
        confirmed = gate.confirm(decision)
        decision.close()
    assert not confirmed.allowed
    assert confirmed.verdict is PeerVerdict.EXITED
    assert confirmed.reason.startswith(f"connector exited: pid={proc.pid} ")
    assert gate.statistics().refused == {PeerVerdict.EXITED: 1}


@pytest.mark.parametrize("fail_open", [True, False])
@pytest.mark.usefixtures("pidfd")
async def test_fork_after_connect_connector_gone_at_admit(
    endpoint: Endpoint, fail_open: bool
) -> None:
    launcher = await endpoint.client(FORKING_CLIENT)
    assert launcher.stdin is not None
    lines = Lines(launcher)
    await lines.want("connector", "sender")
    await launcher.stdin.send_all(b"exit\n")
    await lines.want("reaped")
    with await endpoint.accept() as conn:
        decision = PeerGate(["python*"], fail_open=fail_open).admit(conn.fileno())
        # SO_PEERCRED names the connector, never the child that now holds the socket.
        assert decision.peer is not None
        assert decision.peer.pid == lines.values["connector"] != lines.values["sender"]
        assert decision.peer.exe is None
        assert decision.allowed is fail_open
        if decision.allowed:
            await conn.send(b"go")
            assert await conn.recv(3) == b"GET"  # the request really comes from the child
    assert await launcher.wait() == 0


@pytest.mark.parametrize("fail_open", [True, False])
@pytest.mark.usefixtures("pidfd")
async def test_fork_after_connect_detected_at_confirm(endpoint: Endpoint, fail_open: bool) -> None:
    launcher = await endpoint.client(FORKING_CLIENT)
    assert launcher.stdin is not None
    lines = Lines(launcher)
    await lines.want("connector", "sender")
    gate = PeerGate(["python*"], fail_open=fail_open)
    with await endpoint.accept() as conn, gate.admit(conn.fileno()) as decision:
        # The connector is alive: identified and admitted.
        assert decision.verdict is PeerVerdict.ALLOWLISTED
        assert decision.peer is not None
        assert decision.peer.pid == lines.values["connector"]
        await launcher.stdin.send_all(b"exit\n")
        await lines.want("reaped")
        await conn.send(b"go")
        assert await conn.recv(3) == b"GET"  # sent by the child, after the connector left
        confirmed = gate.confirm(decision)
    assert confirmed.allowed is fail_open
    assert confirmed.verdict is (PeerVerdict.FAIL_OPEN if fail_open else PeerVerdict.EXITED)
    assert confirmed.peer == decision.peer
    stats = gate.statistics()
    assert stats.admitted == 1
    assert stats.fail_open == int(fail_open)
    assert stats.refused == ({} if fail_open else {PeerVerdict.EXITED: 1})
    assert await launcher.wait() == 0


async def test_reused_pid_cannot_pass_at_admit(endpoint: Endpoint) -> None:
    # Needs the pidfd: without one, a pid reused before admit is not seen (documented).
    if not kernel_has_peer_pidfd():
        pytest.skip("kernel without SO_PEERPIDFD")
    connector = await endpoint.client(CONNECT_AND_EXIT)
    await connector.wait()
    impostor = await occupy(endpoint, connector.pid, not_started_at=None)
    # The connector's pid now names an allowlisted program.
    assert exe_of(impostor.pid) == CAT
    with await endpoint.accept() as conn:
        decision = PeerGate(["cat"], fail_open=False).admit(conn.fileno())
    assert not decision.allowed
    assert decision.verdict is PeerVerdict.UNRESOLVED
    assert decision.peer is not None
    assert (decision.peer.pid, decision.peer.exe) == (connector.pid, None)


@pytest.mark.usefixtures("pidfd")
async def test_reused_pid_detected_at_confirm(endpoint: Endpoint) -> None:
    connector = await endpoint.client(CONNECT_AND_WAIT)
    gate = PeerGate(["python*", "cat"], fail_open=False)
    with await endpoint.accept() as conn, gate.admit(conn.fileno()) as decision:
        assert decision.allowed
        assert decision.peer is not None
        await conn.send(b"x")
        await connector.wait()
        await occupy(endpoint, connector.pid, not_started_at=decision.peer.start_time)
        confirmed = gate.confirm(decision)
    assert not confirmed.allowed
    assert confirmed.verdict is PeerVerdict.EXITED
