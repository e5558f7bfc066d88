"""FeishuNotifier and the Notifier facade against the sandbox's Feishu stand-in, over loopback.

The notifier's domain is the sandbox's base URL, so every request crosses a real socket and
the sandbox's own counters and ``sent_messages`` are the evidence.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
import pytest
import trio

from agent_identity.config import FeishuAccount, FeishuChannel
from agent_identity.notify import (
    FeishuNotifier,
    Notifier,
    NotifyContext,
    SendStatus,
)
from agent_identity.sandbox import Sandbox, open_sandbox
from agent_identity.sandbox.feishu import (
    DEV_APP_ID,
    DEV_APP_SECRET,
    TOKEN_PATH,
    FeishuSandbox,
    SendFailure,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with open_sandbox() as sandbox:
        yield sandbox


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


def stand_in(sb: Sandbox) -> FeishuSandbox:
    return sb.feishu


def channel(sb: Sandbox, **accounts: FeishuAccount) -> FeishuChannel:
    return FeishuChannel(
        app_id=DEV_APP_ID,
        app_secret=DEV_APP_SECRET,
        domain=sb.base_url,
        accounts=accounts or None,
    )


async def current_token(sb: Sandbox, http: httpx.AsyncClient) -> str:
    # The stand-in, like Feishu, hands out the live token again while it has 30+ minutes left.
    response = await http.post(
        sb.base_url + TOKEN_PATH, json={"app_id": DEV_APP_ID, "app_secret": DEV_APP_SECRET}
    )
    token: str = response.json()["tenant_access_token"]
    return token


async def test_the_token_is_fetched_once_and_reused(sb: Sandbox, http: httpx.AsyncClient) -> None:
    notifier = FeishuNotifier(http, channel(sb))
    for n in range(3):
        result = await notifier.send_text("user:ou_alice", f"hello {n}")
        assert result.status is SendStatus.SENT
        assert result.ok
        assert result.message_id is not None
        assert result.message_id.startswith("om_")
    feishu = stand_in(sb)
    assert feishu.token_requests == 1
    assert feishu.texts_to("ou_alice") == ["hello 0", "hello 1", "hello 2"]
    stats = notifier.statistics()
    assert (stats.sends, stats.sent, stats.failures, stats.token_fetches) == (3, 3, 0, 1)
    assert stats.cached_tokens == 1


@pytest.mark.parametrize(
    ("target", "receive_id", "receive_id_type"),
    [
        ("user:ou_alice", "ou_alice", "open_id"),
        ("chat:oc_team", "oc_team", "chat_id"),
        ("ou_bob", "ou_bob", "open_id"),
        ("oc_ops", "oc_ops", "chat_id"),
        ("feishu:ou_carol", "ou_carol", "open_id"),
        ("feishu:user:ou_dan", "ou_dan", "open_id"),
        ("FEISHU:chat:oc_eng", "oc_eng", "chat_id"),
    ],
)
async def test_every_target_form_reaches_the_right_receiver(
    sb: Sandbox, http: httpx.AsyncClient, target: str, receive_id: str, receive_id_type: str
) -> None:
    result = await FeishuNotifier(http, channel(sb)).send_text(target, "hi")
    assert result.ok, result.detail
    sent = stand_in(sb).sent_messages
    assert [(m.receive_id, m.receive_id_type, m.text) for m in sent] == [
        (receive_id, receive_id_type, "hi")
    ]


async def test_the_token_is_refreshed_shortly_before_it_expires(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    feishu = stand_in(sb)
    feishu.token_ttl = 60
    clock = FakeClock()
    notifier = FeishuNotifier(http, channel(sb), clock=clock)
    assert (await notifier.send_text("ou_a", "1")).ok
    clock.now += 50  # within the lifetime less its margin (a tenth: 6 s)
    assert (await notifier.send_text("ou_a", "2")).ok
    assert feishu.token_requests == 1
    clock.now += 5  # 55 s: inside the margin, so a new token first
    assert (await notifier.send_text("ou_a", "3")).ok
    assert feishu.token_requests == 2
    assert notifier.statistics().token_fetches == 2


async def test_a_rejected_token_is_refetched_once_and_the_message_resent(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    feishu = stand_in(sb)
    notifier = FeishuNotifier(http, channel(sb))
    assert (await notifier.send_text("ou_a", "before")).ok
    feishu.token_expired = True
    result = await notifier.send_text("ou_a", "after")
    assert result.ok, result.detail
    assert feishu.token_requests == 2
    assert feishu.send_requests == 3
    assert feishu.texts_to("ou_a") == ["before", "after"]
    assert notifier.statistics().token_invalidations == 1


async def test_a_second_rejection_is_the_answer(sb: Sandbox, http: httpx.AsyncClient) -> None:
    feishu = stand_in(sb)
    feishu.send_failure = SendFailure(400, 99991663, "Invalid access token for authorization.")
    feishu.fail_next_send = 5
    result = await FeishuNotifier(http, channel(sb)).send_text("ou_a", "x")
    assert result.status is SendStatus.FAILED
    assert result.code == 99991663
    assert feishu.send_requests == 2
    assert feishu.token_requests == 2
    assert feishu.sent_messages == []


async def test_a_wrong_app_secret_is_returned_not_raised_and_never_shown(
    sb: Sandbox, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "wrong-secret-value-1234"
    config = FeishuChannel(app_id=DEV_APP_ID, app_secret=secret, domain=sb.base_url)
    notifier = FeishuNotifier(http, config)
    result = await notifier.send_text("ou_a", "x")
    assert result.status is SendStatus.FAILED
    assert result.code == 10014
    assert "app secret invalid" in result.detail
    assert secret not in result.detail
    assert secret not in caplog.text
    assert "not delivered" in caplog.text
    assert notifier.statistics().failures == 1
    assert notifier.statistics().cached_tokens == 0
    assert stand_in(sb).send_requests == 0


async def test_a_send_fault_is_returned_and_logged(
    sb: Sandbox, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    stand_in(sb).fail_next_send = 1
    notifier = FeishuNotifier(http, channel(sb))
    result = await notifier.send_text("chat:oc_team", "x")
    assert result.status is SendStatus.FAILED
    assert result.code == 230001
    assert "HTTP 400" in result.detail
    assert "injected failure" in result.detail
    assert any(
        r.levelno == logging.WARNING and "chat:oc_team" in r.getMessage() for r in caplog.records
    )
    # The next one goes through: nothing stuck, the token still cached.
    assert (await notifier.send_text("chat:oc_team", "y")).ok
    assert stand_in(sb).token_requests == 1


async def test_secrets_and_tokens_never_reach_logs_or_results(
    sb: Sandbox, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    notifier = FeishuNotifier(http, channel(sb))
    assert (await notifier.send_text("ou_a", "warm")).ok
    token = await current_token(sb, http)
    feishu = stand_in(sb)
    # A server that echoes what it got must not make us repeat it.
    feishu.send_failure = SendFailure(400, 230001, f"echo {token} {DEV_APP_SECRET}")
    feishu.fail_next_send = 1
    result = await notifier.send_text("ou_a", "x")
    assert result.status is SendStatus.FAILED
    assert "***" in result.detail
    for text in (result.detail, caplog.text, repr(result), repr(notifier.statistics())):
        assert token not in text
        assert DEV_APP_SECRET not in text


async def test_a_slow_feishu_is_bounded_by_the_timeout(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    stand_in(sb).send_delay = 5.0
    notifier = FeishuNotifier(http, channel(sb), timeout=0.3)
    started = trio.current_time()
    result = await notifier.send_text("ou_a", "x")
    assert trio.current_time() - started < 2.0
    assert result.status is SendStatus.FAILED
    assert result.detail == "timed out after 0.3s"


async def test_concurrent_sends_share_one_token_request(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    notifier = FeishuNotifier(http, channel(sb))
    results = []

    async def one(n: int) -> None:
        results.append(await notifier.send_text(f"ou_{n}", "x"))

    async with trio.open_nursery() as nursery:
        for n in range(5):
            nursery.start_soon(one, n)
    assert all(r.ok for r in results)
    assert stand_in(sb).token_requests == 1
    assert len(stand_in(sb).sent_messages) == 5


async def test_each_account_sends_as_its_own_app(sb: Sandbox, http: httpx.AsyncClient) -> None:
    feishu = stand_in(sb)
    feishu.apps["cli_team_app"] = "team-secret"
    config = channel(
        sb,
        team=FeishuAccount(app_id="cli_team_app", app_secret="team-secret"),
        # Only a domain of its own: the channel's app id and secret, the same sandbox.
        mirror=FeishuAccount(domain=sb.base_url),
    )
    notifier = FeishuNotifier(http, config)
    assert (await notifier.send_text("ou_a", "default")).ok
    assert (await notifier.send_text("ou_a", "team", account_id="team")).ok
    assert (await notifier.send_text("ou_a", "mirror", account_id="mirror")).ok
    assert (await notifier.send_text("ou_a", "unknown", account_id="nobody")).ok
    assert [(m.app_id, m.text) for m in feishu.sent_messages] == [
        (DEV_APP_ID, "default"),
        ("cli_team_app", "team"),
        (DEV_APP_ID, "mirror"),
        (DEV_APP_ID, "unknown"),
    ]
    # One token per app: the accounts on the default app share it.
    assert feishu.token_requests == 2
    assert notifier.statistics().cached_tokens == 2


async def test_the_facade_routes_feishu_contexts_and_uses_the_texts(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    notifier = Notifier.for_channel(http, channel(sb))
    in_group = NotifyContext("feishu", sender_id="ou_alice", to="chat:oc_team")
    in_dm = NotifyContext("Feishu", sender_id="ou_bob")
    assert (await notifier.login_succeeded(in_group, "alice")).ok
    assert (await notifier.credential_added(in_dm, "google")).ok
    feishu = stand_in(sb)
    assert feishu.texts_to("oc_team") == ["✓ Logged in as alice."]
    assert feishu.texts_to("ou_bob") == ["✓ Credential for google added."]
    stats = notifier.statistics()
    assert stats.skipped == 0
    assert stats.feishu is not None
    assert stats.feishu.sent == 2


@pytest.mark.parametrize("surface", ["webchat", "tui", "WebChat", "telegram", None])
async def test_non_feishu_contexts_are_a_no_op(
    sb: Sandbox, http: httpx.AsyncClient, surface: str | None
) -> None:
    notifier = Notifier.for_channel(http, channel(sb))
    result = await notifier.notify(NotifyContext(surface, sender_id="ou_x", to="user:ou_x"), "x")
    assert result.status is SendStatus.SKIPPED
    assert not result.ok
    if surface is not None and surface.lower() in {"webchat", "tui"}:
        assert result.detail == "WebChat / TUI: no push"
    assert stand_in(sb).send_requests == 0
    assert stand_in(sb).token_requests == 0
    assert notifier.statistics().skipped == 1
