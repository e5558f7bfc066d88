"""The operator control socket: an owner-only Unix socket serving typed control messages.

The daemon listens on ``<dataDir>/control.sock`` (see :func:`control_socket_path`);
``agent-identity ctl`` connects, sends one request frame and reads one reply frame (the
wire is in :mod:`agent_identity.transports.control_wire`). A connection may carry any
number of requests, answered in order.

Server rules:

* **Owner only.** The socket file is 0600 in a 0700 folder, and on top of that every
  connection's peer uid (``SO_PEERCRED``) must be the server's effective uid or root;
  anyone else gets a ``forbidden`` reply and is disconnected. A platform without
  ``SO_PEERCRED`` refuses everyone (fail closed).
* **Malformed input is answered, not fatal.** A body that is not a known request gets a
  ``bad_request`` reply and the connection keeps working (the length prefix keeps the
  stream in step). A length prefix over :data:`MAX_REQUEST_SIZE` gets ``frame_too_large``
  and the connection is closed (the rest of the stream cannot be trusted). A peer that
  disappears mid-frame is simply dropped.
* **Handler failures stay inside.** An exception from the handler is logged (type only:
  its text could carry anything) and answered with ``internal``.
* **A computed reply is delivered.** Writing it is shielded for a few seconds, so the reply
  to ``shutdown`` still reaches the operator while the daemon cancels this server.

The server never creates or removes the socket file: the caller binds the listener (with
its modes) and owns it.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final, TypeAlias

import trio

from agent_identity.transports.control_wire import (
    MAX_REPLY_SIZE,
    MAX_REQUEST_SIZE,
    ControlReply,
    ControlRequest,
    ErrorReply,
    FrameReader,
    FrameTooLargeError,
    MalformedMessageError,
    decode_reply,
    decode_request,
    encode_frame,
)

__all__ = [
    "CONTROL_SOCKET_NAME",
    "DEFAULT_CALL_TIMEOUT",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_MAX_CONNECTIONS",
    "ControlError",
    "ControlHandler",
    "DaemonNotRunning",
    "control_call",
    "control_socket_path",
    "peer_is_owner",
    "peer_uid",
    "serve_control",
]

logger = logging.getLogger(__name__)

#: The socket's file name inside the data folder.
CONTROL_SOCKET_NAME: Final = "control.sock"
#: Connections served at once; more get a ``busy`` reply.
DEFAULT_MAX_CONNECTIONS: Final = 16
#: Seconds a connection may sit without a complete request before it is closed.
DEFAULT_IDLE_TIMEOUT: Final = 60.0
#: Seconds :func:`control_call` waits for the daemon by default.
DEFAULT_CALL_TIMEOUT: Final = 30.0
#: Seconds a computed reply may take to write, even while the server is cancelled.
_REPLY_GRACE: Final = 5.0
_RECEIVE_SIZE: Final = 65536
_UCRED: Final = struct.Struct("i2I")  # struct ucred: pid_t pid; uid_t uid; gid_t gid
_NO_UID: Final = 0xFFFFFFFF  # (uid_t)-1: the kernel has no credentials for the peer

ControlHandler: TypeAlias = Callable[[ControlRequest], Awaitable[ControlReply]]
"""Executes one request; expected failures are :class:`ErrorReply` values."""


def control_socket_path(data_dir: str | os.PathLike[str]) -> Path:
    """Where the control socket of a data folder is (``~`` expanded).

    Args:
        data_dir: The plugin's ``dataDir``.
    """
    return Path(data_dir).expanduser() / CONTROL_SOCKET_NAME


# -------------------------------------------------------------------------- peer check


def peer_uid(sock: trio.socket.SocketType) -> int | None:
    """The uid of the process at the other end of a connected Unix socket.

    Returns:
        The peer's uid, or None where ``SO_PEERCRED`` is not available, fails, or knows no
        peer (not a connected Unix socket).
    """
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, option, _UCRED.size)
    except OSError:
        return None
    _pid, uid, _gid = _UCRED.unpack(raw)
    return None if uid == _NO_UID else int(uid)


def peer_is_owner(uid: int | None, euid: int) -> bool:
    """Whether a peer may use the control socket: the server's own user, or root.

    Args:
        uid: The peer's uid (None: unknown, refused).
        euid: The server's effective uid.
    """
    return uid is not None and uid in (euid, 0)


# ------------------------------------------------------------------------------ server


class _Server:
    """Per-listener state: the handler, the connection count and the limits."""

    def __init__(
        self, handler: ControlHandler, *, max_connections: int, idle_timeout: float, euid: int
    ) -> None:
        self._handler = handler
        self._max_connections = max_connections
        self._idle_timeout = idle_timeout
        self._euid = euid
        self._active = 0

    async def connection(self, stream: trio.SocketStream) -> None:
        """Serve one connection until EOF, idleness, a fatal frame or a vanished peer."""
        async with stream:
            uid = peer_uid(stream.socket)
            if not peer_is_owner(uid, self._euid):
                logger.warning("control socket: refused a peer with uid %s", uid)
                await _reply(stream, ErrorReply(code="forbidden", message=_FORBIDDEN))
                return
            if self._active >= self._max_connections:
                await _reply(stream, ErrorReply(code="busy", message=_BUSY))
                return
            self._active += 1
            try:
                await self._requests(stream)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                logger.debug("control socket: the peer went away")
            finally:
                self._active -= 1

    async def _requests(self, stream: trio.SocketStream) -> None:
        reader = FrameReader(MAX_REQUEST_SIZE)
        while True:
            try:
                # A pipelined request may already be buffered behind the previous one.
                body = reader.next_frame()
                if body is None:
                    body = await self._receive_frame(stream, reader)
                    if body is None:
                        return
            except FrameTooLargeError as exc:
                await _reply(stream, ErrorReply(code="frame_too_large", message=str(exc)))
                return
            await self._answer(stream, body)

    async def _receive_frame(self, stream: trio.SocketStream, reader: FrameReader) -> bytes | None:
        """Receive until a frame is complete; None at EOF or after the idle timeout."""
        with trio.move_on_after(self._idle_timeout):
            while True:
                data = await stream.receive_some(_RECEIVE_SIZE)
                if not data:
                    if reader.buffered:
                        logger.debug("control socket: the peer closed mid-frame")
                    return None
                reader.feed(data)
                if (body := reader.next_frame()) is not None:
                    return body
        logger.debug("control socket: closing an idle connection")
        return None

    async def _answer(self, stream: trio.SocketStream, body: bytes) -> None:
        reply: ControlReply
        try:
            reply = await self._handler(decode_request(body))
        except MalformedMessageError as exc:
            reply = ErrorReply(code="bad_request", message=str(exc))
        except Exception as exc:  # noqa: BLE001 - a handler bug must not end the server
            # The type only: an exception's text (and a traceback's) could carry a secret.
            logger.error("a control request failed: %s", type(exc).__name__)  # noqa: TRY400
            reply = ErrorReply(code="internal", message=_INTERNAL)
        await _reply(stream, reply)


_FORBIDDEN: Final = "the control socket serves only the user the daemon runs as (or root)"
_BUSY: Final = "too many control connections; try again"
_INTERNAL: Final = "the request failed unexpectedly; see the daemon's log"


async def _reply(stream: trio.SocketStream, reply: ControlReply) -> None:
    # Shielded: a reply that was computed is worth delivering even while this server is
    # being cancelled (the reply to ``shutdown`` is the common case), but only briefly.
    with trio.move_on_after(_REPLY_GRACE, shield=True):
        await stream.send_all(encode_frame(reply))


async def serve_control(
    listener: trio.SocketListener | trio.socket.SocketType,
    handler: ControlHandler,
    *,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve control requests on a bound, listening Unix socket until cancelled.

    Use it with ``await nursery.start(serve_control, listener, handler)``: it is ready
    (accepting) when ``start`` returns. The listener stays the caller's to close (and its
    file the caller's to remove), e.g. with
    :func:`~agent_identity.transports.uds_socket.open_unix_listener`.

    Args:
        listener: The listening Unix socket (bound with mode 0600 in a 0700 folder), bare
            or wrapped in a :class:`trio.SocketListener`.
        handler: Executes one request and returns its reply.
        max_connections: Connections served at once.
        idle_timeout: Seconds a connection may wait without a complete request.
        task_status: Started once the server accepts connections.
    """
    server = _Server(
        handler,
        max_connections=max_connections,
        idle_timeout=idle_timeout,
        euid=os.geteuid(),
    )
    if not isinstance(listener, trio.SocketListener):
        listener = trio.SocketListener(listener)
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, server.connection, [listener])
        task_status.started()


# ------------------------------------------------------------------------------ client


class ControlError(Exception):
    """A control call failed: no answer, an unusable answer, or the socket is unusable."""


class DaemonNotRunning(ControlError):  # noqa: N818 - names a state, like trio.Cancelled
    """Nothing is listening on the control socket (no socket file, or connection refused).

    Attributes:
        path: The socket path that was tried.
    """

    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(
            f"agent-identity is not running: {detail} at {path} (start it with "
            "`agent-identity serve`, or point --socket/--data-dir/--config at its data folder)"
        )
        self.path = path


async def control_call(
    path: str | os.PathLike[str],
    request: ControlRequest,
    *,
    timeout: float = DEFAULT_CALL_TIMEOUT,  # noqa: ASYNC109 - a one-shot CLI call, not an API
) -> ControlReply:
    """Send one request to the daemon and return its reply.

    An :class:`ErrorReply` is a reply like any other (the daemon refused or failed the
    request); only failures to get an answer raise.

    Args:
        path: The control socket.
        request: What to ask.
        timeout: Seconds to wait for the whole exchange.

    Raises:
        DaemonNotRunning: No socket file, or nothing listening on it.
        ControlError: Permission denied, no reply within ``timeout``, the daemon hung up
            without answering, or an answer that is not a reply.
    """
    target = Path(path)
    try:
        with trio.fail_after(timeout):
            return await _exchange(target, request)
    except trio.TooSlowError:
        raise ControlError(f"the daemon did not answer within {timeout:g} s") from None


async def _exchange(path: Path, request: ControlRequest) -> ControlReply:
    stream = await _connect(path)
    async with stream:
        try:
            await stream.send_all(encode_frame(request))
        except trio.BrokenResourceError:
            # A daemon that refuses at once (busy, forbidden) may have answered and hung up
            # before the request was written: its answer is still there to read.
            logger.debug("the control socket closed before the request was written")
        try:
            reader = FrameReader(MAX_REPLY_SIZE)
            while (body := reader.next_frame()) is None:
                data = await stream.receive_some(_RECEIVE_SIZE)
                if not data:
                    raise ControlError("the daemon closed the connection without answering")
                reader.feed(data)
        except trio.BrokenResourceError:
            raise ControlError("the daemon closed the connection without answering") from None
        except FrameTooLargeError as exc:
            raise ControlError(f"the daemon's answer is too large: {exc}") from None
    try:
        return decode_reply(body)
    except MalformedMessageError as exc:
        raise ControlError(f"the daemon's answer is not understood: {exc}") from None


async def _connect(path: Path) -> trio.SocketStream:
    try:
        return await trio.open_unix_socket(os.fspath(path))
    except (FileNotFoundError, NotADirectoryError):
        raise DaemonNotRunning(path, "no control socket") from None
    except ConnectionRefusedError:
        raise DaemonNotRunning(path, "nothing listening on the control socket") from None
    except PermissionError:
        msg = f"permission denied on {path}: run ctl as the user the daemon runs as"
        raise ControlError(msg) from None
    except OSError as exc:
        raise ControlError(f"cannot connect to {path}: {exc.strerror or exc}") from None
