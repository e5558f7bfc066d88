#!/usr/bin/env python3
"""Benchmark ``GET /token`` over a Unix socket: our server against nginx and hypercorn.

Usage::

    python scripts/bench/uds_token.py            # full: 100k requests (20k for hypercorn)
    python scripts/bench/uds_token.py --quick    # CI: 2k requests per run, well under a minute

Each server runs in its own process and answers ``GET /token`` with the same ~1 KB JSON body:

* ``ours``: :func:`agent_identity.transports.uds_http.serve_uds_http`, the body a precomputed
  response found by a dict lookup (the warm TIP cache), behind the real peer gate
  (``transports.peer.PeerGate``, allowlist ``h2load``) when that module exists;
* ``nginx``: the body as a static file; one worker, ``access_log off``, ``open_file_cache``
  (no per-request ``open``), ``sendfile on``, ``keepalive_requests`` unlimited in practice,
  so it keeps connections open as long as ours does;
* ``hypercorn``: a minimal ASGI app on hypercorn's trio worker (our runtime), one worker,
  access log off, ``--bind unix:``.

All three run at once, and the load (``h2load --h1 -n N -c C`` at 1, 16 and 64 connections,
after a short warm-up) goes to each in turn, configuration by configuration, ``--rounds``
times (3 in full mode; the median by requests/s counts): on a shared machine every server
then meets the same background load. With two or more CPUs the servers are pinned to CPU 0
and h2load to CPU 1. Latency percentiles come from h2load's per-request log. (hypercorn
sends ``HTTP/1.1 200`` without a reason phrase, which h2load counts as done but not as 2xx;
that, and only that, is accepted from it.)

Output: one JSON line describing the setup, then one per server and connection count:
``{"server", "connections", "requests", "rps", "p50_ms", "p99_ms", "ratio_to_nginx"}``, plus
``ratio_to_hypercorn`` and ``peer_checks`` for ours. Progress goes to stderr.

Exit status: 1 when a run fails (a server does not start, h2load errors, a response is not
2xx). Missing targets are not failures: without nginx its rows are skipped and the ratios are
``null``; without h2load nothing can be measured, which is reported as a JSON line and exits
0 in ``--quick`` mode (CI keeps passing on machines without it) and 2 in full mode (whoever
asked for figures should not mistake silence for them).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, cast

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from agent_identity.transports.http_messages import HttpRequest, HttpResponse, json_error
from agent_identity.transports.uds_http import serve_uds_http
from agent_identity.transports.uds_socket import ConnectionGate, open_unix_listener

CONNECTIONS = (1, 16, 64)
QUICK_REQUESTS = 2000
FULL_REQUESTS = 100_000
FULL_REQUESTS_HYPERCORN = 20_000
FULL_ROUNDS = 3
START_SECONDS = 20.0
RUN_SECONDS = 600


def token_body() -> bytes:
    """The ~1 KB JSON a warm ``GET /token`` returns (the same bytes for every server)."""
    token = "eyJhbGciOiJSUzI1NiJ9." + "x" * 880 + ".sig"
    body = {"token": token, "session": "agent:main:main", "expires_at": 1893456000}
    return json.dumps(body, separators=(",", ":")).encode()


# --------------------------------------------------------------------------- servers


def serve_ours(path: str) -> None:
    gate: ConnectionGate[Any] | None = None
    try:  # lazily: the gate is another module, and the benchmark runs without it too
        from agent_identity.transports.peer import PeerGate  # noqa: PLC0415

        # Fail-closed, so a check that did not run would show up as 403s, not as speed.
        peer_gate = PeerGate(("h2load",), fail_open=False)
        checks = f"on ({peer_gate.describe()})"
        gate = peer_gate
    except Exception as exc:  # noqa: BLE001 - whatever it is, measure without and say so
        checks = f"off ({type(exc).__name__}: {exc})"
    cache = {"agent:main:main": HttpResponse(200, token_body())}
    missing = json_error(404, "no_session", "no such session")

    async def handler(request: HttpRequest) -> HttpResponse:
        if request.path != "/token":
            return json_error(404, "not_found", "no such endpoint")
        return cache.get(request.query.get("session", "agent:main:main"), missing)

    async def main() -> None:
        with open_unix_listener(path) as listener:
            print(json.dumps({"ready": True, "peer_checks": checks}), flush=True)
            await serve_uds_http(listener, handler, gate=gate)

    trio.run(main)


def serve_hypercorn(path: str) -> None:
    body = token_body()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]

    async def app(
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[dict[str, Any]]],
        send: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"]
                await send({"type": f"{kind}.complete"})
                if kind == "lifespan.shutdown":
                    return
        status = 200 if scope["path"] == "/token" else 404
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    config = Config()
    config.bind = [f"unix:{path}"]
    config.accesslog = None
    config.workers = 1
    trio.run(partial(serve, cast("Any", app), config))


def nginx_config(folder: Path, sock: Path, static: Path) -> str:
    return f"""daemon off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {folder}/body;
  proxy_temp_path {folder}/proxy;
  fastcgi_temp_path {folder}/fastcgi;
  uwsgi_temp_path {folder}/uwsgi;
  scgi_temp_path {folder}/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 60s;
  sendfile on;
  open_file_cache max=64 inactive=60s;
  open_file_cache_valid 60s;
  server {{
    listen unix:{sock};
    location = /token {{ default_type application/json; alias {static}; }}
  }}
}}
"""


# --------------------------------------------------------------------------- driving


@dataclass
class Result:
    server: str
    connections: int
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float


class RunFailedError(Exception):
    """A server or a load run did not work: the figures would be wrong."""


def pinned(cpu: int, argv: list[str]) -> list[str]:
    taskset = shutil.which("taskset")
    if taskset is None or (os.cpu_count() or 1) < 2:
        return argv
    return [taskset, "-c", str(cpu), *argv]


def wait_connectable(path: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RunFailedError(f"the server exited with status {proc.returncode}")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(os.fspath(path))
        except OSError:
            time.sleep(0.05)
        else:
            return
        finally:
            probe.close()
    raise RunFailedError("the server did not start listening in time")


def h2load(
    path: Path, requests: int, connections: int, log: Path | None, *, reason_phrase: bool = True
) -> dict[str, float]:
    argv = ["h2load", "--h1", "-n", str(requests), "-c", str(connections)]
    argv += ["-B", f"unix:{path}"]
    if log is not None:
        argv += ["--log-file", os.fspath(log)]
    argv.append("http://localhost/token")
    done = subprocess.run(
        pinned(1, argv), capture_output=True, text=True, timeout=RUN_SECONDS, check=False
    )
    out = done.stdout
    if done.returncode != 0:
        raise RunFailedError(f"h2load exited with {done.returncode}: {done.stderr.strip()[-300:]}")
    stats: dict[str, float] = {}
    for line in out.splitlines():
        words = line.replace(",", "").split()
        if line.startswith("finished in"):
            stats["rps"] = float(words[3])
        elif line.startswith("requests:"):
            stats["done"] = float(words[5])
            stats["succeeded"] = float(words[7])
        elif line.startswith("status codes:"):
            stats["2xx"] = float(words[2])
            stats["other"] = sum(float(w) for w in words[4:9:2])
    if reason_phrase:
        ok = stats.get("succeeded") == requests and stats.get("2xx") == requests
    else:
        # h2load's parser cannot read a status line without a reason phrase ("HTTP/1.1 200 "),
        # which is what hypercorn (h11) sends: it counts such answers as done but not
        # succeeded, with no status. Accept exactly that, and nothing else.
        ok = stats.get("done") == requests and stats.get("2xx", 0) + stats.get("other", 0) in {
            0,
            requests,
        }
    if not ok:
        raise RunFailedError(f"not every request got a 2xx answer:\n{out}")
    return stats


def percentiles(log: Path) -> tuple[float, float]:
    durations = sorted(int(line.split("\t")[2]) for line in log.read_text().splitlines() if line)
    if not durations:
        raise RunFailedError("h2load logged no requests")

    def rank(q: float) -> float:
        return durations[min(len(durations) - 1, int(q * len(durations)))] / 1000.0

    return rank(0.50), rank(0.99)


@dataclass
class Target:
    name: str
    argv: list[str]
    path: Path
    requests: int
    proc: subprocess.Popen[bytes] | None = None
    note: str = ""
    failed: str = ""


def start(target: Target) -> None:
    print(f"{target.name}: starting", file=sys.stderr)
    target.proc = proc = subprocess.Popen(
        pinned(0, target.argv), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    if target.name == "ours" and proc.stdout is not None:
        line = proc.stdout.readline()
        if not line:
            raise RunFailedError("our server exited before it was ready")
        target.note = json.loads(line)["peer_checks"]
    wait_connectable(target.path, proc)


def stop(target: Target) -> None:
    proc = target.proc
    if proc is None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def measure(target: Target, connections: int, run: int, work: Path) -> Result:
    name, requests = target.name, target.requests
    print(f"  {name}: {connections} connection(s), {requests} requests", file=sys.stderr)
    phrase = name != "hypercorn"
    if run == 0:
        warm_up = max(min(requests // 10, 2000), connections)
        h2load(target.path, warm_up, connections, None, reason_phrase=phrase)
    log = work / f"{name}-{connections}-{run}.log"
    stats = h2load(target.path, requests, connections, log, reason_phrase=phrase)
    p50, p99 = percentiles(log)
    log.unlink()
    return Result(name, connections, requests, stats["rps"], p50, p99)


def run_all(targets: list[Target], rounds: int, work: Path) -> dict[str, list[Result]]:
    """Every server at every connection count, interleaved; the median of ``rounds`` runs.

    Interleaving (rather than one server after the other) exposes each server to the same
    background load, so the ratios stay meaningful on a shared machine.
    """
    runs: dict[tuple[str, int], list[Result]] = {}
    for connections in CONNECTIONS:
        for run in range(rounds):
            for target in targets:
                if target.failed:
                    continue
                try:
                    result = measure(target, connections, run, work)
                except (RunFailedError, OSError, subprocess.TimeoutExpired) as exc:
                    target.failed = str(exc)
                    continue
                runs.setdefault((target.name, connections), []).append(result)
    results: dict[str, list[Result]] = {}
    for (name, _), found in runs.items():
        if any(t.name == name and t.failed for t in targets):
            continue
        found.sort(key=lambda r: r.rps)
        results.setdefault(name, []).append(found[len(found) // 2])
    return results


def ratio(value: float, base: float | None) -> float | None:
    return None if not base else round(value / base, 3)


def report(results: dict[str, list[Result]], peer_checks: str) -> None:
    nginx = {r.connections: r.rps for r in results.get("nginx", [])}
    hyper = {r.connections: r.rps for r in results.get("hypercorn", [])}
    for name in ("nginx", "hypercorn", "ours"):
        for r in results.get(name, []):
            row: dict[str, Any] = {
                "server": r.server,
                "connections": r.connections,
                "requests": r.requests,
                "rps": round(r.rps, 1),
                "p50_ms": round(r.p50_ms, 3),
                "p99_ms": round(r.p99_ms, 3),
                "ratio_to_nginx": ratio(r.rps, nginx.get(r.connections)),
            }
            if name == "ours":
                row["ratio_to_hypercorn"] = ratio(r.rps, hyper.get(r.connections))
                row["peer_checks"] = peer_checks
            print(json.dumps(row), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small runs, for CI")
    parser.add_argument("--requests", type=int, help="requests per run (overrides the mode)")
    parser.add_argument("--rounds", type=int, help="runs per configuration; the median counts")
    parser.add_argument("--serve", choices=("ours", "hypercorn"), help=argparse.SUPPRESS)
    parser.add_argument("--socket", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        (serve_ours if args.serve == "ours" else serve_hypercorn)(args.socket)
        return 0
    mode = "quick" if args.quick else "full"
    if shutil.which("h2load") is None:
        print(json.dumps({"skipped": "h2load not installed (apt-get install nghttp2-client)"}))
        return 0 if args.quick else 2
    requests = args.requests or (QUICK_REQUESTS if args.quick else FULL_REQUESTS)
    hyper_requests = args.requests or (QUICK_REQUESTS if args.quick else FULL_REQUESTS_HYPERCORN)
    rounds = args.rounds or (1 if args.quick else FULL_ROUNDS)
    nginx = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if Path(p).exists()), None
    )
    body = token_body()
    print(
        json.dumps({
            "bench": "uds_token", "mode": mode, "body_bytes": len(body),
            "cpus": os.cpu_count(), "pinned": shutil.which("taskset") is not None,
            "nginx": "1 worker, static file, open_file_cache, sendfile, access_log off"
            if nginx else "not installed (apt-get install nginx-light): its rows are skipped",
            "hypercorn": "trio worker, 1 worker, ASGI app, access log off",
            "rounds": rounds, "loadavg": [round(x, 2) for x in os.getloadavg()],
        }),
        flush=True,
    )  # fmt: skip
    script = os.fspath(Path(__file__).resolve())
    with tempfile.TemporaryDirectory(prefix="uds-bench-") as tmp:
        work = Path(tmp)
        # nginx's worker runs as nobody when started by root: let it read the static file.
        work.chmod(0o755)
        static = work / "token.json"
        static.write_bytes(body)
        static.chmod(0o644)
        targets: list[Target] = []
        if nginx:
            (work / "nginx").mkdir()
            conf = work / "nginx" / "nginx.conf"
            conf.write_text(nginx_config(work / "nginx", work / "nginx.sock", static))
            argv = [nginx, "-c", os.fspath(conf), "-p", os.fspath(work / "nginx")]
            targets.append(Target("nginx", argv, work / "nginx.sock", requests))
        (work / "srv").mkdir(mode=0o700)
        for name, count in (("ours", requests), ("hypercorn", hyper_requests)):
            sock = work / "srv" / f"{name}.sock"
            argv = [sys.executable, script, "--serve", name, "--socket", os.fspath(sock)]
            targets.append(Target(name, argv, sock, count))
        try:
            for target in targets:
                try:
                    start(target)
                except (RunFailedError, OSError) as exc:
                    target.failed = str(exc)
            results = run_all(targets, rounds, work)
        finally:
            for target in targets:
                stop(target)
    for target in targets:
        if target.failed:
            print(json.dumps({"server": target.name, "failed": target.failed}), flush=True)
    peer_checks = next((t.note for t in targets if t.name == "ours"), "unknown")
    report(results, peer_checks)
    return 1 if any(t.failed for t in targets) else 0


if __name__ == "__main__":
    sys.exit(main())
