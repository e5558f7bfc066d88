"""A small, fast HTTP/1.1 server for the local identity socket (a Unix domain socket).

Not hypercorn: an ASGI scope carries no peer credentials on a Unix socket, the peer check
must run on the accepted descriptor before a byte is read, and ``GET /token`` from a warm
cache should cost little more than its system calls. This module is the server: accepting,
the connection limit, the deadlines, the counters. The exchange on each connection is
:mod:`.uds_http_conn`'s (peer gate, keep-alive, pipelining, per-phase deadlines), the wire
:mod:`.http_parse`'s (request heads) and :mod:`.http_messages`'s (requests and responses).

* **Peer gate**: ``gate.admit(fd)`` right after ``accept`` (refused: 403 with the reason,
  then close); ``gate.confirm(decision)`` after each request is read (the PID may have been
  reused); the decision's ``peer`` reaches the handler as ``HttpRequest.peer``.
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
import socket
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trio

from agent_identity.transports.http_messages import Handler, encode_response, json_error
from agent_identity.transports.uds_http_conn import HttpConnections
from agent_identity.transports.uds_socket import (
    ConnectionGate,
    Deadline,
    Watchdog,
    accept_connections,
)

__all__ = ["HttpLimits", "UdsHttpServer", "UdsHttpStatistics", "serve_uds_http"]

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
    _connections: HttpConnections = field(init=False)
    _responses: Counter[int] = field(default_factory=Counter)
    _counts: Counter[str] = field(default_factory=Counter)  # UdsHttpStatistics' field names

    def __post_init__(self) -> None:
        lim = self.limits
        shortest = min(lim.keep_alive_timeout, lim.head_timeout, lim.body_timeout, lim.send_timeout)
        self._watchdog = Watchdog(max(shortest / 8, 0.01))
        self._connections = HttpConnections(
            self.handler, self.gate, lim, self._counts, self._responses
        )

    def statistics(self) -> UdsHttpStatistics:
        """A snapshot of the server's counters."""
        counts = self._counts
        return UdsHttpStatistics(
            counts["connections_accepted"], len(self._watchdog), counts["connections_refused"],
            counts["connections_over_limit"], counts["requests"], dict(self._responses),
            counts["handler_errors"], counts["timeouts"],
        )  # fmt: skip

    def _admit(self, raw: socket.socket, *, nursery: trio.Nursery) -> None:
        """Start serving a connection just accepted, or turn it away above the limit."""
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
        """One connection's task: served, then closed and no longer watched."""
        try:
            await self._connections.serve(raw, conn)
        finally:  # also when cancelled before the first line ran
            self._watchdog.forget(conn)
            raw.close()


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
