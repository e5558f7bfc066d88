"""``agent-identity ctl``: operate a running daemon over its owner-only control socket.

::

    agent-identity ctl status | sessions | revoke KEY | flush-tips | reload | shutdown
    agent-identity ctl approvals [list | approve ID | reject ID]

Every subcommand takes ``--json`` (print the daemon's reply as JSON, for scripts; readable
tables otherwise), ``--timeout SECONDS`` and one way to find the socket: ``--socket PATH``,
else ``--data-dir DIR`` (``DIR/control.sock``), else the ``dataDir`` of ``--config FILE``,
else that of the default config file when it exists, else ``~/.openclaw/plugins/identity``.

Exit codes:

* 0: done (also a revoke that found nothing to revoke);
* 1: the daemon is not running (one line on stderr), did not answer, or refused or failed
  the request (an error reply, a rejected reload, a refused approval);
* 2: bad command line, or a config file that cannot be read or is invalid.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import msgspec
import trio

from agent_identity.cli.app import (
    EXIT_FAILURE,
    EXIT_OK,
    Io,
    Subparsers,
    report_config_error,
)
from agent_identity.cli.config_command import default_config_path
from agent_identity.config import DEFAULT_DATA_DIR, ConfigError, load_config
from agent_identity.transports.control import (
    DEFAULT_CALL_TIMEOUT,
    ControlError,
    control_call,
    control_socket_path,
)
from agent_identity.transports.control_wire import (
    ApprovalRow,
    ApprovalsReply,
    ApprovalsRequest,
    ApproveRequest,
    ControlReply,
    ControlRequest,
    DecisionReply,
    ErrorReply,
    FlushTipsReply,
    FlushTipsRequest,
    RejectRequest,
    ReloadReply,
    ReloadRequest,
    RevokeReply,
    RevokeRequest,
    SessionsReply,
    SessionsRequest,
    ShutdownReply,
    ShutdownRequest,
    StatusReply,
    StatusRequest,
)

__all__ = ["exit_code", "register", "render", "resolve_socket", "run_ctl"]

RequestBuilder = Callable[[argparse.Namespace], ControlRequest]


def register(subparsers: Subparsers) -> None:
    """Add ``ctl`` and its subcommands.

    Args:
        subparsers: The top-level command group.
    """
    common = _common_options()
    ctl = subparsers.add_parser(
        "ctl",
        help="operate a running daemon (status, sessions, revoke, approvals, ...)",
        description="Operate a running agent-identity daemon over its control socket.",
        epilog="exit codes: 0 done; 1 the daemon is not running, did not answer, or refused "
        "or failed the request; 2 bad command line or config file",
        parents=[common],
    )
    inner = ctl.add_subparsers(
        title="subcommands", metavar="SUBCOMMAND", dest="ctl_command", required=True
    )
    _leaf(
        inner,
        common,
        "status",
        "actors, sessions, TIP cache, pending approvals",
        lambda _: StatusRequest(),
    )
    _leaf(inner, common, "sessions", "list the live sessions", lambda _: SessionsRequest())
    revoke = _leaf(
        inner,
        common,
        "revoke",
        "log a session out: session, TIP, credentials, bindings, approvals",
        lambda args: RevokeRequest(session_key=args.session_key),
    )
    revoke.add_argument("session_key", metavar="KEY", help="the effective session key")
    _leaf(inner, common, "flush-tips", "drop every cached TIP", lambda _: FlushTipsRequest())
    _leaf(
        inner,
        common,
        "reload",
        "re-read the configuration (an invalid one is rejected)",
        lambda _: ReloadRequest(),
    )
    _leaf(inner, common, "shutdown", "stop the daemon gracefully", lambda _: ShutdownRequest())
    approvals = _leaf(
        inner,
        common,
        "approvals",
        "list, approve or reject approvals",
        lambda _: ApprovalsRequest(),
    )
    decide = approvals.add_subparsers(title="actions", metavar="ACTION", dest="approvals_action")
    _leaf(
        decide,
        common,
        "list",
        "list the live approvals (the default)",
        lambda _: ApprovalsRequest(),
    )
    for name, build in (
        ("approve", lambda args: ApproveRequest(approval_id=args.approval_id)),
        ("reject", lambda args: RejectRequest(approval_id=args.approval_id)),
    ):
        action = _leaf(decide, common, name, f"{name} an approval of any session", build)
        action.add_argument("approval_id", metavar="ID", help="the approval id (apr_...)")


def _common_options() -> argparse.ArgumentParser:
    # SUPPRESS: the options may be given at any level (``ctl --json status`` or
    # ``ctl status --json``) without a lower level's default overwriting a higher one's value.
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument("--json", action="store_true", help="print the reply as JSON")
    where = common.add_mutually_exclusive_group()
    where.add_argument("--socket", metavar="PATH", type=Path, help="the control socket")
    where.add_argument("--data-dir", metavar="DIR", type=Path, help="the daemon's dataDir")
    where.add_argument("--config", "-c", metavar="FILE", type=Path, help="read dataDir from it")
    common.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=float,
        help=f"how long to wait for the daemon (default {DEFAULT_CALL_TIMEOUT:g})",
    )
    return common


def _leaf(
    group: Subparsers,
    common: argparse.ArgumentParser,
    name: str,
    help_text: str,
    build: RequestBuilder,
) -> argparse.ArgumentParser:
    # Not add_command: the shared options come in as a parent parser.
    parser = group.add_parser(name, help=help_text, description=help_text, parents=[common])
    parser.set_defaults(handler=run_ctl, ctl_build=build)
    return parser


def resolve_data_dir(args: argparse.Namespace, io: Io) -> Path:
    """The daemon's data folder: ``--data-dir``, else that of the config (see the docstring).

    Raises:
        ConfigError: ``--config`` (or the default config file) cannot be read or is invalid.
    """
    data_dir: Path | None = getattr(args, "data_dir", None)
    if data_dir is not None:
        return data_dir.expanduser()
    config: Path | None = getattr(args, "config", None)
    if config is None:
        config = default_config_path(io.environ)
        if not config.is_file():
            return Path(DEFAULT_DATA_DIR).expanduser()
    return load_config(config).plugin.data_path()


def resolve_socket(args: argparse.Namespace, io: Io) -> Path:
    """Where the daemon's control socket is; see the module docstring for the order.

    Raises:
        ConfigError: ``--config`` (or the default config file) cannot be read or is invalid.
    """
    socket: Path | None = getattr(args, "socket", None)
    if socket is not None:
        return socket.expanduser()
    return control_socket_path(resolve_data_dir(args, io))


def run_ctl(args: argparse.Namespace, io: Io) -> int:
    """Send the subcommand's request and print the reply.

    Returns:
        The exit code (see the module docstring).
    """
    try:
        path = resolve_socket(args, io)
    except ConfigError as exc:
        return report_config_error(exc, exc.source or "config", io.err)
    build: RequestBuilder = args.ctl_build
    timeout: float = getattr(args, "timeout", DEFAULT_CALL_TIMEOUT)
    try:
        reply = trio.run(functools.partial(control_call, path, build(args), timeout=timeout))
    except ControlError as exc:
        io.err.write(f"error: {exc}\n")
        return EXIT_FAILURE
    code = exit_code(reply)
    if getattr(args, "json", False):
        io.out.write(msgspec.json.format(msgspec.json.encode(reply), indent=2).decode() + "\n")
    else:
        (io.out if code == EXIT_OK else io.err).write(
            "".join(f"{line}\n" for line in render(reply))
        )
    return code


def exit_code(reply: ControlReply) -> int:
    """0 for a reply that reports success, 1 for an error, a rejected reload or a refusal."""
    failed = (
        isinstance(reply, ErrorReply)
        or (isinstance(reply, ReloadReply) and not reply.ok)
        or (isinstance(reply, DecisionReply) and not reply.ok)
    )
    return EXIT_FAILURE if failed else EXIT_OK


# ---------------------------------------------------------------------------- rendering


def render(reply: ControlReply) -> list[str]:
    """The lines a person reads for a reply (tables aligned, control characters escaped)."""
    match reply:
        case StatusReply():
            return _status(reply)
        case SessionsReply(sessions=sessions):
            if not sessions:
                return ["no sessions"]
            return _table(
                ("SESSION", "SUB", "USER", "EXPIRES", "TIP", "BINDINGS"),
                [
                    (
                        row.session_key,
                        row.sub,
                        row.email or row.name or "-",
                        _duration(row.expires_in) + (" (renewable)" if row.renewable else ""),
                        "-" if row.tip_expires_in is None else _duration(row.tip_expires_in),
                        ", ".join(f"{p}={v}" for p, v in sorted(row.bindings.items())) or "-",
                    )
                    for row in sessions
                ],
            )
        case RevokeReply():
            return [_revoked(reply)]
        case FlushTipsReply(dropped=dropped):
            return [f"dropped {_count(dropped, 'cached TIP')}"]
        case ReloadReply(ok=ok, message=message, problems=problems):
            return [message if ok else f"reload rejected: {message}", *(f"  {p}" for p in problems)]
        case ApprovalsReply(approvals=approvals):
            return _approvals(approvals) if approvals else ["no pending approvals"]
        case DecisionReply(message=message):
            return [message]
        case ShutdownReply(message=message):
            return [f"agent-identity: {message}"]
        case ErrorReply(code=code, message=message):
            return [f"error: {message} ({code})"]


def _status(reply: StatusReply) -> list[str]:
    tips = reply.tips
    lines = [
        f"agent-identity {reply.version} (pid {reply.pid}), up {_duration(reply.uptime)}",
        f"sessions: {reply.sessions} ({reply.bound_sessions} with bindings), "
        f"pending logins: {reply.pending_logins}, credentials: {reply.credentials}",
        f"TIP cache: {tips.cached} cached, {tips.scheduled} scheduled, "
        f"{tips.in_flight} minting, {tips.linked} subagent links",
        f"TIP counters: {tips.hits} hits, {tips.misses} misses, {tips.mints} mints, "
        f"{tips.refreshes} refreshes, {tips.failures} failures, {tips.logged_out} logged out, "
        f"{tips.held_back} held back, {tips.renewals} renewals",
        "",
    ]
    lines += _table(
        ("ACTOR", "RUNNING", "MAILBOX", "PEAK", "HANDLED", "RESTARTS"),
        [
            (
                a.name,
                _yes(a.running),
                f"{a.mailbox_depth}/{a.mailbox_size}",
                str(a.peak_depth),
                str(a.handled),
                str(a.restarts),
            )
            for a in reply.actors
        ],
    )
    lines.append("")
    lines += _table(
        ("SUPERVISOR", "STRATEGY", "RUNNING", "CHILDREN", "RESTARTS", "INTENSITY"),
        [
            (
                s.name,
                s.strategy,
                _yes(s.running),
                str(s.children),
                str(s.restarts),
                f"{s.max_restarts} in {s.period:g}s",
            )
            for s in reply.supervisors
        ],
    )
    lines.append("")
    lines += _approvals(reply.approvals) if reply.approvals else ["no pending approvals"]
    return lines


def _approvals(approvals: Sequence[ApprovalRow]) -> list[str]:
    return _table(
        ("ID", "SESSION", "TOOL", "RISK", "STATUS", "EXPIRES", "WHAT"),
        [
            (
                a.id,
                a.session_key,
                a.tool_name,
                a.risk,
                a.status,
                _duration(a.expires_in),
                _clip(a.summary or a.reason),
            )
            for a in approvals
        ],
    )


def _revoked(reply: RevokeReply) -> str:
    if not (
        reply.session_removed
        or reply.tip_dropped
        or reply.credentials_dropped
        or reply.bindings_removed
        or reply.approvals_cancelled
    ):
        return f"nothing to revoke for {_safe(reply.session_key)}"
    return (
        f"revoked {_safe(reply.session_key)}: "
        f"session {'removed' if reply.session_removed else 'absent'}, "
        f"TIP {'dropped' if reply.tip_dropped else 'absent'}, "
        f"{_count(reply.credentials_dropped, 'credential')}, "
        f"{_count(reply.bindings_removed, 'binding')}, "
        f"{_count(reply.approvals_cancelled, 'approval')} cancelled"
    )


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    cells = [list(headers), *([_safe(cell) for cell in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]


def _safe(text: str) -> str:
    # Session keys, reasons and summaries come from chats and models: never let them drive
    # the operator's terminal (escape sequences) or break a table row.
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


_UNITS = (("d", 86400, "h", 3600), ("h", 3600, "m", 60), ("m", 60, "s", 1))


def _duration(seconds: float) -> str:
    """``expired``, ``42s``, ``5m 02s``, ``3h 05m`` or ``2d 03h``."""
    if seconds <= 0:
        return "expired"
    whole = int(seconds)
    for unit, size, sub, sub_size in _UNITS:
        if whole >= size:
            return f"{whole // size}{unit} {(whole % size) // sub_size:02d}{sub}"
    return f"{whole}s"
