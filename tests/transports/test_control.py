"""The control socket over real Unix sockets: server, limits, malformed frames, client errors."""

from __future__ import annotations

import logging
import os
import socket
import stat
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import pytest
import trio

from agent_identity.transports.control import (
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    ControlError,
    ControlHandler,
    DaemonNotRunning,
    control_call,
    control_socket_path,
    peer_is_owner,
    peer_uid,
    serve_control,
)
from agent_identity.transports.control_wire import (
    MAX_REPLY_SIZE,
    MAX_REQUEST_SIZE,
    ControlReply,
    ControlRequest,
    ErrorReply,
    FlushTipsReply,
    FrameReader,
    RevokeReply,
    RevokeRequest,
    ShutdownReply,
    ShutdownRequest,
    StatusRequest,
    decode_reply,
    encode_frame,
)
from agent_identity.transports.uds_socket import open_unix_listener


class Recorder:
    """A handler that answers every request and remembers what it got."""

    def __init__(self) -> None:
        self.seen: list[ControlRequest] = []

    async def __call__(self, request: ControlRequest) -> ControlReply:
        await trio.lowlevel.checkpoint()
        self.seen.append(request)
        if isinstance(request, RevokeRequest):
            return RevokeReply(
                session_key=request.session_key,
                session_removed=True,
                tip_dropped=False,
                credentials_dropped=0,
                bindings_removed=0,
                approvals_cancelled=0,
            )
        return FlushTipsReply(dropped=len(self.seen))


@pytest.fixture
def sock_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # A short folder: AF_UNIX paths are limited to 107 bytes, test names are long.
    return control_socket_path(tmp_path_factory.mktemp("ctl") / "data")


@asynccontextmanager
async def serving(
    path: Path,
    handler: ControlHandler,
    *,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
) -> AsyncIterator[None]:
    with open_unix_listener(path) as sock:
        async with trio.open_nursery() as nursery:
            serve = partial(
                serve_control,
                sock,
                handler,
                max_connections=max_connections,
                idle_timeout=idle_timeout,
            )
            await nursery.start(serve)
            yield
            nursery.cancel_scope.cancel()


class RawClient:
    """A connection that sends whatever bytes a test wants and reads reply frames."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.reader = FrameReader(MAX_REPLY_SIZE)

    async def reply(self) -> ControlReply:
        while (body := self.reader.next_frame()) is None:
            data = await self.stream.receive_some(65536)
            assert data, "the server closed the connection instead of answering"
            self.reader.feed(data)
        return decode_reply(body)

    async def closed(self) -> bool:
        """Whether the server closed the connection (EOF, nothing else before it)."""
        try:
            return await self.stream.receive_some(65536) == b""
        except trio.BrokenResourceError:
            return True


@asynccontextmanager
async def raw(path: Path) -> AsyncIterator[RawClient]:
    async with await trio.open_unix_socket(os.fspath(path)) as stream:
        yield RawClient(stream)


async def test_requests_are_served_and_a_connection_carries_many(sock_path: Path) -> None:
    handler = Recorder()
    async with serving(sock_path, handler):
        assert stat.S_IMODE(sock_path.stat().st_mode) == 0o600  # noqa: ASYNC240
        reply = await control_call(sock_path, RevokeRequest(session_key="agent:main:main"))
        assert isinstance(reply, RevokeReply)
        assert reply.session_key == "agent:main:main"
        async with raw(sock_path) as client:
            # Two requests pipelined in one write are answered in order.
            await client.stream.send_all(
                encode_frame(StatusRequest()) + encode_frame(ShutdownRequest())
            )
            assert await client.reply() == FlushTipsReply(dropped=2)
            assert await client.reply() == FlushTipsReply(dropped=3)
            await client.stream.send_all(encode_frame(StatusRequest()))
            assert await client.reply() == FlushTipsReply(dropped=4)
    assert handler.seen[1:] == [StatusRequest(), ShutdownRequest(), StatusRequest()]


async def test_a_malformed_frame_gets_an_error_and_the_connection_keeps_working(
    sock_path: Path,
) -> None:
    handler = Recorder()
    async with serving(sock_path, handler), raw(sock_path) as client:
        for body in (b"{not json", b"", b'{"type": "format-disk"}', b'{"type": "revoke"}'):
            await client.stream.send_all(struct.pack(">I", len(body)) + body)
            reply = await client.reply()
            assert isinstance(reply, ErrorReply)
            assert reply.code == "bad_request"
            assert reply.message.startswith("malformed request")
        await client.stream.send_all(encode_frame(StatusRequest()))
        assert await client.reply() == FlushTipsReply(dropped=1)
    assert handler.seen == [StatusRequest()]


async def test_an_oversized_frame_is_refused_and_the_connection_closed(sock_path: Path) -> None:
    handler = Recorder()
    async with serving(sock_path, handler):
        async with raw(sock_path) as client:
            # Only the length prefix is sent: the server must not wait for 64 KiB + 1.
            await client.stream.send_all(struct.pack(">I", MAX_REQUEST_SIZE + 1))
            reply = await client.reply()
            assert isinstance(reply, ErrorReply)
            assert reply.code == "frame_too_large"
            assert str(MAX_REQUEST_SIZE) in reply.message
            assert await client.closed()
        # The server itself is fine.
        assert await control_call(sock_path, StatusRequest()) == FlushTipsReply(dropped=1)
    assert handler.seen == [StatusRequest()]


async def test_a_peer_vanishing_mid_frame_is_dropped_quietly(sock_path: Path) -> None:
    handler = Recorder()
    async with serving(sock_path, handler):
        async with raw(sock_path) as client:
            await client.stream.send_all(encode_frame(StatusRequest())[:7])
        assert await control_call(sock_path, StatusRequest()) == FlushTipsReply(dropped=1)
    assert handler.seen == [StatusRequest()]


async def test_a_failing_handler_answers_internal_without_its_text(
    sock_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "tip-eyJhbGciOiJSUzI1NiJ9.secret"

    async def broken(request: ControlRequest) -> ControlReply:
        await trio.lowlevel.checkpoint()
        if request == RevokeRequest(session_key="k"):
            raise ValueError(f"bug while holding {secret}")
        return FlushTipsReply(dropped=0)

    caplog.set_level(logging.DEBUG)
    async with serving(sock_path, broken), raw(sock_path) as client:
        await client.stream.send_all(encode_frame(RevokeRequest(session_key="k")))
        reply = await client.reply()
        assert isinstance(reply, ErrorReply)
        assert reply.code == "internal"
        assert secret not in reply.message
        await client.stream.send_all(encode_frame(StatusRequest()))
        assert await client.reply() == FlushTipsReply(dropped=0)
    assert "ValueError" in caplog.text
    assert secret not in caplog.text


async def test_connections_over_the_limit_are_told_to_retry(sock_path: Path) -> None:
    async with serving(sock_path, Recorder(), max_connections=1), raw(sock_path) as first:
        await first.stream.send_all(encode_frame(StatusRequest()))
        assert await first.reply() == FlushTipsReply(dropped=1)  # the first one is active
        reply = await control_call(sock_path, StatusRequest())
        assert isinstance(reply, ErrorReply)
        assert reply.code == "busy"
        await first.stream.send_all(encode_frame(StatusRequest()))
        assert await first.reply() == FlushTipsReply(dropped=2)


async def test_an_idle_connection_is_closed(sock_path: Path) -> None:
    async with serving(sock_path, Recorder(), idle_timeout=0.05), raw(sock_path) as client:
        with trio.fail_after(10):
            assert await client.closed()


async def test_the_reply_to_shutdown_arrives_while_the_server_is_cancelled(
    sock_path: Path,
) -> None:
    with open_unix_listener(sock_path) as sock:
        async with trio.open_nursery() as nursery:

            async def stop(request: ControlRequest) -> ControlReply:
                await trio.lowlevel.checkpoint()
                nursery.cancel_scope.cancel()  # what the daemon's shutdown hook leads to
                return ShutdownReply(message="stopping gracefully")

            await nursery.start(serve_control, sock, stop)
            with trio.CancelScope(shield=True):
                reply = await control_call(sock_path, ShutdownRequest(), timeout=10)
    assert reply == ShutdownReply(message="stopping gracefully")


async def test_a_peer_leaving_before_its_reply_does_not_hurt_the_server(sock_path: Path) -> None:
    left = trio.Event()
    answered = trio.Event()

    async def slow(request: ControlRequest) -> ControlReply:
        if request == RevokeRequest(session_key="slow"):
            await left.wait()
        answered.set()
        return FlushTipsReply(dropped=0)

    async with serving(sock_path, slow):
        async with raw(sock_path) as client:
            await client.stream.send_all(encode_frame(RevokeRequest(session_key="slow")))
        left.set()  # the reply now goes to a closed socket
        await answered.wait()
        assert await control_call(sock_path, StatusRequest()) == FlushTipsReply(dropped=0)


# ---------------------------------------------------------------------------- peer check


def test_only_the_owner_or_root_may_connect() -> None:
    assert peer_is_owner(1000, 1000)
    assert peer_is_owner(0, 1000)
    assert not peer_is_owner(1001, 1000)
    assert not peer_is_owner(None, 1000)
    assert not peer_is_owner(1000, 0)


async def test_peer_uid_reads_so_peercred() -> None:
    left, right = socket.socketpair(socket.AF_UNIX)
    with left, right:
        assert peer_uid(trio.socket.from_stdlib_socket(left)) == os.getuid()
    inet = trio.socket.socket(socket.AF_INET)
    with inet:
        assert peer_uid(inet) is None  # not a Unix socket: unknown, refused
    assert peer_uid(inet) is None  # closed: getsockopt fails


async def test_without_so_peercred_everyone_is_refused(
    sock_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(socket, "SO_PEERCRED", raising=False)
    handler = Recorder()
    async with serving(sock_path, handler):
        reply = await control_call(sock_path, StatusRequest())
    assert isinstance(reply, ErrorReply)
    assert reply.code == "forbidden"
    assert handler.seen == []


# A stdlib-only client, run as another user by the system interpreter. It sends nothing:
# the server answers a stranger at once and hangs up (a write could meet a closed socket).
_OTHER_USER_CLIENT = """
import socket, struct, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1].replace("@", "\\0", 1))
def read(n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            sys.exit("EOF before the reply")
        data += chunk
    return data
(length,) = struct.unpack(">I", read(4))
sys.stdout.write(read(length).decode())
"""


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root")
@pytest.mark.skipif(not hasattr(socket, "SO_PEERCRED"), reason="needs SO_PEERCRED")
async def test_another_user_is_refused_even_when_the_file_mode_lets_it_in() -> None:
    interpreter = Path("/usr/bin/python3")
    if not interpreter.exists():  # noqa: ASYNC240
        pytest.skip("no system interpreter that another user can run")
    # An abstract socket has no file mode: only the peer check stands in the way.
    name = f"@agent-identity-test-{os.getpid()}"
    sock = trio.socket.socket(socket.AF_UNIX)
    handler = Recorder()
    with sock:
        await sock.bind(name.replace("@", "\0", 1))
        sock.listen()
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_control, sock, handler)
            result = await trio.run_process(
                [str(interpreter), "-I", "-c", _OTHER_USER_CLIENT, name],
                user=65534,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
            nursery.cancel_scope.cancel()
    assert result.returncode == 0, result.stderr
    reply = decode_reply(result.stdout)
    assert isinstance(reply, ErrorReply)
    assert reply.code == "forbidden"
    assert handler.seen == []


# -------------------------------------------------------------------------------- client


async def test_no_socket_file_means_the_daemon_is_not_running(sock_path: Path) -> None:
    with pytest.raises(DaemonNotRunning) as caught:
        await control_call(sock_path, StatusRequest())
    assert caught.value.path == sock_path
    assert str(sock_path) in str(caught.value)
    assert "not running" in str(caught.value)
    assert isinstance(caught.value, ControlError)


async def test_a_stale_socket_means_the_daemon_is_not_running(sock_path: Path) -> None:
    sock_path.parent.mkdir(mode=0o700)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(os.fspath(sock_path))
    stale.close()  # the file stays, nobody listens: what a crashed daemon leaves
    with pytest.raises(DaemonNotRunning, match="nothing listening"):
        await control_call(sock_path, StatusRequest())


async def _listen(path: Path) -> trio.SocketListener:
    path.parent.mkdir(mode=0o700, exist_ok=True)
    sock = trio.socket.socket(socket.AF_UNIX)
    await sock.bind(os.fspath(path))
    sock.listen()
    return trio.SocketListener(sock)


async def test_a_server_that_hangs_up_or_babbles_is_an_error(sock_path: Path) -> None:
    async with await _listen(sock_path) as listener:

        async def hang_up() -> None:
            stream = await listener.accept()
            await stream.aclose()

        async def babble() -> None:
            async with await listener.accept() as stream:
                await stream.send_all(struct.pack(">I", 5) + b"hello")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(hang_up)
            with pytest.raises(ControlError, match="closed the connection without answering"):
                await control_call(sock_path, StatusRequest())
            nursery.start_soon(babble)
            with pytest.raises(ControlError, match="not understood"):
                await control_call(sock_path, StatusRequest())


async def test_an_oversized_answer_is_refused(sock_path: Path) -> None:
    async with await _listen(sock_path) as listener:

        async def huge() -> None:
            async with await listener.accept() as stream:
                await stream.send_all(struct.pack(">I", MAX_REPLY_SIZE + 1))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(huge)
            with pytest.raises(ControlError, match="too large"):
                await control_call(sock_path, StatusRequest())


async def test_an_unusable_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ControlError, match="cannot connect") as caught:
        await control_call(tmp_path / ("x" * 120) / "control.sock", StatusRequest())
    assert not isinstance(caught.value, DaemonNotRunning)


async def test_a_silent_server_times_out(sock_path: Path) -> None:
    async with await _listen(sock_path) as listener:
        async with trio.open_nursery() as nursery:
            accepted: list[trio.SocketStream] = []

            async def accept_and_stay_silent() -> None:
                accepted.append(await listener.accept())

            nursery.start_soon(accept_and_stay_silent)
            with pytest.raises(ControlError, match=r"did not answer within 0\.2 s"):
                await control_call(sock_path, StatusRequest(), timeout=0.2)
        for stream in accepted:
            await stream.aclose()
