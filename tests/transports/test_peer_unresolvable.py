"""Peers the gate cannot identify although they are running: fail-open decides.

The gate runs in a child process put where identification fails for real: in a new pid
namespace (the client's pid is not visible there), or without ``CAP_SYS_PTRACE`` facing an
undumpable client (``/proc/<pid>/exe`` is then unreadable, as for a non-root server).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

PYTHON = str(Path(sys.executable).resolve())
#: The venv's interpreter (a symlink to PYTHON), for the server that imports agent_identity.
VENV_PYTHON = sys.executable
#: Runs a command without CAP_SYS_PTRACE, the capability that lets root read any /proc entry.
NO_PTRACE = ["setpriv", "--bounding-set", "-sys_ptrace"]

#: Accepts one connection, prints the gate's decision as JSON, closes it.
GATE_SERVER = """
import json, socket, sys
from agent_identity.transports import peer_proc
from agent_identity.transports.peer import PeerGate
path, fail_open, pidfd = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1"
peer_proc.kernel_support.peer_pidfd = pidfd
server = socket.socket(socket.AF_UNIX)
server.bind(path)
server.listen()
print("ready", flush=True)
conn, _ = server.accept()
with PeerGate(["python*"], fail_open=fail_open).admit(conn.fileno()) as decision:
    peer = decision.peer
    print(json.dumps({
        "allowed": decision.allowed,
        "verdict": decision.verdict,
        "reason": decision.reason,
        "pid": peer and peer.pid,
        "exe": peer and peer.exe,
        "comm": peer and peer.comm,
    }), flush=True)
conn.close()
"""
#: Connects (after making itself undumpable if asked) and waits for the server to close.
CLIENT = """
import ctypes, socket, sys
if sys.argv[2] == "undumpable" and ctypes.CDLL(None).prctl(4, 0, 0, 0, 0) != 0:
    sys.exit("prctl(PR_SET_DUMPABLE) failed")
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.recv(1)
"""


@dataclass
class Outcome:
    decision: dict[str, Any]
    client_pid: int


async def read_line(stream: trio.abc.ReceiveStream, buffer: bytearray) -> bytes:
    while b"\n" not in buffer:
        chunk = await stream.receive_some()
        assert chunk, "gate server ended early"
        buffer += chunk
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return line


@pytest.fixture
async def children() -> AsyncIterator[list[trio.Process]]:
    procs: list[trio.Process] = []
    try:
        yield procs
    finally:
        with trio.move_on_after(10) as cleanup:
            cleanup.shield = True  # reap the children even when the test was cancelled
            for proc in procs:
                if proc.returncode is None:
                    proc.kill()
                await proc.wait()
                if proc.stdout is not None:
                    await proc.stdout.aclose()


async def run_gate(
    children: list[trio.Process],
    sock: Path,
    wrapper: list[str],
    *,
    fail_open: bool,
    pidfd: bool = True,
    client: str = "plain",
) -> Outcome:
    """Start the gate server under ``wrapper``, connect a client, return the decision."""
    if shutil.which(wrapper[0]) is None:
        pytest.skip(f"{wrapper[0]} not installed")
    argv = [
        *wrapper,
        VENV_PYTHON,
        "-c",
        GATE_SERVER,
        str(sock),
        str(int(fail_open)),
        str(int(pidfd)),
    ]
    server = await trio.lowlevel.open_process(argv, stdout=subprocess.PIPE)
    children.append(server)
    assert server.stdout is not None
    buffer = bytearray()
    assert await read_line(server.stdout, buffer) == b"ready"
    # The client drops CAP_SYS_PTRACE as well: the kernel refuses to let a process read one
    # with more capabilities, and only dumpability is meant to differ between the tests.
    connector = await trio.lowlevel.open_process(
        [*NO_PTRACE, PYTHON, "-I", "-S", "-c", CLIENT, str(sock), client]
    )
    children.append(connector)
    decision = json.loads(await read_line(server.stdout, buffer))
    assert await server.wait() == 0
    assert await connector.wait() == 0
    return Outcome(decision, connector.pid)


@pytest.mark.parametrize("fail_open", [True, False])
async def test_pid_not_visible_is_unresolved(
    children: list[trio.Process], tmp_path: Path, fail_open: bool
) -> None:
    # The gate in a child pid namespace: the client lives outside it, so its pid reads 0.
    outcome = await run_gate(
        children, tmp_path / "s.sock", ["unshare", "--pid", "--fork"], fail_open=fail_open
    )
    assert outcome.decision["pid"] == 0
    assert outcome.decision["exe"] is None
    assert outcome.decision["allowed"] is fail_open
    assert outcome.decision["verdict"] == ("fail-open" if fail_open else "unresolved")
    assert outcome.decision["reason"].startswith("peer unidentified (pid not visible)")


@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "start-time"])
@pytest.mark.parametrize("fail_open", [True, False])
async def test_unreadable_exe_is_unresolved(
    children: list[trio.Process], tmp_path: Path, fail_open: bool, pidfd: bool
) -> None:
    outcome = await run_gate(
        children,
        tmp_path / "s.sock",
        NO_PTRACE,
        fail_open=fail_open,
        pidfd=pidfd,
        client="undumpable",
    )
    decision = outcome.decision
    assert decision["pid"] == outcome.client_pid
    assert decision["exe"] is None  # python*, allowlisted, would have passed if readable
    assert decision["comm"] == "python3.11"  # comm stays readable (and proves nothing)
    assert decision["allowed"] is fail_open
    assert decision["verdict"] == ("fail-open" if fail_open else "unresolved")
    assert decision["reason"].startswith("peer unidentified (/proc unreadable (EACCES))")


async def test_dumpable_client_is_read_without_ptrace(
    children: list[trio.Process], tmp_path: Path
) -> None:
    # Control for the test above: the same server reads an ordinary same-uid client.
    outcome = await run_gate(children, tmp_path / "s.sock", NO_PTRACE, fail_open=False)
    assert outcome.decision["allowed"]
    assert outcome.decision["verdict"] == "allowlisted"
    assert outcome.decision["exe"] == PYTHON
