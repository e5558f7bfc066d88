"""A TCP socket bound before hypercorn gets it (shared by the callback server and the sandbox).

hypercorn leaks its socket when ``bind()`` fails, so both servers bind here first and hand the
descriptor over as ``fd://``; a taken port then fails the caller's start cleanly.
"""

from __future__ import annotations

import socket

__all__ = ["bound_tcp_fd"]


def bound_tcp_fd(host: str, port: int) -> int:
    """Bind a TCP socket (``SO_REUSEADDR``) and return its descriptor, owned by the caller.

    Raises:
        OSError: The address cannot be bound (the socket is closed first).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock.detach()
