"""``agent-identity dev``: the sandbox and the whole system against it, on loopback.

Like ``vault server -dev``: nothing outside the machine is needed. ``dev`` starts the
embedded sandbox (control plane, STS, the seeded user pool, demo OAuth2, API-key and role
providers, Cedar policies) on an ephemeral loopback port, writes the matching
``openclaw.json`` into ``--data-dir`` (or a temporary folder, removed at exit), and runs
``serve`` on it with the local identity server and risk approvals on. After the server's
banner it prints a short guide: the login URL of the main session, the seeded user's name and
password, and commands to paste. ``--demo`` runs the scripted walkthrough of
:mod:`agent_identity.cli.demo` instead and stops.

Exit codes are ``serve``'s: 0 after a graceful stop (or a demo whose every step held), 1 when
the stack cannot start or a demo step failed, 2 for a bad command line or a seed that cannot
be used.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO

import trio

from agent_identity.cli.app import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_OK,
    Io,
    Subparsers,
    add_command,
    report_config_error,
)
from agent_identity.cli.serve import add_server_options, serve_loaded
from agent_identity.config import ConfigError, load_config
from agent_identity.host.session_keys import MAIN_SESSION_KEY
from agent_identity.kernel import ActorStopped
from agent_identity.oidc import OidcError

if TYPE_CHECKING:
    from agent_identity.cli.demo import DemoAccount
    from agent_identity.sandbox import Sandbox, Seed
    from agent_identity.system.serve import ServerInfo

__all__ = [
    "DevStack",
    "SandboxThread",
    "build_stack",
    "guide_lines",
    "register",
    "run_dev",
    "stack_lines",
    "start_main_login",
]

CONFIG_NAME: Final = "openclaw.json"
#: What ``dev`` turns on beyond the sandbox's addresses, so the guide and the demo can show it.
DEV_OVERRIDES: Final = {"localServer": True, "authz": {"requireRiskApproval": True}}
_PROG: Final = "agent-identity"


@dataclass(frozen=True, slots=True)
class DevStack:
    """What the sandbox thread hands back: plain values, safe to read from any thread.

    Attributes:
        sandbox_url: The sandbox's base URL.
        config: The ``openclaw.json`` document pointing at it.
        account: The seeded user a person (or the demo) logs in as.
        providers: The credential providers the seed offers, by name.
    """

    sandbox_url: str
    config: dict[str, Any]
    account: DemoAccount
    providers: tuple[str, ...]


class SandboxThread:
    """The sandbox on a thread of its own, with its own Trio loop.

    Why a thread: :func:`~agent_identity.cli.serve.serve_loaded` owns the main thread's
    ``trio.run`` (and the signal handling that makes SIGTERM graceful), while the config it
    loads must already name the sandbox's port. ``build`` runs in the sandbox's thread, since
    the sandbox's state is only ever touched from there.

    Args:
        seed: The validated seed.
        build: Turns the running sandbox into the :class:`DevStack` (may raise).
    """

    def __init__(self, seed: Seed, build: Callable[[Sandbox], DevStack]) -> None:
        self._seed = seed
        self._build = build
        self._ready = threading.Event()
        self._stack: DevStack | None = None
        self._failure: Exception | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        # Daemon: a Ctrl-C while the sandbox starts must not leave the process hanging.
        self._thread = threading.Thread(target=self._main, name="dev-sandbox", daemon=True)

    def start(self) -> DevStack:
        """Start the sandbox and wait until it serves.

        Raises:
            OSError: The loopback address cannot be bound.
            LookupError: The seed lacks what ``dev`` needs (the dev user pool, its client, a user).
        """
        self._thread.start()
        self._ready.wait()
        if self._failure is not None:
            self._thread.join()
            raise self._failure
        assert self._stack is not None  # noqa: S101 - set before ready unless it failed
        return self._stack

    def stop(self) -> None:
        """Stop the sandbox (graceful, bounded by its own grace period) and join the thread."""
        if self._token is not None and self._stop is not None:
            # RunFinishedError: it already stopped on its own.
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self._thread.join()

    def _main(self) -> None:
        try:
            trio.run(self._serve)
        except Exception as exc:  # noqa: BLE001 - handed over to the thread that started it
            self._failure = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        from agent_identity.sandbox import open_sandbox  # noqa: PLC0415 - imported when dev runs

        async with open_sandbox(self._seed) as sb:
            self._stack = self._build(sb)
            self._stop = trio.Event()
            self._token = trio.lowlevel.current_trio_token()
            self._ready.set()
            await self._stop.wait()


def register(subparsers: Subparsers) -> None:
    """Add ``dev``."""
    parser = add_command(
        subparsers,
        "dev",
        help_text="run the sandbox and the identity server against it (no cloud needed)",
        description="Start the embedded sandbox on loopback, write a matching config and serve "
        "it; print the login URL, the seeded user and commands to try. --demo runs a scripted "
        "walkthrough instead and exits 0 only if every step held.",
        handler=run_dev,
    )
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        type=Path,
        help="keep the config, sessions and sockets here (default: a temporary folder, "
        "removed at exit); sessions of an earlier run show as logged out, since each run "
        "starts a new sandbox",
    )
    parser.add_argument(
        "--seed",
        metavar="FILE",
        type=Path,
        help="a sandbox seed JSON file (default: the seed shipped in the package)",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="run a scripted walkthrough against the stack, print its transcript and stop",
    )
    add_server_options(parser)


def _free_loopback_port() -> int:
    # The callback URL must be registered with the provider before the server binds it, so
    # the port is chosen first; the kernel does not hand the same ephemeral port out at once.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def build_stack(sb: Sandbox, *, folder: Path) -> DevStack:
    """The config and the seeded user for a running sandbox (runs in the sandbox's thread).

    Args:
        sb: The running sandbox (its client learns the callback URL chosen here).
        folder: The data folder the config names.

    Returns:
        The stack's plain description.

    Raises:
        LookupError: The seed has no dev user pool, no gateway client in it, or no user.
    """
    from agent_identity.cli.demo import DemoAccount  # noqa: PLC0415 - imported when dev runs
    from agent_identity.sandbox.devconfig import (  # noqa: PLC0415
        DEV_USER,
        DEV_USER_POOL,
        dev_openclaw_json,
    )

    callback_url = f"http://127.0.0.1:{_free_loopback_port()}/identity/oauth/callback"
    config = dev_openclaw_json(
        sb, callback_url=callback_url, data_dir=folder, overrides=DEV_OVERRIDES
    )
    pool = sb.state.user_pool(DEV_USER_POOL)
    users = pool.users if pool is not None else {}
    if not users:
        msg = f"user pool {DEV_USER_POOL!r} has no users to log in as"
        raise LookupError(msg)
    user = users.get(DEV_USER) or next(iter(users.values()))
    providers = sorted({name for _, name in sb.state.providers} | set(sb.state.role_providers))
    return DevStack(
        sandbox_url=sb.base_url,
        config=config,
        account=DemoAccount(name=user.username, password=user.password, subject=user.sub),
        providers=tuple(providers),
    )


def _prepare_folder(data_dir: Path | None) -> tuple[Path, bool]:
    if data_dir is None:
        return Path(tempfile.mkdtemp(prefix="agent-identity-dev-")), True
    folder = data_dir.expanduser().resolve()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder, False


def _write_config(path: Path, document: dict[str, Any]) -> None:
    # 0600 from the start: the file holds the sandbox's keys and client secret.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump(document, file, indent=2)
        file.write("\n")


def stack_lines(info: ServerInfo, stack: DevStack) -> list[str]:
    """The sandbox and config lines, aligned with the server's banner."""
    return [
        f"  sandbox  {stack.sandbox_url} (providers: {', '.join(stack.providers) or 'none'})",
        f"  config   {info.data_dir / CONFIG_NAME}",
    ]


def guide_lines(info: ServerInfo, stack: DevStack, login_url: str | None) -> list[str]:
    """The guide printed under the banner.

    Args:
        info: Where the server listens.
        stack: The sandbox and its seeded user.
        login_url: The main session's login URL (None when none could be made).

    Returns:
        The lines: the stack, the login URL with the user's name and password, and commands
        to paste (paths shell-quoted).
    """
    q = shlex.quote
    account = stack.account
    lines = [
        *stack_lines(info, stack),
        "",
        f"Log in ({MAIN_SESSION_KEY}): open this URL in a browser; it is valid for 5 minutes",
        "and `/identity login` makes a new one (see the bridge command below):",
        f"  {login_url}" if login_url else "  (no login URL: see the log above)",
        f"  user {account.name}, password {account.password}",
        "",
        "Then try:",
    ]
    if info.identity_socket is not None:
        lines.append(f"  curl --unix-socket {q(str(info.identity_socket))} http://localhost/token")
    lines += [
        f"  {_PROG} ctl status --data-dir {q(str(info.data_dir))}",
        f"  curl --unix-socket {q(str(info.bridge_socket))} -d "
        + q(json.dumps({"commandBody": "/identity login", "sessionKey": MAIN_SESSION_KEY}))
        + " http://localhost/command",
        "Stop with Ctrl-C.",
    ]
    return lines


async def start_main_login(info: ServerInfo, err: TextIO) -> str | None:
    """Start a login for the main session; the URL to open, or None (the reason goes to ``err``).

    Args:
        info: The running server.
        err: Where a failure is reported.

    Returns:
        The provider's authorize URL, valid for 5 minutes; None without a user pool or when
        the provider cannot be reached.
    """
    flow = info.identity.login_flow
    if flow is None:
        await trio.lowlevel.checkpoint()
        return None
    try:
        return await flow.start_login(MAIN_SESSION_KEY)
    except (OidcError, ActorStopped) as exc:
        err.write(f"warning: no login URL: {exc}\n")
    await trio.lowlevel.checkpoint()  # start_login may fail before its first checkpoint
    return None


def _write(out: TextIO, lines: list[str]) -> None:
    out.writelines(line + "\n" for line in lines)
    out.flush()


def run_dev(args: argparse.Namespace, io: Io) -> int:
    """Run the sandbox and the server until stopped (or through the demo).

    Args:
        args: ``--data-dir``, ``--seed``, ``--demo`` and the server options.
        io: Where the banner, the guide (or transcript) and errors go.

    Returns:
        The exit code (see the module docstring).
    """
    # The sandbox and the demo are imported only when ``dev`` runs: every other command (above
    # all ``serve``, whose cold start counts) builds the same parser without paying for them.
    from agent_identity.sandbox import SeedError, load_seed  # noqa: PLC0415

    try:
        seed = load_seed(args.seed)
    except SeedError as exc:
        io.err.write(f"error: {exc}\n")
        return EXIT_CONFIG
    try:
        folder, temporary = _prepare_folder(args.data_dir)
    except OSError as exc:
        io.err.write(f"error: cannot create the data folder: {exc.strerror or exc}\n")
        return EXIT_FAILURE
    try:
        return _run_in(folder, seed, args, io)
    finally:
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)


def _run_in(folder: Path, seed: Seed, args: argparse.Namespace, io: Io) -> int:
    sandbox = SandboxThread(seed, partial(build_stack, folder=folder))
    try:
        stack = sandbox.start()
    except LookupError as exc:
        io.err.write(f"error: the seed cannot be used by {_PROG} dev: {exc}\n")
        return EXIT_CONFIG
    except OSError as exc:
        io.err.write(f"error: the sandbox cannot start: {exc.strerror or exc}\n")
        return EXIT_FAILURE
    try:
        path = folder / CONFIG_NAME
        try:
            _write_config(path, stack.config)
            loaded = load_config(path)
        except OSError as exc:
            io.err.write(f"error: cannot write {path}: {exc.strerror or exc}\n")
            return EXIT_FAILURE
        except ConfigError as exc:
            return report_config_error(exc, path, io.err)
        held: list[bool] = []

        async def on_ready(info: ServerInfo) -> None:
            if not args.demo:
                _write(io.out, guide_lines(info, stack, await start_main_login(info, io.err)))
                return
            _write(io.out, stack_lines(info, stack))
            try:
                from agent_identity.cli.demo import run_walkthrough  # noqa: PLC0415

                held.append(await run_walkthrough(info, stack.account, io.out))
            finally:
                info.stop()  # the demo is over either way: a graceful stop, like SIGTERM

        code = serve_loaded(loaded, args, io, on_ready=on_ready)
    finally:
        sandbox.stop()
    if args.demo and code == EXIT_OK and held != [True]:
        return EXIT_FAILURE
    return code
