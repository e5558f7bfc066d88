"""The peer gate against real client processes on a listening Unix socket.

Each client connects and then blocks until the server closes the connection (curl waits
for a response, the Python client for a byte), so it is running when ``admit`` looks at it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio

from agent_identity.transports.peer import PeerDecision, PeerGate, PeerVerdict

CURL = str(Path(shutil.which("curl") or "/usr/bin/curl").resolve())
PYTHON = str(Path(sys.executable).resolve())
NOBODY = 65534

#: Connects, optionally renames its comm with prctl(PR_SET_NAME), waits for the server.
CLIENT = """
import ctypes, socket, sys
if len(sys.argv) > 2 and ctypes.CDLL(None).prctl(15, sys.argv[2].encode(), 0, 0, 0) != 0:
    sys.exit("prctl failed")
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.recv(1)
"""


@dataclass
class Endpoint:
    """A listening socket and the client processes started against it."""

    path: Path
    listener: trio.socket.SocketType
    children: list[trio.Process] = field(default_factory=list)

    async def spawn(self, argv: Sequence[str], *, uid: int | None = None) -> trio.Process:
        """Start a client, as ``uid`` (and its group, with no supplementary ones) if given."""
        proc = await trio.lowlevel.open_process(
            list(argv),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            user=uid,
            group=uid,
            extra_groups=None if uid is None else [],
        )
        self.children.append(proc)
        return proc

    async def admit(
        self, gate: PeerGate, argv: Sequence[str], *, uid: int | None = None
    ) -> PeerDecision:
        """Start a client, accept it, decide while it waits, then let it finish."""
        proc = await self.spawn(argv, uid=uid)
        conn, _ = await self.listener.accept()
        with conn:
            decision = gate.admit(conn.fileno())
            decision.close()
        await proc.wait()
        assert decision.peer is not None
        assert decision.peer.pid == proc.pid
        return decision

    def curl(self, exe: str = CURL) -> list[str]:
        return [exe, "-q", "-s", "--unix-socket", str(self.path), "http://localhost/token"]

    def python(self, exe: str = PYTHON, *extra: str) -> list[str]:
        return [exe, "-I", "-S", "-c", CLIENT, str(self.path), *extra]


@asynccontextmanager
async def open_endpoint(path: Path) -> AsyncIterator[Endpoint]:
    listener = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with listener:
        await listener.bind(str(path))
        listener.listen()
        endpoint = Endpoint(path, listener)
        try:
            yield endpoint
        finally:
            with trio.move_on_after(10) as cleanup:
                cleanup.shield = True  # reap the children even when the test was cancelled
                for proc in endpoint.children:
                    if proc.returncode is None:
                        proc.kill()
                    await proc.wait()


@pytest.fixture
async def endpoint(tmp_path: Path) -> AsyncIterator[Endpoint]:
    async with open_endpoint(tmp_path / "identity.sock") as opened:
        yield opened


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory another uid may traverse (pytest's tmp_path is 0700 all the way up)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to start a client under another uid")
    path = Path(tempfile.mkdtemp(prefix="peer-gate-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path)


@pytest.fixture
async def shared_endpoint(shared_dir: Path) -> AsyncIterator[Endpoint]:
    async with open_endpoint(shared_dir / "identity.sock") as opened:
        # Test only: the real socket is 0600; here uid 65534 must be able to connect.
        opened.path.chmod(0o777)
        yield opened


def copy_binary(source: str, target: Path) -> str:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)
    return str(target)


async def test_curl_is_always_allowed(endpoint: Endpoint) -> None:
    decision = await endpoint.admit(PeerGate(fail_open=False), endpoint.curl())
    assert decision.allowed
    assert decision.verdict is PeerVerdict.ALLOWLISTED
    assert decision.peer is not None
    assert (decision.peer.exe, decision.peer.name, decision.peer.comm) == (CURL, "curl", "curl")
    assert decision.peer.uid == os.geteuid()


@pytest.mark.parametrize(
    ("allowlist", "allowed"),
    [((), False), (("python*",), True), (("python",), False), ((PYTHON,), True)],
)
async def test_python_needs_an_entry(
    endpoint: Endpoint, allowlist: tuple[str, ...], allowed: bool
) -> None:
    decision = await endpoint.admit(PeerGate(allowlist), endpoint.python())
    assert decision.allowed is allowed
    assert decision.peer is not None
    assert decision.peer.exe == PYTHON
    assert decision.peer.name == Path(PYTHON).name


async def test_copied_curl_under_another_name_is_refused(
    endpoint: Endpoint, tmp_path: Path
) -> None:
    fetch = copy_binary(CURL, tmp_path / "bin" / "fetch")
    decision = await endpoint.admit(PeerGate(), endpoint.curl(fetch))
    assert not decision.allowed
    assert decision.verdict is PeerVerdict.NOT_ALLOWLISTED
    assert decision.reason.startswith("process not allowlisted: pid=")
    assert f"exe={fetch}" in decision.reason
    # Listing the copy by path (or by name) is what lets it in.
    assert (await endpoint.admit(PeerGate([fetch]), endpoint.curl(fetch))).allowed
    assert (await endpoint.admit(PeerGate(["fetch"]), endpoint.curl(fetch))).allowed


async def test_names_are_only_names(endpoint: Endpoint, tmp_path: Path) -> None:
    # Documented: the built-in "curl" entry is a name, so any executable called curl passes.
    elsewhere = copy_binary(CURL, tmp_path / "elsewhere" / "curl")
    decision = await endpoint.admit(PeerGate(fail_open=False), endpoint.curl(elsewhere))
    assert decision.allowed
    assert decision.peer is not None
    assert decision.peer.exe == elsewhere


async def test_copied_python_does_not_match_python_entries(
    endpoint: Endpoint, tmp_path: Path
) -> None:
    clone = copy_binary(PYTHON, tmp_path / "bin" / "pyclone")
    decision = await endpoint.admit(PeerGate(["python*"]), endpoint.python(clone))
    assert not decision.allowed
    assert decision.peer is not None
    assert decision.peer.name == "pyclone"
    # Same basename in another directory: a full-path entry matches that path only.
    twin = copy_binary(PYTHON, tmp_path / "other" / Path(PYTHON).name)
    assert not (await endpoint.admit(PeerGate([PYTHON]), endpoint.python(twin))).allowed


@pytest.mark.parametrize("fail_open", [True, False])
async def test_comm_renamed_to_curl_is_refused(endpoint: Endpoint, fail_open: bool) -> None:
    decision = await endpoint.admit(PeerGate(fail_open=fail_open), endpoint.python(PYTHON, "curl"))
    assert decision.peer is not None
    assert decision.peer.comm == "curl"  # the disguise took effect...
    assert decision.peer.name == Path(PYTHON).name
    assert not decision.allowed  # ...and did not help
    assert decision.verdict is PeerVerdict.NOT_ALLOWLISTED
    assert decision.reason.endswith(f"exe={PYTHON} comm=curl")


@pytest.mark.parametrize("allowlist", [(), ("*",)])
async def test_other_uid_is_refused_even_if_allowlisted(
    shared_endpoint: Endpoint, allowlist: tuple[str, ...]
) -> None:
    gate = PeerGate(allowlist, fail_open=True)
    decision = await shared_endpoint.admit(gate, shared_endpoint.curl(), uid=NOBODY)
    assert not decision.allowed
    assert decision.verdict is PeerVerdict.UID
    assert decision.peer is not None
    assert (decision.peer.uid, decision.peer.gid) == (NOBODY, NOBODY)
    assert decision.peer.exe is None  # refused on the kernel's word, /proc never read
    assert decision.reason == f"uid not allowed: pid={decision.peer.pid} uid={NOBODY} exe=?"
    assert gate.statistics().refused == {PeerVerdict.UID: 1}


async def test_other_uid_is_refused_even_when_gone(shared_endpoint: Endpoint) -> None:
    # The uid comes from the kernel, so fail-open never applies to it. (curl, because uid
    # 65534 cannot reach the Python under /root; it is killed once its request arrived.)
    proc = await shared_endpoint.spawn(shared_endpoint.curl(), uid=NOBODY)
    conn, _ = await shared_endpoint.listener.accept()
    with conn:
        assert (await conn.recv(4096)).startswith(b"GET /token ")
        proc.kill()
        await proc.wait()
        decision = PeerGate(["*"], fail_open=True).admit(conn.fileno())
    assert not decision.allowed
    assert decision.verdict is PeerVerdict.UID
    assert decision.peer is not None
    assert decision.peer.pid == proc.pid


async def test_owner_uid_is_accepted(shared_endpoint: Endpoint) -> None:
    decision = await shared_endpoint.admit(
        PeerGate(owner_uid=NOBODY, fail_open=False),
        shared_endpoint.curl(),
        uid=NOBODY,
    )
    assert decision.allowed
    assert decision.peer is not None
    assert (decision.peer.uid, decision.peer.exe) == (NOBODY, CURL)
