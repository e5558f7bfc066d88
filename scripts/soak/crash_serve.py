#!/usr/bin/env python3
"""Crash soak of ``agent-identity serve``: SIGKILL it at random moments, restart, check the store.

Usage::

    python scripts/soak/crash_serve.py            # full: 500 kills
    python scripts/soak/crash_serve.py --quick    # CI: 20 kills, well under a minute

The script runs the sandbox in-process and ``agent-identity serve`` (``python -m
agent_identity.cli serve --config …``) as a subprocess on one data folder. While the server
runs, a driver keeps changing state over the gateway bridge (``gateway.sock``), several workers
at once, each on its own senders:

* logins: ``POST /gateway/identity.session.put`` with a real id token of the sandbox's pool;
* logouts: ``POST /command`` with ``/identity logout``;
* binding changes: ``/identity set <provider> <VAR>`` (importing ``VAR`` from the server's
  environment) and ``/identity unset <provider>``.

The driver keeps a model of what was *acknowledged*: a change whose successful answer arrived
(the server answers once the change is durable). An operation that had no answer when the
process died, or that failed, leaves its fields unknown until a later acknowledged operation
settles them. After a random number of acknowledged operations (plus a random sub-write delay),
or at a random moment during start-up for one kill in ten, the server gets SIGKILL. Then:

1. the data folder as the dead process left it is copied aside and loaded with
   :class:`~agent_identity.storage.FileBackend`: it must decrypt (nothing kept aside as
   unreadable) and hold every acknowledged session and binding and none that an acknowledged
   logout or unset removed;
2. the server is started again on the same folder; once it accepts, no temp file may be left
   (a restart removes those of interrupted writes), ``ctl sessions`` over the control socket
   must list exactly the acknowledged state, and ``identity.session.get`` over the bridge must
   agree for a sample of senders.

At the end the server is stopped with SIGTERM (exit code 0, no temp file left). Output: one
JSON line ``{"kills", "acknowledged", "lost", "temp_files", "decrypt_failures", "seconds", …}``:
``lost`` counts acknowledged facts found missing or undone (on disk or after a restart),
``temp_files`` temp files found after a restart or after the final stop, ``decrypt_failures``
stores that did not decrypt or were kept aside. Exit status: 0 when those three are 0 and every
restart worked, else 1 (the server's log tail goes to stderr).
"""

from __future__ import annotations

import argparse
import enum
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import httpx
import trio

from agent_identity.sandbox import Sandbox, open_sandbox
from agent_identity.sandbox.devconfig import DEV_USER_POOL, dev_openclaw_json
from agent_identity.storage import FileBackend, Snapshot
from agent_identity.transports.control import control_call
from agent_identity.transports.control_wire import SessionsReply, SessionsRequest

FULL_KILLS = 500
QUICK_KILLS = 20
WORKERS = 6
SENDERS_PER_WORKER = 16
#: Share of kills that land during start-up instead of under load.
STARTUP_KILL_SHARE = 0.1
#: A kill comes after up to this many acknowledged operations of one incarnation.
MAX_ACKS_BEFORE_KILL = 60
#: The sender sample checked over the bridge after each restart.
BRIDGE_SAMPLE = 8
START_TIMEOUT = 30.0
REQUEST_TIMEOUT = 20.0
STOP_TIMEOUT = 30.0
MAIN_KEY: Final = "agent:main:main"
WEBCHAT_CLIENT: Final = {"connect": {"client": {"mode": "webchat"}}}
#: provider → the env vars a binding may name (the server's environment holds them).
PROVIDERS: Final = {"openai": ("CRASH_OPENAI_KEY", "CRASH_OPENAI_ALT"), "github": ("CRASH_GH",)}
TEMP_SUFFIX: Final = ".tmp"
TOKEN_TTL = 4 * 3600


class Unknown(enum.Enum):
    """A fact an unanswered (or failed) operation may or may not have changed."""

    UNKNOWN = "unknown"


UNKNOWN: Final = Unknown.UNKNOWN


@dataclass
class Sender:
    """One sender (one effective session key) and what was acknowledged for it."""

    name: str
    sub: str
    #: Whether a session is stored.
    session: bool | Unknown = False
    #: provider → bound env var (None: no binding).
    bindings: dict[str, str | Unknown | None] = field(
        default_factory=lambda: dict.fromkeys(PROVIDERS)
    )

    @property
    def key(self) -> str:
        """The effective session key the server stores it under (WebChat, own sender)."""
        return f"{MAIN_KEY}:user:{self.name}"

    def facts(self) -> Iterator[tuple[str, object]]:
        """The acknowledged facts: (what, expected value), skipping unknown ones."""
        if self.session is not UNKNOWN:
            yield "session", self.session
        for provider, var in self.bindings.items():
            if var is not UNKNOWN:
                yield f"binding {provider}", var


@dataclass
class Figures:
    """What the run measured."""

    kills: int = 0
    startup_kills: int = 0
    mid_write_kills: int = 0
    acknowledged: int = 0
    unanswered: int = 0
    failed_answers: int = 0
    lost_on_disk: int = 0
    lost_after_restart: int = 0
    temp_files: int = 0
    decrypt_failures: int = 0
    restarts: int = 0
    restart_seconds_max: float = 0.0
    final_exit_code: int | None = None
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        """Keep the first problems for the report."""
        if len(self.problems) < 10:
            self.problems.append(text)


@dataclass(frozen=True)
class Paths:
    """Where everything lives."""

    root: Path
    config: Path
    log: Path

    @property
    def data(self) -> Path:
        """The server's data folder."""
        return self.root / "data"

    @property
    def bridge(self) -> Path:
        """The gateway bridge socket."""
        return self.data / "gateway.sock"

    @property
    def control(self) -> Path:
        """The control socket."""
        return self.data / "control.sock"


def temp_files(folder: Path) -> list[str]:
    """Names of the store's temp files in ``folder`` (none before the server created it)."""
    return sorted(p.name for p in listing(folder) if p.name.endswith(TEMP_SUFFIX))


def listing(folder: Path) -> list[Path]:
    """The entries of ``folder``; none when a kill came before the server created it."""
    return list(folder.iterdir()) if folder.is_dir() else []


class Server:
    """One incarnation of ``agent-identity serve``."""

    def __init__(self, process: trio.Process, started: float) -> None:
        self.process = process
        self.started = started

    @classmethod
    async def spawn(cls, paths: Paths, env: Mapping[str, str]) -> Server:
        """Start the server (not waiting for it to accept)."""
        command = [sys.executable, "-m", "agent_identity.cli", "serve"]
        command += ["--config", str(paths.config), "--log-level", "warning"]
        with paths.log.open("ab") as log:
            # stderr (the log) goes to a file: a pipe nobody drains would block the server.
            process = await trio.lowlevel.open_process(
                command, stdout=subprocess.PIPE, stderr=log, env=dict(env)
            )
        return cls(process, time.monotonic())

    async def ready(self) -> bool:
        """Wait for the banner's last line; False when the process ended first."""
        stdout = self.process.stdout
        if stdout is None:
            raise RuntimeError("the server was started without a stdout pipe")
        seen = b""
        with trio.fail_after(START_TIMEOUT):
            while b"control " not in seen:
                chunk = await stdout.receive_some()
                if not chunk:
                    return False
                seen += chunk
        return True

    async def kill(self) -> int:
        """SIGKILL and reap; the exit status (minus the signal number)."""
        self.process.kill()
        return await self.process.wait()


class Driver:
    """Workers that change state over the bridge and keep the acknowledged model."""

    def __init__(self, sb: Sandbox, senders: list[Sender], rng: random.Random) -> None:
        self.sb = sb
        self.senders = senders
        self.rng = rng
        self.figures = Figures()
        self.acks_this_run = 0
        self.ack_target = 0
        self.target_reached = trio.Event()

    def arm(self, target: int) -> None:
        """Set the number of acknowledgements after which the kill is due."""
        self.acks_this_run = 0
        self.ack_target = target
        self.target_reached = trio.Event()
        if target <= 0:
            self.target_reached.set()

    def acknowledged(self) -> None:
        """Count one acknowledged operation."""
        self.figures.acknowledged += 1
        self.acks_this_run += 1
        if self.acks_this_run >= self.ack_target:
            self.target_reached.set()

    async def worker(self, client: httpx.AsyncClient, mine: list[Sender]) -> None:
        """Change the state of this worker's senders until cancelled."""
        while True:
            sender = self.rng.choice(mine)
            await self.step(client, sender)

    async def step(self, client: httpx.AsyncClient, sender: Sender) -> None:
        """One operation, chosen from what is known of the sender."""
        if sender.session is not True:
            await self.run(client, sender, "login", self.login)
            return
        roll = self.rng.random()
        provider = self.rng.choice(sorted(PROVIDERS))
        if roll < 0.45:
            var = self.rng.choice(PROVIDERS[provider])
            await self.run(client, sender, f"set {provider} {var}", self.bind, provider, var)
        elif roll < 0.75:
            await self.run(client, sender, f"unset {provider}", self.unbind, provider)
        elif roll < 0.92:
            await self.run(client, sender, "logout", self.logout)
        else:
            await self.run(client, sender, "login", self.login)

    async def run(
        self,
        client: httpx.AsyncClient,
        sender: Sender,
        what: str,
        op: Callable[..., Awaitable[bool]],
        *args: str,
    ) -> None:
        """Run ``op``; its fields become unknown unless it is acknowledged."""
        acknowledged = False
        try:
            acknowledged = await op(client, sender, *args)
        except (httpx.HTTPError, OSError):
            self.figures.unanswered += 1  # the server died (or is dying) under it
        finally:
            if not acknowledged:
                self.forget(sender, what)
        if acknowledged:
            self.acknowledged()

    @staticmethod
    def forget(sender: Sender, what: str) -> None:
        """An operation without a known outcome: what it touches becomes unknown."""
        verb, _, rest = what.partition(" ")
        if verb == "login":
            sender.session = UNKNOWN
        elif verb == "logout":
            sender.session = UNKNOWN
            sender.bindings = dict.fromkeys(PROVIDERS, UNKNOWN)
        else:
            sender.bindings[rest.split()[0]] = UNKNOWN

    async def command(self, client: httpx.AsyncClient, sender: Sender, body: str) -> bool:
        """Send one ``/identity`` command; whether it succeeded."""
        context = {"commandBody": body, "sessionKey": MAIN_KEY, "senderId": sender.name}
        context["channel"] = "webchat"
        response = await client.post("/command", json=context)
        reply = response.json() if response.status_code == 200 else {}
        if response.status_code != 200 or reply.get("isError"):
            self.figures.failed_answers += 1
            self.figures.problem(f"{body} for {sender.name}: {response.status_code} {reply}")
            return False
        return True

    async def login(self, client: httpx.AsyncClient, sender: Sender) -> bool:
        """``identity.session.put`` with a fresh id token of the sender's user."""
        token = self.sb.issue_user_token(DEV_USER_POOL, sender.sub, ttl=TOKEN_TTL)
        params = {"sessionKey": MAIN_KEY, "idToken": token, "senderId": sender.name}
        body = {"params": params, "client": WEBCHAT_CLIENT}
        response = await client.post("/gateway/identity.session.put", json=body)
        answer = response.json() if response.status_code == 200 else {}
        if not answer.get("ok") or answer["payload"]["effectiveSessionKey"] != sender.key:
            self.figures.failed_answers += 1
            self.figures.problem(f"login of {sender.name}: {response.status_code} {answer}")
            return False
        sender.session = True  # a re-login of the same user keeps the bindings
        return True

    async def logout(self, client: httpx.AsyncClient, sender: Sender) -> bool:
        """``/identity logout``: the session and its bindings go."""
        if not await self.command(client, sender, "/identity logout"):
            return False
        sender.session = False
        sender.bindings = dict.fromkeys(PROVIDERS)
        return True

    async def bind(
        self, client: httpx.AsyncClient, sender: Sender, provider: str, var: str
    ) -> bool:
        """``/identity set``."""
        if not await self.command(client, sender, f"/identity set {provider} {var}"):
            return False
        sender.bindings[provider] = var
        return True

    async def unbind(self, client: httpx.AsyncClient, sender: Sender, provider: str) -> bool:
        """``/identity unset``."""
        if not await self.command(client, sender, f"/identity unset {provider}"):
            return False
        sender.bindings[provider] = None
        return True


# ---------------------------------------------------------------------------- checks


def compare(
    senders: list[Sender], sessions: set[str], bindings: Mapping[str, Mapping[str, str]]
) -> list[str]:
    """Acknowledged facts that the observed state contradicts."""
    lost = []
    for sender in senders:
        for what, expected in sender.facts():
            if what == "session":
                observed: object = sender.key in sessions
            else:
                observed = bindings.get(sender.key, {}).get(what.split()[1])
            if observed != expected:
                lost.append(f"{sender.name}: {what} is {observed!r}, acknowledged {expected!r}")
    return lost


def copy_folder(data: Path, scratch: Path) -> None:
    """Copy every regular file of ``data`` into a fresh ``scratch`` folder (blocking).

    Every file, whatever the backend keeps (snapshot, journal, bindings, key, and the temp
    files of cut-short writes), so the check follows the storage format.
    """
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(mode=0o700)
    for path in listing(data):
        if path.is_file():
            shutil.copy2(path, scratch / path.name)


async def load_copy(data: Path, scratch: Path) -> Snapshot:
    """Load a copy of the store's files as the dead process left them (read-only for it).

    Raises:
        RuntimeError: A file was unreadable and kept aside.
    """
    await trio.to_thread.run_sync(copy_folder, data, scratch)
    backend = FileBackend(scratch)
    snapshot = await backend.load()
    if backend.statistics().kept_aside:
        raise RuntimeError("a store file did not decrypt or parse and was kept aside")
    return snapshot


async def check_disk(driver: Driver, paths: Paths) -> None:
    """The dead server's files decrypt and hold every acknowledged fact."""
    figures = driver.figures
    corrupt = [p.name for p in listing(paths.data) if ".corrupt-" in p.name]
    if corrupt:
        figures.decrypt_failures += 1
        figures.problem(f"files kept aside: {corrupt}")
    try:
        snapshot = await load_copy(paths.data, paths.root / "scratch")
    except Exception as exc:  # noqa: BLE001 - whatever fails here is the finding
        figures.decrypt_failures += 1
        figures.problem(f"the store does not load after kill {figures.kills}: {exc!r}")
        return
    bindings = {key: dict(value) for key, value in snapshot.bindings.items()}
    lost = compare(driver.senders, set(snapshot.sessions), bindings)
    figures.lost_on_disk += len(lost)
    for line in lost[:3]:
        figures.problem(f"on disk after kill {figures.kills}: {line}")


async def check_server(driver: Driver, paths: Paths, client: httpx.AsyncClient) -> None:
    """A restarted server cleaned up and serves exactly the acknowledged state."""
    figures = driver.figures
    left = temp_files(paths.data)
    if left:
        figures.temp_files += len(left)
        figures.problem(f"temp files after restart {figures.restarts}: {left}")
    reply = await control_call(paths.control, SessionsRequest(), timeout=REQUEST_TIMEOUT)
    if not isinstance(reply, SessionsReply):
        figures.lost_after_restart += 1
        figures.problem(f"ctl sessions answered {reply!r}")
        return
    rows = {row.session_key: row.bindings for row in reply.sessions}
    lost = compare(driver.senders, set(rows), rows)
    sample = driver.rng.sample(driver.senders, min(BRIDGE_SAMPLE, len(driver.senders)))
    for sender in sample:
        if sender.session is UNKNOWN:
            continue
        params = {"sessionKey": MAIN_KEY, "senderId": sender.name}
        body = {"params": params, "client": WEBCHAT_CLIENT}
        answer = (await client.post("/gateway/identity.session.get", json=body)).json()
        if bool(answer.get("ok")) != sender.session:
            lost.append(f"{sender.name}: session.get answered {answer.get('ok')}")
    figures.lost_after_restart += len(lost)
    for line in lost[:3]:
        figures.problem(f"after restart {figures.restarts}: {line}")


# ---------------------------------------------------------------------------- the run


def bridge_client(paths: Paths) -> httpx.AsyncClient:
    """A client of the bridge socket (a new one per incarnation)."""
    transport = httpx.AsyncHTTPTransport(uds=str(paths.bridge))
    return httpx.AsyncClient(transport=transport, base_url="http://serve", timeout=REQUEST_TIMEOUT)


async def one_incarnation(driver: Driver, paths: Paths, env: Mapping[str, str]) -> bool:
    """Start the server, check it, load it, kill it; False when it failed to start."""
    figures, rng = driver.figures, driver.rng
    server = await Server.spawn(paths, env)
    if rng.random() < STARTUP_KILL_SHARE:
        # A random moment of the start-up: loading, temp-file cleanup, binding sockets.
        await trio.sleep(rng.uniform(0.0, 1.0))
        figures.startup_kills += 1
    else:
        if not await server.ready():
            figures.problem(f"the server exited during start-up: {await server.process.wait()}")
            return False
        figures.restarts += 1
        elapsed = time.monotonic() - server.started
        figures.restart_seconds_max = max(figures.restart_seconds_max, elapsed)
        async with bridge_client(paths) as client:
            await check_server(driver, paths, client)
            driver.arm(rng.randint(0, MAX_ACKS_BEFORE_KILL))
            async with trio.open_nursery() as nursery:
                for n in range(WORKERS):
                    mine = driver.senders[n * SENDERS_PER_WORKER : (n + 1) * SENDERS_PER_WORKER]
                    nursery.start_soon(driver.worker, client, mine)
                await driver.target_reached.wait()
                # Land anywhere inside the writes now in flight, not just between them.
                await trio.sleep(rng.uniform(0.0, 0.02))
                await server.kill()
                # Workers see their requests fail (unanswered: unknown), then stop.
                nursery.cancel_scope.cancel()
    if server.process.returncode is None:
        await server.kill()
    figures.kills += 1
    figures.mid_write_kills += bool(temp_files(paths.data))
    await check_disk(driver, paths)
    return True


async def final_stop(driver: Driver, paths: Paths, env: Mapping[str, str]) -> bool:
    """Start once more, check, stop gracefully; the folder must be clean."""
    figures = driver.figures
    server = await Server.spawn(paths, env)
    if not await server.ready():
        figures.problem("the server did not start for the final check")
        return False
    figures.restarts += 1
    async with bridge_client(paths) as client:
        await check_server(driver, paths, client)
    server.process.send_signal(signal.SIGTERM)
    with trio.fail_after(STOP_TIMEOUT):
        figures.final_exit_code = await server.process.wait()
    left = temp_files(paths.data)
    figures.temp_files += len(left)
    if left:
        figures.problem(f"temp files after the final stop: {left}")
    await check_disk(driver, paths)
    return figures.final_exit_code == 0


def free_port() -> int:
    """A loopback port nobody listens on right now (for the unused callback route)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def write_config(sb: Sandbox, paths: Paths) -> None:
    """The server's ``openclaw.json``: the sandbox, WebChat session exchange, the data folder."""
    callback = f"http://127.0.0.1:{free_port()}/identity/oauth/callback"
    overrides = {"identity": {"webchatSessionExchange": True}}
    document = dev_openclaw_json(
        sb, callback_url=callback, data_dir=paths.data, overrides=overrides
    )
    paths.config.write_text(json.dumps(document))


async def soak(kills: int, seed: int, root: Path) -> tuple[Figures, bool]:
    """Run the soak in ``root``; the figures and whether every start and stop worked."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible workload, not secrets
    paths = Paths(root=root, config=root / "openclaw.json", log=root / "serve.log")
    senders = [
        Sender(name=f"crash-{i:03d}", sub=f"crash-user-{i:03d}")
        for i in range(WORKERS * SENDERS_PER_WORKER)
    ]
    env = dict(os.environ)
    env.update({var: f"value-of-{var.lower()}" for vars_ in PROVIDERS.values() for var in vars_})
    async with open_sandbox() as sb:
        write_config(sb, paths)
        driver = Driver(sb, senders, rng)
        ok = True
        for _ in range(kills):
            if not await one_incarnation(driver, paths, env):
                ok = False
                break
        ok = ok and await final_stop(driver, paths, env)
    return driver.figures, ok


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Crash soak of serve (see the module docstring).")
    parser.add_argument("--quick", action="store_true", help=f"CI mode: {QUICK_KILLS} kills")
    parser.add_argument("--kills", type=int, default=None)
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    kills = args.kills if args.kills is not None else QUICK_KILLS if args.quick else FULL_KILLS
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="crash-serve-"))
    try:
        figures, ok = trio.run(soak, kills, args.seed, root)
        log_tail = (root / "serve.log").read_text(errors="replace")[-4000:]
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    lost = figures.lost_on_disk + figures.lost_after_restart
    summary = {
        "kills": figures.kills,
        "acknowledged": figures.acknowledged,
        "lost": lost,
        "temp_files": figures.temp_files,
        "decrypt_failures": figures.decrypt_failures,
        "seconds": round(time.monotonic() - started, 2),
        "startup_kills": figures.startup_kills,
        "mid_write_kills": figures.mid_write_kills,
        "unanswered": figures.unanswered,
        "failed_answers": figures.failed_answers,
        "lost_on_disk": figures.lost_on_disk,
        "lost_after_restart": figures.lost_after_restart,
        "restarts": figures.restarts,
        "restart_seconds_max": round(figures.restart_seconds_max, 3),
        "final_exit_code": figures.final_exit_code,
        "problems": figures.problems,
    }
    print(json.dumps(summary), flush=True)
    clean = ok and lost == figures.temp_files == figures.decrypt_failures == 0
    if not clean:
        print(f"--- serve log (tail) ---\n{log_tail}", file=sys.stderr)
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
