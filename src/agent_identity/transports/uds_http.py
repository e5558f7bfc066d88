"""A small, fast HTTP/1.1 server for the local identity socket (a Unix domain socket).

Not hypercorn: an ASGI scope carries no peer credentials on a Unix socket, the peer check
must run on the accepted descriptor before a byte is read, and ``GET /token`` from a warm
cache should cost little more than its system calls. Each connection is one task that reads
with non-blocking ``recv`` and parks in :func:`trio.lowlevel.wait_readable` only when there
is nothing to read; each response is one ``send`` (see :mod:`.http_parse` for the wire).

* **Peer gate**: ``gate.admit(fd)`` right after ``accept`` (refused: 403 with the reason,
  then close); ``gate.confirm(decision)`` after each request is read (the PID may have been
  reused); the decision's ``peer`` reaches the handler as :attr:`HttpRequest.peer`.
* **Keep-alive** by default; ``Connection: close`` and HTTP/1.0 get one response. Pipelined
  requests are answered in order.
* **Limits** (:class:`HttpLimits`): 414, 431, 413, and 503 above ``max_connections``.
  Refusals are answered, then the connection drains briefly before closing, so the client
  reads the answer instead of a reset.
* **Timeouts** on Trio's clock: idle keep-alive (silent close); head and body, counted from
  their first byte (408: slowloris); a response the client does not read (close). One
  :class:`~.uds_socket.Watchdog` task enforces them: re-arming a cancel scope per phase
  would cost as much as parsing the request.
* **Failures stay local**: a handler exception is a 500 without details (logged); a broken
  connection ends only its own task.
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trio

from agent_identity.transports.http_parse import (
    CONTINUE,
    HttpError,
    HttpResponse,
    RequestHead,
    encode_response,
    json_error,
    parse_head,
    split_head,
)
from agent_identity.transports.uds_socket import (
    ConnectionGate,
    Deadline,
    GateDecision,
    Watchdog,
    accept_connections,
    send_all,
    shutdown_and_drain,
)

__all__ = [
    "ConnectionGate",
    "GateDecision",
    "Handler",
    "HttpLimits",
    "HttpRequest",
    "HttpResponse",
    "UdsHttpServer",
    "UdsHttpStatistics",
    "json_error",
    "serve_uds_http",
]

logger = logging.getLogger(__name__)

# Phases of a connection (Deadline.phase): what an overdue connection was doing.
_IDLE, _HEAD, _BODY, _BUSY, _SEND = range(5)
_LATE = "the request was not received in time"
_OVER_LIMIT = json_error(503, "busy", "too many connections; try again")


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """Size, time and concurrency limits of the server.

    Attributes:
        max_request_line: Longest request line in bytes (414 above it).
        max_head_bytes: Largest request head in bytes (431 above it).
        max_header_count: Most header lines (431 above it).
        max_body_bytes: Largest request body in bytes (413 above it).
        keep_alive_timeout: Seconds an idle connection is kept between requests.
        head_timeout: Seconds to receive a whole head, from its first byte (408).
        body_timeout: Seconds to receive a whole body, from the end of the head (408).
        send_timeout: Seconds for a client to take a response off the socket.
        max_connections: Most connections served at once; more get a 503.
        receive_size: Bytes asked of each ``recv``.
    """

    max_request_line: int = 8192
    max_head_bytes: int = 16384
    max_header_count: int = 64
    max_body_bytes: int = 1 << 20
    keep_alive_timeout: float = 5.0
    head_timeout: float = 10.0
    body_timeout: float = 10.0
    send_timeout: float = 10.0
    max_connections: int = 256
    receive_size: int = 1 << 16


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One request, as the handler sees it.

    Attributes:
        method: The method, e.g. ``"GET"``.
        path: The percent-decoded path, e.g. ``"/token"``.
        query: The query parameters (each name at most once).
        headers: Header values by lower-case name.
        body: The request body (empty without ``Content-Length``).
        peer: What the peer gate learned about the client, or ``None`` without a gate.
    """

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    peer: object | None = None


#: The application: one request in, one response out.
Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]


@dataclass(frozen=True, slots=True)
class UdsHttpStatistics:
    """Counters since the server started.

    Attributes:
        connections_accepted: Connections accepted.
        connections_open: Connections being served now.
        connections_refused: Connections the peer gate refused (at accept or on confirm).
        connections_over_limit: Connections turned away with 503 (``max_connections``).
        requests: Requests that reached the handler.
        responses: Responses sent, by status (including refusals and errors).
        handler_errors: Handler exceptions (each answered with 500).
        timeouts: Connections closed by a head, body or send timeout.
    """

    connections_accepted: int
    connections_open: int
    connections_refused: int
    connections_over_limit: int
    requests: int
    responses: Mapping[int, int]
    handler_errors: int
    timeouts: int


@dataclass(eq=False)
class UdsHttpServer:
    """A running server; :func:`serve_uds_http` hands it to ``nursery.start``'s caller."""

    handler: Handler
    gate: ConnectionGate[Any] | None
    limits: HttpLimits
    _watchdog: Watchdog = field(init=False)
    _responses: Counter[int] = field(default_factory=Counter)
    _counts: Counter[str] = field(default_factory=Counter)  # UdsHttpStatistics' field names

    def __post_init__(self) -> None:
        lim = self.limits
        shortest = min(lim.keep_alive_timeout, lim.head_timeout, lim.body_timeout, lim.send_timeout)
        self._watchdog = Watchdog(max(shortest / 8, 0.01))

    def statistics(self) -> UdsHttpStatistics:
        """A snapshot of the server's counters."""
        counts = self._counts
        return UdsHttpStatistics(
            counts["connections_accepted"], len(self._watchdog), counts["connections_refused"],
            counts["connections_over_limit"], counts["requests"], dict(self._responses),
            counts["handler_errors"], counts["timeouts"],
        )  # fmt: skip

    def _admit(self, raw: socket.socket, *, nursery: trio.Nursery) -> None:
        self._counts["connections_accepted"] += 1
        if len(self._watchdog) < self.limits.max_connections:
            nursery.start_soon(self._connection, raw, self._watchdog.watch())
            return
        # Over the limit nothing is worth waiting for: one non-blocking send, then close.
        self._counts["connections_over_limit"] += 1
        with raw, contextlib.suppress(OSError):
            raw.send(encode_response(_OVER_LIMIT, keep_alive=False), socket.MSG_NOSIGNAL)
            self._responses[503] += 1

    async def _connection(self, raw: socket.socket, conn: Deadline) -> None:
        try:
            await self._isolated(raw, conn)
        finally:  # also when cancelled before the first line ran
            self._watchdog.forget(conn)
            raw.close()

    async def _isolated(self, raw: socket.socket, conn: Deadline) -> None:
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
        phase = conn.phase
        conn.phase = _SEND
        conn.deadline = trio.current_time() + self.limits.send_timeout
        await send_all(raw, data)
        conn.phase = phase

    async def _send_error(
        self, raw: socket.socket, response: HttpResponse, conn: Deadline | None = None
    ) -> None:
        if conn is not None:
            conn.deadline = math.inf  # bounded here instead
        data = encode_response(response, keep_alive=False)
        with trio.move_on_after(self.limits.send_timeout):
            await send_all(raw, data)
            self._responses[response.status] += 1
        await shutdown_and_drain(raw)


async def serve_uds_http(
    listener: trio.socket.SocketType,
    handler: Handler,
    *,
    gate: ConnectionGate[Any] | None = None,
    limits: HttpLimits = HttpLimits(),
    task_status: trio.TaskStatus[UdsHttpServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve HTTP/1.1 on a listening Unix socket until cancelled.

    Start it with ``nursery.start`` to get the :class:`UdsHttpServer` (for
    :meth:`~UdsHttpServer.statistics`) once it is accepting. Cancelling the task closes every
    connection; the listener itself stays open (its owner closes it and removes the file).

    Args:
        listener: A listening ``AF_UNIX`` stream socket (see ``uds_socket``).
        handler: Answers each request.
        gate: Checks each peer at accept and after each request; ``None`` serves everyone
            the socket's file permissions let in.
        limits: Sizes, timeouts and the connection limit.
        task_status: Receives the running server.

    Raises:
        OSError: ``accept`` failed for a reason other than a temporary lack of resources.
    """
    server = UdsHttpServer(handler, gate, limits)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server._watchdog.run)
        task_status.started(server)
        await accept_connections(listener, partial(server._admit, nursery=nursery))
