"""Targets, texts, domains, the context, and the notifier's odd answers (no sockets).

The odd answers come from an ``httpx.MockTransport`` and Trio's ``MockClock``; the normal
protocol is exercised against the sandbox in ``test_feishu.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine

import httpx
import pytest
import trio
import trio.testing

from agent_identity.config import FeishuAccount, FeishuChannel
from agent_identity.notify import (
    FeishuNotifier,
    FeishuTarget,
    Notifier,
    NotifyContext,
    SendStatus,
    credential_added_text,
    login_success_text,
    parse_feishu_target,
    resolve_base_url,
)
from agent_identity.notify.feishu_wire import send_body

BASE = "https://feishu.example"
TOKEN_OK = {"code": 0, "msg": "ok", "tenant_access_token": "t-abc", "expire": 7200}
SENT_OK = {"code": 0, "msg": "success", "data": {"message_id": "om_1"}}

Handler = Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]


def channel(**overrides: object) -> FeishuChannel:
    values: dict[str, object] = {"app_id": "cli_x", "app_secret": "s3cret-value", "domain": BASE}
    values.update(overrides)
    return FeishuChannel(**values)  # type: ignore[arg-type]


def client(handler: Handler) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("user:ou_1", FeishuTarget("ou_1", "open_id")),
        ("  chat:oc_1 ", FeishuTarget("oc_1", "chat_id")),
        ("open_id:ou_2", FeishuTarget("ou_2", "open_id")),
        ("feishu:feishu:ou_3", FeishuTarget("ou_3", "open_id")),
        ("Feishu:User:ou_4", FeishuTarget("ou_4", "open_id")),
        ("u_12ab-3", FeishuTarget("u_12ab-3", "user_id")),
        ("", None),
        ("feishu:", None),
        ("user:", None),
        ("someone@example.com", None),
    ],
)
def test_targets_parse_like_openclaws_feishu_extension(
    raw: str, expected: FeishuTarget | None
) -> None:
    assert parse_feishu_target(raw) == expected


def test_the_follow_up_texts() -> None:
    assert login_success_text("alice") == "✓ Logged in as alice."
    assert login_success_text(" ") == "✓ Logged in."
    assert login_success_text() == "✓ Logged in."
    assert credential_added_text("google") == "✓ Credential for google added."
    assert credential_added_text("") == "✓ Credential for the provider added."


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        (None, "https://open.feishu.cn"),
        ("feishu", "https://open.feishu.cn"),
        ("Lark", "https://open.larksuite.com"),
        ("https://feishu.corp.example/", "https://feishu.corp.example"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("ftp://x", None),
        ("open.feishu.cn", None),
    ],
)
def test_domains_map_like_openclaw(domain: str | None, expected: str | None) -> None:
    assert resolve_base_url(domain) == expected


def test_the_message_content_is_a_json_string() -> None:
    body = json.loads(send_body("ou_1", 'say "hi"'))
    assert body["msg_type"] == "text"
    assert isinstance(body["content"], str)
    assert json.loads(body["content"]) == {"text": 'say "hi"'}


def test_the_context_is_picked_out_of_a_host_command_context() -> None:
    context = NotifyContext.from_command(
        {"channel": "feishu", "senderId": "ou_1", "to": "chat:oc_1", "accountId": 7, "x": 1}
    )
    assert context == NotifyContext("feishu", "ou_1", "chat:oc_1", None)
    assert NotifyContext.from_command({}) == NotifyContext(None)


async def test_the_facade_without_feishu_config_or_target_skips() -> None:
    unconfigured = Notifier.for_channel(client(_unreachable), None)
    result = await unconfigured.notify(NotifyContext("feishu", sender_id="ou_1"), "x")
    assert result.status is SendStatus.SKIPPED
    assert "not configured" in result.detail
    assert unconfigured.statistics().feishu is None
    configured = Notifier.for_channel(client(_unreachable), channel())
    nowhere = await configured.notify(NotifyContext("feishu"), "x")
    assert nowhere.status is SendStatus.SKIPPED
    assert configured.statistics().skipped == 1


async def _unreachable(request: httpx.Request) -> httpx.Response:  # pragma: no cover
    raise AssertionError(f"no request expected, got {request.url}")


@pytest.mark.parametrize(
    ("config", "account", "needle"),
    [
        (channel(app_secret=None), None, "no Feishu app id and secret configured"),
        (channel(app_id=None), "team", "for account 'team'"),
        (channel(domain="ftp://nope"), None, "domain"),
        (
            channel(accounts={"a": FeishuAccount(domain="not a url")}),
            "a",
            "domain",
        ),
    ],
)
async def test_configuration_problems_are_failures_without_requests(
    config: FeishuChannel, account: str | None, needle: str
) -> None:
    async with client(_unreachable) as http:
        result = await FeishuNotifier(http, config).send_text("ou_1", "x", account_id=account)
    assert result.status is SendStatus.FAILED
    assert needle in result.detail


async def test_a_bad_target_is_a_failure_without_requests() -> None:
    async with client(_unreachable) as http:
        result = await FeishuNotifier(http, channel()).send_text("mailto:a@b", "x")
    assert result.status is SendStatus.FAILED
    assert result.detail == "not a Feishu user or chat id"


async def test_a_connection_failure_is_a_failure() -> None:
    async def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with client(refuse) as http:
        result = await FeishuNotifier(http, channel()).send_text("ou_1", "x")
    assert result.status is SendStatus.FAILED
    assert result.detail == "token request failed: ConnectError: connection refused"


async def test_a_send_transport_error_is_a_failure_and_the_token_kept() -> None:
    async def flaky(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/internal"):
            return httpx.Response(200, json=TOKEN_OK)
        raise httpx.ReadTimeout("", request=request)

    async with client(flaky) as http:
        notifier = FeishuNotifier(http, channel())
        result = await notifier.send_text("ou_1", "x")
    assert result.detail == "send failed: ReadTimeout"
    assert notifier.statistics().cached_tokens == 1


@pytest.mark.parametrize(
    ("token_answer", "send_answer", "needle"),
    [
        (httpx.Response(404, text="404 page not found"), None, "HTTP 404, not JSON"),
        (httpx.Response(200, json={"msg": "no code"}), None, "HTTP 200, not JSON"),
        (httpx.Response(200, json={"code": 0, "msg": "ok"}), None, "refused: code 0"),
        (
            httpx.Response(200, json=TOKEN_OK),
            httpx.Response(502, text="<html>bad gateway</html>"),
            "send failed: HTTP 502, not JSON",
        ),
        (
            httpx.Response(200, json=TOKEN_OK),
            httpx.Response(503, json={"code": 0, "msg": "x" * 500}),
            "send refused: HTTP 503, code 0",
        ),
    ],
)
async def test_odd_answers_are_failures(
    token_answer: httpx.Response, send_answer: httpx.Response | None, needle: str
) -> None:
    async def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/internal"):
            return token_answer
        assert send_answer is not None
        return send_answer

    async with client(answer) as http:
        result = await FeishuNotifier(http, channel()).send_text("ou_1", "x")
    assert result.status is SendStatus.FAILED
    assert needle in result.detail
    assert len(result.detail) <= 240


async def test_a_success_without_data_and_a_token_without_expire() -> None:
    calls: list[str] = []

    async def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if request.url.path.endswith("/internal"):
            return httpx.Response(200, json={"code": 0, "tenant_access_token": "t-1"})
        assert request.headers["authorization"] == "Bearer t-1"
        assert request.url.params["receive_id_type"] == "open_id"
        return httpx.Response(200, json={"code": 0, "msg": "success"})

    async with client(answer) as http:
        notifier = FeishuNotifier(http, channel())
        first = await notifier.send_text("ou_1", "x")
        await notifier.send_text("ou_1", "y")
    assert first.ok
    assert first.message_id is None
    # No lifetime given: the token served its send but was not kept.
    assert calls.count("/open-apis/auth/v3/tenant_access_token/internal") == 2
    notifier.clear_tokens()
    assert notifier.statistics().cached_tokens == 0


async def test_an_unexpected_error_is_reported_by_type_only() -> None:
    async def explode(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("s3cret-value leaked into a message")

    async with client(explode) as http:
        result = await FeishuNotifier(http, channel()).send_text("ou_1", "x")
    assert result.status is SendStatus.FAILED
    assert result.detail == "unexpected error (RuntimeError)"


async def test_a_waiter_takes_over_when_the_fetching_send_is_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    token_calls = 0

    async def answer(request: httpx.Request) -> httpx.Response:
        nonlocal token_calls
        if request.url.path.endswith("/internal"):
            token_calls += 1
            if token_calls == 1:
                await trio.sleep_forever()
            return httpx.Response(200, json=TOKEN_OK)
        return httpx.Response(200, json=SENT_OK)

    results: dict[str, SendStatus] = {}
    async with client(answer) as http:
        notifier = FeishuNotifier(http, channel(), timeout=10)

        async def send(name: str, delay: float) -> None:
            await trio.sleep(delay)
            results[name] = (await notifier.send_text("ou_1", name)).status

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send, "leader", 0)
            nursery.start_soon(send, "waiter", 5)
    assert results == {"leader": SendStatus.FAILED, "waiter": SendStatus.SENT}
    assert token_calls == 2


async def test_a_refused_token_is_shared_by_concurrent_waiters(
    autojump_clock: trio.testing.MockClock,
) -> None:
    token_calls = 0

    async def answer(request: httpx.Request) -> httpx.Response:
        nonlocal token_calls
        token_calls += 1
        await trio.sleep(1)
        return httpx.Response(200, json={"code": 10014, "msg": "app secret invalid"})

    async with client(answer) as http:
        notifier = FeishuNotifier(http, channel())
        codes: list[int | None] = []

        async def send() -> None:
            codes.append((await notifier.send_text("ou_1", "x")).code)

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(send)
    assert codes == [10014, 10014, 10014]
    assert token_calls == 1
