"""The callback app over real sockets: routing, headers, pages, failures, serving."""

from __future__ import annotations

import base64
import hashlib
import html
import re
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

import httpx
import pytest
import trio

from agent_identity.actors.login_flow import LoginFailure
from agent_identity.transports.callback import (
    CALLBACK_PATH,
    MAX_QUERY_LENGTH,
    CallbackApp,
    DeferredApp,
    Receive,
    Scope,
    Send,
    bind_address,
    serve_callback_app,
)
from agent_identity.transports.pages import (
    CSP,
    MAX_TEXT_LENGTH,
    error_page,
    simple_page,
    success_page,
)

from .conftest import Served

pytestmark = pytest.mark.slow

KEY = "agent:main:telegram:direct:42"
SECURITY_HEADERS = {
    "cache-control": "no-store",
    "pragma": "no-cache",
    "content-security-policy": CSP,
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "content-type": "text/html; charset=utf-8",
}


def assert_secure(response: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value, name
    assert CSP.startswith("default-src 'none';")


async def login_through_the_form(served: Served, url: str) -> httpx.Response:
    page = await served.http.get(url)
    action = re.search(r"action='([^']+)'", page.text)
    request_id = re.search(r"name='authRequestId' value='([^']+)'", page.text)
    assert action is not None
    assert request_id is not None
    return await served.http.post(
        urljoin(str(page.url), html.unescape(action.group(1))),
        data={
            "authRequestId": html.unescape(request_id.group(1)),
            "username": "alice",
            "password": "alice-password",
        },
        follow_redirects=True,
    )


class Channel:
    """An ASGI ``receive``/``send`` pair: the lifespan's startup and shutdown in, all kept out."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self._incoming = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive(self) -> dict[str, Any]:
        await trio.lowlevel.checkpoint()
        return next(self._incoming)

    async def send(self, message: Any) -> None:
        await trio.lowlevel.checkpoint()
        self.sent.append(dict(message))


async def test_a_successful_login_shows_who_logged_in(served: Served) -> None:
    with trio.fail_after(30):
        url = await served.flow.start_login(KEY)
        page = await login_through_the_form(served, url)
    assert page.status_code == 200
    assert_secure(page)
    assert "Logged in as alice. You can close this window and return to the chat." in page.text
    view = await served.sessions.get(KEY)
    assert view is not None
    assert view.user_token not in page.text
    code = dict(parse_qsl(urlsplit(str(page.url)).query))["code"]
    assert code not in page.text


async def test_other_paths_are_404_and_other_methods_405(served: Served) -> None:
    for path in ("/", "/identity/oauth", f"{CALLBACK_PATH}/", "/identity/oauth/callbackx"):
        response = await served.http.get(f"{served.base_url}{path}")
        assert response.status_code == 404, path
        assert_secure(response)
    for method in ("POST", "PUT", "DELETE", "HEAD"):
        response = await served.http.request(method, served.callback_url)
        assert response.status_code == 405, method
        assert response.headers["allow"] == "GET"
    assert served.recorder.outcomes == []


async def test_missing_and_unknown_state(served: Served) -> None:
    missing = await served.http.get(served.callback_url, params={"code": "abc"})
    assert missing.status_code == 400
    assert_secure(missing)
    assert "no state" in missing.text
    unknown = await served.http.get(served.callback_url, params={"code": "abc", "state": "nope"})
    assert unknown.status_code == 400
    assert "not valid" in unknown.text
    assert [o.failure for o in served.recorder.outcomes] == [
        LoginFailure.STATE_MISSING,
        LoginFailure.STATE_UNKNOWN,
    ]


async def test_missing_code_with_a_valid_state(served: Served) -> None:
    with trio.fail_after(30):
        url = await served.flow.start_login(KEY)
    state = dict(parse_qsl(urlsplit(url).query))["state"]
    response = await served.http.get(served.callback_url, params={"state": state})
    assert response.status_code == 400
    assert "lacks its code" in response.text
    assert served.recorder.outcomes[-1].failure is LoginFailure.CALLBACK_INVALID
    assert await served.sessions.get(KEY) is None


@pytest.mark.parametrize(
    "query",
    [
        "state=a&state=b&code=c",
        "code=a&code=b&state=s",
        "state=%ff%fe&code=c",
        "state=s&" + "x=" + "y" * MAX_QUERY_LENGTH,
        "&".join(f"p{n}=1" for n in range(40)),
    ],
    ids=["repeated-state", "repeated-code", "not-utf8", "too-long", "too-many-fields"],
)
async def test_malformed_queries_are_refused_before_the_flow(served: Served, query: str) -> None:
    response = await served.http.get(f"{served.callback_url}?{query}")
    assert response.status_code == 400
    assert_secure(response)
    assert "malformed" in response.text
    assert served.recorder.outcomes == []


async def test_repeated_unrelated_parameters_are_tolerated(served: Served) -> None:
    response = await served.http.get(f"{served.callback_url}?state=nope&utm=1&utm=2")
    assert response.status_code == 400
    assert "not valid" in response.text


async def test_an_internal_error_is_a_generic_page_and_the_server_carries_on(
    served: Served,
) -> None:
    await served.broker.stop()  # every take now raises ActorStopped
    response = await served.http.get(served.callback_url, params={"state": "s", "code": "c"})
    assert response.status_code == 500
    assert_secure(response)
    assert "internal error" in response.text
    assert "ActorStopped" not in response.text
    again = await served.http.get(f"{served.base_url}/elsewhere")
    assert again.status_code == 404


async def test_a_websocket_upgrade_is_refused(served: Served) -> None:
    host, port = urlsplit(served.base_url).hostname, urlsplit(served.base_url).port
    assert host is not None
    assert port is not None
    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        await stream.send_all(
            (
                f"GET {CALLBACK_PATH} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        with trio.fail_after(10):
            head = await stream.receive_some(4096)
    assert head.startswith(b"HTTP/1.1 403")


class Mount:
    """What an embedding gateway does: serve the callback under a prefix (``root_path``)."""

    def __init__(self, prefix: str, app: CallbackApp, *, strip: bool) -> None:
        self.prefix = prefix
        self.app = app
        self.strip = strip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefix):
            path = scope["path"][len(self.prefix) :] if self.strip else scope["path"]
            scope = {**scope, "root_path": self.prefix, "path": path}
        await self.app(scope, receive, send)


@pytest.mark.parametrize("strip", [False, True], ids=["asgi-full-path", "stripped-path"])
async def test_mountable_under_a_prefix(served: Served, strip: bool) -> None:
    app = Mount("/gateway", CallbackApp(served.recorder), strip=strip)
    async with trio.open_nursery() as nursery:
        base = await nursery.start(serve_callback_app, app, "127.0.0.1", 0)
        mounted = await served.http.get(f"{base}/gateway{CALLBACK_PATH}", params={"state": "x"})
        assert mounted.status_code == 400
        assert "not valid" in mounted.text
        outside = await served.http.get(f"{base}/gateway/other")
        assert outside.status_code == 404
        nursery.cancel_scope.cancel()


async def test_serve_stops_gracefully_on_its_trigger(served: Served) -> None:
    stop = trio.Event()
    app = CallbackApp(served.flow)  # the flow itself satisfies LoginCompleter (checked by mypy)
    async with trio.open_nursery() as nursery:
        base = await nursery.start(
            partial(serve_callback_app, shutdown_trigger=stop.wait),
            app,
            "127.0.0.1",
            0,
        )
        assert (await served.http.get(f"{base}/x")).status_code == 404
        refused = await served.http.get(f"{base}{CALLBACK_PATH}", params={"state": "s"})
        assert "not valid" in refused.text
        stop.set()
    with pytest.raises(httpx.ConnectError):
        await served.http.get(f"{base}/x")


async def test_a_deferred_app_serves_before_its_app_exists(served: Served) -> None:
    deferred = DeferredApp()
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        # Started (hypercorn's lifespan answered) with nothing attached yet.
        base = await nursery.start(
            partial(serve_callback_app, shutdown_trigger=stop.wait), deferred, "127.0.0.1", 0
        )
        early = await served.http.get(f"{base}{CALLBACK_PATH}", params={"state": "x"})
        assert early.status_code == 503
        assert early.headers["retry-after"] == "1"
        assert_secure(early)
        assert "Try again" in early.text
        assert served.recorder.outcomes == []

        deferred.app = CallbackApp(served.recorder)
        attached = await served.http.get(f"{base}{CALLBACK_PATH}", params={"state": "x"})
        assert attached.status_code == 400
        assert "not valid" in attached.text
        assert len(served.recorder.outcomes) == 1

        deferred.app = None
        detached = await served.http.get(f"{base}{CALLBACK_PATH}", params={"state": "x"})
        assert detached.status_code == 503
        assert len(served.recorder.outcomes) == 1
        stop.set()  # the graceful shutdown goes through the deferred app's lifespan
    with pytest.raises(httpx.ConnectError):
        await served.http.get(f"{base}/x")


async def test_a_deferred_app_answers_lifespan_and_forwards_websockets(served: Served) -> None:
    asgi = Channel()
    deferred = DeferredApp()
    await deferred({"type": "lifespan"}, asgi.receive, asgi.send)
    await deferred({"type": "websocket", "path": CALLBACK_PATH}, asgi.receive, asgi.send)
    deferred.app = CallbackApp(served.recorder)
    await deferred({"type": "websocket", "path": CALLBACK_PATH}, asgi.receive, asgi.send)
    assert [(m["type"], m.get("code")) for m in asgi.sent] == [
        ("lifespan.startup.complete", None),
        ("lifespan.shutdown.complete", None),
        ("websocket.close", 1013),  # nothing attached: try again later
        ("websocket.close", 1008),  # the callback app's own refusal
    ]


async def test_serving_on_a_taken_port_fails_the_start(served: Served) -> None:
    port = urlsplit(served.base_url).port
    assert port is not None
    async with trio.open_nursery() as nursery:
        with pytest.raises(OSError):  # noqa: PT011 - EADDRINUSE, platform-specific errno
            await nursery.start(serve_callback_app, CallbackApp(served.recorder), "127.0.0.1", port)


# ------------------------------------------------------------------------ pure helpers


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:18789/identity/oauth/callback", ("127.0.0.1", 18789, CALLBACK_PATH)),
        ("https://gw.example.com/identity/oauth/callback", ("gw.example.com", 443, CALLBACK_PATH)),
        ("http://gw.example.com", ("gw.example.com", 80, CALLBACK_PATH)),
        ("http://[::1]:8080/cb", ("::1", 8080, "/cb")),
    ],
)
def test_bind_address(url: str, expected: tuple[str, int, str]) -> None:
    assert bind_address(url) == expected


@pytest.mark.parametrize("url", ["ftp://x/cb", "http:///cb", "not a url"])
def test_bind_address_refuses_other_urls(url: str) -> None:
    with pytest.raises(ValueError, match="http"):
        bind_address(url)


def test_pages_escape_clip_and_clean_outside_text() -> None:
    page = success_page('<script>alert("x")</script>').decode()
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    long = error_page("a" * 1000 + "\x00\x1b[31m").decode()
    assert "a" * (MAX_TEXT_LENGTH - 1) + "…" in long
    assert "a" * MAX_TEXT_LENGTH not in long
    cleaned = simple_page("t", ["line\r\nbreak\x07"]).decode()
    assert "line  break" in cleaned
    assert "\x07" not in cleaned


async def test_lifespan_and_websocket_scopes_directly(served: Served) -> None:
    app = CallbackApp(served.recorder)
    asgi = Channel()
    await app({"type": "lifespan"}, asgi.receive, asgi.send)
    await app({"type": "websocket", "path": CALLBACK_PATH}, asgi.receive, asgi.send)
    assert [m["type"] for m in asgi.sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
        "websocket.close",
    ]


def test_the_csp_allows_exactly_the_page_stylesheet() -> None:
    page = success_page("alice").decode()
    style = re.search(r"<style>(.*?)</style>", page)
    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in CSP
