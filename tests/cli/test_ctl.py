"""``agent-identity ctl`` against a real daemon: tables, ``--json``, exit codes, not running.

The daemon (sandbox, ``open_identity``, ``ControlService`` behind a real control socket)
runs in its own thread with its own Trio loop, the way it runs in its own process in
production; ``main([...])`` runs in the test's thread and does its own ``trio.run``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio

from agent_identity.cli.ctl import exit_code, render
from agent_identity.cli.main import main
from agent_identity.config import LoadedConfig, parse_plugin_config
from agent_identity.sandbox import open_sandbox
from agent_identity.storage import SessionRecord
from agent_identity.system import Identity, open_identity
from agent_identity.system.control import ControlService, ReloadResult, config_file_reloader
from agent_identity.transports.control import control_socket_path, serve_control
from agent_identity.transports.control_wire import (
    ErrorReply,
    SessionRow,
    SessionsReply,
)
from agent_identity.transports.uds_socket import open_unix_listener

T = TypeVar("T")

KEY = "agent:main:main:user:alice"
USER_TOKEN = "eyJhbGciOiJSUzI1NiJ9.user-token-of-alice.sig"
REFRESH_TOKEN = "refresh-token-of-alice-Qm7Zt2"


class Daemon:
    """A system and its control server running in a background thread."""

    def __init__(self, data_dir: Path, config_file: Path) -> None:
        self.data_dir = data_dir
        self.config_file = config_file
        self.socket = control_socket_path(data_dir)
        self.ready = threading.Event()
        self.failure: BaseException | None = None
        self.shutdowns = 0
        self.reloads: list[LoadedConfig] = []
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._ident: Identity | None = None
        self.thread = threading.Thread(target=self._main, name="ctl-daemon", daemon=True)

    @property
    def ident(self) -> Identity:
        assert self._ident is not None
        return self._ident

    def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``fn(*args)`` in the daemon's loop and return its result."""
        assert self._token is not None
        return trio.from_thread.run(fn, *args, trio_token=self._token)

    def stop(self) -> None:
        if self.thread.is_alive():
            assert self._token is not None
            assert self._stop is not None
            trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self.thread.join(60)
        assert not self.thread.is_alive()

    def _main(self) -> None:
        try:
            trio.run(self._serve)
        except Exception as exc:  # noqa: BLE001 - reported by the fixture
            self.failure = exc
            self.ready.set()

    async def _apply(self, loaded: LoadedConfig) -> ReloadResult:
        await trio.lowlevel.checkpoint()
        self.reloads.append(loaded)
        return ReloadResult(ok=True, message="configuration reloaded")

    def _shutdown(self) -> None:
        assert self._stop is not None
        self.shutdowns += 1
        self._stop.set()

    async def _serve(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        async with open_sandbox() as sb:
            plugin = {
                "identity": {
                    "endpoint": sb.base_url,
                    "accessKeyId": sb.access_key_id,
                    "secretAccessKey": sb.secret_access_key,
                },
                "dataDir": str(self.data_dir),
            }
            self.config_file.write_text(json.dumps(plugin))
            async with open_identity(parse_plugin_config(plugin), environ={}) as ident:
                self._ident = ident
                reload = config_file_reloader(self.config_file, self._apply)
                service = ControlService(ident, reload=reload, shutdown=self._shutdown)
                with open_unix_listener(self.socket) as sock:
                    async with trio.open_nursery() as nursery:
                        await nursery.start(serve_control, sock, service.handle)
                        self.ready.set()
                        await self._stop.wait()
                        nursery.cancel_scope.cancel()


@pytest.fixture(autouse=True)
def _no_ambient_openclaw_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("OPENCLAW_CONFIG_PATH", raising=False)
    monkeypatch.delenv("OPENCLAW_STATE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    base = tmp_path_factory.mktemp("ctl")
    running = Daemon(base / "data", base / "plugin.json")
    running.thread.start()
    assert running.ready.wait(60), "the daemon did not start"
    if running.failure is not None:
        raise running.failure
    yield running
    running.stop()
    if running.failure is not None:
        raise running.failure


def ctl(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["ctl", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def put_session(daemon: Daemon, key: str = KEY) -> None:
    now = time.time()
    record = SessionRecord(
        session_key=key,
        sub="alice",
        user_token=USER_TOKEN,
        refresh_token=REFRESH_TOKEN,
        expires_at=now + 3600,
        login_at=now,
        email="alice@example.com",
    )
    daemon.run(daemon.ident.sessions.put, record)
    daemon.run(daemon.ident.sessions.set_binding, key, "openai", "OPENAI_API_KEY")


def column(lines: list[str], header: str, name: str) -> tuple[int, str]:
    """The start of column ``name`` in the table whose header starts with ``header``."""
    head = next(line for line in lines if line.startswith(header))
    return head.index(name), head


def test_status_prints_aligned_tables_and_json(
    daemon: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    put_session(daemon)
    code, out, err = ctl(capsys, "status", "--socket", str(daemon.socket))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith("agent-identity ")
    assert f"(pid {os.getpid()})" in lines[0]  # the daemon runs in this process
    assert "sessions: 1 (1 with bindings)" in out
    start, _ = column(lines, "ACTOR", "RESTARTS")
    row = next(line for line in lines if line.startswith("session_store"))
    assert row[start:].strip() == "0"
    assert "rest_for_one" in out
    assert "no pending approvals" in out
    assert USER_TOKEN not in out
    assert REFRESH_TOKEN not in out

    code, out, err = ctl(capsys, "--json", "status", "--socket", str(daemon.socket))
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert data["type"] == "status"
    assert data["sessions"] == 1
    assert {actor["name"] for actor in data["actors"]} >= {"session_store", "tip_refresher"}
    assert all(actor["restarts"] == 0 for actor in data["actors"])


def test_sessions_table_escapes_control_characters_and_hides_tokens(
    daemon: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = ctl(capsys, "sessions", "--data-dir", str(daemon.data_dir))
    assert (code, out) == (0, "no sessions\n")
    put_session(daemon)
    put_session(daemon, "agent:main:\x1b[31mevil")
    code, out, err = ctl(capsys, "sessions", "--data-dir", str(daemon.data_dir))
    assert (code, err) == (0, "")
    assert "\x1b" not in out
    assert "agent:main:\\x1b[31mevil" in out
    lines = out.splitlines()
    start, head = column(lines, "SESSION", "BINDINGS")
    row = next(line for line in lines if line.startswith(KEY))
    assert row[start:] == "openai=OPENAI_API_KEY"
    assert "(renewable)" in row
    assert "alice@example.com" in row
    assert len(head) <= len(row)
    for secret in (USER_TOKEN, REFRESH_TOKEN):
        assert secret not in out

    code, out, _ = ctl(capsys, "sessions", "--json", "--data-dir", str(daemon.data_dir))
    assert code == 0
    rows = json.loads(out)["sessions"]
    assert [row["sessionKey"] for row in rows] == ["agent:main:\x1b[31mevil", KEY]
    assert rows[1]["bindings"] == {"openai": "OPENAI_API_KEY"}
    assert USER_TOKEN not in out
    assert REFRESH_TOKEN not in out


def test_revoke_reports_what_it_cleared(daemon: Daemon, capsys: pytest.CaptureFixture[str]) -> None:
    put_session(daemon)
    socket = str(daemon.socket)
    code, out, _ = ctl(capsys, "revoke", KEY, "--socket", socket)
    assert code == 0
    assert out == (
        f"revoked {KEY}: session removed, TIP absent, 0 credentials, 1 binding, "
        "0 approvals cancelled\n"
    )
    assert daemon.run(daemon.ident.sessions.get, KEY) is None
    assert daemon.run(daemon.ident.sessions.bindings, KEY) == {}
    assert ctl(capsys, "revoke", KEY, "--socket", socket) == (
        0,
        f"nothing to revoke for {KEY}\n",
        "",
    )
    code, out, _ = ctl(capsys, "revoke", KEY, "--socket", socket, "--json")
    assert (code, json.loads(out)["sessionRemoved"]) == (0, False)


def test_flush_tips(daemon: Daemon, capsys: pytest.CaptureFixture[str]) -> None:
    assert ctl(capsys, "flush-tips", "--socket", str(daemon.socket)) == (
        0,
        "dropped 0 cached TIPs\n",
        "",
    )


def test_approvals_list_approve_and_reject(
    daemon: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    socket = str(daemon.socket)
    assert ctl(capsys, "approvals", "--socket", socket) == (0, "no pending approvals\n", "")
    approval = daemon.run(
        lambda: daemon.ident.approvals.request(
            KEY,
            "exec",
            {"command": "curl x | sh"},
            risk="high",
            reason="pipe to shell",
            summary="curl x | sh",
        )
    )
    code, out, _ = ctl(capsys, "approvals", "list", "--socket", socket)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "SESSION", "TOOL", "RISK", "STATUS", "EXPIRES", "WHAT"]
    assert lines[1].split()[:5] == [approval.id, KEY, "exec", "high", "pending"]
    assert "curl x | sh" in lines[1]

    code, out, _ = ctl(capsys, "approvals", "--json", "--socket", socket)
    assert [row["id"] for row in json.loads(out)["approvals"]] == [approval.id]

    code, out, err = ctl(capsys, "approvals", "approve", approval.id, "--socket", socket)
    assert (code, out, err) == (0, f"Approved exec call {approval.id}.\n", "")
    code, out, err = ctl(capsys, "approvals", "reject", approval.id, "--socket", socket)
    assert (code, out) == (1, "")
    assert err == "This approval was already decided.\n"
    code, out, err = ctl(capsys, "approvals", "reject", "apr_unknown", "--json", "--socket", socket)
    assert code == 1
    assert json.loads(out)["refusal"] == "unknown"


def test_reload_rejects_a_bad_config_and_the_daemon_keeps_running(
    daemon: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    good = daemon.config_file.read_text()
    daemon.config_file.write_text(json.dumps({"identity": {"endpoint": 42}}))
    code, out, err = ctl(capsys, "reload", "--socket", str(daemon.socket))
    assert (code, out) == (1, "")
    first, *problems = err.splitlines()
    assert first.startswith("reload rejected: ")
    assert any("identity.endpoint" in problem for problem in problems)
    assert daemon.reloads == []
    assert ctl(capsys, "status", "--socket", str(daemon.socket))[0] == 0

    daemon.config_file.write_text(good)
    assert ctl(capsys, "reload", "--socket", str(daemon.socket)) == (
        0,
        "configuration reloaded\n",
        "",
    )
    assert len(daemon.reloads) == 1


def test_shutdown_stops_the_daemon_then_ctl_says_it_is_not_running(
    daemon: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    socket = str(daemon.socket)
    assert ctl(capsys, "shutdown", "--socket", socket) == (
        0,
        "agent-identity: stopping gracefully\n",
        "",
    )
    daemon.thread.join(60)
    assert not daemon.thread.is_alive()
    assert daemon.shutdowns == 1
    assert not daemon.socket.exists()
    code, out, err = ctl(capsys, "status", "--socket", socket)
    assert (code, out) == (1, "")
    assert err.count("\n") == 1
    assert err.startswith(f"error: agent-identity is not running: no control socket at {socket}")


def test_not_running_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for extra in ([], ["--json"]):
        code, out, err = ctl(capsys, "status", "--data-dir", str(tmp_path), *extra)
        assert (code, out) == (1, "")
        assert err.count("\n") == 1
        assert "agent-identity is not running" in err
        assert str(tmp_path / "control.sock") in err


def test_the_socket_is_found_from_the_config(
    daemon: Daemon,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    config = str(daemon.config_file)
    assert ctl(capsys, "flush-tips", "--config", config)[0] == 0
    monkeypatch.setenv("OPENCLAW_CONFIG_PATH", config)
    assert ctl(capsys, "flush-tips")[0] == 0
    # Without any config: the default dataDir under HOME.
    monkeypatch.delenv("OPENCLAW_CONFIG_PATH")
    code, _, err = ctl(capsys, "flush-tips")
    default = tmp_path / "home" / ".openclaw" / "plugins" / "identity" / "control.sock"
    assert code == 1
    assert str(default) in err
    # An invalid config is a config error, not a guess.
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"identity": {"endpoint": 42}}))
    code, _, err = ctl(capsys, "status", "--config", str(bad))
    assert code == 2
    assert "identity.endpoint" in err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert ctl(capsys)[0] == 2
    assert ctl(capsys, "revoke")[0] == 2
    assert ctl(capsys, "status", "--socket", "a", "--data-dir", "b")[0] == 2
    assert ctl(capsys, "approvals", "approve")[0] == 2


def test_a_real_process_talks_to_the_daemon(daemon: Daemon) -> None:
    command = [sys.executable, "-m", "agent_identity.cli", "ctl", "status", "--json"]
    result = subprocess.run(
        [*command, "--socket", str(daemon.socket)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["type"] == "status"
    missing = subprocess.run(
        [*command, "--socket", str(daemon.data_dir / "nope.sock")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert (missing.returncode, missing.stdout) == (1, "")
    assert "not running" in missing.stderr


# ------------------------------------------------------------------- rendering alone


def test_durations_are_readable() -> None:
    rows = tuple(
        SessionRow(session_key=f"k{i}", sub="s", login_at=0.0, expires_in=seconds, renewable=False)
        for i, seconds in enumerate((42.9, 302.0, 3 * 3600 + 300, 2 * 86400 + 3 * 3600, -5.0))
    )
    lines = render(SessionsReply(sessions=rows))
    expires = [line.split()[3:5] for line in lines[1:]]
    assert [" ".join(e).removesuffix(" -") for e in expires] == [
        "42s",
        "5m 02s",
        "3h 05m",
        "2d 03h",
        "expired",
    ]


def test_an_error_reply_fails_with_its_message() -> None:
    reply = ErrorReply(code="unavailable", message="try again")
    assert render(reply) == ["error: try again (unavailable)"]
    assert exit_code(reply) == 1
