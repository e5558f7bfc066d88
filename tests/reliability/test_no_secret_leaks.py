"""No secret in any error a server answers, nor in ``agent-identity config show|check``.

The suite-wide leak check (``tests/leakcheck.py``) already covers every log record of every
test. This module covers what logs do not: the bodies our servers send back when something
goes wrong. One running system against the sandbox has real secrets in play (the root AK/SK
and the client secret in its config, alice's id_token, refresh token and TIP, a fetched API
key and STS keys); then every error path of the local identity server, the gateway bridge,
the OIDC callback and the control service is driven, including requests that carry secrets
in the wrong places, and every answer is searched for every secret the sandbox issued
(:func:`~agent_identity.sandbox.secrets.issued_secrets`). Each test first shows that its
check finds a secret where one is expected (a ``200`` answer of ``GET /token``), so a
vacuous pass is impossible.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from agent_identity.cli.main import main
from agent_identity.config import parse_plugin_config
from agent_identity.sandbox import Sandbox, open_sandbox
from agent_identity.sandbox.browser import submit_login_form
from agent_identity.sandbox.devconfig import dev_openclaw_json, dev_plugin_config
from agent_identity.sandbox.secrets import issued_secrets, start_recording
from agent_identity.system import Identity, open_identity
from agent_identity.system.bridge import BridgeApp
from agent_identity.system.control import ControlService, ReloadResult, config_file_reloader
from agent_identity.system.local_server import LocalServerApp
from agent_identity.transports.callback import CALLBACK_PATH, DeferredApp, serve_callback_app
from agent_identity.transports.control_wire import (
    ApproveRequest,
    ControlRequest,
    RejectRequest,
    ReloadRequest,
    RevokeRequest,
    SessionsRequest,
    ShutdownRequest,
    StatusRequest,
    encode_frame,
)
from agent_identity.transports.http_messages import Handler
from agent_identity.transports.peer import PeerGate
from agent_identity.transports.uds_http import serve_uds_http
from agent_identity.transports.uds_socket import open_unix_listener

pytestmark = pytest.mark.slow

MAIN = "agent:main:main"
ALICE_DM = "agent:main:telegram:direct:42"
ALICE_CONTEXT = {"sessionKey": MAIN, "requesterSenderId": "42", "messageChannel": "telegram"}


# ------------------------------------------------------------------------------ the check


def _mask(secret: str) -> str:
    return f"{secret[:4]}…[{len(secret)} chars]"


def leaks(texts: Iterable[tuple[str, str]], extra: Iterable[str] = ()) -> list[str]:
    """``where: masked secret`` for every issued (or ``extra``) secret found in a text."""
    secrets = {*issued_secrets(), *extra}
    return [f"{where}: {_mask(s)}" for where, text in texts for s in secrets if s in text]


def assert_no_leak(texts: Iterable[tuple[str, str]], extra: Iterable[str] = ()) -> None:
    """Fail naming where a secret showed up (masked)."""
    found = leaks(texts, extra)
    assert not found, f"secrets leaked: {found}"


# ------------------------------------------------------------------------------ the rig


@dataclass
class Rig:
    """A system against the sandbox, with its local server and bridge on Unix sockets."""

    sb: Sandbox
    ident: Identity
    browser: httpx.AsyncClient
    callback_url: str
    data_dir: Path
    sockets: dict[str, Path] = field(default_factory=dict)
    answers: list[tuple[str, str]] = field(default_factory=list)

    def client(self, kind: str) -> httpx.AsyncClient:
        """An HTTP client on the ``local`` or ``bridge`` socket."""
        transport = httpx.AsyncHTTPTransport(uds=str(self.sockets[kind]))
        return httpx.AsyncClient(transport=transport, base_url="http://localhost", timeout=10)

    def keep(self, where: str, response: httpx.Response, *, error: bool = True) -> None:
        """Keep an answer for the final check (asserting it is an error when ``error``)."""
        if error:
            assert response.status_code >= 400, (where, response.status_code, response.text)
        self.answers.append((where, f"{response.headers}\n{response.text}"))

    async def raw(self, where: str, data: bytes) -> None:
        """Send raw bytes to the local server; keep what it answers before it hangs up."""
        chunks: list[bytes] = []
        with trio.fail_after(10):
            async with await trio.open_unix_socket(str(self.sockets["local"])) as stream:
                await stream.send_all(data)
                while chunk := await stream.receive_some():
                    chunks.append(chunk)
        answer = b"".join(chunks).decode(errors="replace")
        assert answer.startswith(("HTTP/1.1 4", "HTTP/1.1 5")), (where, answer[:200])
        self.answers.append((where, answer))

    async def login(self, key: str = MAIN) -> httpx.Response:
        """Log alice in under ``key``; returns the callback page (its URL carries the code)."""
        assert self.ident.login_flow is not None
        url = await self.ident.login_flow.start_login(key)
        page = await submit_login_form(
            self.browser,
            url,
            username="alice",
            password="alice-password",
        )
        assert page.status_code == 200, page.text
        assert await self.ident.sessions.get(key) is not None
        return page


@asynccontextmanager
async def open_rig(tmp_path: Path, **sections: Any) -> AsyncIterator[Rig]:
    """Run the sandbox, the callback server, a system, and the two Unix-socket servers."""
    start_recording()  # on already under the leak check; made sure of for --no-leakcheck
    async with (
        open_sandbox() as sb,
        httpx.AsyncClient(timeout=10) as browser,
        trio.open_nursery() as nursery,
    ):
        late = DeferredApp()
        base = await nursery.start(serve_callback_app, late, "127.0.0.1", 0)
        callback_url = f"{base}{CALLBACK_PATH}"
        data_dir = tmp_path / "identity"
        config = dev_plugin_config(
            sb, callback_url=callback_url, data_dir=data_dir, overrides=sections
        )
        async with open_identity(parse_plugin_config(config), environ={}) as ident:
            late.app = ident.asgi_app
            rig = Rig(sb, ident, browser, callback_url, data_dir)
            apps: dict[str, Handler] = {"local": LocalServerApp(ident), "bridge": BridgeApp(ident)}
            gate = PeerGate(("*",), fail_open=False)
            # The listeners outlive the servers: their files go once nothing serves them.
            with ExitStack() as listeners:
                async with trio.open_nursery() as servers:
                    for kind, app in apps.items():
                        path = data_dir / f"{kind}.sock"
                        listener = listeners.enter_context(open_unix_listener(path))
                        await servers.start(partial(serve_uds_http, listener, app, gate=gate))
                        rig.sockets[kind] = path
                    yield rig
                    servers.cancel_scope.cancel()
        nursery.cancel_scope.cancel()


async def _with_secrets_in_play(rig: Rig) -> str:
    """Log alice in and fetch an API key and STS keys; return her TIP."""
    await rig.login(MAIN)
    await rig.login(ALICE_DM)
    async with rig.client("bridge") as bridge:
        for name, params in (
            ("identity_fetch", {"provider": "openai"}),
            ("identity_get_role_credentials", {"providerName": "demo-role"}),
        ):
            done = await bridge.post(
                f"/tool/{name}", json={"params": params, "context": ALICE_CONTEXT}
            )
            assert done.status_code == 200, done.text
    async with rig.client("local") as local:
        token = await local.get("/token")
    assert token.status_code == 200, token.text
    tip = str(token.json()["token"])
    # The check can fail: the TIP is a recorded secret and it is in this (200) body.
    assert tip in issued_secrets()
    assert leaks([("GET /token", token.text)])
    with pytest.raises(AssertionError, match="secrets leaked"):
        assert_no_leak([("GET /token", token.text)])
    return tip


# ------------------------------------------------------------------------------ tests


async def test_local_server_and_bridge_errors_leak_nothing(tmp_path: Path) -> None:
    async with open_rig(tmp_path) as rig:
        tip = await _with_secrets_in_play(rig)
        session = rig.ident.sessions
        view = await session.get(MAIN)
        assert view is not None
        id_token = view.user_token
        async with rig.client("local") as local:
            for where, call in (
                ("local 404", partial(local.get, "/nowhere")),
                ("local 405", partial(local.post, "/token")),
                (
                    "local not logged in",
                    partial(local.get, "/token", params={"session": "agent:x:y"}),
                ),
                (
                    "local session 404",
                    partial(local.get, "/session", params={"session": "agent:x:y"}),
                ),
                ("local unknown tool", partial(local.post, "/tool/nope", json={})),
                ("local tool 405", partial(local.get, "/tool/identity_whoami")),
                ("local bad json", partial(local.post, "/tool/identity_fetch", content=b"[")),
                # Secrets where they do not belong: the refusal must not echo them.
                ("local body with a secret", partial(local.post, "/tool/identity_fetch", json=tip)),
                (
                    "local params with a secret",
                    partial(
                        local.post, "/tool/identity_fetch", json={"params": tip, "session": MAIN}
                    ),
                ),
                (
                    "local unknown field with a secret",
                    partial(local.post, "/tool/identity_whoami", json={"token": id_token}),
                ),
                (
                    "local invalid params",
                    partial(
                        local.post,
                        "/tool/identity_fetch",
                        json={"params": {"provider": 7, "flow": id_token}, "session": MAIN},
                    ),
                ),
                (
                    "local unknown provider",
                    partial(
                        local.post,
                        "/tool/identity_fetch",
                        json={"params": {"provider": "nope"}, "session": MAIN},
                    ),
                ),
            ):
                rig.keep(where, await call())
        # Requests the HTTP layer refuses, with the TIP in their heads.
        bearer = f"Authorization: Bearer {tip}\r\n".encode()
        for where, data in (
            (
                "raw bad header",
                b"GET /token HTTP/1.1\r\nHost: x\r\n" + bearer + b"no colon\r\n\r\n",
            ),
            ("raw head too large", b"GET /token HTTP/1.1\r\n" + bearer * 40 + b"\r\n"),
            ("raw request line too long", f"GET /token?t={tip * 12} HTTP/1.1\r\n\r\n".encode()),
            ("raw bad version", b"GET /token HTTP/9.9\r\n" + bearer + b"\r\n"),
            (
                "raw body too large",
                b"POST /tool/x HTTP/1.1\r\n" + bearer + b"Content-Length: 9999999\r\n\r\n",
            ),
        ):
            await rig.raw(where, data)
        async with rig.client("local") as local:
            # An upstream failure while minting: its reason travels into the 503.
            await rig.ident.tips.flush()
            rig.sb.faults.add("GetWorkloadAccessTokenForJWT", status=500, count=20)
            rig.keep("local TIP unavailable", await local.get("/token"))
            rig.sb.faults.clear()
            # A revoked login: 401/404 for the token and the session.
            await session.delete(MAIN)
            rig.keep("local logged out", await local.get("/token"))
            rig.keep("local no session", await local.get("/session"))
        async with rig.client("bridge") as bridge:
            for where, call in (
                ("bridge 404", partial(bridge.post, "/nowhere", json={})),
                ("bridge 405", partial(bridge.get, "/tool/identity_whoami")),
                ("bridge unknown hook", partial(bridge.post, "/hook/nope", json={"event": {}})),
                (
                    "bridge hook body with a secret",
                    partial(bridge.post, "/hook/before_tool_call", json=tip),
                ),
                (
                    "bridge hook event with a secret",
                    partial(bridge.post, "/hook/before_tool_call", json={"event": id_token}),
                ),
                ("bridge unknown tool", partial(bridge.post, "/tool/nope", json={})),
                (
                    "bridge tool body with a secret",
                    partial(bridge.post, "/tool/identity_fetch", json=tip),
                ),
                (
                    "bridge tool invalid params",
                    partial(
                        bridge.post,
                        "/tool/identity_fetch",
                        json={"params": {"provider": "nope"}, "context": ALICE_CONTEXT},
                    ),
                ),
                ("bridge command path", partial(bridge.post, "/command/x", json={})),
                ("bridge command body", partial(bridge.post, "/command", json=[tip])),
                ("bridge approval body", partial(bridge.post, "/approval/x", json={"decision": 1})),
                (
                    "bridge gateway body",
                    partial(bridge.post, "/gateway/identity.session.put", json=tip),
                ),
            ):
                rig.keep(where, await call())
            # Not errors by status, but answers that say no: they must not carry secrets.
            for where, call in (
                (
                    "bridge gateway unknown method",
                    partial(
                        bridge.post,
                        "/gateway/identity.session.put",
                        json={"params": {"sessionKey": "main", "idToken": id_token}},
                    ),
                ),
                (
                    "bridge command unknown",
                    partial(
                        bridge.post,
                        "/command",
                        json={
                            "commandBody": "/identity frobnicate " + tip,
                            "channel": "telegram",
                            "senderId": "42",
                            "sessionKey": MAIN,
                        },
                    ),
                ),
                (
                    "bridge unknown approval",
                    partial(bridge.post, "/approval/x", json={"decision": "deny"}),
                ),
            ):
                rig.keep(where, await call(), error=False)
    # Even the requests that carried a secret must not have it echoed back.
    assert len(rig.answers) == 35
    assert_no_leak(rig.answers)


async def test_callback_error_pages_leak_nothing(tmp_path: Path) -> None:
    async with open_rig(tmp_path) as rig:
        await _with_secrets_in_play(rig)
        done = await rig.login("agent:main:telegram:direct:77")
        used = str(done.url)  # the callback URL with a code that is now spent
        assert "code=" in used
        code = httpx.URL(used).params["code"]
        assert code in issued_secrets()
        state = httpx.URL(used).params["state"]
        base = rig.callback_url
        async with httpx.AsyncClient(timeout=10) as browser:
            for where, call in (
                ("callback replay", partial(browser.get, used)),
                (
                    "callback wrong state",
                    partial(browser.get, base, params={"code": code, "state": "x"}),
                ),
                ("callback no state", partial(browser.get, base, params={"code": code})),
                (
                    "callback repeated code",
                    partial(browser.get, f"{base}?code={code}&code={code}&state={state}"),
                ),
                (
                    "callback provider error",
                    partial(
                        browser.get,
                        base,
                        params={
                            "error": "access_denied",
                            "error_description": "denied " + code,
                            "state": state,
                        },
                    ),
                ),
                ("callback 405", partial(browser.post, used)),
                ("callback 404", partial(browser.get, used.replace(CALLBACK_PATH, "/elsewhere"))),
                (
                    "callback too long",
                    partial(browser.get, f"{base}?code={code}&state={'s' * 9000}"),
                ),
            ):
                rig.keep(where, await call())
    assert_no_leak(rig.answers)


async def test_control_replies_leak_nothing(tmp_path: Path) -> None:
    async with open_rig(tmp_path) as rig:
        tip = await _with_secrets_in_play(rig)
        client = rig.sb.state.user_pools["up-dev-0001"].clients
        secret = next(c.secret for c in client.values() if c.name == "openclaw-gateway")
        bad = tmp_path / "openclaw.json"
        good = dev_openclaw_json(rig.sb, callback_url=rig.callback_url, data_dir=rig.data_dir)
        entry = good["plugins"]["entries"]["agent-identity"]["config"]
        # Secrets in fields of the wrong type or unknown keys: rejected, never quoted.
        entry["identity"]["durationSeconds"] = secret
        entry["identity"]["localServerAllowlist"] = tip
        entry["userpool"]["scope"] = {"value": rig.sb.secret_access_key}
        entry["unknownKey"] = tip
        bad.write_text(json.dumps(good))

        async def apply(loaded: object) -> ReloadResult:
            await trio.lowlevel.checkpoint()
            raise AssertionError(f"an invalid file was applied: {loaded!r}")

        service = ControlService(rig.ident, reload=config_file_reloader(bad, apply))
        requests: list[ControlRequest] = [
            StatusRequest(),
            SessionsRequest(),
            ApproveRequest(approval_id="nope"),
            RejectRequest(approval_id="nope"),
            ReloadRequest(),
            ShutdownRequest(),
            RevokeRequest(session_key=""),
            RevokeRequest(session_key="agent:x:y"),
            RevokeRequest(session_key=MAIN),
            SessionsRequest(),
        ]
        replies = [(type(r).__name__, await service.handle(r)) for r in requests]
    texts = [(name, encode_frame(reply).decode(errors="replace")) for name, reply in replies]
    assert any('"problems":[' in text and "durationSeconds" in text for _, text in texts)
    assert_no_leak(texts)


async def test_config_show_and_check_leak_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENCLAW_CONFIG_PATH", raising=False)
    monkeypatch.delenv("OPENCLAW_STATE_DIR", raising=False)
    async with open_rig(tmp_path) as rig:
        await _with_secrets_in_play(rig)
        config = dev_openclaw_json(rig.sb, callback_url=rig.callback_url, data_dir=rig.data_dir)
    feishu = config["channels"]["feishu"]
    entry = config["plugins"]["entries"]["agent-identity"]["config"]
    extra = [feishu["appSecret"], entry["identity"]["secretAccessKey"]]
    path = tmp_path / "openclaw.json"
    path.write_text(json.dumps(config))
    # The check can fail: printed as is, the file would leak the client secret and the SK.
    assert len(leaks([("the file as is", path.read_text())], extra)) >= 3
    outputs: list[tuple[str, str]] = []
    for argv in (["config", "show", "--config", str(path)], ["config", "check", "-c", str(path)]):
        code = await trio.to_thread.run_sync(main, argv)
        out = capsys.readouterr()
        assert code == 0, out.err
        outputs.append((" ".join(argv[:2]), out.out + out.err))
    assert entry["userpool"]["clientSecret"] in issued_secrets()
    assert "***" in outputs[0][1]
    # The same secrets in invalid places: every problem is listed, no value quoted.
    entry["identity"]["durationSeconds"] = feishu["appSecret"]
    entry["userpool"]["callbackUrl"] = entry["userpool"]["clientSecret"]
    entry["identity"]["region"] = {"nested": entry["identity"]["secretAccessKey"]}
    path.write_text(json.dumps(config))
    for sub in ("show", "check"):
        code = await trio.to_thread.run_sync(main, ["config", sub, "--config", str(path)])
        out = capsys.readouterr()
        assert code == 2, out
        outputs.append((f"invalid config {sub}", out.out + out.err))
    assert_no_leak(outputs, extra)
