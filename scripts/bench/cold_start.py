#!/usr/bin/env python3
"""Cold start of ``agent-identity serve``: from process start to every socket accepting.

Usage::

    python scripts/bench/cold_start.py            # full: 9 runs per case
    python scripts/bench/cold_start.py --quick    # CI: 3 runs per case
    python scripts/bench/cold_start.py --bytecode # with cached bytecode, as an installed wheel

Each run starts ``agent-identity serve --config <file>`` as a new process (the venv's console
script) with a plugin config that turns everything on: the callback HTTP server on a loopback
port, the local identity socket, the gateway bridge socket and the control socket. The clock
starts just before the process is spawned and stops once all four accept a connection
(polled every millisecond). Then the server gets SIGTERM; the graceful stop is timed too and
must exit 0. The control plane and user pool addresses point at a closed port: nothing is
contacted at start (credentials and OIDC discovery are resolved on first use).

Cases: ``empty`` (a new data folder each run, so the store key is created too) and
``sessions`` (a data folder holding ``--sessions`` sessions, 10k by default, which the store
decrypts on every start). Context line (``baseline``): how long a bare ``python -c pass``
takes, how long the CLI takes to register every subcommand (``build_parser()``, what
``--help`` loads), and how long importing only what ``serve`` needs takes
(``agent_identity.cli.serve``; ``agent-identity serve`` imports no other command): the
interpreter and the imports are most of a cold start. The OS file cache is warm after the
first run: this is a process cold start, not a machine one.

Bytecode: a wheel installed by pip comes with its modules compiled, but a source checkout
run with ``PYTHONDONTWRITEBYTECODE=1`` (or from a read-only tree) compiles every module of
the package on every start, which costs a good part of the imports. The setup line says
which applies (``package_bytecode``). ``--bytecode`` measures as an installed wheel would
run: the commands run with a bytecode cache in a temporary folder
(``PYTHONPYCACHEPREFIX``), filled by one untimed run first.

Output: a setup line, a ``baseline`` line, one ``case`` line per case (median, min and max
of the runs; the server's own ``ready in`` figure; target ``<= 0.5 s``). Exit status 1 if a
server does not become ready or does not stop cleanly.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio
from _common import emit, emit_setup, median, parse_args, progress, session_record

import agent_identity
from agent_identity.storage import FileBackend, Snapshot

TARGET_S = 0.5
FULL_RUNS = 9
QUICK_RUNS = 3
START_TIMEOUT = 30.0
SOCKETS = ("identity.sock", "gateway.sock", "control.sock")
_READY = re.compile(r"ready in ([0-9.]+) s")


class RunBrokenError(Exception):
    """The server did not start or stop as it should: the figures would be wrong."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def write_config(folder: Path, data_dir: Path, port: int) -> Path:
    closed = "http://127.0.0.1:9"  # the discard port: never contacted at start
    config = {
        "identity": {"endpoint": closed, "accessKeyId": "AKLTbench", "localServer": True,
                     "secretAccessKey": "bench-secret-access-key"},
        "userpool": {"discoveryUrl": f"{closed}/userpool/.well-known/openid-configuration",
                     "clientId": "bench-client", "clientSecret": "bench-client-secret",
                     "scope": "openid profile email",
                     "callbackUrl": f"http://127.0.0.1:{port}/identity/oauth/callback"},
        "dataDir": os.fspath(data_dir),
    }  # fmt: skip
    path = folder / f"config-{port}.json"
    path.write_text(json.dumps(config))
    return path


def serve_command() -> list[str]:
    script = Path(sys.executable).with_name("agent-identity")
    if script.exists():
        return [os.fspath(script)]
    return [sys.executable, "-m", "agent_identity.cli"]


def accepting(data_dir: Path, port: int) -> bool:
    """Whether every socket of the server accepts a connection now."""
    targets: list[tuple[int, Any]] = [(socket.AF_UNIX, os.fspath(data_dir / n)) for n in SOCKETS]
    targets.append((socket.AF_INET, ("127.0.0.1", port)))
    for family, address in targets:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(address)
            except OSError:
                return False
    return True


def package_bytecode() -> str:
    """Whether the package's modules are read from cached bytecode (``cached``) or compiled."""
    if sys.flags.dont_write_bytecode or os.environ.get("PYTHONDONTWRITEBYTECODE"):
        source = agent_identity.__file__ or ""
        cached = Path(importlib.util.cache_from_source(source))
        return "cached" if cached.exists() else "compiled on every start (no bytecode cache)"
    return "cached (written on the first start)"


def child_env(pycache: Path | None) -> dict[str, str]:
    """The environment of the timed commands (with a bytecode cache when ``pycache``)."""
    env = dict(os.environ)
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = os.fspath(pycache)
    return env


def one_run(
    config: Path, data_dir: Path, port: int, env: dict[str, str] | None = None
) -> dict[str, float]:
    started = time.perf_counter()
    proc = subprocess.Popen(
        [*serve_command(), "serve", "--config", os.fspath(config), "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        while not accepting(data_dir, port):
            if proc.poll() is not None:
                raise RunBrokenError(f"serve exited with {proc.returncode}")
            if time.perf_counter() - started > START_TIMEOUT:
                raise RunBrokenError(f"serve was not ready within {START_TIMEOUT:g} s")
            time.sleep(0.001)
        ready = time.perf_counter() - started
        stopping = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=START_TIMEOUT)
        stopped = time.perf_counter() - stopping
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise RunBrokenError(f"serve stopped with {proc.returncode}: {err.strip()[-500:]}")
    found = _READY.search(out)
    internal = float(found.group(1)) if found else float("nan")
    return {"ready_s": ready, "internal_ready_s": internal, "stop_s": stopped}


def timed(argv: Sequence[str], runs: int, env: dict[str, str] | None = None) -> float:
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env=env)
        seconds.append(time.perf_counter() - started)
    return median(seconds)


def prefill(data_dir: Path, count: int) -> None:
    """Store ``count`` sessions in ``data_dir`` (with its own store.key), as a gateway would."""
    now = time.time()
    records = (session_record(i, now) for i in range(count))
    sessions = {record.session_key: record for record in records}

    async def write() -> None:
        backend = FileBackend(data_dir, journal=True)
        await backend.load()
        await backend.save(Snapshot(sessions=sessions))

    trio.run(write)


def run(args: argparse.Namespace) -> None:
    runs = args.rounds or (QUICK_RUNS if args.quick else FULL_RUNS)
    bytecode = "cached (--bytecode)" if args.bytecode else package_bytecode()
    emit_setup("cold_start", args, runs=runs, sessions=args.sessions, command=serve_command(),
               package_bytecode=bytecode)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="cold-start-") as tmp:
        folder = Path(tmp)
        env = child_env(folder / "pycache" if args.bytecode else None)
        every_command = "from agent_identity.cli.main import build_parser; build_parser()"
        if args.bytecode:
            progress("filling the bytecode cache")
            timed([sys.executable, "-c", every_command], 1, env)
            port = free_port()
            one_run(write_config(folder, folder / "warm", port), folder / "warm", port, env)
        interpreter = timed([sys.executable, "-c", "pass"], runs, env)
        imports = timed([sys.executable, "-c", every_command], runs, env)
        serve_only = timed([sys.executable, "-c", "import agent_identity.cli.serve"], runs, env)
        emit({"bench": "cold_start", "kind": "baseline", "python_startup_s": round(interpreter, 4),
              "python_startup_and_cli_imports_s": round(imports, 4),
              "python_startup_and_serve_imports_s": round(serve_only, 4)})  # fmt: skip
        stored = folder / "stored"
        progress(f"storing {args.sessions} sessions")
        prefill(stored, args.sessions)
        for case in ("empty", "sessions"):
            results = []
            for number in range(runs):
                progress(f"{case}: run {number + 1}/{runs}")
                data_dir = folder / f"empty-{number}" if case == "empty" else stored
                port = free_port()
                config = write_config(folder, data_dir, port)
                results.append(one_run(config, data_dir, port, env))
            ready = [r["ready_s"] for r in results]
            emit({
                "bench": "cold_start", "kind": "case", "case": case, "runs": runs,
                "stored_sessions": 0 if case == "empty" else args.sessions,
                "ready_s": round(median(ready), 4), "ready_s_min": round(min(ready), 4),
                "ready_s_max": round(max(ready), 4),
                "internal_ready_s": round(median([r["internal_ready_s"] for r in results]), 4),
                "stop_s": round(median([r["stop_s"] for r in results]), 4),
                "target_s": TARGET_S, "target_met": median(ready) <= TARGET_S,
            })  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--sessions", type=int, default=10_000, help="for the 2nd case")
        parser.add_argument(
            "--bytecode",
            action="store_true",
            help="run with a bytecode cache (as an installed wheel), even if "
            "PYTHONDONTWRITEBYTECODE is set",
        )

    args = parse_args(__doc__, argv, extra=extra)
    run(args)  # a broken run raises: a traceback and exit status 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
