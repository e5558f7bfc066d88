"""The HTTP/1.1 exchange on one accepted connection of the Unix-socket server.

:class:`HttpConnections` serves the connections :class:`~.uds_http.UdsHttpServer` accepts,
one task each: it reads with non-blocking ``recv`` and parks in
:func:`trio.lowlevel.wait_readable` only when there is nothing to read; each response is one
``send``. Per connection:

1. **Peer gate**: ``gate.admit(fd)`` before a byte is read (refused: 403 with the reason,
   then close); ``gate.confirm(decision)`` after each request is read (the PID may have
   been reused); the decision's ``peer`` reaches the handler as ``HttpRequest.peer``.
2. **Requests**, each head cut and parsed by :mod:`.http_parse`, then its body (413 above
   the limit; ``100 Continue`` first when the client waits for it). Keep-alive by default;
   ``Connection: close`` and HTTP/1.0 get one response. Pipelined requests are answered
   in order, with a checkpoint before each, so one client cannot starve the others.
3. **Deadlines**: each phase (idle, head, body, handler, send) sets the connection's
   :class:`~.uds_socket.Deadline`; the server's watchdog cancels an overdue one. An
   overdue head or body is answered 408, an idle connection just closed.
4. **Failures stay local**: a handler exception is a 500 without details (logged); a
   refusal is answered, then the connection drains briefly before closing, so the client
   reads the answer instead of a reset; a broken connection ends only its own task.
"""

from __future__ import annotations

import logging
import math
import socket
from collections import Counter
from typing import Any, Protocol

import trio

from agent_identity.transports.http_messages import (
    CONTINUE,
    Handler,
    HttpRequest,
    HttpResponse,
    encode_response,
    json_error,
)
from agent_identity.transports.http_parse import (
    HeadLimits,
    HttpError,
    RequestHead,
    parse_head,
    split_head,
)
from agent_identity.transports.uds_socket import (
    ConnectionGate,
    Deadline,
    GateDecision,
    send_all,
    shutdown_and_drain,
)

__all__ = ["ConnectionLimits", "HttpConnections"]

# The server's logger: what a connection logs is the server's to report, as before the split.
logger = logging.getLogger("agent_identity.transports.uds_http")

# Phases of a connection (Deadline.phase): what an overdue connection was doing.
_IDLE, _HEAD, _BODY, _BUSY, _SEND = range(5)
_LATE = "the request was not received in time"


class ConnectionLimits(HeadLimits, Protocol):
    """What a connection is held to besides its heads (``uds_http.HttpLimits`` is one)."""

    @property
    def max_body_bytes(self) -> int:
        """Largest request body in bytes (413 above it)."""
        ...

    @property
    def keep_alive_timeout(self) -> float:
        """Seconds an idle connection is kept between requests."""
        ...

    @property
    def head_timeout(self) -> float:
        """Seconds to receive a whole head, from its first byte (408)."""
        ...

    @property
    def body_timeout(self) -> float:
        """Seconds to receive a whole body, from the end of the head (408)."""
        ...

    @property
    def send_timeout(self) -> float:
        """Seconds for a client to take a response off the socket."""
        ...

    @property
    def receive_size(self) -> int:
        """Bytes asked of each ``recv``."""
        ...


class HttpConnections:
    """Serves each accepted connection of one server, and counts what happens on them.

    Args:
        handler: Answers each request.
        gate: Checks each peer at accept and after each request; ``None`` admits everyone.
        limits: Sizes and timeouts.
        counts: The server's counters by ``UdsHttpStatistics`` field name; this adds
            ``connections_refused``, ``requests``, ``handler_errors`` and ``timeouts``.
        responses: The server's responses sent, by status; this adds each one it sends.
    """

    __slots__ = ("_counts", "_responses", "gate", "handler", "limits")

    def __init__(
        self,
        handler: Handler,
        gate: ConnectionGate[Any] | None,
        limits: ConnectionLimits,
        counts: Counter[str],
        responses: Counter[int],
    ) -> None:
        self.handler = handler
        self.gate = gate
        self.limits = limits
        self._counts = counts
        self._responses = responses

    async def serve(self, raw: socket.socket, conn: Deadline) -> None:
        """Serve one connection until it closes, fails or overruns ``conn``'s deadline.

        Never raises but :class:`trio.Cancelled`: errors are logged, and the caller closes
        ``raw`` and forgets ``conn`` afterwards.

        Args:
            raw: The accepted socket, non-blocking.
            conn: The connection's deadline, watched by the server's watchdog (its scope
                is cancelled when the deadline passes).
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            with conn.scope:
                await self._converse(raw, conn)
            if conn.scope.cancelled_caught and conn.phase != _IDLE:  # idle: just close
                self._counts["timeouts"] += 1
                if conn.phase in {_HEAD, _BODY}:  # a client that does not read gets nothing
                    await self._send_error(raw, json_error(408, "request_timeout", _LATE))
        except OSError as exc:  # the peer went away mid-exchange: its problem only
            logger.debug("connection dropped: %s", exc)
        except Exception:  # one broken connection must not stop the server
            logger.exception("unexpected error on a local-socket connection")

    async def _converse(self, raw: socket.socket, conn: Deadline) -> None:
        """Admit the peer, then serve its requests; a refusal or bad request is answered."""
        # A gate that raises fails closed: the connection ends unanswered, and is logged.
        decision = None if self.gate is None else self.gate.admit(raw.fileno())
        try:
            if decision is None or decision.allowed:
                await self._serve_requests(raw, conn, decision)
            else:
                self._counts["connections_refused"] += 1
                await self._send_error(raw, json_error(403, "forbidden", decision.reason), conn)
        except HttpError as exc:
            await self._send_error(raw, json_error(exc.status, exc.code, exc.message), conn)
        finally:
            if decision is not None:
                decision.close()

    async def _serve_requests(
        self, raw: socket.socket, conn: Deadline, admitted: GateDecision | None
    ) -> None:
        """Answer requests until the client closes or one asks to close."""
        limits = self.limits
        gate = self.gate
        buf = b""
        answered = False
        while True:
            head, buf = await self._read_head(raw, conn, buf, answered)
            if not head:
                return  # the client closed (idle, or gave up mid-head)
            parsed = parse_head(head, limits)
            # --- the body
            body = b""
            if parsed.content_length:
                read = await self._read_body(raw, conn, parsed, buf)
                if read is None:
                    return  # the client closed mid-body
                body, buf = read
            # --- the peer, again: the process behind the socket may have changed
            peer = None
            if gate is not None and admitted is not None:
                decision = gate.confirm(admitted)
                if not decision.allowed:
                    self._counts["connections_refused"] += 1
                    error = json_error(403, "forbidden", decision.reason)
                    await self._send_error(raw, error, conn)
                    return
                peer = decision.peer
            # --- the handler
            conn.phase = _BUSY
            conn.deadline = math.inf
            request = HttpRequest(parsed.method, parsed.path, parsed.query, parsed.headers,
                                  body, peer)  # fmt: skip
            keep_alive = parsed.keep_alive
            status, data = await self._respond(request, keep_alive)
            # --- the response: one send, almost always complete at once
            try:
                sent = raw.send(data, socket.MSG_NOSIGNAL)  # EPIPE, never SIGPIPE
            except BlockingIOError:
                sent = 0
            if sent < len(data):
                await self._send_rest(raw, conn, data[sent:])
            self._responses[status] += 1
            if not keep_alive:
                return
            answered = True

    async def _read_head(
        self, raw: socket.socket, conn: Deadline, buf: bytes, answered: bool
    ) -> tuple[bytes, bytes]:
        """The next head and the bytes after it; the head is empty if the client closed."""
        limits = self.limits
        if buf:  # pipelined: the head's time runs from now
            conn.phase = _HEAD
            conn.deadline = trio.current_time() + limits.head_timeout
            head, buf = split_head(buf, limits)
            # A client that pipelines must not starve the others: yield before each request.
            await trio.lowlevel.checkpoint()
            if head:
                return head, buf
        else:
            conn.phase = _IDLE
            conn.deadline = trio.current_time() + limits.keep_alive_timeout
            if answered:
                # The client has only just got its answer, so its next request is hardly
                # ever here yet: wait first instead of paying for a recv that fails.
                await trio.lowlevel.wait_readable(raw)
            else:
                await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            try:
                data = raw.recv(limits.receive_size)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(raw)
                continue
            if not data:
                return b"", buf
            buf = buf + data if buf else data
            head, buf = split_head(buf, limits)
            if head:
                return head, buf
            if conn.phase == _IDLE:  # the head's time runs from its first byte
                conn.phase = _HEAD
                conn.deadline = trio.current_time() + limits.head_timeout
            await trio.lowlevel.checkpoint_if_cancelled()

    async def _respond(self, request: HttpRequest, keep_alive: bool) -> tuple[int, bytes]:
        """The handler's answer, encoded; a handler failure is a 500."""
        self._counts["requests"] += 1
        try:
            response = await self.handler(request)
            return response.status, encode_response(
                response, keep_alive, head_only=request.method == "HEAD"
            )
        except Exception:  # a handler bug is a 500, never a dead server
            await trio.lowlevel.checkpoint_if_cancelled()
            logger.exception("the local-socket handler failed on %s", request.path)
            self._counts["handler_errors"] += 1
            response = json_error(500, "internal_error", "the request failed")
            return 500, encode_response(response, keep_alive)

    async def _read_body(
        self, raw: socket.socket, conn: Deadline, parsed: RequestHead, buf: bytes
    ) -> tuple[bytes, bytes] | None:
        """The body and the bytes after it, or ``None`` if the client closed first."""
        length = parsed.content_length
        if length > self.limits.max_body_bytes:
            raise HttpError(413, "payload_too_large", "the request body is too large")
        if len(buf) < length and parsed.expect_continue:
            await self._send_rest(raw, conn, CONTINUE)
        await trio.lowlevel.checkpoint_if_cancelled()
        conn.phase = _BODY
        conn.deadline = trio.current_time() + self.limits.body_timeout
        chunks = [buf]
        have = len(buf)
        while have < length:
            try:
                data = raw.recv(max(self.limits.receive_size, length - have))
            except BlockingIOError:
                await trio.lowlevel.wait_readable(raw)
                continue
            if not data:
                return None
            chunks.append(data)
            have += len(data)
        buf = b"".join(chunks) if len(chunks) > 1 else buf
        return buf[:length], buf[length:]

    async def _send_rest(self, raw: socket.socket, conn: Deadline, data: bytes) -> None:
        """Send what one ``send`` did not take, under the send timeout."""
        phase = conn.phase
        conn.phase = _SEND
        conn.deadline = trio.current_time() + self.limits.send_timeout
        await send_all(raw, data)
        conn.phase = phase

    async def _send_error(
        self, raw: socket.socket, response: HttpResponse, conn: Deadline | None = None
    ) -> None:
        """Answer a refusal or failure, then end the connection gently."""
        if conn is not None:
            conn.deadline = math.inf  # bounded here instead
        data = encode_response(response, keep_alive=False)
        with trio.move_on_after(self.limits.send_timeout):
            await send_all(raw, data)
            self._responses[response.status] += 1
        await shutdown_and_drain(raw)
