"""The sandbox Feishu stand-in: token exchange, sending, refusals with Feishu's codes, faults.

Most tests serve a bare :class:`FeishuSandbox` behind a tiny hypercorn server of their own, so
each gets a fresh stand-in without the rest of the world; the last one checks the routing of
``/open-apis/`` through ``open_sandbox``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

import httpx
import pytest
import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from hypercorn.typing import ASGIFramework

from agent_identity.sandbox import open_sandbox
from agent_identity.sandbox.asgi import Receive, Scope, Send, read_request, send_response
from agent_identity.sandbox.feishu import (
    DEV_APP_ID,
    DEV_APP_SECRET,
    MESSAGES_PATH,
    TOKEN_PATH,
    FeishuSandbox,
    SendFailure,
    SentMessage,
)


@dataclass
class Served:
    base_url: str
    feishu: FeishuSandbox
    http: httpx.AsyncClient

    async def token(self, app_id: str = DEV_APP_ID, secret: str = DEV_APP_SECRET) -> Any:
        response = await self.http.post(
            self.base_url + TOKEN_PATH, json={"app_id": app_id, "app_secret": secret}
        )
        assert response.status_code == 200
        return response.json()

    async def send(
        self,
        token: str | None,
        body: dict[str, Any] | None = None,
        *,
        receive_id_type: str | None = "open_id",
        authorization: str | None = None,
    ) -> httpx.Response:
        headers = {}
        if authorization is not None:
            headers["Authorization"] = authorization
        elif token is not None:
            headers["Authorization"] = f"Bearer {token}"
        params = {"receive_id_type": receive_id_type} if receive_id_type is not None else {}
        if body is None:
            body = text_body("ou_alice", "hello")
        return await self.http.post(
            self.base_url + MESSAGES_PATH, params=params, json=body, headers=headers
        )


def text_body(receive_id: str, text: str) -> dict[str, Any]:
    return {"receive_id": receive_id, "msg_type": "text", "content": json.dumps({"text": text})}


class _Asgi:
    def __init__(self, feishu: FeishuSandbox) -> None:
        self.feishu = feishu

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        request = await read_request(scope, receive)
        await send_response(send, await self.feishu.handle(request))


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    feishu = FeishuSandbox()
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = logging.getLogger(__name__)
    config.graceful_timeout = 0.1
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery, httpx.AsyncClient(timeout=10) as http:
        app = cast("ASGIFramework", _Asgi(feishu))
        binds: list[str] = await nursery.start(
            partial(serve, app, config, shutdown_trigger=shutdown.wait)
        )
        yield Served(binds[0], feishu, http)
        shutdown.set()


async def test_the_token_exchange_issues_and_then_reuses_a_tenant_token(served: Served) -> None:
    first = await served.token()
    assert first["code"] == 0
    assert first["msg"] == "ok"
    assert first["tenant_access_token"].startswith("t-")
    assert first["expire"] == 7200
    # Feishu answers the same token while it has at least 30 minutes left.
    again = await served.token()
    assert again["tenant_access_token"] == first["tenant_access_token"]
    assert 7190 <= again["expire"] <= 7200
    assert served.feishu.token_requests == 2


async def test_a_short_lived_token_is_replaced_and_then_expires(served: Served) -> None:
    clock = FakeClock()
    served.feishu.clock = clock
    served.feishu.token_ttl = 60
    first = (await served.token())["tenant_access_token"]
    second = (await served.token())["tenant_access_token"]
    assert second != first
    # Both stay valid until their own expiry, as on Feishu.
    assert (await served.send(first)).json()["code"] == 0
    clock.now += 60
    refused = await served.send(second)
    assert refused.status_code == 400
    assert refused.json()["code"] == 99991663
    assert not served.feishu.is_valid_token(second)


@pytest.mark.parametrize(
    ("body", "code", "msg"),
    [
        ({"app_id": DEV_APP_ID}, 10003, "invalid param"),
        ({"app_id": "test", "app_secret": "test"}, 10003, "invalid param"),
        ({"app_id": "cli_nobody", "app_secret": "x"}, 10014, "app id not exists"),
        ({"app_id": DEV_APP_ID, "app_secret": "wrong"}, 10014, "app secret invalid"),
    ],
)
async def test_a_refused_exchange_is_still_http_200(
    served: Served, body: dict[str, str], code: int, msg: str
) -> None:
    response = await served.http.post(served.base_url + TOKEN_PATH, json=body)
    assert response.status_code == 200
    assert response.json() == {"code": code, "msg": msg, "data": {}}


async def test_a_non_json_exchange_is_invalid_param(served: Served) -> None:
    response = await served.http.post(served.base_url + TOKEN_PATH, content=b"app_id=x")
    assert response.json()["code"] == 10003


async def test_a_sent_text_is_recorded_and_answered_like_feishu(served: Served) -> None:
    token = (await served.token())["tenant_access_token"]
    response = await served.send(token, text_body("ou_alice", "✓ Logged in as alice."))
    assert response.status_code == 200
    document = response.json()
    assert document["code"] == 0
    data = document["data"]
    assert data["message_id"].startswith("om_")
    assert data["msg_type"] == "text"
    assert data["sender"] == {
        "id": DEV_APP_ID,
        "id_type": "app_id",
        "sender_type": "app",
        "tenant_key": "sandbox-tenant",
    }
    assert json.loads(data["body"]["content"]) == {"text": "✓ Logged in as alice."}
    assert served.feishu.sent_messages == [
        SentMessage(DEV_APP_ID, "ou_alice", "open_id", "✓ Logged in as alice.", data["message_id"])
    ]
    chat = await served.send(token, text_body("oc_team", "hi"), receive_id_type="chat_id")
    assert chat.json()["data"]["chat_id"] == "oc_team"
    assert served.feishu.texts_to("oc_team") == ["hi"]
    assert served.feishu.send_requests == 2


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, 99991661),
        ("t-fakefakefakefake", 99991661),
        ("Basic Y2xpOng=", 99991661),
        ("Bearer t-fakefakefakefake", 99991663),
    ],
)
async def test_the_token_is_checked_first_with_feishus_codes(
    served: Served, authorization: str | None, code: int
) -> None:
    response = await served.send(None, {}, receive_id_type=None, authorization=authorization)
    assert response.status_code == 400
    document = response.json()
    assert document["code"] == code
    assert "access token for authorization" in document["msg"]
    assert document["error"]["log_id"]
    assert served.feishu.sent_messages == []


@pytest.mark.parametrize(
    ("receive_id_type", "body", "code", "needle"),
    [
        (None, text_body("ou_a", "x"), 99992402, "field validation failed"),
        ("phone", text_body("ou_a", "x"), 99992402, "field validation failed"),
        ("open_id", {"msg_type": "text", "content": "{}"}, 99992402, "field validation"),
        ("open_id", text_body("oc_a", "x"), 230001, "ext=invalid receive_id"),
        ("chat_id", text_body("ou_a", "x"), 230001, "ext=invalid receive_id"),
        ("email", text_body("alice", "x"), 230001, "ext=invalid receive_id"),
        ("open_id", {**text_body("ou_a", "x"), "msg_type": "post"}, 230001, "msg_type text"),
        ("open_id", {**text_body("ou_a", "x"), "content": "text"}, 230001, "invalid message"),
        ("open_id", {**text_body("ou_a", "x"), "content": "{}"}, 230001, "invalid message"),
    ],
)
async def test_bad_fields_are_refused_after_the_token(
    served: Served, receive_id_type: str | None, body: dict[str, Any], code: int, needle: str
) -> None:
    token = (await served.token())["tenant_access_token"]
    response = await served.send(token, body, receive_id_type=receive_id_type)
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert needle in response.json()["msg"]
    assert served.feishu.sent_messages == []


async def test_a_body_that_is_not_an_object_fails_validation(served: Served) -> None:
    token = (await served.token())["tenant_access_token"]
    response = await served.http.post(
        served.base_url + MESSAGES_PATH,
        params={"receive_id_type": "open_id"},
        content=b"[1, 2]",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.json()["code"] == 99992402


async def test_other_id_types_are_accepted(served: Served) -> None:
    token = (await served.token())["tenant_access_token"]
    for kind, receive_id in [("user_id", "u123"), ("union_id", "on_x"), ("email", "a@b.c")]:
        response = await served.send(token, text_body(receive_id, kind), receive_id_type=kind)
        assert response.json()["code"] == 0
    assert [m.receive_id_type for m in served.feishu.sent_messages] == [
        "user_id",
        "union_id",
        "email",
    ]


async def test_fail_next_send_answers_the_injected_failure_that_many_times(
    served: Served,
) -> None:
    token = (await served.token())["tenant_access_token"]
    served.feishu.fail_next_send = 1
    failed = await served.send(token)
    assert failed.status_code == 400
    assert failed.json()["code"] == 230001
    assert "injected failure" in failed.json()["msg"]
    assert (await served.send(token)).json()["code"] == 0
    served.feishu.send_failure = SendFailure(500, 1500, "internal error")
    served.feishu.fail_next_send = 1
    assert (await served.send(token)).status_code == 500
    assert len(served.feishu.sent_messages) == 1


async def test_token_expired_invalidates_every_token_issued_so_far(served: Served) -> None:
    old = (await served.token())["tenant_access_token"]
    served.feishu.token_expired = True
    refused = await served.send(old)
    assert refused.json()["code"] == 99991663
    assert served.feishu.token_expired is False
    new = (await served.token())["tenant_access_token"]
    assert new != old
    assert (await served.send(new)).json()["code"] == 0


async def test_an_unknown_path_or_method_is_the_gateways_plain_404(served: Served) -> None:
    for response in (
        await served.http.get(served.base_url + TOKEN_PATH),
        await served.http.post(served.base_url + "/open-apis/nonexistent/v1/foo"),
    ):
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/plain")
        assert response.text == "404 page not found"


async def test_send_delay_holds_the_answer(served: Served) -> None:
    token = (await served.token())["tenant_access_token"]
    served.feishu.send_delay = 0.2
    started = trio.current_time()
    assert (await served.send(token)).json()["code"] == 0
    assert trio.current_time() - started >= 0.2


async def test_open_sandbox_routes_open_apis_to_the_feishu_stand_in(
    http: httpx.AsyncClient,
) -> None:
    async with open_sandbox() as sb:
        feishu = sb.feishu
        response = await http.post(
            sb.base_url + TOKEN_PATH, json={"app_id": DEV_APP_ID, "app_secret": DEV_APP_SECRET}
        )
        assert response.json()["code"] == 0
        assert feishu.token_requests == 1
        assert (await http.post(sb.base_url + "/open-apis/x")).text == "404 page not found"
        assert (await http.get(sb.base_url + "/")).json()["Feishu"]["Domain"] == sb.base_url
