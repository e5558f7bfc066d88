"""``agent-identity token``: print a session's TIP, fetched from the running daemon.

::

    agent-identity token [--session KEY] [--json] [--timeout SECONDS]
                         [--socket PATH | --data-dir DIR | --config FILE]

It asks the local identity server (``GET /token``, spec "Local Identity Server (UDS)") on
``--socket PATH``, else ``DIR/identity.sock`` for ``--data-dir DIR``, else the ``dataDir`` of
``--config FILE``, else of the default config file, else of ``~/.openclaw/plugins/identity``
(the same order as ``agent-identity ctl``). By default it prints the token alone on one line
(``export TIP=$(agent-identity token)``); ``--json`` prints the server's whole JSON body
(``token``, ``sessionKey``, ``sub``, ``expiresAt``, ``delegationChain``).

**The daemon must allowlist this command.** The local server admits ``curl`` and the
processes named in ``localServerAllowlist``; this command runs under the Python interpreter,
so that interpreter has to be listed: its full path (``agent-identity token`` names it when
it is refused; the tightest choice) or ``"python*"`` (any Python of the socket owner), then
``agent-identity ctl reload``. A refusal is reported as such, with that hint. The command
deliberately does not fall back to running ``curl`` itself: that would make the allowlist a
formality for every Python program that can import this package, which is exactly what the
operator chose not to allow.

Exit codes:

* 0: the token (or its JSON) was printed on stdout;
* 1: the session is not logged in or its login expired (the server's message on stderr), the
  daemon is not running or runs without the local server (one line on stderr), this process
  is not allowlisted, or the server failed;
* 2: bad command line, or a config file that cannot be read or is invalid.

The token goes to stdout only; nothing on stderr ever carries it.
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import sys
from pathlib import Path
from typing import Final
from urllib.parse import urlencode

import msgspec

from agent_identity.cli.app import (
    EXIT_FAILURE,
    EXIT_OK,
    Io,
    Subparsers,
    add_command,
    report_config_error,
)
from agent_identity.cli.ctl import resolve_data_dir
from agent_identity.config import ConfigError
from agent_identity.system.serve import CONTROL_SOCKET, IDENTITY_SOCKET

__all__ = ["DEFAULT_TIMEOUT", "register", "resolve_identity_socket", "run_token"]

#: Seconds to wait for the daemon (a cached TIP answers in well under a millisecond; a
#: first mint goes to the control plane, which may retry).
DEFAULT_TIMEOUT: Final = 30.0
#: Longest server message echoed to the terminal.
_MAX_MESSAGE: Final = 500


class _TokenBody(msgspec.Struct):
    token: str


class _ErrorBody(msgspec.Struct):
    error: str
    message: str


def register(subparsers: Subparsers) -> None:
    """Add ``token``.

    Args:
        subparsers: The top-level command group.
    """
    parser = add_command(
        subparsers,
        "token",
        help_text="print a session's TIP token from the running daemon",
        handler=run_token,
        description="Print a session's TIP token, asked of the daemon's local identity "
        "server. The daemon must have localServer on, and this interpreter in "
        'localServerAllowlist (its path, or "python*").',
    )
    parser.epilog = (
        "exit codes: 0 printed; 1 not logged in, daemon not running, process not "
        "allowlisted or server failure; 2 bad command line or config file"
    )
    parser.add_argument(
        "--session",
        metavar="KEY",
        help="the session key (default: the main session)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the server's JSON body instead of the token"
    )
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"how long to wait for the daemon (default {DEFAULT_TIMEOUT:g})",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--socket", metavar="PATH", type=Path, help="the local server's socket")
    where.add_argument("--data-dir", metavar="DIR", type=Path, help="the daemon's dataDir")
    where.add_argument("--config", "-c", metavar="FILE", type=Path, help="read dataDir from it")


def resolve_identity_socket(args: argparse.Namespace, io: Io) -> Path:
    """Where the local identity server listens; see the module docstring for the order.

    Raises:
        ConfigError: ``--config`` (or the default config file) cannot be read or is invalid.
    """
    explicit: Path | None = getattr(args, "socket", None)
    if explicit is not None:
        return explicit.expanduser()
    return resolve_data_dir(args, io) / IDENTITY_SOCKET


def run_token(args: argparse.Namespace, io: Io) -> int:
    """Fetch the TIP and print it.

    Returns:
        The exit code (see the module docstring).
    """
    try:
        path = resolve_identity_socket(args, io)
    except ConfigError as exc:
        return report_config_error(exc, exc.source or "config", io.err)
    try:
        path.stat()
    except (FileNotFoundError, NotADirectoryError):
        io.err.write(f"error: {_absent(path)}\n")
        return EXIT_FAILURE
    except OSError:
        pass  # e.g. a folder we may not search: connecting reports it with the reason
    session: str | None = args.session
    target = "/token" if session is None else "/token?" + urlencode({"session": session})
    connection = _UnixHTTPConnection(path, args.timeout)
    try:
        connection.request("GET", target, headers={"Accept": "application/json"})
        answer = connection.getresponse()
        status, body = answer.status, answer.read()
    except TimeoutError:
        io.err.write(f"error: the local identity server did not answer within {args.timeout:g}s\n")
        return EXIT_FAILURE
    except (ConnectionRefusedError, FileNotFoundError):
        # A socket file whose daemon died (or that vanished just now).
        io.err.write(f"error: agent-identity is not running: nothing listens on {path}\n")
        return EXIT_FAILURE
    except http.client.HTTPException as exc:  # before OSError: RemoteDisconnected is both
        io.err.write(f"error: the local identity server broke off its answer ({exc!r})\n")
        return EXIT_FAILURE
    except OSError as exc:
        io.err.write(f"error: cannot talk to the local identity server at {path}: {exc}\n")
        return EXIT_FAILURE
    finally:
        connection.close()
    return _report(status, body, args.json, io)


class _UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP/1.1 to a Unix socket (the standard library's client, another address family)."""

    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = os.fspath(path)

    def connect(self) -> None:
        """Connect to the socket file; the socket is closed again if that fails."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self._path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def _absent(path: Path) -> str:
    # A control socket next to the missing one means the daemon runs with localServer off:
    # say so, rather than "not running", or the operator restarts the wrong thing.
    if (path.parent / CONTROL_SOCKET).exists():
        return (
            f"the daemon runs without the local identity server (no {path}); "
            "set localServer: true in its config and restart it"
        )
    return f"agent-identity is not running (no socket at {path}); start it: agent-identity serve"


def _report(status: int, body: bytes, as_json: bool, io: Io) -> int:
    if status == 200:
        try:
            answer = msgspec.json.decode(body, type=_TokenBody)
        except msgspec.DecodeError:
            io.err.write("error: the local identity server sent an unexpected answer\n")
            return EXIT_FAILURE
        io.out.write((body.decode() if as_json else answer.token) + "\n")
        return EXIT_OK
    try:
        error = msgspec.json.decode(body, type=_ErrorBody)
    except msgspec.DecodeError:
        io.err.write(f"error: the local identity server answered {status}\n")
        return EXIT_FAILURE
    io.err.write(f"error: {_printable(error.message)}\n")
    if status == 403 and "not allowlisted" in error.message:
        io.err.write(_allowlist_hint())
    return EXIT_FAILURE


def _allowlist_hint() -> str:
    # /proc/self/exe is what the peer gate matched against: the resolved interpreter, not
    # the venv's symlink that sys.executable names.
    try:
        exe = str(Path("/proc/self/exe").readlink())
    except OSError:
        exe = str(Path(sys.executable).resolve())
    return (
        "hint: this command runs under Python; allow it in the daemon's config with\n"
        f'  "localServerAllowlist": ["{exe}"]   (or "python*" for any Python)\n'
        "then apply it: agent-identity ctl reload\n"
    )


def _printable(text: str) -> str:
    # Server messages echo session keys, which come from chats: keep escape sequences off
    # the operator's terminal, and keep a runaway message to one screen.
    text = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"
